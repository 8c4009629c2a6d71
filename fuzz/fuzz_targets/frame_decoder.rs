//! The inbound framing: arbitrary bytes, cut into arbitrary read sizes, through the real
//! `FrameDecoder`, driven twice: by hand (`decode` after every read, `decode_eof` at the end)
//! and inside tokio-util's `FramedRead`, as the client reads a socket (the server reads frames in place with the same decoder).
//!
//! Input layout (so that seed files stay readable: three header bytes, then the stream):
//! - byte 0: the frame limit, `1 + byte` (1 ..= 256), small so that oversize paths are hit;
//! - byte 1: the decoder's read space and the reader's initial capacity (0 ..= 255);
//! - byte 2: the seed of the read sizes (low 6 bits: the largest read; bit 7: a `Pending`
//!   before every read);
//! - the rest: the byte stream the peer sends, then EOF.
//!
//! Both drives must agree with a model that needs no buffering: split the stream at every
//! `\n`; frames come out in order, each without its `\n`, until the first frame (or final
//! unterminated tail) longer than the limit, which is a `TooLarge` error after which the
//! session reads nothing more; a tail that fits is the last frame at EOF. The result must not
//! depend on how the stream was cut.

#![no_main]

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use heartwatch::protocol::{FrameDecoder, FrameError};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::codec::{Decoder, FramedRead};

/// What a session receives: its frames, and whether the stream ended in `TooLarge`.
#[derive(Debug, PartialEq, Eq)]
struct Outcome<'a> {
    frames: Vec<&'a [u8]>,
    too_large: bool,
}

fn model(stream: &[u8], max: usize) -> Outcome<'_> {
    let mut frames = Vec::new();
    let mut rest = stream;
    loop {
        match rest.iter().position(|&b| b == b'\n') {
            Some(end) if end > max => {
                break Outcome {
                    frames,
                    too_large: true,
                }
            }
            Some(end) => {
                frames.push(&rest[..end]);
                rest = &rest[end + 1..];
            }
            None if rest.len() > max => {
                break Outcome {
                    frames,
                    too_large: true,
                }
            }
            None => {
                if !rest.is_empty() {
                    frames.push(rest);
                }
                break Outcome {
                    frames,
                    too_large: false,
                };
            }
        }
    }
}

/// Read sizes from the seed: a small deterministic generator, 1 ..= `largest` bytes each.
struct ReadSizes {
    state: u32,
    largest: u32,
}

impl ReadSizes {
    fn new(seed: u8) -> Self {
        Self {
            state: u32::from(seed).wrapping_mul(2_654_435_761) | 1,
            largest: u32::from(seed & 0x3f) + 1,
        }
    }

    fn next_size(&mut self) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        (self.state % self.largest + 1) as usize
    }
}

/// A socket that delivers `data` in reads of the seeded sizes, optionally with a `Pending`
/// before each one, then EOF.
struct ChunkedReader<'a> {
    data: &'a [u8],
    sizes: ReadSizes,
    pend: bool,
    pended: bool,
}

impl AsyncRead for ChunkedReader<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pend && !this.pended && !this.data.is_empty() {
            // No waker to wake: the driver below polls again at once.
            this.pended = true;
            return Poll::Pending;
        }
        this.pended = false;
        let n = this
            .sizes
            .next_size()
            .min(this.data.len())
            .min(buf.remaining());
        buf.put_slice(&this.data[..n]);
        this.data = &this.data[n..];
        Poll::Ready(Ok(()))
    }
}

fn check_frame(frame: &[u8], max: usize) {
    assert!(frame.len() <= max, "frame of {} bytes > {max}", frame.len());
    assert!(!frame.contains(&b'\n'), "frame contains the delimiter");
}

/// `decode` after each read, `decode_eof` at EOF, stop at the first error.
fn by_hand(stream: &[u8], max: usize, space: usize, seed: u8) -> Vec<Result<Bytes, usize>> {
    let mut decoder = FrameDecoder::new(max).with_read_space(space);
    let mut buf = BytesMut::with_capacity(space);
    let mut out = Vec::new();
    let mut sizes = ReadSizes::new(seed);
    let mut rest = stream;
    while !rest.is_empty() {
        let n = sizes.next_size().min(rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => out.push(Ok(frame)),
                Ok(None) => {
                    assert!(
                        buf.capacity() - buf.len() >= space,
                        "decode left {} bytes free, read space is {space}",
                        buf.capacity() - buf.len()
                    );
                    break;
                }
                Err(e) => {
                    out.push(Err(too_large(e)));
                    return out;
                }
            }
        }
    }
    loop {
        match decoder.decode_eof(&mut buf) {
            Ok(Some(frame)) => out.push(Ok(frame)),
            Ok(None) => return out,
            Err(e) => {
                out.push(Err(too_large(e)));
                return out;
            }
        }
    }
}

/// The session's way: `FramedRead` over a socket, polled until it ends.
fn framed(stream: &[u8], max: usize, space: usize, seed: u8) -> Vec<Result<Bytes, usize>> {
    let reader = ChunkedReader {
        data: stream,
        sizes: ReadSizes::new(seed),
        pend: seed & 0x80 != 0,
        pended: false,
    };
    let decoder = FrameDecoder::new(max).with_read_space(space);
    let mut framed = FramedRead::with_capacity(reader, decoder, space);
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    loop {
        match Pin::new(&mut framed).poll_next(&mut cx) {
            Poll::Pending => continue,
            Poll::Ready(None) => return out,
            Poll::Ready(Some(Ok(frame))) => out.push(Ok(frame)),
            Poll::Ready(Some(Err(e))) => {
                out.push(Err(too_large(e)));
                // The session keeps polling after an error (actix streams do not stop on
                // `Err`): it relies on the stream ending here, so that nothing after an
                // oversized frame is ever read as a frame.
                assert!(
                    matches!(Pin::new(&mut framed).poll_next(&mut cx), Poll::Ready(None)),
                    "the stream goes on after frame_too_large"
                );
                return out;
            }
        }
    }
}

fn too_large(e: FrameError) -> usize {
    match e {
        FrameError::TooLarge { max } => max,
        FrameError::Io(e) => panic!("an in-memory stream cannot fail: {e}"),
    }
}

fn check(got: &[Result<Bytes, usize>], expected: &Outcome<'_>, stream: &[u8], max: usize) {
    let mut emitted = 0;
    for item in got {
        match item {
            Ok(frame) => {
                check_frame(frame, max);
                emitted += frame.len();
            }
            Err(reported) => assert_eq!(*reported, max, "TooLarge reports the wrong limit"),
        }
    }
    assert!(emitted <= stream.len(), "emitted more bytes than were sent");
    let errors = got.iter().filter(|item| item.is_err()).count();
    assert!(errors <= 1, "more than one error");
    if errors == 1 {
        assert!(
            got.last().unwrap().is_err(),
            "a frame after frame_too_large"
        );
    }
    let outcome = Outcome {
        frames: got
            .iter()
            .filter_map(|item| item.as_ref().ok())
            .map(|f| &f[..])
            .collect(),
        too_large: errors == 1,
    };
    assert_eq!(&outcome, expected);
}

fuzz_target!(|data: &[u8]| {
    let [limit, space, seed, stream @ ..] = data else {
        return;
    };
    let max = usize::from(*limit) + 1;
    let space = usize::from(*space);
    let expected = model(stream, max);
    check(&by_hand(stream, max, space, *seed), &expected, stream, max);
    check(&framed(stream, max, space, *seed), &expected, stream, max);
});
