// The basemap: the city's GeoJSON (`/city.geojson`, docs in tracker-sim's `City::to_geojson`)
// drawn as vector layers on one canvas, in the file's order: water, parks, then roads (casings
// under fills, ring roads over arterials over local streets) and bridges on top. Road widths
// follow the zoom; names show on hover, and along the streets from zoom 16. No tiles.

import * as L from "leaflet";
import type { Feature, FeatureCollection, Geometry, Position } from "geojson";

type RoadClass = "ring" | "arterial" | "local";
const ROAD_CLASSES: readonly RoadClass[] = ["local", "arterial", "ring"];

/** Fill and casing colours, and the fill's width in px at zoom 15. */
const ROAD_STYLE: Record<RoadClass, { fill: string; casing: string; width: number }> = {
  ring: { fill: "#f6b35c", casing: "#c27a24", width: 7 },
  arterial: { fill: "#fbe7a1", casing: "#c9a848", width: 5.5 },
  local: { fill: "#ffffff", casing: "#cbc3b4", width: 3.5 },
};
const LABEL_MIN_ZOOM = 16;

interface Props {
  kind?: string;
  class?: string;
  name?: string;
}

/** What was drawn: the city's extent and how many features of each kind. */
export interface Basemap {
  readonly bounds: L.LatLngBounds;
  readonly counts: Readonly<Record<string, number>>;
}

function roadClass(feature: Feature | undefined): RoadClass {
  const value = (feature?.properties as Props | null)?.class;
  return value === "ring" || value === "arterial" ? value : "local";
}

/** The fill's width at `zoom`: doubling every zoom level, as the street's real width does, but not below a hairline. */
function fillWidth(cls: RoadClass, zoom: number): number {
  return Math.min(48, Math.max(cls === "local" ? 0.8 : 1.4, ROAD_STYLE[cls].width * 2 ** ((zoom - 15) * 0.85)));
}

function casingWidth(cls: RoadClass, zoom: number): number {
  const fill = fillWidth(cls, zoom);
  return zoom < 13 ? fill : fill + Math.max(1.5, fill * 0.25);
}

/** Checks that `data` is a FeatureCollection, naming what is wrong. */
export function checkCity(data: unknown): FeatureCollection {
  if (typeof data !== "object" || data === null || (data as { type?: unknown }).type !== "FeatureCollection") {
    throw new Error("city.geojson is not a GeoJSON FeatureCollection");
  }
  if (!Array.isArray((data as { features?: unknown }).features)) {
    throw new Error("city.geojson has no `features` array");
  }
  return data as FeatureCollection;
}

/** Draws `city` on `map` and keeps the roads' widths and the street labels in step with the zoom. */
export function drawBasemap(map: L.Map, city: FeatureCollection): Basemap {
  const renderer = L.canvas({ padding: 0.5, tolerance: 5 });
  const byKind = (kind: string) => (f: Feature) => (f.properties as Props | null)?.kind === kind;
  const counts: Record<string, number> = {};
  for (const f of city.features) {
    const kind = (f.properties as Props | null)?.kind ?? "unknown";
    counts[kind] = (counts[kind] ?? 0) + 1;
  }
  const nameTip = (feature: Feature, layer: L.Layer) => {
    const name = (feature.properties as Props | null)?.name;
    if (name) layer.bindTooltip(name, { sticky: true, className: "road-tip", direction: "top", offset: [0, -6] });
  };

  L.geoJSON(city, {
    filter: byKind("water"),
    renderer,
    style: { color: "#8cbfdc", weight: 1, fillColor: "#a8d2ea", fillOpacity: 1 },
    onEachFeature: nameTip,
  } as L.GeoJSONOptions).addTo(map);
  L.geoJSON(city, {
    filter: byKind("park"),
    renderer,
    style: { color: "#a3cf86", weight: 1, fillColor: "#cdeab7", fillOpacity: 1 },
    onEachFeature: nameTip,
  } as L.GeoJSONOptions).addTo(map);

  // One pass of casings under one pass of fills, each in class order, so crossings join cleanly.
  const passes: { layer: L.GeoJSON; style: (f: Feature | undefined) => L.PathOptions }[] = [];
  const zoomNow = () => map.getZoom();
  const roads = (kind: "road" | "bridge", part: "casing" | "fill", cls: RoadClass, named: boolean) => {
    const style = (f: Feature | undefined): L.PathOptions => {
      const c = roadClass(f);
      const bridge = kind === "bridge";
      if (part === "casing") {
        return {
          color: bridge ? "#5b5f66" : ROAD_STYLE[c].casing,
          weight: casingWidth(c, zoomNow()) + (bridge ? 3 : 0),
          lineCap: bridge ? "butt" : "round",
          lineJoin: "round",
          opacity: 1,
          interactive: false,
        };
      }
      return {
        color: ROAD_STYLE[c].fill,
        weight: fillWidth(c, zoomNow()),
        lineCap: bridge ? "butt" : "round",
        lineJoin: "round",
        opacity: 1,
      };
    };
    const layer = L.geoJSON(city, {
      filter: (f: Feature) => (f.properties as Props | null)?.kind === kind && roadClass(f) === cls,
      renderer,
      style,
      interactive: part === "fill",
      onEachFeature: named ? nameTip : undefined,
    } as L.GeoJSONOptions).addTo(map);
    passes.push({ layer, style });
  };
  for (const cls of ROAD_CLASSES) roads("road", "casing", cls, false);
  for (const cls of ROAD_CLASSES) roads("road", "fill", cls, true);
  for (const cls of ROAD_CLASSES) roads("bridge", "casing", cls, false);
  for (const cls of ROAD_CLASSES) roads("bridge", "fill", cls, true);

  const labels = streetLabels(map, city);
  const restyle = () => {
    for (const { layer, style } of passes) layer.setStyle(style as L.StyleFunction);
    const show = map.getZoom() >= LABEL_MIN_ZOOM;
    if (show && !map.hasLayer(labels)) labels.addTo(map);
    if (!show && map.hasLayer(labels)) labels.remove();
  };
  map.on("zoomend", restyle);
  restyle();

  const bbox = (city as { bbox?: unknown }).bbox;
  const bounds =
    Array.isArray(bbox) && bbox.length === 4 && bbox.every((v) => typeof v === "number")
      ? L.latLngBounds([bbox[1], bbox[0]], [bbox[3], bbox[2]])
      : L.geoJSON(city).getBounds();
  return { bounds, counts };
}

/** The lines of a road's geometry, as arrays of [lon, lat]. */
function lines(geometry: Geometry): Position[][] {
  if (geometry.type === "LineString") return [geometry.coordinates];
  if (geometry.type === "MultiLineString") return geometry.coordinates;
  return [];
}

/**
 * One label per street line longer than 250 m, at its middle, turned along the street (kept
 * upright). Mercator keeps angles, so the angle computed at one zoom holds at every zoom.
 */
function streetLabels(map: L.Map, city: FeatureCollection): L.LayerGroup {
  const pane = map.createPane("street-labels");
  pane.style.zIndex = "450";
  pane.style.pointerEvents = "none";
  const group = L.layerGroup();
  const seen = new Set<string>();
  for (const f of city.features) {
    const props = f.properties as Props | null;
    if (props?.kind !== "road" || !props.name) continue;
    for (const line of lines(f.geometry)) {
      const points = line.map(([lon, lat]) => L.latLng(lat ?? 0, lon ?? 0));
      const lengths = points.slice(1).map((p, i) => p.distanceTo(points[i] as L.LatLng));
      const total = lengths.reduce((a, b) => a + b, 0);
      if (total < 250) continue;
      // The segment holding the middle of the line, and the point halfway along it.
      let run = 0;
      let i = 0;
      while (i < lengths.length - 1 && run + (lengths[i] ?? 0) < total / 2) run += lengths[i++] ?? 0;
      const a = points[i] as L.LatLng;
      const b = points[i + 1] as L.LatLng;
      const key = `${props.name}@${a.lat.toFixed(4)},${a.lng.toFixed(4)}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const t = Math.min(1, Math.max(0, (total / 2 - run) / Math.max(1, lengths[i] ?? 1)));
      const at = L.latLng(a.lat + (b.lat - a.lat) * t, a.lng + (b.lng - a.lng) * t);
      const pa = L.CRS.EPSG3857.latLngToPoint(a, 15);
      const pb = L.CRS.EPSG3857.latLngToPoint(b, 15);
      let angle = (Math.atan2(pb.y - pa.y, pb.x - pa.x) * 180) / Math.PI;
      if (angle > 90) angle -= 180;
      if (angle < -90) angle += 180;
      const span = document.createElement("span");
      span.textContent = props.name;
      span.style.setProperty("--angle", `${angle.toFixed(1)}deg`);
      const icon = L.divIcon({ className: "street-name", html: span, iconSize: [0, 0] });
      L.marker(at, { icon, pane: "street-labels", interactive: false, keyboard: false }).addTo(group);
    }
  }
  return group;
}
