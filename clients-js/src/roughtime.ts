/**
 * Roughtime (RFC 10049) response verification for browsers and Node, with the platform's
 * cryptography (Web Crypto's Ed25519 and SHA-512, and Node's own SHA-512 in Node; nothing of it
 * is written here).
 *
 * A response is valid for a request when (§5.4): the delegation in CERT is signed by the
 * server's long-term key, MIDP lies in the delegation's MINT..=MAXT, the request is in the
 * Merkle tree whose root the SREP holds (the §5.3.1 check, leftover INDX bits zero), and the
 * SREP is signed by the delegated key; and it answers this request (its NONC is the request's,
 * its version one the request offered and VERS lists).
 *
 * `examples.roughtime.Roughtime.time` through the gateway returns the request the service made
 * for a nonce and the response: check the request's nonce is yours (`nonce` below), then
 * verify.
 */

import { concat, digest, equal } from "./bytes.js";

/** What a valid response says. MIDP and the delegation window are seconds since 1970. */
export interface RoughtimeTime {
  /** The version number: 1, or `0x8000000c` (the drafts). */
  readonly version: number;
  readonly midp: bigint;
  /** The true time was within `midp ± radius` seconds. */
  readonly radius: number;
  readonly mint: bigint;
  readonly maxt: bigint;
}

/** Why a response is not valid. `check` names the failed check. */
export class RoughtimeError extends Error {
  constructor(
    readonly check: string,
    message: string,
  ) {
    super(message);
    this.name = "RoughtimeError";
  }
}

const MAGIC = new TextEncoder().encode("ROUGHTIM");

function tag(name: string): number {
  const bytes = new Uint8Array(4);
  bytes.set(new TextEncoder().encode(name));
  return new DataView(bytes.buffer).getUint32(0, true);
}

const TAGS = {
  SIG: tag("SIG"),
  VER: tag("VER"),
  NONC: tag("NONC"),
  DELE: tag("DELE"),
  TYPE: tag("TYPE"),
  PATH: tag("PATH"),
  RADI: tag("RADI"),
  PUBK: tag("PUBK"),
  MIDP: tag("MIDP"),
  SREP: tag("SREP"),
  VERS: tag("VERS"),
  MINT: tag("MINT"),
  ROOT: tag("ROOT"),
  CERT: tag("CERT"),
  MAXT: tag("MAXT"),
  INDX: tag("INDX"),
} as const;

/** The signature context strings (with their zero byte) by version. */
function contexts(version: number): { delegation: Uint8Array; response: Uint8Array } | undefined {
  const name = version === 1 ? "Roughtime" : version === 0x8000000c ? "RoughTime" : undefined;
  if (name === undefined) return undefined;
  const encode = (s: string) => new TextEncoder().encode(`${name} v1 ${s} signature\0`);
  return { delegation: encode("delegation"), response: encode("response") };
}

function u32(bytes: Uint8Array, at: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(at, true);
}

/** A packet's message, after the `ROUGHTIM` header and an exact length. */
function unframe(what: string, packet: Uint8Array): Uint8Array {
  if (packet.length < 12 || !MAGIC.every((b, i) => packet[i] === b)) {
    throw new RoughtimeError("format", `the ${what} is not a Roughtime packet`);
  }
  if (u32(packet, 8) !== packet.length - 12) {
    throw new RoughtimeError("format", `the ${what}'s length field does not match its size`);
  }
  return packet.subarray(12);
}

/** A message's values by tag, checking the §4.2 rules. */
function parse(what: string, bytes: Uint8Array): Map<number, Uint8Array> {
  const bad = (why: string) => new RoughtimeError("format", `the ${what} is not a Roughtime message: ${why}`);
  if (bytes.length < 4) throw bad("too short");
  const n = u32(bytes, 0);
  if (n === 0 || n * 8 > bytes.length) throw bad(`${n} tags do not fit in ${bytes.length} bytes`);
  const values = bytes.subarray(8 * n);
  const offsets = [0];
  for (let i = 1; i < n; i++) {
    const offset = u32(bytes, 4 * i);
    if (offset % 4 !== 0 || offset < offsets[i - 1]! || offset > values.length) throw bad(`offset ${i}`);
    offsets.push(offset);
  }
  const out = new Map<number, Uint8Array>();
  let previous = -1;
  for (let i = 0; i < n; i++) {
    const t = u32(bytes, 4 * n + 4 * i);
    if (t <= previous) throw bad("tags not in ascending order");
    previous = t;
    out.set(t, values.subarray(offsets[i]!, i + 1 < n ? offsets[i + 1]! : values.length));
  }
  return out;
}

function get(what: string, message: Map<number, Uint8Array>, name: keyof typeof TAGS, size?: number): Uint8Array {
  const value = message.get(TAGS[name]);
  if (value === undefined) throw new RoughtimeError("format", `the ${what} has no ${name}`);
  if (size !== undefined && value.length !== size) {
    throw new RoughtimeError("format", `${name} has ${value.length} bytes, not ${size}`);
  }
  return value;
}

/** The first 32 bytes of SHA-512. */
async function hash(...parts: Uint8Array[]): Promise<Uint8Array> {
  return (await digest("SHA-512", ...parts)).subarray(0, 32);
}

/** At most this many entries in each cache below; the oldest is forgotten first. */
const CACHED = 256;

function remember<V>(cache: Map<string, V>, key: string, value: V): V {
  cache.set(key, value);
  if (cache.size > CACHED) cache.delete(cache.keys().next().value!);
  return value;
}

function binary(bytes: Uint8Array): string {
  return String.fromCharCode(...bytes);
}

/**
 * Signatures found valid, by signature, with the key and message they were checked against.
 * Ed25519 verification is a function of those three, so the same bytes verify the same way
 * again: the responses of one batch share their SREP and its signature, and every response under
 * one online key shares its certificate, so a client asking often verifies few signatures. Only
 * successes are kept.
 */
const validSignatures = new Map<string, { key: Uint8Array; message: Uint8Array }>();
const importedKeys = new Map<string, Promise<CryptoKey>>();

async function signedBy(key: Uint8Array, context: Uint8Array, value: Uint8Array, signature: Uint8Array): Promise<boolean> {
  const message = concat(context, value);
  const known = validSignatures.get(binary(signature));
  if (known !== undefined && equal(known.key, key) && equal(known.message, message)) return true;
  try {
    const { subtle } = globalThis.crypto;
    // Copies: Web Crypto takes buffers it may not share (not views of a SharedArrayBuffer).
    const imported =
      importedKeys.get(binary(key)) ??
      remember(importedKeys, binary(key), subtle.importKey("raw", new Uint8Array(key), { name: "Ed25519" }, false, ["verify"]));
    const valid = await subtle.verify({ name: "Ed25519" }, await imported, new Uint8Array(signature), message);
    if (valid) remember(validSignatures, binary(signature), { key: key.slice(), message });
    return valid;
  } catch {
    return false;
  }
}

/**
 * Verifies `response` as the answer to `request` (both whole packets) from the server whose
 * long-term Ed25519 public key is `publicKey` (32 bytes). With `nonce`, also checks the request
 * carries it. Resolves to the time; rejects with a {@link RoughtimeError}.
 */
export async function verifyRoughtime(
  request: Uint8Array,
  response: Uint8Array,
  publicKey: Uint8Array,
  nonce?: Uint8Array,
): Promise<RoughtimeTime> {
  const sent = parse("request", unframe("request", request));
  const got = parse("response", unframe("response", response));
  if (!equal(get("response", got, "TYPE", 4), new Uint8Array([1, 0, 0, 0]))) {
    throw new RoughtimeError("type", "TYPE is not 1: not a response");
  }
  const sentNonce = get("request", sent, "NONC", 32);
  if (nonce !== undefined && !equal(sentNonce, nonce)) {
    throw new RoughtimeError("nonce", "the request does not carry this nonce");
  }
  if (!equal(get("response", got, "NONC", 32), sentNonce)) {
    throw new RoughtimeError("nonce", "the response's NONC is not the request's");
  }
  const srepBytes = get("response", got, "SREP");
  const srep = parse("SREP", srepBytes);
  const version = u32(get("SREP", srep, "VER", 4), 0);
  const context = contexts(version);
  if (context === undefined) throw new RoughtimeError("version", `unknown version ${version.toString(16)}`);
  const offered = get("request", sent, "VER");
  const vers = get("SREP", srep, "VERS");
  const list = (bytes: Uint8Array) => Array.from({ length: bytes.length / 4 }, (_, i) => u32(bytes, 4 * i));
  if (!list(offered).includes(version)) throw new RoughtimeError("version", "the response's version was not offered");
  const listed = list(vers);
  if (vers.length % 4 !== 0 || listed.length > 32 || !listed.includes(version) || listed.some((v, i) => i > 0 && v <= listed[i - 1]!)) {
    throw new RoughtimeError("version", "VERS does not list the version in ascending order");
  }
  const radius = u32(get("SREP", srep, "RADI", 4), 0);
  if (radius === 0) throw new RoughtimeError("radius", "RADI is 0");
  const u64 = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  const midp = u64(get("SREP", srep, "MIDP", 8));
  const root = get("SREP", srep, "ROOT", 32);

  const cert = parse("CERT", get("response", got, "CERT"));
  const deleBytes = get("CERT", cert, "DELE");
  if (publicKey.length !== 32 || !(await signedBy(publicKey, context.delegation, deleBytes, get("CERT", cert, "SIG", 64)))) {
    throw new RoughtimeError("delegation", "the delegation is not signed by the long-term key");
  }
  const dele = parse("DELE", deleBytes);
  const online = get("DELE", dele, "PUBK", 32);
  const mint = u64(get("DELE", dele, "MINT", 8));
  const maxt = u64(get("DELE", dele, "MAXT", 8));
  if (midp < mint || midp > maxt) {
    throw new RoughtimeError("window", `MIDP ${midp} is outside the delegation's ${mint}..=${maxt}`);
  }
  if (!(await signedBy(online, context.response, srepBytes, get("response", got, "SIG", 64)))) {
    throw new RoughtimeError("signature", "the response is not signed by the delegated key");
  }

  // §5.3.1: from the request's leaf up the path to the signed root.
  const path = get("response", got, "PATH");
  let index = u32(get("response", got, "INDX", 4), 0);
  if (path.length % 32 !== 0 || path.length / 32 > 32) throw new RoughtimeError("tree", "PATH is not whole hashes");
  let h = await hash(new Uint8Array([0]), request);
  for (let at = 0; at < path.length; at += 32) {
    const sibling = path.subarray(at, at + 32);
    h = index % 2 === 0 ? await hash(new Uint8Array([1]), h, sibling) : await hash(new Uint8Array([1]), sibling, h);
    index = Math.floor(index / 2);
  }
  if (index !== 0 || !equal(h, root)) throw new RoughtimeError("tree", "the request is not in the signed Merkle tree");
  return { version, midp, radius, mint, maxt };
}
