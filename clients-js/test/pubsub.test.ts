// Publishing and subscribing through a real gateway over TCP: events in order, retained
// events, refusals, closing, the client's bounded buffer, undecodable events.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Client, Code, type Subscription } from "@rpcgen/client";
import { nodeTransport } from "@rpcgen/client/node";

import { nextEvent, rejectsWith, within } from "./support/assertions.js";
import { Gateway } from "./support/gateway.js";
import { blob, blobData, BROADCAST, requestSub, stableId, SUB, total, TOTAL } from "./support/messages.js";

let gateway: Gateway;
let client: Client;

before(async () => {
  gateway = await Gateway.start();
  client = await Client.connect({ endpoints: [gateway.tcpUrl], transport: nodeTransport });
});

after(async () => {
  await client?.close();
  await gateway?.kill();
});

const text = new TextEncoder();
const blobText = (payload: Uint8Array) => new TextDecoder().decode(blobData(payload));

test("a subscriber receives what is published, in order, its own publications included", async () => {
  const sub = await client.subscribe(BROADCAST, { unkeyed: true }, { decode: blobText });
  const other = await Client.connect({ endpoints: [gateway.tcpUrl], transport: nodeTransport });
  try {
    for (let i = 0; i < 100; i++) await other.publish(BROADCAST, "", blob(text.encode(`event ${i}`)));
    await client.publish(BROADCAST, "", blob(text.encode("mine")));
    for (let i = 0; i < 100; i++) {
      const event = await nextEvent(sub);
      assert.deepEqual(event, { key: "", message: `event ${i}`, missed: 0, resumed: false, recovered: false });
    }
    assert.equal((await nextEvent(sub)).message, "mine");
  } finally {
    sub.close();
    await other.close();
  }
  assert.equal(await sub.ended, undefined, "closed by the application");
});

test("many publications in flight at once arrive in the order they were made", async () => {
  const sub = await client.subscribe(BROADCAST, { unkeyed: true }, { decode: blobText });
  const n = 300;
  await Promise.all(Array.from({ length: n }, (_, i) => client.publish(BROADCAST, "", blob(text.encode(String(i))))));
  const got: string[] = [];
  for await (const event of sub) {
    got.push(event.message);
    if (got.length === n) break; // leaving the loop closes the subscription
  }
  assert.deepEqual(got, Array.from({ length: n }, (_, i) => String(i)));
  assert.equal(await sub.ended, undefined);
});

test("a void method's effect arrives on a retained topic, and a new subscriber gets the last value", async () => {
  const decode = total;
  const sub = await client.subscribe(TOTAL, { unkeyed: true }, { decode });
  // `sub` returns nothing: the gateway answers once the bus has the call.
  assert.deepEqual(await client.call(SUB, requestSub(5n)), new Uint8Array(0));
  let event = await nextEvent(sub);
  // A retained total may come first, from an earlier test run on this gateway: skip to ours.
  while (event.message.changes === 0n) event = await nextEvent(sub);
  assert.equal(event.message.value, -5n);
  const changes = event.message.changes;
  sub.close();
  const late = await client.subscribe(TOTAL, { unkeyed: true }, { decode });
  assert.deepEqual((await nextEvent(late)).message, { value: -5n, changes });
  late.close();
});

test("a fire-and-forget call gets no answer and still reaches its service", async () => {
  const sub = await client.subscribe(TOTAL, { unkeyed: true }, { decode: total });
  let event = await nextEvent(sub);
  while (event.resumed) event = await nextEvent(sub);
  // The retained total comes first (the previous test left one); `send` changes it.
  const before = event.message;
  assert.equal(await client.send(SUB, requestSub(3n)), undefined);
  assert.equal(await client.send(SUB, requestSub(4n)), undefined);
  const first = (await nextEvent(sub)).message;
  const second = (await nextEvent(sub)).message;
  // The gateway runs calls side by side, so either may change the total first.
  assert.ok(first.value === before.value - 3n || first.value === before.value - 4n, `first total ${first.value}`);
  assert.equal(first.changes, before.changes + 1n);
  assert.deepEqual(second, { value: before.value - 7n, changes: before.changes + 2n });
  sub.close();
  // Nothing answered the two requests: a call made now is the only one in flight and succeeds.
  assert.deepEqual(await client.call(SUB, requestSub(0n)), new Uint8Array(0));
});

test("refusals: an unknown topic, a key on an unkeyed topic, publishing to a service's topic", async () => {
  const unknown = { id: stableId("examples.nothing.Nothing.topic"), name: "examples.nothing.Nothing.topic" };
  const notFound = await rejectsWith(client.subscribe(unknown, { unkeyed: true }, { decode: (b) => b }), Code.NOT_FOUND);
  assert.equal(notFound.retryable, false);
  await rejectsWith(client.subscribe(BROADCAST, { key: "dev-7" }, { decode: (b) => b }), Code.INVALID_ARGUMENT);
  await rejectsWith(client.publish(BROADCAST, "dev-7", blob(Uint8Array.of(1))), Code.INVALID_ARGUMENT);
  await rejectsWith(client.publish(TOTAL, "", new Uint8Array(0)), Code.FAILED_PRECONDITION);
  // Selectors are checked before anything is sent.
  await rejectsWith(client.subscribe(BROADCAST, { key: "" }, { decode: (b) => b }), Code.INVALID_ARGUMENT);
});

test("a closed subscription ends its iteration and gets no more events", async () => {
  const a = await client.subscribe(BROADCAST, { unkeyed: true }, { decode: blobText });
  const b = await client.subscribe(BROADCAST, { unkeyed: true }, { decode: blobText });
  const waiting = a[Symbol.asyncIterator]().next();
  a.close();
  assert.deepEqual(await waiting, { value: undefined, done: true }, "a pending next() ends");
  await client.publish(BROADCAST, "", blob(text.encode("after")));
  assert.equal((await nextEvent(b)).message, "after");
  assert.deepEqual(await a[Symbol.asyncIterator]().next(), { value: undefined, done: true });
  b.close();
});

test("a reader that falls behind loses the oldest events, counted in `missed`", async () => {
  const small = await Client.connect({ endpoints: [gateway.tcpUrl], transport: nodeTransport, subscriptionBuffer: 4 });
  try {
    const slow = await small.subscribe(BROADCAST, { unkeyed: true }, { decode: blobText });
    // A second subscription on the same connection sees the same stream: once it has the last
    // event, so does `slow` (the connection delivers in order).
    const witness = await small.subscribe(BROADCAST, { unkeyed: true }, { decode: blobText, bufferSize: 100 });
    for (let i = 0; i < 20; i++) await client.publish(BROADCAST, "", blob(text.encode(String(i))));
    for (let i = 0; i < 20; i++) assert.equal((await nextEvent(witness)).message, String(i));
    const got = [];
    for (let i = 0; i < 4; i++) {
      const { message, missed } = await nextEvent(slow);
      got.push([message, missed]);
    }
    assert.deepEqual(got, [["16", 16], ["17", 0], ["18", 0], ["19", 0]]);
  } finally {
    await small.close();
  }
});

test("undecodable events are skipped and reported", async () => {
  const reported: [string, string][] = [];
  const sub: Subscription<string> = await client.subscribe(
    BROADCAST,
    { unkeyed: true },
    {
      decode: (payload) => {
        const s = blobText(payload);
        if (s.startsWith("bad")) throw new Error(`cannot decode ${s}`);
        return s;
      },
      onDecodeError: (error, key) => reported.push([(error as Error).message, key]),
    },
  );
  for (const s of ["one", "bad 1", "bad 2", "two"]) await client.publish(BROADCAST, "", blob(text.encode(s)));
  assert.equal((await nextEvent(sub)).message, "one");
  assert.deepEqual(await nextEvent(sub), { key: "", message: "two", missed: 0, resumed: false, recovered: false });
  assert.deepEqual(reported, [["cannot decode bad 1", ""], ["cannot decode bad 2", ""]]);
  sub.close();
});

test("subscribing can be abandoned with a signal, and times out without an answer", async () => {
  await rejectsWith(
    client.subscribe(BROADCAST, { unkeyed: true }, { decode: (b) => b, signal: AbortSignal.abort() }),
    Code.CANCELLED,
  );
  await gateway.pause();
  try {
    const controller = new AbortController();
    const pending = client.subscribe(BROADCAST, { unkeyed: true }, { decode: (b) => b, signal: controller.signal });
    const timedOut = client.subscribe(BROADCAST, { unkeyed: true }, { decode: (b) => b, timeoutMs: 200 });
    controller.abort();
    await rejectsWith(pending, Code.CANCELLED);
    const error = await rejectsWith(timedOut, Code.DEADLINE_EXCEEDED);
    assert.match(error.message, /subscribing to examples\.echo\.Echo\.broadcast got no answer within 200 ms/);
  } finally {
    gateway.resume();
  }
  // The abandoned SUBSCRIBEs were taken back (UNSUBSCRIBE): the connection goes on normally.
  const sub = await within(client.subscribe(BROADCAST, { unkeyed: true }, { decode: blobText }), 5000, "subscribe");
  await client.publish(BROADCAST, "", blob(text.encode("fine")));
  assert.equal((await nextEvent(sub)).message, "fine");
  sub.close();
});

test("aborting the signal of a live subscription closes it", async () => {
  const controller = new AbortController();
  const sub = await client.subscribe(BROADCAST, { unkeyed: true }, { decode: blobText, signal: controller.signal });
  controller.abort();
  assert.equal(await sub.ended, undefined);
  assert.deepEqual(await sub[Symbol.asyncIterator]().next(), { value: undefined, done: true });
});
