/**
 * Reading a buffer every way the generated readers allow, with every read checked against the
 * buffer's bounds: the `flatbuffers` runtime's `ByteBuffer` reads are wrapped (while
 * {@link checked} runs) so that a read outside the buffer throws instead of quietly giving
 * `undefined` or 0, and buffers are {@link CheckedBytes}, whose `subarray` (strings, typed
 * arrays, nested buffers) throws instead of clamping.
 */

import { ByteBuffer, Encoding } from "flatbuffers";

/** A read outside the buffer. */
export class OutOfBounds extends Error {}

/** Bytes whose `subarray` refuses a range outside them. */
export class CheckedBytes extends Uint8Array {
  static get [Symbol.species](): Uint8ArrayConstructor {
    return Uint8Array;
  }

  static of_(bytes: Uint8Array): CheckedBytes {
    const checked = new CheckedBytes(bytes.length);
    checked.set(bytes);
    return checked;
  }

  override subarray(begin = 0, end = this.length): Uint8Array<ArrayBuffer> {
    if (!(Number.isInteger(begin) && Number.isInteger(end) && begin >= 0 && begin <= end && end <= this.length)) {
      throw new OutOfBounds(`subarray(${begin}, ${end}) of ${this.length} bytes`);
    }
    return super.subarray(begin, end) as Uint8Array<ArrayBuffer>;
  }
}

const SIZES: Record<string, number> = {
  readInt8: 1,
  readUint8: 1,
  readInt16: 2,
  readUint16: 2,
  readInt32: 4,
  readUint32: 4,
  readInt64: 8,
  readUint64: 8,
  readFloat32: 4,
  readFloat64: 8,
};

let checking = false;
let installed = false;

function install(): void {
  if (installed) return;
  installed = true;
  const proto = ByteBuffer.prototype as unknown as Record<string, (this: ByteBuffer, offset: number) => unknown>;
  for (const [name, size] of Object.entries(SIZES)) {
    const original = proto[name]!;
    proto[name] = function (this: ByteBuffer, offset: number): unknown {
      if (checking && !(Number.isInteger(offset) && offset >= 0 && offset + size <= this.capacity())) {
        throw new OutOfBounds(`${name}(${offset}) in a buffer of ${this.capacity()} bytes`);
      }
      return original.call(this, offset);
    };
  }
}

/** Runs `f` with every `ByteBuffer` read checked. */
export function checked<T>(f: () => T): T {
  install();
  const before = checking;
  checking = true;
  try {
    return f();
  } finally {
    checking = before;
  }
}

interface Budget {
  calls: number;
}

const MAX_CALLS = 20_000;
const MAX_ELEMENTS = 40;

function isReader(value: unknown): value is object {
  return typeof value === "object" && value !== null && "bb_pos" in value && "bb" in value;
}

function parameters(method: (...args: unknown[]) => unknown): string[] {
  const match = /^[^(]*\(([^)]*)\)/.exec(method.toString());
  const list = match?.[1]?.trim() ?? "";
  return list === "" ? [] : list.split(",").map((p) => p.trim().split(/[\s=]/)[0] ?? "");
}

/** The index arguments to try on a vector or array accessor. */
function indices(reader: Record<string, unknown>, name: string): number[] {
  const lengthOf = reader[`${name}Length`];
  const length = typeof lengthOf === "function" ? Number(lengthOf.call(reader)) : 8;
  const out = new Set<number>([-1, 0.5, length, length + 1, 2 ** 32, 2 ** 31]);
  for (let i = 0; i < Math.min(length, MAX_ELEMENTS); i++) out.add(i);
  if (length > 0) out.add(length - 1);
  return [...out];
}

/** The argument lists to call a reader method with. */
function argumentLists(
  reader: Record<string, unknown>,
  name: string,
  params: string[],
  structKey: boolean,
): unknown[][] {
  switch (params[0]) {
    case undefined:
      return [[]];
    case "obj":
      return [[]];
    case "optionalEncoding":
      return [[], [Encoding.UTF8_BYTES]];
    case "index": {
      const lists: unknown[][] = [];
      for (const i of indices(reader, name)) {
        lists.push([i]);
        if (params[1] === "optionalEncoding") lists.push([i, Encoding.UTF8_BYTES]);
      }
      return lists;
    }
    case "key":
      // A struct key is an owned struct: anything with `keyValues()` will do.
      if (structKey) return [[{ keyValues: () => [] }], [{ keyValues: () => [0, -1, 2n, true] }]];
      return [["a"], [""], ["\u{10000}"], [0], [1], [-1]];
    default:
      return [];
  }
}

/**
 * Calls every method of `reader` (every accessor, with every index of its vectors and some past
 * them, `unpack`...) and of every reader they return, within a budget of calls.
 */
export function walk(reader: object, budget: Budget = { calls: 0 }, depth = 0): void {
  if (depth > 80) return;
  const proto = Object.getPrototypeOf(reader) as object;
  const fields = reader as Record<string, unknown>;
  for (const name of Object.getOwnPropertyNames(proto)) {
    if (name === "constructor" || name === "__init" || name === "unpackTo") continue;
    const method = fields[name];
    if (typeof method !== "function") continue;
    const structKey = String(method).includes("key.keyValues()");
    for (const args of argumentLists(fields, name, parameters(method as (...a: unknown[]) => unknown), structKey)) {
      if (budget.calls++ > MAX_CALLS) return;
      const result: unknown = (method as (...a: unknown[]) => unknown).apply(reader, args);
      if (isReader(result)) walk(result, budget, depth + 1);
      if (name === "unpack" && typeof result === "object" && result !== null && "toBytes" in result) {
        // Packing what was read must work too.
        (result as { toBytes(): Uint8Array }).toBytes();
      }
    }
  }
}
