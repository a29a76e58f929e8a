//! The baseline: a raw length-framed TCP echo, the limit of this transport with zero work per
//! frame.
//!
//! It reads `u32` little-endian length-prefixed frames (the protocol's TCP framing) and writes
//! each back unchanged. Like the gateway it coalesces writes: it reads what is available and
//! writes every complete frame of that read in one write. It parses nothing but the lengths.

use std::io;

use bytes::BytesMut;
use gateway_protocol::{DEFAULT_MAX_FRAME_SIZE, LENGTH_PREFIX_SIZE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// The read buffer's starting capacity.
const READ_BUFFER: usize = 64 * 1024;

/// Accepts connections on `listener` and echoes their frames until `shutdown` is cancelled.
/// Connections run in their own tasks and end when their peer closes.
///
/// # Errors
///
/// The listener failing to accept.
pub async fn serve(listener: TcpListener, shutdown: CancellationToken) -> io::Result<()> {
    loop {
        let (stream, _) = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => accepted?,
        };
        // A connection's failure (typically the load generator resetting it at the end of a run)
        // concerns only that connection.
        tokio::spawn(async move {
            let _ = echo(stream).await;
        });
    }
}

/// Echoes one connection's frames until it closes.
async fn echo(mut stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
        let complete = complete_frames(&buf)?;
        if complete > 0 {
            let frames = buf.split_to(complete);
            stream.write_all(&frames).await?;
        }
    }
}

/// The length of the complete frames at the front of `buf`, prefixes included.
///
/// # Errors
///
/// `InvalidData` for a frame larger than the protocol's default maximum (16 MiB), which would
/// otherwise make the buffer grow without bound.
fn complete_frames(buf: &[u8]) -> io::Result<usize> {
    let mut at = 0;
    while let Some(prefix) = buf.get(at..at + LENGTH_PREFIX_SIZE) {
        let len = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        if len > DEFAULT_MAX_FRAME_SIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "frame of {len} bytes is larger than the maximum of {DEFAULT_MAX_FRAME_SIZE}"
                ),
            ));
        }
        let end = at + LENGTH_PREFIX_SIZE + len as usize;
        if end > buf.len() {
            break;
        }
        at = end;
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as u32).to_le_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn only_whole_frames_are_counted() {
        let mut buf = frame(b"abc");
        buf.extend(frame(b""));
        let whole = buf.len();
        buf.extend(&frame(b"defgh")[..6]);
        assert_eq!(complete_frames(&buf).unwrap(), whole);
        assert_eq!(complete_frames(&buf[..2]).unwrap(), 0);
        assert_eq!(complete_frames(&[]).unwrap(), 0);
    }

    #[test]
    fn a_frame_over_the_maximum_is_refused_before_it_is_buffered() {
        let buf = (DEFAULT_MAX_FRAME_SIZE + 1).to_le_bytes();
        let err = complete_frames(&buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
