// `@rpcgen/client/mailbox` against the Rust crate `mailbox`: the byte vectors of docs/mailbox.md
// (decoded, their signatures and hashes checked), and every scenario `mailbox-vectors` prints —
// an honest relay and each of its lies — reaching the same verdict on every batch and the same
// proof among all the statements, the proof checking on its own and failing once forged.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";

import {
  checkProof,
  commonHash,
  decodeSigned,
  decodeStatement,
  type Delivered,
  DeviceVerifier,
  findProof,
  type KeyRing,
  MailboxFormatError,
  partHash,
  type Proof,
  readSeqId,
  recipientsHash,
  Rejected,
  rootOf,
  type Signed,
  statementHash,
  verifySigned,
} from "@rpcgen/client/mailbox";

import { ROOT } from "./support/gateway.js";

const unhex = (text: string) => new Uint8Array(Buffer.from(text, "hex"));
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

const ATTESTATION =
  "4d42584154543031000000000000000000000001000000000000000100000000000000000000000000000000000000000000000000000000000000000003626f6200000001000000000000000100000000000000010000000000000001000000000000000020d36da2a14deebaa2cb61075ef1954e94a971d0ac62a49a0f44724e093402dc35d275e3d9f55e8d5c150f7dcd2c3e83b848faa89e82c7fd31b9621740b459ab5f3fcd14608ee15d38db3e706a827c65d0b653fdcfe49c5f90a3ab77f5675a09000000010127c501defb467eb145ba00883c7b74881aa0ef82e878394dee6bc9333f46d868508cd9e0e9f4a33242aa28317a240178fe37bbe09eecb057785dce82bf56b6287cd6635975c64cd74ab6270f6f8739757070f150df86432f79ca0165f0333f0a";
const RECEIPT =
  "4d42585243503031000000000000000000000001000000000000000020d36da2a14deebaa2cb61075ef1954e94a971d0ac62a49a0f44724e093402dc35d275e3d9f55e8d5c150f7dcd2c3e83b848faa89e82c7fd31b9621740b459ab00000002000000000152cf60424b43bd899b8e1561d9859b0e16d5a8369aed41ff5cc8153c512bfeff508cd9e0e9f4a33242aa28317a240178fe37bbe09eecb057785dce82bf56b6287cd6635975c64cd74ab6270f6f8739757070f150df86432f79ca0165f0333f0a";
const KEYS: KeyRing = new Map([[0, unhex("8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c")]]);

test("the documented hashes and statements", async () => {
  assert.equal(hex(await recipientsHash(["alice-phone", "bob"])), "20d36da2a14deebaa2cb61075ef1954e94a971d0ac62a49a0f44724e093402dc");
  assert.equal(hex(await commonHash(new TextEncoder().encode("hello"))), "35d275e3d9f55e8d5c150f7dcd2c3e83b848faa89e82c7fd31b9621740b459ab");
  assert.equal(hex(await partHash(new TextEncoder().encode("p2"))), "5f3fcd14608ee15d38db3e706a827c65d0b653fdcfe49c5f90a3ab77f5675a09");

  const attestation = decodeSigned(unhex(ATTESTATION));
  assert.ok(await verifySigned(attestation, KEYS));
  assert.equal(hex(await statementHash(attestation)), "52cf60424b43bd899b8e1561d9859b0e16d5a8369aed41ff5cc8153c512bfeff");
  const a = attestation.statement;
  assert.equal(a.kind, "attestation");
  if (a.kind !== "attestation") return;
  assert.deepEqual([a.shard, a.device, a.fromEpoch, a.toEpoch, a.entries.length], [0, "bob", 1n, 1n, 1]);
  assert.deepEqual(a.entries[0]!.id, { epoch: 1n, shard: 0, index: 1 });
  assert.deepEqual(readSeqId(unhex("0102030405060708090a0b0c0d0e0f10")), { epoch: 0x0102030405060708n, shard: 0x090a0b0c, index: 0x0d0e0f10 });

  const receipt = decodeSigned(unhex(RECEIPT));
  assert.ok(await verifySigned(receipt, KEYS));
  // Signed together: one root, one signature.
  const root = "2bec06dbf4498b01bb7c110bb04ff661d5d34f719fe87b05673600fa9d6828bf";
  assert.equal(hex(await rootOf(receipt)), root);
  assert.equal(hex(await rootOf(attestation)), root);
  assert.equal(receipt.statement.kind === "receipt" && receipt.statement.count, 2);

  // Truncations, extensions, another magic and changed bytes.
  const bytes = unhex(ATTESTATION);
  const body = bytes.subarray(0, attestation.bodyLength);
  for (let cut = 0; cut < body.length; cut++) assert.throws(() => decodeStatement(body.subarray(0, cut)), MailboxFormatError);
  assert.throws(() => decodeStatement(new Uint8Array([...body, 0])), /1 bytes follow the statement/);
  const receiptBody = unhex(RECEIPT).subarray(0, 96);
  assert.throws(() => decodeStatement(new Uint8Array([...receiptBody, 0])), /1 bytes follow the statement/);
  const magic = body.slice();
  magic[7] = 0x32;
  assert.throws(() => decodeStatement(magic), /not a statement: the magic is "MBXATT02"/);
  for (const i of [0, 9, 30, 63, 100, 196, 197, 200, 201, 202, 233, 234, 297]) {
    const changed = bytes.slice();
    changed[i]! ^= 0x40;
    let signed: Signed;
    try {
      signed = decodeSigned(changed);
    } catch {
      continue;
    }
    assert.equal(await verifySigned(signed, KEYS), false, `byte ${i} changed and still verifies`);
  }
});

interface VectorMessage {
  id: string;
  bundle: string;
  recipients: string[];
  common: string;
  part: string;
}
interface Scenario {
  name: string;
  keys: Record<string, string>;
  batches: { device: string; attestation: string; messages: VectorMessage[] }[];
  receipts: string[];
  lists: string[][];
  verdicts: string[];
  proof: string | null;
}

function scenarios(): Scenario[] {
  const bin = process.env.MAILBOX_VECTORS_BIN ?? join(ROOT, "target/debug/mailbox-vectors");
  const run = spawnSync(bin, [], { encoding: "utf8", maxBuffer: 64 << 20 });
  if (run.status !== 0) throw new Error(`${bin} failed (${run.error ?? run.status}); build it with \`cargo build -p mailbox\`:\n${run.stderr}`);
  return JSON.parse(run.stdout) as Scenario[];
}

const delivered = (m: VectorMessage): Delivered => ({
  id: readSeqId(unhex(m.id)),
  bundle: readSeqId(unhex(m.bundle)),
  recipients: m.recipients,
  common: unhex(m.common),
  part: unhex(m.part),
});

function forge(signed: Signed): Signed {
  const bytes = signed.bytes.slice();
  bytes[bytes.length - 1]! ^= 1;
  return decodeSigned(bytes);
}

function forged(proof: Proof): Proof {
  switch (proof.kind) {
    case "an invalid statement":
      return { ...proof, statement: forge(proof.statement) };
    default:
      return { ...proof, a: forge(proof.a) };
  }
}

test("every scenario of mailbox-vectors gets the Rust verifier's verdicts", async () => {
  const all = scenarios();
  assert.ok(all.length >= 8, `${all.length} scenarios`);
  for (const scenario of all) {
    const keys: KeyRing = new Map(Object.entries(scenario.keys).map(([shard, key]) => [Number(shard), unhex(key)]));
    const verifiers = new Map<string, DeviceVerifier>();
    const verdicts: string[] = [];
    for (const batch of scenario.batches) {
      let verifier = verifiers.get(batch.device);
      if (!verifier) verifiers.set(batch.device, (verifier = new DeviceVerifier(batch.device, keys)));
      try {
        await verifier.accept(unhex(batch.attestation), batch.messages.map(delivered));
        verdicts.push("ok");
      } catch (e) {
        assert.ok(e instanceof Rejected, String(e));
        if (e.reason === "misbehaved") {
          verdicts.push(`misbehaved: ${e.proof!.kind}`);
          assert.equal(await checkProof(e.proof!, keys), undefined, `${scenario.name}: the verifier's proof`);
        } else if (e.reason === "missing") verdicts.push(`missing from ${e.fromEpoch}`);
        else verdicts.push(e.reason);
      }
    }
    assert.deepEqual(verdicts, scenario.verdicts, scenario.name);

    const statements = [...scenario.receipts, ...scenario.batches.map((b) => b.attestation)].map((s) => decodeSigned(unhex(s)));
    const proof = await findProof(statements, scenario.lists, keys);
    assert.equal(proof?.kind ?? null, scenario.proof, scenario.name);
    if (proof) {
      assert.equal(await checkProof(proof, keys), undefined, `${scenario.name}: the proof checks`);
      assert.notEqual(await checkProof(forged(proof), keys), undefined, `${scenario.name}: a forged proof checks`);
    }
  }
});
