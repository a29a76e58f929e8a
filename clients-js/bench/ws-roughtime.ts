// Verified Roughtime answers through the gateway over one WebSocket, in Node: `depth` calls of
// `examples.roughtime.Roughtime.time` in flight, each for a fresh nonce, each reply verified with
// @rpcgen/client/roughtime (Web Crypto Ed25519 and SHA-512); or, as the baseline measured in the
// same run, Echo calls carrying a reply of the same size (1,450 bytes: a time reply's request and
// response). `unverified` makes the time calls without verifying: the gateway and the service
// alone. Bundled and run by scripts/bench-roughtime-ws.
//
// Usage: node ws-roughtime.mjs --target time|unverified|echo --url ws://HOST:PORT [--depth N]
//          [--warmup S] [--duration S]

import { parseArgs } from "node:util";

import { Client } from "@rpcgen/client";
import { nodeTransport } from "@rpcgen/client/node";
import { verifyRoughtime } from "@rpcgen/client/roughtime";

import { examples } from "./generated/index.js";

const { values } = parseArgs({
  options: {
    target: { type: "string" },
    url: { type: "string" },
    depth: { type: "string", default: "1" },
    warmup: { type: "string", default: "1" },
    duration: { type: "string", default: "5" },
  },
});
if (values.target !== "time" && values.target !== "unverified" && values.target !== "echo") {
  throw new Error("--target must be time, unverified or echo");
}
if (!values.url?.startsWith("ws://")) throw new Error("--url must be a ws:// URL");
const depth = Number(values.depth);
const [warmupS, durationS] = [Number(values.warmup), Number(values.duration)];

const client = await Client.connect({ endpoints: [values.url], transport: nodeTransport, name: "bench-roughtime" });
const clock = new examples.roughtime.RoughtimeClient(client);
const echo = new examples.echo.EchoClient(client);
const key = (await clock.publicKey(new examples.roughtime.EmptyT())).keyArray();
const blob = new examples.echo.BlobT({ data: new Uint8Array(1450).fill(0x5a) }).toBytes();

let measuring = false;
let stopped = false;
let answered = 0;
let failed = 0;
const latencies: number[] = [];

async function once(): Promise<void> {
  if (values.target === "echo") {
    await echo.echo(blob);
    return;
  }
  const nonce = crypto.getRandomValues(new Uint8Array(32));
  const reply = await clock.time(new examples.roughtime.TimeRequestT({ nonce, draft: false }));
  if (values.target === "time") await verifyRoughtime(reply.requestArray(), reply.responseArray(), key, nonce);
}

const loops = Array.from({ length: depth }, async () => {
  while (!stopped) {
    const started = performance.now();
    try {
      await once();
      if (measuring) {
        answered += 1;
        latencies.push((performance.now() - started) * 1000);
      }
    } catch {
      if (measuring) failed += 1;
    }
  }
});
await new Promise((r) => setTimeout(r, warmupS * 1000));
measuring = true;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
await new Promise((r) => setTimeout(r, durationS * 1000));
measuring = false;
const seconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
stopped = true;
await Promise.all(loops);
await client.close();
latencies.sort((a, b) => a - b);
const pct = (p: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0);
console.log(
  JSON.stringify({
    target: values.target,
    depth,
    per_second: Math.round(answered / seconds),
    failed,
    p50_us: pct(0.5),
    p99_us: pct(0.99),
    node_cpu_us_per_call: Math.round(((cpu.user + cpu.system) / Math.max(answered, 1)) * 10) / 10,
  }),
);
