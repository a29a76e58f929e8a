// A real gateway process for the tests: `target/debug/gateway` (build it first with
// `cargo build -p gateway -p some-api -p echo`), on free loopback ports, with the in-process bus
// and the example services (SomeApi, Echo). Killed when the test ends, and when the test
// process exits whatever happened.

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository's root, from dist-test/support/. */
export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/** The gateway binary: `$GATEWAY_BIN`, or the workspace's debug build. */
export const GATEWAY_BIN = process.env.GATEWAY_BIN ?? join(ROOT, "target/debug/gateway");

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

export interface GatewayOptions {
  /** TOML settings (`--config`); written to a temporary file. */
  toml?: string;
  /** More command-line flags. Default: `--anonymous-roles all` when there is no `toml`. */
  args?: string[];
  /** Environment variables for the gateway (its example services read some: `MAILBOX_SHARDS`). */
  env?: Record<string, string>;
}

/** A running gateway. */
export class Gateway {
  private child: ChildProcess | null = null;
  private logs: string[] = [];
  /** `host:port` clients connect to over TCP. */
  addr = "";
  /** `host:port` of the admin HTTP endpoint. */
  admin = "";
  /** `host:port` of the WebSocket endpoint, when the gateway has one. */
  wsAddr = "";

  private constructor(
    private readonly flags: string[],
    private readonly env: Record<string, string> = {},
  ) {}

  static async start(options: GatewayOptions = {}): Promise<Gateway> {
    if (!existsSync(GATEWAY_BIN)) {
      throw new Error(
        `${GATEWAY_BIN} is missing: build the gateway and the example services first, from the repository root: ` +
          "`cargo build -p gateway -p some-api -p echo`",
      );
    }
    const flags = ["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"];
    // Every test gateway gets its own WebSocket port (the default, 7402, may be taken).
    flags.push("--ws-listen", "127.0.0.1:0");
    if (options.toml !== undefined) {
      const dir = mkdtempSync(join(tmpdir(), "rpcgen-client-test-"));
      const file = join(dir, "gateway.toml");
      writeFileSync(file, options.toml);
      flags.push("--config", file);
    }
    flags.push(...(options.args ?? (options.toml === undefined ? ["--anonymous-roles", "all"] : [])));
    const gateway = new Gateway(flags, options.env);
    await gateway.spawn(flags);
    return gateway;
  }

  get tcpUrl(): string {
    return `tcp://${this.addr}`;
  }

  get wsUrl(): string {
    return `ws://${this.wsAddr}`;
  }

  /** Everything the gateway logged, for failure messages. */
  get log(): string {
    return this.logs.join("");
  }

  private spawn(flags: string[]): Promise<void> {
    const env: NodeJS.ProcessEnv = { ...process.env, RUST_LOG: "info", NO_COLOR: "1" };
    // The developer's environment must not change what the tests see.
    for (const key of Object.keys(env)) if (key.startsWith("GATEWAY_") && key !== "GATEWAY_BIN") delete env[key];
    Object.assign(env, this.env);
    const child = spawn(GATEWAY_BIN, flags, { env, stdio: ["ignore", "ignore", "pipe"] });
    this.child = child;
    running.add(child);
    child.once("exit", () => running.delete(child));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`the gateway did not log its address within 10 s:\n${this.log}`));
      }, 10_000);
      let pending = "";
      child.stderr!.setEncoding("utf8");
      child.stderr!.on("data", (text: string) => {
        this.logs.push(text);
        pending += text;
        let newline: number;
        while ((newline = pending.indexOf("\n")) >= 0) {
          const line = pending.slice(0, newline);
          pending = pending.slice(newline + 1);
          const listen = / listen=(\S+)/.exec(line);
          if (!listen) continue;
          this.addr = listen[1]!;
          this.admin = / admin=(\S+)/.exec(line)?.[1] ?? "";
          this.wsAddr = / websocket=(\S+)/.exec(line)?.[1] ?? "";
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the gateway exited (${code ?? signal}) before listening:\n${this.log}`));
      });
    });
  }

  /** Kills the process (SIGKILL by default) and waits for it to exit. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill(signal);
    await exited;
    this.child = null;
  }

  /** Sends a signal without waiting (SIGSTOP, SIGCONT, SIGTERM). */
  signal(signal: NodeJS.Signals): void {
    this.child?.kill(signal);
  }

  /**
   * Stops the process (SIGSTOP) and waits until every one of its threads is stopped: `kill`
   * returns before a thread running on another core has stopped, and such a thread could still
   * answer a request sent right after.
   */
  async pause(): Promise<void> {
    const pid = this.child?.pid;
    if (pid === undefined) throw new Error("the gateway is not running");
    this.child!.kill("SIGSTOP");
    const stopped = () =>
      readdirSync(`/proc/${pid}/task`).every((tid) => {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
        // The state follows the command name, which is in parentheses.
        return /^[tT]$/.test(stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3));
      });
    const until = performance.now() + 5000;
    while (!stopped()) {
      if (performance.now() > until) throw new Error("the gateway did not stop within 5 s of SIGSTOP");
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }

  /** Lets a paused process run again (SIGCONT). */
  resume(): void {
    this.child?.kill("SIGCONT");
  }

  /** Waits for the process to exit by itself (after SIGTERM, say), at most `ms`. */
  async exited(ms: number): Promise<number | null> {
    const child = this.child;
    if (!child) return null;
    if (child.exitCode !== null) return child.exitCode;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the gateway did not exit within ${ms} ms`)), ms);
      child.once("exit", (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
  }

  /** Starts the gateway again on the same ports (after `kill`). */
  async restart(): Promise<void> {
    await this.kill();
    const same: Record<string, string> = { "--listen": this.addr, "--admin-listen": this.admin, "--ws-listen": this.wsAddr };
    const flags = this.flags.map((flag, i) => same[this.flags[i - 1] ?? ""] || flag);
    await this.spawn(flags);
  }

  /** The admin endpoint's `/metrics` text. */
  async metrics(): Promise<string> {
    const response = await fetch(`http://${this.admin}/metrics`);
    return response.text();
  }
}
