//! The movement model: vehicles of a few kinds driving, riding and walking routes between random
//! destinations, and the fixes (noisy GPS readings) their devices would take.
//!
//! A vehicle follows its route edge by edge at up to the road's limit (or its own top speed),
//! accelerating and braking so that it slows for turns and stops where it must: at red lights
//! (signalled nodes), at delivery stops (vans) and at its destination, where it stays parked for
//! minutes before setting off again. [`Fleet::advance_to`] moves every vehicle forward in
//! simulated time; [`Fleet::fix`] reads a vehicle's position as a GPS would, with noise, an
//! accuracy estimate, heading and battery. Each vehicle keeps its own clock, so
//! [`Fleet::fix_at`] moves only the vehicle that reports: a fleet of 100,000 costs per report,
//! not per vehicle per step.

use std::sync::Arc;

use crate::city::City;
use crate::geo::{Xy, turn_angle};
use crate::rng::Rng;
use crate::route::{Profile, Route, quickest};

/// The longest physics step, ms: smaller steps are taken as they come.
const MAX_STEP_MS: u64 = 500;

/// What a device is carried by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Car,
    Bike,
    Walker,
    /// A delivery van: several short stops, then back to parking.
    Van,
}

impl Kind {
    /// A kind drawn with a plausible mix (40% cars, 20% bikes, 25% walkers, 15% vans).
    pub fn draw(rng: &mut Rng) -> Kind {
        match rng.below(20) {
            0..8 => Kind::Car,
            8..12 => Kind::Bike,
            12..17 => Kind::Walker,
            _ => Kind::Van,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Car => "car",
            Kind::Bike => "bike",
            Kind::Walker => "walker",
            Kind::Van => "van",
        }
    }

    /// Own top speed, m/s.
    pub fn max_speed_mps(self) -> f64 {
        match self {
            Kind::Car => 80.0 / 3.6,
            Kind::Van => 70.0 / 3.6,
            Kind::Bike => 5.5,
            Kind::Walker => 1.5,
        }
    }

    /// Acceleration and comfortable braking, m/s².
    fn accel_decel(self) -> (f64, f64) {
        match self {
            Kind::Car => (2.5, 3.0),
            Kind::Van => (1.5, 2.5),
            Kind::Bike => (0.8, 1.5),
            Kind::Walker => (0.6, 1.0),
        }
    }

    fn profile(self, temperament: f64) -> Profile {
        Profile {
            max_speed_mps: self.max_speed_mps() * temperament,
            ring_allowed: matches!(self, Kind::Car | Kind::Van),
        }
    }

    /// Battery drain in percent per hour, or `None` for a device powered by the vehicle.
    fn drain_per_hour(self) -> Option<f64> {
        match self {
            Kind::Car => None,
            Kind::Van => Some(1.5),
            Kind::Bike => Some(4.0),
            Kind::Walker => Some(6.0),
        }
    }

    /// How long a stop at a destination lasts, seconds.
    fn parking_s(self, rng: &mut Rng) -> f64 {
        match self {
            Kind::Car => rng.range(120.0, 1200.0),
            Kind::Van => rng.range(300.0, 900.0),
            Kind::Bike => rng.range(60.0, 600.0),
            Kind::Walker => rng.range(120.0, 900.0),
        }
    }

    /// How far (straight line) its trips go at most, metres.
    fn trip_range_m(self) -> f64 {
        match self {
            Kind::Walker => 1500.0,
            Kind::Bike => 3500.0,
            Kind::Car | Kind::Van => f64::INFINITY,
        }
    }
}

/// What a vehicle is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activity {
    Moving,
    /// Waiting at a red light.
    Signal,
    /// A van's delivery stop.
    Delivery,
    /// Parked (or sitting, for a walker) at a destination.
    Parked,
}

/// A GPS reading, in the units of a `DeviceReport`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fix {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub lat: f64,
    pub lon: f64,
    pub speed_mps: f32,
    pub heading_deg: f32,
    pub accuracy_m: f32,
    pub battery: Option<u8>,
}

/// One vehicle and its state.
#[derive(Debug, Clone)]
pub struct Vehicle {
    kind: Kind,
    rng: Rng,
    /// 0.8 to 1.0 of the kind's top speed: not everyone is in a hurry.
    temperament: f64,
    route: Route,
    /// The edge of `route` being travelled.
    leg: usize,
    /// Metres from `route.nodes[leg]` along the edge.
    along: f64,
    speed: f64,
    heading: f64,
    activity: Activity,
    pause_until_ms: u64,
    /// A red light at the end of the current edge, for this many seconds.
    red_at_end: Option<f64>,
    /// Delivery stops left before the van parks.
    stops_left: u32,
    battery: Option<f64>,
    /// The simulated time the vehicle has reached, ms since the Unix epoch: each vehicle moves
    /// on its own, so that a fleet of 100,000 steps only the vehicles that report.
    time_ms: u64,
}

impl Vehicle {
    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn activity(&self) -> Activity {
        self.activity
    }

    /// The true speed, m/s.
    pub fn speed_mps(&self) -> f64 {
        self.speed
    }

    /// The true heading, degrees clockwise from north.
    pub fn heading_deg(&self) -> f64 {
        self.heading
    }

    /// The edge being travelled (or, between trips, the last one), if any.
    pub fn edge(&self) -> Option<usize> {
        self.route.edges.get(self.leg.min(self.route.edges.len().saturating_sub(1))).copied()
    }

    /// The true position on the local plane.
    pub fn position(&self, city: &City) -> Xy {
        match self.route.edges.get(self.leg) {
            Some(&e) => {
                let from = self.route.nodes[self.leg];
                let edge = &city.edges[e];
                let (p, q) = (city.nodes[from].pos, city.nodes[edge.other(from)].pos);
                p.lerp(q, (self.along / edge.length_m).min(1.0))
            }
            None => city.nodes[*self.route.nodes.last().expect("a route has a node")].pos,
        }
    }

    fn at_node(&self) -> usize {
        if self.leg < self.route.edges.len() {
            self.route.nodes[self.leg]
        } else {
            *self.route.nodes.last().expect("a route has a node")
        }
    }

    /// Plans the next trip from where the vehicle stands.
    fn plan_trip(&mut self, city: &City) {
        let here = self.at_node();
        let profile = self.kind.profile(self.temperament);
        for _ in 0..50 {
            let to = self.rng.below(city.nodes.len());
            if to == here
                || city.nodes[to].pos.dist(city.nodes[here].pos) > self.kind.trip_range_m()
            {
                continue;
            }
            if let Some(route) = quickest(city, here, to, profile) {
                self.start_route(city, route);
                return;
            }
        }
        // Nowhere to go (a tiny or cut-off city): stay parked a while longer.
        self.route = Route { nodes: vec![here], edges: Vec::new(), travel_time_s: 0.0 };
        self.leg = 0;
    }

    fn start_route(&mut self, city: &City, route: Route) {
        self.route = route;
        self.leg = 0;
        self.along = 0.0;
        self.enter_edge(city);
    }

    /// Called on entering `route.edges[leg]`: the heading, and whether its end has a red light.
    fn enter_edge(&mut self, city: &City) {
        let Some(&e) = self.route.edges.get(self.leg) else { return };
        let from = self.route.nodes[self.leg];
        let to = city.edges[e].other(from);
        self.heading = city.nodes[from].pos.bearing_to(city.nodes[to].pos);
        let last = self.leg + 1 == self.route.edges.len();
        self.red_at_end = (city.nodes[to].signals && !last && self.rng.chance(0.45))
            .then(|| self.rng.range(5.0, 40.0));
    }

    /// The speed to arrive with at the end of the current edge.
    fn end_speed(&self, city: &City, profile: Profile) -> f64 {
        if self.red_at_end.is_some() || self.leg + 1 >= self.route.edges.len() {
            return 0.0;
        }
        let (e, next) = (self.route.edges[self.leg], self.route.edges[self.leg + 1]);
        let (a, b, c) = (
            self.route.nodes[self.leg],
            self.route.nodes[self.leg + 1],
            self.route.nodes[self.leg + 2],
        );
        let angle = turn_angle(
            city.nodes[a].pos.bearing_to(city.nodes[b].pos),
            city.nodes[b].pos.bearing_to(city.nodes[c].pos),
        );
        let limit = profile
            .speed_on(&city.edges[e])
            .unwrap_or(0.0)
            .min(profile.speed_on(&city.edges[next]).unwrap_or(0.0));
        let factor = match self.kind {
            Kind::Walker => 1.0 - 0.003 * angle,
            _ => (1.0 - 0.0072 * angle).max(0.1),
        };
        limit * factor
    }

    /// Moves the vehicle forward to `time_ms`, in steps of at most [`MAX_STEP_MS`].
    fn advance_to(&mut self, city: &City, time_ms: u64) {
        while self.time_ms < time_ms {
            let dt = (time_ms - self.time_ms).min(MAX_STEP_MS);
            self.time_ms += dt;
            self.step(city, self.time_ms, dt);
        }
    }

    /// Moves the vehicle `dt_ms` forward; `now_ms` is the time at the end of the step.
    fn step(&mut self, city: &City, now_ms: u64, dt_ms: u64) {
        let dt = dt_ms as f64 / 1000.0;
        if let (Some(battery), Some(drain)) = (self.battery.as_mut(), self.kind.drain_per_hour()) {
            *battery = (*battery - drain * dt / 3600.0).max(1.0);
        }
        if self.activity != Activity::Moving {
            if now_ms < self.pause_until_ms {
                return;
            }
            match self.activity {
                Activity::Signal => {}
                Activity::Parked | Activity::Delivery => {
                    if self.activity == Activity::Parked {
                        // Charged while parked, if it needed it.
                        if let Some(b) = self.battery.as_mut().filter(|b| **b < 30.0) {
                            *b = 100.0;
                        }
                    }
                    self.plan_trip(city);
                }
                Activity::Moving => unreachable!("checked above"),
            }
            self.activity = Activity::Moving;
            if self.route.edges.is_empty() {
                self.pause(now_ms, Activity::Parked, 60.0);
            }
            return;
        }
        let Some(&e) = self.route.edges.get(self.leg) else {
            self.arrive(now_ms);
            return;
        };
        let profile = self.kind.profile(self.temperament);
        let edge = &city.edges[e];
        let limit = profile.speed_on(edge).unwrap_or(0.0);
        let remaining = edge.length_m - self.along;
        let (accel, decel) = self.kind.accel_decel();
        let end = self.end_speed(city, profile);
        let allowed = (end * end + 2.0 * decel * remaining.max(0.0)).sqrt();
        // A vehicle that must stop at the end still rolls up to the line at walking pace.
        let target = limit.min(allowed.max(0.5));
        self.speed = if self.speed < target {
            (self.speed + accel * dt).min(target)
        } else {
            // Braking harder than comfortable if the step size left it late.
            (self.speed - 2.0 * decel * dt).max(target)
        };
        self.along += self.speed * dt;
        if self.along + 0.05 < edge.length_m {
            return;
        }
        // At the end of the edge.
        let carry = if end == 0.0 { 0.0 } else { (self.along - edge.length_m).max(0.0) };
        self.leg += 1;
        self.along = 0.0;
        if let Some(wait) = self.red_at_end.take() {
            self.speed = 0.0;
            self.enter_edge(city);
            self.pause(now_ms, Activity::Signal, wait);
        } else if self.leg >= self.route.edges.len() {
            self.arrive(now_ms);
        } else {
            self.enter_edge(city);
            self.along = carry.min(city.edges[self.route.edges[self.leg]].length_m * 0.5);
        }
    }

    fn arrive(&mut self, now_ms: u64) {
        self.speed = 0.0;
        if self.kind == Kind::Van && self.stops_left > 0 {
            self.stops_left -= 1;
            let wait = self.rng.range(60.0, 240.0);
            self.pause(now_ms, Activity::Delivery, wait);
        } else {
            if self.kind == Kind::Van {
                self.stops_left = 3 + self.rng.below(6) as u32;
            }
            let wait = self.kind.parking_s(&mut self.rng);
            self.pause(now_ms, Activity::Parked, wait);
        }
    }

    fn pause(&mut self, now_ms: u64, activity: Activity, seconds: f64) {
        self.activity = activity;
        self.speed = 0.0;
        self.pause_until_ms = now_ms + (seconds * 1000.0) as u64;
    }
}

/// Every simulated vehicle, in one city, at one simulated time.
#[derive(Debug, Clone)]
pub struct Fleet {
    city: Arc<City>,
    vehicles: Vec<Vehicle>,
    time_ms: u64,
}

impl Fleet {
    /// A fleet of vehicles of `kinds`, placed at random (by `seed`) with their first trips
    /// planned, at `start_ms` (milliseconds since the Unix epoch). Some start parked.
    pub fn new(city: Arc<City>, kinds: &[Kind], seed: u64, start_ms: u64) -> Fleet {
        let root = Rng::new(seed);
        let vehicles = kinds
            .iter()
            .enumerate()
            .map(|(i, &kind)| {
                let mut rng = root.derive(i as u64 + 1);
                let profile = kind.profile(1.0);
                let start = loop {
                    let n = rng.below(city.nodes.len());
                    if city.adjacency[n].iter().any(|&e| profile.speed_on(&city.edges[e]).is_some())
                    {
                        break n;
                    }
                };
                let mut v = Vehicle {
                    kind,
                    temperament: rng.range(0.8, 1.0),
                    route: Route { nodes: vec![start], edges: Vec::new(), travel_time_s: 0.0 },
                    leg: 0,
                    along: 0.0,
                    speed: 0.0,
                    heading: rng.range(0.0, 360.0),
                    activity: Activity::Moving,
                    pause_until_ms: 0,
                    red_at_end: None,
                    stops_left: 3 + rng.below(6) as u32,
                    battery: kind.drain_per_hour().map(|_| rng.range(40.0, 100.0)),
                    rng,
                    time_ms: start_ms,
                };
                if v.rng.chance(0.3) {
                    let wait = v.rng.range(0.0, 300.0);
                    v.pause(start_ms, Activity::Parked, wait);
                } else {
                    v.plan_trip(&city);
                }
                v
            })
            .collect();
        Fleet { city, vehicles, time_ms: start_ms }
    }

    pub fn city(&self) -> &City {
        &self.city
    }

    pub fn vehicles(&self) -> &[Vehicle] {
        &self.vehicles
    }

    /// The simulated time, ms since the Unix epoch.
    pub fn time_ms(&self) -> u64 {
        self.time_ms
    }

    /// Moves every vehicle forward to `time_ms` (nothing happens to one already there).
    pub fn advance_to(&mut self, time_ms: u64) {
        for v in &mut self.vehicles {
            v.advance_to(&self.city, time_ms);
        }
        self.time_ms = self.time_ms.max(time_ms);
    }

    /// Moves vehicle `i` alone forward to `time_ms`, then reads its GPS there ([`Fleet::fix`]):
    /// what a simulator of many devices calls as each one reports.
    ///
    /// # Panics
    ///
    /// If `i` is not a vehicle of the fleet.
    pub fn fix_at(&mut self, i: usize, time_ms: u64) -> Fix {
        self.vehicles[i].advance_to(&self.city, time_ms);
        self.fix(i)
    }

    /// What vehicle `i`'s GPS reads at the time it has reached: the true position plus noise of about the reported
    /// accuracy, the speed and heading with a little noise, and the battery.
    ///
    /// # Panics
    ///
    /// If `i` is not a vehicle of the fleet.
    pub fn fix(&mut self, i: usize) -> Fix {
        let city = &self.city;
        let v = &mut self.vehicles[i];
        let truth = v.position(city);
        let base = match v.kind {
            Kind::Car | Kind::Van => v.rng.range(3.0, 8.0),
            Kind::Bike | Kind::Walker => v.rng.range(4.0, 15.0),
        };
        // Now and then a poor fix (tall buildings, a tunnel under the tracks).
        let accuracy = if v.rng.chance(0.03) { v.rng.range(20.0, 50.0) } else { base };
        let sigma = accuracy / 2.0;
        let seen = Xy::new(truth.x + sigma * v.rng.normal(), truth.y + sigma * v.rng.normal());
        let ll = city.projection.to_lat_lon(seen);
        let speed = (v.speed + 0.15 * v.rng.normal()).max(0.0);
        let heading = (v.heading + 2.0 * v.rng.normal()).rem_euclid(360.0);
        Fix {
            time_ms: v.time_ms,
            lat: ll.lat,
            lon: ll.lon,
            speed_mps: if v.speed == 0.0 { 0.0 } else { speed as f32 },
            heading_deg: heading as f32,
            accuracy_m: accuracy as f32,
            battery: v.battery.map(|b| b.round().clamp(0.0, 100.0) as u8),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::city::CityConfig;

    fn distance_to_edge(city: &City, e: usize, p: Xy) -> f64 {
        let edge = &city.edges[e];
        let (a, b) = (city.nodes[edge.a].pos, city.nodes[edge.b].pos);
        let (dx, dy) = (b.x - a.x, b.y - a.y);
        let t = (((p.x - a.x) * dx + (p.y - a.y) * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0);
        p.dist(a.lerp(b, t))
    }

    fn fleet(n: usize) -> Fleet {
        let city = Arc::new(City::generate(CityConfig { seed: 11, ..Default::default() }));
        let kinds: Vec<Kind> =
            [Kind::Car, Kind::Bike, Kind::Walker, Kind::Van].into_iter().cycle().take(n).collect();
        Fleet::new(city, &kinds, 5, 1_700_000_000_000)
    }

    #[test]
    fn vehicles_stay_on_roads_within_limits_and_pause() {
        let mut fleet = fleet(24);
        let mut activities: Vec<HashSet<Activity>> = vec![HashSet::new(); 24];
        let mut moved = [0.0; 24];
        let mut last: Vec<Xy> = fleet.vehicles.iter().map(|v| v.position(&fleet.city)).collect();
        let start = fleet.time_ms();
        // Two simulated hours, looked at every second.
        for s in 1..=7200u64 {
            fleet.advance_to(start + s * 1000);
            for (i, v) in fleet.vehicles.iter().enumerate() {
                let p = v.position(&fleet.city);
                let Some(e) = v.edge() else {
                    // Parked where it started, before its first trip.
                    assert_eq!((v.activity, v.speed), (Activity::Parked, 0.0));
                    continue;
                };
                assert!(
                    distance_to_edge(&fleet.city, e, p) < 1e-6,
                    "vehicle {i} is off its road: {} m, {:?} leg {} along {} {:?}",
                    distance_to_edge(&fleet.city, e, p),
                    v.activity,
                    v.leg,
                    v.along,
                    v.route.edges
                );
                let edge = &fleet.city.edges[e];
                let limit = edge.speed_limit_mps.min(v.kind.max_speed_mps());
                assert!(
                    v.speed >= 0.0 && v.speed <= limit + 1e-9,
                    "vehicle {i} ({:?}) at {} m/s, limit {limit}",
                    v.kind,
                    v.speed
                );
                if v.kind == Kind::Walker || v.kind == Kind::Bike {
                    assert!(edge.class.walkable(), "a {:?} on the ring road", v.kind);
                }
                if v.activity != Activity::Moving {
                    assert_eq!(v.speed, 0.0);
                }
                // No teleporting: at most the top speed times a second.
                let step = last[i].dist(p);
                // (Arriving snaps the last 5 cm to the node.)
                assert!(step <= v.kind.max_speed_mps() + 0.06, "vehicle {i} jumped {step} m");
                moved[i] += step;
                last[i] = p;
                activities[i].insert(v.activity);
            }
        }
        for (i, seen) in activities.iter().enumerate() {
            let kind = fleet.vehicles[i].kind;
            assert!(moved[i] > 500.0, "vehicle {i} ({kind:?}) moved only {} m", moved[i]);
            assert!(seen.contains(&Activity::Parked), "vehicle {i} ({kind:?}) never parked");
            if kind == Kind::Van {
                assert!(seen.contains(&Activity::Delivery), "van {i} never delivered");
            }
        }
        assert!(
            activities.iter().filter(|s| s.contains(&Activity::Signal)).count() > 5,
            "hardly anyone met a red light"
        );
    }

    #[test]
    fn vehicles_slow_down_for_sharp_turns() {
        let mut fleet = fleet(8);
        let start = fleet.time_ms();
        let mut checked = 0;
        for s in 1..=36_000u64 {
            fleet.advance_to(start + s * 100);
            for v in &fleet.vehicles {
                if v.kind != Kind::Car
                    || v.activity != Activity::Moving
                    || v.leg + 1 >= v.route.edges.len()
                {
                    continue;
                }
                let edge = &fleet.city.edges[v.route.edges[v.leg]];
                let remaining = edge.length_m - v.along;
                if remaining < 2.0 {
                    let end = v.end_speed(&fleet.city, v.kind.profile(v.temperament));
                    // Within the last 2 m, the speed is near the end speed the turn allows.
                    assert!(
                        v.speed <= (end * end + 2.0 * 3.0 * 2.0).sqrt() + 0.5,
                        "{} m/s into a turn allowing {end}",
                        v.speed
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 10, "only {checked} turns checked");
    }

    #[test]
    fn fixes_are_noisy_near_the_truth_monotonic_and_in_range() {
        let mut fleet = fleet(12);
        let mut last_time = [0; 12];
        let mut off = Vec::new();
        let start = fleet.time_ms();
        for s in 1..=1800u64 {
            fleet.advance_to(start + s * 1000);
            for (i, last_time) in last_time.iter_mut().enumerate() {
                let truth =
                    fleet.city.projection.to_lat_lon(fleet.vehicles[i].position(&fleet.city));
                let fix = fleet.fix(i);
                assert!(fix.time_ms > *last_time, "time went backwards");
                *last_time = fix.time_ms;
                let seen =
                    fleet.city.projection.to_xy(crate::geo::LatLon { lat: fix.lat, lon: fix.lon });
                let error = seen.dist(fleet.city.projection.to_xy(truth));
                assert!(
                    error < 5.0 * f64::from(fix.accuracy_m),
                    "{error} m off with accuracy {}",
                    fix.accuracy_m
                );
                off.push(error);
                assert!((0.0..360.0).contains(&fix.heading_deg));
                assert!(fix.speed_mps >= 0.0 && fix.accuracy_m > 0.0);
                match fleet.vehicles[i].kind {
                    Kind::Car => assert_eq!(fix.battery, None),
                    _ => assert!(fix.battery.is_some_and(|b| b <= 100)),
                }
            }
        }
        let mean = off.iter().sum::<f64>() / off.len() as f64;
        assert!(mean > 1.0 && mean < 15.0, "mean GPS error {mean} m");
    }

    #[test]
    fn the_same_seed_moves_the_same_way() {
        let (mut a, mut b) = (fleet(6), fleet(6));
        a.advance_to(a.time_ms() + 600_000);
        b.advance_to(b.time_ms() + 600_000);
        for i in 0..6 {
            assert_eq!(a.fix(i), b.fix(i));
        }
    }
}
