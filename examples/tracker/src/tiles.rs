//! Map tiles: where the ingest publishes each commit's positions on the `tile` topic, grouped by
//! the tile they fall in, so that a dashboard showing part of a large fleet subscribes to the
//! tiles in view instead of every device (`docs/tracker.md`, "Map tiles").
//!
//! The tiles are Web Mercator's (the slippy-map scheme of OpenStreetMap and Leaflet) at zoom
//! [`TILE_ZOOM`]: about 2.4 km wide at the equator, 1.6 km at 48°. A tile's key is
//! `x * 2^14 + y`. Latitudes beyond Web Mercator's ±85.0511° fall in the first or last row.

use std::collections::BTreeMap;

use crate::PositionT;

/// The zoom level of the tiles.
pub const TILE_ZOOM: u32 = 14;
/// Tiles per row and per column at [`TILE_ZOOM`].
pub const TILES: u64 = 1 << TILE_ZOOM;

/// The tile of a point: its key, `x * 2^14 + y`.
pub fn tile_of(lat: f64, lon: f64) -> u64 {
    let n = TILES as f64;
    let x = ((lon + 180.0) / 360.0 * n).floor();
    let lat = lat.clamp(-85.051_128_78, 85.051_128_78).to_radians();
    let y = ((1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0 * n).floor();
    // NaN and out-of-range longitudes clamp too (`as` saturates, NaN to 0).
    let clamp = |v: f64| (v as u64).min(TILES - 1);
    clamp(x) * TILES + clamp(y)
}

/// `positions` grouped by tile, each group in the order given.
pub fn by_tile(positions: &[PositionT]) -> BTreeMap<u64, Vec<PositionT>> {
    let mut tiles: BTreeMap<u64, Vec<PositionT>> = BTreeMap::new();
    for position in positions {
        tiles.entry(tile_of(position.lat, position.lon)).or_default().push(position.clone());
    }
    tiles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_are_web_mercators_at_zoom_14() {
        // The slippy-map formula's known values: (0, 0) is the tile right and below the centre;
        // Berlin's Brandenburg Gate (52.5163, 13.3777) is tile 8800/5373 at zoom 14.
        assert_eq!(tile_of(0.0, 0.0), 8192 * TILES + 8192);
        assert_eq!(tile_of(52.5163, 13.3777), 8800 * TILES + 5373);
        assert_eq!(tile_of(-33.8568, 151.2153), 15073 * TILES + 9831);
        // The corners and what is outside clamp to the edge tiles.
        assert_eq!(tile_of(89.9, -180.0), 0);
        assert_eq!(tile_of(-89.9, 180.0), (TILES - 1) * TILES + TILES - 1);
        assert_eq!(tile_of(f64::NAN, f64::NAN), 0);
    }

    #[test]
    fn positions_are_grouped_by_tile_in_their_order() {
        let at = |counter, lat, lon| PositionT { counter, lat, lon, ..PositionT::default() };
        let groups = by_tile(&[at(1, 0.001, 0.001), at(2, 52.5163, 13.3777), at(3, 0.002, 0.002)]);
        let counters: Vec<(u64, Vec<u64>)> =
            groups.into_iter().map(|(t, ps)| (t, ps.iter().map(|p| p.counter).collect())).collect();
        assert_eq!(counters, [(8192 * TILES + 8191, vec![1, 3]), (8800 * TILES + 5373, vec![2])]);
    }
}
