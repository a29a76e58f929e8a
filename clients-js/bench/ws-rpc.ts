// The WebSocket RPC benchmark's load generator, in Node: pipelined Echo calls through the
// gateway with @rpcgen/client and the stubs rpcgen generates, or the same load of bare binary
// messages to a raw WebSocket echo server (`raw-echo --websocket`), the baseline. Both sides use the
// `ws` package, so the difference is the protocol, the client library and the gateway.
//
// Bundled and run by scripts/bench-ws, which imports the generated Echo stubs from
// `./generated/index.js` next to the bundle's entry (see the script).
//
// A third target, `loopback`, makes the same calls through an in-process transport that answers
// every REQUEST in the next turn of the event loop (no socket, no `ws`, no gateway): its CPU
// time per call is the client library's and the stubs' own, steady on a busy machine.
//
// Usage: node ws-rpc.mjs --target gateway|raw|loopback [--url ws://HOST:PORT] [--connections N]
//          [--depth N] [--payload BYTES] [--warmup S] [--duration S] [--json FILE]

import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

import { Client, RpcError, codeName, decodeMessage, encodeFrame, type Transport } from "@rpcgen/client";
import { nodeTransport } from "@rpcgen/client/node";
import { WebSocket } from "ws";

import { examples } from "./generated/index.js";

const { echo } = examples;

interface Settings {
  target: "gateway" | "raw" | "loopback";
  url: string;
  connections: number;
  depth: number;
  payload: number;
  warmupS: number;
  durationS: number;
  json: string | undefined;
}

function settings(): Settings {
  const { values } = parseArgs({
    options: {
      target: { type: "string" },
      url: { type: "string" },
      connections: { type: "string", default: "1" },
      depth: { type: "string", default: "1" },
      payload: { type: "string", default: "64" },
      warmup: { type: "string", default: "1" },
      duration: { type: "string", default: "5" },
      json: { type: "string" },
    },
  });
  const count = (name: string, text: string | undefined, min: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, not ${JSON.stringify(text)}`);
    return n;
  };
  if (values.target !== "gateway" && values.target !== "raw" && values.target !== "loopback") {
    throw new Error(`--target must be gateway, raw or loopback, not ${JSON.stringify(values.target)}`);
  }
  const url = values.target === "loopback" ? "ws://loopback/" : values.url;
  if (!url?.startsWith("ws://")) throw new Error(`--url must be a ws:// URL, not ${JSON.stringify(url)}`);
  return {
    target: values.target,
    url,
    connections: count("connections", values.connections, 1),
    depth: count("depth", values.depth, 1),
    payload: count("payload", values.payload, 0),
    warmupS: count("warmup", values.warmup, 0),
    durationS: count("duration", values.duration, 1),
    json: values.json,
  };
}

/**
 * Latencies in µs and counts, recorded only while `measuring`. Recording allocates nothing (a
 * typed array grown by doubling; times from `performance.now()`, not `bigint`s), so that the
 * recorder's garbage does not weigh on the collector's work for the code measured.
 */
class Recorder {
  measuring = false;
  stopped = false;
  private buffer = new Float64Array(1 << 20);
  private count = 0;
  readonly errors = new Map<string, number>();

  /** A call or message started at `started` (`performance.now()`) got its answer now. */
  ok(started: number): void {
    if (!this.measuring) return;
    if (this.count === this.buffer.length) {
      const bigger = new Float64Array(this.buffer.length * 2);
      bigger.set(this.buffer);
      this.buffer = bigger;
    }
    this.buffer[this.count++] = (performance.now() - started) * 1000;
  }

  get latencies(): Float64Array {
    return this.buffer.subarray(0, this.count);
  }

  error(name: string): void {
    if (this.measuring) this.errors.set(name, (this.errors.get(name) ?? 0) + 1);
  }
}

/**
 * A gateway in the process: WELCOME for HELLO, and for each REQUEST a RESPONSE with its
 * payload, handed over in the next turn of the event loop as views of one buffer (as `ws`
 * hands over what one read brought).
 */
const loopbackTransport: Transport = {
  schemes: ["ws:"],
  open(_url, events) {
    let pending: Uint8Array[] = [];
    const deliver = (): void => {
      const frames = pending;
      pending = [];
      for (const frame of frames) events.frame(frame);
    };
    const answer = (frame: Uint8Array): void => {
      if (pending.length === 0) setImmediate(deliver);
      pending.push(frame);
    };
    return Promise.resolve({
      send(bytes: Uint8Array) {
        if (bytes[4] === 0x10) {
          // REQUEST (prefix, type, flags, id, method, timeout, payload) -> RESPONSE (type, flags, id, payload).
          const reply = Buffer.allocUnsafe(bytes.length - 12);
          reply[0] = 0x11;
          reply[1] = 0;
          reply.set(bytes.subarray(6, 10), 2);
          reply.set(bytes.subarray(18), 6);
          return answer(reply);
        }
        const frame = decodeMessage(bytes.subarray(4));
        if (frame?.type === "hello") {
          const welcome = encodeFrame({
            type: "welcome",
            version: 1,
            maxFrameSize: 16 * 1024 * 1024,
            maxInFlight: 256,
            idleTimeoutMs: 0,
            serverId: "loopback",
            authExpiresInMs: 0,
          });
          answer(welcome.subarray(4));
        }
      },
      close() {
        setImmediate(() => events.closed("closed"));
      },
    });
  },
};

/** One loop per slot of every connection: call, wait for the reply, call again. */
async function runGateway(s: Settings, rec: Recorder): Promise<() => Promise<void>> {
  const request = new echo.BlobT({ data: new Uint8Array(s.payload).fill(0x5a) }).toBytes();
  const transport = s.target === "loopback" ? loopbackTransport : nodeTransport;
  const clients = await Promise.all(
    Array.from({ length: s.connections }, () =>
      Client.connect({ endpoints: [s.url], transport, name: "bench-ws", defaultTimeoutMs: 10_000 }),
    ),
  );
  const loops: Promise<void>[] = [];
  for (const client of clients) {
    const api = new echo.EchoClient(client);
    for (let slot = 0; slot < s.depth; slot += 1) {
      loops.push(
        (async () => {
          while (!rec.stopped) {
            const started = performance.now();
            try {
              const reply = await api.echo(request);
              if (reply.dataLength() !== s.payload) throw new Error(`a reply of ${reply.dataLength()} bytes`);
              rec.ok(started);
            } catch (error) {
              rec.error(error instanceof RpcError ? codeName(error.code) : String(error));
            }
          }
        })(),
      );
    }
  }
  return async () => {
    await Promise.all(loops);
    await Promise.all(clients.map((c) => c.close()));
  };
}

/** The same load on a raw echo: each connection keeps `depth` messages out, replies in order. */
async function runRaw(s: Settings, rec: Recorder): Promise<() => Promise<void>> {
  const message = new Uint8Array(s.payload).fill(0x5a);
  const sockets = await Promise.all(
    Array.from({ length: s.connections }, () => {
      const socket = new WebSocket(s.url, { perMessageDeflate: false });
      socket.binaryType = "nodebuffer";
      return new Promise<WebSocket>((resolve, reject) => {
        socket.once("open", () => resolve(socket));
        socket.once("error", reject);
      });
    }),
  );
  const done = sockets.map(
    (socket) =>
      new Promise<void>((resolve) => {
        const sent: number[] = [];
        let outstanding = 0;
        const send = (): void => {
          sent.push(performance.now());
          outstanding += 1;
          socket.send(message);
        };
        socket.on("message", (data: Buffer) => {
          outstanding -= 1;
          const started = sent.shift()!;
          if (data.length === s.payload) rec.ok(started);
          else rec.error(`a reply of ${data.length} bytes`);
          if (!rec.stopped) send();
          else if (outstanding === 0) resolve();
        });
        socket.once("close", () => resolve());
        for (let slot = 0; slot < s.depth; slot += 1) send();
      }),
  );
  return async () => {
    await Promise.all(done);
    for (const socket of sockets) socket.close();
  };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!);
}

async function main(): Promise<void> {
  const s = settings();
  const rec = new Recorder();
  const finish = s.target === "raw" ? await runRaw(s, rec) : await runGateway(s, rec);
  await new Promise((r) => setTimeout(r, s.warmupS * 1000));
  rec.measuring = true;
  const started = process.hrtime.bigint();
  const cpuBefore = process.cpuUsage();
  await new Promise((r) => setTimeout(r, s.durationS * 1000));
  rec.measuring = false;
  // Node's CPU time (every thread: the main one, the collector's helpers, libuv) over the
  // measured window, per call: the cost of a call in Node whatever the machine's other load.
  const cpu = process.cpuUsage(cpuBefore);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  rec.stopped = true;
  await finish();

  const sorted = rec.latencies.sort();
  const result = {
    target: s.target,
    connections: s.connections,
    depth: s.depth,
    payload_bytes: s.payload,
    seconds,
    calls: sorted.length,
    throughput_rps: sorted.length / seconds,
    node_cpu_us_per_call: (cpu.user + cpu.system) / Math.max(sorted.length, 1),
    node_cpu_user_us_per_call: cpu.user / Math.max(sorted.length, 1),
    node_cpu_system_us_per_call: cpu.system / Math.max(sorted.length, 1),
    node_cpu_share: (cpu.user + cpu.system) / 1e6 / seconds,
    latency_us: { p50: percentile(sorted, 50), p99: percentile(sorted, 99), p999: percentile(sorted, 99.9) },
    errors_by_status: Object.fromEntries(rec.errors),
  };
  console.error(
    `${s.target} ${s.connections}x${s.depth} ${s.payload} B: ${Math.round(result.throughput_rps)} calls/s, ` +
      `p50 ${result.latency_us.p50} µs, p99 ${result.latency_us.p99} µs, ` +
      `node ${result.node_cpu_us_per_call.toFixed(2)} µs cpu/call (${Math.round(100 * result.node_cpu_share)}% of a core), errors ${rec.errors.size === 0 ? 0 : JSON.stringify(result.errors_by_status)}`,
  );
  if (s.json) writeFileSync(s.json, JSON.stringify(result, null, 2));
}

main().catch((error: unknown) => {
  console.error(`ws-rpc: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
