// The protocol test vectors of docs/protocol-vectors.json, as docs/protocol.md ("Test vectors")
// says every implementation runs them: each `frames` case decodes to its frame and encodes back
// in both forms, `ignored` cases are skipped, `invalid` cases fail with the named kind, and the
// concatenated stream decodes the same at every split point. The client's own REQUEST writer
// (encodeRequest, which cuts frames from a shared slab) is checked against them too.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import test from "node:test";

import {
  decodeMessage,
  encodeFrame,
  encodeMessage,
  type Frame,
  FrameDecodeError,
  FrameEncodeError,
  FrameReader,
} from "@rpcgen/client";

// Internal: the client's own REQUEST writer, imported by its path in the build.
import { encodeRequest } from "../dist/protocol/encode.js";

interface Vectors {
  version: number;
  max_frame_size: number;
  frames: { name: string; hex: string; frame: Record<string, unknown>; encodes_to?: string }[];
  ignored: { name: string; hex: string; frame_type: number }[];
  invalid: { name: string; hex: string; error: string }[];
}

const vectors = JSON.parse(
  readFileSync(new URL("../../docs/protocol-vectors.json", import.meta.url), "utf8"),
) as Vectors;
const MAX = vectors.max_frame_size;

function bytes(hex: string): Uint8Array {
  const clean = hex.replace(/ /g, "");
  return Uint8Array.from(clean.match(/../g) ?? [], (b) => parseInt(b, 16));
}

function hexOf(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

const BYTE_FIELDS = new Set(["token", "payload", "details"]);

/** The vectors' JSON frame (snake_case, hex bytes, u64 as a decimal string) as this package's Frame. */
function frameOf(json: Record<string, unknown>): Frame {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) {
    const key = k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
    if (k === "type") out[key] = v;
    else if (BYTE_FIELDS.has(k)) out[key] = bytes(v as string);
    else if (k === "data" || k === "epoch" || k === "offset") out[key] = BigInt(v as string);
    else out[key] = v;
  }
  return out as unknown as Frame;
}

/** A frame with its byte fields as hex, so that assertion failures are readable. */
function readable(frame: Frame | null): unknown {
  if (frame === null) return null;
  return Object.fromEntries(
    Object.entries(frame).map(([k, v]) => [k, v instanceof Uint8Array ? `hex:${hexOf(v)}` : v]),
  );
}

/** Decodes a byte stream delivered in `chunks`: every frame, `null` for skipped ones. */
function decodeChunks(chunks: Uint8Array[], max = MAX): (Frame | null)[] {
  const reader = new FrameReader(max);
  const out: (Frame | null)[] = [];
  for (const chunk of chunks) reader.push(chunk, (body) => out.push(decodeMessage(body)));
  assert.equal(reader.buffered, 0, "no bytes left over");
  return out;
}

test("the vectors are for this protocol version", () => {
  assert.equal(vectors.version, 1);
  assert.ok(vectors.frames.length > 50 && vectors.invalid.length > 50);
});

test("every frame decodes to its value, in both forms", async (t) => {
  for (const v of vectors.frames) {
    await t.test(v.name, () => {
      const wire = bytes(v.hex);
      const expected = readable(frameOf(v.frame));
      assert.deepEqual(decodeChunks([wire]).map(readable), [expected], "stream form");
      assert.deepEqual(readable(decodeMessage(wire.subarray(4))), expected, "message form");
    });
  }
});

test("every frame encodes to its bytes, in both forms", async (t) => {
  for (const v of vectors.frames) {
    await t.test(v.name, () => {
      const expected = bytes(v.encodes_to ?? v.hex);
      const frame = frameOf(v.frame);
      assert.equal(hexOf(encodeFrame(frame, MAX)), hexOf(expected), "stream form");
      assert.equal(hexOf(encodeMessage(frame, MAX)), hexOf(expected.subarray(4)), "message form");
    });
  }
});

test("ignored frames are skipped whole, in both forms", async (t) => {
  for (const v of vectors.ignored) {
    await t.test(v.name, () => {
      const wire = bytes(v.hex);
      assert.equal(wire[4], v.frame_type);
      assert.deepEqual(decodeChunks([wire]), [null], "stream form");
      assert.equal(decodeMessage(wire.subarray(4)), null, "message form");
    });
  }
});

function failsWith(kind: string, run: () => unknown, what: string): void {
  assert.throws(
    run,
    (e: unknown) => {
      assert.ok(e instanceof FrameDecodeError, `${what}: ${String(e)} is a FrameDecodeError`);
      assert.equal(e.kind, kind, `${what}: ${e.message}`);
      return true;
    },
    what,
  );
}

test("invalid frames fail with the named kind, in both forms", async (t) => {
  for (const v of vectors.invalid) {
    await t.test(v.name, () => {
      const wire = bytes(v.hex);
      failsWith(v.error, () => decodeChunks([wire]), "stream form");
      if (v.error === "frame_too_large") {
        // Only the prefix is there: the refusal must not wait for the frame's bytes.
        assert.equal(wire.length, 4);
      } else {
        failsWith(v.error, () => decodeMessage(wire.subarray(4)), "message form");
      }
    });
  }
});

test("the concatenated stream decodes the same at every split point", () => {
  const cases = [...vectors.frames, ...vectors.ignored];
  const stream = bytes(cases.map((c) => c.hex).join(""));
  const expected = [
    ...vectors.frames.map((v) => readable(frameOf(v.frame))),
    ...vectors.ignored.map(() => null),
  ];
  assert.deepEqual(decodeChunks([stream]).map(readable), expected, "in one chunk");
  for (let split = 1; split < stream.length; split++) {
    const got = decodeChunks([stream.subarray(0, split), stream.subarray(split)]).map(readable);
    assert.deepEqual(got, expected, `split at byte ${split}`);
  }
  // Three pieces at many places, and one byte at a time.
  for (let a = 1; a < stream.length; a += 37) {
    for (let b = a + 1; b < stream.length; b += 53) {
      const chunks = [stream.subarray(0, a), stream.subarray(a, b), stream.subarray(b)];
      assert.deepEqual(decodeChunks(chunks).map(readable), expected, `split at ${a} and ${b}`);
    }
  }
  const singles = Array.from(stream, (b) => Uint8Array.of(b));
  assert.deepEqual(decodeChunks(singles).map(readable), expected, "one byte per chunk");
});

test("a frame whole in its chunk is a view of it; one split across chunks is gathered", () => {
  const frame: Frame = { type: "response", requestId: 9, payload: Uint8Array.of(1, 2, 3) };
  const wire = encodeFrame(frame);
  const reader = new FrameReader(MAX);
  const seen: Uint8Array[] = [];
  reader.push(wire, (body) => seen.push(body));
  assert.equal(seen[0]!.buffer, wire.buffer, "no copy");
  reader.push(wire.subarray(0, 7), (body) => seen.push(body));
  assert.equal(seen.length, 1);
  assert.equal(reader.buffered, 3, "the prefix and the first bytes wait");
  reader.push(wire.subarray(7), (body) => seen.push(body));
  assert.deepEqual(readable(decodeMessage(seen[1]!)), readable(frame));
});

test("a length prefix over the limit is refused before the frame arrives, after the frames before it", () => {
  const reader = new FrameReader(65_536);
  const ok = encodeFrame({ type: "subscribed", subscriptionId: 1 });
  const big = Uint8Array.of(0x01, 0x00, 0x01, 0x00); // 65,537 bytes announced
  const seen: Uint8Array[] = [];
  failsWith("frame_too_large", () => reader.push(new Uint8Array([...ok, ...big]), (b) => seen.push(b)), "prefix");
  assert.equal(seen.length, 1, "the valid frame before it was handed over");
  failsWith("frame_too_large", () => reader.push(ok, () => assert.fail("a failed reader reads no more")), "after");
});

test("encoding refuses values that do not fit their fields or the peer's limit", () => {
  const tooLong = "x".repeat(65_536);
  const cases: [Frame, string][] = [
    [{ type: "subscribe", subscriptionId: 1, topicId: 2, allKeys: false, key: tooLong }, "`key`"],
    [{ type: "cancel", requestId: -1 }, "`request_id`"],
    [{ type: "cancel", requestId: 2 ** 32 }, "`request_id`"],
    [{ type: "cancel", requestId: 1.5 }, "`request_id`"],
    [{ type: "ping", data: -1n }, "`data`"],
    [{ type: "ping", data: 2n ** 64n }, "`data`"],
    [{ type: "subscription_ended", subscriptionId: 1, code: 0, retryable: false, message: "" }, "`code`"],
  ];
  for (const [frame, field] of cases) {
    assert.throws(
      () => encodeFrame(frame),
      (e: unknown) => e instanceof FrameEncodeError && e.kind === "field" && e.message.includes(field),
      field,
    );
  }
  const request: Frame = {
    type: "request",
    requestId: 1,
    methodId: 1,
    timeoutMs: 0,
    fireAndForget: false,
    payload: new Uint8Array(65_536 - 14 + 1),
  };
  assert.throws(
    () => encodeFrame(request, 65_536),
    (e: unknown) => e instanceof FrameEncodeError && e.kind === "too_large" && /65537 bytes/.test(e.message),
  );
  assert.equal(encodeFrame({ ...request, payload: new Uint8Array(65_536 - 14) }, 65_536).length, 65_540);
});

test("the client's REQUEST writer gives the vectors' bytes and refuses what encodeFrame refuses", async (t) => {
  for (const v of vectors.frames.filter((f) => f.frame.type === "request")) {
    await t.test(v.name, () => {
      const f = frameOf(v.frame) as Extract<Frame, { type: "request" }>;
      const got = encodeRequest(f.requestId, f.methodId, f.timeoutMs, f.fireAndForget, f.payload, MAX);
      assert.equal(hexOf(got), hexOf(bytes(v.encodes_to ?? v.hex)));
    });
  }
  assert.throws(
    () => encodeRequest(1, 1, 0, false, new Uint8Array(65_536 - 14 + 1), 65_536),
    (e: unknown) => e instanceof FrameEncodeError && e.kind === "too_large" && /REQUEST of 65537 bytes/.test(e.message),
  );
  for (const [id, method, timeout, field] of [
    [0, -1, 0, "`method_id`"],
    [2 ** 32, 1, 0, "`request_id`"],
    [1, 1, 1.5, "`timeout_ms`"],
  ] as const) {
    assert.throws(
      () => encodeRequest(id, method, timeout, false, new Uint8Array(0)),
      (e: unknown) => e instanceof FrameEncodeError && e.kind === "field" && e.message.includes(field),
      field,
    );
  }
});

test("REQUESTs written from the shared slab keep their bytes: no two share any", () => {
  // Frames are cut from 64 KiB slabs and never written twice: thousands of them, small and
  // large, all kept, must each still hold exactly their own request.
  const sent: [Uint8Array, number, Uint8Array][] = [];
  for (let i = 1; i <= 5000; i++) {
    const payload = new Uint8Array(i % 97 === 0 ? 9000 + i : i % 1500).fill(i & 0xff);
    sent.push([encodeRequest(i, i * 7, i % 3, i % 2 === 0, payload), i, payload]);
  }
  for (const [wire, i, payload] of sent) {
    const frame = decodeMessage(wire.subarray(4));
    assert.deepEqual(frame, { type: "request", requestId: i, methodId: i * 7, timeoutMs: i % 3, fireAndForget: i % 2 === 0, payload });
    assert.equal(new DataView(wire.buffer, wire.byteOffset).getUint32(0, true), wire.length - 4, "length prefix");
  }
});

test("a frame in a Node Buffer decodes to plain Uint8Array views of it", () => {
  // WebSocket in Node hands messages over as Buffers, whose subarrays are Buffers too.
  const event = encodeMessage({ type: "event", subscriptionId: 3, key: "k", payload: Uint8Array.of(7, 8, 9) });
  const pool = Buffer.alloc(64);
  pool.set(event, 10);
  const frame = decodeMessage(pool.subarray(10, 10 + event.length));
  assert.ok(frame?.type === "event");
  assert.equal(Object.getPrototypeOf(frame.payload), Uint8Array.prototype);
  assert.equal(frame.payload.buffer, pool.buffer, "a view, not a copy");
  assert.deepEqual(frame.payload, Uint8Array.of(7, 8, 9));
});
