// Unit tests of the page's model, run in Node: fleet.ts (trail order and pruning, staleness),
// session.ts (reading a token's claims), format.ts and tiles.ts, bundled by esbuild into
// dist-test/.

import assert from "node:assert/strict";
import { join } from "node:path";
import { before, test } from "node:test";

import { HERE } from "../build.mjs";

let fleet;
let session;
let format;
let tiles;

before(async () => {
  const esbuild = await import("esbuild");
  const load = async (name) => {
    const outfile = join(HERE, `dist-test/${name}.mjs`);
    await esbuild.build({
      entryPoints: [join(HERE, `src/${name}.ts`)], bundle: true, platform: "node", format: "esm",
      target: "node20", outfile, logLevel: "warning",
    });
    return import(outfile);
  };
  [fleet, session, format, tiles] = await Promise.all([load("fleet"), load("session"), load("format"), load("tiles")]);
});

const fix = (timeMs, lat = 52.37) => ({ timeMs, receivedMs: timeMs + 50, lat, lon: 4.89, speedMps: 5, headingDeg: 90 });

test("a device keeps its trail sorted by fix time, without duplicates, and only the last five minutes", () => {
  const now = 10_000_000;
  const device = new fleet.Device(7n, "bike", "#f00", 0);
  assert.equal(device.key, "7");
  assert.ok(device.isStale(now), "a device never seen is stale");
  assert.equal(device.add(fix(now - 2000), now), true);
  assert.equal(device.add(fix(now - 1000), now), true);
  // A replayed, older fix joins the trail in its place but is not the newest.
  assert.equal(device.add(fix(now - 1500), now), false);
  assert.equal(device.add(fix(now - 1500), now), false);
  assert.deepEqual(device.trail.map((f) => f.timeMs), [now - 2000, now - 1500, now - 1000]);
  assert.equal(device.last.timeMs, now - 1000);
  assert.equal(device.lastSeenMs, now - 1000 + 50, "the newest reception, not the newest fix received");
  assert.ok(!device.isStale(now));
  // Older than the trail's reach: counted as seen, kept out of the trail.
  device.add(fix(now - fleet.TRAIL_MS - 1), now);
  assert.equal(device.trail.length, 3);
  device.prune(now + fleet.TRAIL_MS - 1500);
  assert.deepEqual(device.trail.map((f) => f.timeMs), [now - 1500, now - 1000]);
  assert.ok(device.isStale(now + fleet.STALE_MS + 1000));
});

test("colours differ between neighbouring devices", () => {
  assert.notEqual(fleet.colorOf(0), fleet.colorOf(1));
  assert.equal(fleet.colorOf(0), fleet.colorOf(16));
});

test("a token's claims are read, and what is wrong with one is named", () => {
  const part = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const token = (claims) => `${part({ alg: "HS256" })}.${part(claims)}.c2ln`;
  const now = 1_700_000_000_000;
  assert.deepEqual(session.readClaims(token({ sub: "dispatcher", exp: now / 1000 + 60, devices: "*" }), now), {
    sub: "dispatcher",
    exp: now / 1000 + 60,
    roles: [],
  });
  // Roles as a list (what the tracker issues) or as one string; anything else is left out.
  const roles = (value) => session.readClaims(token({ sub: "a", exp: now / 1000 + 60, roles: value }), now).roles;
  assert.deepEqual(roles(["admin", 3, "viewer"]), ["admin", "viewer"]);
  assert.deepEqual(roles("admin"), ["admin"]);
  assert.deepEqual(roles({ admin: true }), []);
  assert.throws(() => session.readClaims(token({ sub: "a", exp: now / 1000 }), now), /expired/);
  assert.throws(() => session.readClaims(token({ exp: now / 1000 + 60 }), now), /no `sub`/);
  assert.throws(() => session.readClaims(token({ sub: "a" }), now), /no `exp`/);
  assert.throws(() => session.readClaims("a.b", now), /not a token/);
  assert.throws(() => session.readClaims("a.!!.c", now), /not a token/);
  assert.throws(() => session.readClaims(`a.${Buffer.from("[1").toString("base64url")}.c`, now), /not base64url-encoded JSON/);
});

test("times, distances and speeds read as people write them", () => {
  assert.equal(format.ago(0, 5000), "never");
  assert.equal(format.ago(4000, 5000), "just now");
  assert.equal(format.ago(0 + 1, 42_001), "42 s ago");
  assert.equal(format.ago(1, 1 + 5 * 60_000 + 10_000), "5 min ago");
  assert.equal(format.duration(45_000), "45 s");
  assert.equal(format.duration(65 * 60_000), "1 h 05 min");
  assert.equal(format.distance(850.4), "850 m");
  assert.equal(format.distance(12_345), "12.3 km");
  assert.equal(format.speed(10), "36 km/h");
});

test("tiles are the tracker's: Web Mercator at zoom 14, the same keys as tracker::tiles", () => {
  // The values tracker::tiles's tests check.
  assert.equal(tiles.tileOf(0, 0), 8192 * 16384 + 8192);
  assert.equal(tiles.tileOf(52.5163, 13.3777), 8800 * 16384 + 5373);
  assert.equal(tiles.tileOf(-33.8568, 151.2153), 15073 * 16384 + 9831);
  assert.equal(tiles.tileOf(89.9, -180), 0);
  assert.equal(tiles.tileOf(-89.9, 180), 16383 * 16384 + 16383);
  // A box covers the tiles from its north-west to its south-east corner, or says it has too many.
  const box = tiles.tilesIn(52.50, 13.37, 52.53, 13.40, 64);
  assert.ok(box.includes(tiles.tileOf(52.5163, 13.3777)));
  assert.ok(box.includes(tiles.tileOf(52.50, 13.37)) && box.includes(tiles.tileOf(52.53, 13.40)));
  assert.equal(new Set(box).size, box.length);
  assert.equal(tiles.tilesIn(40, 0, 60, 30, 64), undefined);
});
