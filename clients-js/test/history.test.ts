// History and recovery through a real gateway (`docs/protocol.md`, "History and recovery"): the
// client keeps each subscription's position, and when its connection is closed (by the gateway,
// through the admin port) it subscribes from there and receives exactly what it missed; when the
// gateway restarted (its in-memory history is gone) it says so through `onLost`.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Client, Code, type RpcError, type TopicDesc } from "@rpcgen/client";
import { nodeTransport } from "@rpcgen/client/node";

import { eventually, nextEvent } from "./support/assertions.js";
import { Gateway } from "./support/gateway.js";
import { blob, blobData, stableId } from "./support/messages.js";

/** Echo's `journal`: `broadcast` with a history of 100,000 events. */
const JOURNAL: TopicDesc = {
  id: stableId("examples.echo.Echo.journal"),
  name: "examples.echo.Echo.journal",
  history: { events: 100_000, ttlMs: 0 },
};

const text = new TextEncoder();
const decode = (payload: Uint8Array) => Number(new TextDecoder().decode(blobData(payload)));
const fast = { initialMs: 5, maxMs: 50 };

/** The admin port's answer to `method path`. */
async function admin(gateway: Gateway, method: string, path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://${gateway.admin}${path}`, { method });
  return { status: response.status, body: await response.text() };
}

/** The id of the connection whose client is named `name`, from `/console/state`. */
async function connectionOf(gateway: Gateway, name: string): Promise<number> {
  const { body } = await admin(gateway, "GET", "/console/state");
  const state = JSON.parse(body) as { connections: { id: number; client: string | null }[] };
  const found = state.connections.find((c) => c.client === name);
  assert.ok(found, `no connection of ${name} in ${body}`);
  return found.id;
}

test("a subscription whose connection the gateway closed recovers every event it missed, once, in order", async () => {
  const gateway = await Gateway.start();
  const reader = await Client.connect({ endpoints: [gateway.tcpUrl], transport: nodeTransport, name: "reader", backoff: fast });
  const writer = await Client.connect({ endpoints: [gateway.tcpUrl], transport: nodeTransport, name: "writer" });
  const lost: RpcError[] = [];
  try {
    const sub = await reader.subscribe(JOURNAL, { unkeyed: true }, { decode, onLost: (e) => lost.push(e) });
    for (let i = 0; i < 10; i++) await writer.publish(JOURNAL, "", blob(text.encode(String(i))));
    for (let i = 0; i < 10; i++) assert.equal((await nextEvent(sub)).message, i);

    // The gateway closes the reader's connection; the writer goes on meanwhile.
    const closed = await admin(gateway, "POST", `/connections/${await connectionOf(gateway, "reader")}/close`);
    assert.equal(closed.status, 200, closed.body);
    for (let i = 10; i < 200; i++) await writer.publish(JOURNAL, "", blob(text.encode(String(i))));

    const resumed: number[] = [];
    for (let i = 10; i < 200; i++) {
      const event = await nextEvent(sub);
      assert.equal(event.message, i, "every event once, in order");
      assert.equal(event.missed, 0);
      if (event.resumed) {
        assert.equal(event.recovered, true, "the restore recovered what was missed");
        resumed.push(i);
      }
    }
    assert.equal(resumed.length, 1, `one restore: ${resumed.join(", ")}`);
    assert.deepEqual(lost, []);
    const metrics = await gateway.metrics();
    assert.match(metrics, /gateway_recoveries_total\{result="recovered"\} 1\n/);
    sub.close();
  } finally {
    await reader.close();
    await writer.close();
    await gateway.kill();
  }
});

test("a restore after the gateway restarted (its history gone) calls onLost with data_loss, then goes on live", async () => {
  const gateway = await Gateway.start();
  const client = await Client.connect({ endpoints: [gateway.tcpUrl], transport: nodeTransport, backoff: fast });
  const lost: RpcError[] = [];
  try {
    const sub = await client.subscribe(JOURNAL, { unkeyed: true }, { decode, onLost: (e) => lost.push(e) });
    await client.publish(JOURNAL, "", blob(text.encode("1")));
    assert.equal((await nextEvent(sub)).message, 1);
    // A reader waits: the notice of the failed restore reaches `onLost` as soon as it comes.
    const next = nextEvent(sub, 15_000);
    await gateway.restart();
    await eventually("the restore to say what it could not recover", () => lost.length === 1);
    assert.equal(lost[0]!.code, Code.DATA_LOSS);
    assert.match(lost[0]!.message, /examples\.echo\.Echo\.journal: .*not recovered \(epoch_changed\)/);
    // The subscription is live again on the new gateway.
    await client.publish(JOURNAL, "", blob(text.encode("2")));
    const event = await next;
    assert.equal(event.message, 2);
    assert.equal(event.resumed, true);
    assert.equal(event.recovered, false);
    assert.equal(lost.length, 1);
    sub.close();
  } finally {
    await client.close();
    await gateway.kill();
  }
});
