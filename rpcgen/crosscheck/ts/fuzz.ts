/**
 * `node out/tests/fuzz.js <cases folder>`: the verifier's property test. For every corpus root
 * type, buffers made from its valid ones (every `flatc.bin` of `cases/<schema>/*`) by seeded
 * random corruption (bytes and words overwritten with awkward values, cuts, copies of one part
 * over another), and wholly random buffers, go through `verify`. Each must either be rejected
 * with a `VerifyError`, or be accepted and then read with every accessor and `unpack()` (and
 * packed again) without an exception and without a read outside the buffer (see `walk.ts`).
 * Cuts through the root table must be rejected.
 *
 * The seed is fixed and the number of buffers bounded; a failure prints the schema, the case,
 * the seed and the mutation, so it reproduces.
 */

import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

import { VerifyError } from "@rpcgen/client/verify";

import { SCHEMAS } from "./schemas.js";
import { CheckedBytes, checked, walk } from "./walk.js";

/** Mutations per valid buffer, and random buffers per schema. */
const MUTATIONS = 400;
const RANDOM = 200;
const SEED = 0x5eed_2026;

/** mulberry32: a small seeded generator. */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = [0, 1, 3, 4, 8, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];

function mutate(bytes: Uint8Array, random: () => number): { bytes: Uint8Array; what: string } {
  const pick = (n: number): number => Math.floor(random() * n);
  const out = bytes.slice();
  const n = out.length;
  switch (pick(6)) {
    case 0: {
      const count = 1 + pick(4);
      const spots: string[] = [];
      for (let i = 0; i < count && n > 0; i++) {
        const at = pick(n);
        out[at] = pick(256);
        spots.push(`${at}=${out[at]}`);
      }
      return { bytes: out, what: `bytes ${spots.join(",")}` };
    }
    case 1: {
      if (n < 4) return { bytes: out, what: "unchanged" };
      const at = pick(n >> 2) << 2;
      const word = WORDS[pick(WORDS.length)]!;
      new DataView(out.buffer).setUint32(at, word >>> 0, true);
      return { bytes: out, what: `word ${word.toString(16)} at ${at}` };
    }
    case 2: {
      if (n < 2) return { bytes: out, what: "unchanged" };
      const at = pick(n >> 1) << 1;
      const half = [0, 2, 4, 0x7fff, 0x8000, 0xffff][pick(6)]!;
      new DataView(out.buffer).setUint16(at, half, true);
      return { bytes: out, what: `u16 ${half.toString(16)} at ${at}` };
    }
    case 3: {
      const cut = pick(n + 1);
      return { bytes: out.subarray(0, cut), what: `cut to ${cut}` };
    }
    case 4: {
      if (n < 8) return { bytes: out, what: "unchanged" };
      const from = pick(n - 4);
      const to = pick(n - 4);
      const len = 1 + pick(Math.min(16, n - Math.max(from, to)));
      out.copyWithin(to, from, from + len);
      return { bytes: out, what: `${len} bytes from ${from} copied to ${to}` };
    }
    default: {
      const word = pick(2 ** 16) * 4;
      if (n >= 4) new DataView(out.buffer).setUint32(0, word, true);
      return { bytes: out, what: `root offset ${word}` };
    }
  }
}

interface Tally {
  accepted: number;
  rejected: number;
}

function attempt(verify: (b: Uint8Array) => void, read: (b: Uint8Array) => object, bytes: Uint8Array): "accepted" | "rejected" {
  const buffer = CheckedBytes.of_(bytes);
  try {
    verify(buffer);
  } catch (e) {
    if (e instanceof VerifyError) return "rejected";
    throw new Error(`the verifier threw something other than a VerifyError: ${String(e)}`, { cause: e });
  }
  checked(() => walk(read(buffer)));
  return "accepted";
}

function main(): number {
  const dir = process.argv[2];
  if (dir === undefined) throw new Error("usage: fuzz.js <cases folder>");
  const random = generator(SEED);
  const failures: string[] = [];
  for (const [name, s] of Object.entries(SCHEMAS)) {
    const tally: Tally = { accepted: 0, rejected: 0 };
    const verify = (b: Uint8Array): void => s.ours.verify(b);
    const read = (b: Uint8Array): object => s.ours.fromBytes(b);
    const run = (bytes: Uint8Array, what: string): void => {
      try {
        tally[attempt(verify, read, bytes)] += 1;
      } catch (e) {
        failures.push(`${name}: ${what}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      }
    };
    for (const c of readdirSync(join(dir, name)).sort()) {
      const valid = new Uint8Array(readFileSync(join(dir, name, c, "flatc.bin")));
      const root = new DataView(valid.buffer).getUint32(0, true);
      for (let cut = 0; cut < Math.min(valid.length, root + 4); cut++) {
        try {
          if (attempt(verify, read, valid.subarray(0, cut)) === "accepted") {
            failures.push(`${name}/${c}: accepted when cut to ${cut} bytes, through the root table at ${root}`);
          }
        } catch (e) {
          failures.push(`${name}/${c}: cut to ${cut}: ${String(e)}`);
        }
      }
      for (let i = 0; i < MUTATIONS; i++) {
        const { bytes, what } = mutate(valid, random);
        run(bytes, `${c} with ${what} (seed ${SEED.toString(16)}, mutation ${i})`);
      }
    }
    for (let i = 0; i < RANDOM; i++) {
      const bytes = new Uint8Array(Math.floor(random() * 128));
      for (let k = 0; k < bytes.length; k++) bytes[k] = Math.floor(random() * 256);
      run(bytes, `random buffer ${i} (seed ${SEED.toString(16)})`);
    }
    console.log(`${name}: ${tally.accepted} corrupted buffers accepted and read, ${tally.rejected} rejected`);
    if (tally.accepted === 0) failures.push(`${name}: no corrupted buffer was accepted, so reading was never tested`);
  }
  for (const failure of failures.slice(0, 40)) console.error(failure);
  if (failures.length > 40) console.error(`... and ${failures.length - 40} more failures`);
  return failures.length === 0 ? 0 : 1;
}

process.exitCode = main();
