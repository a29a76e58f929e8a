// The tracker's dashboard: a live map of the devices a token may see, their list and their trip
// history, over the gateway's WebSocket. Bundled by esbuild (build.mjs); served by `tracker demo`
// with `/config.json` (where the gateway is) and `/city.geojson` (the basemap). README.md lists
// the element ids and data attributes tests rely on.
//
// Layout: main.ts (this file: the page, the map, signing in and out), session.ts (the token),
// accounts.ts (login, the account dialogs), dashboard.ts (one signed-in session),
// connection.ts (the connection's state, errors),
// fleet.ts (the devices' model), fleetmap.ts (markers and trails), devicelist.ts, trips.ts,
// basemap.ts (the city), format.ts.

import "leaflet/dist/leaflet.css";
import "./app.css";

import type { RpcError } from "@rpcgen/client";
import * as L from "leaflet";

import { explain, login } from "./accounts.js";
import { checkCity, drawBasemap } from "./basemap.js";
import { describe, element, showStatus } from "./connection.js";
import { Dashboard, type DashboardInspection } from "./dashboard.js";
import { readClaims, takeTokenFromAddress, TokenError, tokenStore } from "./session.js";

interface Config {
  readonly gateway: string;
  readonly center: L.LatLngTuple | undefined;
  readonly zoom: number | undefined;
}

const el = {
  state: element("state"),
  user: element("user"),
  logout: element<HTMLButtonElement>("logout"),
  map: element("map"),
  mapError: element("map-error"),
  login: element("login"),
  loginForm: element<HTMLFormElement>("login-form"),
  loginName: element<HTMLInputElement>("login-name"),
  loginPassword: element<HTMLInputElement>("login-password"),
  loginButton: element<HTMLButtonElement>("login-button"),
  tokenForm: element<HTMLFormElement>("token-form"),
  tokenInput: element<HTMLTextAreaElement>("token-input"),
  loginError: element("login-error"),
};
const sessionElements = {
  state: el.state,
  devicesScroll: element("devices-scroll"),
  deviceSearch: element<HTMLInputElement>("device-search"),
  devices: element("devices"),
  deviceCount: element("device-count"),
  devicesError: element("devices-error"),
  follow: element("follow"),
  followName: element("follow-name"),
  followStop: element<HTMLButtonElement>("follow-stop"),
  shareDevice: element<HTMLButtonElement>("share-device"),
  trips: {
    panel: element("trips-panel"),
    title: element("trips-device"),
    ranges: element("ranges"),
    status: element("trips-status"),
    list: element("trips"),
    clear: element<HTMLButtonElement>("clear-trip"),
  },
};

// Taken first, so the token leaves the address bar at once.
const tokenFromAddress = takeTokenFromAddress();

const map = L.map(el.map, { minZoom: 11, maxZoom: 19, zoomSnap: 0.5, attributionControl: false }).setView([0, 0], 2);
L.control.scale({ imperial: false, position: "bottomright" }).addTo(map);

function mapError(text: string): void {
  el.mapError.hidden = false;
  el.mapError.textContent = text;
}

async function fetchJson(path: string): Promise<unknown> {
  const response = await fetch(path, { cache: "no-cache" });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${response.statusText}`);
  try {
    return await response.json();
  } catch {
    throw new Error(`${path} is not JSON`);
  }
}

/** `/config.json`, checked; without it, the gateway's default port on this host. */
async function loadConfig(): Promise<Config> {
  const fallback: Config = { gateway: `ws://${location.hostname || "127.0.0.1"}:7402`, center: undefined, zoom: undefined };
  let raw: unknown;
  try {
    raw = await fetchJson("config.json");
  } catch (error) {
    mapError(`could not load the configuration (${error instanceof Error ? error.message : error}); trying ${fallback.gateway}`);
    return fallback;
  }
  const { gateway, center, zoom } = (raw ?? {}) as Record<string, unknown>;
  const validCenter =
    Array.isArray(center) && center.length === 2 && center.every((v) => typeof v === "number" && Number.isFinite(v));
  return {
    gateway: typeof gateway === "string" && /^wss?:\/\//.test(gateway) ? gateway : fallback.gateway,
    center: validCenter ? (center as L.LatLngTuple) : undefined,
    zoom: typeof zoom === "number" && Number.isFinite(zoom) ? zoom : undefined,
  };
}

/** Draws `/city.geojson`; `#map`'s `data-basemap` becomes `ready` (or `failed`). */
async function loadCity(config: Config): Promise<void> {
  try {
    const city = checkCity(await fetchJson("city.geojson"));
    const { bounds, counts } = drawBasemap(map, city);
    map.setMaxBounds(bounds.pad(0.3));
    if (config.center) map.setView(config.center, config.zoom ?? 14);
    else map.fitBounds(bounds);
    el.map.dataset.features = String(city.features.length);
    el.map.dataset.roads = String(counts.road ?? 0);
    el.map.dataset.basemap = "ready";
  } catch (error) {
    el.map.dataset.basemap = "failed";
    mapError(`could not draw the map: ${error instanceof Error ? error.message : error}`);
    if (config.center) map.setView(config.center, config.zoom ?? 14);
  }
}

let config: Config | undefined;
let dashboard: Dashboard | undefined;

function showLogin(reason?: string): void {
  el.login.hidden = false;
  el.loginError.hidden = !reason;
  el.loginError.textContent = reason ?? "";
  el.user.hidden = true;
  el.logout.hidden = true;
  el.loginPassword.value = "";
  el.loginName.focus();
}

/** The signed-in session, for tests and the browser's console (README.md). */
const inspected = window as { trackerDashboard?: DashboardInspection };

function signIn(token: string): void {
  let sub: string;
  let roles: readonly string[];
  try {
    ({ sub, roles } = readClaims(token));
  } catch (error) {
    tokenStore.clear();
    showLogin(error instanceof TokenError ? error.message : String(error));
    return;
  }
  if (!config) return;
  tokenStore.set(token);
  el.login.hidden = true;
  el.tokenInput.value = "";
  el.user.textContent = sub;
  el.user.dataset.roles = roles.join(" ");
  el.user.hidden = false;
  el.logout.hidden = false;
  dashboard?.dispose();
  const session = { token, admin: roles.includes("admin"), onToken: (fresh: string) => tokenStore.set(fresh) };
  dashboard = new Dashboard(map, config.gateway, session, sessionElements, (error: RpcError) => {
    dashboard?.dispose();
    dashboard = undefined;
    inspected.trackerDashboard = undefined;
    tokenStore.clear();
    showLogin(`The gateway refused the token: ${describe(error)}`);
  });
  inspected.trackerDashboard = dashboard.inspect();
}

function signOut(): void {
  dashboard?.dispose();
  dashboard = undefined;
  inspected.trackerDashboard = undefined;
  tokenStore.clear();
  showStatus(el.state, "signed-out", "signed out");
  showLogin();
}

el.logout.addEventListener("click", signOut);
el.loginForm.addEventListener("submit", (event) => {
  event.preventDefault();
  void signInWithPassword();
});

/** Signs in with the form's name and password (`login` over a connection without a token). */
async function signInWithPassword(): Promise<void> {
  const name = el.loginName.value.trim();
  const password = el.loginPassword.value;
  if (!name || !password) {
    showLogin("Give your name and your password.");
    return;
  }
  if (!config) return;
  el.loginButton.disabled = true;
  el.loginError.hidden = true;
  try {
    const session = await login(config.gateway, name, password);
    el.loginPassword.value = "";
    signIn(session.token);
  } catch (error) {
    showLogin(`Could not sign in: ${explain(error)}`);
    el.loginName.value = name;
  } finally {
    el.loginButton.disabled = false;
  }
}

el.tokenForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const token = el.tokenInput.value.trim();
  if (!token) {
    showLogin("Paste a token first.");
    return;
  }
  signIn(token);
});

async function boot(): Promise<void> {
  const token = tokenFromAddress ?? tokenStore.get();
  showStatus(el.state, token ? "connecting" : "signed-out", token ? "connecting…" : "signed out");
  config = await loadConfig();
  const city = loadCity(config);
  if (token) signIn(token);
  else showLogin();
  await city;
}

void boot();
