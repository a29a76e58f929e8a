// `@rpcgen/client/tso`: the 16-byte timestamps (the vector of docs/tso.md, byte order as time
// order), the collapsing client's rules against a scripted call (one call in flight, callers
// of one turn in one call, consecutive shares, errors to every caller of the failed call, calls
// no larger than MAX_BATCH), then against the real oracle through the stubs `rpcgen ts`
// generates from schemas/tso/tso.service: a `tso` instance on nats-server behind a gateway, many
// concurrent callers, every timestamp unique and each caller's increasing.

import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { after, before, test } from "node:test";

import { Client, Code, RpcError } from "@rpcgen/client";
import { nodeTransport } from "@rpcgen/client/node";
import {
  CollapsingTimestamps,
  compareTimestamps,
  MAX_BATCH,
  readTimestamp,
  type Timestamp,
  timestampBytes,
} from "@rpcgen/client/tso";

import { Gateway } from "./support/gateway.js";
import { generatedStubs } from "./support/generated.js";
import { requireNats, startNats, startTso, stop } from "./support/nats.js";

test("a timestamp is its epoch then its index, big-endian, and sorts as its bytes", () => {
  const bytes = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
  const t = readTimestamp(bytes);
  assert.deepEqual(t, { epoch: 0x0102030405060708n, index: 0x090a0b0c0d0e0f10n });
  assert.deepEqual(timestampBytes(t), bytes);
  assert.deepEqual(readTimestamp(new Uint8Array([0, ...bytes]), 1), t);
  assert.throws(() => readTimestamp(bytes.subarray(1)), RangeError);

  const edges = [0n, 1n, 255n, 256n, 1n << 32n, (1n << 64n) - 1n];
  const stamps = edges.flatMap((epoch) => edges.map((index) => ({ epoch, index })));
  for (const a of stamps) {
    for (const b of stamps) {
      const byBytes = Buffer.compare(timestampBytes(a), timestampBytes(b));
      assert.equal(Math.sign(compareTimestamps(a, b)), byBytes, `${a.epoch}.${a.index} vs ${b.epoch}.${b.index}`);
    }
  }
});

/** A call the test answers by hand: each call's `n`, and its pending answer. */
function scripted() {
  const calls: { n: number; answer: (first: Timestamp) => void; fail: (e: unknown) => void }[] = [];
  const call = (n: number) =>
    new Promise<Uint8Array>((resolve, reject) => {
      calls.push({ n, answer: (first) => resolve(timestampBytes(first)), fail: reject });
    });
  return { calls, call };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

test("callers are collapsed into one call in flight and get consecutive shares", async () => {
  const { calls, call } = scripted();
  const tso = new CollapsingTimestamps(call);
  const first = tso.timestamps();
  await settle();
  assert.deepEqual(calls.map((c) => c.n), [1]);

  // While the first call is out, 100 callers ask for 1 to 3 each: one call for all of them.
  const sizes = Array.from({ length: 100 }, (_, i) => (i % 3) + 1);
  const waiting = sizes.map((n) => tso.timestamps(n));
  await settle();
  assert.equal(calls.length, 1, "nothing more is sent while a call is in flight");
  calls[0]!.answer({ epoch: 7n, index: 0n });
  assert.deepEqual(await first, { epoch: 7n, index: 0n });
  await settle();
  const total = sizes.reduce((a, b) => a + b, 0);
  assert.deepEqual(calls.map((c) => c.n), [1, total]);
  calls[1]!.answer({ epoch: 9n, index: 100n });
  const got = await Promise.all(waiting);
  let index = 100n;
  got.forEach((t, i) => {
    assert.deepEqual(t, { epoch: 9n, index });
    index += BigInt(sizes[i]!);
  });
  assert.equal(tso.calls, 2);
  assert.equal(tso.asked, 1 + total);
});

test("a failed call fails each of its callers, and the next call goes out", async () => {
  const { calls, call } = scripted();
  const tso = new CollapsingTimestamps(call);
  const a = tso.timestamps();
  const b = tso.timestamps(2);
  await settle();
  assert.deepEqual(calls.map((c) => c.n), [3], "callers of one turn share the first call");
  const c = tso.timestamps();
  calls[0]!.fail(new RpcError(Code.UNAVAILABLE, "changing leader"));
  await Promise.all(
    [a, b].map((failed) => assert.rejects(failed, (e: unknown) => e instanceof RpcError && e.code === Code.UNAVAILABLE)),
  );
  await settle();
  calls[1]!.answer({ epoch: 1n, index: 5n });
  assert.deepEqual(await c, { epoch: 1n, index: 5n });
});

test("n out of range is refused, and no call carries more than MAX_BATCH", async () => {
  const { calls, call } = scripted();
  const tso = new CollapsingTimestamps(call);
  for (const n of [0, -1, 1.5, MAX_BATCH + 1, Number.NaN]) {
    await assert.rejects(tso.timestamps(n), RangeError, String(n));
  }
  const big = [tso.timestamps(MAX_BATCH - 1), tso.timestamps(2), tso.timestamps(MAX_BATCH)];
  await settle();
  assert.deepEqual(calls.map((c) => c.n), [MAX_BATCH - 1]);
  calls[0]!.answer({ epoch: 1n, index: 0n });
  await settle();
  assert.deepEqual(calls.map((c) => c.n), [MAX_BATCH - 1, 2]);
  calls[1]!.answer({ epoch: 2n, index: 0n });
  await settle();
  assert.deepEqual(calls.map((c) => c.n), [MAX_BATCH - 1, 2, MAX_BATCH]);
  calls[2]!.answer({ epoch: 3n, index: 0n });
  assert.deepEqual(await Promise.all(big), [
    { epoch: 1n, index: 0n },
    { epoch: 2n, index: 0n },
    { epoch: 3n, index: 0n },
  ]);
});

// --- against the real oracle -------------------------------------------------------------

let nats: { url: string; process: ChildProcess } | undefined;
let oracle: ChildProcess | undefined;
let gateway: Gateway | undefined;
let client: Client | undefined;
let examples: any;

before(async () => {
  ({ examples } = await generatedStubs("schemas/tso/tso.service", "tso"));
  requireNats();
  nats = await startNats();
  oracle = await startTso(nats.url);
  gateway = await Gateway.start({ args: ["--anonymous-roles", "all", "--nats", nats.url] });
  client = await Client.connect({ endpoints: [gateway.tcpUrl], transport: nodeTransport });
});

after(async () => {
  await client?.close();
  await gateway?.kill();
  await stop(oracle);
  await stop(nats?.process);
});

test("many concurrent callers through the gateway: unique timestamps, each caller's increasing", async () => {
  const oracle = new examples.tso.TsoClient(client!);
  const tso = new CollapsingTimestamps(
    async (n) => (await oracle.timestamps(new examples.tso.TimestampsRequestT({ n }))).firstArray() as Uint8Array,
  );
  const [callers, rounds] = [64, 50];
  const seen = new Set<string>();
  let collisions = 0;
  await Promise.all(
    Array.from({ length: callers }, async (_, caller) => {
      const n = (caller % 4) + 1;
      let last: Timestamp | undefined;
      for (let round = 0; round < rounds; round++) {
        const first = await tso.timestamps(n);
        if (last) assert.ok(compareTimestamps(first, last) > 0, `caller ${caller}: ${first.epoch}.${first.index} after ${last.epoch}.${last.index}`);
        for (let i = 0n; i < BigInt(n); i++) {
          const key = `${first.epoch}.${first.index + i}`;
          if (seen.has(key)) collisions += 1;
          seen.add(key);
        }
        last = { epoch: first.epoch, index: first.index + BigInt(n) - 1n };
      }
    }),
  );
  assert.equal(collisions, 0);
  assert.equal(seen.size, rounds * (callers / 4) * (1 + 2 + 3 + 4));
  // 3,200 requests in far fewer calls: callers were collapsed.
  assert.ok(tso.calls < (callers * rounds) / 4, `${tso.calls} calls for ${callers * rounds} requests`);
});
