// The WebSocket transport: against a scripted gateway over `ws` (one frame per binary message),
// and against the real gateway's WebSocket endpoint (`ws_listen`) when the gateway binary has
// one: calls, pipelining, pub/sub, reconnection, and a list mixing WebSocket and TCP gateways.

import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";

import { Client, Code } from "@rpcgen/client";
import { nodeTransport } from "@rpcgen/client/node";

import { eventually, nextEvent, rejectsWith } from "./support/assertions.js";
import { Gateway } from "./support/gateway.js";
import { blob, blobData, BROADCAST, ECHO, OVERFLOW_ID, replySum, requestSum, SUM } from "./support/messages.js";
import { ScriptedGateway } from "./support/peer.js";

const text = new TextEncoder();
const str = (b: Uint8Array) => new TextDecoder().decode(b);
const blobText = (payload: Uint8Array) => str(blobData(payload));
const fast = { initialMs: 10, maxMs: 100 };
const METHOD = { id: 0x2a, name: "examples.tracker.Tracker.get", idempotent: true };

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

describe("over WebSocket, against a scripted gateway", () => {
  async function setup(extra: object = {}) {
    const gateway = await ScriptedGateway.listen("ws");
    const connecting = Client.connect({ endpoints: [gateway.url], transport: nodeTransport, backoff: fast, ...extra });
    const peer = await gateway.acceptHandshake();
    const client = await connecting;
    cleanup.push(async () => {
      await client.close();
      await gateway.close();
    });
    return { gateway, client, peer };
  }

  test("frames travel one per binary message, without length prefixes", async () => {
    const { client, peer } = await setup();
    const call = client.call(METHOD, text.encode("ping"), { timeoutMs: 1000 });
    const request = await peer.next("request");
    assert.equal(str(request.payload), "ping");
    assert.ok(request.timeoutMs > 900 && request.timeoutMs <= 1000, `timeout_ms ${request.timeoutMs}`);
    peer.send({ type: "response", requestId: request.requestId, payload: text.encode("pong") });
    const reply = await call;
    assert.equal(str(reply), "pong");
    // `ws` hands messages over as Buffers ("nodebuffer"): the reply is a plain view of one.
    assert.equal(Object.getPrototypeOf(reply), Uint8Array.prototype);

    const subscribing = client.subscribe(BROADCAST, { unkeyed: true }, { decode: str });
    const id = (await peer.next("subscribe")).subscriptionId;
    peer.send({ type: "subscribed", subscriptionId: id }, { type: "event", subscriptionId: id, key: "", payload: text.encode("hi") });
    assert.equal((await nextEvent(await subscribing)).message, "hi");

    // Closing: GOAWAY as a binary message, then the close code that matches its reason.
    await client.close();
    assert.equal((await peer.next("goaway")).reason, 1);
    await peer.closed();
    assert.equal(peer.closeFrame?.code, 1001, "shutting_down: going away");
  });

  test("calls made together leave as one message each, in order, whole", async () => {
    // In Node the messages sent in one turn after its first leave in one write (node.ts): the
    // gateway must still see one frame per message.
    const { client, peer } = await setup();
    const n = 300;
    const calls = Array.from({ length: n }, (_, i) => client.call(METHOD, text.encode(`call ${i} `.repeat(1 + (i % 40)))));
    for (let i = 0; i < n; i += 1) {
      const request = await peer.next("request");
      assert.deepEqual([request.requestId, str(request.payload)], [i + 1, `call ${i} `.repeat(1 + (i % 40))]);
      peer.send({ type: "response", requestId: request.requestId, payload: text.encode(`reply ${i}`) });
    }
    assert.deepEqual((await Promise.all(calls)).map(str), Array.from({ length: n }, (_, i) => `reply ${i}`));
    // And again as the replies come in: each reply's caller calls at once.
    const again = Promise.all(calls.map(async (call, i) => (await call, client.call(METHOD, text.encode(`again ${i}`)))));
    for (let i = 0; i < n; i += 1) {
      const request = await peer.next("request");
      peer.send({ type: "response", requestId: request.requestId, payload: request.payload });
    }
    assert.deepEqual((await again).map(str), Array.from({ length: n }, (_, i) => `again ${i}`));
  });

  test("a protocol error closes with GOAWAY protocol_error and close code 1002", async () => {
    const { peer } = await setup();
    peer.sendRaw(Uint8Array.of(2, 0, 0, 0, 0x42, 0x00));
    assert.equal((await peer.next("goaway")).reason, 4);
    await peer.closed();
    assert.deepEqual(peer.closeFrame, { code: 1002, reason: "unknown frame type `0x42`" });
  });

  test("a text message is a protocol error: GOAWAY, then a new connection", async () => {
    const { gateway, client, peer } = await setup();
    peer.sendText("hello?");
    const goaway = await peer.next("goaway");
    assert.equal(goaway.reason, 4);
    assert.match(goaway.message, /a text message/);
    await peer.closed();
    assert.equal(peer.closeFrame?.code, 1003, "a text message: unsupported data");
    await gateway.acceptHandshake();
    await eventually("reconnected", () => client.state.status === "connected");
  });

  test("a message over the client's maximum frame size loses the connection", async () => {
    const { gateway, client, peer } = await setup({ maxFrameSize: 65_536 });
    const call = rejectsWith(client.call(METHOD, new Uint8Array(0)), Code.UNAVAILABLE);
    const request = await peer.next("request");
    peer.send({ type: "response", requestId: request.requestId, payload: new Uint8Array(70_000) });
    assert.match((await call).message, /lost/);
    await gateway.acceptHandshake();
    await eventually("reconnected", () => client.state.status === "connected");
  });
});

describe("over WebSocket, against a real gateway", () => {

  async function start() {
    const gateway = await Gateway.start();
    assert.notEqual(gateway.wsAddr, "", `the gateway logs its WebSocket address:\n${gateway.log}`);
    cleanup.push(() => gateway.kill());
    return gateway;
  }

  test("calls, application errors, and many calls pipelined", async () => {
    const gateway = await start();
    const client = await Client.connect({ endpoints: [gateway.wsUrl], transport: nodeTransport });
    cleanup.push(() => client.close());
    assert.equal(replySum(await client.call(SUM, requestSum(40n, 2n))), 42n);
    const overflow = await rejectsWith(client.call(SUM, requestSum(9223372036854775807n, 1n)), Code.OUT_OF_RANGE);
    assert.equal(overflow.errorId, OVERFLOW_ID);
    const data = Uint8Array.from({ length: 5000 }, (_, i) => i % 253);
    assert.deepEqual(blobData(await client.call(ECHO, blob(data))), data);
    const sums = await Promise.all(Array.from({ length: 1000 }, (_, i) => client.call(SUM, requestSum(BigInt(i), 1n))));
    assert.deepEqual(sums.map(replySum), Array.from({ length: 1000 }, (_, i) => BigInt(i) + 1n));
  });

  test("publish and subscribe, events in order", async () => {
    const gateway = await start();
    const client = await Client.connect({ endpoints: [gateway.wsUrl], transport: nodeTransport });
    cleanup.push(() => client.close());
    const sub = await client.subscribe(BROADCAST, { unkeyed: true }, { decode: blobText });
    await Promise.all(Array.from({ length: 100 }, (_, i) => client.publish(BROADCAST, "", blob(text.encode(String(i))))));
    for (let i = 0; i < 100; i++) assert.equal((await nextEvent(sub)).message, String(i));
  });

  test("reconnection across a WebSocket gateway and a TCP one, subscriptions resumed", async () => {
    const ws = await start();
    const tcp = await Gateway.start();
    cleanup.push(() => tcp.kill());
    const client = await Client.connect({ endpoints: [ws.wsUrl, tcp.tcpUrl], transport: nodeTransport, backoff: fast });
    cleanup.push(() => client.close());
    const sub = await client.subscribe(BROADCAST, { unkeyed: true }, { decode: blobText });
    await ws.kill();
    await eventually("moved to TCP", () => client.state.status === "connected" && client.state.endpoint === tcp.tcpUrl);
    assert.equal(replySum(await client.call(SUM, requestSum(1n, 1n))), 2n);
    let i = 0;
    const timer = setInterval(() => void client.publish(BROADCAST, "", blob(text.encode(`x${i++}`))).catch(() => {}), 50);
    try {
      assert.equal((await nextEvent(sub, 10_000)).resumed, true);
    } finally {
      clearInterval(timer);
    }
    await ws.restart();
    await tcp.kill();
    await eventually("back on WebSocket", () => client.state.status === "connected" && client.state.endpoint === ws.wsUrl);
    assert.equal(replySum(await client.call(SUM, requestSum(2n, 2n))), 4n);
  });

  test("a graceful shutdown over WebSocket: GOAWAY, then the client moves on", async () => {
    const a = await start();
    const b = await start();
    const client = await Client.connect({ endpoints: [a.wsUrl, b.wsUrl], transport: nodeTransport, backoff: fast });
    cleanup.push(() => client.close());
    const sub = await client.subscribe(BROADCAST, { unkeyed: true }, { decode: blobText });
    a.signal("SIGTERM");
    assert.equal(await a.exited(20_000), 0);
    await eventually("on b", () => client.state.status === "connected" && client.state.endpoint === b.wsUrl);
    assert.equal(replySum(await client.call(SUM, requestSum(6n, 7n))), 13n);
    let i = 0;
    const timer = setInterval(() => void client.publish(BROADCAST, "", blob(text.encode(`y${i++}`))).catch(() => {}), 50);
    try {
      assert.equal((await nextEvent(sub, 10_000)).resumed, true);
    } finally {
      clearInterval(timer);
    }
  });

  test("deadlines and cancellation over WebSocket", async () => {
    const gateway = await start();
    const client = await Client.connect({ endpoints: [gateway.wsUrl], transport: nodeTransport });
    cleanup.push(() => client.close());
    await gateway.pause();
    try {
      const controller = new AbortController();
      const aborted = rejectsWith(client.call(SUM, requestSum(1n, 1n), { signal: controller.signal }), Code.CANCELLED);
      const late = rejectsWith(client.call(SUM, requestSum(1n, 1n), { timeoutMs: 200 }), Code.DEADLINE_EXCEEDED);
      controller.abort();
      await aborted;
      await late;
    } finally {
      gateway.resume();
    }
    assert.equal(replySum(await client.call(SUM, requestSum(8n, 8n))), 16n);
  });

  test("a gateway that refuses the client's token over WebSocket stops it", async () => {
    const toml = '[[auth.keys]]\nalgorithm = "HS256"\nsecret = "a test secret of at least thirty-two bytes"\n';
    const gateway = await Gateway.start({ toml });
    cleanup.push(() => gateway.kill());
    const connecting = Client.connect({ endpoints: [gateway.wsUrl], transport: nodeTransport, token: "not.a.jwt" });
    const error = await rejectsWith(connecting, Code.UNAUTHENTICATED);
    assert.match(error.message, /unauthenticated: .*malformed token/);
  });
});
