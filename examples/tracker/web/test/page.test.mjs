// The dashboard's offline test: the page, bundled by build.mjs and served from dist/ with a
// `/city.geojson` made by `tracker-sim city` and a `/config.json` naming a real gateway (started
// with HS256 tokens), opened in Debian's headless Chromium (playwright-core). The gateway alone
// does not serve `Tracker`, so this covers what works without it: the login screen and the
// `#token=` path, the basemap, the connection's state, a refused token sending the page back to
// the login screen with the reason, the devices RPC's error shown in place, and logging out. The
// live map is tested end to end against `tracker demo`. Screenshots land in test-artifacts/.
//
// Needs: `cargo build -p gateway -p rpcgen -p tracker-sim`, `npm ci`, `npm run build -w
// @rpcgen/client`, and Chromium (`apt-get install chromium`, or CHROMIUM_BIN).

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { launchChromium, serveStatic, startGateway } from "../../../support/browser.mjs";
import { build, DIST, HERE, ROOT } from "../build.mjs";

const SIM_BIN = process.env.TRACKER_SIM_BIN ?? join(ROOT, "target/debug/tracker-sim");
const ARTIFACTS = join(HERE, "test-artifacts");
const SECRET = randomBytes(32).toString("hex");

/** An HS256 JWT with `claims`, signed with `secret`. */
function jwt(claims, secret = SECRET) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const body = `${part({ alg: "HS256", typ: "JWT" })}.${part(claims)}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

function dispatcherClaims(ttlS = 3600) {
  return {
    sub: "dispatcher",
    exp: Math.floor(Date.now() / 1000) + ttlS,
    roles: ["viewer"],
    devices: "*",
    permissions: { subscribe: ["Tracker.position.*"] },
  };
}

/** Starts the gateway with HS256 tokens on free loopback ports; resolves once it listens. */
function startTokenGateway(dir, origin) {
  const config = join(dir, "gateway.toml");
  writeFileSync(config, `[auth]
permissions_claim = "permissions"
forward_claims = ["devices"]

[[auth.keys]]
algorithm = "HS256"
secret = "${SECRET}"

[auth.roles.viewer]
call = ["Tracker.*"]
`);
  return startGateway(["--config", config, "--allowed-origins", origin]);
}

let dir;
let server;
let gateway;
let browser;
let origin;

before(async () => {
  if (!existsSync(SIM_BIN)) throw new Error(`${SIM_BIN} is missing: build it with \`cargo build -p tracker-sim\``);
  await build();
  dir = mkdtempSync(join(tmpdir(), "tracker-web-"));
  const city = join(dir, "city.geojson");
  const made = spawnSync(SIM_BIN, ["city", "--seed", "1", "--out", city], { encoding: "utf8" });
  assert.equal(made.status, 0, `tracker-sim city failed: ${made.stderr}`);
  const configFile = join(dir, "config.json");
  server = await serveStatic(DIST, { files: { "/city.geojson": city, "/config.json": configFile } });
  origin = `http://127.0.0.1:${server.address().port}`;
  gateway = await startTokenGateway(dir, origin);
  writeFileSync(configFile, JSON.stringify({ gateway: `ws://${gateway.ws}`, center: [52.37, 4.89], zoom: 14 }));

  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  gateway?.child.kill("SIGKILL");
  server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A new page (its own sessionStorage) that fails the test on any page error or request outside the origin. */
async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("request", (request) => {
    const url = request.url();
    if (!url.startsWith(origin) && !url.startsWith("data:") && !url.startsWith(`ws://${gateway.ws}`)) {
      problems.push(`request outside the page's origin: ${url}`);
    }
  });
  return { page, problems, close: () => context.close() };
}

async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, name) });
}

test("without a token the login screen shows over the city's map, drawn from city.geojson", async () => {
  const { page, problems, close } = await newPage();
  await page.goto(`${origin}/`);
  await page.waitForSelector("#map[data-basemap='ready']", { timeout: 5_000 });
  assert.ok(Number(await page.getAttribute("#map", "data-features")) > 10);
  assert.ok(Number(await page.getAttribute("#map", "data-roads")) > 5);
  // The basemap is drawn on canvas, with no tile layer.
  assert.ok((await page.$$("#map canvas")).length >= 1, "no canvas in the map");
  assert.equal((await page.$$("#map .leaflet-tile")).length, 0);
  await page.waitForSelector("#login", { state: "visible" });
  assert.equal(await page.getAttribute("#state", "data-status"), "signed-out");
  assert.ok(await page.isHidden("#user"));
  await screenshot(page, "login.png");

  // The name and password form comes first; tokens are under "Sign in with a token".
  assert.ok(await page.isVisible("#login-name"));
  assert.ok(await page.isHidden("#token-input"));
  await page.click("#token-login summary");
  // An expired token is refused before connecting, naming the reason.
  await page.fill("#token-input", jwt(dispatcherClaims(-60)));
  await page.click("#token-button");
  assert.match(await page.textContent("#login-error"), /expired/);
  // Something that is no token at all.
  await page.fill("#token-input", "hello");
  await page.click("#token-button");
  assert.match(await page.textContent("#login-error"), /not a token/);
  assert.equal(await page.getAttribute("#state", "data-status"), "signed-out");
  assert.deepEqual(problems, []);
  await close();
});

test("a token the gateway refuses sends the page back to the login screen with the reason", async () => {
  const { page, problems, close } = await newPage();
  const forged = jwt(dispatcherClaims(), randomBytes(32).toString("hex"));
  await page.goto(`${origin}/#token=${forged}`);
  await page.waitForSelector("#login-error", { state: "visible", timeout: 10_000 });
  assert.match(await page.textContent("#login-error"), /refused the token: unauthenticated/);
  assert.equal(await page.getAttribute("#state", "data-status"), "closed");
  assert.ok(!page.url().includes("token="), `the token stayed in the address: ${page.url()}`);
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, "a refused token was kept");
  assert.deepEqual(problems, []);
  await close();
});

test("a valid token: the user is shown, the page connects, errors show in place, log out forgets the token", async () => {
  const { page, problems, close } = await newPage();
  const token = jwt(dispatcherClaims());
  await page.goto(`${origin}/#token=${token}`);
  assert.ok(!page.url().includes("token="), `the token stayed in the address: ${page.url()}`);
  await page.waitForSelector("#state[data-status='connected']", { timeout: 10_000 });
  assert.equal(await page.textContent("#user"), "dispatcher");
  assert.ok(await page.isHidden("#login"));
  // The gateway alone does not serve Tracker: the devices RPC's error shows in the list's place.
  await page.waitForSelector("#devices-error", { state: "visible", timeout: 10_000 });
  assert.match(await page.textContent("#devices-error"), /^could not list the devices: \w+: /);
  await page.waitForSelector("#map[data-basemap='ready']");
  await screenshot(page, "signed-in.png");

  // The token lasts the browser session: a reload signs in again.
  await page.reload();
  await page.waitForSelector("#state[data-status='connected']", { timeout: 10_000 });
  assert.equal(await page.textContent("#user"), "dispatcher");

  await page.click("#logout");
  await page.waitForSelector("#login", { state: "visible" });
  assert.equal(await page.getAttribute("#state", "data-status"), "signed-out");
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  assert.ok(await page.isHidden("#user"));
  assert.equal(await page.$$eval("#devices li", (items) => items.length), 0);

  // Signing in again from the token form.
  await page.click("#token-login summary");
  await page.fill("#token-input", token);
  await page.click("#token-button");
  await page.waitForSelector("#state[data-status='connected']", { timeout: 10_000 });
  assert.ok(await page.isHidden("#login"));
  assert.deepEqual(problems, []);
  await close();
});
