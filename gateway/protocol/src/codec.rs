//! [`FrameCodec`]: frames over a byte stream (TCP), for `tokio_util::codec::Framed` and its
//! halves `FramedRead` / `FramedWrite`.

use std::{fmt, io};

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::decode::{DecodeError, Decoded, decode};
use crate::encode::EncodeError;
use crate::frame::{DEFAULT_MAX_FRAME_SIZE, Frame, MIN_MAX_FRAME_SIZE};

/// Decodes and encodes frames in their length-prefixed form, each direction with its own limit.
///
/// Frames of unknown types flagged ignorable are skipped by the decoder: a reader of a
/// `FramedRead` only ever sees frames it knows.
#[derive(Clone, Debug)]
pub struct FrameCodec {
    max_recv: u32,
    max_send: u32,
}

impl FrameCodec {
    /// A codec accepting frames up to `max_recv` bytes, and sending frames up to
    /// [`MIN_MAX_FRAME_SIZE`] until [`FrameCodec::set_peer_max_frame_size`] is told the peer's
    /// limit: the smallest limit any peer may state, so that frames sent before the handshake
    /// completes (HELLO, WELCOME, GOAWAY) are never too large.
    pub fn new(max_recv: u32) -> FrameCodec {
        FrameCodec { max_recv, max_send: MIN_MAX_FRAME_SIZE }
    }

    /// Records the peer's maximum frame size, from its HELLO or WELCOME.
    pub fn set_peer_max_frame_size(&mut self, max_send: u32) {
        self.max_send = max_send;
    }

    /// Changes the largest frame this side accepts: a server reads HELLO under
    /// [`MIN_MAX_FRAME_SIZE`] (the most a client may send before WELCOME) and raises the limit to
    /// the one WELCOME states once the client is authenticated.
    pub fn set_max_frame_size(&mut self, max_recv: u32) {
        self.max_recv = max_recv;
    }

    /// The largest frame this side accepts.
    pub fn max_frame_size(&self) -> u32 {
        self.max_recv
    }

    /// The largest frame this side sends.
    pub fn peer_max_frame_size(&self) -> u32 {
        self.max_send
    }
}

impl Default for FrameCodec {
    /// Accepts frames up to [`DEFAULT_MAX_FRAME_SIZE`].
    fn default() -> FrameCodec {
        FrameCodec::new(DEFAULT_MAX_FRAME_SIZE)
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        loop {
            match decode(src, self.max_recv)? {
                Decoded::Frame(frame) => return Ok(Some(frame)),
                Decoded::Skipped { .. } => continue,
                Decoded::Incomplete { needed } => {
                    // One allocation for the rest of the frame rather than a few doublings; the
                    // limit was checked, so `needed` is bounded by it.
                    src.reserve(needed);
                    return Ok(None);
                }
            }
        }
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), CodecError> {
        frame.encode(dst, self.max_send)?;
        Ok(())
    }
}

/// What can go wrong reading or writing a framed stream.
#[derive(Debug)]
pub enum CodecError {
    /// The stream failed.
    Io(io::Error),
    /// The peer sent something that is not a valid frame; the connection ends with a GOAWAY
    /// whose reason is [`DecodeError::goaway_reason`].
    Decode(DecodeError),
    /// This side tried to send a frame it cannot encode.
    Encode(EncodeError),
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Io(e) => write!(f, "i/o error: {e}"),
            CodecError::Decode(e) => write!(f, "invalid frame: {e}"),
            CodecError::Encode(e) => write!(f, "cannot encode frame: {e}"),
        }
    }
}

impl std::error::Error for CodecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CodecError::Io(e) => Some(e),
            CodecError::Decode(e) => Some(e),
            CodecError::Encode(e) => Some(e),
        }
    }
}

impl From<io::Error> for CodecError {
    fn from(e: io::Error) -> CodecError {
        CodecError::Io(e)
    }
}

impl From<DecodeError> for CodecError {
    fn from(e: DecodeError) -> CodecError {
        CodecError::Decode(e)
    }
}

impl From<EncodeError> for CodecError {
    fn from(e: EncodeError) -> CodecError {
        CodecError::Encode(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_ignorable_frames_and_waits_for_partial_ones() {
        let mut codec = FrameCodec::default();
        let mut src = BytesMut::new();
        // An ignorable frame of unassigned type 0x7f with 2 bytes of content, then a PING split
        // in two reads.
        src.extend_from_slice(&[4, 0, 0, 0, 0x7f, 0x80, 0xaa, 0xbb]);
        let mut ping = BytesMut::new();
        Frame::Ping { data: 9 }.encode(&mut ping, u32::MAX).unwrap();
        src.extend_from_slice(&ping[..7]);
        assert!(codec.decode(&mut src).unwrap().is_none());
        assert_eq!(src.len(), 7, "the skipped frame is consumed, the partial one kept");
        assert!(src.capacity() >= 14);
        src.extend_from_slice(&ping[7..]);
        assert_eq!(codec.decode(&mut src).unwrap(), Some(Frame::Ping { data: 9 }));
        assert!(src.is_empty());
    }

    #[test]
    fn each_direction_has_its_own_limit() {
        let mut codec = FrameCodec::new(16);
        let mut src = BytesMut::from(&[17u8, 0, 0, 0][..]);
        let err = codec.decode(&mut src).unwrap_err();
        assert!(matches!(err, CodecError::Decode(DecodeError::FrameTooLarge { len: 17, max: 16 })));

        let big = Frame::Response(crate::frame::Response {
            request_id: 1,
            payload: vec![0; MIN_MAX_FRAME_SIZE as usize].into(),
        });
        let mut dst = BytesMut::new();
        let err = codec.encode(big.clone(), &mut dst).unwrap_err();
        assert!(matches!(err, CodecError::Encode(EncodeError::FrameTooLarge { .. })));
        codec.set_peer_max_frame_size(DEFAULT_MAX_FRAME_SIZE);
        codec.encode(big, &mut dst).unwrap();
        assert_eq!(dst.len(), 4 + 6 + MIN_MAX_FRAME_SIZE as usize);
    }
}
