// The browser test: the web example, bundled by esbuild and served on loopback, opened in
// Debian's headless Chromium (driven by playwright-core), calls a real gateway over WebSocket
// and shows topic events that a Node client publishes over TCP. Asserts on what the page shows,
// and saves a screenshot in examples/web/test-artifacts/.
//
// Needs: `cargo build -p gateway -p rpcgen`, `npm ci`, `npm run build -w @rpcgen/client`, and
// Chromium (`apt-get install chromium`, or CHROMIUM_BIN). scripts/test does all of it.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { launchChromium, serveStatic, startGateway } from "../../support/browser.mjs";
import { build, HERE } from "../build.mjs";

const ARTIFACTS = join(HERE, "test-artifacts");

let page;
let browser;
let server;
let gateway;
let peer;

before(async () => {
  await build();
  // The Node peer uses the same generated stubs: bundle it next to them, packages left external.
  const esbuild = await import("esbuild");
  const peerModule = join(HERE, "dist-test/peer.mjs");
  await esbuild.build({
    entryPoints: [join(HERE, "test/peer.ts")], bundle: true, platform: "node", format: "esm",
    target: "node20", packages: "external", outfile: peerModule, logLevel: "warning",
  });
  server = await serveStatic(join(HERE, "dist"));
  const origin = `http://127.0.0.1:${server.address().port}`;
  gateway = await startGateway(["--anonymous-roles", "all", "--allowed-origins", origin]);
  peer = await (await import(peerModule)).connect(`tcp://${gateway.tcp}`);
  browser = await launchChromium();
  page = await browser.newPage();
  page.on("pageerror", (error) => console.error(`page error: ${error.message}`));
  await page.goto(`${origin}/?gateway=${encodeURIComponent(`ws://${gateway.ws}`)}`);
});

after(async () => {
  if (page) {
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "web-example.png"), fullPage: true }).catch(() => {});
  }
  await browser?.close();
  await peer?.close();
  gateway?.child.kill("SIGKILL");
  server?.close();
});

/** Waits until `selector`'s text satisfies `check` (5 s at most), then returns the text. */
async function textOf(selector, check, what) {
  try {
    await page.waitForFunction(
      ([selector, source]) => new Function("text", `return (${source})(text)`)(document.querySelector(selector)?.textContent ?? ""),
      [selector, check.toString()],
      { timeout: 5_000 },
    );
  } catch {
    const now = await page.textContent(selector).catch(() => "(absent)");
    assert.fail(`${what}: ${selector} shows ${JSON.stringify(now)}\ngateway log:\n${gateway.log()}`);
  }
  return page.textContent(selector);
}

/** What the Node peer received on Echo.broadcast, once it has `count` texts (5 s at most). */
async function receivedByPeer(count) {
  const deadline = Date.now() + 5_000;
  while (peer.received.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return [...peer.received];
}

test("the page connects to the gateway over WebSocket", async () => {
  const state = await textOf("#state", (t) => t.startsWith("connected"), "the page did not connect");
  assert.match(state, /^connected to /);
});

test("the page makes RPCs and shows replies and declared errors", async () => {
  await page.fill("#a", "40");
  await page.fill("#b", "2");
  await page.click("#sum-button");
  assert.equal(await textOf("#sum", (t) => t !== "" && t !== "…", "no reply to 40 + 2"), "42");

  await page.fill("#a", "9223372036854775807");
  await page.fill("#b", "1");
  await page.click("#sum-button");
  const error = await textOf("#sum", (t) => t !== "42" && t !== "…", "no error for an overflowing sum");
  assert.match(error, /^out_of_range \(Overflow\): /);
});

test("the page gets the time through the gateway and verifies it with Web Crypto", async () => {
  await page.click("#time-button");
  const shown = await textOf("#time", (t) => t !== "" && t !== "…", "no verified time");
  const match = /^verified: (\S+) ± (\d+) s \(version 1\)$/.exec(shown ?? "");
  assert.ok(match, `#time shows ${JSON.stringify(shown)}`);
  const skew = Math.abs(Date.parse(match[1]) - Date.now());
  assert.ok(skew < 60_000, `the verified time is ${skew} ms from now`);
  assert.equal((await page.textContent("#time-key"))?.length, 44, "the key is shown in base64");
});

test("the page shows the events a Node client causes, in order", async () => {
  await peer.sub(5n);
  assert.equal(await textOf("#changes", (t) => t === "1", "the first total did not arrive"), "1");
  assert.equal(await page.textContent("#total"), "-5");
  await peer.sub(7n);
  assert.equal(await textOf("#total", (t) => t === "-12", "the second total did not arrive"), "-12");
  assert.equal(await page.textContent("#changes"), "2");

  for (const text of ["one", "two", "three"]) await peer.broadcast(text);
  await textOf("#received", (t) => t === "3", "the broadcasts did not all arrive");
  const items = await page.$$eval("#broadcasts li", (lis) => lis.map((li) => li.textContent));
  assert.deepEqual(items, ["three", "two", "one"]);
  assert.deepEqual(await receivedByPeer(3), ["one", "two", "three"]);
});

test("what the page publishes reaches the other subscribers", async () => {
  await page.fill("#message", "from the browser");
  await page.click("#broadcast-button");
  await textOf("#published", (t) => t === "published", "the page's publication was not confirmed");
  // The page subscribes to the topic too, so its own event comes back through the gateway; the
  // Node peer receives it over TCP.
  await textOf("#received", (t) => t === "4", "the page's own broadcast did not come back");
  assert.equal(await page.textContent("#broadcasts li:first-child"), "from the browser");
  assert.deepEqual(await receivedByPeer(4), ["one", "two", "three", "from the browser"]);
});
