// The devices on the map when there are many (thousands): every device a dot on one canvas, and
// where dots would crowd, clusters. Used instead of fleetmap.ts's one marker per device above
// `CANVAS_ABOVE` devices, whose DOM elements would make panning and updating crawl.
//
// - The canvas covers the view plus a margin, and is drawn again only when the view settles
//   (`moveend`, `zoomend`, `resize`) or, at most four times a second, when positions arrived.
//   While the map is dragged, the canvas moves with it as it is: panning costs no drawing.
// - Clustering: the view is cut into square cells of `CELL_PX`; below `CLUSTER_BELOW_ZOOM`, a
//   cell holding more than one device is drawn as one bubble with the count (a click zooms into
//   it). From that zoom on, every device is a dot with a heading tick; names are drawn when at
//   most `LABELS_UP_TO` devices are in view.
// - The selected device is drawn on top, ringed, with its trail.
//
// For tests, `#map` carries `data-renderer="canvas"`, `data-drawn-devices` (dots drawn),
// `data-drawn-clusters` and `data-draws` (how many times the canvas was drawn).

import * as L from "leaflet";

import { type Device, type Fix } from "./fleet.js";

/** Above this many devices the dashboard draws them on a canvas (this file). */
export const CANVAS_ABOVE = 300;
/** Below this zoom, devices close together are drawn as clusters. */
const CLUSTER_BELOW_ZOOM = 16;
/** The clustering grid, in screen pixels. */
const CELL_PX = 44;
/** Names are drawn when at most this many devices are in view. */
const LABELS_UP_TO = 150;
/** The fastest positions redraw the canvas. */
const REDRAW_EVERY_MS = 250;
/** How far past the view the canvas reaches, as a share of the view (drawn once, panned over). */
const PADDING = 0.5;
/** A click this close to a dot selects its device. */
const CLICK_PX = 10;

export class CanvasFleet {
  readonly #map: L.Map;
  readonly #devices = new Map<string, Device>();
  readonly #canvas = document.createElement("canvas");
  readonly #layer: L.Layer;
  #selected: string | undefined;
  #following: string | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #draws = 0;
  /** The clusters last drawn: their centre (container point) and what they hold. */
  #clusters: { at: L.Point; count: number; latLng: L.LatLng }[] = [];

  constructor(
    map: L.Map,
    private readonly onSelect: (key: string) => void,
    private readonly onFollow: (key: string | undefined) => void,
  ) {
    this.#map = map;
    this.#canvas.className = "fleet-canvas leaflet-zoom-hide";
    const canvas = this.#canvas;
    const draw = () => this.#draw();
    const onClick = (event: L.LeafletMouseEvent) => this.#click(event.containerPoint);
    const onDrag = () => this.follow(undefined);
    this.#layer = new (L.Layer.extend({
      onAdd(this: L.Layer, m: L.Map) {
        m.getPanes().overlayPane.appendChild(canvas);
        m.on("moveend zoomend resize", draw);
        m.on("click", onClick);
        m.on("dragstart", onDrag);
        draw();
        return this;
      },
      onRemove(this: L.Layer, m: L.Map) {
        canvas.remove();
        m.off("moveend zoomend resize", draw);
        m.off("click", onClick);
        m.off("dragstart", onDrag);
        return this;
      },
    }))();
    this.#layer.addTo(map);
    map.getContainer().dataset.renderer = "canvas";
  }

  /** Shows `device` at its newest fix; the canvas is redrawn soon. */
  show(device: Device, _nowMs: number): void {
    this.#devices.set(device.key, device);
    if (this.#following === device.key && device.last) {
      this.#map.panTo([device.last.lat, device.last.lon], { animate: true, duration: 0.8 });
    }
    this.#soon();
  }

  /** Staleness changes with time: redraw. */
  refresh(_devices: Iterable<Device>, _nowMs: number): void {
    this.#soon();
  }

  select(key: string | undefined): void {
    this.#selected = key;
    this.#soon();
  }

  follow(key: string | undefined): void {
    if (this.#following === key) return;
    this.#following = key;
    const fix = key === undefined ? undefined : this.#devices.get(key)?.last;
    if (fix) this.#map.panTo([fix.lat, fix.lon], { animate: true });
    this.onFollow(key);
  }

  get following(): string | undefined {
    return this.#following;
  }

  clear(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#layer.remove();
    this.#devices.clear();
    this.#selected = undefined;
    this.#following = undefined;
    const container = this.#map.getContainer();
    delete container.dataset.renderer;
    delete container.dataset.drawnDevices;
    delete container.dataset.drawnClusters;
    delete container.dataset.draws;
  }

  /** Draws within `REDRAW_EVERY_MS`, once however many positions arrive meanwhile. */
  #soon(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      requestAnimationFrame(() => this.#draw());
    }, REDRAW_EVERY_MS);
  }

  #draw(): void {
    const map = this.#map;
    const size = map.getSize();
    const pad = size.multiplyBy(PADDING).round();
    // The canvas's corner, in layer points (which the overlay pane's position maps to the screen).
    const topLeft = map.containerPointToLayerPoint(pad.multiplyBy(-1)).round();
    const width = size.x + 2 * pad.x;
    const height = size.y + 2 * pad.y;
    const ratio = window.devicePixelRatio || 1;
    const canvas = this.#canvas;
    if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
      canvas.style.width = `${width}px`;
      canvas.style.height = `${height}px`;
    }
    L.DomUtil.setPosition(canvas, topLeft);
    const ctx = canvas.getContext("2d");
    if (!ctx) return;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const nowMs = Date.now();
    const clustering = map.getZoom() < CLUSTER_BELOW_ZOOM;
    // Each device's place on the canvas, if within it.
    const placed: { device: Device; fix: Fix; x: number; y: number }[] = [];
    for (const device of this.#devices.values()) {
      const fix = device.last;
      if (!fix || device.key === this.#selected) continue;
      const p = map.latLngToLayerPoint([fix.lat, fix.lon]);
      const x = p.x - topLeft.x;
      const y = p.y - topLeft.y;
      if (x < 0 || y < 0 || x > width || y > height) continue;
      placed.push({ device, fix, x, y });
    }

    this.#clusters = [];
    let dots = placed;
    if (clustering) {
      const cells = new Map<number, typeof placed>();
      for (const item of placed) {
        const cell = Math.floor(item.x / CELL_PX) * 100_000 + Math.floor(item.y / CELL_PX);
        const list = cells.get(cell);
        if (list) list.push(item);
        else cells.set(cell, [item]);
      }
      dots = [];
      for (const members of cells.values()) {
        if (members.length === 1) {
          dots.push(members[0] as (typeof placed)[number]);
          continue;
        }
        let sx = 0;
        let sy = 0;
        for (const m of members) {
          sx += m.x;
          sy += m.y;
        }
        const at = L.point(sx / members.length, sy / members.length);
        this.#drawCluster(ctx, at, members.length);
        const layerPoint = at.add(topLeft);
        this.#clusters.push({
          at: map.layerPointToContainerPoint(layerPoint),
          count: members.length,
          latLng: map.layerPointToLatLng(layerPoint),
        });
      }
    }
    const labels = dots.length <= LABELS_UP_TO;
    for (const { device, fix, x, y } of dots) this.#drawDot(ctx, device, fix, x, y, nowMs, labels, false);

    const selected = this.#selected === undefined ? undefined : this.#devices.get(this.#selected);
    if (selected?.last) {
      this.#drawTrail(ctx, selected, topLeft);
      const p = map.latLngToLayerPoint([selected.last.lat, selected.last.lon]);
      this.#drawDot(ctx, selected, selected.last, p.x - topLeft.x, p.y - topLeft.y, nowMs, true, true);
    }
    this.#draws += 1;
    const container = map.getContainer();
    container.dataset.drawnDevices = String(dots.length + (selected?.last ? 1 : 0));
    container.dataset.drawnClusters = String(this.#clusters.length);
    container.dataset.draws = String(this.#draws);
  }

  #drawCluster(ctx: CanvasRenderingContext2D, at: L.Point, count: number): void {
    const radius = Math.min(24, 10 + Math.log2(count) * 2.5);
    ctx.beginPath();
    ctx.arc(at.x, at.y, radius, 0, 2 * Math.PI);
    ctx.fillStyle = "#2563ebcc";
    ctx.fill();
    ctx.lineWidth = 3;
    ctx.strokeStyle = "#ffffffdd";
    ctx.stroke();
    ctx.fillStyle = "#fff";
    ctx.font = "600 11px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText(count >= 1000 ? `${(count / 1000).toFixed(1)}k` : String(count), at.x, at.y);
  }

  #drawDot(
    ctx: CanvasRenderingContext2D,
    device: Device,
    fix: Fix,
    x: number,
    y: number,
    nowMs: number,
    label: boolean,
    selected: boolean,
  ): void {
    const stale = device.isStale(nowMs);
    const color = stale ? "#9aa3ae" : device.color;
    if (fix.speedMps > 0.5 && !stale) {
      const a = ((fix.headingDeg - 90) * Math.PI) / 180;
      ctx.beginPath();
      ctx.moveTo(x + Math.cos(a) * 11, y + Math.sin(a) * 11);
      ctx.lineTo(x + Math.cos(a + 2.4) * 6, y + Math.sin(a + 2.4) * 6);
      ctx.lineTo(x + Math.cos(a - 2.4) * 6, y + Math.sin(a - 2.4) * 6);
      ctx.closePath();
      ctx.fillStyle = color;
      ctx.fill();
    }
    ctx.beginPath();
    ctx.arc(x, y, selected ? 7 : 5, 0, 2 * Math.PI);
    ctx.fillStyle = color;
    ctx.fill();
    ctx.lineWidth = selected ? 3 : 1.5;
    ctx.strokeStyle = selected ? "#111" : "#fff";
    ctx.stroke();
    if (label) {
      ctx.font = `${selected ? 700 : 600} 11px system-ui, sans-serif`;
      ctx.textAlign = "left";
      ctx.textBaseline = "middle";
      ctx.lineWidth = 3;
      ctx.strokeStyle = "#ffffffe6";
      ctx.strokeText(device.name, x + 9, y);
      ctx.fillStyle = "#1d2430";
      ctx.fillText(device.name, x + 9, y);
    }
  }

  #drawTrail(ctx: CanvasRenderingContext2D, device: Device, topLeft: L.Point): void {
    if (device.trail.length < 2) return;
    ctx.beginPath();
    device.trail.forEach((fix, i) => {
      const p = this.#map.latLngToLayerPoint([fix.lat, fix.lon]).subtract(topLeft);
      if (i === 0) ctx.moveTo(p.x, p.y);
      else ctx.lineTo(p.x, p.y);
    });
    ctx.lineWidth = 4;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = device.color;
    ctx.globalAlpha = 0.7;
    ctx.stroke();
    ctx.globalAlpha = 1;
  }

  /** A click on a cluster zooms into it; on a dot, selects its device. */
  #click(point: L.Point): void {
    for (const cluster of this.#clusters) {
      if (cluster.at.distanceTo(point) <= 20) {
        this.#map.setView(cluster.latLng, Math.min(this.#map.getZoom() + 2, this.#map.getMaxZoom()));
        return;
      }
    }
    let best: { key: string; distance: number } | undefined;
    for (const device of this.#devices.values()) {
      const fix = device.last;
      if (!fix) continue;
      const distance = this.#map.latLngToContainerPoint([fix.lat, fix.lon]).distanceTo(point);
      if (distance <= CLICK_PX && (!best || distance < best.distance)) best = { key: device.key, distance };
    }
    if (best) this.onSelect(best.key);
  }
}
