// The client's side of the protocol against a scripted gateway (test/support/peer.ts), for what
// a real gateway does not do on demand: keyed topics (the example services have none), MISSED,
// a GOAWAY splitting the requests in flight, protocol errors, version and limit negotiation,
// the exact frames and ids the client sends.

import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { Client, Code, type Frame, type TopicDesc } from "@rpcgen/client";
import { nodeTransport } from "@rpcgen/client/node";

import { eventually, nextEvent, rejectsWith, within } from "./support/assertions.js";
import { ScriptedGateway } from "./support/peer.js";

const POSITION: TopicDesc = { id: 0x5e1f00d5, name: "examples.tracker.Tracker.position" };
const ALERTS: TopicDesc = { id: 0x2a, name: "examples.tracker.Tracker.alerts" };
const METHOD = { id: 0x2a, name: "examples.tracker.Tracker.get", idempotent: true };
const WRITE = { id: 0x2b, name: "examples.tracker.Tracker.set", idempotent: false };
const fast = { initialMs: 10, maxMs: 50 };
const text = new TextEncoder();
const str = (b: Uint8Array) => new TextDecoder().decode(b);

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

async function setup(welcome: Parameters<ScriptedGateway["acceptHandshake"]>[0] = {}, extra: object = {}) {
  const gateway = await ScriptedGateway.listen();
  const connecting = Client.connect({ endpoints: [gateway.url], transport: nodeTransport, backoff: fast, ...extra });
  const peer = await gateway.acceptHandshake(welcome);
  const client = await connecting;
  cleanup.push(async () => {
    await client.close();
    await gateway.close();
  });
  return { gateway, client, peer };
}

function response(requestId: number, payload = new Uint8Array(0)): Frame {
  return { type: "response", requestId, payload };
}

test("keyed topics: one key, all keys and unkeyed selectors; events with their keys; MISSED counted", async () => {
  const { client, peer } = await setup();
  const one = client.subscribe(POSITION, { key: "dev-7" }, { decode: str });
  assert.deepEqual(await peer.next("subscribe"), { type: "subscribe", subscriptionId: 1, topicId: POSITION.id, allKeys: false, key: "dev-7" });
  peer.send({ type: "subscribed", subscriptionId: 1 });
  const dev7 = await one;

  const every = client.subscribe(POSITION, { allKeys: true }, { decode: str });
  assert.deepEqual(await peer.next("subscribe"), { type: "subscribe", subscriptionId: 2, topicId: POSITION.id, allKeys: true, key: "" });
  const alerts = client.subscribe(ALERTS, { unkeyed: true }, { decode: str });
  assert.deepEqual(await peer.next("subscribe"), { type: "subscribe", subscriptionId: 3, topicId: ALERTS.id, allKeys: false, key: "" });
  peer.send({ type: "subscribed", subscriptionId: 3 }, { type: "subscribed", subscriptionId: 2 });
  const all = await every;
  const unkeyed = await alerts;

  peer.send(
    { type: "event", subscriptionId: 1, key: "dev-7", payload: text.encode("a") },
    { type: "event", subscriptionId: 2, key: "dev-1", payload: text.encode("p1") },
    // Another subscription's id, and one that does not exist: not ours.
    { type: "event", subscriptionId: 99, key: "dev-7", payload: text.encode("x") },
    { type: "missed", subscriptionId: 1, count: 3 },
    { type: "event", subscriptionId: 2, key: "dev-2", payload: text.encode("p2") },
    { type: "event", subscriptionId: 1, key: "dev-7", payload: text.encode("b") },
    { type: "event", subscriptionId: 3, key: "", payload: text.encode("fire") },
  );
  assert.deepEqual(await nextEvent(dev7), { key: "dev-7", message: "a", missed: 0, resumed: false, recovered: false });
  assert.deepEqual(await nextEvent(dev7), { key: "dev-7", message: "b", missed: 3, resumed: false, recovered: false });
  assert.deepEqual([(await nextEvent(all)).key, (await nextEvent(all)).key], ["dev-1", "dev-2"]);
  assert.deepEqual(await nextEvent(unkeyed), { key: "", message: "fire", missed: 0, resumed: false, recovered: false });

  const published = client.publish(POSITION, "dev-7", text.encode("here"));
  const publish = await peer.next("publish");
  assert.deepEqual({ ...publish, payload: str(publish.payload) }, {
    type: "publish",
    requestId: 1,
    topicId: POSITION.id,
    key: "dev-7",
    payload: "here",
  });
  peer.send(response(publish.requestId));
  await published;

  dev7.close();
  assert.deepEqual(await peer.next("unsubscribe"), { type: "unsubscribe", subscriptionId: 1 });
});

test("requests: sequential ids, the deadline on the wire, replies in any order, CANCEL on abort", async () => {
  const { client, peer } = await setup();
  const first = client.call(METHOD, text.encode("one"), { timeoutMs: 5000 });
  const second = client.call(METHOD, text.encode("two"), { timeoutMs: Infinity });
  const a = await peer.next("request");
  const b = await peer.next("request");
  assert.deepEqual([a.requestId, a.methodId, a.fireAndForget, str(a.payload)], [1, METHOD.id, false, "one"]);
  assert.ok(a.timeoutMs > 4900 && a.timeoutMs <= 5000, `timeout_ms ${a.timeoutMs}`);
  assert.deepEqual([b.requestId, b.timeoutMs], [2, 0], "no deadline: 0");
  peer.send(response(2, text.encode("B")), response(1, text.encode("A")));
  assert.deepEqual([str(await first), str(await second)], ["A", "B"]);

  const controller = new AbortController();
  const cancelled = rejectsWith(client.call(METHOD, new Uint8Array(0), { signal: controller.signal }), Code.CANCELLED);
  const c = await peer.next("request");
  assert.equal(c.requestId, 3);
  controller.abort();
  assert.deepEqual(await peer.next("cancel"), { type: "cancel", requestId: 3 });
  await cancelled;
  // Id 3 stays in flight until the gateway answers it; that answer goes to nobody.
  const next = client.call(METHOD, new Uint8Array(0));
  assert.equal((await peer.next("request")).requestId, 4);
  peer.send({ type: "error", requestId: 3, code: Code.CANCELLED, retryable: false, errorId: 0, message: "", details: new Uint8Array(0) });
  peer.send(response(4));
  await next;
});

test("the gateway's max_in_flight is respected, and AUTH does not count against it", async () => {
  const { client, peer } = await setup({ maxInFlight: 2 });
  const calls = Array.from({ length: 5 }, (_, i) => client.call(METHOD, Uint8Array.of(i)));
  const sent = [await peer.next("request"), await peer.next("request")];
  await assert.rejects(peer.read(150), /sent nothing/, "a third request waits for room");
  const refresh = client.refreshToken("fresh.token.here");
  const auth = await peer.next("auth");
  assert.equal(str(auth.token), "fresh.token.here");
  peer.send({ type: "auth_ok", requestId: auth.requestId, expiresInMs: 0 });
  await refresh;
  peer.send(response(sent[0]!.requestId));
  const third = await peer.next("request");
  assert.equal(third.payload[0], 2);
  peer.send(response(sent[1]!.requestId), response(third.requestId));
  for (let i = 3; i < 5; i++) peer.send(response((await peer.next("request")).requestId));
  await Promise.all(calls);
});

test("GOAWAY: requests after last_request_id fail retryably, earlier ones are answered, the next connection restores subscriptions", async () => {
  const { gateway, client, peer } = await setup();
  const subscribing = client.subscribe(POSITION, { key: "dev-7" }, { decode: str });
  const sub1 = await peer.next("subscribe");
  peer.send({ type: "subscribed", subscriptionId: sub1.subscriptionId });
  const sub = await subscribing;
  const calls = [1, 2, 3].map((i) => client.call(WRITE, Uint8Array.of(i)));
  const ids = [(await peer.next("request")).requestId, (await peer.next("request")).requestId, (await peer.next("request")).requestId];
  assert.deepEqual(ids, [1, 2, 3]);
  const third = rejectsWith(calls[2]!, Code.UNAVAILABLE);
  peer.send({ type: "goaway", reason: 1, reconnect: true, lastRequestId: 2, message: "draining" });
  const failed = await third;
  assert.equal(failed.retryable, true, "not processed: safe to send again, whatever the method");
  assert.match(failed.message, /is going away \(shutting_down: draining\) and did not process the request/);

  // The next connection takes new calls and restores the subscription, while the old one drains.
  const peer2 = await gateway.acceptHandshake();
  const restored = await peer2.next("subscribe");
  assert.deepEqual({ ...restored, subscriptionId: 0 }, { type: "subscribe", subscriptionId: 0, topicId: POSITION.id, allKeys: false, key: "dev-7" });
  peer2.send({ type: "subscribed", subscriptionId: restored.subscriptionId });
  const later = client.call(METHOD, new Uint8Array(0));
  peer2.send(response((await peer2.next("request")).requestId, text.encode("new")));
  assert.equal(str(await later), "new");
  peer.send(response(2, text.encode("two")), response(1, text.encode("one")));
  assert.deepEqual([str(await calls[0]!), str(await calls[1]!)], ["one", "two"]);
  // Drained: the client closes the old connection itself.
  await within(peer.closed(), 5000, "the old connection closes");

  peer2.send({ type: "event", subscriptionId: restored.subscriptionId, key: "dev-7", payload: text.encode("moved") });
  assert.deepEqual(await nextEvent(sub), { key: "dev-7", message: "moved", missed: 0, resumed: true, recovered: false });
});

test("GOAWAY without RECONNECT stops the client: calls and subscriptions fail, nothing reconnects", async () => {
  const { gateway, client, peer } = await setup();
  const subscribing = client.subscribe(ALERTS, { unkeyed: true }, { decode: str });
  peer.send({ type: "subscribed", subscriptionId: (await peer.next("subscribe")).subscriptionId });
  const sub = await subscribing;
  peer.send({ type: "goaway", reason: 11, reconnect: false, lastRequestId: 0, message: "client banned" });
  const ended = await within(sub.ended, 5000, "the subscription ends");
  assert.equal(ended?.code, Code.UNAVAILABLE);
  assert.match(ended?.message ?? "", /closed the connection for good \(policy: client banned\); the client does not reconnect/);
  const later = await rejectsWith(client.call(METHOD, new Uint8Array(0)), Code.UNAVAILABLE);
  assert.equal(later.retryable, false);
  assert.equal(client.state.status, "closed");
  await assert.rejects(within(gateway.accept(), 300, "a new connection"), /not within/);
});

test("SUBSCRIPTION_ENDED ends a live subscription after its queued events; a refusal rejects subscribe", async () => {
  const { client, peer } = await setup();
  const subscribing = client.subscribe(POSITION, { key: "dev-7" }, { decode: str });
  const id = (await peer.next("subscribe")).subscriptionId;
  peer.send({ type: "subscribed", subscriptionId: id });
  const sub = await subscribing;
  peer.send(
    { type: "event", subscriptionId: id, key: "dev-7", payload: text.encode("last") },
    { type: "subscription_ended", subscriptionId: id, code: Code.PERMISSION_DENIED, retryable: false, message: "the refreshed token does not allow it" },
  );
  const ended = await within(sub.ended, 5000, "ended");
  assert.equal(ended?.code, Code.PERMISSION_DENIED);
  const got = [];
  for await (const event of sub) got.push(event.message);
  assert.deepEqual(got, ["last"]);

  const refused = client.subscribe(POSITION, { allKeys: true }, { decode: str });
  const id2 = (await peer.next("subscribe")).subscriptionId;
  peer.send({ type: "subscription_ended", subscriptionId: id2, code: Code.RESOURCE_EXHAUSTED, retryable: true, message: "too many" });
  const error = await rejectsWith(refused, Code.RESOURCE_EXHAUSTED);
  assert.equal(error.retryable, true);
});

test("a subscription the next gateway refuses ends with its status", async () => {
  const { gateway, client, peer } = await setup();
  const subscribing = client.subscribe(POSITION, { key: "dev-7" }, { decode: str });
  peer.send({ type: "subscribed", subscriptionId: (await peer.next("subscribe")).subscriptionId });
  const sub = await subscribing;
  peer.close();
  const peer2 = await gateway.acceptHandshake();
  const again = await peer2.next("subscribe");
  peer2.send({ type: "subscription_ended", subscriptionId: again.subscriptionId, code: Code.PERMISSION_DENIED, retryable: false, message: "no" });
  assert.equal((await within(sub.ended, 5000, "ended"))?.code, Code.PERMISSION_DENIED);
});

test("a protocol error from the gateway: the client says so with GOAWAY and reconnects", async () => {
  const { gateway, client, peer } = await setup();
  // An ignorable frame of an unknown type is skipped; a PING is answered with its data.
  peer.sendRaw(Uint8Array.of(5, 0, 0, 0, 0x2f, 0x80, 1, 2, 3));
  peer.send({ type: "ping", data: 0xfedcba9876543210n });
  assert.deepEqual(await peer.next("pong"), { type: "pong", data: 0xfedcba9876543210n });
  const call = rejectsWith(client.call(METHOD, new Uint8Array(0)), Code.UNAVAILABLE);
  await peer.next("request");
  peer.sendRaw(Uint8Array.of(2, 0, 0, 0, 0x42, 0x00));
  const goaway = await peer.next("goaway");
  assert.equal(goaway.reason, 4, "protocol_error");
  assert.match(goaway.message, /unknown frame type `0x42`/);
  assert.equal((await call).retryable, true, "an idempotent call lost with its connection");
  await gateway.acceptHandshake();
  await eventually("reconnected", () => client.state.status === "connected");
});

test("a frame over the client's limit is refused from its length prefix", async () => {
  const { peer } = await setup({}, { maxFrameSize: 65_536 });
  peer.sendRaw(Uint8Array.of(0x01, 0x00, 0x01, 0x00)); // 65,537 bytes announced, none sent
  const goaway = await peer.next("goaway");
  assert.equal(goaway.reason, 5, "frame_too_large");
});

test("the client pings after half the gateway's idle timeout of silence", async () => {
  const { peer } = await setup({ idleTimeoutMs: 300 });
  const started = performance.now();
  const ping = await peer.next("ping", 2000);
  const took = performance.now() - started;
  assert.ok(took >= 100 && took < 600, `pinged after ${Math.round(took)} ms`);
  peer.send({ type: "pong", data: ping.data });
});

test("a gateway speaking another version is given up", async () => {
  const gateway = await ScriptedGateway.listen();
  cleanup.push(() => gateway.close());
  const connecting = rejectsWith(Client.connect({ endpoints: [gateway.url], transport: nodeTransport }), Code.UNAVAILABLE);
  const peer = await gateway.accept();
  await peer.next("hello");
  peer.send({ type: "welcome", version: 2, maxFrameSize: 65_536, maxInFlight: 1, idleTimeoutMs: 0, serverId: "", authExpiresInMs: 0 });
  const goaway = await peer.next("goaway");
  assert.equal(goaway.reason, 6, "unsupported_version");
  const error = await connecting;
  assert.match(error.message, /the gateway chose protocol version 2; this client speaks 1/);
});

test("HELLO carries the name, the limit and the token function's token", async () => {
  const gateway = await ScriptedGateway.listen();
  const client = new Client({
    endpoints: [gateway.url],
    transport: nodeTransport,
    name: "tests/1.0",
    maxFrameSize: 100_000,
    token: async () => "header.claims.signature",
  });
  cleanup.push(async () => {
    await client.close();
    await gateway.close();
  });
  const peer = await gateway.accept();
  const hello = await peer.next("hello");
  assert.deepEqual({ ...hello, token: str(hello.token) }, {
    type: "hello",
    version: 1,
    maxFrameSize: 100_000,
    clientName: "tests/1.0",
    token: "header.claims.signature",
    capabilities: 1, // HISTORY: the client speaks positions
  });
  // Nothing but WELCOME may come before WELCOME.
  peer.send(response(1));
  assert.equal((await peer.next("goaway")).reason, 4);
});

test("close(): requests fail with cancelled, subscriptions end, the gateway gets a GOAWAY", async () => {
  const gateway = await ScriptedGateway.listen();
  const client = await (async () => {
    const connecting = Client.connect({ endpoints: [gateway.url], transport: nodeTransport });
    return { peer: await gateway.acceptHandshake(), client: await connecting };
  })();
  cleanup.push(() => gateway.close());
  const { peer } = client;
  const subscribing = client.client.subscribe(ALERTS, { unkeyed: true }, { decode: str });
  peer.send({ type: "subscribed", subscriptionId: (await peer.next("subscribe")).subscriptionId });
  const sub = await subscribing;
  const inFlight = rejectsWith(client.client.call(METHOD, new Uint8Array(0)), Code.CANCELLED);
  await peer.next("request");
  await client.client.close();
  await inFlight;
  assert.equal((await sub.ended)?.code, Code.CANCELLED);
  const goaway = await peer.next("goaway");
  assert.deepEqual([goaway.reason, goaway.lastRequestId], [1, 0]);
  await within(peer.closed(), 5000, "closed");
  await rejectsWith(client.client.call(METHOD, new Uint8Array(0)), Code.CANCELLED);
  assert.deepEqual(client.client.state, { status: "closed", error: undefined });
});

test("options that cannot work are refused, naming the option", () => {
  const bad: [object, RegExp][] = [
    [{ endpoints: [] }, /invalid option `endpoints` \(\[\]\): give at least one endpoint/],
    [{ endpoints: ["http://x:1"] }, /`endpoints` \("http:\/\/x:1"\): the scheme must be ws:\/\/, wss:\/\/, tcp:\/\/ or tls:\/\//],
    [{ endpoints: ["tcp://x"] }, /a tcp:\/\/ endpoint is tcp:\/\/host:port/],
    [{ endpoints: ["tcp://x:1"], transport: undefined }, /no global WebSocket|the transport speaks ws:, wss:, not tcp:; in Node, pass `transport: nodeTransport`/],
    [{ endpoints: ["ws://x:1"], transport: nodeTransport, maxFrameSize: 1000 }, /`maxFrameSize` \(1000\): must be a whole number from 65536/],
    [{ endpoints: ["ws://x:1"], transport: nodeTransport, backoff: { initialMs: 100, maxMs: 10 } }, /`backoff.maxMs` \(10\): must not be less than `backoff.initialMs` \(100\)/],
    [{ endpoints: ["ws://x:1"], transport: nodeTransport, defaultTimeoutMs: 0 }, /`defaultTimeoutMs` \(0\)/],
    [{ endpoints: ["ws://x:1"], transport: nodeTransport, token: 42 }, /`token` \(42\): a token is a string/],
    [{ endpoints: ["ws://x:1"], transport: nodeTransport, subscriptionBuffer: 0.5 }, /`subscriptionBuffer`/],
  ];
  for (const [options, message] of bad) {
    assert.throws(() => new Client(options as never), message);
  }
});
