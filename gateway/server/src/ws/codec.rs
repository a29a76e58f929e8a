//! Reading WebSocket frames sent by a client (RFC 6455 §5), without copying their payloads: each
//! frame is unmasked in the read buffer and split off it, and a binary message becomes a
//! protocol frame ([`decode_message`]). Messages may be fragmented (reassembled here, within
//! the size limit) and interleaved with control frames (pings are answered through the outbox).

use bytes::{Buf, Bytes, BytesMut};
use gateway_protocol::{Frame, GoawayReason, MIN_MAX_FRAME_SIZE, decode_message};

use crate::outbox::{Outbox, opcode};

/// What reading found, beyond a protocol frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The client sent a close frame: its code and reason, to be echoed (RFC 6455 §5.5.1).
    /// Empty when it had none.
    Closed(Bytes),
    /// The client broke the rules: the GOAWAY to send and the close code to close with.
    Broken { reason: GoawayReason, message: String, code: u16 },
}

/// Close codes (RFC 6455 §7.4.1) the codec picks.
pub(crate) mod code {
    pub(crate) const PROTOCOL: u16 = 1002;
    pub(crate) const UNSUPPORTED: u16 = 1003;
    pub(crate) const INVALID_DATA: u16 = 1007;
    pub(crate) const TOO_BIG: u16 = 1009;
}

/// A client's stream of WebSocket frames.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    /// The start of a fragmented binary message.
    fragments: Option<BytesMut>,
    /// WELCOME is sent: the limit is no longer HELLO's.
    welcomed: bool,
}

fn broken(reason: GoawayReason, message: impl Into<String>, code: u16) -> Stop {
    Stop::Broken { reason, message: message.into(), code }
}

impl Reader {
    pub(crate) fn welcomed(&mut self) {
        self.welcomed = true;
    }

    /// Takes the next protocol frame out of `buf`: `Ok(None)` when it holds no whole message yet
    /// (room is reserved for the rest of the frame being read). Pings are answered into `out`,
    /// pongs and unknown ignorable frame types skipped. A message larger than `max` is refused
    /// from its frame header, before it is read.
    pub(crate) fn next(
        &mut self,
        buf: &mut BytesMut,
        max: u32,
        out: &mut Outbox,
    ) -> Result<Option<Frame>, Stop> {
        loop {
            let Some(header) = Header::parse(buf)? else {
                buf.reserve(14);
                return Ok(None);
            };
            let so_far = self.fragments.as_ref().map_or(0, BytesMut::len) as u64;
            if header.op < 0x8 && so_far + header.len > u64::from(max) {
                return Err(self.too_large(so_far + header.len, max));
            }
            let total = header.size + header.len as usize;
            if buf.len() < total {
                buf.reserve(total - buf.len());
                return Ok(None);
            }
            buf.advance(header.size);
            let mut payload = buf.split_to(header.len as usize);
            unmask(&mut payload, header.mask);
            match header.op {
                opcode::PING => out.ws_control(opcode::PONG, &payload),
                opcode::PONG => {}
                opcode::CLOSE => {
                    if payload.len() == 1 {
                        let message = "a close frame of 1 byte (a code takes 2)";
                        return Err(broken(GoawayReason::PROTOCOL_ERROR, message, code::PROTOCOL));
                    }
                    return Err(Stop::Closed(payload.freeze()));
                }
                0x1 => {
                    let (message, code) = match std::str::from_utf8(&payload) {
                        Ok(_) => {
                            ("a text message: frames go in binary messages", code::UNSUPPORTED)
                        }
                        Err(_) => (
                            "a text message, and not even UTF-8: frames go in binary messages",
                            code::INVALID_DATA,
                        ),
                    };
                    return Err(broken(GoawayReason::PROTOCOL_ERROR, message, code));
                }
                0x2 | 0x0 => {
                    let message = match (header.op, self.fragments.take(), header.fin) {
                        (0x2, None, true) => payload,
                        (0x2, None, false) => {
                            self.fragments = Some(payload);
                            continue;
                        }
                        (0x0, Some(mut start), fin) => {
                            start.extend_from_slice(&payload);
                            if !fin {
                                self.fragments = Some(start);
                                continue;
                            }
                            start
                        }
                        (0x2, Some(_), _) => {
                            let message = "a new message before the last one's final fragment";
                            return Err(broken(
                                GoawayReason::PROTOCOL_ERROR,
                                message,
                                code::PROTOCOL,
                            ));
                        }
                        _ => {
                            let message = "a continuation frame outside a fragmented message";
                            return Err(broken(
                                GoawayReason::PROTOCOL_ERROR,
                                message,
                                code::PROTOCOL,
                            ));
                        }
                    };
                    match decode_message(message.freeze()) {
                        Ok(Some(frame)) => return Ok(Some(frame)),
                        // An unknown frame type flagged ignorable.
                        Ok(None) => {}
                        Err(e) => {
                            return Err(broken(
                                e.goaway_reason(),
                                e.to_string(),
                                close_code(e.goaway_reason()),
                            ));
                        }
                    }
                }
                op => {
                    let message = format!("WebSocket protocol error: unknown opcode {op:#x}");
                    return Err(broken(GoawayReason::PROTOCOL_ERROR, message, code::PROTOCOL));
                }
            }
        }
    }

    fn too_large(&self, len: u64, max: u32) -> Stop {
        let message = if self.welcomed {
            format!("message of {len} bytes is larger than the maximum frame size of {max}")
        } else {
            format!(
                "a message of {len} bytes before WELCOME: HELLO may be at most \
                 {MIN_MAX_FRAME_SIZE} bytes"
            )
        };
        broken(GoawayReason::FRAME_TOO_LARGE, message, code::TOO_BIG)
    }
}

/// The close code that goes with a GOAWAY reason (the table in `docs/protocol.md`,
/// "Transports").
pub(crate) fn close_code(reason: GoawayReason) -> u16 {
    match reason {
        GoawayReason::SHUTTING_DOWN => 1001,
        GoawayReason::IDLE_TIMEOUT | GoawayReason::DONE => 1000,
        GoawayReason::PROTOCOL_ERROR | GoawayReason::UNSUPPORTED_VERSION => code::PROTOCOL,
        GoawayReason::FRAME_TOO_LARGE => code::TOO_BIG,
        GoawayReason::TOO_MANY_CONNECTIONS | GoawayReason::SLOW_CONSUMER => 1013,
        // unauthenticated, token_expired, policy, handshake_timeout, and any later reason.
        _ => 1008,
    }
}

/// A frame header.
#[derive(Debug)]
struct Header {
    fin: bool,
    op: u8,
    /// The header's size in bytes.
    size: usize,
    len: u64,
    mask: [u8; 4],
}

impl Header {
    /// The header at the front of `buf`, `None` until all of it is there.
    fn parse(buf: &[u8]) -> Result<Option<Header>, Stop> {
        let [b0, b1, ..] = *buf else { return Ok(None) };
        let (fin, op) = (b0 & 0x80 != 0, b0 & 0x0f);
        if b0 & 0x70 != 0 {
            let message = "WebSocket protocol error: reserved bits set (no extension is in use)";
            return Err(broken(GoawayReason::PROTOCOL_ERROR, message, code::PROTOCOL));
        }
        if b1 & 0x80 == 0 {
            let message = "WebSocket protocol error: a client's frames must be masked";
            return Err(broken(GoawayReason::PROTOCOL_ERROR, message, code::PROTOCOL));
        }
        let extra = match b1 & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let size = 2 + extra + 4;
        if buf.len() < size {
            return Ok(None);
        }
        let len = match extra {
            0 => u64::from(b1 & 0x7f),
            2 => u64::from(u16::from_be_bytes([buf[2], buf[3]])),
            _ => u64::from_be_bytes(buf[2..10].try_into().unwrap_or_default()),
        };
        if len >> 63 != 0 {
            let message = "WebSocket protocol error: a length with its top bit set";
            return Err(broken(GoawayReason::PROTOCOL_ERROR, message, code::PROTOCOL));
        }
        if op >= 0x8 && (!fin || len > 125) {
            let message = "WebSocket protocol error: a control frame fragmented or over 125 bytes";
            return Err(broken(GoawayReason::PROTOCOL_ERROR, message, code::PROTOCOL));
        }
        let mask = buf[size - 4..size].try_into().unwrap_or_default();
        Ok(Some(Header { fin, op, size, len, mask }))
    }
}

/// XORs `data` with the repeating 4-byte `mask`, 8 bytes at a time.
fn unmask(data: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes(chunk.try_into().unwrap_or_default()) ^ wide;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use gateway_protocol::{DEFAULT_MAX_FRAME_SIZE, Request};

    use super::*;
    use crate::outbox::Wire;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A client frame: FIN as given, opcode `op`, masked with [`MASK`].
    fn frame(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![if fin { 0x80 } else { 0 } | op];
        match payload.len() {
            n @ 0..=125 => f.push(0x80 | n as u8),
            n @ 126..=0xffff => {
                f.push(0x80 | 126);
                f.extend((n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend((n as u64).to_be_bytes());
            }
        }
        f.extend(MASK);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        f
    }

    fn request(len: usize) -> (Frame, Vec<u8>) {
        let frame = Frame::Request(Request {
            request_id: 7,
            method_id: 9,
            timeout_ms: 0,
            fire_and_forget: false,
            payload: Bytes::from(vec![0xab; len]),
        });
        let mut body = BytesMut::new();
        frame.encode_message(&mut body, DEFAULT_MAX_FRAME_SIZE).unwrap();
        (frame, body.to_vec())
    }

    fn outbox() -> Outbox {
        Outbox::new(Wire::WebSocket, DEFAULT_MAX_FRAME_SIZE)
    }

    #[test]
    fn messages_of_every_length_form_are_read_across_any_split() {
        for len in [0, 100, 1_000, 70_000] {
            let (frame, body) = request(len);
            let wire = frame_bytes(&body);
            for split in [1, 2, 7, wire.len() / 2, wire.len()] {
                let mut reader = Reader::default();
                let mut buf = BytesMut::new();
                let mut out = outbox();
                buf.extend_from_slice(&wire[..split]);
                let first = reader.next(&mut buf, DEFAULT_MAX_FRAME_SIZE, &mut out).unwrap();
                let got = match first {
                    Some(got) => got,
                    None => {
                        buf.extend_from_slice(&wire[split..]);
                        reader.next(&mut buf, DEFAULT_MAX_FRAME_SIZE, &mut out).unwrap().unwrap()
                    }
                };
                assert_eq!(got, frame, "len {len}, split {split}");
                assert!(buf.is_empty());
            }
        }
    }

    fn frame_bytes(body: &[u8]) -> Vec<u8> {
        frame(true, 0x2, body)
    }

    #[test]
    fn fragments_are_reassembled_and_pings_between_them_answered() {
        let (frame_in, body) = request(300);
        let mut wire = frame(false, 0x2, &body[..100]);
        wire.extend(frame(true, opcode::PING, b"ping!"));
        wire.extend(frame(false, 0x0, &body[100..250]));
        wire.extend(frame(true, 0x0, &body[250..]));
        let mut buf = BytesMut::from(&wire[..]);
        let mut out = outbox();
        let got = Reader::default().next(&mut buf, DEFAULT_MAX_FRAME_SIZE, &mut out).unwrap();
        assert_eq!(got, Some(frame_in));
        assert_eq!(out.len(), 2 + 5, "the pong is queued");
    }

    #[test]
    fn oversized_messages_are_refused_from_the_header_with_1009() {
        let mut reader = Reader::default();
        let mut header = frame(true, 0x2, &[]);
        header[1] = 0x80 | 127;
        header.splice(2..2, (5_000_000u64).to_be_bytes());
        let mut buf = BytesMut::from(&header[..]);
        let err = reader.next(&mut buf, MIN_MAX_FRAME_SIZE, &mut outbox()).unwrap_err();
        let Stop::Broken { reason, message, code } = err else { panic!("{err:?}") };
        assert_eq!((reason, code), (GoawayReason::FRAME_TOO_LARGE, code::TOO_BIG));
        assert!(message.contains("5000000 bytes before WELCOME"), "{message}");

        reader.welcomed();
        let (_, body) = request(100);
        let mut buf = BytesMut::from(&frame(false, 0x2, &body)[..]);
        buf.extend_from_slice(&frame(true, 0x0, &[0; 200])[..]);
        let err = reader.next(&mut buf, 250, &mut outbox()).unwrap_err();
        assert!(
            matches!(err, Stop::Broken { code: code::TOO_BIG, .. }),
            "fragments add up: {err:?}"
        );
    }

    #[test]
    fn text_unmasked_reserved_and_unknown_frames_are_protocol_errors() {
        let cases: [(Vec<u8>, u16, &str); 5] = [
            (frame(true, 0x1, b"{\"a\": 1}"), code::UNSUPPORTED, "text message"),
            (frame(true, 0x1, &[0xff, 0xfe]), code::INVALID_DATA, "not even UTF-8"),
            (vec![0x82, 0x01, 0x00], code::PROTOCOL, "masked"),
            (
                {
                    let mut f = frame(true, 0x2, b"x");
                    f[0] |= 0x40;
                    f
                },
                code::PROTOCOL,
                "reserved",
            ),
            (frame(true, 0x3, b"x"), code::PROTOCOL, "opcode"),
        ];
        for (wire, want, text) in cases {
            let mut buf = BytesMut::from(&wire[..]);
            let err = Reader::default().next(&mut buf, DEFAULT_MAX_FRAME_SIZE, &mut outbox());
            let Err(Stop::Broken { code, message, .. }) = err else { panic!("{err:?}") };
            assert_eq!(code, want, "{message}");
            assert!(message.contains(text), "{message}");
        }
    }

    #[test]
    fn a_close_frame_is_handed_back_for_its_echo() {
        let mut buf = BytesMut::from(&frame(true, opcode::CLOSE, &[0x03, 0xe8, b'o', b'k'])[..]);
        let got = Reader::default().next(&mut buf, DEFAULT_MAX_FRAME_SIZE, &mut outbox());
        assert_eq!(got, Err(Stop::Closed(Bytes::from_static(&[0x03, 0xe8, b'o', b'k']))));
        let mut buf = BytesMut::from(&frame(true, opcode::CLOSE, &[])[..]);
        let got = Reader::default().next(&mut buf, DEFAULT_MAX_FRAME_SIZE, &mut outbox());
        assert_eq!(got, Err(Stop::Closed(Bytes::new())));
    }

    #[test]
    fn unmasking_is_its_own_inverse_at_every_length() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len as u8).collect();
            let mut masked = data.clone();
            unmask(&mut masked, MASK);
            let expected: Vec<u8> = data.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]).collect();
            assert_eq!(masked, expected);
            unmask(&mut masked, MASK);
            assert_eq!(masked, data);
        }
    }

    #[test]
    fn each_goaway_reason_has_its_close_code() {
        assert_eq!(close_code(GoawayReason::SHUTTING_DOWN), 1001);
        assert_eq!(close_code(GoawayReason::IDLE_TIMEOUT), 1000);
        assert_eq!(close_code(GoawayReason::DONE), 1000);
        assert_eq!(close_code(GoawayReason::PROTOCOL_ERROR), 1002);
        assert_eq!(close_code(GoawayReason::UNSUPPORTED_VERSION), 1002);
        assert_eq!(close_code(GoawayReason::FRAME_TOO_LARGE), 1009);
        for reason in [
            GoawayReason::UNAUTHENTICATED,
            GoawayReason::TOKEN_EXPIRED,
            GoawayReason::POLICY,
            GoawayReason::HANDSHAKE_TIMEOUT,
        ] {
            assert_eq!(close_code(reason), 1008, "{reason}");
        }
        assert_eq!(close_code(GoawayReason::TOO_MANY_CONNECTIONS), 1013);
        assert_eq!(close_code(GoawayReason::SLOW_CONSUMER), 1013);
    }
}
