//! The client's parser of one server line (`HeartbeatClient` and `heartwatch beat`): arbitrary
//! bytes into `Reply`, as the client reads them (trimmed, blank lines skipped). Whatever it
//! accepts must be a valid reply that survives being written again by the real encoder and
//! read again: same variant (unless the line repeats a key), and for acks, pings and errors the same value.
//!
//! Input: one line from a (possibly hostile) server.

#![no_main]

use bytes::BytesMut;
use heartwatch::protocol::{FrameDecoder, LineEncoder, Proj, Reply};
use heartwatch_fuzz::KeyCounts;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

fn reencode(reply: &Reply) -> Reply {
    let mut line = BytesMut::new();
    LineEncoder::new(usize::MAX)
        .encode(reply.clone(), &mut line)
        .expect("a parsed reply encodes");
    let len = line.len();
    let frame = FrameDecoder::new(len)
        .decode(&mut line)
        .expect("one line fits")
        .expect("the encoder ends its line");
    assert!(line.is_empty(), "the encoder wrote more than one line");
    assert_eq!(frame.len(), len - 1);
    serde_json::from_slice(&frame).expect("the client reads back what it parsed")
}

fuzz_target!(|data: &[u8]| {
    let line = data.trim_ascii();
    if line.is_empty() {
        return;
    }
    let Ok(reply) = serde_json::from_slice::<Reply>(line) else {
        return;
    };
    let back = reencode(&reply);
    match (&reply, &back) {
        (Reply::Ack { proj, .. }, _) => {
            assert_eq!(Proj::new(proj.as_str()).as_ref(), Ok(proj));
            assert_eq!(back, reply);
        }
        (Reply::Ping { .. } | Reply::Error { .. } | Reply::Welcome { .. }, _) => {
            assert_eq!(back, reply)
        }
        // Floats need not survive exactly (serde_json's default float parsing is not
        // round-trip exact), but the shape does.
        (Reply::Custom(before), Reply::Custom(after)) => {
            assert!(before.keys().eq(after.keys()), "custom reply keys changed");
        }
        // serde refuses an ack, ping or error that repeats a key (`type`, `proj`, ...), and
        // the line falls back to a custom reply that keeps the last of each: written again,
        // that may be a valid ack, ping or error. A server never writes repeated keys (a
        // reply is a map).
        (Reply::Custom(_), other) => assert!(
            KeyCounts::of(line).is_some_and(|keys| keys.repeats_any()),
            "a custom reply came back as {other:?}"
        ),
    }
});
