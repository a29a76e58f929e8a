// Builds the web example and serves it on loopback, printing the URL to open and the gateway
// command that lets the page in.
//
// Usage: node examples/web/serve.mjs [--port 8080] [--gateway ws://127.0.0.1:7402]

import { parseArgs } from "node:util";

import { serveStatic } from "../support/browser.mjs";
import { build, DIST } from "./build.mjs";

const { values } = parseArgs({
  options: { port: { type: "string", default: "8080" }, gateway: { type: "string", default: "ws://127.0.0.1:7402" } },
});
try {
  await build();
} catch (error) {
  console.error(`serve.mjs: ${error instanceof Error ? error.message : error}`);
  process.exit(1);
}
const server = await serveStatic(DIST, { port: Number(values.port) });
const origin = `http://127.0.0.1:${server.address().port}`;
console.log(`Start a gateway that lets this page in:
  cargo run --release -p gateway -- --anonymous-roles all --allowed-origins ${origin}
then open ${origin}/?gateway=${encodeURIComponent(values.gateway)}`);
