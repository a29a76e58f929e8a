// The main entry is browser-safe: esbuild bundles it for the browser without Node built-ins,
// and the bundle runs in a context holding only what browsers have (no `process`, `Buffer`,
// `require`). The Node entry bundles for Node.

import assert from "node:assert/strict";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import vm from "node:vm";

import { build } from "esbuild";

const dist = (file: string) => fileURLToPath(new URL(`../dist/${file}`, import.meta.url));

test("the main entry bundles for browsers and runs with browser globals only", async () => {
  const result = await build({
    entryPoints: [dist("index.js")],
    bundle: true,
    platform: "browser",
    format: "iife",
    globalName: "rpcgen",
    write: false,
    logLevel: "silent",
  });
  const code = result.outputFiles[0]!.text;
  assert.doesNotMatch(code, /["']node:/, "no Node built-in is imported");

  const opened: string[] = [];
  class FakeWebSocket {
    binaryType = "blob";
    readyState = 0;
    onopen = null;
    onmessage = null;
    onclose: ((event: { code: number; reason: string }) => void) | null = null;
    onerror = null;
    constructor(url: string) {
      opened.push(url);
      setTimeout(() => this.onclose?.({ code: 1006, reason: "" }), 1);
    }
    send() {}
    close() {}
  }
  const browser = {
    TextEncoder,
    TextDecoder,
    URL,
    AbortController,
    AbortSignal,
    DataView,
    performance,
    setTimeout,
    clearTimeout,
    setInterval,
    clearInterval,
    queueMicrotask,
    console,
    WebSocket: FakeWebSocket,
  };
  const context = vm.createContext({ ...browser });
  vm.runInContext(`${code}; globalThis.rpcgen = rpcgen;`, context);
  assert.equal(vm.runInContext("typeof process + typeof Buffer + typeof require", context), "undefinedundefinedundefined");
  const result2 = await vm.runInContext(
    `(async () => {
      const { Client, Code, encodeFrame, decodeMessage } = rpcgen;
      const bytes = encodeFrame({ type: "cancel", requestId: 7 });
      const frame = decodeMessage(bytes.subarray(4));
      const client = new Client({ endpoints: ["ws://127.0.0.1:9/rpc"], connectTimeoutMs: 50 });
      const error = await client.call({ id: 1, name: "a.B.c", idempotent: true }, new Uint8Array(0), { timeoutMs: 30 }).catch((e) => e);
      await client.close();
      return { frame, code: error.code, unavailable: Code.UNAVAILABLE, message: error.message };
    })()`,
    context,
  );
  assert.equal(JSON.stringify(result2.frame), JSON.stringify({ type: "cancel", requestId: 7 }));
  assert.equal(result2.code, result2.unavailable, result2.message);
  assert.ok(opened.includes("ws://127.0.0.1:9/rpc"), "the global WebSocket was used");
});

test("the Node entry bundles for Node", async () => {
  const result = await build({
    entryPoints: [dist("node.js")],
    bundle: true,
    platform: "node",
    format: "esm",
    write: false,
    logLevel: "silent",
    // An optional peer dependency, loaded on first use.
    external: ["ws"],
  });
  assert.ok(result.outputFiles[0]!.text.includes("tcp:"));
});
