//! Simulated tracker devices: the synthetic city, vehicles moving through it, and the device
//! side of the report protocol (`docs/tracker-devices.md`), sending real UDP to a tracker.
//!
//! Layout:
//!
//! - [`rng`]: the seeded random numbers everything draws from, so a seed fixes a city and a fleet;
//! - [`geo`]: degrees and local metres;
//! - [`city`]: the street graph, river, parks and names, and its GeoJSON basemap;
//! - [`route`]: quickest paths over the graph;
//! - [`motion`]: vehicles moving along routes, and their GPS fixes;
//! - [`enrolment`]: the enrolment URI a device scans;
//! - [`device`]: report plaintext, sealing and acknowledgements (`docs/tracker-devices.md`);
//! - [`counters`]: report counters persisted across restarts;
//! - [`sim`]: the devices riding the fleet, sending reports over UDP and counting acknowledgements.

pub mod city;
pub mod counters;
pub mod device;
pub mod enrolment;
pub mod geo;
pub mod motion;
pub mod rng;
pub mod route;
pub mod sim;
