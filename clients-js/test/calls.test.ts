// Calls against a real gateway over TCP: replies and errors, pipelining under the gateway's
// in-flight limit, deadlines, cancellation, unknown methods, bad arguments.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Client, Code } from "@rpcgen/client";
import { nodeTransport } from "@rpcgen/client/node";

import { rejectsWith } from "./support/assertions.js";
import { Gateway } from "./support/gateway.js";
import { blob, blobData, DELAY, delay, ECHO, OVERFLOW_ID, replySum, requestSum, stableId, SUM } from "./support/messages.js";

let gateway: Gateway;
let client: Client;

before(async () => {
  // A small in-flight limit, so that pipelining past it is tested.
  gateway = await Gateway.start({ args: ["--anonymous-roles", "all", "--max-in-flight-per-connection", "8"] });
  client = await Client.connect({ endpoints: [gateway.tcpUrl], transport: nodeTransport });
});

after(async () => {
  await client?.close();
  await gateway?.kill();
});

test("a call returns the service's reply", async () => {
  const reply = await client.call(SUM, requestSum(40n, 2n));
  assert.equal(replySum(reply), 42n);
  assert.deepEqual(client.state, { status: "connected", endpoint: gateway.tcpUrl, serverId: "gateway" });
});

test("an application error carries its code, id and message", async () => {
  const error = await rejectsWith(client.call(SUM, requestSum(9223372036854775807n, 1n)), Code.OUT_OF_RANGE);
  assert.equal(error.errorId, OVERFLOW_ID);
  assert.equal(error.retryable, false);
  assert.equal(error.codeName, "out_of_range");
  assert.match(error.message, /^out_of_range: 9223372036854775807 \+ 1 overflows/);
});

test("echo returns the bytes it was sent", async () => {
  const data = Uint8Array.from({ length: 3000 }, (_, i) => i % 251);
  assert.deepEqual(blobData(await client.call(ECHO, blob(data))), data);
});

test("many concurrent calls are pipelined within the gateway's in-flight limit", async () => {
  // 8 in flight at most: more would be refused by the gateway with resource_exhausted.
  const n = 1000;
  const calls = Array.from({ length: n }, (_, i) => client.call(SUM, requestSum(BigInt(i), 1_000_000n)));
  const sums = await Promise.all(calls);
  assert.deepEqual(
    sums.map(replySum),
    Array.from({ length: n }, (_, i) => BigInt(i) + 1_000_000n),
  );
});

test("an unknown method is unimplemented", async () => {
  const method = { id: stableId("examples.nothing.Nothing.here"), name: "examples.nothing.Nothing.here", idempotent: true };
  const error = await rejectsWith(client.call(method, new Uint8Array(0)), Code.UNIMPLEMENTED);
  assert.equal(error.retryable, false);
});

test("a call with no reply in time fails with deadline_exceeded, and the connection goes on", async () => {
  await gateway.pause();
  const started = performance.now();
  try {
    const error = await rejectsWith(client.call(ECHO, blob(Uint8Array.of(1)), { timeoutMs: 300 }), Code.DEADLINE_EXCEEDED);
    const took = performance.now() - started;
    assert.ok(took >= 290 && took < 1500, `gave up after ${took} ms`);
    assert.match(error.message, /examples\.echo\.Echo\.echo did not answer within 300 ms/);
  } finally {
    gateway.resume();
  }
  assert.equal(replySum(await client.call(SUM, requestSum(1n, 2n))), 3n);
  assert.equal(client.state.status, "connected");
});

test("aborting a call rejects it with cancelled and its reason as the cause", async () => {
  await gateway.pause();
  const controller = new AbortController();
  const call = client.call(ECHO, blob(Uint8Array.of(2)), { signal: controller.signal });
  setTimeout(() => controller.abort(new Error("the user left")), 50);
  try {
    const error = await rejectsWith(call, Code.CANCELLED);
    assert.ok(error.cause instanceof Error && error.cause.message === "the user left");
  } finally {
    gateway.resume();
  }
  // An already aborted signal fails at once, without sending anything.
  await rejectsWith(client.call(SUM, requestSum(1n, 1n), { signal: AbortSignal.abort() }), Code.CANCELLED);
  assert.equal(replySum(await client.call(SUM, requestSum(2n, 2n))), 4n);
});

test("a request larger than the gateway's maximum frame size fails without being sent", async () => {
  // The gateway states what its in-process bus carries (8 MiB, less 4 KiB for a call's headers).
  const error = await rejectsWith(client.call(ECHO, new Uint8Array(8 * 1024 * 1024)), Code.RESOURCE_EXHAUSTED);
  assert.equal(error.retryable, false);
  assert.match(error.message, /larger than the peer's maximum frame size of 8384512/);
  assert.equal(replySum(await client.call(SUM, requestSum(3n, 4n))), 7n);
});

test("bad arguments are refused clearly", async () => {
  await assert.rejects(client.call(SUM, "no" as unknown as Uint8Array), /the request is a Uint8Array/);
  await assert.rejects(client.call(SUM, new Uint8Array(0), { timeoutMs: -1 }), /invalid option `timeoutMs` \(-1\)/);
  await assert.rejects(
    client.call({ id: -5, name: "x", idempotent: false }, new Uint8Array(0)),
    /method x: its id -5 is not a u32/,
  );
});

test("finish() gets the answers in flight, then closes; later requests are cancelled", async () => {
  const finishing = await Client.connect({ endpoints: [gateway.tcpUrl], transport: nodeTransport });
  const text = new TextEncoder();
  const slow = finishing.call(DELAY, delay(300, text.encode("slow")));
  const quick = finishing.call(ECHO, blob(text.encode("quick")));
  // Both requests are written before the GOAWAY `done`, on the same connection.
  const finished = finishing.finish();
  await rejectsWith(finishing.call(ECHO, blob(text.encode("late"))), Code.CANCELLED);
  assert.equal(new TextDecoder().decode(blobData(await slow)), "slow");
  assert.equal(new TextDecoder().decode(blobData(await quick)), "quick");
  await finished;
  assert.equal(finishing.state.status, "closed");
});
