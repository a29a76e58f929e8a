//! A connection's outgoing bytes: frames encoded straight into one buffer, in the form the
//! transport sends them, and written with one (vectored) write per wake-up.
//!
//! The session owns its outbox: replies, refusals, PONGs and the events it takes from its
//! mailbox are encoded here as they come, and whatever is queued when the session has nothing
//! else to do leaves in one `writev`. Under load, a read that brings many requests is answered by
//! one write; when idle, each reply leaves at once. Small frames are copied into the buffer;
//! a large payload is queued as a shared slice of its own (`Bytes`, no copy) and goes out in the
//! same vectored write.
//!
//! **The wire form** ([`Wire`]): on a byte stream (TCP) each frame is preceded by its `u32`
//! length; on WebSocket each frame is one unmasked binary message (RFC 6455 §5.2), and the
//! transport's own control messages (pong, ping, close) are queued here too. Either way the
//! frame's body is the same bytes (`docs/protocol.md`).
//!
//! **The bound** (`send_queue_bytes`) is the session's to keep: it stops reading requests and
//! taking answers while the outbox holds more than that, so a client that does not read holds
//! up only itself. When the outbox empties, its buffer is released if it grew large, so an idle
//! connection keeps no write buffer.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use gateway_core::Status;
use gateway_protocol::{EncodeError, ErrorReply, Frame, FrameType, LENGTH_PREFIX_SIZE};
use tokio::io::AsyncWrite;

use crate::events::{FrameSink, Publication};

/// Payloads at least this large are not copied into the buffer but written from their own
/// memory (a vectored write).
const COPY_LIMIT: usize = 16 * 1024;

/// The longest status message relayed to a client.
pub(crate) const MAX_MESSAGE_LEN: usize = 1024;

/// Slices handed to one vectored write.
const MAX_SLICES: usize = 64;

/// An emptied buffer larger than this is released rather than kept.
const KEEP_CAPACITY: usize = 64 * 1024;

/// How frames are laid out on a transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wire {
    /// A byte stream: each frame after its `u32` length prefix.
    Stream,
    /// WebSocket: each frame one binary message.
    WebSocket,
}

/// WebSocket opcodes the gateway sends (RFC 6455 §5.2).
pub(crate) mod opcode {
    pub(crate) const BINARY: u8 = 0x2;
    pub(crate) const CLOSE: u8 = 0x8;
    pub(crate) const PING: u8 = 0x9;
    pub(crate) const PONG: u8 = 0xA;
}

/// The outgoing bytes of one connection.
#[derive(Debug)]
pub(crate) struct Outbox {
    wire: Wire,
    /// Queued segments that go out before `buf`: large payloads, and what `buf` held when one
    /// was queued.
    chunks: VecDeque<Bytes>,
    buf: BytesMut,
    /// Bytes queued in all.
    len: usize,
    /// The peer's maximum frame size: 65,536 until its HELLO states its own.
    peer_max: u32,
    /// Bytes were written since the last flush: TLS may hold them in its buffer until flushed.
    unflushed: bool,
}

impl Outbox {
    pub(crate) fn new(wire: Wire, peer_max: u32) -> Outbox {
        Outbox {
            wire,
            chunks: VecDeque::new(),
            buf: BytesMut::new(),
            len: 0,
            peer_max,
            unflushed: false,
        }
    }

    /// Records the client's maximum frame size, from its HELLO.
    pub(crate) fn set_peer_max(&mut self, max: u32) {
        self.peer_max = max;
    }

    /// Bytes queued.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Nothing is queued, and what was written has been flushed.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0 && !self.unflushed
    }

    /// Queues `frame`.
    ///
    /// # Errors
    ///
    /// When it cannot be encoded for this peer (larger than its maximum frame size, or a field
    /// too long); nothing is queued then.
    pub(crate) fn push(&mut self, frame: &Frame) -> Result<(), EncodeError> {
        if let Frame::Response(response) = frame {
            return self.response(response.request_id, &response.payload);
        }
        let len = frame.encoded_len()?;
        if len > self.peer_max as usize {
            return Err(EncodeError::FrameTooLarge { len, max: self.peer_max });
        }
        self.header(len);
        let before = self.buf.len();
        frame.encode_message(&mut self.buf, u32::MAX)?;
        self.len += self.buf.len() - before;
        Ok(())
    }

    /// Queues RESPONSE `request_id` with `payload`, without copying a large payload.
    ///
    /// # Errors
    ///
    /// As [`Outbox::push`].
    pub(crate) fn response(&mut self, request_id: u32, payload: &Bytes) -> Result<(), EncodeError> {
        let len = 2 + 4 + payload.len();
        if len > self.peer_max as usize {
            return Err(EncodeError::FrameTooLarge { len, max: self.peer_max });
        }
        self.header(len);
        self.buf.put_u8(FrameType::Response as u8);
        self.buf.put_u8(0);
        self.buf.put_u32_le(request_id);
        self.len += 6;
        self.payload(payload);
        Ok(())
    }

    /// Queues ERROR `request_id`; a status message longer than [`MAX_MESSAGE_LEN`] bytes is cut
    /// (at a character boundary): a message is for humans, and a string field holds at most
    /// 64 KiB.
    ///
    /// # Errors
    ///
    /// As [`Outbox::push`], for details too large for the peer.
    pub(crate) fn error(
        &mut self,
        request_id: u32,
        status: Status,
        details: Bytes,
    ) -> Result<(), EncodeError> {
        let status = if status.message().len() > MAX_MESSAGE_LEN {
            let message = status.message();
            let cut = (0..=MAX_MESSAGE_LEN).rev().find(|&i| message.is_char_boundary(i));
            Status::new(status.code(), message[..cut.unwrap_or(0)].to_owned())
                .with_retryable(status.retryable())
                .with_error_id(status.error_id())
        } else {
            status
        };
        self.push(&Frame::Error(ErrorReply { request_id, status, details }))
    }

    /// A WebSocket control message (pong, ping, close), queued in order with the frames.
    pub(crate) fn ws_control(&mut self, op: u8, payload: &[u8]) {
        debug_assert!(self.wire == Wire::WebSocket && payload.len() <= 125);
        self.buf.reserve(2 + payload.len());
        self.buf.put_u8(0x80 | op);
        self.buf.put_u8(payload.len() as u8);
        self.buf.put_slice(payload);
        self.len += 2 + payload.len();
    }

    /// Writes what is queued to `io` and flushes it (a no-op on TCP; TLS writes out what it
    /// buffered) until it is all sent (`Ready(Ok)`) or the socket is full (`Pending`, woken when
    /// it has room).
    ///
    /// # Errors
    ///
    /// The write error: the connection is broken.
    pub(crate) fn poll_write<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut W,
    ) -> Poll<io::Result<()>> {
        while self.len > 0 {
            let written = if self.chunks.is_empty() {
                ready!(Pin::new(&mut *io).poll_write(cx, &self.buf))?
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let mut n = 0;
                for chunk in self.chunks.iter().take(MAX_SLICES - 1) {
                    slices[n] = IoSlice::new(chunk);
                    n += 1;
                }
                if n < MAX_SLICES - 1 || self.chunks.len() == n {
                    slices[n] = IoSlice::new(&self.buf);
                    n += 1;
                }
                ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..n]))?
            };
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.unflushed = true;
            self.advance(written);
        }
        if self.unflushed {
            ready!(Pin::new(&mut *io).poll_flush(cx))?;
            self.unflushed = false;
        }
        self.release();
        Poll::Ready(Ok(()))
    }

    /// Drops `n` written bytes from the front.
    fn advance(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            match self.chunks.front_mut() {
                Some(chunk) if chunk.len() <= n => {
                    n -= chunk.len();
                    self.chunks.pop_front();
                }
                Some(chunk) => {
                    chunk.advance(n);
                    return;
                }
                None => {
                    self.buf.advance(n);
                    return;
                }
            }
        }
    }

    /// Gives the memory of an empty outbox back if it grew large (an idle connection keeps no
    /// big buffer); a small one is kept for the next replies.
    fn release(&mut self) {
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = BytesMut::new();
        } else {
            self.buf.clear();
        }
    }

    /// Drops everything queued (the connection is gone) and its memory.
    pub(crate) fn clear(&mut self) {
        self.chunks.clear();
        self.buf = BytesMut::new();
        self.len = 0;
    }

    /// The bytes before a frame body of `len` bytes.
    fn header(&mut self, len: usize) {
        self.buf.reserve(10 + len.min(COPY_LIMIT));
        let before = self.buf.len();
        match self.wire {
            // The callers checked `len` against the peer's limit, a `u32`.
            Wire::Stream => self.buf.put_u32_le(len as u32),
            Wire::WebSocket => ws_header(&mut self.buf, opcode::BINARY, len),
        }
        self.len += self.buf.len() - before;
    }

    /// Appends a payload: copied when small, queued as its own segment when large.
    fn payload(&mut self, payload: &Bytes) {
        if payload.len() < COPY_LIMIT {
            self.buf.put_slice(payload);
        } else {
            if !self.buf.is_empty() {
                self.chunks.push_back(self.buf.split().freeze());
            }
            self.chunks.push_back(payload.clone());
        }
        self.len += payload.len();
    }
}

impl FrameSink for Outbox {
    fn queued(&self) -> usize {
        self.len
    }

    /// An EVENT or EVENT_AT frame; their layouts are in `docs/protocol.md`. The end (key and
    /// payload) is the publication's, encoded once for every subscriber.
    fn event(&mut self, subscription_id: u32, event: &Publication, positioned: bool) {
        if positioned {
            self.header(event.positioned_len());
            self.buf.put_u8(FrameType::EventAt as u8);
            self.buf.put_u8(0);
            self.buf.put_u32_le(subscription_id);
            self.buf.put_u64_le(event.offset);
            self.len += 14;
        } else {
            self.header(event.frame_size() - LENGTH_PREFIX_SIZE);
            self.buf.put_u8(FrameType::Event as u8);
            self.buf.put_u8(0);
            self.buf.put_u32_le(subscription_id);
            self.len += 6;
        }
        self.payload(&event.tail);
    }

    fn control(&mut self, frame: &Frame) {
        // Control frames here are SUBSCRIBED, MISSED and SUBSCRIPTION_ENDED, far below any
        // peer's limit (64 KiB at least), with messages the gateway wrote.
        let _ = self.push(frame);
    }
}

/// A WebSocket frame header, unmasked (server to client), FIN set, for a payload of `len`.
pub(crate) fn ws_header(dst: &mut BytesMut, op: u8, len: usize) {
    dst.put_u8(0x80 | op);
    match len {
        0..=125 => dst.put_u8(len as u8),
        126..=0xffff => {
            dst.put_u8(126);
            dst.put_u16(len as u16);
        }
        _ => {
            dst.put_u8(127);
            dst.put_u64(len as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use gateway_protocol::{DEFAULT_MAX_FRAME_SIZE, Decoded, Response, decode, decode_message};

    use super::*;

    /// Records every write call's bytes; takes at most `room` bytes per call.
    struct Sink {
        writes: Vec<Vec<u8>>,
        room: usize,
    }

    impl AsyncWrite for Sink {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.room);
            self.writes.push(buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            all.truncate(self.room);
            let n = all.len();
            self.writes.push(all);
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn flush(outbox: &mut Outbox, room: usize) -> Vec<u8> {
        let mut sink = Sink { writes: Vec::new(), room };
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(matches!(outbox.poll_write(&mut cx, &mut sink), Poll::Ready(Ok(()))));
        assert!(outbox.is_empty());
        sink.writes.concat()
    }

    fn response(id: u32, len: usize) -> Frame {
        Frame::Response(Response { request_id: id, payload: Bytes::from(vec![id as u8; len]) })
    }

    #[test]
    fn frames_leave_in_order_in_one_write_with_large_payloads_uncopied() {
        let mut outbox = Outbox::new(Wire::Stream, DEFAULT_MAX_FRAME_SIZE);
        let big = response(2, COPY_LIMIT * 2);
        for frame in [response(1, 10), big.clone(), response(3, 5), Frame::Ping { data: 9 }] {
            outbox.push(&frame).unwrap();
        }
        let Frame::Response(r) = &big else { unreachable!() };
        assert!(
            outbox.chunks.iter().any(|c| c.as_ptr() == r.payload.as_ptr()),
            "the large payload is queued as it is"
        );
        let mut sink = Sink { writes: Vec::new(), room: usize::MAX };
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(matches!(outbox.poll_write(&mut cx, &mut sink), Poll::Ready(Ok(()))));
        assert_eq!(sink.writes.len(), 1, "one write for all of it");
        let mut bytes = BytesMut::from(&sink.writes[0][..]);
        for frame in [response(1, 10), big, response(3, 5), Frame::Ping { data: 9 }] {
            assert_eq!(decode(&mut bytes, DEFAULT_MAX_FRAME_SIZE).unwrap(), Decoded::Frame(frame));
        }
        assert!(bytes.is_empty());
    }

    #[test]
    fn partial_writes_resume_where_they_stopped() {
        let mut outbox = Outbox::new(Wire::Stream, DEFAULT_MAX_FRAME_SIZE);
        let frames = [response(1, 100), response(2, COPY_LIMIT + 7), response(3, 3)];
        for frame in &frames {
            outbox.push(frame).unwrap();
        }
        let mut bytes = BytesMut::from(&flush(&mut outbox, 33)[..]);
        for frame in frames {
            assert_eq!(decode(&mut bytes, DEFAULT_MAX_FRAME_SIZE).unwrap(), Decoded::Frame(frame));
        }
    }

    #[test]
    fn websocket_frames_are_binary_messages_without_a_prefix() {
        let mut outbox = Outbox::new(Wire::WebSocket, DEFAULT_MAX_FRAME_SIZE);
        for len in [3, 200, 70_000] {
            outbox.push(&response(7, len)).unwrap();
        }
        outbox.ws_control(opcode::PONG, b"hi");
        let mut bytes = Bytes::from(flush(&mut outbox, usize::MAX));
        for len in [3usize, 200, 70_000] {
            let body = 6 + len;
            assert_eq!(bytes.get_u8(), 0x82);
            let announced = match bytes.get_u8() {
                126 => usize::from(bytes.get_u16()),
                127 => bytes.get_u64() as usize,
                short => usize::from(short),
            };
            assert_eq!(announced, body);
            let message = bytes.split_to(body);
            assert_eq!(decode_message(message).unwrap(), Some(response(7, len)));
        }
        assert_eq!(&bytes[..], &[0x8A, 2, b'h', b'i']);
    }

    #[test]
    fn long_messages_are_cut_at_a_char_boundary_and_keep_the_rest() {
        let mut outbox = Outbox::new(Wire::Stream, DEFAULT_MAX_FRAME_SIZE);
        let long = "é".repeat(MAX_MESSAGE_LEN);
        let status = Status::not_found(long).with_error_id(9).with_retryable(true);
        outbox.error(3, status, Bytes::from_static(b"d")).unwrap();
        let mut bytes = BytesMut::from(&flush(&mut outbox, usize::MAX)[..]);
        let Decoded::Frame(Frame::Error(e)) = decode(&mut bytes, DEFAULT_MAX_FRAME_SIZE).unwrap()
        else {
            panic!("not an error frame")
        };
        assert_eq!(e.status.message().len(), MAX_MESSAGE_LEN);
        assert_eq!((e.status.error_id(), e.status.retryable()), (9, true));
        assert_eq!(e.details, Bytes::from_static(b"d"));
    }

    #[test]
    fn frames_too_large_for_the_peer_are_refused_and_nothing_is_queued() {
        let mut outbox = Outbox::new(Wire::Stream, 65_536);
        assert!(matches!(
            outbox.push(&response(1, 70_000)),
            Err(EncodeError::FrameTooLarge { .. })
        ));
        assert!(outbox.is_empty());
    }
}
