// The dashboard at scale: `tracker demo --devices 10000` (one process, the in-process bus, every
// simulated device reporting once a second) and the dispatcher's dashboard in headless Chromium.
// Asserts that the page lists all 10,000 devices and draws them on its canvas (clusters at the
// initial zoom) from the `tile` subscriptions of its view (fewer once zoomed in), that it keeps at least 30 frames a second
// while the map is dragged (frames counted with requestAnimationFrame, timed with
// performance.now()), that the list is virtualised (a few dozen rows in the page), scrolls to
// its end and searches. Prints the measured frame rate; saves a screenshot in artifacts/.
//
// Needs what dashboard.test.mjs needs. About a minute.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { launchChromium } from "../../support/browser.mjs";
import { ARTIFACTS, freeTcpPort, freeUdpPort, stopDemo, TRACKER_BIN, WEB } from "./demo.mjs";

const DEVICES = 10_000;
/** The frame rate the dashboard must keep while the map is dragged. */
const MIN_FPS = 30;

let dir;
let demo;
let browser;
let output = "";

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "tracker-scale-"));
  const addr = async () => `127.0.0.1:${await freeTcpPort()}`;
  const http = await addr();
  const args = ["demo", "--db", join(dir, "tracker.db"), "--devices", String(DEVICES), "--web", WEB,
    "--http", http, "--listen", await addr(), "--ws-listen", await addr(), "--admin-listen", await addr(),
    "--ingest", `127.0.0.1:${await freeUdpPort()}`];
  const env = { ...process.env, RUST_LOG: "info", NO_COLOR: "1" };
  for (const key of Object.keys(env)) if (key.startsWith("GATEWAY_")) delete env[key];
  const child = spawn(TRACKER_BIN, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  child.stderr.setEncoding("utf8").on("data", (text) => (output += text));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tracker demo was not ready in 120 s:\n${output}`)), 120_000);
    child.stdout.setEncoding("utf8").on("data", (text) => {
      output += text;
      const found = /^\s*dispatcher\b.*?(http:\/\/\S+#token=\S+)/m.exec(output);
      if (found) {
        clearTimeout(timer);
        resolve(found[1]);
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`tracker demo exited (${code ?? signal}):\n${output}`));
    });
  });
  demo = { child, url };
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  if (demo) await stopDemo(demo.child);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function until(page, what, fn, arg, ms = 60_000) {
  try {
    await page.waitForFunction(fn, arg, { timeout: ms, polling: 250 });
  } catch {
    const state = await page.textContent("#state").catch(() => "?");
    const errors = await page.textContent("#devices-error").catch(() => "");
    assert.fail(`${what} (state ${JSON.stringify(state)}, errors ${JSON.stringify(errors)})\n${output.slice(-4000)}`);
  }
}

test(`${DEVICES} devices: drawn on a canvas, 30 frames a second while dragging, the list virtualised and searchable`, async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(demo.url);
  await until(page, "the page did not connect", () => document.querySelector("#state")?.dataset.status === "connected");
  await until(page, `the list does not count ${DEVICES} devices`, (n) => document.querySelector("#device-count")?.textContent === `(${n})`, DEVICES);
  assert.equal(await page.evaluate(() => window.trackerDashboard.renderer), "canvas");
  // Subscribed to the tiles in view (and a margin): a few dozen, not one per device.
  await until(page, "the page did not subscribe to the tiles in view", () => window.trackerDashboard.subscriptions > 1);
  const tiles = await page.evaluate(() => window.trackerDashboard.subscriptions);
  assert.ok(tiles > 1 && tiles <= 64, `${tiles} subscriptions`);
  // Positions arrive and the canvas draws them; at the initial zoom, crowded devices are clusters.
  await until(page, "the canvas drew no clusters", () => Number(document.querySelector("#map")?.dataset.drawnClusters) > 0);
  const drawsBefore = Number(await page.getAttribute("#map", "data-draws"));
  await until(page, "the canvas was not drawn again as positions arrived",
    (n) => Number(document.querySelector("#map")?.dataset.draws) > n + 2, drawsBefore);

  // The baseline in the same run: the frames the page paints in 2 s with nothing done to it.
  const idleFps = await page.evaluate(() => new Promise((resolve) => {
    const times = [];
    const tick = (t) => {
      times.push(t);
      if (t - times[0] < 2000) requestAnimationFrame(tick);
      else resolve((times.length - 1) / ((t - times[0]) / 1000));
    };
    requestAnimationFrame(tick);
  }));
  // Drag the map (the mouse moved every 25 ms), counting the frames the page paints.
  await page.evaluate(() => {
    window.frames_ = [];
    const tick = (t) => {
      window.frames_.push(t);
      if (!window.stopFrames_) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  const box = await page.locator("#map").boundingBox();
  const cx = box.x + box.width / 2;
  const cy = box.y + box.height / 2;
  await page.mouse.move(cx, cy);
  await page.mouse.down();
  const steps = 120;
  for (let i = 1; i <= steps; i += 1) {
    const angle = (i / steps) * 2 * Math.PI;
    await page.mouse.move(cx + 200 * Math.sin(angle), cy + 120 * Math.sin(2 * angle));
    await page.waitForTimeout(25);
  }
  await page.mouse.up();
  const frames = await page.evaluate(() => {
    window.stopFrames_ = true;
    return window.frames_;
  });
  const seconds = (frames[frames.length - 1] - frames[0]) / 1000;
  const fps = (frames.length - 1) / seconds;
  const gaps = frames.slice(1).map((t, i) => t - frames[i]).sort((a, b) => a - b);
  const p95 = gaps[Math.floor(gaps.length * 0.95)];
  console.log(`dragging with ${DEVICES} devices (${tiles} tile subscriptions): ${fps.toFixed(1)} frames/s over ${seconds.toFixed(1)} s, ` +
    `95th percentile frame ${p95.toFixed(1)} ms, longest ${gaps[gaps.length - 1].toFixed(1)} ms; ` +
    `the same page left alone: ${idleFps.toFixed(1)} frames/s`);
  assert.ok(fps >= MIN_FPS, `${fps.toFixed(1)} frames/s while dragging (at least ${MIN_FPS} wanted)`);
  // Zoomed in on a corner of the city, the page follows fewer tiles, and positions still come.
  await page.mouse.move(box.x + 120, box.y + 120);
  for (let i = 0; i < 3; i += 1) {
    await page.mouse.wheel(0, -300);
    await page.waitForTimeout(400);
  }
  await until(page, "zoomed in, the page did not follow fewer tiles",
    (before) => window.trackerDashboard.subscriptions < before, tiles, 10_000);
  const drawsZoomed = Number(await page.getAttribute("#map", "data-draws"));
  await until(page, "zoomed in, the canvas was not drawn again as positions arrived",
    (n) => Number(document.querySelector("#map")?.dataset.draws) > n + 2, drawsZoomed);
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, "dashboard-10000.png") });

  // The list: a few dozen rows in the page, whatever the count; it scrolls to its end.
  const rows = await page.$$eval("#devices li[data-device-id]", (els) => els.length);
  assert.ok(rows > 5 && rows < 100, `${rows} rows in the page for ${DEVICES} devices`);
  await page.$eval("#devices-scroll", (el) => {
    el.scrollTop = el.scrollHeight;
  });
  await until(page, "the list's last rows did not appear", () => {
    const scroller = document.querySelector("#devices-scroll");
    const rows = [...document.querySelectorAll("#devices li[data-device-id]")];
    const bottom = Math.max(...rows.map((r) => r.offsetTop + r.offsetHeight));
    return rows.length > 0 && bottom === document.querySelector("#devices").offsetHeight && scroller.scrollTop > 0;
  }, undefined, 10_000);

  // Searching narrows the list to the matching devices.
  const name = await page.$eval("#devices li[data-device-id] .name", (el) => el.textContent);
  await page.fill("#device-search", name);
  await until(page, "the search did not narrow the list",
    (n) => /^\(\d+ of \d+\)$/.test(document.querySelector("#device-count")?.textContent ?? "") &&
      [...document.querySelectorAll("#devices li[data-device-id] .name")].every((e) => e.textContent.includes(n)), name, 10_000);
  const shown = await page.$$eval("#devices li[data-device-id] .name", (els) => els.map((e) => e.textContent));
  assert.ok(shown.includes(name), `the search for ${name} shows ${shown}`);
  // Selecting a device from the list opens its trips.
  await page.click("#devices li[data-device-id]:first-child");
  await until(page, "the trips panel did not open", () => !document.querySelector("#trips-panel")?.hidden, undefined, 10_000);
  assert.deepEqual(errors, [], "the page threw");
  await page.close();
});
