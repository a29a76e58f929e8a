// The operator's console (`GET /console` on the admin port) in Debian's headless Chromium
// (playwright-core), against a real gateway process with an admin token: the page asks for the
// token, then shows a call a test client made (the method's count, the client's connection);
// a switch set from the page (Disable, with a reason) refuses the client's next call with that
// reason, and Normal lets the one after through. Screenshots go to gateway/console-test/artifacts/.
//
// Needs: `cargo build -p gateway`, `npm ci`, `npm run build -w @rpcgen/client`, Debian's
// chromium. scripts/test does all of it.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, test } from "node:test";

import { Client, Code, RpcError } from "@rpcgen/client";
import { nodeTransport } from "@rpcgen/client/node";
import { Builder } from "flatbuffers";

import { launchChromium, startGateway } from "../../examples/support/browser.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = join(HERE, "artifacts");
const TOKEN = "console-t0ken";
/** `examples.echo.Echo.echo`: its id is the FNV-1a hash of that name (docs/protocol.md). */
const ECHO = { id: 0x62e9e3df, name: "examples.echo.Echo.echo", idempotent: true };
const SERVICE = "examples.echo.Echo";

/** An `examples.echo.Blob` with no data: a FlatBuffers table without fields. */
function emptyBlob() {
  const builder = new Builder(16);
  builder.startObject(1);
  builder.finish(builder.endObject());
  return builder.asUint8Array();
}

let gateway;
let admin;
let client;
let browser;

before(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  gateway = await startGateway(["--anonymous-roles", "all", "--admin-token", TOKEN]);
  admin = / admin=(\S+)/.exec(gateway.log())[1];
  client = await Client.connect({ endpoints: [`tcp://${gateway.tcp}`], transport: nodeTransport, name: "console-test-client" });
  browser = await launchChromium();
});

after(async () => {
  await client?.close();
  await browser?.close();
  gateway?.child.kill("SIGKILL");
});

test("the console shows a client's calls and a switch set there refuses the next call", async () => {
  for (let i = 0; i < 5; i++) await client.call(ECHO, emptyBlob());

  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const problems = [];
  page.on("pageerror", (e) => problems.push(String(e)));
  await page.goto(`http://${admin}/console`);

  // The token is asked for, then kept for the tab.
  await page.locator("#token").waitFor({ state: "visible", timeout: 10_000 });
  await page.screenshot({ path: join(ARTIFACTS, "console-login.png") });
  await page.fill("#token", TOKEN);
  await page.click("#login-form button");

  const echoRow = page.locator(`#methods tr[data-method="${ECHO.name}"]`);
  await echoRow.waitFor({ timeout: 10_000 });
  // The five calls, counted (the second cell), and the client's connection listed.
  await page.waitForFunction(
    (name) => Number(document.querySelector(`#methods tr[data-method="${name}"] td:nth-child(2)`)?.textContent) >= 5,
    ECHO.name,
    { timeout: 10_000 },
  );
  await page.locator("#connections td", { hasText: "console-test-client" }).waitFor({ timeout: 10_000 });
  // Services and their instances, from $SRV.PING.
  await page.locator(`#services tr[data-service="${SERVICE}"]`).waitFor({ timeout: 10_000 });
  const instances = await page.locator(`#services tr[data-service="${SERVICE}"] td:nth-child(2)`).textContent();
  assert.equal(instances, "1", "one in-process instance of the echo service");
  // The settings, secrets masked.
  const token = await page.locator("#settings tr", { hasText: "admin_token" }).locator("td:nth-child(2)").textContent();
  assert.equal(token, "***");
  assert.ok(!(await page.content()).includes(TOKEN), "the token is nowhere in the page");
  await page.screenshot({ path: join(ARTIFACTS, "console.png"), fullPage: true });

  // Disable the service from the page, with a reason.
  const switchRow = page.locator(`#switches tr[data-service="${SERVICE}"]`);
  await switchRow.locator("input").fill("maintenance from the console");
  await switchRow.locator('button[data-action="disable"]').click();
  await page.locator(`#switches tr[data-service="${SERVICE}"] .pill`, { hasText: "disabled" }).waitFor({ timeout: 10_000 });
  await page.screenshot({ path: join(ARTIFACTS, "console-disabled.png"), fullPage: true });

  const refused = await client.call(ECHO, emptyBlob()).then(
    () => assert.fail("the call went through a disabled service"),
    (e) => e,
  );
  assert.ok(refused instanceof RpcError, String(refused));
  assert.equal(refused.code, Code.UNAVAILABLE);
  assert.match(refused.message, /maintenance from the console/);

  // Back to normal from the page: the next call is served.
  await page.locator(`#switches tr[data-service="${SERVICE}"] button[data-action="normal"]`).click();
  await page.locator(`#switches tr[data-service="${SERVICE}"] .pill`, { hasText: "normal" }).waitFor({ timeout: 10_000 });
  await client.call(ECHO, emptyBlob());
  // The refusal is counted on the method's row.
  await page.waitForFunction(
    (name) => Number(document.querySelector(`#methods tr[data-method="${name}"] td:nth-child(6)`)?.textContent) >= 1,
    ECHO.name,
    { timeout: 10_000 },
  );
  assert.deepEqual(problems, [], "no script errors on the page");
  await page.close();
});
