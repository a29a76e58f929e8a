// What the examples' browser tests share: a static web server, a real gateway process on free
// loopback ports, and Debian's headless Chromium driven by playwright-core. Used by
// examples/web (its test and serve.mjs), examples/tracker/web/test and examples/tracker/e2e.

import { spawn } from "node:child_process";
import { createReadStream, existsSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository's root. */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");
export const GATEWAY_BIN = process.env.GATEWAY_BIN ?? join(ROOT, "target/debug/gateway");
export const CHROMIUM_BIN = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".geojson": "application/geo+json",
  ".map": "application/json",
};

/**
 * Serves the files of `root` (`/` is `index.html`, nothing above `root`) and `files` (request
 * path → file anywhere) on `host:port` (0: any free port), GET only; resolves to the server once
 * it listens.
 */
export function serveStatic(root, { files = {}, host = "127.0.0.1", port = 0 } = {}) {
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? "/", "http://page").pathname;
    const file = files[path] ?? normalize(join(root, path === "/" ? "index.html" : path));
    const allowed = file.startsWith(root) || Object.values(files).includes(file);
    if (!allowed || !existsSync(file) || request.method !== "GET") {
      response.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    response.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
    createReadStream(file).pipe(response);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}

/**
 * Starts `target/debug/gateway` (or GATEWAY_BIN) with `args` on free loopback ports (TCP,
 * WebSocket, admin), ignoring the developer's GATEWAY_* variables; resolves once it logs where
 * it listens, to `{ child, tcp, ws, log() }`. The caller kills `child`.
 */
export function startGateway(args) {
  if (!existsSync(GATEWAY_BIN)) {
    throw new Error(`${GATEWAY_BIN} is missing: build it with \`cargo build -p gateway\``);
  }
  const all = ["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--ws-listen", "127.0.0.1:0", ...args];
  const env = { ...process.env, RUST_LOG: "info", NO_COLOR: "1" };
  for (const key of Object.keys(env)) if (key.startsWith("GATEWAY_")) delete env[key];
  const child = spawn(GATEWAY_BIN, all, { env, stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`the gateway did not say where it listens within 10 s:\n${log}`));
    }, 10_000);
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (text) => {
      log += text;
      const tcp = / listen=(\S+)/.exec(log);
      const ws = / websocket=(\S+)/.exec(log);
      if (tcp && ws) {
        clearTimeout(timer);
        resolve({ child, tcp: tcp[1], ws: ws[1], log: () => log });
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the gateway exited (${code ?? signal}) before listening:\n${log}`));
    });
  });
}

/** Debian's Chromium, headless, as root needs it (`--no-sandbox`), quiet and offline. */
export async function launchChromium() {
  if (!existsSync(CHROMIUM_BIN)) {
    throw new Error(`${CHROMIUM_BIN} is missing: install Debian's chromium (apt-get install chromium) or set CHROMIUM_BIN`);
  }
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: CHROMIUM_BIN,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
      "--disable-component-update", "--disable-default-apps", "--disable-extensions", "--no-first-run"],
  });
}
