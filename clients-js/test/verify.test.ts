/**
 * The verifier runtime (`@rpcgen/client/verify`) on buffers built by hand with the `flatbuffers`
 * builder, checked by a table verifier written here the way rpcgen generates them: what it
 * accepts, what it rejects, and that each rejection names the kind and the path of the problem.
 * (rpcgen's own tests run it on every corpus schema and on corrupted buffers:
 * `cargo test -p rpcgen-crosscheck --test typescript`.)
 */

import assert from "node:assert/strict";
import { test } from "node:test";

import { Builder, ByteBuffer } from "flatbuffers";
import {
  array,
  compareStrings,
  intKey,
  sortByStringKey,
  type TableCheck,
  type UnionCheck,
  utf8Error,
  VerifyError,
  type VerifyErrorKind,
  type VerifyOptions,
  verifyRoot,
} from "@rpcgen/client/verify";

// The table `T` of this schema, as the generated verifier of
//
//   table T { n: int; name: string (required); list: [int]; child: T; u: U;
//             bytes: [ubyte] (nested_flatbuffer: "T"); many: [U]; }
//   union U { T, Text: string }
//
// checks it: slots 4 (n), 6 (name), 8 (list), 10 (child), 12 (u_type), 14 (u), 16 (bytes),
// 18 (many_type), 20 (many).
const checkU: UnionCheck = (v, tag, pos, required) => {
  switch (tag) {
    case 1:
      v.variantTable(pos, "T", checkT);
      return;
    case 2:
      v.variantString(pos, "Text");
      return;
    default:
      v.variantUnknown(pos, tag, required);
  }
};
const checkT: TableCheck = (v, pos) => {
  const t = v.table(pos);
  t.scalar(4, 4, "n");
  t.string(6, "name", true);
  t.vector(8, 4, 4, "list", false);
  t.table(10, "child", false, checkT);
  t.union(12, 14, "u", false, checkU);
  t.vector(16, 1, 1, "bytes", false);
  t.nested(16, "bytes", checkT, "T");
  t.unions(18, 20, "many", false, checkU);
  t.end();
};
/** `T` with a required union `u`. */
const checkRequiredU: TableCheck = (v, pos) => {
  const t = v.table(pos);
  t.union(12, 14, "u", true, checkU);
  t.end();
};

interface Fields {
  n?: number;
  name?: string | null;
  list?: number[];
  child?: (b: Builder) => number;
  u?: [number, (b: Builder) => number];
  bytes?: Uint8Array;
  many?: [number, (b: Builder) => number][];
}

/** Writes a `T` and returns its offset. */
function writeT(b: Builder, f: Fields): number {
  const name = f.name === null ? 0 : b.createString(f.name ?? "t");
  let list = 0;
  if (f.list) {
    b.startVector(4, f.list.length, 4);
    for (const x of [...f.list].reverse()) b.addInt32(x);
    list = b.endVector();
  }
  const child = f.child ? f.child(b) : 0;
  const u = f.u ? f.u[1](b) : 0;
  const bytes = f.bytes ? b.createByteVector(f.bytes) : 0;
  let manyTypes = 0;
  let many = 0;
  if (f.many) {
    const values = f.many.map(([, write]) => write(b));
    b.startVector(1, f.many.length, 1);
    for (const [tag] of [...f.many].reverse()) b.addInt8(tag);
    manyTypes = b.endVector();
    b.startVector(4, values.length, 4);
    for (const value of [...values].reverse()) b.addOffset(value);
    many = b.endVector();
  }
  b.startObject(9);
  if (f.n !== undefined) b.addFieldInt32(0, f.n, 0);
  b.addFieldOffset(1, name, 0);
  b.addFieldOffset(2, list, 0);
  b.addFieldOffset(3, child, 0);
  if (f.u) b.addFieldInt8(4, f.u[0], 0);
  b.addFieldOffset(5, u, 0);
  b.addFieldOffset(6, bytes, 0);
  b.addFieldOffset(7, manyTypes, 0);
  b.addFieldOffset(8, many, 0);
  return b.endObject();
}

function buffer(f: Fields, sizePrefixed = false): Uint8Array {
  const b = new Builder();
  b.finish(writeT(b, f), undefined, sizePrefixed);
  return b.asUint8Array().slice();
}

function verify(bytes: Uint8Array, options?: VerifyOptions, check: TableCheck = checkT, sizePrefixed = false): void {
  verifyRoot(bytes, "T", check, options, sizePrefixed);
}

/** Asserts that verifying `bytes` fails with `kind` at `path`. */
function rejects(bytes: Uint8Array, kind: VerifyErrorKind, path: string, options?: VerifyOptions, check?: TableCheck): VerifyError {
  try {
    verify(bytes, options, check);
  } catch (e) {
    assert.ok(e instanceof VerifyError, `not a VerifyError: ${String(e)}`);
    assert.equal(e.kind, kind, e.message);
    assert.equal(e.path, path, e.message);
    assert.equal(e.message, `${path}: ${e.detail}`);
    return e;
  }
  assert.fail(`accepted, expected ${kind} at ${path}`);
}

/** The position of `needle` in `bytes`. */
function find(bytes: Uint8Array, needle: number[]): number {
  for (let i = 0; i + needle.length <= bytes.length; i++) {
    if (needle.every((x, k) => bytes[i + k] === x)) return i;
  }
  throw new Error(`${JSON.stringify(needle)} not in the buffer`);
}

const text = (s: string) => (b: Builder) => b.createString(s);
const table = (f: Fields) => (b: Builder) => writeT(b, f);

test("valid buffers are accepted", () => {
  verify(buffer({}));
  verify(
    buffer({
      n: 7,
      name: "héllo \u{1f600}",
      list: [1, 2, 3],
      child: table({ name: "child", u: [2, text("x")] }),
      u: [1, table({ name: "variant" })],
      bytes: buffer({ name: "nested" }),
      many: [[1, table({})], [2, text("two")]],
    }),
  );
  verify(buffer({ name: "" }));
  verify(buffer({ name: "p" }, true), undefined, checkT, true);
});

test("cuts are rejected", () => {
  const bytes = buffer({ name: "a name", list: [1, 2, 3] });
  rejects(bytes.subarray(0, 0), "out_of_bounds", "T");
  rejects(bytes.subarray(0, 3), "out_of_bounds", "T");
  // The string was written first, so it ends the buffer: its text, a 0, padding. A cut before
  // that 0 loses part of the string or its terminator; a cut after it loses only padding.
  const terminator = find(bytes, [...new TextEncoder().encode("a name")]) + 6;
  for (let cut = 0; cut < bytes.length; cut++) {
    let accepted = true;
    try {
      verify(bytes.subarray(0, cut));
    } catch (e) {
      assert.ok(e instanceof VerifyError, String(e));
      accepted = false;
    }
    assert.equal(accepted, cut > terminator, `cut to ${cut} of ${bytes.length}`);
  }
});

test("offsets out of the buffer are rejected, naming the field", () => {
  const bytes = buffer({ name: "abc" });
  const root = new DataView(bytes.buffer).getUint32(0, true);
  const corrupt = bytes.slice();
  new DataView(corrupt.buffer).setUint32(0, bytes.length + 4, true);
  rejects(corrupt, "out_of_bounds", "T");
  // The string's offset, wherever the field sits: make it point far away.
  const t = new ByteBuffer(bytes);
  const field = root + t.__offset(root, 6);
  const far = bytes.slice();
  new DataView(far.buffer).setUint32(field, 0x7ffffff0, true);
  const error = rejects(far, "out_of_bounds", "T.name");
  assert.match(error.detail, /outside the buffer of \d+ bytes/);
  // The vtable offset.
  const vt = bytes.slice();
  new DataView(vt.buffer).setInt32(root, -1000, true);
  rejects(vt, "bad_vtable_offset", "T");
});

test("strings must be UTF-8 and end with a 0", () => {
  const bytes = buffer({ name: "abcd" });
  const at = find(bytes, [0x61, 0x62, 0x63, 0x64]);
  const bad = bytes.slice();
  bad[at + 2] = 0xff;
  const error = rejects(bad, "bad_utf8", "T.name");
  assert.equal(error.detail, "string is not valid UTF-8 at byte 2 of 4");
  assert.equal(error.position, at + 2);
  const surrogate = bytes.slice();
  surrogate.set([0xed, 0xa0, 0x80], at); // U+D800 encoded, which UTF-8 forbids
  rejects(surrogate, "bad_utf8", "T.name");
  const unterminated = bytes.slice();
  unterminated[at + 4] = 0x21;
  rejects(unterminated, "missing_terminator", "T.name");
});

test("required fields must be present", () => {
  const error = rejects(buffer({ name: null }), "missing_required", "T.name");
  assert.equal(error.message, "T.name: required field `name` is missing");
  rejects(buffer({ child: table({ name: null }) }), "missing_required", "T.child.name");
  rejects(buffer({ u: [1, table({ name: null })] }), "missing_required", "T.u(T).name");
  rejects(buffer({ many: [[2, text("ok")], [1, table({ name: null })]] }), "missing_required", "T.many[1](T).name");
});

test("unions: tag and value go together, and values verify as their tag says", () => {
  verify(buffer({ u: [9, text("a newer schema's variant")] }));
  // A value without a tag: the tag field (slot 12) set to 0 is absent to the builder, so
  // write the union and then clear the tag's vtable entry.
  const bytes = buffer({ u: [2, text("x")] });
  const root = new DataView(bytes.buffer).getUint32(0, true);
  const vtable = root - new DataView(bytes.buffer).getInt32(root, true);
  const untagged = bytes.slice();
  new DataView(untagged.buffer).setUint16(vtable + 12, 0, true);
  rejects(untagged, "inconsistent_union", "T.u");
  const valueless = bytes.slice();
  new DataView(valueless.buffer).setUint16(vtable + 14, 0, true);
  rejects(valueless, "inconsistent_union", "T.u");
  // A table variant read as a string: its bytes are not a string.
  const wrong = bytes.slice();
  const tag = root + new DataView(bytes.buffer).getUint16(vtable + 12, true);
  wrong[tag] = 1;
  assert.throws(() => verify(wrong), (e: unknown) => e instanceof VerifyError && e.path.startsWith("T.u(T)"));
  // A required union must hold a variant the schema names.
  rejects(buffer({ u: [9, text("?")] }), "unknown_variant", "T.u", undefined, checkRequiredU);
  rejects(buffer({}), "missing_required", "T.u", undefined, checkRequiredU);
});

test("vectors of unions need as many tags as values", () => {
  const bytes = buffer({ many: [[2, text("a")], [2, text("b")]] });
  verify(bytes);
  const at = find(bytes, [2, 0, 0, 0, 2, 2]);
  const short = bytes.slice();
  short[at] = 1;
  rejects(short, "inconsistent_union", "T.many");
});

test("nested flatbuffers verify as buffers of their root type", () => {
  const inner = buffer({ name: "inner" });
  verify(buffer({ bytes: inner }));
  const bad = inner.slice();
  bad[find(bad, [0x69, 0x6e, 0x6e])] = 0xc0;
  rejects(buffer({ bytes: bad }), "bad_utf8", "T.bytes<T>.name");
  rejects(buffer({ bytes: new Uint8Array([1, 2]) }), "out_of_bounds", "T.bytes<T>");
});

test("alignment is checked as flatbuffers-rs checks it", () => {
  // An int field at an odd position: the table's vtable says field `n` sits 1 byte in.
  const bytes = buffer({ n: 5 });
  const root = new DataView(bytes.buffer).getUint32(0, true);
  const vtable = root - new DataView(bytes.buffer).getInt32(root, true);
  const odd = bytes.slice();
  new DataView(odd.buffer).setUint16(vtable + 4, 5, true);
  const error = rejects(odd, "unaligned", "T.n");
  assert.equal(error.position, root + 5);
});

test("vtables and field offsets the JavaScript runtime would misread are rejected", () => {
  const bytes = buffer({ n: 5 });
  const root = new DataView(bytes.buffer).getUint32(0, true);
  const vtable = root - new DataView(bytes.buffer).getInt32(root, true);
  const far = bytes.slice();
  new DataView(far.buffer).setUint16(vtable + 4, 0x8000, true);
  rejects(far, "vtable_too_large", "T.n");
});

test("depth, table count and apparent size are bounded", () => {
  let f: Fields = { name: "leaf" };
  for (let i = 0; i < 70; i++) f = { child: table(f) };
  const deep = buffer(f);
  const error = rejects(deep, "too_deep", "T" + ".child".repeat(64));
  assert.match(error.detail, /more than 64 deep/);
  verify(deep, { maxDepth: 100 });
  rejects(buffer({ child: table({ child: table({}) }) }), "too_many_tables", "T.child.child", { maxTables: 2 });
  const long = buffer({ name: "x", list: Array.from({ length: 1000 }, (_, i) => i) });
  rejects(long, "too_large", "T.list", { maxApparentSize: 2000 });
  verify(long, { maxApparentSize: 5000 });
});

test("a size prefix must fit the buffer", () => {
  const bytes = buffer({ name: "p" }, true);
  verify(bytes, undefined, checkT, true);
  const bad = bytes.slice();
  new DataView(bad.buffer).setUint32(0, bytes.length, true);
  assert.throws(
    () => verify(bad, undefined, checkT, true),
    (e: unknown) => e instanceof VerifyError && e.kind === "bad_size_prefix" && e.path === "T",
  );
});

test("utf8Error agrees with a fatal TextDecoder", () => {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const samples: number[][] = [
    [0x41],
    [0xc2, 0x80],
    [0xc1, 0xbf], // overlong
    [0xe0, 0x9f, 0xbf], // overlong
    [0xe0, 0xa0, 0x80],
    [0xed, 0x9f, 0xbf],
    [0xed, 0xa0, 0x80], // surrogate
    [0xef, 0xbf, 0xbf],
    [0xf0, 0x8f, 0xbf, 0xbf], // overlong
    [0xf0, 0x90, 0x80, 0x80],
    [0xf4, 0x8f, 0xbf, 0xbf],
    [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
    [0xf5, 0x80, 0x80, 0x80],
    [0xe2, 0x82], // cut short
    [0x80],
    [0xff],
  ];
  let seed = 1;
  for (let i = 0; i < 3000; i++) {
    const bytes: number[] = [];
    const n = 1 + (i % 6);
    for (let k = 0; k < n; k++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      const r = seed >>> 16;
      bytes.push(r % 3 === 0 ? 0x80 + (r % 64) : r % 256);
    }
    samples.push(bytes);
  }
  for (const sample of samples) {
    const bytes = new Uint8Array(sample);
    let valid = true;
    try {
      decoder.decode(bytes);
    } catch {
      valid = false;
    }
    assert.equal(utf8Error(bytes, 0, bytes.length) === -1, valid, `for ${JSON.stringify(sample)}`);
  }
});

test("string keys sort in UTF-8 byte order, integer keys are decimal text", () => {
  const words = ["b", "a", "\u{ffff}", "\u{10000}", "ab", "", "\u{e000}"];
  const bytesOf = (s: string) => new TextEncoder().encode(s);
  const byBytes = [...words].sort((x, y) => Buffer.compare(bytesOf(x), bytesOf(y)));
  assert.deepEqual([...words].sort(compareStrings), byBytes);
  assert.deepEqual(
    sortByStringKey(words.map((w) => ({ w })), (x) => x.w).map((x) => x.w),
    byBytes,
  );
  assert.equal(intKey(7, "ushort"), "7");
  assert.equal(intKey(-3n, "long"), "-3");
  assert.equal(intKey(0, "ulong"), "0");
  assert.equal(intKey(2n ** 64n - 1n, "ulong"), "18446744073709551615");
  assert.throws(() => intKey(256, "ubyte"), RangeError);
  assert.throws(() => intKey(-1n, "uint"), RangeError);
  assert.throws(() => intKey(Number.NaN, "int"), RangeError);
});

test("typed arrays view aligned bytes and copy unaligned ones", () => {
  const b = new Builder();
  b.startVector(4, 3, 4);
  for (const x of [3, 2, 1]) b.addInt32(x);
  const vector = b.endVector();
  b.startObject(1);
  b.addFieldOffset(0, vector, 0);
  b.finish(b.endObject());
  const bytes = b.asUint8Array().slice();
  const read = (data: Uint8Array): Int32Array => {
    const bb = new ByteBuffer(data);
    const root = bb.readInt32(0);
    return array(bb, root + bb.__offset(root, 4), Int32Array);
  };
  const aligned = read(bytes);
  assert.deepEqual([...aligned], [1, 2, 3]);
  assert.equal(aligned.buffer, bytes.buffer, "a view of the buffer");
  const shifted = new Uint8Array(bytes.length + 1);
  shifted.set(bytes, 1);
  const copy = read(shifted.subarray(1));
  assert.deepEqual([...copy], [1, 2, 3]);
  assert.notEqual(copy.buffer, shifted.buffer, "a copy");
});
