//! Trips: a device's positions clustered by time gaps. A pure function, so the figures are easy
//! to test; the service feeds it a range of stored positions.
//!
//! Positions are taken in fix-time order; a gap between two consecutive positions longer than
//! the trip gap (exactly the gap keeps them together) ends one trip and starts the next. Each
//! trip's distance is the sum of the great-circle (haversine) distances between its consecutive
//! positions, its mean speed that distance over its duration, its maximum speed the highest
//! speed its positions reported.

use crate::{PositionT, TripT};

/// The default trip gap, in seconds.
pub const DEFAULT_GAP_S: u32 = 300;

/// The Earth's mean radius (IUGG), in metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// The great-circle distance between two points (degrees), in metres, by the haversine formula.
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (phi1, phi2) = (lat1.to_radians(), lat2.to_radians());
    let dphi = (lat2 - lat1).to_radians();
    let dlambda = (lon2 - lon1).to_radians();
    let a = (dphi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (dlambda / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
}

/// Clusters `positions` into trips, oldest first. Input in any order is sorted by fix time (then
/// counter) first. `gap_ms` is the longest gap inside a trip.
pub fn trips(positions: &[PositionT], gap_ms: u64) -> Vec<TripT> {
    let mut sorted: Vec<&PositionT> = positions.iter().collect();
    sorted.sort_by_key(|p| (p.time_ms, p.counter));
    let mut trips = Vec::new();
    let mut current: Option<(TripT, &PositionT)> = None;
    for p in sorted {
        current = Some(match current {
            Some((mut trip, last)) if p.time_ms - last.time_ms <= gap_ms => {
                trip.distance_m += haversine_m(last.lat, last.lon, p.lat, p.lon);
                trip.max_speed_mps = trip.max_speed_mps.max(p.speed_mps);
                trip.points += 1;
                (trip, p)
            }
            other => {
                if let Some((trip, last)) = other {
                    trips.push(finish(trip, last));
                }
                let trip = TripT {
                    start_ms: p.time_ms,
                    start_lat: p.lat,
                    start_lon: p.lon,
                    max_speed_mps: p.speed_mps,
                    points: 1,
                    ..TripT::default()
                };
                (trip, p)
            }
        });
    }
    if let Some((trip, last)) = current {
        trips.push(finish(trip, last));
    }
    trips
}

/// Fills in a trip's end from its last position.
fn finish(mut trip: TripT, last: &PositionT) -> TripT {
    trip.end_ms = last.time_ms;
    trip.end_lat = last.lat;
    trip.end_lon = last.lon;
    let seconds = (trip.end_ms - trip.start_ms) as f64 / 1000.0;
    trip.mean_speed_mps = if seconds > 0.0 { (trip.distance_m / seconds) as f32 } else { 0.0 };
    trip
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One degree of a great circle, in metres.
    const DEGREE_M: f64 = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;

    fn at(counter: u64, time_s: u64, lat: f64, lon: f64, speed: f32) -> PositionT {
        PositionT {
            device_id: 1,
            counter,
            time_ms: time_s * 1000,
            lat,
            lon,
            speed_mps: speed,
            ..PositionT::default()
        }
    }

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn haversine_figures() {
        assert_eq!(haversine_m(10.0, 20.0, 10.0, 20.0), 0.0);
        assert!(close(haversine_m(0.0, 0.0, 1.0, 0.0), DEGREE_M, 1e-6));
        assert!(close(haversine_m(0.0, 179.5, 0.0, -179.5), DEGREE_M, 1e-6), "across 180°");
        assert!(close(haversine_m(90.0, 0.0, -90.0, 0.0), DEGREE_M * 180.0, 1e-3), "pole to pole");
        // Paris (Notre-Dame) to London (Trafalgar Square): about 343.5 km.
        let d = haversine_m(48.8530, 2.3499, 51.5080, -0.1281);
        assert!(close(d, 343_500.0, 1_500.0), "{d}");
    }

    #[test]
    fn no_positions_no_trips_and_a_single_point_is_a_trip_of_one_instant() {
        assert!(trips(&[], 300_000).is_empty());
        let t = trips(&[at(1, 100, 1.0, 2.0, 3.0)], 300_000);
        assert_eq!(t.len(), 1);
        let t = &t[0];
        assert_eq!((t.start_ms, t.end_ms, t.points), (100_000, 100_000, 1));
        assert_eq!((t.start_lat, t.start_lon, t.end_lat, t.end_lon), (1.0, 2.0, 1.0, 2.0));
        assert_eq!((t.distance_m, t.mean_speed_mps, t.max_speed_mps), (0.0, 0.0, 3.0));
    }

    #[test]
    fn a_gap_of_exactly_the_limit_keeps_a_trip_and_one_ms_more_splits_it() {
        let mut a = at(1, 0, 0.0, 0.0, 1.0);
        let mut b = at(2, 300, 0.0, 0.0, 1.0);
        assert_eq!(trips(&[a.clone(), b.clone()], 300_000).len(), 1);
        b.time_ms += 1;
        let split = trips(&[a.clone(), b.clone()], 300_000);
        assert_eq!(split.len(), 2);
        assert_eq!((split[0].points, split[1].points), (1, 1));
        assert_eq!(split[1].start_ms, 300_001);
        a.time_ms = b.time_ms;
        assert_eq!(trips(&[a, b], 0).len(), 1, "equal times are no gap");
    }

    #[test]
    fn distance_and_speeds_of_two_trips() {
        // Trip 1: north along a meridian, 0.01° every 100 s, three legs; trip 2 after an hour.
        let positions = [
            at(1, 0, 0.00, 10.0, 10.0),
            at(2, 100, 0.01, 10.0, 12.0),
            at(3, 200, 0.02, 10.0, 15.5),
            at(4, 300, 0.03, 10.0, 11.0),
            at(5, 4000, 1.0, 1.0, 2.0),
            at(6, 4060, 1.0, 1.0, 0.0),
        ];
        let t = trips(&positions, 300_000);
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].start_ms, t[0].end_ms, t[0].points), (0, 300_000, 4));
        assert_eq!((t[0].end_lat, t[0].end_lon), (0.03, 10.0));
        assert!(close(t[0].distance_m, 0.03 * DEGREE_M, 1e-6), "{}", t[0].distance_m);
        assert_eq!(t[0].max_speed_mps, 15.5);
        let mean = 0.03 * DEGREE_M / 300.0;
        assert!(close(f64::from(t[0].mean_speed_mps), mean, 1e-4), "{}", t[0].mean_speed_mps);
        assert_eq!((t[1].start_ms, t[1].end_ms, t[1].points), (4_000_000, 4_060_000, 2));
        assert_eq!((t[1].distance_m, t[1].mean_speed_mps, t[1].max_speed_mps), (0.0, 0.0, 2.0));
    }

    #[test]
    fn unordered_input_is_sorted_first() {
        let ordered = [
            at(1, 0, 0.0, 0.0, 1.0),
            at(2, 10, 0.001, 0.0, 2.0),
            at(3, 20, 0.002, 0.0, 3.0),
            at(4, 1000, 0.0, 0.0, 1.0),
        ];
        let mut shuffled = ordered.clone();
        shuffled.reverse();
        shuffled.swap(1, 2);
        assert_eq!(trips(&shuffled, 300_000), trips(&ordered, 300_000));
        assert_eq!(trips(&shuffled, 300_000).len(), 2);
    }
}
