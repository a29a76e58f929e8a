//! Routes over the city's street graph: the quickest path by travel time (Dijkstra), for a
//! traveller with a top speed who may or may not use the ring road.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::city::{City, Edge};

/// Who is travelling: what limits their speed and which roads they may take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// The traveller's own top speed, m/s (a road's limit may be lower).
    pub max_speed_mps: f64,
    /// Whether the ring road is allowed (not for walkers and cyclists).
    pub ring_allowed: bool,
}

impl Profile {
    /// The speed on `edge`, or `None` if the traveller may not use it.
    pub fn speed_on(&self, edge: &Edge) -> Option<f64> {
        (self.ring_allowed || edge.class.walkable())
            .then(|| edge.speed_limit_mps.min(self.max_speed_mps))
    }
}

/// A path: `nodes[i]` to `nodes[i + 1]` over `edges[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub nodes: Vec<usize>,
    pub edges: Vec<usize>,
    /// At each edge's full allowed speed, in seconds.
    pub travel_time_s: f64,
}

#[derive(Debug, PartialEq)]
struct Queued {
    time: f64,
    node: usize,
}

impl Eq for Queued {}

impl Ord for Queued {
    // Reversed: the heap pops the earliest.
    fn cmp(&self, other: &Self) -> Ordering {
        other.time.total_cmp(&self.time).then(other.node.cmp(&self.node))
    }
}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The quickest route from `from` to `to` for `profile`, or `None` if `to` cannot be reached.
/// A route from a node to itself has no edges.
pub fn quickest(city: &City, from: usize, to: usize, profile: Profile) -> Option<Route> {
    let n = city.nodes.len();
    let mut best = vec![f64::INFINITY; n];
    let mut via: Vec<Option<usize>> = vec![None; n];
    let mut heap = BinaryHeap::from([Queued { time: 0.0, node: from }]);
    best[from] = 0.0;
    while let Some(Queued { time, node }) = heap.pop() {
        if node == to {
            break;
        }
        if time > best[node] {
            continue;
        }
        for &e in &city.adjacency[node] {
            let edge = &city.edges[e];
            let Some(speed) = profile.speed_on(edge) else { continue };
            let next = edge.other(node);
            let t = time + edge.length_m / speed;
            if t < best[next] {
                best[next] = t;
                via[next] = Some(e);
                heap.push(Queued { time: t, node: next });
            }
        }
    }
    if !best[to].is_finite() {
        return None;
    }
    let (mut nodes, mut edges) = (vec![to], Vec::new());
    let mut at = to;
    while let Some(e) = via[at].filter(|_| at != from) {
        edges.push(e);
        at = city.edges[e].other(at);
        nodes.push(at);
    }
    nodes.reverse();
    edges.reverse();
    Some(Route { nodes, edges, travel_time_s: best[to] })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::city::{CityConfig, RoadClass};

    const CAR: Profile = Profile { max_speed_mps: 40.0, ring_allowed: true };
    const WALKER: Profile = Profile { max_speed_mps: 1.4, ring_allowed: false };

    /// Bellman-Ford: slow, obviously right, to check Dijkstra against.
    fn reference_times(city: &City, from: usize, profile: Profile) -> Vec<f64> {
        let mut best = vec![f64::INFINITY; city.nodes.len()];
        best[from] = 0.0;
        for _ in 0..city.nodes.len() {
            let mut changed = false;
            for e in &city.edges {
                let Some(speed) = profile.speed_on(e) else { continue };
                for (p, q) in [(e.a, e.b), (e.b, e.a)] {
                    if best[p] + e.length_m / speed < best[q] - 1e-9 {
                        best[q] = best[p] + e.length_m / speed;
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        best
    }

    #[test]
    fn routes_are_contiguous_and_as_quick_as_the_reference() {
        let city = City::generate(CityConfig { seed: 9, ..Default::default() });
        for profile in [CAR, WALKER] {
            let from = city
                .adjacency
                .iter()
                .position(|a| a.iter().any(|&e| city.edges[e].class == RoadClass::Local))
                .unwrap();
            let reference = reference_times(&city, from, profile);
            for to in (0..city.nodes.len()).step_by(7) {
                let usable =
                    city.adjacency[to].iter().any(|&e| profile.speed_on(&city.edges[e]).is_some());
                let Some(route) = quickest(&city, from, to, profile) else {
                    assert!(!usable, "no route to {to}");
                    continue;
                };
                assert!(
                    (route.travel_time_s - reference[to]).abs() < 1e-6,
                    "to {to}: {} vs {}",
                    route.travel_time_s,
                    reference[to]
                );
                assert_eq!(route.nodes.first(), Some(&from));
                assert_eq!(route.nodes.last(), Some(&to));
                assert_eq!(route.nodes.len(), route.edges.len() + 1);
                let mut sum = 0.0;
                for (i, &e) in route.edges.iter().enumerate() {
                    let edge = &city.edges[e];
                    assert_eq!(edge.other(route.nodes[i]), route.nodes[i + 1]);
                    sum += edge.length_m / profile.speed_on(edge).expect("only usable edges");
                }
                assert!((sum - route.travel_time_s).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn a_route_to_the_start_is_empty() {
        let city = City::generate(CityConfig::default());
        let route = quickest(&city, 3, 3, CAR).unwrap();
        assert_eq!((route.nodes, route.edges, route.travel_time_s), (vec![3], vec![], 0.0));
    }
}
