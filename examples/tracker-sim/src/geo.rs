//! Positions: WGS 84 degrees for the outside world, metres on a local plane for the simulation.

/// Metres per degree of latitude (mean); good to a fraction of a percent over a city.
const METRES_PER_DEGREE: f64 = 111_320.0;

/// A WGS 84 position in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatLon {
    pub lat: f64,
    pub lon: f64,
}

/// A point on the local plane: metres east (`x`) and north (`y`) of the city's centre.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Xy {
    pub x: f64,
    pub y: f64,
}

impl Xy {
    pub fn new(x: f64, y: f64) -> Self {
        Xy { x, y }
    }

    /// The straight-line distance in metres.
    pub fn dist(self, other: Xy) -> f64 {
        (other.x - self.x).hypot(other.y - self.y)
    }

    /// The point a fraction `t` of the way to `other`.
    pub fn lerp(self, other: Xy, t: f64) -> Xy {
        Xy::new(self.x + (other.x - self.x) * t, self.y + (other.y - self.y) * t)
    }

    /// The compass bearing towards `other`, degrees clockwise from north in `[0, 360)`.
    pub fn bearing_to(self, other: Xy) -> f64 {
        let deg = (other.x - self.x).atan2(other.y - self.y).to_degrees();
        if deg < 0.0 { deg + 360.0 } else { deg }
    }
}

/// An equirectangular projection around a centre: exact enough for a city a few kilometres
/// across, and trivially invertible.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projection {
    pub centre: LatLon,
    metres_per_degree_lon: f64,
}

impl Projection {
    pub fn new(centre: LatLon) -> Self {
        Projection {
            centre,
            metres_per_degree_lon: METRES_PER_DEGREE * centre.lat.to_radians().cos(),
        }
    }

    pub fn to_lat_lon(&self, p: Xy) -> LatLon {
        LatLon {
            lat: self.centre.lat + p.y / METRES_PER_DEGREE,
            lon: self.centre.lon + p.x / self.metres_per_degree_lon,
        }
    }

    pub fn to_xy(&self, p: LatLon) -> Xy {
        Xy::new(
            (p.lon - self.centre.lon) * self.metres_per_degree_lon,
            (p.lat - self.centre.lat) * METRES_PER_DEGREE,
        )
    }
}

/// The smallest angle between two bearings, in degrees (0 to 180).
pub fn turn_angle(from: f64, to: f64) -> f64 {
    let d = (to - from).rem_euclid(360.0);
    if d > 180.0 { 360.0 - d } else { d }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_round_trips_and_bearings_are_compass_bearings() {
        let p = Projection::new(LatLon { lat: 52.37, lon: 4.89 });
        let xy = Xy::new(1234.5, -987.6);
        let back = p.to_xy(p.to_lat_lon(xy));
        assert!(back.dist(xy) < 1e-6);
        let o = Xy::default();
        assert_eq!(o.bearing_to(Xy::new(0.0, 1.0)), 0.0);
        assert_eq!(o.bearing_to(Xy::new(1.0, 0.0)), 90.0);
        assert_eq!(o.bearing_to(Xy::new(-1.0, 0.0)), 270.0);
        assert_eq!(turn_angle(350.0, 10.0), 20.0);
        assert_eq!(turn_angle(90.0, 270.0), 180.0);
    }
}
