//! The tracker's report datagrams (docs/tracker-devices.md), which anyone on the network can
//! send to its UDP port.

use tracker::packet::{self, DeviceKey, Header, MAX_LEN, MIN_LEN};

/// The key of the one device the target knows.
const KEY: DeviceKey = [7; 32];

/// The first byte picks how the rest is read. Even: a datagram as received, taken apart in the
/// ingest's order (header, tag, report). Odd: a report's plaintext, sealed by the device with
/// the counter in the first byte's other bits, which must open to the same plaintext; a report
/// the tracker accepts is written again by the device side and read equal.
pub fn report(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 {
        let Ok(header) = Header::parse(rest) else {
            assert!(
                !(MIN_LEN..=MAX_LEN).contains(&rest.len())
                    || rest[0] != packet::VERSION
                    || rest[1] > 1
            );
            return;
        };
        if let Ok(plaintext) = packet::open(rest, &header, &KEY) {
            let _ = packet::parse_report(&plaintext);
        }
        return;
    }
    let header =
        Header { flags: packet::FLAG_ACK_WANTED, device_id: 1, counter: u64::from(mode >> 1) };
    let datagram = packet::seal(&header, &KEY, rest);
    match Header::parse(&datagram) {
        Ok(parsed) => {
            assert_eq!(parsed, header);
            let plaintext = packet::open(&datagram, &parsed, &KEY).expect("a sealed report opens");
            assert_eq!(plaintext, rest);
            let wrong = packet::open(&datagram, &parsed, &[8; 32]);
            assert_eq!(wrong, Err(packet::DropReason::BadTag), "another key opened a report");
        }
        Err(reason) => {
            assert_eq!(reason, packet::DropReason::BadLength);
            return;
        }
    }
    if let Ok(report) = packet::parse_report(rest) {
        let again = packet::parse_report(&packet::encode_report(&report))
            .expect("a report the tracker accepts, written again, is accepted");
        // `==`: a -0.0 equal to its default is not written, and reads as 0.0.
        assert_eq!(again, report);
    }
}
