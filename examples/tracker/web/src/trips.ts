// The trip history of the selected device: a range (last hour, today, 24 h), the `trips` RPC's
// list (`#trips li`, oldest first as the service returns them, shown newest first), and, for the
// trip clicked, its path from `history` drawn on the map with the view fitted to it.

import * as L from "leaflet";

import * as tracker from "../generated/examples/tracker.js";
import { describe } from "./connection.js";
import type { Device } from "./fleet.js";
import { clock, distance, duration, speed } from "./format.js";

export type Range = "hour" | "today" | "day";

/** The history RPC's cap: a longer trip is drawn up to its first this-many positions. */
const HISTORY_LIMIT = 10_000;

/** The start of `range` ending now, in ms since the epoch. */
export function rangeStart(range: Range, nowMs: number): number {
  switch (range) {
    case "hour":
      return nowMs - 3_600_000;
    case "day":
      return nowMs - 86_400_000;
    case "today": {
      const midnight = new Date(nowMs);
      midnight.setHours(0, 0, 0, 0);
      return midnight.getTime();
    }
  }
}

interface Elements {
  readonly panel: HTMLElement;
  readonly title: HTMLElement;
  readonly ranges: HTMLElement;
  readonly status: HTMLElement;
  readonly list: HTMLElement;
  readonly clear: HTMLButtonElement;
}

export class TripsPanel {
  #device: Device | undefined;
  #range: Range = "hour";
  /** Counts requests, so that a reply to an older one (another device, another range) is ignored. */
  #generation = 0;
  readonly #path = L.layerGroup();

  constructor(
    private readonly map: L.Map,
    private readonly api: tracker.TrackerClient,
    private readonly el: Elements,
    /** Told when a trip's path is drawn, so the map stops following the device. */
    private readonly onPathShown: () => void,
    /** Where trips' descriptions are set (`describe_trip`). */
    private readonly accounts?: tracker.TrackerAccountsClient,
  ) {
    for (const button of el.ranges.querySelectorAll<HTMLButtonElement>("button[data-range]")) {
      button.addEventListener("click", () => {
        this.#range = button.dataset.range as Range;
        void this.load();
      });
    }
    el.clear.addEventListener("click", () => this.#clearPath());
  }

  /** Shows `device`'s trips (or hides the panel for `undefined`). */
  open(device: Device | undefined): void {
    this.#device = device;
    this.#clearPath();
    this.el.panel.hidden = device === undefined;
    if (!device) {
      this.#generation += 1;
      return;
    }
    this.el.title.textContent = device.name;
    void this.load();
  }

  /** Loads the trips of the current device and range. */
  async load(): Promise<void> {
    const device = this.#device;
    if (!device) return;
    const generation = ++this.#generation;
    for (const button of this.el.ranges.querySelectorAll<HTMLButtonElement>("button[data-range]")) {
      button.setAttribute("aria-pressed", String(button.dataset.range === this.#range));
    }
    this.#clearPath();
    this.el.list.replaceChildren();
    this.#status("loading trips…");
    const nowMs = Date.now();
    try {
      const reply = await this.api.trips(
        new tracker.TripsT({ deviceId: device.id, fromMs: BigInt(rangeStart(this.#range, nowMs)), toMs: 0n, gapS: 0 }),
      );
      if (generation !== this.#generation) return;
      const trips = Array.from({ length: reply.tripsLength() }, (_, i) => reply.trips(i)).filter(
        (t): t is NonNullable<typeof t> => t !== null,
      );
      this.#status(trips.length === 0 ? "no trips in this range" : `${trips.length} trip${trips.length === 1 ? "" : "s"}`);
      for (const trip of trips.reverse()) {
        const startMs = Number(trip.startMs());
        const endMs = Number(trip.endMs());
        const item = document.createElement("li");
        item.dataset.startMs = String(startMs);
        item.dataset.endMs = String(endMs);
        item.tabIndex = 0;
        item.innerHTML = '<div class="when"></div><div class="stats"><span class="duration"></span>' +
          '<span class="distance"></span><span class="max-speed"></span></div>';
        (item.querySelector(".when") as HTMLElement).textContent = `${clock(startMs, nowMs)} – ${clock(endMs, nowMs)}`;
        (item.querySelector(".duration") as HTMLElement).textContent = duration(endMs - startMs);
        (item.querySelector(".distance") as HTMLElement).textContent = distance(trip.distanceM());
        (item.querySelector(".max-speed") as HTMLElement).textContent = `max ${speed(trip.maxSpeedMps())}`;
        item.title = `${trip.points()} positions, mean ${speed(trip.meanSpeedMps())}`;
        this.#describable(device, item, startMs, trip.description() ?? "");
        item.addEventListener("click", () => void this.#showTrip(device, item, startMs, endMs));
        item.addEventListener("keydown", (event) => {
          if (event.key === "Enter") void this.#showTrip(device, item, startMs, endMs);
        });
        this.el.list.append(item);
      }
    } catch (error) {
      if (generation === this.#generation) this.#status(`could not load the trips: ${describe(error)}`, true);
    }
  }

  /** Draws one trip's path from `history` and fits the map to it. */
  async #showTrip(device: Device, item: HTMLElement, startMs: number, endMs: number): Promise<void> {
    const generation = ++this.#generation;
    for (const other of this.el.list.children) other.classList.toggle("selected", other === item);
    this.#clearPath();
    try {
      const reply = await this.api.history(
        new tracker.HistoryT({
          deviceId: device.id,
          fromMs: BigInt(startMs),
          toMs: BigInt(endMs),
          limit: HISTORY_LIMIT,
          newestFirst: false,
        }),
      );
      if (generation !== this.#generation) return;
      const points: L.LatLngTuple[] = [];
      for (let i = 0; i < reply.positionsLength(); i += 1) {
        const p = reply.positions(i);
        if (p) points.push([p.lat(), p.lon()]);
      }
      if (points.length === 0) {
        this.#status("this trip has no positions any more", true);
        return;
      }
      L.polyline(points, { color: "#fff", weight: 9, opacity: 0.9, interactive: false }).addTo(this.#path);
      L.polyline(points, { color: device.color, weight: 5, opacity: 1, interactive: false }).addTo(this.#path);
      const ends: [L.LatLngTuple, string, string][] = [
        [points[0] as L.LatLngTuple, "#16a34a", `start ${clock(startMs)}`],
        [points[points.length - 1] as L.LatLngTuple, "#1f2a37", `end ${clock(endMs)}`],
      ];
      for (const [at, color, label] of ends) {
        L.circleMarker(at, { radius: 7, color: "#fff", weight: 3, fillColor: color, fillOpacity: 1 })
          .bindTooltip(label)
          .addTo(this.#path);
      }
      this.#path.addTo(this.map);
      this.el.clear.hidden = false;
      this.onPathShown();
      this.map.fitBounds(L.latLngBounds(points), { padding: [48, 48], maxZoom: 17 });
      if (points.length === HISTORY_LIMIT) this.#status(`showing the trip's first ${HISTORY_LIMIT} positions`);
    } catch (error) {
      if (generation === this.#generation) this.#status(`could not load the trip's path: ${describe(error)}`, true);
    }
  }

  /** The trip's description, and a button that edits it in place (`describe_trip` on save). */
  #describable(device: Device, item: HTMLElement, startMs: number, text: string): void {
    const shown = document.createElement("p");
    shown.className = "description";
    shown.textContent = text;
    shown.hidden = text === "";
    item.append(shown);
    if (!this.accounts) return;
    const accounts = this.accounts;
    const edit = document.createElement("button");
    edit.type = "button";
    edit.className = "small describe";
    edit.textContent = text ? "Edit the description" : "Describe";
    edit.addEventListener("click", (event) => {
      event.stopPropagation();
      const form = document.createElement("form");
      form.className = "describe-form";
      const input = document.createElement("input");
      input.className = "description-input";
      input.maxLength = 1000;
      input.value = shown.textContent ?? "";
      input.setAttribute("aria-label", "the trip's description");
      const save = document.createElement("button");
      save.type = "submit";
      save.className = "small";
      save.textContent = "Save";
      form.append(input, save);
      for (const type of ["click", "keydown"]) form.addEventListener(type, (e) => e.stopPropagation());
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        const description = input.value.trim();
        void accounts
          .describeTrip(new tracker.DescribeTripT({ deviceId: device.id, startMs: BigInt(startMs), description }))
          .then(() => {
            shown.textContent = description;
            shown.hidden = description === "";
            edit.textContent = description ? "Edit the description" : "Describe";
            form.replaceWith(edit);
          })
          .catch((error: unknown) => this.#status(`could not save the description: ${describe(error)}`, true));
      });
      edit.replaceWith(form);
      input.focus();
    });
    item.append(edit);
  }

  #clearPath(): void {
    this.#path.clearLayers();
    this.#path.remove();
    this.el.clear.hidden = true;
    for (const other of this.el.list.children) other.classList.remove("selected");
  }

  #status(text: string, error = false): void {
    this.el.status.textContent = text;
    this.el.status.classList.toggle("error", error);
    this.el.status.classList.toggle("muted", !error);
  }
}
