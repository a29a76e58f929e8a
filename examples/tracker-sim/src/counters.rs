//! Report counters that survive restarts: a device MUST never use a counter twice
//! (`docs/tracker-devices.md`: the counter is the nonce, and the tracker refuses replays).
//!
//! The file holds, per device, the highest counter *reserved*: a line `<device id> <counter>`.
//! Counters are reserved in blocks of [`BLOCK`], the file rewritten (to a temporary file, synced,
//! renamed over) before the first counter of a block is used. A simulator killed at any point
//! starts again above everything it may have sent, skipping at most one block per device.
//!
//! One write serves many devices: [`Counters::reserve`] reserves a block for each of a fleet at
//! once, and when one device needs a new block, every device past half of its block gets one in
//! the same write (a fleet reporting at one rate crosses its blocks together).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How many counters one write of the file reserves.
pub const BLOCK: u64 = 1000;

/// Why the counters could not be read or saved.
#[derive(Debug, thiserror::Error)]
pub enum CounterError {
    #[error("cannot {action} the counter file {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("the counter file {path} line {line} is not `<device id> <counter>`: {text:?}")]
    Corrupt { path: PathBuf, line: usize, text: String },
    #[error("device {0}'s counter is exhausted")]
    Exhausted(u64),
}

/// Every device's next counter, backed by a file.
#[derive(Debug)]
pub struct Counters {
    path: PathBuf,
    /// The highest counter reserved in the file, per device.
    reserved: BTreeMap<u64, u64>,
    /// The next counter to hand out, per device.
    next: BTreeMap<u64, u64>,
}

impl Counters {
    /// Reads the file at `path`; a missing file means no device has sent anything yet.
    ///
    /// # Errors
    ///
    /// If the file cannot be read or a line is not `<device id> <counter>`.
    pub fn open(path: impl Into<PathBuf>) -> Result<Counters, CounterError> {
        let path = path.into();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(CounterError::Io { action: "read", path, source }),
        };
        let mut reserved = BTreeMap::new();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let parsed = line.split_once(' ').and_then(|(id, counter)| {
                Some((id.parse::<u64>().ok()?, counter.trim().parse::<u64>().ok()?))
            });
            let Some((id, counter)) = parsed else {
                return Err(CounterError::Corrupt { path, line: i + 1, text: line.to_string() });
            };
            reserved.insert(id, counter);
        }
        // Everything reserved may have been used: start above it.
        let next = reserved.iter().map(|(&id, &c)| (id, c.saturating_add(1))).collect();
        Ok(Counters { path, reserved, next })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The counter for `device_id`'s next report (1 for its first ever), saving a new
    /// reservation first when the current block is used up.
    ///
    /// # Errors
    ///
    /// If the file cannot be written, or the counter reached `u64::MAX`.
    pub fn next(&mut self, device_id: u64) -> Result<u64, CounterError> {
        let counter = *self.next.get(&device_id).unwrap_or(&1);
        if counter == u64::MAX {
            return Err(CounterError::Exhausted(device_id));
        }
        if counter > self.reserved.get(&device_id).copied().unwrap_or(0) {
            for (id, &next) in &self.next {
                let reserved = self.reserved.entry(*id).or_insert(0);
                if reserved.saturating_sub(next) < BLOCK / 2 {
                    *reserved = next.saturating_add(BLOCK - 1);
                }
            }
            self.reserved.insert(device_id, counter.saturating_add(BLOCK - 1));
            self.save()?;
        }
        self.next.insert(device_id, counter + 1);
        Ok(counter)
    }

    /// Reserves a block for each of `devices` that has less than half a block left, in one
    /// write: what a simulator does before its first report.
    ///
    /// # Errors
    ///
    /// If the file cannot be written.
    pub fn reserve(&mut self, devices: impl IntoIterator<Item = u64>) -> Result<(), CounterError> {
        let mut changed = false;
        for id in devices {
            let next = *self.next.entry(id).or_insert(1);
            let reserved = self.reserved.entry(id).or_insert(0);
            if reserved.saturating_sub(next) < BLOCK / 2 {
                *reserved = next.saturating_add(BLOCK - 1);
                changed = true;
            }
        }
        if changed { self.save() } else { Ok(()) }
    }

    /// Marks every counter of `device_id` up to `counter` as used, so that its next report
    /// carries a higher one; saved at once when that moves the reservation. For a device whose
    /// tracker has accepted counters this file does not know of (the file was lost, or another
    /// program sent for the device): the tracker would refuse them as replayed.
    ///
    /// # Errors
    ///
    /// If the file cannot be written.
    pub fn mark_used_through(&mut self, device_id: u64, counter: u64) -> Result<(), CounterError> {
        self.mark_all_used_through([(device_id, counter)])
    }

    /// [`Counters::mark_used_through`] for many devices, with one write at most.
    ///
    /// # Errors
    ///
    /// If the file cannot be written.
    pub fn mark_all_used_through(
        &mut self,
        devices: impl IntoIterator<Item = (u64, u64)>,
    ) -> Result<(), CounterError> {
        let mut changed = false;
        for (device_id, counter) in devices {
            if *self.next.get(&device_id).unwrap_or(&1) > counter {
                continue;
            }
            self.next.insert(device_id, counter.saturating_add(1));
            if counter > self.reserved.get(&device_id).copied().unwrap_or(0) {
                self.reserved.insert(device_id, counter);
                changed = true;
            }
        }
        if changed { self.save() } else { Ok(()) }
    }

    fn save(&self) -> Result<(), CounterError> {
        let io =
            |action| move |source| CounterError::Io { action, path: self.path.clone(), source };
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut file = std::fs::File::create(&tmp).map_err(io("create"))?;
        for (id, counter) in &self.reserved {
            writeln!(file, "{id} {counter}").map_err(io("write"))?;
        }
        file.sync_all().map_err(io("sync"))?;
        std::fs::rename(&tmp, &self.path).map_err(io("replace"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_start_at_one_increase_and_never_repeat_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counters");
        let mut c = Counters::open(&path).unwrap();
        assert_eq!((c.next(7).unwrap(), c.next(7).unwrap(), c.next(9).unwrap()), (1, 2, 1));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("7 {BLOCK}\n9 {BLOCK}\n"));
        // A "crash": nothing more is written, the next run starts above the reservation.
        drop(c);
        let mut c = Counters::open(&path).unwrap();
        assert_eq!(c.next(7).unwrap(), BLOCK + 1);
        for expected in BLOCK + 2..=2 * BLOCK + 5 {
            assert_eq!(c.next(7).unwrap(), expected);
        }
        assert_eq!(Counters::open(&path).unwrap().next(7).unwrap(), 3 * BLOCK + 1);
    }

    #[test]
    fn counters_marked_used_are_skipped_now_and_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counters");
        let mut c = Counters::open(&path).unwrap();
        c.mark_used_through(7, 5000).unwrap();
        // Lower marks change nothing.
        c.mark_used_through(7, 10).unwrap();
        assert_eq!(c.next(7).unwrap(), 5001);
        // Saved before use: a new run starts above the mark even if nothing was sent.
        let mut fresh = Counters::open(dir.path().join("other")).unwrap();
        fresh.mark_used_through(9, 42).unwrap();
        drop(fresh);
        assert_eq!(Counters::open(dir.path().join("other")).unwrap().next(9).unwrap(), 43);
    }

    #[test]
    fn one_write_reserves_for_every_device_that_will_need_it_soon() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counters");
        let mut c = Counters::open(&path).unwrap();
        c.reserve([1, 2, 3]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1 1000\n2 1000\n3 1000\n");
        for _ in 0..BLOCK {
            c.next(1).unwrap();
        }
        for _ in 0..600 {
            c.next(2).unwrap();
        }
        c.next(3).unwrap();
        // Device 1 crosses its block: device 2 (399 left) is extended in the same write, device
        // 3 (999 left) is not.
        assert_eq!(c.next(1).unwrap(), BLOCK + 1);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1 2000\n2 1600\n3 1000\n");
        // Reserving again changes nothing for devices with half a block left.
        c.reserve([1, 2, 3]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1 2000\n2 1600\n3 1000\n");
        drop(c);
        let mut c = Counters::open(&path).unwrap();
        c.mark_all_used_through([(2, 5000), (3, 10)]).unwrap();
        assert_eq!((c.next(2).unwrap(), c.next(3).unwrap()), (5001, 1001));
    }

    #[test]
    fn a_corrupt_file_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counters");
        std::fs::write(&path, "7 1000\nseven 12\n").unwrap();
        let err = Counters::open(&path).unwrap_err();
        assert!(
            matches!(&err, CounterError::Corrupt { line: 2, text, .. } if text == "seven 12"),
            "{err}"
        );
        assert!(err.to_string().contains("line 2"));
    }
}
