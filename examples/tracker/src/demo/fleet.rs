//! The demo's simulated devices: enrolled on the first start, and kept as enrolment URIs in a
//! file next to the database (`<db>.devices`, the format `tracker-sim run --devices` reads), so
//! that later starts drive the same devices and nothing they reported is orphaned.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use tracker_sim::motion::Kind;
use tracker_sim::rng::Rng;

use crate::enrol::{EnrolError, Enrolment};
use crate::ingest::now_ms;
use crate::packet::DeviceKey;
use crate::store::{Store, StoreError, beside};

/// Why the demo's devices could not be loaded or enrolled.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("cannot {action} the demo's devices file `{path}`: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("`{path}` line {line}: {reason}")]
    BadLine { path: PathBuf, line: usize, reason: String },
    #[error(
        "device {id} of `{path}` has another key in the database: the file belongs to another \
         database (delete it to enrol new devices)"
    )]
    KeyMismatch { id: u64, path: PathBuf },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Enrol(#[from] EnrolError),
}

/// The devices file of the database at `db`: its path with `.devices` appended.
pub fn devices_path(db: &Path) -> PathBuf {
    beside(db, ".devices")
}

/// The simulator's counter file of the database at `db`: its path with `.counters` appended.
pub fn counters_path(db: &Path) -> PathBuf {
    beside(db, ".counters")
}

/// The vehicle a simulated device rides, as `tracker_sim::sim` draws it from the city's seed
/// and the device id.
pub fn kind(seed: u64, device_id: u64) -> Kind {
    Kind::draw(&mut Rng::new(seed).derive(device_id))
}

/// The first `wanted` devices of the file at `path`, enrolling new ones in `store` (and adding
/// them to the file) when it has fewer; each is named after its vehicle and its rank among
/// those of its kind ("Van 3", "Bike 7"). Every device returned reports to `ingest`, which is
/// written to the file's URIs. Devices of the file missing from `store` (a new database with an
/// old file) are enrolled again with their ids and keys.
///
/// # Errors
///
/// The file cannot be read or written, has a line that is not an enrolment URI, or names a
/// device the store knows with another key; the store or the random generator fails.
pub fn prepare(
    store: &Store,
    path: &Path,
    wanted: usize,
    ingest: &str,
    seed: u64,
) -> Result<Vec<Enrolment>, FleetError> {
    let mut devices = read(path)?;
    let stored: HashMap<u64, DeviceKey> =
        store.devices()?.into_iter().map(|d| (d.id, d.key)).collect();
    let mut missing = Vec::new();
    for device in &mut devices {
        match stored.get(&device.id) {
            Some(key) if *key != device.key => {
                return Err(FleetError::KeyMismatch { id: device.id, path: path.to_owned() });
            }
            Some(_) => {}
            None => missing.push((device.id, device.name.clone(), device.key)),
        }
        device.ingest = ingest.to_owned();
    }
    store.add_devices(missing.iter().map(|(id, name, key)| (*id, &name[..], key)), now_ms())?;

    // New devices, in one transaction: a fleet of 100,000 is enrolled in seconds.
    let mut taken: HashSet<u64> = stored.keys().copied().collect();
    taken.extend(devices.iter().map(|d| d.id));
    let mut ranks: HashMap<&'static str, usize> = HashMap::new();
    for device in &devices {
        if let Some((kind, _)) = device.name.split_once(' ') {
            for known in [Kind::Car, Kind::Bike, Kind::Walker, Kind::Van].map(display_kind) {
                if kind == known {
                    *ranks.entry(known).or_default() += 1;
                }
            }
        }
    }
    let first_new = devices.len();
    while devices.len() < wanted {
        let id = getrandom::u64().map_err(EnrolError::Random)?;
        if id == 0 || !taken.insert(id) {
            continue;
        }
        let mut key = [0; 32];
        getrandom::fill(&mut key).map_err(EnrolError::Random)?;
        let kind = display_kind(kind(seed, id));
        let rank = ranks.entry(kind).or_default();
        *rank += 1;
        let name = format!("{kind} {rank}");
        devices.push(Enrolment { id, key, ingest: ingest.to_owned(), name });
    }
    let new = &devices[first_new..];
    store.add_devices(new.iter().map(|d| (d.id, &d.name[..], &d.key)), now_ms())?;
    write(path, &devices)?;
    devices.truncate(wanted);
    Ok(devices)
}

fn display_kind(kind: Kind) -> &'static str {
    match kind {
        Kind::Car => "Car",
        Kind::Bike => "Bike",
        Kind::Walker => "Walker",
        Kind::Van => "Van",
    }
}

/// The file's enrolments; none if it does not exist.
fn read(path: &Path) -> Result<Vec<Enrolment>, FleetError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(FleetError::Io { action: "read", path: path.to_owned(), source });
        }
    };
    let mut devices = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let device = Enrolment::parse_uri(line).map_err(|e| FleetError::BadLine {
            path: path.to_owned(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        devices.push(device);
    }
    Ok(devices)
}

/// Writes the file whole (to a temporary file, synced, renamed over it).
fn write(path: &Path, devices: &[Enrolment]) -> Result<(), FleetError> {
    let io = |action| move |source| FleetError::Io { action, path: path.to_owned(), source };
    let mut text = String::from(
        "# The tracker demo's simulated devices: their enrolment URIs (they hold the keys).\n",
    );
    for device in devices {
        text.push_str(&device.uri());
        text.push('\n');
    }
    let tmp = beside(path, ".tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    // The keys are secrets: readable by their owner only.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(io("create"))?;
    std::io::Write::write_all(&mut file, text.as_bytes()).map_err(io("write"))?;
    file.sync_all().map_err(io("sync"))?;
    std::fs::rename(&tmp, path).map_err(io("replace"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_enrolled_once_named_after_their_vehicles_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("demo.db")).unwrap();
        let path = devices_path(&dir.path().join("demo.db"));
        let first = prepare(&store, &path, 8, "127.0.0.1:7500", 1).unwrap();
        assert_eq!(first.len(), 8);
        assert_eq!(store.devices().unwrap().len(), 8);
        for (i, device) in first.iter().enumerate() {
            let kind = display_kind(kind(1, device.id));
            let rank = first[..i].iter().filter(|d| d.name.starts_with(kind)).count() + 1;
            assert_eq!(device.name, format!("{kind} {rank}"));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the keys' file is the owner's only");
        }
        // A later start, at another ingest address, with more devices: the same ones first.
        let again = prepare(&store, &path, 10, "127.0.0.1:9999", 1).unwrap();
        assert_eq!(again.len(), 10);
        for (a, b) in first.iter().zip(&again) {
            assert_eq!((a.id, a.key, &a.name), (b.id, b.key, &b.name));
            assert_eq!(b.ingest, "127.0.0.1:9999");
        }
        assert_eq!(store.devices().unwrap().len(), 10);
        // Fewer asked for: the first ones, the others kept in the file.
        assert_eq!(prepare(&store, &path, 3, "127.0.0.1:9999", 1).unwrap().len(), 3);
        assert_eq!(read(&path).unwrap().len(), 10);
    }

    #[test]
    fn a_new_database_takes_the_files_devices_and_a_foreign_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.db.devices");
        let old = Store::open(dir.path().join("old.db")).unwrap();
        let devices = prepare(&old, &path, 2, "127.0.0.1:7500", 1).unwrap();
        let new = Store::open(dir.path().join("new.db")).unwrap();
        prepare(&new, &path, 2, "127.0.0.1:7500", 1).unwrap();
        assert_eq!(new.device(devices[0].id).unwrap().unwrap().key, devices[0].key);

        let other = Store::open(dir.path().join("other.db")).unwrap();
        other.add_device(devices[1].id, "impostor", &[9; 32], 0).unwrap();
        let err = prepare(&other, &path, 2, "127.0.0.1:7500", 1).unwrap_err();
        assert!(matches!(err, FleetError::KeyMismatch { id, .. } if id == devices[1].id), "{err}");
    }

    #[test]
    fn a_bad_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.db.devices");
        std::fs::write(&path, "# devices\n\nrpcgen-tracker:v1?id=0&key=x\n").unwrap();
        let store = Store::open(dir.path().join("demo.db")).unwrap();
        let err = prepare(&store, &path, 1, "127.0.0.1:7500", 1).unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }
}
