use proptest::prelude::*;

use super::*;

const KEY: DeviceKey = [7; 32];

fn header(counter: u64) -> Header {
    Header { flags: FLAG_ACK_WANTED, device_id: 0x0102_0304_0506_0708, counter }
}

fn report() -> DeviceReportT {
    DeviceReportT {
        time_ms: 1_700_000_000_000,
        lat: 48.8584,
        lon: 2.2945,
        speed_mps: 1.5,
        heading_deg: 270.0,
        accuracy_m: 4.0,
        battery: Some(87),
    }
}

fn hex(text: &str) -> Vec<u8> {
    let digits: String = text.chars().filter(char::is_ascii_hexdigit).collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

/// RFC 8439, section 2.8.2: the AEAD as this module calls it (detached tag, in place).
#[test]
fn rfc_8439_aead_test_vector() {
    let key: DeviceKey =
        hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f").try_into().unwrap();
    let nonce: [u8; 12] = hex("070000004041424344454647").try_into().unwrap();
    let aad = hex("50515253c0c1c2c3c4c5c6c7");
    let plaintext = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
    let ciphertext = hex("d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6
         3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36
         92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
         3ff4def08e4b7a9de576d26586cec64b6116");
    let tag: [u8; 16] = hex("1ae10b594f09e26a7e902ecbd0600691").try_into().unwrap();

    let mut buffer = plaintext.to_vec();
    assert_eq!(seal_detached(&key, &nonce, &aad, &mut buffer), tag);
    assert_eq!(buffer, ciphertext);
    assert!(open_detached(&key, &nonce, &aad, &mut buffer, &tag));
    assert_eq!(buffer, plaintext);
}

/// Our framing on a fixed input, so any change to the nonce, the AAD or the layout shows. The
/// expected bytes were computed independently with Python's `cryptography` package
/// (`ChaCha20Poly1305(key).encrypt(nonce, plaintext, header)`); the same vector is in
/// docs/tracker.md for other implementations (the simulator) to check.
#[test]
fn report_and_ack_test_vector() {
    let key: DeviceKey = std::array::from_fn(|i| i as u8);
    let header = Header { flags: FLAG_ACK_WANTED, device_id: 42, counter: 7 };
    let datagram = seal(&header, &key, b"hello");
    assert_eq!(
        datagram,
        hex("0101 2a00000000000000 0700000000000000 f41de0ed91 1b4d581d01fd08bf5ec9c2a0963716e2"),
        "{}",
        datagram.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let ack = encode_ack(&header, &key);
    assert_eq!(
        ack.to_vec(),
        hex("0180 2a00000000000000 0700000000000000 dae2cd0ad8fbc4c3bc62ee9a5d14eb60"),
        "{}",
        ack.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
}

#[test]
fn a_sealed_report_opens_to_the_same_report() {
    let datagram = seal(&header(1), &KEY, &encode_report(&report()));
    let parsed = Header::parse(&datagram).unwrap();
    assert_eq!(parsed, header(1));
    assert!(parsed.ack_wanted());
    let plaintext = open(&datagram, &parsed, &KEY).unwrap();
    assert_eq!(parse_report(&plaintext).unwrap(), report());
    let no_battery = DeviceReportT { battery: None, ..report() };
    assert_eq!(parse_report(&encode_report(&no_battery)).unwrap(), no_battery);
}

#[test]
fn bad_length_below_34_and_above_512() {
    for len in [0, 1, 17, 18, 33, 513, 1500] {
        let mut datagram = vec![0; len];
        if len > 0 {
            datagram[0] = VERSION;
        }
        assert_eq!(Header::parse(&datagram), Err(DropReason::BadLength), "{len} bytes");
    }
    // The smallest datagram (an empty plaintext) has a valid length and tag, but is no report.
    let smallest = seal(&header(1), &KEY, b"");
    assert_eq!(smallest.len(), MIN_LEN);
    let parsed = Header::parse(&smallest).unwrap();
    let plaintext = open(&smallest, &parsed, &KEY).unwrap();
    assert_eq!(parse_report(&plaintext), Err(DropReason::BadReport));
    // The largest one is looked at.
    let largest = seal(&header(1), &KEY, &[0; MAX_LEN - MIN_LEN]);
    assert_eq!(largest.len(), MAX_LEN);
    assert!(Header::parse(&largest).is_ok());
}

#[test]
fn bad_version_and_undefined_flags() {
    let datagram = seal(&header(1), &KEY, &encode_report(&report()));
    for version in [0, 2, 0xff] {
        let mut d = datagram.clone();
        d[0] = version;
        assert_eq!(Header::parse(&d), Err(DropReason::BadVersion), "version {version}");
    }
    for flag in [0x02, 0x04, 0x40, 0x80, 0xfe] {
        let mut d = datagram.clone();
        d[1] = flag | FLAG_ACK_WANTED;
        assert_eq!(Header::parse(&d), Err(DropReason::BadVersion), "flags {flag:#x}");
    }
    let mut no_ack = datagram.clone();
    no_ack[1] = 0;
    assert!(!Header::parse(&no_ack).unwrap().ack_wanted());
}

#[test]
fn a_wrong_key_is_a_bad_tag() {
    let datagram = seal(&header(1), &KEY, &encode_report(&report()));
    let parsed = Header::parse(&datagram).unwrap();
    let mut other = KEY;
    other[31] ^= 1;
    assert_eq!(open(&datagram, &parsed, &other), Err(DropReason::BadTag));
}

#[test]
fn tampering_with_any_bit_of_any_byte_is_caught() {
    let datagram = seal(&header(9), &KEY, &encode_report(&report()));
    for at in 0..datagram.len() {
        for bit in 0..8 {
            let mut d = datagram.clone();
            d[at] ^= 1 << bit;
            let outcome = Header::parse(&d).and_then(|h| open(&d, &h, &KEY));
            let expected = match at {
                0 => DropReason::BadVersion,
                1 if bit != 0 => DropReason::BadVersion,
                _ => DropReason::BadTag,
            };
            assert_eq!(outcome, Err(expected), "byte {at} bit {bit}");
        }
    }
}

#[test]
fn out_of_range_values_are_bad_reports() {
    let cases: Vec<(&str, DeviceReportT)> = vec![
        ("lat 90.0001", DeviceReportT { lat: 90.0001, ..report() }),
        ("lat -91", DeviceReportT { lat: -91.0, ..report() }),
        ("lon 180.5", DeviceReportT { lon: 180.5, ..report() }),
        ("lon -181", DeviceReportT { lon: -181.0, ..report() }),
        ("lat NaN", DeviceReportT { lat: f64::NAN, ..report() }),
        ("lon NaN", DeviceReportT { lon: f64::NAN, ..report() }),
        ("lat inf", DeviceReportT { lat: f64::INFINITY, ..report() }),
        ("speed -0.1", DeviceReportT { speed_mps: -0.1, ..report() }),
        ("speed NaN", DeviceReportT { speed_mps: f32::NAN, ..report() }),
        ("speed inf", DeviceReportT { speed_mps: f32::INFINITY, ..report() }),
        ("heading NaN", DeviceReportT { heading_deg: f32::NAN, ..report() }),
        ("accuracy -1", DeviceReportT { accuracy_m: -1.0, ..report() }),
        ("accuracy NaN", DeviceReportT { accuracy_m: f32::NAN, ..report() }),
        ("battery 101", DeviceReportT { battery: Some(101), ..report() }),
    ];
    for (what, bad) in cases {
        assert_eq!(parse_report(&encode_report(&bad)), Err(DropReason::BadReport), "{what}");
    }
    let edges = DeviceReportT {
        lat: -90.0,
        lon: 180.0,
        speed_mps: 0.0,
        accuracy_m: 0.0,
        battery: Some(100),
        ..report()
    };
    assert_eq!(parse_report(&encode_report(&edges)), Ok(edges));
}

#[test]
fn a_plaintext_that_is_no_flatbuffer_is_a_bad_report() {
    for plaintext in [&b""[..], b"\x01", b"not a flatbuffer at all", &[0xff; 64]] {
        assert_eq!(parse_report(plaintext), Err(DropReason::BadReport), "{plaintext:?}");
    }
}

#[test]
fn acknowledgements_verify_with_the_key_only() {
    let ack = encode_ack(&header(5), &KEY);
    assert_eq!(ack[1], FLAG_ACK);
    assert_eq!(verify_ack(&ack, &KEY), Some((header(5).device_id, 5)));
    let mut other = KEY;
    other[0] ^= 0x80;
    assert_eq!(verify_ack(&ack, &other), None);
    for at in 0..ack.len() {
        let mut a = ack;
        a[at] ^= 0x10;
        assert_eq!(verify_ack(&a, &KEY), None, "byte {at}");
    }
    // The direction is part of the nonce: a report with an empty plaintext under the same
    // counter has another tag, so a tracker's ack cannot be replayed to it as a report.
    let report = seal(&Header { flags: FLAG_ACK, ..header(5) }, &KEY, b"");
    assert_ne!(report[HEADER_LEN..], ack[HEADER_LEN..]);
}

proptest! {
    #[test]
    fn random_datagrams_never_panic(datagram in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(header) = Header::parse(&datagram) {
            let _ = open(&datagram, &header, &KEY);
        }
        let _ = parse_report(&datagram);
        let _ = verify_ack(&datagram, &KEY);
    }

    #[test]
    fn random_plaintexts_under_a_valid_tag_never_panic(
        plaintext in prop::collection::vec(any::<u8>(), 0..(MAX_LEN - MIN_LEN)),
        counter in 1u64..,
    ) {
        let datagram = seal(&header(counter), &KEY, &plaintext);
        let parsed = Header::parse(&datagram).unwrap();
        let opened = open(&datagram, &parsed, &KEY).unwrap();
        prop_assert_eq!(&opened, &plaintext);
        let _ = parse_report(&opened);
    }

    #[test]
    fn corrupted_reports_never_panic(at in 0usize..64, byte in any::<u8>()) {
        let mut plaintext = encode_report(&report());
        let at = at % plaintext.len();
        plaintext[at] = byte;
        let _ = parse_report(&plaintext);
    }
}
