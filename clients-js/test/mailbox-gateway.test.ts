// The mailbox relay through a real gateway (its shards in process: one, then two), from Node,
// with the stubs `rpcgen ts` generates from schemas/mailbox/mailbox.service and
// `@rpcgen/client/mailbox`: a bundle sent, its receipt verified; bob's batch pushed on his key
// of `batches` and alice's fetched, both accepted by a device verifier with the keys `keys`
// returns; acknowledged, gone. With two shards, alice's mailbox is on shard 0 and bob's on
// shard 1: the bundle is routed between them and reads are forwarded to the right one.

import assert from "node:assert/strict";
import { before, test } from "node:test";

import { Client } from "@rpcgen/client";
import {
  type Delivered,
  DeviceVerifier,
  type KeyRing,
  decodeSigned,
  readSeqId,
  seqIdBytes,
  verifySigned,
} from "@rpcgen/client/mailbox";
import { nodeTransport } from "@rpcgen/client/node";

import { Gateway } from "./support/gateway.js";
import { generatedStubs } from "./support/generated.js";

let examples: any;

before(async () => {
  ({ examples } = await generatedStubs("schemas/mailbox/mailbox.service", "mailbox"));
});

const text = new TextEncoder();

/** A generated `Batch` as the verifier takes it. */
function decoded(batch: any): { attestation: ReturnType<typeof decodeSigned>; messages: Delivered[] } {
  const messages: Delivered[] = [];
  for (let i = 0; i < batch.messagesLength(); i++) {
    const m = batch.messages(i);
    messages.push({
      id: readSeqId(m.idArray()),
      bundle: readSeqId(m.bundleArray()),
      recipients: Array.from({ length: m.recipientsLength() }, (_, k) => m.recipients(k)),
      common: m.commonArray() ?? new Uint8Array(),
      part: m.partArray() ?? new Uint8Array(),
    });
  }
  return { attestation: decodeSigned(batch.attestationArray()), messages };
}

for (const shards of [1, 2]) {
  test(`sent, pushed, fetched, verified and acknowledged through the gateway, ${shards} shard(s)`, async () => {
    const gateway = await Gateway.start({ env: { MAILBOX_SHARDS: String(shards) } });
    const client = await Client.connect({ endpoints: [gateway.tcpUrl], transport: nodeTransport });
    try {
      await throughTheGateway(client, shards);
    } finally {
      await client.close();
      await gateway.kill();
    }
  });
}

async function throughTheGateway(client: Client, shards: number): Promise<void> {
  const mailbox = new examples.mailbox.MailboxClient(client);
  const keys = await mailbox.keys(new examples.mailbox.KeysRequestT());
  const ring: KeyRing = new Map(
    Array.from({ length: keys.shardsLength() }, (_, i) => [keys.shards(i).shard(), keys.shards(i).publicKeyArray().slice()] as const),
  );
  assert.equal(ring.size, shards, "a key per shard");

  const pushed = await mailbox.subscribeBatches("bob");
  const reply = await mailbox.send(
    new examples.mailbox.SendRequestT({
      recipients: ["alice", "bob"],
      common: text.encode("hello"),
      parts: ["alice", "bob"].map((r) => new examples.mailbox.PartT({ bytes: text.encode(`for ${r}`) })),
    }),
  );
  const receipt = decodeSigned(reply.receiptArray());
  assert.ok(await verifySigned(receipt, ring), "the receipt is the shard's");
  const bundle = readSeqId(reply.bundleArray());
  assert.equal(receipt.statement.kind === "receipt" && receipt.statement.count, 2);

  // Bob's batch, pushed.
  let bobsBatch: any;
  for await (const event of pushed) {
    bobsBatch = event.message;
    break;
  }
  const bob = decoded(bobsBatch);
  await new DeviceVerifier("bob", ring).accept(bob.attestation, bob.messages);
  assert.deepEqual(bob.messages[0]!.id, { ...bundle, index: bundle.index + 1 });
  assert.equal(new TextDecoder().decode(bob.messages[0]!.part), "for bob");

  // Alice's, fetched; acknowledged; gone.
  const fetched = await mailbox.fetch(new examples.mailbox.FetchRequestT({ device: "alice", maxBatches: 10 }));
  assert.equal(fetched.batchesLength(), 1);
  const alice = decoded(fetched.batches(0));
  await new DeviceVerifier("alice", ring).accept(alice.attestation, alice.messages);
  const upto = seqIdBytes(alice.messages.at(-1)!.id);
  const acked = await mailbox.ack(new examples.mailbox.AckRequestT({ device: "alice", upto }));
  assert.equal(acked.deleted(), 1);
  const again = await mailbox.fetch(new examples.mailbox.FetchRequestT({ device: "alice", maxBatches: 10 }));
  assert.equal(again.batchesLength(), 0);
  // Each device's attestation is its own shard's (alice on 0, bob on 1 when there are two).
  const signer = (s: ReturnType<typeof decodeSigned>) => (s.statement.kind === "attestation" ? s.statement.shard : -1);
  assert.equal(signer(alice.attestation), 0);
  assert.equal(signer(bob.attestation), shards === 2 ? 1 : 0);
}
