// One signed-in session: the client connected with the user's token, the devices the token may
// see (the `devices` RPC, again after each reconnection), one `position` subscription per device
// (a restricted token may not subscribe to all keys), the trails seeded from `history`, the list,
// the markers and the trips panel, and the account dialogs. With thousands of devices and a
// token that sees them all, it subscribes instead to the map tiles in view (`tile`), following
// the view. The token is refreshed (`refresh`, then AUTH) five minutes before it expires, and at
// once after a device was added, since it lists the devices the user sees. `dispose()` ends it
// all (log out, refused token).
//
// The `position` topic keeps a short history: when the connection comes back, each subscription
// recovers the positions it missed (the trail has no hole), or, when the gateway cannot give them
// (it restarted, or the client was away too long), the trail is loaded again from `history`.

import { Client, type ConnectionState, type RpcError } from "@rpcgen/client";
import type * as L from "leaflet";

import * as tracker from "../generated/examples/tracker.js";
import { AccountDialogs, sessionOf } from "./accounts.js";
import { describe, showState } from "./connection.js";
import { DeviceList } from "./devicelist.js";
import { colorOf, Device, type Fix, TRAIL_MS } from "./fleet.js";
import { CANVAS_ABOVE, CanvasFleet } from "./fleetcanvas.js";
import { FleetMap } from "./fleetmap.js";
import { readClaims } from "./session.js";
import { tilesIn } from "./tiles.js";
import { TripsPanel } from "./trips.js";

/** The page elements a session fills. */
export interface SessionElements {
  readonly state: HTMLElement;
  readonly devicesScroll: HTMLElement;
  readonly deviceSearch: HTMLInputElement;
  readonly devices: HTMLElement;
  readonly deviceCount: HTMLElement;
  readonly devicesError: HTMLElement;
  readonly follow: HTMLElement;
  readonly followName: HTMLElement;
  readonly followStop: HTMLButtonElement;
  readonly shareDevice: HTMLButtonElement;
  readonly trips: ConstructorParameters<typeof TripsPanel>[2];
}

/** A signed-in user's token, and where a refreshed one goes. */
export interface SessionToken {
  readonly token: string;
  /** Whether the user is an admin (the users dialog shows; the service checks). */
  readonly admin: boolean;
  /** Told each refreshed token, to keep it for a reload. */
  readonly onToken: (token: string) => void;
}

/** The most tiles the page subscribes to; a wider view takes every device's positions instead. */
const MAX_TILES = 64;
/** How often the list's rows of devices out of view are brought up to date (`last_positions`). */
const LIST_REFRESH_MS = 5_000;

/** How long before its expiry a token is refreshed. */
const REFRESH_BEFORE_MS = 5 * 60_000;

/** A position as the page keeps it. */
export function fixOf(p: tracker.Position): Fix {
  return {
    timeMs: Number(p.timeMs()),
    receivedMs: Number(p.receivedMs()),
    lat: p.lat(),
    lon: p.lon(),
    speedMps: p.speedMps(),
    headingDeg: p.headingDeg(),
  };
}

/**
 * What tests and the browser's console may ask of a session (`window.trackerDashboard`): a
 * device's trail, the positions the tracker stored, and how restores went.
 */
export interface DashboardInspection {
  /** The fix times (ms) of the trail of the device with this id (decimal), oldest first. */
  trail(deviceId: string): number[];
  /** The fix times (ms) the tracker stored for the device since `fromMs` (the `history` RPC), oldest first. */
  stored(deviceId: string, fromMs: number): Promise<number[]>;
  /** Subscriptions restored with what they missed, and restored without it (the trail reloaded). */
  readonly restores: { recovered: number; lost: number };
  /** How the map draws the devices: `markers` (one element each) or `canvas` (many devices). */
  readonly renderer: "markers" | "canvas";
  /** Live subscriptions: one per device, or one for every device. */
  readonly subscriptions: number;
}

export class Dashboard {
  readonly #client: Client;
  readonly #api: tracker.TrackerClient;
  readonly #accounts: tracker.TrackerAccountsClient;
  readonly #dialogs: AccountDialogs;
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #devices = new Map<string, Device>();
  readonly #subscribed = new Set<string>();
  readonly #list: DeviceList;
  readonly #map: L.Map;
  /** Made with the first device list: markers for a few devices, a canvas for many. */
  #fleet: FleetMap | CanvasFleet | undefined;
  /** Whether there are many devices (`CANVAS_ABOVE`): a canvas, trails only for the selected one. */
  #many = false;
  /**
   * With many devices and a token that sees them all: the `tile` subscriptions of the view, by
   * tile key, or (`"all"`) one subscription to every device's positions when the view covers
   * more than `MAX_TILES` tiles.
   */
  readonly #tiles = new Map<number, { close(): void } | undefined>();
  #all: { close(): void } | undefined | "opening";
  readonly #onMoveEnd = () => this.#followView();
  #lastListed = 0;
  /** Whether the device list was rendered once. */
  #listed = false;
  readonly #trips: TripsPanel;
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #errors = new Map<string, string>();
  readonly #restores = { recovered: 0, lost: 0 };
  #selected: string | undefined;
  #wasConnected = false;
  #disposed = false;
  #ticks = 0;

  /**
   * Connects to `gateway` with `token` and starts showing the user's devices.
   *
   * @param onClosed called once if the gateway refuses the client for good (a bad or expired
   *   token, a ban), with the reason; not called after `dispose()`.
   */
  constructor(
    map: L.Map,
    gateway: string,
    private readonly session: SessionToken,
    private readonly el: SessionElements,
    private readonly onClosed: (error: RpcError) => void,
  ) {
    const token = session.token;
    this.#client = new Client({ endpoints: [gateway], token, name: "tracker-dashboard", defaultTimeoutMs: 10_000 });
    this.#api = new tracker.TrackerClient(this.#client);
    this.#accounts = new tracker.TrackerAccountsClient(this.#client);
    this.#dialogs = new AccountDialogs(this.#accounts, session.admin, async () => {
      await this.#refreshToken();
      await this.#loadDevices();
    });
    this.#map = map;
    this.#list = new DeviceList(el.devicesScroll, el.devices, el.deviceSearch, el.deviceCount, (key) => this.select(key));
    this.#trips = new TripsPanel(map, this.#api, el.trips, () => this.#fleet?.follow(undefined), this.#accounts);
    el.followStop.onclick = () => this.#fleet?.follow(undefined);
    el.shareDevice.onclick = () => {
      const device = this.#selected === undefined ? undefined : this.#devices.get(this.#selected);
      if (device) void this.#dialogs.openShare(device.id, device.name);
    };
    this.#scheduleRefresh(readClaims(token, 0).exp * 1000);
    this.#onState(this.#client.state);
    this.#client.onStateChange((state) => this.#onState(state));
    this.#timer = setInterval(() => this.#tick(), 1000);
  }

  /** Selects a device: marks it, follows it on the map, opens its trips. */
  select(key: string): void {
    const device = this.#devices.get(key);
    if (!device) return;
    const again = this.#selected === key;
    if (this.#many && !again) {
      // Only the selected device keeps a trail.
      const previous = this.#selected === undefined ? undefined : this.#devices.get(this.#selected);
      if (previous) {
        previous.keepsTrail = false;
        previous.trail = [];
      }
      device.keepsTrail = true;
      void this.#seedTrail(device);
    }
    this.#selected = key;
    this.#list.select(key);
    this.#fleet?.select(key);
    if (!again) this.#trips.open(device);
    this.#fleet?.follow(key);
  }

  /** The session as tests and the browser's console see it. */
  inspect(): DashboardInspection {
    const self = this;
    return {
      trail: (deviceId) => this.#devices.get(deviceId)?.trail.map((fix) => fix.timeMs) ?? [],
      stored: async (deviceId, fromMs) => {
        const reply = await this.#api.history(
          new tracker.HistoryT({ deviceId: BigInt(deviceId), fromMs: BigInt(fromMs), toMs: 0n, limit: 10_000 }),
        );
        const times: number[] = [];
        for (let i = 0; i < reply.positionsLength(); i += 1) {
          const p = reply.positions(i);
          if (p) times.push(Number(p.timeMs()));
        }
        return times.sort((a, b) => a - b);
      },
      restores: this.#restores,
      get renderer() {
        return self.#fleet instanceof CanvasFleet ? "canvas" : "markers";
      },
      get subscriptions() {
        return self.#subscribed.size + [...self.#tiles.values()].filter(Boolean).length + (self.#all ? 1 : 0);
      },
    };
  }

  /** Ends the session: closes the client (and so the subscriptions), clears what it drew. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    clearInterval(this.#timer);
    clearTimeout(this.#refreshTimer);
    this.#map.off("moveend", this.#onMoveEnd);
    for (const subscription of this.#tiles.values()) subscription?.close();
    this.#tiles.clear();
    if (this.#all && this.#all !== "opening") this.#all.close();
    this.#all = undefined;
    this.#dialogs.dispose();
    this.el.shareDevice.onclick = null;
    void this.#client.close();
    this.#fleet?.clear();
    this.#trips.open(undefined);
    this.#list.dispose();
    this.el.devicesError.hidden = true;
    this.el.follow.hidden = true;
  }

  /** Refreshes the token `REFRESH_BEFORE_MS` before `expiresMs` (at least 5 s from now). */
  #scheduleRefresh(expiresMs: number): void {
    clearTimeout(this.#refreshTimer);
    const delay = Math.max(5_000, expiresMs - REFRESH_BEFORE_MS - Date.now());
    // setTimeout's longest delay is 2^31 - 1 ms.
    this.#refreshTimer = setTimeout(() => void this.#refreshToken(), Math.min(delay, 2 ** 31 - 1));
  }

  /** A fresh token from `refresh`, presented to the gateway (AUTH) and kept; retried in 5 s on failure. */
  async #refreshToken(): Promise<void> {
    if (this.#disposed) return;
    try {
      const fresh = sessionOf(await this.#accounts.refresh(new tracker.RefreshT()));
      await this.#client.refreshToken(fresh.token);
      if (this.#disposed) return;
      this.session.onToken(fresh.token);
      this.#scheduleRefresh(fresh.expiresMs);
      this.#setError("token", undefined);
    } catch (error) {
      if (this.#disposed) return;
      this.#setError("token", `could not refresh the sign-in: ${describe(error)}`);
      this.#scheduleRefresh(0);
    }
  }

  #onState(state: ConnectionState): void {
    if (this.#disposed) return;
    showState(this.el.state, state, this.#wasConnected);
    if (state.status === "connected") {
      this.#wasConnected = true;
      // After a reconnection too: positions published meanwhile were missed.
      void this.#loadDevices();
    } else if (state.status === "closed" && state.error) {
      this.onClosed(state.error);
    }
  }

  /** Lists the devices (merging into what is known), subscribes to the new ones, seeds their trails. */
  async #loadDevices(): Promise<void> {
    let reply: tracker.DeviceList;
    try {
      reply = await this.#api.devices(new tracker.ListDevicesT());
    } catch (error) {
      if (!this.#disposed) this.#setError("devices", `could not list the devices: ${describe(error)}`);
      return;
    }
    if (this.#disposed) return;
    this.#setError("devices", undefined);
    const nowMs = Date.now();
    const fresh: Device[] = [];
    let changed = false;
    for (let i = 0; i < reply.devicesLength(); i += 1) {
      const d = reply.devices(i);
      if (!d) continue;
      const key = d.id().toString();
      let device = this.#devices.get(key);
      if (!device) {
        device = new Device(d.id(), d.name() ?? `device ${key}`, colorOf(this.#devices.size), Number(d.lastSeenMs()));
        this.#devices.set(key, device);
        fresh.push(device);
        changed = true;
      }
      device.lastSeenMs = Math.max(device.lastSeenMs, Number(d.lastSeenMs()));
      const last = d.lastPosition();
      if (last) device.add(fixOf(last), nowMs);
    }
    const all = [...this.#devices.values()];
    const fleet = this.#fleetFor(all.length);
    // The first answer is listed even when empty (the list then says there are no devices).
    if (changed || !this.#listed) {
      this.#listed = true;
      this.#list.render(all, nowMs);
      this.#list.select(this.#selected);
    }
    for (const device of all) {
      fleet.show(device, nowMs);
      this.#list.update(device, nowMs);
    }
    if (this.#many && this.session.admin) {
      // The token may subscribe to tiles: those of the view, again each time the view settles.
      this.#map.off("moveend", this.#onMoveEnd);
      this.#map.on("moveend", this.#onMoveEnd);
      this.#followView();
      return;
    }
    for (const device of fresh) {
      void this.#follow(device);
      if (!this.#many) void this.#seedTrail(device);
    }
  }

  /** The map's view of the fleet, made the first time: markers for a few devices, a canvas for many. */
  #fleetFor(count: number): FleetMap | CanvasFleet {
    if (this.#fleet) return this.#fleet;
    this.#many = count > CANVAS_ABOVE;
    const select = (key: string) => this.select(key);
    const follow = (key: string | undefined) => this.#showFollow(key);
    this.#fleet = this.#many ? new CanvasFleet(this.#map, select, follow) : new FleetMap(this.#map, select, follow);
    if (this.#many) for (const device of this.#devices.values()) device.keepsTrail = false;
    return this.#fleet;
  }

  /**
   * Subscribes to the tiles the view covers (with a quarter of the view around it) and ends the
   * subscriptions of the tiles it left; past `MAX_TILES` tiles, to every device's positions.
   */
  #followView(): void {
    if (this.#disposed) return;
    const view = this.#map.getBounds().pad(0.25);
    const keys = tilesIn(view.getSouth(), view.getWest(), view.getNorth(), view.getEast(), MAX_TILES);
    const wanted = new Set(keys ?? []);
    for (const [key, subscription] of this.#tiles) {
      if (!wanted.has(key)) {
        subscription?.close();
        this.#tiles.delete(key);
      }
    }
    if (keys === undefined) {
      if (!this.#all) void this.#followAll();
      return;
    }
    if (this.#all && this.#all !== "opening") this.#all.close();
    this.#all = undefined;
    for (const key of keys) if (!this.#tiles.has(key)) void this.#followTile(key);
  }

  /** Receives one tile's positions until the view leaves it (or the session ends). */
  async #followTile(key: number): Promise<void> {
    this.#tiles.set(key, undefined);
    try {
      const batches = await this.#api.subscribeTile(BigInt(key));
      if (this.#disposed || !this.#tiles.has(key)) {
        batches.close();
        return;
      }
      this.#tiles.set(key, batches);
      this.#setError("live", undefined);
      for await (const event of batches) {
        if (this.#disposed) break;
        const batch = event.message;
        for (let i = 0; i < batch.positionsLength(); i += 1) {
          const p = batch.positions(i);
          const device = p && this.#devices.get(p.deviceId().toString());
          if (p && device) this.#onPosition(device, fixOf(p));
        }
      }
      const ended = await batches.ended;
      if (ended && !this.#disposed && this.#tiles.has(key)) throw ended;
    } catch (error) {
      if (this.#disposed) return;
      this.#tiles.delete(key);
      this.#setError("live", `no live positions for a part of the map: ${describe(error)}`);
    }
  }

  /** Receives every device's positions on one subscription, until the view narrows again. */
  async #followAll(): Promise<void> {
    this.#all = "opening";
    try {
      const positions = await this.#api.subscribePositionAll();
      if (this.#disposed || this.#all !== "opening") {
        positions.close();
        return;
      }
      this.#all = positions;
      this.#setError("live", undefined);
      for await (const event of positions) {
        if (this.#disposed) break;
        const device = this.#devices.get(event.message.deviceId().toString());
        if (device) this.#onPosition(device, fixOf(event.message));
      }
      const ended = await positions.ended;
      if (ended && !this.#disposed && this.#all === positions) throw ended;
    } catch (error) {
      if (this.#disposed) return;
      this.#all = undefined;
      this.#setError("live", `no live positions: ${describe(error)}`);
    }
  }

  /**
   * With tiles, devices out of view get no live positions: the list's rows are brought up to
   * date from `last_positions` instead, every `LIST_REFRESH_MS`.
   */
  async #refreshListed(nowMs: number): Promise<void> {
    if (this.#tiles.size === 0 || nowMs - this.#lastListed < LIST_REFRESH_MS) return;
    this.#lastListed = nowMs;
    const ids = this.#list.shownKeys().map((key) => BigInt(key));
    if (ids.length === 0) return;
    try {
      const reply = await this.#api.lastPositions(new tracker.LastPositionsT({ deviceIds: ids }));
      for (let i = 0; i < reply.positionsLength(); i += 1) {
        const p = reply.positions(i);
        const device = p && this.#devices.get(p.deviceId().toString());
        if (p && device && !this.#disposed) this.#onPosition(device, fixOf(p));
      }
    } catch {
      // The rows show when their device was last heard of; the next round tries again.
    }
  }

  /** Receives `device`'s positions for as long as the session lasts. */
  async #follow(device: Device): Promise<void> {
    if (this.#subscribed.has(device.key)) return;
    this.#subscribed.add(device.key);
    try {
      // A restore that could not recover what was missed (the gateway restarted, or the page
      // was away longer than the topic's history): the trail is loaded again.
      const onLost = () => {
        this.#restores.lost += 1;
        void this.#seedTrail(device);
      };
      const positions = await this.#api.subscribePosition(device.id, { onLost });
      if (this.#disposed) {
        positions.close();
        return;
      }
      this.#setError(`live ${device.key}`, undefined);
      for await (const event of positions) {
        if (this.#disposed) break;
        if (event.resumed && event.recovered) this.#restores.recovered += 1;
        this.#onPosition(device, fixOf(event.message));
      }
      const ended = await positions.ended;
      if (ended && !this.#disposed) throw ended;
    } catch (error) {
      if (this.#disposed) return;
      this.#setError(`live ${device.key}`, `no live positions for ${device.name}: ${describe(error)}`);
      this.#subscribed.delete(device.key);
    }
  }

  /** Fills the trail with the last few minutes from `history`. */
  async #seedTrail(device: Device): Promise<void> {
    try {
      const reply = await this.#api.history(
        new tracker.HistoryT({
          deviceId: device.id,
          fromMs: BigInt(Date.now() - TRAIL_MS),
          toMs: 0n,
          limit: 1000,
          newestFirst: true,
        }),
      );
      const nowMs = Date.now();
      for (let i = 0; i < reply.positionsLength(); i += 1) {
        const p = reply.positions(i);
        if (p) device.add(fixOf(p), nowMs);
      }
      if (!this.#disposed) this.#fleet?.show(device, nowMs);
    } catch {
      // The trail is a nicety: live positions still draw it.
    }
  }

  #onPosition(device: Device, fix: Fix): void {
    const nowMs = Date.now();
    device.add(fix, nowMs);
    this.#fleet?.show(device, nowMs);
    this.#list.update(device, nowMs);
  }

  #tick(): void {
    const nowMs = Date.now();
    this.#list.refresh(nowMs);
    void this.#refreshListed(nowMs);
    this.#ticks += 1;
    if (this.#ticks % 2 === 0) this.#fleet?.refresh(this.#devices.values(), nowMs);
  }

  #showFollow(key: string | undefined): void {
    const device = key === undefined ? undefined : this.#devices.get(key);
    this.el.follow.hidden = !device;
    this.el.followName.textContent = device?.name ?? "";
  }

  /** Sets or clears one error of the devices panel (each source its own line). */
  #setError(source: string, text: string | undefined): void {
    if (text === undefined) this.#errors.delete(source);
    else this.#errors.set(source, text);
    this.el.devicesError.hidden = this.#errors.size === 0;
    this.el.devicesError.textContent = [...this.#errors.values()].join("\n");
  }
}
