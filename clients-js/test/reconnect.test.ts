// Losing the gateway and coming back: a real gateway killed and restarted on the same port,
// two gateways in the endpoint list, a graceful shutdown (GOAWAY), a gateway that stops
// answering pings.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Client, Code, type ConnectionState, type Subscription } from "@rpcgen/client";
import { nodeTransport } from "@rpcgen/client/node";

import { eventually, nextEvent, rejectsWith } from "./support/assertions.js";
import { Gateway } from "./support/gateway.js";
import { blob, blobData, BROADCAST, replySum, requestSum, SUM } from "./support/messages.js";

const text = new TextEncoder();
const blobText = (payload: Uint8Array) => new TextDecoder().decode(blobData(payload));
const fast = { initialMs: 20, maxMs: 200 };

/** Publishes until `sub` receives one of the publications (a restored subscription may miss the first). */
async function receiveOne(client: Client, sub: Subscription<string>, label: string) {
  let i = 0;
  const timer = setInterval(() => {
    client.publish(BROADCAST, "", blob(text.encode(`${label} ${i++}`))).catch(() => {});
  }, 50);
  try {
    return await nextEvent(sub, 10_000);
  } finally {
    clearInterval(timer);
  }
}

test("calls fail retryably when the gateway dies, wait for it, and succeed once it is back; subscriptions resume", async () => {
  const gateway = await Gateway.start();
  const states: ConnectionState[] = [];
  const client = await Client.connect({
    endpoints: [gateway.tcpUrl],
    transport: nodeTransport,
    backoff: fast,
    onStateChange: (state) => states.push(state),
  });
  try {
    const sub = await client.subscribe(BROADCAST, { unkeyed: true }, { decode: blobText });
    await client.publish(BROADCAST, "", blob(text.encode("before")));
    assert.deepEqual(await nextEvent(sub), { key: "", message: "before", missed: 0, resumed: false, recovered: false });

    // Requests in flight when the connection is lost: they may have run.
    await gateway.pause();
    const idempotent = rejectsWith(client.call(SUM, requestSum(1n, 1n)), Code.UNAVAILABLE);
    const publication = rejectsWith(client.publish(BROADCAST, "", blob(text.encode("lost"))), Code.UNAVAILABLE);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await gateway.kill();
    const lost = await idempotent;
    assert.equal(lost.retryable, true, "sum is idempotent");
    assert.match(lost.message, /connection to tcp:\/\/.* lost .*the request may have run/);
    assert.equal((await publication).retryable, false, "a publication is not");
    await eventually("the client notices", () => client.state.status === "connecting");

    // Calls made meanwhile wait for a connection within their deadlines.
    const waiting = client.call(SUM, requestSum(20n, 22n), { timeoutMs: 15_000 });
    const hurried = await rejectsWith(client.call(SUM, requestSum(1n, 2n), { timeoutMs: 100 }), Code.UNAVAILABLE);
    assert.equal(hurried.retryable, true);
    assert.match(hurried.message, /no connection to a gateway within 100 ms \(last error: .*\)/);

    await gateway.restart();
    assert.equal(replySum(await waiting), 42n);
    assert.equal(client.state.status, "connected");
    const first = await receiveOne(client, sub, "after");
    assert.equal(first.resumed, true, "the first event after the reconnection says so");
    assert.match(first.message, /^after /);
    assert.equal((await receiveOne(client, sub, "later")).resumed, false);
    const statuses = states.map((s) => s.status);
    assert.deepEqual(statuses.slice(0, 2), ["connected", "connecting"]);
    assert.equal(statuses.at(-1), "connected");
  } finally {
    await client.close();
    await gateway.kill();
  }
  assert.deepEqual(client.state, { status: "closed", error: undefined });
});

test("with two gateways, the client moves to the next when its gateway dies, and back", async () => {
  const a = await Gateway.start();
  const b = await Gateway.start();
  const client = await Client.connect({ endpoints: [a.tcpUrl, b.tcpUrl], transport: nodeTransport, backoff: fast });
  try {
    assert.equal(client.state.status === "connected" && client.state.endpoint, a.tcpUrl);
    const sub = await client.subscribe(BROADCAST, { unkeyed: true }, { decode: blobText });
    await a.kill();
    await eventually("connected to b", () => client.state.status === "connected" && client.state.endpoint === b.tcpUrl);
    assert.equal(replySum(await client.call(SUM, requestSum(2n, 3n))), 5n);
    assert.equal((await receiveOne(client, sub, "on b")).resumed, true);

    await a.restart();
    await b.kill();
    await eventually("back on a", () => client.state.status === "connected" && client.state.endpoint === a.tcpUrl);
    assert.equal(replySum(await client.call(SUM, requestSum(3n, 4n))), 7n);
    assert.equal((await receiveOne(client, sub, "on a")).resumed, true);
  } finally {
    await client.close();
    await a.kill();
    await b.kill();
  }
});

test("a gateway shutting down gracefully (GOAWAY) hands the client over; what it did not take fails retryably", async () => {
  const a = await Gateway.start();
  const b = await Gateway.start();
  const states: ConnectionState[] = [];
  const client = await Client.connect({
    endpoints: [a.tcpUrl, b.tcpUrl],
    transport: nodeTransport,
    backoff: fast,
    onStateChange: (state) => states.push(state),
  });
  try {
    let stop = false;
    let done = 0;
    const failures: string[] = [];
    // Calls keep flowing, several in flight at a time, while `a` drains and exits.
    const callers = Array.from({ length: 4 }, async () => {
      while (!stop) {
        try {
          assert.equal(replySum(await client.call(SUM, requestSum(1n, 1n))), 2n);
          done += 1;
        } catch (e) {
          failures.push(String(e));
        }
      }
    });
    await eventually("calls flow", () => done > 50);
    a.signal("SIGTERM");
    assert.equal(await a.exited(20_000), 0, "a drained and stopped");
    await eventually("connected to b", () => client.state.status === "connected" && client.state.endpoint === b.tcpUrl);
    const before = done;
    await eventually("calls flow through b", () => done > before + 50);
    stop = true;
    await Promise.all(callers);
    // Requests the gateway did not take are failed retryably, never silently dropped.
    for (const failure of failures) assert.match(failure, /unavailable: gateway .* is going away \(shutting_down/);
    assert.ok(
      states.some((s) => s.status === "connecting" && /went away \(shutting_down/.test(s.lastError ?? "")),
      JSON.stringify(states),
    );
  } finally {
    await client.close();
    await a.kill();
    await b.kill();
  }
});

test("a gateway that stops answering pings is a lost connection", async () => {
  const gateway = await Gateway.start();
  const client = await Client.connect({
    endpoints: [gateway.tcpUrl],
    transport: nodeTransport,
    backoff: fast,
    keepaliveIntervalMs: 100,
  });
  try {
    await gateway.pause();
    await eventually("the client gives the connection up", () => client.state.status === "connecting", 5000);
    assert.match((client.state as { lastError?: string }).lastError ?? "", /answered no ping for 100 ms/);
    gateway.resume();
    await eventually("reconnected", () => client.state.status === "connected", 10_000);
    assert.equal(replySum(await client.call(SUM, requestSum(5n, 5n))), 10n);
  } finally {
    gateway.resume();
    await client.close();
    await gateway.kill();
  }
});

test("Client.connect fails when no endpoint answers, naming each", async () => {
  const gateway = await Gateway.start();
  const port = gateway.addr.split(":")[1];
  await gateway.kill();
  const error = await rejectsWith(
    Client.connect({ endpoints: [`tcp://127.0.0.1:${port}`, "tcp://localhost:1"], transport: nodeTransport }),
    Code.UNAVAILABLE,
  );
  assert.match(error.message, /^unavailable: no gateway reachable: `tcp:\/\/127\.0\.0\.1:\d+`: .*; `tcp:\/\/localhost:1`: /);
});
