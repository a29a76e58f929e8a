// Calls that take time, against a real deployment on NATS: a gateway with `--nats` and
// `echo-service --delay 500ms` as its own process. Many slow calls in flight at once finish
// together (they are pipelined, not queued behind each other); a cancelled call is cancelled
// at the gateway too (CANCEL); a deadline shorter than the service's delay fails the call.

import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { after, before, test } from "node:test";

import { Client, Code } from "@rpcgen/client";
import { nodeTransport } from "@rpcgen/client/node";

import { eventually, rejectsWith } from "./support/assertions.js";
import { Gateway } from "./support/gateway.js";
import { blob, blobData, ECHO } from "./support/messages.js";
import { requireNats, startEcho, startNats, stop } from "./support/nats.js";

let nats: { url: string; process: ChildProcess } | undefined;
let echo: ChildProcess | undefined;
let gateway: Gateway | undefined;
let client: Client | undefined;

before(async () => {
  requireNats();
  nats = await startNats();
  gateway = await Gateway.start({ args: ["--anonymous-roles", "all", "--nats", nats.url] });
  echo = await startEcho(nats.url, "500ms");
  client = await Client.connect({ endpoints: [gateway.tcpUrl], transport: nodeTransport });
  // The service may still be joining its queue group: wait until a call goes through.
  await eventually("the echo service answers", async () => {
    try {
      await client!.call(ECHO, blob(Uint8Array.of(0)));
      return true;
    } catch {
      return false;
    }
  });
});

after(async () => {
  await client?.close();
  await gateway?.kill();
  await stop(echo);
  await stop(nats?.process);
});

test("slow calls in flight at once finish together", async () => {
  const started = performance.now();
  const replies = await Promise.all(
    Array.from({ length: 40 }, (_, i) => client!.call(ECHO, blob(Uint8Array.of(i)))),
  );
  const took = performance.now() - started;
  assert.deepEqual(replies.map((r) => blobData(r)[0]), Array.from({ length: 40 }, (_, i) => i));
  // One after the other they would take 20 s.
  assert.ok(took < 3000, `40 calls of 500 ms took ${Math.round(took)} ms`);
});

test("a cancelled call is cancelled at the gateway too", async () => {
  const controller = new AbortController();
  const call = client!.call(ECHO, blob(Uint8Array.of(7)), { signal: controller.signal });
  setTimeout(() => controller.abort(), 100);
  await rejectsWith(call, Code.CANCELLED);
  const counted = /gateway_requests_total\{method="examples\.echo\.Echo\.echo",code="cancelled"\} (\d+)/;
  await eventually("the gateway counts the call cancelled", async () => Number(counted.exec(await gateway!.metrics())?.[1] ?? 0) >= 1);
});

test("a deadline shorter than the service's delay fails the call with deadline_exceeded", async () => {
  const started = performance.now();
  const error = await rejectsWith(client!.call(ECHO, blob(Uint8Array.of(8)), { timeoutMs: 200 }), Code.DEADLINE_EXCEEDED);
  const took = performance.now() - started;
  assert.ok(took >= 195 && took < 450, `failed after ${Math.round(took)} ms`);
  assert.equal(error.retryable, false);
  // The gateway stopped the call as well, by its own deadline or the client's CANCEL.
  const stopped = /gateway_requests_total\{method="examples\.echo\.Echo\.echo",code="(deadline_exceeded|cancelled)"\} (\d+)/g;
  await eventually("the gateway stopped the call", async () => {
    const text = await gateway!.metrics();
    return [...text.matchAll(stopped)].reduce((n, m) => n + Number(m[2]), 0) >= 2;
  });
});
