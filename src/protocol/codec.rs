//! Framing: newline-delimited frames in, JSON lines out.
//!
//! Decoding works on bytes, not `String`, so that a non-UTF-8 frame becomes an error reply
//! instead of a fatal stream error. The decoder holds two integers and no buffer of its own:
//! a server keeps one per connection. Encoding serializes a frame straight into the write
//! buffer and refuses to let that buffer grow past a cap, because nothing else applies
//! backpressure to a peer that sends but never reads.

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use serde::Serialize;

/// Why the frame stream of a connection ended in error.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A frame exceeded the configured maximum; the connection must be closed.
    #[error("frame longer than {max} bytes")]
    TooLarge {
        /// The configured maximum, in bytes.
        max: usize,
    },
    /// The socket failed.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
}

/// Splits the inbound byte stream into frames at `\n` (a trailing `\r` is kept and trimmed by
/// the connection, as are blank lines).
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    max: usize,
    /// How far the buffer has been searched for a newline, so that a frame arriving in many
    /// small reads is scanned once.
    scanned: usize,
    read_space: usize,
}

/// Free space a decoder keeps in the read buffer before each read.
const DEFAULT_READ_SPACE: usize = 128;

impl FrameDecoder {
    /// A decoder that refuses frames longer than `max_frame_bytes`.
    pub fn new(max_frame_bytes: usize) -> Self {
        Self {
            max: max_frame_bytes,
            scanned: 0,
            read_space: DEFAULT_READ_SPACE,
        }
    }

    /// Keeps at least `bytes` free in the read buffer before each read (the connection's
    /// initial read capacity).
    pub fn with_read_space(mut self, bytes: usize) -> Self {
        self.read_space = bytes;
        self
    }

    /// The length of the next complete frame at the front of `src` (without its `\n`, which
    /// follows it), if there is one. The caller consumes it and its newline; reading the
    /// frame in place costs no allocation and no reference count.
    pub fn next_frame_len(&mut self, src: &mut BytesMut) -> Result<Option<usize>, FrameError> {
        let found = src[self.scanned..].iter().position(|&b| b == b'\n');
        let len = match found {
            Some(at) => {
                let end = self.scanned + at;
                self.scanned = 0;
                if end > self.max {
                    return Err(FrameError::TooLarge { max: self.max });
                }
                Some(end)
            }
            None => {
                self.scanned = src.len();
                if src.len() > self.max {
                    return Err(FrameError::TooLarge { max: self.max });
                }
                None
            }
        };
        if len.is_none() && src.capacity() - src.len() < self.read_space {
            // Each frame consumed from the front shrinks the buffer's free space: without
            // this, a small buffer would read most heartbeats in two system calls. `reserve`
            // reclaims the consumed room in place, without allocating.
            src.reserve(self.read_space);
        }
        Ok(len)
    }

    /// `read` as one frame, if it is exactly one whole frame (ending with its `\n`, the only
    /// one in it) within the size limit: a read that needs no buffering.
    pub fn whole_frame<'a>(&self, read: &'a [u8]) -> Option<&'a [u8]> {
        let (last, frame) = read.split_last()?;
        (*last == b'\n' && frame.len() <= self.max && !frame.contains(&b'\n')).then_some(frame)
    }

    /// The next complete frame in `src` (without its `\n`), split off, if there is one.
    pub fn next_frame(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        Ok(self.next_frame_len(src)?.map(|len| {
            let mut line = src.split_to(len + 1);
            line.truncate(len);
            line.freeze()
        }))
    }

    /// At end of input: the length of the last frame, unterminated, if any bytes are left
    /// (a complete frame first, if one is there).
    pub fn last_frame_len(&mut self, src: &mut BytesMut) -> Result<Option<usize>, FrameError> {
        if let Some(len) = self.next_frame_len(src)? {
            return Ok(Some(len));
        }
        self.scanned = 0;
        Ok((!src.is_empty()).then_some(src.len()))
    }

    /// At end of input: the last frame, unterminated, if any bytes are left.
    pub fn last_frame(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if let Some(frame) = self.next_frame(src)? {
            return Ok(Some(frame));
        }
        self.scanned = 0;
        if src.is_empty() {
            return Ok(None);
        }
        Ok(Some(src.split().freeze()))
    }
}

impl Decoder for FrameDecoder {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        self.next_frame(src)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        self.last_frame(src)
    }
}

/// The write buffer of one connection holds more than the cap: its peer does not read.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// Too many unsent bytes are queued.
    #[error("peer is not reading: {queued} bytes queued, the cap is {cap}")]
    Backlog {
        /// Bytes already queued.
        queued: usize,
        /// The cap.
        cap: usize,
    },
    /// Serialization failed (cannot happen for the built-in replies).
    #[error("could not encode reply: {0}")]
    Json(#[from] serde_json::Error),
    /// The socket failed.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes each frame (a server's [`super::Reply`], a client's [`super::ClientFrame`]) as one
/// JSON line.
#[derive(Debug)]
pub struct LineEncoder {
    max_queued: usize,
}

impl LineEncoder {
    /// An encoder that fails once `max_queued` bytes wait to be sent.
    pub fn new(max_queued: usize) -> Self {
        Self { max_queued }
    }
}

impl<T: Serialize> Encoder<T> for LineEncoder {
    type Error = EncodeError;

    fn encode(&mut self, frame: T, dst: &mut BytesMut) -> Result<(), EncodeError> {
        if dst.len() > self.max_queued {
            return Err(EncodeError::Backlog {
                queued: dst.len(),
                cap: self.max_queued,
            });
        }
        serde_json::to_writer(dst.writer(), &frame)?;
        dst.put_u8(b'\n');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ErrorCode, Proj, Reply};

    #[test]
    fn splits_lines_and_keeps_partial_frames() {
        let mut dec = FrameDecoder::new(64);
        let mut buf = BytesMut::from(&b"a\r\n\nbc\nhal"[..]);
        assert_eq!(dec.decode(&mut buf).unwrap().unwrap(), &b"a\r"[..]);
        assert_eq!(dec.decode(&mut buf).unwrap().unwrap(), &b""[..]);
        assert_eq!(dec.decode(&mut buf).unwrap().unwrap(), &b"bc"[..]);
        assert!(dec.decode(&mut buf).unwrap().is_none());
        assert_eq!(dec.decode_eof(&mut buf).unwrap().unwrap(), &b"hal"[..]);
    }

    #[test]
    fn keeps_room_for_a_whole_frame_before_each_read() {
        let mut dec = FrameDecoder::new(1024).with_read_space(128);
        let mut buf = BytesMut::with_capacity(128);
        buf.extend_from_slice(&[b'x'; 99]);
        buf.extend_from_slice(b"\n");
        let frame = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(frame.len(), 99);
        drop(frame);
        // Only 28 bytes were left after the frame: the next read must see 128 free.
        assert!(dec.decode(&mut buf).unwrap().is_none());
        assert!(
            buf.capacity() - buf.len() >= 128,
            "capacity {}",
            buf.capacity()
        );
    }

    #[test]
    fn refuses_oversized_frames() {
        let mut dec = FrameDecoder::new(8);
        let mut buf = BytesMut::from(&b"0123456789abcdef\n"[..]);
        assert!(matches!(
            dec.decode(&mut buf),
            Err(FrameError::TooLarge { max: 8 })
        ));
        // Without a newline in sight, too.
        let mut dec = FrameDecoder::new(8);
        let mut buf = BytesMut::from(&b"0123456789abcdef"[..]);
        assert!(matches!(
            dec.decode(&mut buf),
            Err(FrameError::TooLarge { max: 8 })
        ));
    }

    #[test]
    fn encodes_one_line_per_reply_and_caps_the_backlog() {
        let mut enc = LineEncoder::new(40);
        let mut buf = BytesMut::new();
        let ack = Reply::Ack {
            proj: Proj::new("P").unwrap(),
            seq: Some(1),
            timeout_ms: None,
            interval_ms: None,
        };
        enc.encode(ack.clone(), &mut buf).unwrap();
        assert_eq!(&buf[..], b"{\"type\":\"ack\",\"proj\":\"P\",\"seq\":1}\n");
        enc.encode(Reply::error(ErrorCode::BadJson, "x"), &mut buf)
            .unwrap();
        assert!(matches!(
            enc.encode(ack, &mut buf),
            Err(EncodeError::Backlog { .. })
        ));
    }
}
