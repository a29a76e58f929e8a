// The tracker end to end, as a user sees it: `tracker demo` (gateway, tracker service, UDP ingest,
// simulated devices, the dashboard's web server: one process, the in-process bus) on free
// loopback ports with a fresh database, and its dashboard opened in Debian's headless Chromium
// (playwright-core) with the tokens the demo prints. Simulated devices → encrypted UDP reports →
// the ingest → SQLite → the `position` topic → the gateway's WebSocket → the page: the test
// asserts that the page lists the devices and that their markers move, that a restricted user
// sees only its devices, that the trip history answers, the accounts (signing in with a password
// and out, users managed by an admin, a shared device seen by the other user and an unshared one
// not, a new device's QR code, a trip's description kept), and that when the gateway closes the
// page's connection and the page stays away for a few seconds, its trails afterwards have every
// position the tracker stored meanwhile (recovered from the topic's history, not reloaded); it
// saves screenshots in examples/tracker/e2e/artifacts/.
//
// Needs: `cargo build -p tracker -p rpcgen`, `npm ci`, `npm run build -w @rpcgen/client`,
// `node examples/tracker/web/build.mjs`, Debian's chromium. scripts/test does all of it.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { CHROMIUM_BIN, launchChromium } from "../../support/browser.mjs";
import { ARTIFACTS, freeTcpPort, freeUdpPort, stopDemo, TRACKER_BIN, WEB } from "./demo.mjs";

const DEVICES = 8;

/** Starts `tracker demo`; resolves once it has printed every user's dashboard URL. */
async function startDemo(dir) {
  for (const [what, path, how] of [
    ["the tracker", TRACKER_BIN, "cargo build -p tracker"],
    ["the dashboard", join(WEB, "index.html"), "node examples/tracker/web/build.mjs"],
    ["chromium", CHROMIUM_BIN, "apt-get install chromium (or set CHROMIUM_BIN)"],
  ]) {
    if (!existsSync(path)) throw new Error(`${what} is missing (${path}): ${how}`);
  }
  const addr = async () => `127.0.0.1:${await freeTcpPort()}`;
  const http = await addr();
  const admin = await addr();
  const args = ["demo", "--db", join(dir, "tracker.db"), "--devices", String(DEVICES), "--web", WEB,
    "--http", http, "--listen", await addr(), "--ws-listen", await addr(), "--admin-listen", admin,
    "--ingest", `127.0.0.1:${await freeUdpPort()}`];
  const env = { ...process.env, RUST_LOG: "info", NO_COLOR: "1" };
  for (const key of Object.keys(env)) if (key.startsWith("GATEWAY_")) delete env[key];
  const child = spawn(TRACKER_BIN, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let log = "";
  child.stderr.setEncoding("utf8").on("data", (text) => (log += text));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`tracker demo printed no dashboard URLs within 60 s:\n${out}\n${log}`));
    }, 60_000);
    child.stdout.setEncoding("utf8").on("data", (text) => {
      out += text;
      const urls = Object.fromEntries(
        [...out.matchAll(/^\s*([\w-]+)\b.*?(http:\/\/\S+#token=\S+)/gm)].map((m) => [m[1], m[2]]),
      );
      const passwords = Object.fromEntries(
        [...out.matchAll(/^\s*([\w-]+) \(.*?\): password (\S+)/gm)].map((m) => [m[1], m[2]]),
      );
      if (urls.dispatcher && urls["fleet-north"] && passwords.dispatcher && passwords["fleet-north"]) {
        clearTimeout(timer);
        resolve({ child, http, admin, urls, passwords, output: () => `${out}\n${log}` });
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`tracker demo exited (${code ?? signal}) before it was ready:\n${out}\n${log}`));
    });
  });
}

let dir;
let demo;
let browser;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "tracker-e2e-"));
  demo = await startDemo(dir);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  if (demo) await stopDemo(demo.child);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Opens `url` in a new page sized like a laptop screen, with page errors reported. */
async function open(url) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(url);
  return { page, errors };
}

/** Fails with what the page and the demo show when `fn` does not hold within `ms`. */
async function until(page, what, fn, arg, ms = 20_000) {
  try {
    await page.waitForFunction(fn, arg, { timeout: ms });
  } catch {
    const state = await page.textContent("#state").catch(() => "?");
    const errors = await page.textContent("#devices-error").catch(() => "");
    assert.fail(`${what} (state ${JSON.stringify(state)}, errors ${JSON.stringify(errors)})\n${demo.output()}`);
  }
}

/** Every marker's device id and position as the page holds it. */
function markers(page) {
  return page.$$eval("#map .device-marker[data-device-id]", (els) =>
    Object.fromEntries(els.map((el) => [el.dataset.deviceId, { lat: el.dataset.lat, lon: el.dataset.lon, t: el.dataset.timeMs }])),
  );
}

test("the dispatcher sees every device moving on the map", async () => {
  const { page, errors } = await open(demo.urls.dispatcher);
  await until(page, "the page did not connect", () => document.querySelector("#state")?.dataset.status === "connected");
  assert.equal(await page.textContent("#user"), "dispatcher");
  await until(page, `the list does not show ${DEVICES} devices`,
    (n) => document.querySelectorAll("#devices li[data-device-id]").length === n, DEVICES);
  await until(page, "not every device has a marker with a position",
    (n) => [...document.querySelectorAll("#map .device-marker[data-device-id]")].filter((m) => m.dataset.lat).length === n, DEVICES);

  const first = await markers(page);
  // Devices report every second; give every one time for a few more fixes.
  await until(page, "no marker moved",
    (before) => [...document.querySelectorAll("#map .device-marker[data-device-id]")]
      .filter((m) => Number(m.dataset.timeMs) > Number(before[m.dataset.deviceId]?.t ?? Infinity)).length >= 1,
    first);
  await page.waitForTimeout(3_000);
  const later = await markers(page);
  const advanced = Object.keys(first).filter((id) => Number(later[id].t) > Number(first[id].t));
  assert.ok(advanced.length >= DEVICES - 1, `only ${advanced.length} of ${DEVICES} devices got newer fixes`);
  const moved = advanced.filter((id) => later[id].lat !== first[id].lat || later[id].lon !== first[id].lon);
  assert.ok(moved.length >= 1, "no device changed position in 3 s");
  const seen = await page.$$eval("#devices li[data-device-id] .last-seen", (els) => els.map((e) => e.textContent));
  assert.ok(seen.every((text) => /seen \d+ s ago|just now/.test(text)), `last seen: ${seen}`);

  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, "dashboard-dispatcher.png") });

  // The trip history of one device answers (the demo's database is fresh: one trip at most).
  await page.click("#devices li[data-device-id]:first-child");
  await until(page, "the trips panel did not answer",
    () => document.querySelectorAll("#trips li").length > 0 || /no trips/i.test(document.querySelector("#trips-status")?.textContent ?? ""));
  assert.deepEqual(errors, [], "the page threw");
  await page.close();
});

test("a restricted user sees only the devices its token permits", async () => {
  const { page: all } = await open(demo.urls.dispatcher);
  await until(all, "the dispatcher's list did not fill",
    (n) => document.querySelectorAll("#devices li[data-device-id]").length === n, DEVICES);
  const everyId = await all.$$eval("#devices li[data-device-id]", (els) => els.map((e) => e.dataset.deviceId));
  await all.close();

  const { page, errors } = await open(demo.urls["fleet-north"]);
  await until(page, "the restricted page did not connect", () => document.querySelector("#state")?.dataset.status === "connected");
  await until(page, "the restricted list stayed empty", () => document.querySelectorAll("#devices li[data-device-id]").length > 0);
  await page.waitForTimeout(2_000);
  const ids = await page.$$eval("#devices li[data-device-id]", (els) => els.map((e) => e.dataset.deviceId));
  assert.ok(ids.length > 0 && ids.length < DEVICES, `fleet-north sees ${ids.length} of ${DEVICES} devices`);
  assert.ok(ids.every((id) => everyId.includes(id)));
  const markerIds = Object.keys(await markers(page));
  assert.ok(markerIds.every((id) => ids.includes(id)), `markers of devices not listed: ${markerIds}`);
  assert.equal(await page.textContent("#devices-error").catch(() => ""), "", "the restricted page shows errors");
  await page.screenshot({ path: join(ARTIFACTS, "dashboard-fleet-north.png") });
  assert.deepEqual(errors, [], "the page threw");
  await page.close();
});

/** The admin port's answer to `method path`: status and body. */
async function adminRequest(method, path) {
  const response = await fetch(`http://${demo.admin}${path}`, { method });
  return { status: response.status, body: await response.text() };
}

/** The gateway's `gateway_publications_total`: the positions it has received. */
async function publications() {
  const metrics = (await adminRequest("GET", "/metrics")).body;
  return Number(/^gateway_publications_total (\d+)/m.exec(metrics)?.[1]);
}

/** Waits (20 s at most) until the gateway has received `n` positions. */
async function untilPublished(n, what) {
  const deadline = Date.now() + 20_000;
  while ((await publications()) < n) {
    assert.ok(Date.now() < deadline, `${what}: the gateway received fewer than ${n} positions in 20 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test("after the gateway cut the page's connection for a few seconds, every trail has every stored point", async () => {
  const { page, errors } = await open(demo.urls.dispatcher);
  await until(page, "the page did not connect", () => document.querySelector("#state")?.dataset.status === "connected");
  await until(page, `not every device has a trail`,
    (n) => {
      const dashboard = window.trackerDashboard;
      const ids = [...document.querySelectorAll("#devices li[data-device-id]")].map((e) => e.dataset.deviceId);
      return dashboard && ids.length === n && ids.every((id) => dashboard.trail(id).length >= 2);
    }, DEVICES);
  const ids = await page.$$eval("#devices li[data-device-id]", (els) => els.map((e) => e.dataset.deviceId));
  const cutAt = Date.now();
  const beforeCut = await publications();

  // From now on the page cannot open a WebSocket (until `cut` is over: then they go through to
  // the gateway); then the gateway closes the one it has.
  let cut = true;
  await page.routeWebSocket(/.*/, (ws) => {
    if (cut) ws.close({ code: 1013, reason: "cut by the test" });
    else ws.connectToServer();
  });
  const state = JSON.parse((await adminRequest("GET", "/console/state")).body);
  const mine = state.connections.filter((c) => c.client === "tracker-dashboard");
  assert.equal(mine.length, 1, `one dashboard connection: ${JSON.stringify(state.connections)}`);
  const closed = await adminRequest("POST", `/connections/${mine[0].id}/close`);
  assert.equal(closed.status, 200, closed.body);
  await until(page, "the page did not notice the cut", () => document.querySelector("#state")?.dataset.status !== "connected");
  // Away while every device reports a few positions (about 3 s: one position a second each).
  await untilPublished(beforeCut + 3 * ids.length, "while the page was cut off");
  cut = false;
  await until(page, "the page did not reconnect", () => document.querySelector("#state")?.dataset.status === "connected");
  await until(page, "no subscription was restored with what it missed",
    (n) => window.trackerDashboard.restores.recovered === n, ids.length);
  // A live position per device after the restore, then compare what the tracker stored with
  // the trails.
  await untilPublished((await publications()) + ids.length, "after the restore");
  const from = cutAt - 5_000;
  const upTo = Date.now() - 1_000;
  const report = await page.evaluate(async ({ ids, from, upTo }) => {
    const dashboard = window.trackerDashboard;
    const out = {};
    for (const id of ids) {
      const stored = (await dashboard.stored(id, from)).filter((t) => t <= upTo);
      // Whatever was stored by then was published before: it is on its way, if not arrived yet
      // (up to 5 s).
      const missing = () => {
        const trail = new Set(dashboard.trail(id));
        return stored.filter((t) => !trail.has(t));
      };
      for (let waited = 0; missing().length > 0 && waited < 5_000; waited += 50) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      out[id] = { stored: stored.length, missing: missing() };
    }
    return { out, restores: dashboard.restores };
  }, { ids, from, upTo });
  for (const id of ids) {
    const { stored, missing } = report.out[id];
    assert.ok(stored >= 4, `device ${id}: only ${stored} positions stored over the window`);
    assert.deepEqual(missing, [], `device ${id}: the trail lacks ${missing.length} of ${stored} stored positions`);
  }
  assert.equal(report.restores.lost, 0, "no trail had to be reloaded");
  const metrics = (await adminRequest("GET", "/metrics")).body;
  const recovered = Number(/^gateway_events_recovered_total (\d+)/m.exec(metrics)?.[1]);
  assert.ok(recovered >= ids.length, `the gateway recovered ${recovered} events`);
  await page.screenshot({ path: join(ARTIFACTS, "dashboard-after-the-cut.png") });
  assert.deepEqual(errors, [], "the page threw");
  await page.close();
});

/** Signs in on a fresh page with a name and a password; resolves once connected. */
async function signIn(name, password) {
  const { page, errors } = await open(`http://${demo.http}/`);
  await page.waitForSelector("#login", { state: "visible" });
  await page.fill("#login-name", name);
  await page.fill("#login-password", password);
  await page.click("#login-button");
  await until(page, `${name} did not get connected`, () => document.querySelector("#state")?.dataset.status === "connected");
  assert.equal(await page.textContent("#user"), name);
  return { page, errors };
}

/** The device ids a page lists, once it has listed the devices the `devices` RPC answered. */
async function listedIds(page) {
  await until(page, "the page did not list its devices", () => document.querySelector("#device-count")?.textContent !== "");
  return (await page.$$eval("#devices li[data-device-id]", (els) => els.map((e) => e.dataset.deviceId))).sort();
}

test("signing in with a name and a password, a wrong one refused, and signing out", async () => {
  const { page, errors } = await open(`http://${demo.http}/`);
  await page.waitForSelector("#login", { state: "visible" });
  await page.fill("#login-name", "dispatcher");
  await page.fill("#login-password", "not-the-password");
  await page.click("#login-button");
  await until(page, "a wrong password was not refused", () => !document.querySelector("#login-error")?.hidden);
  assert.match(await page.textContent("#login-error"), /wrong name or password/);
  assert.equal(await page.getAttribute("#state", "data-status"), "signed-out");

  await page.fill("#login-password", demo.passwords.dispatcher);
  await page.click("#login-button");
  await until(page, "the dispatcher did not get connected", () => document.querySelector("#state")?.dataset.status === "connected");
  assert.equal(await page.textContent("#user"), "dispatcher");
  assert.ok(await page.isVisible("#users-button"), "an admin sees the users button");
  await until(page, "the dispatcher's list did not fill",
    (n) => document.querySelectorAll("#devices li[data-device-id]").length === n, DEVICES);

  await page.click("#logout");
  await page.waitForSelector("#login", { state: "visible" });
  assert.equal(await page.getAttribute("#state", "data-status"), "signed-out");
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, "the token was kept after logging out");
  assert.equal(await page.$$eval("#devices li", (items) => items.length), 0);
  assert.deepEqual(errors, [], "the page threw");
  await page.close();

  // A viewer has no users button.
  const viewer = await signIn("fleet-north", demo.passwords["fleet-north"]);
  assert.ok(await viewer.page.isHidden("#users-button"));
  await viewer.page.close();
});

test("an admin adds a user; a device shared with it appears for it, and once unshared it does not", async () => {
  const admin = await signIn("dispatcher", demo.passwords.dispatcher);
  const page = admin.page;
  await page.click("#users-button");
  await page.waitForSelector("#users-list li[data-user-id]");
  await page.fill("#new-user-name", "walt");
  await page.fill("#new-user-password", "walt-password");
  await page.click("#add-user-form button[type=submit]");
  await until(page, "walt is not listed", () =>
    [...document.querySelectorAll("#users-list li .name")].some((e) => e.textContent === "walt"));
  // A second user of the same name is refused, in place.
  await page.fill("#new-user-name", "WALT");
  await page.fill("#new-user-password", "walt-password");
  await page.click("#add-user-form button[type=submit]");
  await until(page, "a duplicate name was not refused", () => !document.querySelector("#users-error")?.hidden);
  assert.match(await page.textContent("#users-error"), /exists already/);
  await page.click("#users-dialog form[method=dialog] button");

  // Nothing is shared with walt yet.
  const walt = await signIn("walt", "walt-password");
  assert.deepEqual(await listedIds(walt.page), [], "walt sees devices before any was shared");
  assert.match(await walt.page.textContent("#devices"), /No devices are visible to you/);
  await walt.page.close();

  await until(page, "the list did not fill", (n) => document.querySelectorAll("#devices li[data-device-id]").length === n, DEVICES);
  const shared = await page.$eval("#devices li[data-device-id]:nth-child(2)", (e) => e.dataset.deviceId);
  await page.click(`#devices li[data-device-id="${shared}"]`);
  await page.click("#share-device");
  await page.waitForSelector("#share-dialog[open]");
  await page.fill("#share-user", "walt");
  await page.click("#share-form button[type=submit]");
  await until(page, "walt is not listed as sharing the device", () => !!document.querySelector('#share-list li[data-user="walt"]'));
  await page.screenshot({ path: join(ARTIFACTS, "dashboard-share.png") });

  const after = await signIn("walt", "walt-password");
  await until(after.page, "the shared device did not appear for walt",
    (id) => !!document.querySelector(`#devices li[data-device-id="${id}"]`), shared);
  assert.deepEqual(await listedIds(after.page), [shared], "walt sees exactly the shared device");
  await until(after.page, "the shared device's marker has no position",
    (id) => !!document.querySelector(`#map .device-marker[data-device-id="${id}"]`)?.dataset.lat, shared);
  await after.page.close();

  await page.click('#share-list li[data-user="walt"] .unshare');
  await until(page, "walt is still listed", () => !document.querySelector('#share-list li[data-user="walt"]'));
  await page.click("#share-dialog form[method=dialog] button");
  const unshared = await signIn("walt", "walt-password");
  assert.deepEqual(await listedIds(unshared.page), [], "walt still sees the unshared device");
  assert.deepEqual([...admin.errors, ...unshared.errors], [], "a page threw");
  await unshared.page.close();
  await page.close();
});

test("adding a device shows its enrolment QR code once, and the device joins its owner's list", async () => {
  const { page, errors } = await signIn("fleet-north", demo.passwords["fleet-north"]);
  const before = await listedIds(page);
  await page.click("#add-device");
  await page.waitForSelector("#add-device-dialog[open]");
  await page.fill("#new-device-name", "scooter");
  await page.click("#add-device-form button[type=submit]");
  await page.waitForSelector("#enrolment", { state: "visible", timeout: 10_000 });
  const uri = await page.textContent("#enrolment-uri");
  assert.match(uri, /^rpcgen-tracker:v1\?/);
  assert.match(uri, /name=scooter/);
  const qr = await page.$eval("#enrolment-qr", (img) => ({ src: img.src, width: img.naturalWidth, id: img.dataset.deviceId }));
  assert.match(qr.src, /^data:image\/svg\+xml;base64,/);
  assert.ok(qr.width > 0, "the QR code did not render");
  await page.screenshot({ path: join(ARTIFACTS, "dashboard-add-device.png") });
  await page.click("#add-device-dialog form[method=dialog] button");
  await until(page, "the new device did not join the list",
    (id) => !!document.querySelector(`#devices li[data-device-id="${id}"]`), qr.id);
  assert.equal((await listedIds(page)).length, before.length + 1);
  assert.deepEqual(errors, [], "the page threw");
  await page.close();
});

test("a trip's description, edited by its owner, is kept", async () => {
  const { page, errors } = await signIn("dispatcher", demo.passwords.dispatcher);
  await until(page, "the list did not fill", (n) => document.querySelectorAll("#devices li[data-device-id]").length >= n, DEVICES);
  // A simulated device, one that reports: the device added by an earlier test never does.
  await until(page, "no device has a position", () => !!document.querySelector("#map .device-marker[data-lat]"));
  const id = await page.$eval("#map .device-marker[data-lat]", (e) => e.dataset.deviceId);
  await page.click(`#devices li[data-device-id="${id}"]`);
  await until(page, "the device has no trip", () => document.querySelectorAll("#trips li").length > 0);
  const start = await page.$eval("#trips li:first-child", (e) => e.dataset.startMs);
  await page.click("#trips li:first-child .describe");
  await page.fill("#trips li:first-child .description-input", "delivery round");
  await page.click("#trips li:first-child .describe-form button");
  await until(page, "the description was not shown", () => document.querySelector("#trips li:first-child .description")?.textContent === "delivery round");

  // Another page, another session: the description comes from the tracker.
  const again = await signIn("dispatcher", demo.passwords.dispatcher);
  await until(again.page, "the list did not fill", (n) => document.querySelectorAll("#devices li[data-device-id]").length >= n, DEVICES);
  await again.page.click(`#devices li[data-device-id="${id}"]`);
  await until(again.page, "the described trip did not come back with its description",
    (start) => document.querySelector(`#trips li[data-start-ms="${start}"] .description`)?.textContent === "delivery round", start);
  assert.deepEqual([...errors, ...again.errors], [], "a page threw");
  await again.page.close();
  await page.close();
});
