/**
 * Writing frames: {@link encodeFrame} gives the byte-stream form (a `u32` length prefix, then
 * the frame), {@link encodeMessage} the message form (WebSocket: the frame alone). Both are one
 * allocation; the message form is a view of the stream form without its first four bytes, so a
 * transport of either kind sends what one call produced. {@link encodeRequest} writes the frame
 * a client sends per call, REQUEST, straight from its fields.
 *
 * @module
 */

import { FRAME_NUMBERS, FrameType, MAGIC, type Frame, U32_MAX } from "./frame.js";

/** Why a frame cannot be encoded: a field out of its range, or a frame over the peer's limit. */
export class FrameEncodeError extends RangeError {
  /**
   * `"field"` for a value that does not fit its field (a string over 65,535 bytes, an id that
   * is not a `u32`), `"too_large"` for a frame larger than the limit it is encoded for.
   */
  readonly kind: "field" | "too_large";

  constructor(kind: "field" | "too_large", message: string) {
    super(message);
    this.name = "FrameEncodeError";
    this.kind = kind;
  }
}

const utf8 = new TextEncoder();

/**
 * The byte-stream form of `frame`: its `u32` length prefix, then its bytes.
 *
 * @param maxFrameSize the largest frame the peer accepts (default: no limit but the `u32`).
 * @throws {FrameEncodeError} when a field is out of range or the frame is larger than
 *   `maxFrameSize`.
 */
export function encodeFrame(frame: Frame, maxFrameSize: number = U32_MAX): Uint8Array {
  const w = new Writer(frame);
  const size = w.size;
  if (size > maxFrameSize) {
    throw new FrameEncodeError(
      "too_large",
      `${frame.type.toUpperCase()} of ${size} bytes is larger than the peer's maximum frame size of ${maxFrameSize}`,
    );
  }
  return w.write();
}

/** Frames up to this size are cut from a shared slab (see {@link sendBuffer}). */
const POOLED_MAX = 8 * 1024;
const SLAB_SIZE = 64 * 1024;
let slab = new ArrayBuffer(SLAB_SIZE);
let slabUsed = 0;

/**
 * Room for a frame that is sent at once: a view of a shared 64 KiB slab for small frames (a
 * fresh `ArrayBuffer` per frame costs more than the rest of a call's encoding), its own buffer
 * for large ones. Nothing is ever written twice: a full slab is left to the views that still
 * use it, and a new one is started.
 */
function sendBuffer(size: number): Uint8Array {
  if (size > POOLED_MAX) return new Uint8Array(size);
  if (slabUsed + size > SLAB_SIZE) {
    slab = new ArrayBuffer(SLAB_SIZE);
    slabUsed = 0;
  }
  const out = new Uint8Array(slab, slabUsed, size);
  // The next frame starts 8-byte aligned.
  slabUsed = (slabUsed + size + 7) & ~7;
  return out;
}

/**
 * The byte-stream form of a REQUEST, as {@link encodeFrame} writes it, without building the
 * frame object: what a client sends per call. The result is meant to be sent at once (it may
 * share its `ArrayBuffer` with other frames).
 *
 * @throws {FrameEncodeError} as {@link encodeFrame} does.
 */
export function encodeRequest(
  requestId: number,
  methodId: number,
  timeoutMs: number,
  fireAndForget: boolean,
  payload: Uint8Array,
  maxFrameSize: number = U32_MAX,
): Uint8Array {
  if (requestId >>> 0 !== requestId || methodId >>> 0 !== methodId || timeoutMs >>> 0 !== timeoutMs) {
    // Out of range: the general encoder says which field.
    return encodeFrame({ type: "request", requestId, methodId, timeoutMs, fireAndForget, payload }, maxFrameSize);
  }
  const size = 14 + payload.length;
  if (size > maxFrameSize) {
    throw new FrameEncodeError("too_large", `REQUEST of ${size} bytes is larger than the peer's maximum frame size of ${maxFrameSize}`);
  }
  const out = sendBuffer(4 + size);
  putU32(out, 0, size);
  out[4] = FrameType.REQUEST;
  out[5] = fireAndForget ? 0x01 : 0;
  putU32(out, 6, requestId);
  putU32(out, 10, methodId);
  putU32(out, 14, timeoutMs);
  out.set(payload, 18);
  return out;
}

function putU32(out: Uint8Array, at: number, value: number): void {
  out[at] = value;
  out[at + 1] = value >>> 8;
  out[at + 2] = value >>> 16;
  out[at + 3] = value >>> 24;
}

/** The message form of `frame` (one WebSocket message: no length prefix). See {@link encodeFrame}. */
export function encodeMessage(frame: Frame, maxFrameSize: number = U32_MAX): Uint8Array {
  return encodeFrame(frame, maxFrameSize).subarray(4);
}

/** One part of a frame after its type and flags. */
type Part =
  | { kind: "u8"; value: number }
  | { kind: "u16"; value: number }
  | { kind: "u32"; value: number }
  | { kind: "u64"; value: bigint }
  | { kind: "bytes"; value: Uint8Array }
  /** A `u16` length, then the bytes. */
  | { kind: "short"; value: Uint8Array };

class Writer {
  readonly size: number;
  private readonly flags: number;
  private readonly parts: Part[] = [];

  constructor(private readonly frame: Frame) {
    this.flags = this.layout();
    let size = 2;
    for (const part of this.parts) size += partSize(part);
    this.size = size;
  }

  write(): Uint8Array {
    const out = new Uint8Array(4 + this.size);
    const view = new DataView(out.buffer);
    view.setUint32(0, this.size, true);
    out[4] = FRAME_NUMBERS[this.frame.type];
    out[5] = this.flags;
    let at = 6;
    for (const part of this.parts) {
      switch (part.kind) {
        case "u8":
          out[at] = part.value;
          at += 1;
          break;
        case "u16":
          view.setUint16(at, part.value, true);
          at += 2;
          break;
        case "u32":
          view.setUint32(at, part.value, true);
          at += 4;
          break;
        case "u64":
          view.setBigUint64(at, part.value, true);
          at += 8;
          break;
        case "short":
          view.setUint16(at, part.value.length, true);
          out.set(part.value, at + 2);
          at += 2 + part.value.length;
          break;
        case "bytes":
          out.set(part.value, at);
          at += part.value.length;
          break;
      }
    }
    return out;
  }

  private u8(field: string, value: number): void {
    this.parts.push({ kind: "u8", value: checkInt(this.frame, field, value, 0xff) });
  }
  private u16(field: string, value: number): void {
    this.parts.push({ kind: "u16", value: checkInt(this.frame, field, value, 0xffff) });
  }
  private u32(field: string, value: number): void {
    this.parts.push({ kind: "u32", value: checkInt(this.frame, field, value, U32_MAX) });
  }
  private u64(field: string, value: bigint): void {
    if (typeof value !== "bigint" || value < 0n || value > 0xffff_ffff_ffff_ffffn) {
      throw fieldError(this.frame, field, `${String(value)} is not a u64 (a bigint from 0 to 2^64 - 1)`);
    }
    this.parts.push({ kind: "u64", value });
  }
  private string(field: string, value: string): void {
    this.short(field, utf8.encode(value));
  }
  private short(field: string, value: Uint8Array): void {
    if (value.length > 0xffff) {
      throw fieldError(this.frame, field, `${value.length} bytes is more than the 65535 a string may hold`);
    }
    this.parts.push({ kind: "short", value });
  }
  /** HELLO's and WELCOME's last field, left out when there is nothing to announce. */
  private capabilities(value: number | undefined): void {
    if (value !== undefined && value !== 0) this.u32("capabilities", value);
  }
  private rest(value: Uint8Array): void {
    if (value.length > 0) this.parts.push({ kind: "bytes", value });
  }

  /** Lists the frame's parts; returns its flags byte. */
  private layout(): number {
    const f = this.frame;
    switch (f.type) {
      case "hello":
        this.parts.push({ kind: "bytes", value: Uint8Array.from(MAGIC) });
        this.u16("version", f.version);
        this.u32("max_frame_size", f.maxFrameSize);
        this.string("client_name", f.clientName);
        this.short("token", f.token);
        this.capabilities(f.capabilities);
        return 0;
      case "welcome":
        this.u16("version", f.version);
        this.u32("max_frame_size", f.maxFrameSize);
        this.u32("max_in_flight", f.maxInFlight);
        this.u32("idle_timeout_ms", f.idleTimeoutMs);
        this.string("server_id", f.serverId);
        this.u32("auth_expires_in_ms", f.authExpiresInMs);
        this.capabilities(f.capabilities);
        return 0;
      case "ping":
      case "pong":
        this.u64("data", f.data);
        return 0;
      case "goaway":
        this.u16("reason", f.reason);
        this.u32("last_request_id", f.lastRequestId);
        this.string("message", f.message);
        return f.reconnect ? 0x01 : 0;
      case "request":
        this.u32("request_id", f.requestId);
        this.u32("method_id", f.methodId);
        this.u32("timeout_ms", f.timeoutMs);
        this.rest(f.payload);
        return f.fireAndForget ? 0x01 : 0;
      case "response":
        this.u32("request_id", f.requestId);
        this.rest(f.payload);
        return 0;
      case "error":
        this.u32("request_id", f.requestId);
        this.u8("code", checkCode(f, f.code));
        this.u32("error_id", f.errorId);
        this.string("message", f.message);
        this.rest(f.details);
        return f.retryable ? 0x01 : 0;
      case "cancel":
        this.u32("request_id", f.requestId);
        return 0;
      case "subscribe":
        this.u32("subscription_id", f.subscriptionId);
        this.u32("topic_id", f.topicId);
        this.string("key", f.key);
        return f.allKeys ? 0x01 : 0;
      case "unsubscribe":
        this.u32("subscription_id", f.subscriptionId);
        return 0;
      case "publish":
        this.u32("request_id", f.requestId);
        this.u32("topic_id", f.topicId);
        this.string("key", f.key);
        this.rest(f.payload);
        return 0;
      case "subscribed":
        this.u32("subscription_id", f.subscriptionId);
        return 0;
      case "event":
        this.u32("subscription_id", f.subscriptionId);
        this.string("key", f.key);
        this.rest(f.payload);
        return 0;
      case "subscribe_from":
        this.u32("subscription_id", f.subscriptionId);
        this.u32("topic_id", f.topicId);
        this.u64("epoch", f.epoch);
        this.u64("offset", f.offset);
        this.string("key", f.key);
        return f.allKeys ? 0x01 : 0;
      case "subscribed_at":
        this.u32("subscription_id", f.subscriptionId);
        this.u8("recovery", f.recovery);
        this.u64("epoch", f.epoch);
        this.u64("offset", f.offset);
        return 0;
      case "event_at":
        this.u32("subscription_id", f.subscriptionId);
        this.u64("offset", f.offset);
        this.string("key", f.key);
        this.rest(f.payload);
        return 0;
      case "missed":
        this.u32("subscription_id", f.subscriptionId);
        this.u32("count", f.count);
        return 0;
      case "subscription_ended":
        this.u32("subscription_id", f.subscriptionId);
        this.u8("code", checkCode(f, f.code));
        this.string("message", f.message);
        return f.retryable ? 0x01 : 0;
      case "auth":
        this.u32("request_id", f.requestId);
        this.short("token", f.token);
        return 0;
      case "auth_ok":
        this.u32("request_id", f.requestId);
        this.u32("expires_in_ms", f.expiresInMs);
        return 0;
      default:
        return unknownType(f);
    }
  }
}

function partSize(part: Part): number {
  switch (part.kind) {
    case "u8":
      return 1;
    case "u16":
      return 2;
    case "u32":
      return 4;
    case "u64":
      return 8;
    case "short":
      return 2 + part.value.length;
    case "bytes":
      return part.value.length;
  }
}

function unknownType(frame: never): never {
  const type = (frame as { type?: unknown }).type;
  throw new FrameEncodeError("field", `cannot encode a frame of type ${JSON.stringify(type)}`);
}

function fieldError(frame: Frame, field: string, problem: string): FrameEncodeError {
  return new FrameEncodeError("field", `${frame.type.toUpperCase()} field \`${field}\`: ${problem}`);
}

function checkInt(frame: Frame, field: string, value: number, max: number): number {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw fieldError(frame, field, `${String(value)} is not an integer from 0 to ${max}`);
  }
  return value;
}

/** Code 0 (`ok`) and numbers past 16 are never sent (`docs/protocol.md`, "Status codes"). */
function checkCode(frame: Frame, code: number): number {
  if (!Number.isInteger(code) || code < 1 || code > 16) {
    throw fieldError(frame, "code", `${String(code)} is not a status code (1 to 16)`);
  }
  return code;
}
