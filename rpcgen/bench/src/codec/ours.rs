//! The report through rpcgen's generated code.

use gateway_core::flatbuffers::{FlatBufferBuilder, InvalidFlatbuffer, WIPOffset};

use crate::ours::bench::{
    Alarm, AlarmArgs, AlarmT, Attachment, AttachmentT, Fix, Note, NoteArgs, NoteT, Position,
    PositionT, Reading, ReadingArgs, ReadingT, Report, ReportArgs, ReportT, finish_report_buffer,
    root_as_report, root_as_report_unchecked,
};
use crate::sample::{self, Checksum, Sample};

/// Builds `sample` with the builder API into `fbb` (reset first) and returns the finished
/// buffer. Objects are created in the order flatc's `pack` creates them.
pub fn encode<'a>(fbb: &'a mut FlatBufferBuilder<'_>, sample: &Sample) -> &'a [u8] {
    fbb.reset();
    let device_id = fbb.create_string(&sample.device_id);
    let trail: Vec<Position> = sample.trail.iter().map(position).collect();
    let trail = fbb.create_vector(&trail);
    let readings: Vec<WIPOffset<Reading<'_>>> = sample
        .readings
        .iter()
        .map(|r| {
            let sensor = fbb.create_string(&r.sensor);
            let args = ReadingArgs { value: r.value, unit: r.unit, ..ReadingArgs::new(sensor) };
            Reading::create(fbb, &args)
        })
        .collect();
    let readings = fbb.create_vector(&readings);
    let (attachment_type, attachment) = match &sample.attachment {
        sample::Attachment::Note { text } => {
            let text = fbb.create_string(text);
            let note = Note::create(fbb, &NoteArgs { text: Some(text) });
            (Attachment::Note, note.as_union_value())
        }
        sample::Attachment::Alarm { code, severity } => {
            let alarm = Alarm::create(fbb, &AlarmArgs { code: *code, severity: *severity });
            (Attachment::Alarm, alarm.as_union_value())
        }
    };
    let tags: Vec<WIPOffset<&str>> = sample.tags.iter().map(|t| fbb.create_string(t)).collect();
    let tags = fbb.create_vector(&tags);
    let position = position(&sample.position);
    let report = Report::create(
        fbb,
        &ReportArgs {
            sequence: sample.sequence,
            timestamp_ms: sample.timestamp_ms,
            position: Some(&position),
            fix: Fix(sample.fix),
            speed_mps: sample.speed_mps,
            heading_deg: sample.heading_deg,
            battery_pct: sample.battery_pct,
            trail: Some(trail),
            readings: Some(readings),
            attachment_type,
            attachment: Some(attachment),
            tags: Some(tags),
            ..ReportArgs::new(device_id)
        },
    );
    finish_report_buffer(fbb, report);
    fbb.finished_data()
}

fn position(p: &sample::Point) -> Position {
    Position::new(p.lat, p.lon, p.alt_m, p.accuracy_m)
}

/// Verifies `buf` and reads every field of the report.
///
/// # Errors
///
/// The verifier's error when `buf` is not a valid report.
pub fn verify_and_read(buf: &[u8]) -> Result<u64, InvalidFlatbuffer> {
    root_as_report(buf).map(read)
}

/// Reads every field of the report in `buf` without verifying it first.
///
/// # Safety
///
/// `buf` must hold a valid report, e.g. one [`encode`] returned or [`verify_and_read`] accepted.
pub unsafe fn read_unchecked(buf: &[u8]) -> u64 {
    read(unsafe { root_as_report_unchecked(buf) })
}

/// Folds every field of `report` into a checksum, in [`Sample::checksum`]'s order.
pub fn read(report: Report<'_>) -> u64 {
    let mut sum = Checksum::new();
    sum.str(report.device_id());
    sum.u64(report.sequence());
    sum.i64(report.timestamp_ms());
    sum.point(report.position(), position_fields);
    sum.i64(report.fix().0.into());
    sum.f32(report.speed_mps());
    sum.f32(report.heading_deg());
    sum.option_u8(report.battery_pct());
    let trail = report.trail().unwrap_or_default();
    sum.len(trail.len());
    for p in trail {
        sum.point(Some(p), position_fields);
    }
    let readings = report.readings().unwrap_or_default();
    sum.len(readings.len());
    for r in readings {
        sum.str(r.sensor());
        sum.f64(r.value());
        sum.u64(r.unit().into());
    }
    sum.u64(report.attachment_type().0.into());
    if let Some(note) = report.attachment_as_note() {
        sum.option_str(note.text());
    } else if let Some(alarm) = report.attachment_as_alarm() {
        sum.u64(alarm.code().into());
        sum.u64(alarm.severity().into());
    }
    let tags = report.tags().unwrap_or_default();
    sum.len(tags.len());
    for t in tags {
        sum.str(t);
    }
    sum.finish()
}

fn position_fields(p: &Position) -> (f64, f64, f32, f32) {
    (p.lat(), p.lon(), p.alt_m(), p.accuracy_m())
}

/// `sample` as an owned object.
pub fn object(sample: &Sample) -> ReportT {
    let point = |p: &sample::Point| PositionT {
        lat: p.lat,
        lon: p.lon,
        alt_m: p.alt_m,
        accuracy_m: p.accuracy_m,
    };
    ReportT {
        device_id: sample.device_id.clone(),
        sequence: sample.sequence,
        timestamp_ms: sample.timestamp_ms,
        position: Some(point(&sample.position)),
        fix: Fix(sample.fix),
        speed_mps: sample.speed_mps,
        heading_deg: sample.heading_deg,
        battery_pct: sample.battery_pct,
        trail: Some(sample.trail.iter().map(point).collect()),
        readings: Some(
            sample
                .readings
                .iter()
                .map(|r| ReadingT { sensor: r.sensor.clone(), value: r.value, unit: r.unit })
                .collect(),
        ),
        attachment: match &sample.attachment {
            sample::Attachment::Note { text } => {
                AttachmentT::Note(Box::new(NoteT { text: Some(text.clone()) }))
            }
            sample::Attachment::Alarm { code, severity } => {
                AttachmentT::Alarm(Box::new(AlarmT { code: *code, severity: *severity }))
            }
        },
        tags: Some(sample.tags.clone()),
    }
}

/// Packs `object` into `fbb` (reset first) and returns the finished buffer.
pub fn pack<'a>(fbb: &'a mut FlatBufferBuilder<'_>, object: &ReportT) -> &'a [u8] {
    fbb.reset();
    let report = object.pack(fbb);
    finish_report_buffer(fbb, report);
    fbb.finished_data()
}

/// Verifies `buf` and copies the report into an owned object.
///
/// # Errors
///
/// The verifier's error when `buf` is not a valid report.
pub fn unpack(buf: &[u8]) -> Result<ReportT, InvalidFlatbuffer> {
    root_as_report(buf).map(|report| report.unpack())
}
