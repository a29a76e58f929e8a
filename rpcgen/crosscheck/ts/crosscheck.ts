/**
 * `node out/tests/crosscheck.js <schema> <cases folder>`: the Node side of the TypeScript
 * cross-checks of one corpus schema (see `tests/typescript/main.rs`). Each case folder holds
 * `flatc.bin` (written by `flatc -b`) and `rust.bin` (our Rust's `unpack` → `pack` of it). This
 * writes `ts.bin` (ours), `fts.bin` (flatc's TypeScript) and `ts_fts.bin` (ours, from `fts.bin`)
 * beside them for the Rust side to check, and checks here that
 *
 * - ours reads `flatc.bin` and `rust.bin` into equal objects, field by field;
 * - flatc's TypeScript reads `ts.bin` into an object equal to what it reads from `flatc.bin`;
 * - ours reads `fts.bin`;
 * - every accessor of ours reads each of these buffers without reading outside it.
 *
 * Prints what failed and exits with 1 if anything did.
 */

import assert, { deepStrictEqual } from "node:assert/strict";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { Builder, ByteBuffer } from "flatbuffers";

import { VerifyError } from "@rpcgen/client/verify";

import { schema as lookup, type Packable, type Schema } from "./schemas.js";
import { CheckedBytes, checked, walk } from "./walk.js";

interface FlatcObject {
  pack(builder: Builder): number;
  [field: string]: unknown;
}
interface FlatcReader {
  unpack(): FlatcObject;
}
type FlatcRoot = (bb: ByteBuffer) => FlatcReader;

function pack(object: Packable | FlatcObject, identifier: string | undefined): Uint8Array {
  const builder = new Builder();
  const root = object.pack(builder);
  builder.finish(root, identifier);
  return builder.asUint8Array().slice();
}

/** True for flatc's value of an absent vector: an empty array. */
function isEmpty(value: unknown): boolean {
  return Array.isArray(value) && value.length === 0;
}

async function main(): Promise<number> {
  const [name, dir] = process.argv.slice(2);
  if (name === undefined || dir === undefined) throw new Error("usage: crosscheck.js <schema> <cases folder>");
  const s: Schema = lookup(name);
  let flatcRead: ((bytes: Uint8Array) => FlatcObject) | undefined;
  if (s.flatcModule !== undefined && s.flatcRoot !== undefined) {
    const flatcModule = (await import(new URL(`../flatc/${s.flatcModule}`, import.meta.url).href)) as Record<
      string,
      Record<string, unknown>
    >;
    const getRoot = flatcModule[s.flatcRoot]?.[`getRootAs${s.flatcRoot}`];
    if (typeof getRoot !== "function") throw new Error(`flatc's ${s.flatcModule} has no ${s.flatcRoot}`);
    flatcRead = (bytes: Uint8Array): FlatcObject => (getRoot as FlatcRoot)(new ByteBuffer(bytes)).unpack();
  }

  const failures: string[] = [];
  const check = (what: string, f: () => void): void => {
    try {
      f();
    } catch (e) {
      failures.push(`${name}/${what}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  const cases = readdirSync(dir).sort();
  for (const c of cases) {
    const at = (file: string): string => join(dir, c, file);
    const flatcBytes = new Uint8Array(readFileSync(at("flatc.bin")));
    const rustBytes = new Uint8Array(readFileSync(at("rust.bin")));

    const fromFlatc = s.ours.fromBytes(flatcBytes).unpack();
    check(`${c}: ours reads rust.bin as it reads flatc.bin`, () => {
      deepStrictEqual(s.ours.fromBytes(rustBytes).unpack(), fromFlatc);
    });

    const tsBytes = pack(fromFlatc, s.identifier);
    writeFileSync(at("ts.bin"), tsBytes);
    const readable = [["flatc.bin", flatcBytes], ["rust.bin", rustBytes], ["ts.bin", tsBytes]] as [string, Uint8Array][];
    if (flatcRead !== undefined) readable.push(...flatcChecks(c, flatcRead, flatcBytes, tsBytes));
    for (const [file, bytes] of readable) {
      check(`${c}: every accessor reads ${file} inside its bounds`, () => {
        const buffer = CheckedBytes.of_(bytes);
        checked(() => walk(s.ours.fromBytes(buffer)));
      });
    }
  }
  for (const failure of failures) console.error(failure);
  console.log(`${name}: ${cases.length} cases, ${failures.length} failures`);
  return failures.length === 0 ? 0 : 1;

  /** The checks with flatc's TypeScript; returns `fts.bin` to walk, unless it is invalid. */
  function flatcChecks(
    c: string,
    flatcRead: (bytes: Uint8Array) => FlatcObject,
    flatcBytes: Uint8Array,
    tsBytes: Uint8Array,
  ): [string, Uint8Array][] {
    const at = (file: string): string => join(dir!, c, file);
    check(`${c}: flatc's TypeScript reads ts.bin as it reads flatc.bin`, () => {
      const expected = flatcRead(flatcBytes);
      const actual = flatcRead(tsBytes);
      for (const [field, value] of Object.entries(s.writtenDefaults ?? {})) {
        if (expected[field] === null && actual[field] === value) actual[field] = null;
      }
      deepStrictEqual(actual, expected);
    });

    const flatcObject = flatcRead(flatcBytes);
    const ftsBytes = pack(flatcObject, s.identifier);
    writeFileSync(at("fts.bin"), ftsBytes);
    const invalid = s.ftsInvalid;
    const ftsValid = invalid === undefined || !isEmpty(flatcObject[invalid.field]);
    if (ftsValid) {
      check(`${c}: ours reads fts.bin (written by flatc's TypeScript)`, () => {
        writeFileSync(at("ts_fts.bin"), pack(s.ours.fromBytes(ftsBytes).unpack(), s.identifier));
      });
    } else {
      check(`${c}: ours rejects fts.bin at ${invalid.path}, because ${invalid.why}`, () => {
        assert.throws(() => s.ours.verify(ftsBytes), (e: unknown) => e instanceof VerifyError && e.path === invalid.path);
        writeFileSync(at("fts.rejected"), `${invalid.path}: ${invalid.why}\n`);
      });
    }

    return ftsValid ? [["fts.bin", ftsBytes]] : [];
  }
}

process.exitCode = await main();
