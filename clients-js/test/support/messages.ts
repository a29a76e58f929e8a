// The example APIs' messages, written and read by hand with the `flatbuffers` runtime's builder
// and byte buffer (schemas/some_api/some_api.fbs, schemas/echo/echo.fbs), and their stable ids
// (docs/service-files.md, "Stable ids": FNV-1a of the qualified name).

import * as flatbuffers from "flatbuffers";

import type { MethodDesc, TopicDesc } from "@rpcgen/client";

/** rpcgen's stable id: the 32-bit FNV-1a hash of the qualified name. */
export function stableId(name: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(name)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

function method(name: string, idempotent: boolean): MethodDesc {
  return { id: stableId(name), name, idempotent };
}

function topic(name: string): TopicDesc {
  return { id: stableId(name), name };
}

export const SUM = method("examples.some_api.SomeApi.sum", true);
export const SUB = method("examples.some_api.SomeApi.sub", false);
export const TOTAL = topic("examples.some_api.SomeApi.pub");
export const OVERFLOW_ID = stableId("examples.some_api.SomeApi.Overflow");
export const ECHO = method("examples.echo.Echo.echo", true);
export const DELAY = method("examples.echo.Echo.delay", true);
export const BROADCAST = topic("examples.echo.Echo.broadcast");

/** The root table's position in `bb`. */
function root(bb: flatbuffers.ByteBuffer): number {
  return bb.readInt32(bb.position()) + bb.position();
}

/** A scalar field's offset in its table (0: absent), for field number `index`. */
function field(bb: flatbuffers.ByteBuffer, table: number, index: number): number {
  return bb.__offset(table, 4 + 2 * index);
}

function longs(values: bigint[]): Uint8Array {
  const b = new flatbuffers.Builder(64);
  b.startObject(values.length);
  values.forEach((v, i) => b.addFieldInt64(i, v, 0n));
  b.finish(b.endObject());
  return b.asUint8Array();
}

function long(bytes: Uint8Array, index: number): bigint {
  const bb = new flatbuffers.ByteBuffer(bytes);
  const table = root(bb);
  const o = field(bb, table, index);
  return o ? bb.readInt64(table + o) : 0n;
}

/** `RequestSum { a, b }`. */
export const requestSum = (a: bigint, b: bigint): Uint8Array => longs([a, b]);
/** `ReplySum.sum`. */
export const replySum = (bytes: Uint8Array): bigint => long(bytes, 0);
/** `RequestSub { amount }`. */
export const requestSub = (amount: bigint): Uint8Array => longs([amount]);
/** `Total { value, changes }`. */
export const total = (bytes: Uint8Array): { value: bigint; changes: bigint } => ({
  value: long(bytes, 0),
  changes: BigInt.asUintN(64, long(bytes, 1)),
});

/** `Blob { data }`. */
export function blob(data: Uint8Array): Uint8Array {
  const b = new flatbuffers.Builder(64 + data.length);
  const vector = b.createByteVector(data);
  b.startObject(1);
  b.addFieldOffset(0, vector, 0);
  b.finish(b.endObject());
  return b.asUint8Array();
}

/** `Delay { ms, data }`: answered with `Blob { data }` after `ms`. */
export function delay(ms: number, data: Uint8Array): Uint8Array {
  const b = new flatbuffers.Builder(64 + data.length);
  const vector = b.createByteVector(data);
  b.startObject(2);
  b.addFieldInt32(0, ms, 0);
  b.addFieldOffset(1, vector, 0);
  b.finish(b.endObject());
  return b.asUint8Array();
}

/** `Blob.data`. */
export function blobData(bytes: Uint8Array): Uint8Array {
  const bb = new flatbuffers.ByteBuffer(bytes);
  const table = root(bb);
  const o = field(bb, table, 0);
  if (!o) return new Uint8Array(0);
  const start = bb.__vector(table + o);
  return bytes.subarray(start, start + bb.__vector_len(table + o));
}
