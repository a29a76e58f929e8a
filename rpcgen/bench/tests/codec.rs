//! The two sides the benchmarks compare do the same work: they write the same bytes for the same
//! data, read each other's buffers to the same values, and their object APIs round-trip.

use flatbuffers::FlatBufferBuilder;
use rpcgen_bench::codec::{flatc, ours};
use rpcgen_bench::sample::{Attachment, Sample};

/// The representative sample, and one with the other union variant and without the optional
/// scalar, so both union arms and both `Option` states are covered.
fn samples() -> Vec<Sample> {
    let mut note = Sample::representative();
    note.attachment = Attachment::Note { text: "door opened at depot".to_owned() };
    note.battery_pct = None;
    vec![Sample::representative(), note]
}

#[test]
fn builders_write_identical_bytes() {
    for sample in samples() {
        let mut ours_fbb = FlatBufferBuilder::new();
        let mut flatc_fbb = FlatBufferBuilder::new();
        let ours = ours::encode(&mut ours_fbb, &sample);
        let flatc = flatc::encode(&mut flatc_fbb, &sample);
        assert_eq!(ours, flatc, "builder bytes differ for {sample:?}");
    }
}

#[test]
fn pack_writes_identical_bytes_and_the_same_as_the_builders() {
    for sample in samples() {
        let mut fbb = FlatBufferBuilder::new();
        let built = ours::encode(&mut fbb, &sample).to_vec();
        let ours = ours::pack(&mut fbb, &ours::object(&sample)).to_vec();
        let flatc = flatc::pack(&mut fbb, &flatc::object(&sample)).to_vec();
        assert_eq!(ours, flatc, "packed bytes differ for {sample:?}");
        assert_eq!(ours, built, "pack and the builder API differ for {sample:?}");
    }
}

#[test]
fn each_side_reads_both_buffers_to_the_sample_checksum() {
    for sample in samples() {
        let expected = sample.checksum();
        let mut fbb = FlatBufferBuilder::new();
        let from_ours = ours::encode(&mut fbb, &sample).to_vec();
        let from_flatc = flatc::encode(&mut fbb, &sample).to_vec();
        for buf in [&from_ours, &from_flatc] {
            assert_eq!(ours::verify_and_read(buf), Ok(expected));
            assert_eq!(flatc::verify_and_read(buf), Ok(expected));
            // SAFETY: both buffers were just written by a builder and verified above.
            unsafe {
                assert_eq!(ours::read_unchecked(buf), expected);
                assert_eq!(flatc::read_unchecked(buf), expected);
            }
        }
    }
}

#[test]
fn checksum_sees_every_field() {
    // A reader that skipped a field would still match if the checksum ignored it; changing one
    // field at a time must change the sum.
    let base = Sample::representative();
    let changes: &[fn(&mut Sample)] = &[
        |s| s.device_id.push('x'),
        |s| s.sequence += 1,
        |s| s.timestamp_ms += 1,
        |s| s.position.accuracy_m += 1.0,
        |s| s.fix = 3,
        |s| s.speed_mps += 1.0,
        |s| s.heading_deg += 1.0,
        |s| s.battery_pct = None,
        |s| s.trail[15].lon += 1.0,
        |s| s.readings[7].unit += 1,
        |s| s.attachment = Attachment::Alarm { code: 0x0102, severity: 4 },
        |s| s.tags[2].push('x'),
    ];
    for change in changes {
        let mut changed = base.clone();
        change(&mut changed);
        assert_ne!(changed.checksum(), base.checksum(), "{changed:?}");
        let mut fbb = FlatBufferBuilder::new();
        let buf = ours::encode(&mut fbb, &changed);
        assert_eq!(flatc::verify_and_read(buf), Ok(changed.checksum()));
    }
}

#[test]
fn object_apis_round_trip_through_either_side() {
    for sample in samples() {
        let mut fbb = FlatBufferBuilder::new();
        let ours_object = ours::object(&sample);
        let flatc_object = flatc::object(&sample);

        let buf = ours::pack(&mut fbb, &ours_object).to_vec();
        assert_eq!(ours::unpack(&buf), Ok(ours_object.clone()));
        assert_eq!(flatc::unpack(&buf), Ok(flatc_object.clone()));

        let buf = flatc::pack(&mut fbb, &flatc_object).to_vec();
        assert_eq!(flatc::unpack(&buf), Ok(flatc_object));
        assert_eq!(ours::unpack(&buf), Ok(ours_object));
    }
}

#[test]
fn both_verifiers_reject_a_truncated_buffer() {
    let mut fbb = FlatBufferBuilder::new();
    let buf = ours::encode(&mut fbb, &Sample::representative()).to_vec();
    let truncated = &buf[..buf.len() - 16];
    assert!(ours::verify_and_read(truncated).is_err());
    assert!(flatc::verify_and_read(truncated).is_err());
}
