// The devices on the map: one marker per device (its colour, a heading arrow while it moves,
// its name) moving as positions arrive, and a trail of its last five minutes fading with age.
// Clicking a marker selects the device; the selected device can be followed (the map pans with
// it until the user drags the map).
//
// Each marker's element carries `data-device-id`, `data-lat`, `data-lon`, `data-heading` and
// `data-time-ms` (the fix shown), set the moment a position arrives; the marker itself glides to
// the new place in under a second.

import * as L from "leaflet";

import { type Device, type Fix, TRAIL_MS } from "./fleet.js";

/** The trail is drawn in this many pieces, each a little fainter than the newer one. */
const TRAIL_STEPS = 10;
/** Two fixes further apart in time than this are not joined (the device was silent). */
const TRAIL_GAP_MS = 60_000;

interface Drawn {
  readonly marker: L.Marker;
  readonly trail: L.LayerGroup;
}

export class FleetMap {
  readonly #map: L.Map;
  readonly #drawn = new Map<string, Drawn>();
  readonly #trails = L.canvas({ padding: 0.5 });
  #selected: string | undefined;
  #following: string | undefined;

  /**
   * @param onSelect called with a device's key when its marker is clicked.
   * @param onFollow called with the followed device's key, or `undefined` once the user drags the map.
   */
  constructor(
    map: L.Map,
    private readonly onSelect: (key: string) => void,
    private readonly onFollow: (key: string | undefined) => void,
  ) {
    this.#map = map;
    map.on("dragstart", () => this.follow(undefined));
    // Markers glide between fixes, but not while the map zooms (they would lag behind the streets).
    const container = map.getContainer();
    container.classList.add("glide");
    map.on("zoomstart", () => container.classList.remove("glide"));
    map.on("zoomend", () => requestAnimationFrame(() => container.classList.add("glide")));
  }

  /** Shows `device` at its newest fix (if it has one) with its trail; updates it if already shown. */
  show(device: Device, nowMs: number): void {
    const fix = device.last;
    if (!fix) return;
    let drawn = this.#drawn.get(device.key);
    if (!drawn) {
      const marker = L.marker([fix.lat, fix.lon], { icon: this.#icon(device), keyboard: false, riseOnHover: true });
      marker.on("click", () => this.onSelect(device.key));
      const trail = L.layerGroup().addTo(this.#map);
      marker.addTo(this.#map);
      drawn = { marker, trail };
      this.#drawn.set(device.key, drawn);
      const element = marker.getElement();
      if (element) element.dataset.deviceId = device.key;
    } else {
      drawn.marker.setLatLng([fix.lat, fix.lon]);
    }
    this.#decorate(device, drawn, fix, nowMs);
    this.#drawTrail(device, drawn, nowMs);
    if (this.#following === device.key) this.#map.panTo([fix.lat, fix.lon], { animate: true, duration: 0.8 });
  }

  /** Redraws every trail and stale state (the trail fades and shortens as time passes). */
  refresh(devices: Iterable<Device>, nowMs: number): void {
    for (const device of devices) {
      const drawn = this.#drawn.get(device.key);
      if (!drawn || !device.last) continue;
      device.prune(nowMs);
      this.#decorate(device, drawn, device.last, nowMs);
      this.#drawTrail(device, drawn, nowMs);
    }
  }

  /** Marks the selected device's marker (and brings it to the front). */
  select(key: string | undefined): void {
    this.#selected = key;
    for (const [k, { marker }] of this.#drawn) {
      marker.getElement()?.classList.toggle("selected", k === key);
      marker.setZIndexOffset(k === key ? 1000 : 0);
    }
  }

  /** Follows a device (pans to it now and with each fix), or stops following. */
  follow(key: string | undefined): void {
    if (this.#following === key) return;
    this.#following = key;
    const drawn = key === undefined ? undefined : this.#drawn.get(key);
    if (drawn) this.#map.panTo(drawn.marker.getLatLng(), { animate: true });
    this.onFollow(key);
  }

  get following(): string | undefined {
    return this.#following;
  }

  /** Removes every marker and trail (signing out). */
  clear(): void {
    for (const { marker, trail } of this.#drawn.values()) {
      marker.remove();
      trail.remove();
    }
    this.#drawn.clear();
    this.#selected = undefined;
    this.#following = undefined;
  }

  #icon(device: Device): L.DivIcon {
    const root = document.createElement("div");
    root.className = "dot";
    root.style.setProperty("--c", device.color);
    root.innerHTML =
      '<svg viewBox="-13 -13 26 26" aria-hidden="true"><path class="arrow" d="M0,-12.5 L5.5,-4.5 L-5.5,-4.5 Z"/>' +
      '<circle class="ring" r="7"/></svg><span class="label"></span>';
    (root.querySelector(".label") as HTMLElement).textContent = device.name;
    return L.divIcon({ className: "device-marker", html: root, iconSize: [0, 0] });
  }

  #decorate(device: Device, { marker }: Drawn, fix: Fix, nowMs: number): void {
    const element = marker.getElement();
    if (!element) return;
    element.dataset.lat = fix.lat.toFixed(6);
    element.dataset.lon = fix.lon.toFixed(6);
    element.dataset.heading = fix.headingDeg.toFixed(0);
    element.dataset.timeMs = String(fix.timeMs);
    element.dataset.moving = String(fix.speedMps > 0.5);
    element.classList.toggle("stale", device.isStale(nowMs));
    element.classList.toggle("selected", this.#selected === device.key);
    element.title = device.name;
    const svg = element.querySelector("svg");
    if (svg) svg.style.transform = `rotate(${fix.headingDeg}deg)`;
  }

  #drawTrail(device: Device, { trail }: Drawn, nowMs: number): void {
    trail.clearLayers();
    const steps: L.LatLngExpression[][][] = Array.from({ length: TRAIL_STEPS }, () => []);
    const fixes = device.trail;
    for (let i = 1; i < fixes.length; i += 1) {
      const a = fixes[i - 1] as Fix;
      const b = fixes[i] as Fix;
      if (b.timeMs - a.timeMs > TRAIL_GAP_MS) continue;
      const age = nowMs - b.timeMs;
      const step = Math.min(TRAIL_STEPS - 1, Math.max(0, Math.floor((age / TRAIL_MS) * TRAIL_STEPS)));
      const runs = steps[step] as L.LatLngExpression[][];
      const run = runs[runs.length - 1];
      const last = run?.[run.length - 1] as [number, number] | undefined;
      if (run && last && last[0] === a.lat && last[1] === a.lon) run.push([b.lat, b.lon]);
      else runs.push([[a.lat, a.lon], [b.lat, b.lon]]);
    }
    steps.forEach((runs, step) => {
      if (runs.length === 0) return;
      const opacity = 0.9 * (1 - (step + 0.5) / TRAIL_STEPS);
      L.polyline(runs, {
        renderer: this.#trails,
        color: device.color,
        weight: 4,
        opacity,
        lineCap: "round",
        lineJoin: "round",
        interactive: false,
      }).addTo(trail);
    });
  }
}
