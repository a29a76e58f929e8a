// Builds the web example and serves it on loopback, printing the URL to open and the gateway
// command that lets the page in.
//
// Usage: node examples/web/serve.mjs [--port 8080] [--gateway ws://127.0.0.1:7402]

import { createReadStream, existsSync } from "node:fs";
import { createServer } from "node:http";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import { build, DIST } from "./build.mjs";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".map": "application/json",
};

/**
 * Serves the files of `root` on `host:port` (0: any free port); resolves to the server once it
 * listens. Only the files in `root`, nothing above it.
 */
export function serve(root, { host = "127.0.0.1", port = 0 } = {}) {
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? "/", "http://page").pathname;
    const file = normalize(join(root, path === "/" ? "index.html" : path));
    if (!file.startsWith(root) || !existsSync(file) || request.method !== "GET") {
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

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { port: { type: "string", default: "8080" }, gateway: { type: "string", default: "ws://127.0.0.1:7402" } },
  });
  try {
    await build();
  } catch (error) {
    console.error(`serve.mjs: ${error instanceof Error ? error.message : error}`);
    process.exit(1);
  }
  const server = await serve(DIST, { port: Number(values.port) });
  const { port } = server.address();
  const origin = `http://127.0.0.1:${port}`;
  console.log(`Start a gateway that lets this page in:
  cargo run --release -p gateway -- --anonymous-roles all --allowed-origins ${origin}
then open ${origin}/?gateway=${encodeURIComponent(values.gateway)}`);
}
