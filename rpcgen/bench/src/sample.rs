//! The representative report both codecs encode, as plain Rust data, and the checksum every
//! reader folds the fields it reads into.
//!
//! The data lives in its own types, not in either side's generated types, because that is how an
//! application encodes: from its own state, field by field. Both sides encode the same [`Sample`]
//! in the same order, so their buffers can be compared byte for byte.

/// A position fix, the fields of the schema's `Position` struct.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub lat: f64,
    pub lon: f64,
    pub alt_m: f32,
    pub accuracy_m: f32,
}

/// A sensor reading, the fields of the schema's `Reading` table.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub sensor: String,
    pub value: f64,
    pub unit: u8,
}

/// The value of the schema's `Attachment` union.
#[derive(Clone, Debug, PartialEq)]
pub enum Attachment {
    Note { text: String },
    Alarm { code: u32, severity: u8 },
}

/// A device report: every field of the schema's `Report` table.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub device_id: String,
    pub sequence: u64,
    pub timestamp_ms: i64,
    pub position: Point,
    /// The raw value of the `Fix` enum.
    pub fix: i8,
    pub speed_mps: f32,
    pub heading_deg: f32,
    pub battery_pct: Option<u8>,
    pub trail: Vec<Point>,
    pub readings: Vec<Reading>,
    pub attachment: Attachment,
    pub tags: Vec<String>,
}

/// Union tags as the schema numbers them (`union Attachment { Note, Alarm }`).
pub const TAG_NOTE: u8 = 1;
pub const TAG_ALARM: u8 = 2;

impl Sample {
    /// What a tracked vehicle sends every few seconds: where it is, the 16 points it passed
    /// since the last report, 8 sensor readings, 3 tags and an alarm.
    pub fn representative() -> Sample {
        let point = |i: u32| Point {
            lat: 52.520_008 + f64::from(i) * 0.000_31,
            lon: 13.404_954 - f64::from(i) * 0.000_17,
            alt_m: 34.5 + i as f32 * 0.25,
            accuracy_m: 3.0 + (i % 4) as f32,
        };
        let sensors = [
            ("engine.temp", 91.5, 1),
            ("engine.rpm", 2_150.0, 2),
            ("fuel.level", 0.62, 3),
            ("cabin.temp", 21.25, 1),
            ("tyre.fl", 2.31, 4),
            ("tyre.fr", 2.29, 4),
            ("tyre.rl", 2.45, 4),
            ("tyre.rr", 2.44, 4),
        ];
        Sample {
            device_id: "truck-0042-eu-west".to_owned(),
            sequence: 1_048_577,
            timestamp_ms: 1_767_225_600_123,
            position: point(16),
            fix: 2,
            speed_mps: 22.75,
            heading_deg: 271.5,
            battery_pct: Some(87),
            trail: (0..16).map(point).collect(),
            readings: sensors
                .iter()
                .map(|&(sensor, value, unit)| Reading { sensor: sensor.to_owned(), value, unit })
                .collect(),
            attachment: Attachment::Alarm { code: 0x0102, severity: 3 },
            tags: vec!["fleet:north".to_owned(), "refrigerated".to_owned(), "priority".to_owned()],
        }
    }

    /// The checksum a reader computes after reading this sample's buffer: the reference the
    /// tests compare each side's readers with.
    pub fn checksum(&self) -> u64 {
        let mut sum = Checksum::new();
        sum.str(&self.device_id);
        sum.u64(self.sequence);
        sum.i64(self.timestamp_ms);
        sum.point(Some(&self.position), |p| (p.lat, p.lon, p.alt_m, p.accuracy_m));
        sum.i64(self.fix.into());
        sum.f32(self.speed_mps);
        sum.f32(self.heading_deg);
        sum.option_u8(self.battery_pct);
        sum.len(self.trail.len());
        for p in &self.trail {
            sum.point(Some(p), |p| (p.lat, p.lon, p.alt_m, p.accuracy_m));
        }
        sum.len(self.readings.len());
        for r in &self.readings {
            sum.str(&r.sensor);
            sum.f64(r.value);
            sum.u64(r.unit.into());
        }
        match &self.attachment {
            Attachment::Note { text } => {
                sum.u64(TAG_NOTE.into());
                sum.option_str(Some(text));
            }
            Attachment::Alarm { code, severity } => {
                sum.u64(TAG_ALARM.into());
                sum.u64((*code).into());
                sum.u64((*severity).into());
            }
        }
        sum.len(self.tags.len());
        for t in &self.tags {
            sum.str(t);
        }
        sum.finish()
    }
}

/// An FNV-1a style fold of every value read. Readers feed it everything they read, so the
/// optimiser cannot drop a read, and two readers that saw the same values give the same sum.
/// Strings are folded byte by byte, as an application comparing or hashing them would touch
/// them.
#[derive(Clone, Copy, Debug)]
pub struct Checksum(u64);

impl Checksum {
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    pub fn new() -> Checksum {
        Checksum(0xcbf2_9ce4_8422_2325)
    }

    #[inline]
    pub fn u64(&mut self, value: u64) {
        self.0 = (self.0 ^ value).wrapping_mul(Self::PRIME);
    }

    #[inline]
    pub fn i64(&mut self, value: i64) {
        self.u64(value as u64);
    }

    #[inline]
    pub fn f64(&mut self, value: f64) {
        self.u64(value.to_bits());
    }

    #[inline]
    pub fn f32(&mut self, value: f32) {
        self.u64(value.to_bits().into());
    }

    #[inline]
    pub fn len(&mut self, len: usize) {
        self.u64(len as u64);
    }

    #[inline]
    pub fn str(&mut self, s: &str) {
        self.len(s.len());
        for &b in s.as_bytes() {
            self.u64(b.into());
        }
    }

    /// An absent value and each present value fold differently.
    #[inline]
    pub fn option_str(&mut self, s: Option<&str>) {
        match s {
            None => self.u64(0),
            Some(s) => {
                self.u64(1);
                self.str(s);
            }
        }
    }

    #[inline]
    pub fn option_u8(&mut self, value: Option<u8>) {
        match value {
            None => self.u64(0),
            Some(v) => {
                self.u64(1);
                self.u64(v.into());
            }
        }
    }

    /// A `Position` struct, whichever side's type holds it: `fields` reads its four fields.
    #[inline]
    pub fn point<P>(&mut self, point: Option<&P>, fields: impl Fn(&P) -> (f64, f64, f32, f32)) {
        match point {
            None => self.u64(0),
            Some(p) => {
                let (lat, lon, alt_m, accuracy_m) = fields(p);
                self.u64(1);
                self.f64(lat);
                self.f64(lon);
                self.f32(alt_m);
                self.f32(accuracy_m);
            }
        }
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Checksum {
    fn default() -> Checksum {
        Checksum::new()
    }
}
