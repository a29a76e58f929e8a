/**
 * Reading frames: {@link decodeMessage} reads one frame in message form (a WebSocket message),
 * {@link FrameReader} cuts a byte stream (TCP) into frames across whatever chunks it arrives
 * in. Neither copies payloads when it can help it, and neither throws anything but a
 * {@link FrameDecodeError}, whatever the input.
 *
 * @module
 */

import { FLAG_IGNORABLE, type Frame, FrameType, GoawayReason, MAGIC } from "./frame.js";

/** The kinds of invalid frame, named as `docs/protocol.md` ("Invalid frames") and the vectors name them. */
export type DecodeErrorKind =
  | "frame_too_large"
  | "empty_frame"
  | "unknown_frame_type"
  | "truncated"
  | "bad_magic"
  | "bad_utf8"
  | "trailing_bytes";

/** Bytes that are not a valid frame: a protocol error that ends the connection. */
export class FrameDecodeError extends Error {
  /** Which rule the bytes break. */
  readonly kind: DecodeErrorKind;

  constructor(kind: DecodeErrorKind, message: string) {
    super(message);
    this.name = "FrameDecodeError";
    this.kind = kind;
  }

  /** The reason of the GOAWAY a receiver sends before closing. */
  get goawayReason(): number {
    return this.kind === "frame_too_large" ? GoawayReason.FRAME_TOO_LARGE : GoawayReason.PROTOCOL_ERROR;
  }
}

const TYPE_NAMES: { readonly [n: number]: string } = {
  0x01: "HELLO",
  0x02: "WELCOME",
  0x03: "PING",
  0x04: "PONG",
  0x05: "GOAWAY",
  0x10: "REQUEST",
  0x11: "RESPONSE",
  0x12: "ERROR",
  0x13: "CANCEL",
  0x20: "SUBSCRIBE",
  0x21: "UNSUBSCRIBE",
  0x22: "PUBLISH",
  0x23: "SUBSCRIBED",
  0x24: "EVENT",
  0x25: "MISSED",
  0x26: "SUBSCRIPTION_ENDED",
  0x27: "SUBSCRIBE_FROM",
  0x28: "SUBSCRIBED_AT",
  0x29: "EVENT_AT",
  0x30: "AUTH",
  0x31: "AUTH_OK",
};

/** The name of a frame type number (`"REQUEST"`), or its hex for one version 1 does not assign. */
export function frameTypeName(type: number): string {
  return TYPE_NAMES[type] ?? `0x${type.toString(16).padStart(2, "0")}`;
}

// `fatal`: invalid UTF-8 (overlong forms and surrogates included) throws instead of being
// replaced; `ignoreBOM`: a leading U+FEFF is part of the string, not a marker to drop.
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Reads the fields of one frame, in order. */
class Reader {
  private pos = 2;
  private readonly view: DataView;

  constructor(
    private readonly body: Uint8Array,
    private readonly type: number,
  ) {
    this.view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  }

  private need(n: number, field: string): number {
    const at = this.pos;
    if (this.body.length - at < n) {
      throw new FrameDecodeError("truncated", `${frameTypeName(this.type)} frame ends inside field \`${field}\``);
    }
    this.pos = at + n;
    return at;
  }

  u8(field: string): number {
    return this.body[this.need(1, field)]!;
  }
  u16(field: string): number {
    return this.view.getUint16(this.need(2, field), true);
  }
  u32(field: string): number {
    return this.view.getUint32(this.need(4, field), true);
  }
  u64(field: string): bigint {
    return this.view.getBigUint64(this.need(8, field), true);
  }
  bytes(n: number, field: string): Uint8Array {
    const at = this.need(n, field);
    return view(this.body, at, at + n);
  }
  /** A short byte string: `u16` length, bytes. */
  short(field: string): Uint8Array {
    const len = this.u16(field);
    return this.bytes(len, field);
  }
  string(field: string): string {
    const bytes = this.short(field);
    try {
      return utf8.decode(bytes);
    } catch {
      throw new FrameDecodeError("bad_utf8", `field \`${field}\` of ${frameTypeName(this.type)} is not UTF-8`);
    }
  }
  /** HELLO's or WELCOME's `capabilities`: 0 when the frame ends before it. */
  capabilities(): number {
    return this.body.length - this.pos >= 4 ? this.u32("capabilities") : 0;
  }
  rest(): Uint8Array {
    const at = this.pos;
    this.pos = this.body.length;
    return view(this.body, at, this.body.length);
  }
  /** For frames of an exact size: nothing may follow the last field. */
  end(): void {
    const left = this.body.length - this.pos;
    if (left > 0) {
      throw new FrameDecodeError(
        "trailing_bytes",
        `${frameTypeName(this.type)} frame has trailing bytes after its last field (${left})`,
      );
    }
  }
}

/** A received status code: 0 and numbers version 1 does not define are `unknown` (2). */
function code(n: number): number {
  return n >= 1 && n <= 16 ? n : 2;
}

/**
 * `bytes[start..end)` as a plain `Uint8Array` view, even when `bytes` is a Node `Buffer` (whose
 * `subarray` gives a `Buffer`): payloads handed to applications are `Uint8Array`s.
 */
export function view(bytes: Uint8Array, start: number, end: number): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset + start, end - start);
}

/** The little-endian `u32` at `at` (the caller checked that four bytes are there). */
export function readU32(bytes: Uint8Array, at: number): number {
  return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
}

/**
 * Reads one frame in message form: `msg` is exactly one frame, without a length prefix.
 * Returns `null` for a frame of a type version 1 does not assign that is flagged ignorable (to
 * be skipped). The frame's payloads are views of `msg`.
 *
 * @throws {FrameDecodeError} when `msg` is not a valid frame.
 */
export function decodeMessage(msg: Uint8Array): Frame | null {
  const type = msg[0];
  if (type === undefined) throw new FrameDecodeError("empty_frame", "empty frame");
  const r = new Reader(msg, type);
  if (msg.length < 2) {
    throw new FrameDecodeError("truncated", `${frameTypeName(type)} frame ends inside field \`flags\``);
  }
  const flags = msg[1]!;
  const bit0 = (flags & 0x01) !== 0;
  let frame: Frame;
  switch (type) {
    case FrameType.HELLO: {
      const magic = r.bytes(4, "magic");
      if (!MAGIC.every((b, i) => magic[i] === b)) {
        throw new FrameDecodeError("bad_magic", "HELLO does not start with the protocol's magic `FBRP`");
      }
      const version = r.u16("version");
      const maxFrameSize = r.u32("max_frame_size");
      const clientName = r.string("client_name");
      const token = r.short("token");
      // HELLO and WELCOME grow at their end: `capabilities` when it is there, and whatever
      // later revisions append after it, ignored.
      return { type: "hello", version, maxFrameSize, clientName, token, capabilities: r.capabilities() };
    }
    case FrameType.WELCOME: {
      const version = r.u16("version");
      const maxFrameSize = r.u32("max_frame_size");
      const maxInFlight = r.u32("max_in_flight");
      const idleTimeoutMs = r.u32("idle_timeout_ms");
      const serverId = r.string("server_id");
      const authExpiresInMs = r.u32("auth_expires_in_ms");
      const capabilities = r.capabilities();
      return { type: "welcome", version, maxFrameSize, maxInFlight, idleTimeoutMs, serverId, authExpiresInMs, capabilities };
    }
    case FrameType.PING:
      frame = { type: "ping", data: r.u64("data") };
      break;
    case FrameType.PONG:
      frame = { type: "pong", data: r.u64("data") };
      break;
    case FrameType.GOAWAY: {
      const reason = r.u16("reason");
      const lastRequestId = r.u32("last_request_id");
      const message = r.string("message");
      frame = { type: "goaway", reason, reconnect: bit0, lastRequestId, message };
      break;
    }
    case FrameType.REQUEST: {
      const requestId = r.u32("request_id");
      const methodId = r.u32("method_id");
      const timeoutMs = r.u32("timeout_ms");
      return { type: "request", requestId, methodId, timeoutMs, fireAndForget: bit0, payload: r.rest() };
    }
    case FrameType.RESPONSE: {
      const requestId = r.u32("request_id");
      return { type: "response", requestId, payload: r.rest() };
    }
    case FrameType.ERROR: {
      const requestId = r.u32("request_id");
      const c = code(r.u8("code"));
      const errorId = r.u32("error_id");
      const message = r.string("message");
      const details = r.rest();
      return { type: "error", requestId, code: c, retryable: bit0, errorId, message, details };
    }
    case FrameType.CANCEL:
      frame = { type: "cancel", requestId: r.u32("request_id") };
      break;
    case FrameType.SUBSCRIBE: {
      const subscriptionId = r.u32("subscription_id");
      const topicId = r.u32("topic_id");
      const key = r.string("key");
      frame = { type: "subscribe", subscriptionId, topicId, allKeys: bit0, key };
      break;
    }
    case FrameType.UNSUBSCRIBE:
      frame = { type: "unsubscribe", subscriptionId: r.u32("subscription_id") };
      break;
    case FrameType.PUBLISH: {
      const requestId = r.u32("request_id");
      const topicId = r.u32("topic_id");
      const key = r.string("key");
      return { type: "publish", requestId, topicId, key, payload: r.rest() };
    }
    case FrameType.SUBSCRIBED:
      frame = { type: "subscribed", subscriptionId: r.u32("subscription_id") };
      break;
    case FrameType.EVENT: {
      const subscriptionId = r.u32("subscription_id");
      const key = r.string("key");
      return { type: "event", subscriptionId, key, payload: r.rest() };
    }
    case FrameType.MISSED: {
      const subscriptionId = r.u32("subscription_id");
      frame = { type: "missed", subscriptionId, count: r.u32("count") };
      break;
    }
    case FrameType.SUBSCRIBE_FROM: {
      const subscriptionId = r.u32("subscription_id");
      const topicId = r.u32("topic_id");
      const epoch = r.u64("epoch");
      const offset = r.u64("offset");
      const key = r.string("key");
      frame = { type: "subscribe_from", subscriptionId, topicId, allKeys: bit0, key, epoch, offset };
      break;
    }
    case FrameType.SUBSCRIBED_AT: {
      const subscriptionId = r.u32("subscription_id");
      const recovery = r.u8("recovery");
      const epoch = r.u64("epoch");
      frame = { type: "subscribed_at", subscriptionId, recovery, epoch, offset: r.u64("offset") };
      break;
    }
    case FrameType.EVENT_AT: {
      const subscriptionId = r.u32("subscription_id");
      const offset = r.u64("offset");
      const key = r.string("key");
      return { type: "event_at", subscriptionId, offset, key, payload: r.rest() };
    }
    case FrameType.SUBSCRIPTION_ENDED: {
      const subscriptionId = r.u32("subscription_id");
      const c = code(r.u8("code"));
      const message = r.string("message");
      frame = { type: "subscription_ended", subscriptionId, code: c, retryable: bit0, message };
      break;
    }
    case FrameType.AUTH: {
      const requestId = r.u32("request_id");
      frame = { type: "auth", requestId, token: r.short("token") };
      break;
    }
    case FrameType.AUTH_OK: {
      const requestId = r.u32("request_id");
      frame = { type: "auth_ok", requestId, expiresInMs: r.u32("expires_in_ms") };
      break;
    }
    default:
      if ((flags & FLAG_IGNORABLE) !== 0) return null;
      throw new FrameDecodeError("unknown_frame_type", `unknown frame type \`${frameTypeName(type)}\``);
  }
  // Every frame that did not return early has an exact size.
  r.end();
  return frame;
}

/**
 * Cuts a byte stream (TCP) into frames: feed it the chunks as they arrive, and it hands over
 * each frame (in message form, ready for {@link decodeMessage}) as soon as it is complete.
 *
 * Each length prefix is checked against `maxFrameSize` as soon as its four bytes are in, before
 * anything is buffered for the frame. A frame that lies whole inside a chunk is returned as a
 * view of that chunk; one split across chunks is gathered into a buffer of its exact size.
 */
export class FrameReader {
  private readonly prefix = new Uint8Array(4);
  private prefixFill = 0;
  /** The frame being gathered across chunks, and how much of it has arrived. */
  private partial: Uint8Array | null = null;
  private partialFill = 0;
  private failed: FrameDecodeError | null = null;

  /** @param maxFrameSize the largest frame this receiver accepts. */
  constructor(readonly maxFrameSize: number) {}

  /** Bytes received that belong to no complete frame yet. */
  get buffered(): number {
    return this.prefixFill + this.partialFill;
  }

  /**
   * Takes the next chunk of the stream and hands each frame it completes to `onFrame`, in
   * order (a frame is a view of `chunk`, or a buffer of its own when it spanned chunks).
   *
   * @throws {FrameDecodeError} `frame_too_large` or `empty_frame` from a length prefix, after
   *   the frames before it were handed over; the reader then stays failed (a stream cannot be
   *   resynchronised).
   */
  push(chunk: Uint8Array, onFrame: (frame: Uint8Array) => void): void {
    if (this.failed) throw this.failed;
    let at = 0;
    while (at < chunk.length) {
      if (this.partial) {
        const n = Math.min(this.partial.length - this.partialFill, chunk.length - at);
        this.partial.set(chunk.subarray(at, at + n), this.partialFill);
        this.partialFill += n;
        at += n;
        if (this.partialFill === this.partial.length) {
          const frame = this.partial;
          this.partial = null;
          this.partialFill = 0;
          onFrame(frame);
        }
        continue;
      }
      let len: number;
      if (this.prefixFill === 0 && chunk.length - at >= 4) {
        len = (chunk[at]! | (chunk[at + 1]! << 8) | (chunk[at + 2]! << 16) | (chunk[at + 3]! << 24)) >>> 0;
        at += 4;
      } else {
        const n = Math.min(4 - this.prefixFill, chunk.length - at);
        this.prefix.set(chunk.subarray(at, at + n), this.prefixFill);
        this.prefixFill += n;
        at += n;
        if (this.prefixFill < 4) break;
        this.prefixFill = 0;
        const p = this.prefix;
        len = (p[0]! | (p[1]! << 8) | (p[2]! << 16) | (p[3]! << 24)) >>> 0;
      }
      this.check(len);
      if (chunk.length - at >= len) {
        const frame = chunk.subarray(at, at + len);
        at += len;
        onFrame(frame);
      } else {
        this.partial = new Uint8Array(len);
        this.partialFill = 0;
      }
    }
  }

  private check(len: number): void {
    if (len > this.maxFrameSize) {
      this.failed = new FrameDecodeError(
        "frame_too_large",
        `frame of ${len} bytes is larger than the maximum of ${this.maxFrameSize}`,
      );
    } else if (len === 0) {
      this.failed = new FrameDecodeError("empty_frame", "empty frame");
    }
    if (this.failed) throw this.failed;
  }
}
