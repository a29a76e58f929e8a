// A real nats-server (with JetStream, which a gateway on NATS needs for its switches) and the
// echo service as its own process, for tests of calls that take time: `echo-service --delay`.
// Skipped with a reason when nats-server is not installed (scripts/test installs it).

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { ROOT } from "./gateway.js";

const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

/** Why NATS tests cannot run here, or undefined when they can. */
export function requireNats(): void {
  const found = spawnSync("nats-server", ["--version"], { encoding: "utf8" });
  if (found.error) throw new Error("nats-server is not installed (scripts/test installs Debian's nats-server)");
}

/** A free loopback port (bound and released; the tests' processes take it right after). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/** Starts `command`, resolves once a line of its stderr matches `ready`. */
function start(command: string, args: string[], ready: RegExp, what: string): Promise<ChildProcess> {
  const child = spawn(command, args, { env: { ...process.env, RUST_LOG: "info", NO_COLOR: "1" }, stdio: ["ignore", "ignore", "pipe"] });
  children.add(child);
  child.once("exit", () => children.delete(child));
  let log = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${what} not ready within 10 s:\n${log}`));
    }, 10_000);
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (text: string) => {
      log += text;
      if (ready.test(log)) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code ?? signal}):\n${log}`));
    });
  });
}

export async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGKILL");
  await exited;
}

/** nats-server on a free port; its URL. */
export async function startNats(): Promise<{ url: string; process: ChildProcess }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "rpcgen-client-nats-"));
  const process = await start(
    "nats-server",
    ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir],
    /Server is ready/,
    "nats-server",
  );
  return { url: `nats://127.0.0.1:${port}`, process };
}

/** `echo-service` answering each call after `delay` (`"1s"`). */
export function startEcho(natsUrl: string, delay: string): Promise<ChildProcess> {
  const bin = process.env.ECHO_SERVICE_BIN ?? join(ROOT, "target/debug/echo-service");
  return start(bin, ["--nats", natsUrl, "--delay", delay], /serving|ready|listening|started/i, "echo-service");
}

/** A `tso` instance (the timestamp oracle, docs/tso.md) on `natsUrl`, resolved once it leads. */
export function startTso(natsUrl: string, id = "1"): Promise<ChildProcess> {
  const bin = process.env.TSO_BIN ?? join(ROOT, "target/debug/tso");
  return start(bin, ["--id", id, "--nats", natsUrl, "--replicas", "1", "--lease", "1s"], /instance \S+ leads/, "tso");
}
