/**
 * The mailbox relay's statements, checked on the client (docs/mailbox.md): sequence ids, the
 * hashes, signed attestations and receipts, a device's verifier of its deliveries and its chain,
 * and proofs of the relay's misbehaviour — found among several parties' statements, and checked
 * by anyone with the shards' public keys. The same rules as the Rust crate `mailbox`, reaching
 * the same verdicts on its vectors (`mailbox-vectors`).
 *
 * Cryptography is the platform's: Web Crypto's Ed25519, and SHA-256 (Node's own in Node).
 */

import { concat, digest, equal } from "./bytes.js";

/** A message's sequence id: epoch, the shard that took its bundle in, its index there. */
export interface SeqId {
  readonly epoch: bigint;
  readonly shard: number;
  readonly index: number;
}

/** A message as a device receives it. */
export interface Delivered {
  readonly id: SeqId;
  readonly bundle: SeqId;
  /** The bundle's recipient list, in the sender's order. */
  readonly recipients: readonly string[];
  readonly common: Uint8Array;
  readonly part: Uint8Array;
}

/** One message as an attestation lists it. */
export interface Entry {
  readonly id: SeqId;
  readonly bundle: SeqId;
  readonly recipients: Uint8Array;
  readonly common: Uint8Array;
  readonly part: Uint8Array;
}

export interface Attestation {
  readonly kind: "attestation";
  readonly shard: number;
  readonly device: string;
  readonly fromEpoch: bigint;
  readonly toEpoch: bigint;
  readonly prev: Uint8Array;
  readonly entries: readonly Entry[];
}

export interface Receipt {
  readonly kind: "receipt";
  readonly shard: number;
  readonly bundle: SeqId;
  readonly recipients: Uint8Array;
  readonly common: Uint8Array;
  readonly count: number;
}

export type Statement = Attestation | Receipt;

/** A statement as signed: its bytes, then its leaf index in the batch it was signed in (u32),
 *  the path to the batch's root (a depth, u8, then that many sibling hashes), then the shard's
 *  Ed25519 signature over the root. */
export interface Signed {
  readonly statement: Statement;
  /** All of it. */
  readonly bytes: Uint8Array;
  /** The length of the statement's own bytes. */
  readonly bodyLength: number;
}

/** The shards' Ed25519 public keys (32 bytes each). */
export type KeyRing = ReadonlyMap<number, Uint8Array>;

/** Bytes that are not a statement. */
export class MailboxFormatError extends Error {
  override name = "MailboxFormatError";
}

// --- ids ---------------------------------------------------------------------------------

/** The 16-byte form of an id: epoch (u64), shard (u32), index (u32), big-endian. */
export function seqIdBytes(id: SeqId): Uint8Array {
  const bytes = new Uint8Array(16);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, id.epoch);
  view.setUint32(8, id.shard);
  view.setUint32(12, id.index);
  return bytes;
}

/** Reads the id at `offset` of `bytes`. */
export function readSeqId(bytes: Uint8Array, offset = 0): SeqId {
  if (bytes.length - offset < 16) throw new MailboxFormatError(`a sequence id is 16 bytes; ${bytes.length - offset} left`);
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, 16);
  return { epoch: view.getBigUint64(0), shard: view.getUint32(8), index: view.getUint32(12) };
}

export function compareSeqIds(a: SeqId, b: SeqId): number {
  if (a.epoch !== b.epoch) return a.epoch < b.epoch ? -1 : 1;
  if (a.shard !== b.shard) return a.shard < b.shard ? -1 : 1;
  return a.index === b.index ? 0 : a.index < b.index ? -1 : 1;
}

const sameId = (a: SeqId, b: SeqId) => compareSeqIds(a, b) === 0;

/** Where `id` stands in the bundle named `bundle`, or undefined if it is not one of its ids. */
export function positionIn(id: SeqId, bundle: SeqId): number | undefined {
  return id.epoch === bundle.epoch && id.shard === bundle.shard && id.index >= bundle.index ? id.index - bundle.index : undefined;
}

function offset(bundle: SeqId, by: number): SeqId | undefined {
  const index = bundle.index + by;
  return index <= 0xffff_ffff ? { ...bundle, index } : undefined;
}

const idKey = (id: SeqId) => `${id.epoch}.${id.shard}.${id.index}`;

// --- hashes ------------------------------------------------------------------------------

const encoder = new TextEncoder();
const RECIPIENTS = encoder.encode("rpcgen mailbox recipients v1\0");
const COMMON = encoder.encode("rpcgen mailbox common v1\0");
const PART = encoder.encode("rpcgen mailbox part v1\0");
const STATEMENT = encoder.encode("rpcgen mailbox statement v1\0");
const NODE = encoder.encode("rpcgen mailbox node v1\0");
const ROOT = encoder.encode("rpcgen mailbox root v1\0");

const sha256 = (...parts: Uint8Array[]) => digest("SHA-256", ...parts);

function u16(n: number): Uint8Array {
  return new Uint8Array([n >>> 8, n & 0xff]);
}

function u32(n: number): Uint8Array {
  return new Uint8Array([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
}

/** The hash of a recipient list, in the sender's order. */
export function recipientsHash(recipients: readonly string[]): Promise<Uint8Array> {
  const parts: Uint8Array[] = [RECIPIENTS, u32(recipients.length)];
  for (const device of recipients) {
    const bytes = encoder.encode(device);
    if (bytes.length > 0xffff) throw new RangeError("a device id is at most 65,535 bytes");
    parts.push(u16(bytes.length), bytes);
  }
  return sha256(...parts);
}

export const commonHash = (common: Uint8Array) => sha256(COMMON, common);
export const partHash = (part: Uint8Array) => sha256(PART, part);
/** The hash of a signed statement's bytes without the signature: what the device's next
 *  attestation names as `prev`. */
export const statementHash = (signed: Signed) => sha256(STATEMENT, body(signed));

/** The entry an attestation lists for `message`. */
export async function entryOf(message: Delivered): Promise<Entry> {
  return {
    id: message.id,
    bundle: message.bundle,
    recipients: await recipientsHash(message.recipients),
    common: await commonHash(message.common),
    part: await partHash(message.part),
  };
}

// --- statements --------------------------------------------------------------------------

const ATTESTATION = "MBXATT01";
const RECEIPT = "MBXRCP01";
const ENTRY_LENGTH = 128;

const body = (signed: Signed) => signed.bytes.subarray(0, signed.bodyLength);

class Reader {
  at = 0;
  constructor(private readonly bytes: Uint8Array) {}
  take(n: number, what: string): Uint8Array {
    if (this.bytes.length - this.at < n) {
      throw new MailboxFormatError(`${what}: expected ${n} bytes, found ${this.bytes.length - this.at}`);
    }
    const out = this.bytes.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
  view(n: number, what: string): DataView {
    const bytes = this.take(n, what);
    return new DataView(bytes.buffer, bytes.byteOffset, n);
  }
  u16 = (what: string) => this.view(2, what).getUint16(0);
  u32 = (what: string) => this.view(4, what).getUint32(0);
  u64 = (what: string) => this.view(8, what).getBigUint64(0);
  id = (what: string) => readSeqId(this.take(16, what));
  left = () => this.bytes.length - this.at;
}

/** Reads a statement's bytes (without signature), exactly. */
export function decodeStatement(bytes: Uint8Array): Statement {
  const [statement, length] = decodePrefix(bytes);
  if (length !== bytes.length) throw new MailboxFormatError(`${bytes.length - length} bytes follow the statement`);
  return statement;
}

/** The statement at the start of `bytes`, and its length. */
function decodePrefix(bytes: Uint8Array): [Statement, number] {
  const r = new Reader(bytes);
  const magic = String.fromCharCode(...r.take(8, "the magic"));
  let statement: Statement;
  if (magic === ATTESTATION) {
    const shard = r.u32("the shard");
    const fromEpoch = r.u64("from_epoch");
    const toEpoch = r.u64("to_epoch");
    const prev = r.take(32, "prev").slice();
    const length = r.u16("the device id's length");
    let device: string;
    try {
      device = new TextDecoder("utf-8", { fatal: true }).decode(r.take(length, "the device id"));
    } catch (e) {
      if (e instanceof MailboxFormatError) throw e;
      throw new MailboxFormatError("the device id is not UTF-8");
    }
    const count = r.u32("the entry count");
    if (r.left() < count * ENTRY_LENGTH) {
      throw new MailboxFormatError(`the entries: expected ${count * ENTRY_LENGTH} bytes, found ${r.left()}`);
    }
    const entries: Entry[] = [];
    for (let i = 0; i < count; i++) {
      entries.push({
        id: r.id("an id"),
        bundle: r.id("a bundle"),
        recipients: r.take(32, "a recipients hash").slice(),
        common: r.take(32, "a common hash").slice(),
        part: r.take(32, "a part hash").slice(),
      });
    }
    statement = { kind: "attestation", shard, device, fromEpoch, toEpoch, prev, entries };
  } else if (magic === RECEIPT) {
    statement = {
      kind: "receipt",
      shard: r.u32("the shard"),
      bundle: r.id("the bundle"),
      recipients: r.take(32, "the recipients hash").slice(),
      common: r.take(32, "the common hash").slice(),
      count: r.u32("the count"),
    };
  } else {
    throw new MailboxFormatError(`not a statement: the magic is ${JSON.stringify(magic)}`);
  }
  return [statement, r.at];
}

/** Reads a signed statement (the signature is checked by {@link verifySigned}). */
export function decodeSigned(bytes: Uint8Array): Signed {
  const [statement, bodyLength] = decodePrefix(bytes);
  const rest = bytes.length - bodyLength;
  if (rest < 5) throw new MailboxFormatError(`the index and depth: expected 5 bytes, found ${rest}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset + bodyLength, 5);
  const [index, depth] = [view.getUint32(0), view.getUint8(4)];
  if (depth > 32 || (depth < 32 && index >= 2 ** depth)) {
    throw new MailboxFormatError(`leaf ${index} is not in a tree of depth ${depth} (at most 32)`);
  }
  const expected = 5 + 32 * depth + 64;
  if (rest !== expected) throw new MailboxFormatError(`the path and signature: expected ${expected} bytes, found ${rest}`);
  return { statement, bytes: bytes.slice(), bodyLength };
}

/** The root of the batch's tree a signed statement belongs to, from its leaf and path. */
export async function rootOf(signed: Signed): Promise<Uint8Array> {
  const trailer = signed.bytes.subarray(signed.bodyLength);
  const view = new DataView(trailer.buffer, trailer.byteOffset, 5);
  const [index, depth] = [view.getUint32(0), view.getUint8(4)];
  let node = await statementHash(signed);
  for (let level = 0; level < depth; level++) {
    const sibling = trailer.subarray(5 + 32 * level, 5 + 32 * (level + 1));
    node = Math.floor(index / 2 ** level) % 2 === 0 ? await sha256(NODE, node, sibling) : await sha256(NODE, sibling, node);
  }
  return node;
}

const importedKeys = new Map<string, Promise<CryptoKey>>();

/** Whether the signature over the statement's root is the named shard's. */
export async function verifySigned(signed: Signed, keys: KeyRing): Promise<boolean> {
  const key = keys.get(signed.statement.shard);
  if (key === undefined) return false;
  try {
    const { subtle } = globalThis.crypto;
    const name = String.fromCharCode(...key);
    let imported = importedKeys.get(name);
    if (imported === undefined) {
      imported = subtle.importKey("raw", new Uint8Array(key), { name: "Ed25519" }, false, ["verify"]);
      importedKeys.set(name, imported);
    }
    const signature = new Uint8Array(signed.bytes.subarray(signed.bytes.length - 64));
    return await subtle.verify({ name: "Ed25519" }, await imported, signature, concat(ROOT, await rootOf(signed)));
  } catch {
    return false;
  }
}

/** The rule a statement breaks, if any (docs/mailbox.md: every honest one keeps them all). */
export function brokenRule(statement: Statement): string | undefined {
  if (statement.kind === "receipt") {
    if (statement.count === 0) return "a bundle has no recipients";
    if (offset(statement.bundle, statement.count - 1) === undefined) return "the bundle's ids run past the last index";
    if (statement.bundle.shard !== statement.shard) return "the bundle was numbered by another shard";
    return undefined;
  }
  if (statement.device === "") return "the device id is empty";
  if (statement.fromEpoch > statement.toEpoch) return "the epoch range is empty (from after to)";
  let last: SeqId | undefined;
  for (const entry of statement.entries) {
    if (last !== undefined && compareSeqIds(entry.id, last) <= 0) return "ids are not strictly increasing";
    last = entry.id;
    if (entry.id.epoch < statement.fromEpoch || entry.id.epoch > statement.toEpoch) return "an id's epoch is outside the range";
    if (positionIn(entry.id, entry.bundle) === undefined) return "an id is not one of its bundle's ids";
  }
  const bundles = new Set(statement.entries.map((e) => idKey(e.bundle)));
  if (bundles.size !== statement.entries.length) return "two messages of one bundle";
  return undefined;
}

const covers = (a: Attestation, epoch: bigint) => a.fromEpoch <= epoch && epoch <= a.toEpoch;

// --- proofs ------------------------------------------------------------------------------

/** Signed statements that cannot all be true (docs/mailbox.md, "Proofs"). */
export type Proof =
  | { readonly kind: "an invalid statement"; readonly statement: Signed }
  | { readonly kind: "a forked chain"; readonly a: Signed; readonly b: Signed }
  | { readonly kind: "a broken chain"; readonly a: Signed; readonly b: Signed }
  | { readonly kind: "skipped epochs"; readonly a: Signed; readonly b: Signed }
  | { readonly kind: "conflicting statements"; readonly a: Signed; readonly b: Signed; readonly id: SeqId }
  | {
      readonly kind: "an omitted message";
      readonly a: Signed;
      readonly recipients: readonly string[];
      readonly b: Signed;
      readonly bundle: SeqId;
    };

function attestation(signed: Signed): Attestation | undefined {
  return signed.statement.kind === "attestation" ? signed.statement : undefined;
}

interface BundleFact {
  recipients: Uint8Array;
  common: Uint8Array;
  count?: number;
  position?: number;
}

function bundleFacts(signed: Signed, bundle: SeqId): BundleFact[] {
  const s = signed.statement;
  if (s.kind === "receipt") {
    return sameId(s.bundle, bundle) ? [{ recipients: s.recipients, common: s.common, count: s.count }] : [];
  }
  return s.entries
    .filter((e) => sameId(e.bundle, bundle))
    .map((e) => ({ recipients: e.recipients, common: e.common, position: positionIn(e.id, e.bundle) }));
}

function entryEqual(x: Entry, y: Entry): boolean {
  return (
    sameId(x.id, y.id) &&
    sameId(x.bundle, y.bundle) &&
    equal(x.recipients, y.recipients) &&
    equal(x.common, y.common) &&
    equal(x.part, y.part)
  );
}

function conflict(a: Signed, b: Signed, id: SeqId): boolean {
  const withId = (s: Signed) => {
    const x = attestation(s);
    return x ? x.entries.filter((e) => sameId(e.id, id)).map((e) => ({ device: x.device, e })) : [];
  };
  for (const x of withId(a)) {
    for (const y of withId(b)) {
      if (x.device !== y.device || !entryEqual(x.e, y.e)) return true;
    }
  }
  const beyond = (fact: BundleFact, count: number | undefined) =>
    fact.position !== undefined && count !== undefined && fact.position >= count;
  for (const x of bundleFacts(a, id)) {
    for (const y of bundleFacts(b, id)) {
      if (!equal(x.recipients, y.recipients) || !equal(x.common, y.common)) return true;
      if (beyond(x, y.count) || beyond(y, x.count)) return true;
    }
  }
  return false;
}

async function omission(a: Signed, recipients: readonly string[], b: Signed, bundle: SeqId): Promise<boolean> {
  const hash = await recipientsHash(recipients);
  const fact = bundleFacts(a, bundle).find((f) => equal(f.recipients, hash));
  if (fact === undefined) return false;
  if (fact.count !== undefined && fact.count !== recipients.length) return false;
  const attested = attestation(b);
  if (attested === undefined || !covers(attested, bundle.epoch)) return false;
  return recipients.some((device, position) => {
    const id = offset(bundle, position);
    return device === attested.device && id !== undefined && !attested.entries.some((e) => sameId(e.id, id));
  });
}

/** Why a proof does not prove anything, or undefined when it holds. Needs only the keys. */
export async function checkProof(proof: Proof, keys: KeyRing): Promise<string | undefined> {
  const signedAll = async (...s: Signed[]) => (await Promise.all(s.map((x) => verifySigned(x, keys)))).every(Boolean);
  const sameDevice = async (a: Signed, b: Signed) => {
    if (!(await signedAll(a, b))) return "a signature does not verify";
    const [x, y] = [attestation(a), attestation(b)];
    if (!x || !y) return "both must be attestations";
    if (x.device !== y.device) return "they are for different devices";
    return [x, y] as const;
  };
  switch (proof.kind) {
    case "an invalid statement":
      if (!(await signedAll(proof.statement))) return "a signature does not verify";
      return brokenRule(proof.statement.statement) === undefined ? "it breaks no rule" : undefined;
    case "a forked chain": {
      const pair = await sameDevice(proof.a, proof.b);
      if (typeof pair === "string") return pair;
      const [x, y] = pair;
      if (x.toEpoch < y.fromEpoch || y.toEpoch < x.fromEpoch) return "their epochs do not overlap";
      return equal(body(proof.a), body(proof.b)) ? "they are the same statement" : undefined;
    }
    case "a broken chain": {
      const pair = await sameDevice(proof.a, proof.b);
      if (typeof pair === "string") return pair;
      const [x, y] = pair;
      if (x.toEpoch + 1n !== y.fromEpoch) return "the second does not start where the first ends";
      return equal(y.prev, await statementHash(proof.a)) ? "the second names the first as its predecessor" : undefined;
    }
    case "skipped epochs": {
      const pair = await sameDevice(proof.a, proof.b);
      if (typeof pair === "string") return pair;
      const [x, y] = pair;
      if (!equal(y.prev, await statementHash(proof.a))) return "the second does not name the first";
      return x.toEpoch + 1n === y.fromEpoch ? "the second starts where the first ends" : undefined;
    }
    case "conflicting statements":
      if (!(await signedAll(proof.a, proof.b))) return "a signature does not verify";
      return conflict(proof.a, proof.b, proof.id) ? undefined : "they agree about the id";
    case "an omitted message":
      if (!(await signedAll(proof.a, proof.b))) return "a signature does not verify";
      return (await omission(proof.a, proof.recipients, proof.b, proof.bundle)) ? undefined : "the message is not missing";
  }
}

/** Compares strings as the Rust crate does: by their UTF-8 bytes. */
function byUtf8(a: string, b: string): number {
  const [x, y] = [encoder.encode(a), encoder.encode(b)];
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/**
 * Looks for a proof among statements gathered from any number of devices and senders, with the
 * recipient lists they know. Statements whose signatures fail are left out. The first
 * contradiction, in the Rust crate's order: an invalid statement, a device's chain, ids and
 * bundles, omissions.
 */
export async function findProof(statements: readonly Signed[], lists: readonly (readonly string[])[], keys: KeyRing): Promise<Proof | undefined> {
  const verified = await Promise.all(statements.map((s) => verifySigned(s, keys)));
  const signed = statements.filter((_, i) => verified[i]);
  const invalid = signed.find((s) => brokenRule(s.statement) !== undefined);
  if (invalid) return { kind: "an invalid statement", statement: invalid };

  const byDevice = new Map<string, Signed[]>();
  for (const s of signed) {
    const x = attestation(s);
    if (x) byDevice.set(x.device, [...(byDevice.get(x.device) ?? []), s]);
  }
  for (const device of [...byDevice.keys()].sort(byUtf8)) {
    const chain = byDevice.get(device)!;
    for (let i = 0; i < chain.length; i++) {
      for (let j = i + 1; j < chain.length; j++) {
        for (const [a, b] of [
          [chain[i]!, chain[j]!],
          [chain[j]!, chain[i]!],
        ] as const) {
          const [x, y] = [attestation(a)!, attestation(b)!];
          const overlap = x.fromEpoch <= y.toEpoch && y.fromEpoch <= x.toEpoch;
          if (overlap && !equal(body(a), body(b))) return { kind: "a forked chain", a, b };
          const adjacent = x.toEpoch + 1n === y.fromEpoch;
          const names = equal(y.prev, await statementHash(a));
          if (adjacent && !names) return { kind: "a broken chain", a, b };
          if (!adjacent && !overlap && names) return { kind: "skipped epochs", a, b };
        }
      }
    }
  }

  const named = new Map<string, { id: SeqId; statements: Signed[] }>();
  const name = (id: SeqId, s: Signed) => {
    const key = hex(seqIdBytes(id));
    const slot = named.get(key) ?? { id, statements: [] };
    slot.statements.push(s);
    named.set(key, slot);
  };
  for (const s of signed) {
    if (s.statement.kind === "receipt") name(s.statement.bundle, s);
    else
      for (const e of s.statement.entries) {
        name(e.id, s);
        if (!sameId(e.bundle, e.id)) name(e.bundle, s);
      }
  }
  for (const key of [...named.keys()].sort()) {
    const { id, statements: group } = named.get(key)!;
    for (let i = 0; i < group.length; i++) {
      for (let j = i + 1; j < group.length; j++) {
        if (conflict(group[i]!, group[j]!, id)) return { kind: "conflicting statements", a: group[i]!, b: group[j]!, id };
      }
    }
  }

  const known = new Map<string, readonly string[]>();
  for (const list of lists) known.set(hex(await recipientsHash(list)), list);
  for (const a of signed) {
    const s = a.statement;
    const bundles = s.kind === "receipt" ? [{ bundle: s.bundle, hash: s.recipients }] : s.entries.map((e) => ({ bundle: e.bundle, hash: e.recipients }));
    for (const { bundle, hash } of bundles) {
      const recipients = known.get(hex(hash));
      if (recipients === undefined) continue;
      for (const device of recipients) {
        for (const b of byDevice.get(device) ?? []) {
          if (await omission(a, recipients, b, bundle)) return { kind: "an omitted message", a, recipients, b, bundle };
        }
      }
    }
  }
  return undefined;
}

// --- a device's verifier -----------------------------------------------------------------

/** Why a batch was not accepted. Only `misbehaved` blames the relay (with a proof). */
export class Rejected extends Error {
  override name = "Rejected";
  constructor(
    readonly reason: "signature" | "not this device" | "misbehaved" | "missing" | "mismatch",
    message: string,
    readonly proof?: Proof,
    /** For `missing`: fetch attestations from this epoch and offer them first. */
    readonly fromEpoch?: bigint,
  ) {
    super(message);
  }
}

/** One device's check of what it is delivered: each batch against its attestation, each
 *  attestation against the device's chain (the last accepted, its head). */
export class DeviceVerifier {
  private headHash: Uint8Array | undefined;

  /** Trusts the first attestation it accepts as the start of the chain, or continues from `head`. */
  constructor(
    readonly device: string,
    private readonly keys: KeyRing,
    private headSigned?: Signed,
  ) {}

  get head(): Signed | undefined {
    return this.headSigned;
  }

  /** Accepts `signed` (the attestation's bytes, or decoded) for `batch`, or throws {@link Rejected}. */
  async accept(signed: Signed | Uint8Array, batch: readonly Delivered[]): Promise<void> {
    const s = signed instanceof Uint8Array ? decodeSigned(signed) : signed;
    if (!(await verifySigned(s, this.keys))) throw new Rejected("signature", `the signature is not shard ${s.statement.shard}'s`);
    const x = attestation(s);
    if (x === undefined || x.device !== this.device) throw new Rejected("not this device", "the statement is not an attestation for this device");
    const misbehaved = (proof: Proof) => new Rejected("misbehaved", `the relay misbehaved (${proof.kind})`, proof);
    if (brokenRule(x) !== undefined) throw misbehaved({ kind: "an invalid statement", statement: s });
    const head = this.headSigned;
    if (head !== undefined) {
      const last = attestation(head)!;
      if (equal(body(head), body(s))) return checkBatch(this.device, x.entries, batch);
      if (x.fromEpoch <= last.toEpoch) {
        if (x.toEpoch >= last.fromEpoch) throw misbehaved({ kind: "a forked chain", a: head, b: s });
        throw new Rejected("mismatch", `an attestation for epochs ${x.fromEpoch}..=${x.toEpoch}, before the last accepted`);
      }
      this.headHash ??= await statementHash(head);
      const adjacent = x.fromEpoch === last.toEpoch + 1n;
      const follows = equal(x.prev, this.headHash);
      if (adjacent && !follows) throw misbehaved({ kind: "a broken chain", a: head, b: s });
      if (!adjacent && follows) throw misbehaved({ kind: "skipped epochs", a: head, b: s });
      if (!adjacent) {
        throw new Rejected("missing", `attestations from epoch ${last.toEpoch + 1n} are missing`, undefined, last.toEpoch + 1n);
      }
    }
    await checkBatch(this.device, x.entries, batch);
    this.headSigned = s;
    this.headHash = undefined;
  }
}

async function checkBatch(device: string, entries: readonly Entry[], batch: readonly Delivered[]): Promise<void> {
  if (entries.length !== batch.length) throw new Rejected("mismatch", `${batch.length} messages delivered, ${entries.length} attested`);
  for (let i = 0; i < entries.length; i++) {
    const message = batch[i]!;
    if (!entryEqual(await entryOf(message), entries[i]!)) throw new Rejected("mismatch", `message ${idKey(message.id)} differs from its entry`);
    const position = positionIn(message.id, message.bundle);
    if (position === undefined || message.recipients[position] !== device) {
      throw new Rejected("mismatch", `message ${idKey(message.id)} is not addressed to this device at its position`);
    }
  }
}
