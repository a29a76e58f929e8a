// Map tiles, as the tracker publishes positions by them (the `tile` topic; docs/tracker.md,
// "Map tiles"): Web Mercator at zoom 14, a tile's key `x * 16384 + y`. The formula is the
// tracker's (`tracker::tiles::tile_of`), so the page subscribes to the tiles its view covers.

/** The zoom level of the tiles. */
export const TILE_ZOOM = 14;
const TILES = 2 ** TILE_ZOOM;
const MAX_LAT = 85.05112878;

function column(lon: number): number {
  return Math.min(TILES - 1, Math.max(0, Math.floor(((lon + 180) / 360) * TILES)));
}

function row(lat: number): number {
  const r = (Math.min(MAX_LAT, Math.max(-MAX_LAT, lat)) * Math.PI) / 180;
  const y = Math.floor(((1 - Math.log(Math.tan(r) + 1 / Math.cos(r)) / Math.PI) / 2) * TILES);
  return Math.min(TILES - 1, Math.max(0, y));
}

/** The key of the tile a point falls in. */
export function tileOf(lat: number, lon: number): number {
  return column(lon) * TILES + row(lat);
}

/** The keys of the tiles that cover a box (south-west and north-east corners), or `undefined` if more than `max`. */
export function tilesIn(south: number, west: number, north: number, east: number, max: number): number[] | undefined {
  const [x0, x1] = [column(west), column(east)];
  const [y0, y1] = [row(north), row(south)];
  if ((x1 - x0 + 1) * (y1 - y0 + 1) > max) return undefined;
  const keys: number[] = [];
  for (let x = x0; x <= x1; x += 1) for (let y = y0; y <= y1; y += 1) keys.push(x * TILES + y);
  return keys;
}
