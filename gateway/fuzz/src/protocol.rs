//! Frames (docs/protocol.md): the message form a WebSocket carries and the length-prefixed
//! stream a TCP connection carries.

use bytes::{Bytes, BytesMut};
use gateway_protocol::{DecodeError, Decoded, Frame, decode, decode_message};

/// One frame in message form. A frame the decoder accepts encodes again, and the encoding
/// decodes to the same frame (the decoder's lenient forms, fields left off at the end, need not
/// give the same bytes).
pub fn frame(data: &[u8]) {
    let Ok(Some(frame)) = decode_message(Bytes::copy_from_slice(data)) else { return };
    let mut bytes = BytesMut::new();
    frame.encode_message(&mut bytes, u32::MAX).expect("a decoded frame encodes");
    let again = decode_message(bytes.freeze()).expect("an encoded frame decodes");
    assert_eq!(again, Some(frame), "a frame changed through encoding");
}

/// A TCP connection's bytes: the first byte is the largest frame accepted (its top 3 bits) and
/// the size of the reads (the rest); the stream read in reads of that size must give what it
/// gives when read whole. Whatever the reads, the decoder never asks for more than the frame
/// needs.
pub fn frame_stream(data: &[u8]) {
    let Some((&head, stream)) = data.split_first() else { return };
    let max = [16, 64, 256, 1024, 4096, 65_536, 1 << 20, u32::MAX][usize::from(head >> 5)];
    let read = usize::from(head & 31) + 1;
    let whole = read_stream(stream, max, stream.len().max(1));
    let split = read_stream(stream, max, read);
    assert_eq!(whole, split, "the same stream read {read} bytes at a time read otherwise");
}

/// What the decoder yields for `stream` arriving `read` bytes at a time: frames, skipped frame
/// types, and the error that ends it if any.
fn read_stream(
    stream: &[u8],
    max: u32,
    read: usize,
) -> Vec<Result<Result<Frame, u8>, DecodeError>> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in stream.chunks(read) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            match decode(&mut buf, max) {
                Ok(Decoded::Frame(frame)) => out.push(Ok(Ok(frame))),
                Ok(Decoded::Skipped { frame_type }) => out.push(Ok(Err(frame_type))),
                Ok(Decoded::Incomplete { needed }) => {
                    assert_eq!(buf.len(), before, "an incomplete frame took bytes");
                    assert!(needed > 0, "incomplete, needing nothing");
                    let prefix_and_body = needed as u64 + before as u64;
                    assert!(prefix_and_body <= u64::from(max) + 4, "waiting past the limit");
                    break;
                }
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }
    out
}
