//! The synthetic city: a seeded street graph around a centre, with a river, bridges, parks and
//! street names, and its export as GeoJSON for the dashboard's basemap.
//!
//! The layout, all on a local plane in metres ([`Xy`]):
//!
//! - a grid of streets 200 m apart, rotated by a few degrees and jittered, trimmed to a rough
//!   disc about 1.7 km across; every fourth line of it is an arterial road (50 km/h), the rest
//!   local streets (30 km/h), some of which are missing (dead ends and detours);
//! - a river meandering across from west to east, which the grid crosses only on bridges;
//! - a ring road (80 km/h) about 2.1 km out, joined to the ends of the arterials;
//! - parks on a few blocks, traffic signals where arterials meet.
//!
//! Every street, walkable or not, is reachable from every other: [`City::generate`] keeps only
//! what is connected, and walkers and bikes (which stay off the ring road) can still reach every
//! node that has a street other than the ring.

use std::collections::VecDeque;

use serde_json::{Value, json};

use crate::geo::{LatLon, Projection, Xy};
use crate::rng::Rng;

/// The default centre: a plausible north-western European city latitude.
pub const DEFAULT_CENTRE: LatLon = LatLon { lat: 52.37, lon: 4.89 };

/// Grid lines run from `-GRID_HALF` to `GRID_HALF`.
const GRID_HALF: i32 = 8;
/// Metres between grid lines.
const SPACING: f64 = 200.0;
/// The largest random shift of a grid node, metres.
const JITTER: f64 = 35.0;
/// Grid nodes beyond this radius (give or take 150 m) are trimmed.
const GRID_RADIUS: f64 = 1650.0;
/// The ring road's mean radius, metres.
const RING_RADIUS: f64 = 2100.0;
const RING_NODES: usize = 40;
/// The river's width, and how far every node keeps from its centreline.
const RIVER_WIDTH: f64 = 60.0;
const RIVER_CLEARANCE: f64 = 55.0;

/// What settles a city: the seed and where it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CityConfig {
    pub seed: u64,
    pub centre: LatLon,
}

impl Default for CityConfig {
    fn default() -> Self {
        CityConfig { seed: 1, centre: DEFAULT_CENTRE }
    }
}

/// The kind of a road, which sets its speed limit and who may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoadClass {
    Local,
    Arterial,
    Ring,
}

impl RoadClass {
    /// The name used in the GeoJSON `class` property.
    pub fn as_str(self) -> &'static str {
        match self {
            RoadClass::Local => "local",
            RoadClass::Arterial => "arterial",
            RoadClass::Ring => "ring",
        }
    }

    /// The speed limit in km/h.
    pub fn speed_limit_kmh(self) -> f64 {
        match self {
            RoadClass::Local => 30.0,
            RoadClass::Arterial => 50.0,
            RoadClass::Ring => 80.0,
        }
    }

    /// Whether walkers and cyclists may use it (not the ring road).
    pub fn walkable(self) -> bool {
        self != RoadClass::Ring
    }
}

/// An intersection or a bend.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Xy,
    pub lat_lon: LatLon,
    /// Traffic lights: vehicles may have to wait here.
    pub signals: bool,
}

/// A two-way road segment between two nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub a: usize,
    pub b: usize,
    pub class: RoadClass,
    /// Index into [`City::streets`].
    pub street: usize,
    pub length_m: f64,
    pub speed_limit_mps: f64,
    /// It crosses the river.
    pub bridge: bool,
}

impl Edge {
    /// The node at the other end from `n`.
    pub fn other(&self, n: usize) -> usize {
        if self.a == n { self.b } else { self.a }
    }
}

/// A named street: the edges whose `street` is its index.
#[derive(Debug, Clone, PartialEq)]
pub struct Street {
    pub name: String,
    pub class: RoadClass,
}

/// A park: a polygon on the local plane.
#[derive(Debug, Clone, PartialEq)]
pub struct Park {
    pub name: String,
    pub outline: Vec<Xy>,
}

/// The river: `y = f(x)`, a sum of two sine waves, across the whole map.
#[derive(Debug, Clone, PartialEq)]
pub struct River {
    pub name: String,
    offset: f64,
    waves: [(f64, f64, f64); 2],
}

impl River {
    /// The river centreline's `y` at `x`.
    pub fn y_at(&self, x: f64) -> f64 {
        self.offset
            + self.waves.iter().map(|&(amp, len, phase)| amp * (x / len + phase).sin()).sum::<f64>()
    }

    /// Signed vertical distance of `p` from the centreline (positive: north of it).
    pub fn side(&self, p: Xy) -> f64 {
        p.y - self.y_at(p.x)
    }
}

/// A generated city. Nodes, edges and streets are indexed by position; `adjacency[n]` lists the
/// edges at node `n`.
#[derive(Debug, Clone, PartialEq)]
pub struct City {
    pub config: CityConfig,
    pub projection: Projection,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    pub streets: Vec<Street>,
    pub parks: Vec<Park>,
    pub river: River,
    pub adjacency: Vec<Vec<usize>>,
}

const NAME_STEMS: &[&str] = &[
    "Linden", "Heron", "Mill", "Canal", "Orchard", "Willow", "Beacon", "Harbour", "Chapel",
    "Market", "Tanner", "Rope", "Brewer", "Lantern", "Quay", "Meadow", "Ash", "Elm", "Oak",
    "Birch", "Cooper", "Weaver", "Salt", "Anchor", "Falcon", "Cedar", "Juniper", "Maple", "Raven",
    "Swan", "Tulip", "Windmill", "Dyke", "Fisher", "Gable", "Hazel", "Iris", "Kestrel", "Lark",
    "Poppy", "Reed", "Sparrow", "Thistle", "Vine", "Wharf", "Clover", "Smith", "Baker",
];
const RIVERS: &[&str] = &["Vecht", "Linde", "Eem", "Berkel", "Dommel", "Regge", "Hunze", "Aa"];
const LOCAL_SUFFIXES: &[&str] = &["Street", "Lane", "Way", "Walk", "Street", "Street"];
const ARTERIAL_SUFFIXES: &[&str] = &["Avenue", "Boulevard", "Road"];
const PARK_SUFFIXES: &[&str] = &["Park", "Gardens", "Green", "Common"];

/// Hands out stems in a seeded order, each once.
struct Names {
    stems: Vec<&'static str>,
    next: usize,
}

impl Names {
    fn new(rng: &mut Rng) -> Self {
        let mut stems = NAME_STEMS.to_vec();
        for i in (1..stems.len()).rev() {
            stems.swap(i, rng.below(i + 1));
        }
        Names { stems, next: 0 }
    }

    fn stem(&mut self) -> &'static str {
        let s = self.stems[self.next % self.stems.len()];
        self.next += 1;
        s
    }
}

/// The city under construction: nodes may be dropped and edges removed before [`Builder::finish`]
/// compacts the survivors.
struct Builder {
    rng: Rng,
    nodes: Vec<Xy>,
    alive: Vec<bool>,
    edges: Vec<Edge>,
    removed: Vec<bool>,
    streets: Vec<Street>,
    river: River,
}

impl Builder {
    fn add_node(&mut self, p: Xy) -> usize {
        // Nothing stands in the river: nudge the node to the nearer bank.
        let side = self.river.side(p);
        let p = if side.abs() < RIVER_CLEARANCE {
            let sign = if side >= 0.0 { 1.0 } else { -1.0 };
            Xy::new(p.x, self.river.y_at(p.x) + sign * RIVER_CLEARANCE)
        } else {
            p
        };
        self.nodes.push(p);
        self.alive.push(true);
        self.nodes.len() - 1
    }

    fn add_edge(&mut self, a: usize, b: usize, street: usize) -> usize {
        let class = self.streets[street].class;
        let (pa, pb) = (self.nodes[a], self.nodes[b]);
        let bridge = (self.river.side(pa) >= 0.0) != (self.river.side(pb) >= 0.0);
        self.edges.push(Edge {
            a,
            b,
            class,
            street,
            length_m: pa.dist(pb),
            speed_limit_mps: class.speed_limit_kmh() / 3.6,
            bridge,
        });
        self.removed.push(false);
        self.edges.len() - 1
    }

    fn add_street(&mut self, name: String, class: RoadClass) -> usize {
        self.streets.push(Street { name, class });
        self.streets.len() - 1
    }

    /// The nodes reachable from `start` over live, walkable edges (or all edges).
    fn reachable(&self, start: usize, walkable_only: bool) -> Vec<bool> {
        let mut adjacency = vec![Vec::new(); self.nodes.len()];
        for (i, e) in self.edges.iter().enumerate() {
            if !self.removed[i] && (!walkable_only || e.class.walkable()) {
                adjacency[e.a].push(e.b);
                adjacency[e.b].push(e.a);
            }
        }
        let mut seen = vec![false; self.nodes.len()];
        let mut queue = VecDeque::from([start]);
        seen[start] = true;
        while let Some(n) = queue.pop_front() {
            for &m in &adjacency[n] {
                if !seen[m] && self.alive[m] {
                    seen[m] = true;
                    queue.push_back(m);
                }
            }
        }
        seen
    }

    /// Drops the nodes `keep` does not mark, and the edges touching them.
    fn keep_only(&mut self, keep: &[bool]) {
        for (n, alive) in self.alive.iter_mut().enumerate() {
            *alive &= keep.get(n).copied().unwrap_or(true);
        }
        for (i, e) in self.edges.iter().enumerate() {
            if !self.alive[e.a] || !self.alive[e.b] {
                self.removed[i] = true;
            }
        }
    }

    /// Compacts the live nodes and edges into a [`City`].
    fn finish(self, config: CityConfig, parks: Vec<Park>, signals: Vec<bool>) -> City {
        let projection = Projection::new(config.centre);
        let mut index = vec![usize::MAX; self.nodes.len()];
        let mut nodes = Vec::new();
        for (n, &p) in self.nodes.iter().enumerate() {
            if self.alive[n] {
                index[n] = nodes.len();
                nodes.push(Node { pos: p, lat_lon: projection.to_lat_lon(p), signals: signals[n] });
            }
        }
        let edges: Vec<Edge> = self
            .edges
            .into_iter()
            .zip(self.removed)
            .filter(|(_, removed)| !removed)
            .map(|(e, _)| Edge { a: index[e.a], b: index[e.b], ..e })
            .collect();
        let mut adjacency = vec![Vec::new(); nodes.len()];
        for (i, e) in edges.iter().enumerate() {
            adjacency[e.a].push(i);
            adjacency[e.b].push(i);
        }
        City {
            config,
            projection,
            nodes,
            edges,
            streets: self.streets,
            parks,
            river: self.river,
            adjacency,
        }
    }
}

impl City {
    /// Builds the city for `config`: the same seed and centre always give the same city.
    pub fn generate(config: CityConfig) -> City {
        let mut rng = Rng::new(config.seed);
        let mut names = Names::new(&mut rng.derive(1));
        let river = River {
            name: format!("River {}", RIVERS[rng.below(RIVERS.len())]),
            offset: rng.range(-350.0, 350.0),
            waves: [
                (rng.range(120.0, 220.0), rng.range(450.0, 700.0), rng.range(0.0, 6.3)),
                (rng.range(30.0, 80.0), rng.range(150.0, 250.0), rng.range(0.0, 6.3)),
            ],
        };
        let mut b = Builder {
            rng: rng.derive(2),
            nodes: Vec::new(),
            alive: Vec::new(),
            edges: Vec::new(),
            removed: Vec::new(),
            streets: Vec::new(),
            river,
        };

        // The grid, rotated a little and jittered, trimmed to a rough disc.
        let angle = b.rng.range(-20f64, 20.0).to_radians();
        let (sin, cos) = angle.sin_cos();
        let side = (2 * GRID_HALF + 1) as usize;
        let mut grid = vec![None; side * side];
        let at = |i: i32, j: i32| ((i + GRID_HALF) as usize) * side + (j + GRID_HALF) as usize;
        for i in -GRID_HALF..=GRID_HALF {
            for j in -GRID_HALF..=GRID_HALF {
                let (gx, gy) = (i as f64 * SPACING, j as f64 * SPACING);
                let p = Xy::new(
                    gx * cos - gy * sin + b.rng.range(-JITTER, JITTER),
                    gx * sin + gy * cos + b.rng.range(-JITTER, JITTER),
                );
                if p.x.hypot(p.y) <= GRID_RADIUS + b.rng.range(-150.0, 150.0) {
                    grid[at(i, j)] = Some(b.add_node(p));
                }
            }
        }
        let arterial_phase = b.rng.below(4) as i32;
        let is_arterial = |k: i32| (k + GRID_HALF + arterial_phase) % 4 == 0;
        // Streets along x (fixed j) and along y (fixed i), in order, so that a street's edges
        // chain into polylines.
        let mut line_ends = Vec::new();
        for vertical in [false, true] {
            for k in -GRID_HALF..=GRID_HALF {
                let class = if is_arterial(k) { RoadClass::Arterial } else { RoadClass::Local };
                let suffixes =
                    if class == RoadClass::Arterial { ARTERIAL_SUFFIXES } else { LOCAL_SUFFIXES };
                let suffix = suffixes[b.rng.below(suffixes.len())];
                let street = b.add_street(format!("{} {suffix}", names.stem()), class);
                let mut line = Vec::new();
                for t in -GRID_HALF..=GRID_HALF {
                    let cell = if vertical { at(k, t) } else { at(t, k) };
                    line.push(grid[cell]);
                }
                for pair in line.windows(2) {
                    if let [Some(p), Some(q)] = *pair {
                        b.add_edge(p, q, street);
                    }
                }
                if class == RoadClass::Arterial {
                    line_ends.push((street, line.clone()));
                }
            }
        }

        // The river: only arterials and one local street in four keep their crossing.
        for i in 0..b.edges.len() {
            let e = &b.edges[i];
            if e.bridge && e.class == RoadClass::Local && !b.rng.chance(0.25) {
                b.removed[i] = true;
            }
        }
        // Keep what the centre reaches on foot.
        let centre = (0..b.nodes.len())
            .filter(|&n| b.alive[n])
            .min_by(|&p, &q| {
                b.nodes[p].dist(Xy::default()).total_cmp(&b.nodes[q].dist(Xy::default()))
            })
            .expect("the grid always has nodes near the centre");
        let keep = b.reachable(centre, true);
        b.keep_only(&keep);
        // Some local streets are missing, as long as every node stays reachable.
        let count = |seen: &[bool]| seen.iter().filter(|&&s| s).count();
        let full = count(&b.reachable(centre, true));
        for i in 0..b.edges.len() {
            if !b.removed[i]
                && b.edges[i].class == RoadClass::Local
                && !b.edges[i].bridge
                && b.rng.chance(0.12)
            {
                b.removed[i] = true;
                if count(&b.reachable(centre, true)) < full {
                    b.removed[i] = false;
                }
            }
        }

        // The ring road, and its links to the arterials' outer ends.
        let ring_street = b.add_street(format!("{} Ring", names.stem()), RoadClass::Ring);
        let wobble = b.rng.range(0.0, 6.3);
        let ring: Vec<usize> = (0..RING_NODES)
            .map(|k| {
                let theta = k as f64 / RING_NODES as f64 * std::f64::consts::TAU;
                let r = RING_RADIUS + 90.0 * (3.0 * theta + wobble).sin();
                b.add_node(Xy::new(r * theta.cos(), r * theta.sin()))
            })
            .collect();
        for k in 0..RING_NODES {
            b.add_edge(ring[k], ring[(k + 1) % RING_NODES], ring_street);
        }
        let mut signals = vec![false; b.nodes.len()];
        for (street, line) in line_ends {
            let live: Vec<usize> = line.iter().flatten().copied().filter(|&n| b.alive[n]).collect();
            for end in [live.first(), live.last()].into_iter().flatten() {
                let p = b.nodes[*end];
                let nearest = *ring
                    .iter()
                    .min_by(|&&r, &&s| b.nodes[r].dist(p).total_cmp(&b.nodes[s].dist(p)))
                    .expect("the ring has nodes");
                b.add_edge(*end, nearest, street);
                signals[nearest] = true;
            }
        }

        // Signals where arterials meet, and at some busy corners of arterials.
        let mut arterial_degree = vec![0; b.nodes.len()];
        let mut degree = vec![0; b.nodes.len()];
        for (i, e) in b.edges.iter().enumerate() {
            if !b.removed[i] {
                for n in [e.a, e.b] {
                    degree[n] += 1;
                    if e.class == RoadClass::Arterial {
                        arterial_degree[n] += 1;
                    }
                }
            }
        }
        for n in 0..b.nodes.len() {
            if arterial_degree[n] >= 3
                || (arterial_degree[n] >= 1 && degree[n] >= 3 && b.rng.chance(0.4))
            {
                signals[n] = true;
            }
        }

        // Parks on whole blocks that stay on one bank.
        let mut parks = Vec::new();
        let mut taken = Vec::new();
        for _ in 0..60 {
            if parks.len() == 6 {
                break;
            }
            let i = b.rng.below(side - 1) as i32 - GRID_HALF;
            let j = b.rng.below(side - 1) as i32 - GRID_HALF;
            let corners = [at(i, j), at(i + 1, j), at(i + 1, j + 1), at(i, j + 1)];
            let Some(ids) = corners
                .iter()
                .map(|&c| grid[c].filter(|&n| b.alive[n]))
                .collect::<Option<Vec<_>>>()
            else {
                continue;
            };
            let points: Vec<Xy> = ids.iter().map(|&n| b.nodes[n]).collect();
            let north = b.river.side(points[0]) >= 0.0;
            if taken.contains(&(i, j)) || points.iter().any(|&p| (b.river.side(p) >= 0.0) != north)
            {
                continue;
            }
            taken.push((i, j));
            let mid = Xy::new(
                points.iter().map(|p| p.x).sum::<f64>() / 4.0,
                points.iter().map(|p| p.y).sum::<f64>() / 4.0,
            );
            // Set back from the kerb.
            let outline =
                points.iter().map(|&p| p.lerp(mid, (18.0 / p.dist(mid)).min(0.5))).collect();
            let suffix = PARK_SUFFIXES[b.rng.below(PARK_SUFFIXES.len())];
            parks.push(Park { name: format!("{} {suffix}", names.stem()), outline });
        }

        b.finish(config, parks, signals)
    }

    /// Whether every node can reach every other over the roads (walkable ones only, with
    /// `walkable_only`, counting only the nodes that have a walkable road).
    pub fn is_connected(&self, walkable_only: bool) -> bool {
        let usable = |n: usize| {
            self.adjacency[n].iter().any(|&e| !walkable_only || self.edges[e].class.walkable())
        };
        let Some(start) = (0..self.nodes.len()).find(|&n| usable(n)) else {
            return true;
        };
        let mut seen = vec![false; self.nodes.len()];
        let mut queue = VecDeque::from([start]);
        seen[start] = true;
        while let Some(n) = queue.pop_front() {
            for &e in &self.adjacency[n] {
                let edge = &self.edges[e];
                let m = edge.other(n);
                if !seen[m] && (!walkable_only || edge.class.walkable()) {
                    seen[m] = true;
                    queue.push_back(m);
                }
            }
        }
        (0..self.nodes.len()).all(|n| seen[n] || !usable(n))
    }

    /// The basemap as a GeoJSON FeatureCollection (RFC 7946). In drawing order: the river
    /// (`kind: "water"`, a Polygon), parks (`"park"`, Polygons), streets (`"road"`,
    /// MultiLineStrings with `class` `local`/`arterial`/`ring`, `name` and `speed_kmh`), then
    /// bridges (`"bridge"`, LineStrings with `class` and `name`). Coordinates are `[lon, lat]`
    /// rounded to 6 decimals (about 10 cm).
    pub fn to_geojson(&self) -> Value {
        let coord = |p: Xy| {
            let ll = self.projection.to_lat_lon(p);
            json!([round6(ll.lon), round6(ll.lat)])
        };
        let node = |n: usize| coord(self.nodes[n].pos);
        let mut features = Vec::new();

        // The river, as a band across a little more than the city.
        let reach = RING_RADIUS + 400.0;
        let xs: Vec<f64> = (0..=100).map(|k| -reach + 2.0 * reach * k as f64 / 100.0).collect();
        let bank = |x: f64, offset: f64| Xy::new(x, self.river.y_at(x) + offset);
        let mut ring: Vec<Value> = xs.iter().map(|&x| coord(bank(x, RIVER_WIDTH / 2.0))).collect();
        ring.extend(xs.iter().rev().map(|&x| coord(bank(x, -RIVER_WIDTH / 2.0))));
        ring.push(ring[0].clone());
        features.push(feature(
            json!({"type": "Polygon", "coordinates": [ring]}),
            json!({"kind": "water", "name": self.river.name}),
        ));

        for park in &self.parks {
            let mut outline: Vec<Value> = park.outline.iter().map(|&p| coord(p)).collect();
            outline.push(outline[0].clone());
            features.push(feature(
                json!({"type": "Polygon", "coordinates": [outline]}),
                json!({"kind": "park", "name": park.name}),
            ));
        }

        // Streets: each street's edges (added in order along it) chained into polylines.
        let mut lines: Vec<Vec<Vec<usize>>> = vec![Vec::new(); self.streets.len()];
        for e in &self.edges {
            let polylines = &mut lines[e.street];
            match polylines.last_mut() {
                Some(line) if line.last() == Some(&e.a) => line.push(e.b),
                _ => polylines.push(vec![e.a, e.b]),
            }
        }
        let mut order: Vec<usize> = (0..self.streets.len()).collect();
        order.sort_by_key(|&s| self.streets[s].class);
        for s in order {
            if lines[s].is_empty() {
                continue;
            }
            let street = &self.streets[s];
            let coordinates: Vec<Vec<Value>> =
                lines[s].iter().map(|l| l.iter().map(|&n| node(n)).collect()).collect();
            features.push(feature(
                json!({"type": "MultiLineString", "coordinates": coordinates}),
                json!({"kind": "road", "class": street.class.as_str(), "name": street.name, "speed_kmh": street.class.speed_limit_kmh()}),
            ));
        }
        for e in self.edges.iter().filter(|e| e.bridge) {
            let street = &self.streets[e.street];
            features.push(feature(
                json!({"type": "LineString", "coordinates": [node(e.a), node(e.b)]}),
                json!({"kind": "bridge", "class": street.class.as_str(), "name": street.name}),
            ));
        }

        let sw = self.projection.to_lat_lon(Xy::new(-reach, -reach));
        let ne = self.projection.to_lat_lon(Xy::new(reach, reach));
        json!({
            "type": "FeatureCollection",
            "bbox": [round6(sw.lon), round6(sw.lat), round6(ne.lon), round6(ne.lat)],
            "name": format!("synthetic city, seed {}", self.config.seed),
            "features": features,
        })
    }
}

fn feature(geometry: Value, properties: Value) -> Value {
    json!({"type": "Feature", "geometry": geometry, "properties": properties})
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_city_and_another_seed_another() {
        let a = City::generate(CityConfig { seed: 42, ..Default::default() });
        let b = City::generate(CityConfig { seed: 42, ..Default::default() });
        let c = City::generate(CityConfig { seed: 43, ..Default::default() });
        assert_eq!(a, b);
        assert_eq!(a.to_geojson().to_string(), b.to_geojson().to_string());
        assert_ne!(a.to_geojson().to_string(), c.to_geojson().to_string());
    }

    #[test]
    fn every_city_is_connected_for_drivers_and_walkers() {
        for seed in 0..30 {
            let city = City::generate(CityConfig { seed, ..Default::default() });
            assert!(city.nodes.len() > 200, "seed {seed}: only {} nodes", city.nodes.len());
            assert!(city.is_connected(false), "seed {seed}: not connected");
            assert!(city.is_connected(true), "seed {seed}: not connected on foot");
            assert!(city.edges.iter().any(|e| e.bridge), "seed {seed}: no bridge");
            assert!(city.parks.len() >= 3, "seed {seed}: {} parks", city.parks.len());
            for class in [RoadClass::Local, RoadClass::Arterial, RoadClass::Ring] {
                assert!(city.edges.iter().any(|e| e.class == class), "seed {seed}: no {class:?}");
            }
        }
    }

    #[test]
    fn only_bridges_cross_the_river_and_no_node_stands_in_it() {
        let city = City::generate(CityConfig::default());
        for n in &city.nodes {
            assert!(city.river.side(n.pos).abs() >= RIVER_WIDTH / 2.0, "{n:?} is in the river");
        }
        for e in &city.edges {
            let crosses = (city.river.side(city.nodes[e.a].pos) >= 0.0)
                != (city.river.side(city.nodes[e.b].pos) >= 0.0);
            assert_eq!(crosses, e.bridge, "{e:?}");
        }
    }

    #[test]
    fn a_broken_generator_is_caught_by_is_connected() {
        let mut city = City::generate(CityConfig::default());
        // Cut every bridge: the banks fall apart.
        let bridges: Vec<usize> = (0..city.edges.len()).filter(|&i| city.edges[i].bridge).collect();
        for list in &mut city.adjacency {
            list.retain(|e| !bridges.contains(e));
        }
        assert!(!city.is_connected(false));
    }

    #[test]
    fn the_geojson_has_the_documented_shape_and_is_small() {
        let config = CityConfig { seed: 5, centre: LatLon { lat: 48.85, lon: 2.35 } };
        let city = City::generate(config);
        let json = city.to_geojson();
        let text = json.to_string();
        assert!(text.len() < 300_000, "{} bytes", text.len());
        assert_eq!(json["type"], "FeatureCollection");
        let features = json["features"].as_array().unwrap();
        let mut kinds = std::collections::BTreeSet::new();
        for f in features {
            assert_eq!(f["type"], "Feature");
            let kind = f["properties"]["kind"].as_str().unwrap();
            kinds.insert(kind.to_string());
            let geometry = &f["geometry"];
            let positions: Vec<&Value> = match geometry["type"].as_str().unwrap() {
                "LineString" => geometry["coordinates"].as_array().unwrap().iter().collect(),
                "MultiLineString" | "Polygon" => geometry["coordinates"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|l| l.as_array().unwrap())
                    .collect(),
                other => panic!("unexpected geometry {other}"),
            };
            if geometry["type"] == "Polygon" {
                let ring = geometry["coordinates"][0].as_array().unwrap();
                assert!(ring.len() >= 4);
                assert_eq!(ring.first(), ring.last(), "a polygon's ring is closed");
            }
            for p in positions {
                let (lon, lat) = (p[0].as_f64().unwrap(), p[1].as_f64().unwrap());
                assert!(
                    (lon - 2.35).abs() < 0.06 && (lat - 48.85).abs() < 0.04,
                    "{lon},{lat} is not near the centre"
                );
            }
            if kind == "road" {
                assert!(!f["properties"]["name"].as_str().unwrap().is_empty());
                assert!(
                    ["local", "arterial", "ring"]
                        .contains(&f["properties"]["class"].as_str().unwrap())
                );
                assert!(f["properties"]["speed_kmh"].as_f64().unwrap() > 0.0);
            }
        }
        let expected: std::collections::BTreeSet<String> =
            ["water", "park", "road", "bridge"].iter().map(|s| s.to_string()).collect();
        assert_eq!(kinds, expected);
        assert_eq!(features[0]["properties"]["kind"], "water", "water is drawn first");
    }
}
