#!/usr/bin/env python3
"""Writes the seed corpus under fuzz/corpus/<target>/ (docs/fuzzing.md).

The seeds are committed; this script is how they were made and how to remake them. Crash
inputs found later are copied in by hand (`regress-*` files) and are not written here.
Run from anywhere: `python3 fuzz/seeds.py`.
"""

import hashlib
import pathlib

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"

LONG_ASCII = "x" * 256  # MAX_PROJ_BYTES exactly
LONG_WIDE = "中" * 85 + "x"  # 256 bytes in 86 characters

# One frame each, as the session hands it to Request::parse (some untrimmed on purpose).
FRAMES = {
    "heartbeat": b'{"type":"heartbeat","proj":"P-17"}',
    "heartbeat-seq": b'{"type":"heartbeat","proj":"P-17","seq":42}',
    "heartbeat-seq-timeout": b'{"type":"heartbeat","proj":"P-17","seq":42,"timeout_ms":30000}',
    "heartbeat-fields-reordered": b'{"proj":"P-1","timeout_ms":500,"seq":7,"type":"heartbeat","x":[1,{"a":2}]}',
    "offline": b'{"type":"offline","proj":"P-17"}',
    "offline-seq": b'{"type":"offline","proj":"P-17","seq":43}',
    "pong": b'{"type":"pong","seq":0}',
    "pong-no-seq": b'{"type":"pong"}',
    "custom-status": b'{"type":"status","proj":"P-17","anything":true}',
    "custom-ping": b'{"type":"ping"}',
    "proj-unicode": '{"type":"heartbeat","proj":"é-ü-中"}'.encode(),
    "proj-256-ascii": ('{"type":"heartbeat","proj":"%s"}' % LONG_ASCII).encode(),
    "proj-256-wide": ('{"type":"heartbeat","proj":"%s"}' % LONG_WIDE).encode(),
    "proj-257": ('{"type":"offline","proj":"%s"}' % (LONG_ASCII + "y")).encode(),
    "proj-escaped": b'{"type":"offline","proj":"P\\u002d1"}',
    "proj-surrogate-pair": b'{"type":"heartbeat","proj":"\\ud83d\\ude00"}',
    "proj-lone-surrogate": b'{"type":"heartbeat","proj":"\\ud800"}',
    "proj-nul-escaped": b'{"type":"heartbeat","proj":"a\\u0000b"}',
    "proj-raw-tab": b'{"type":"heartbeat","proj":"a\tb"}',
    "proj-c1-control": '{"type":"heartbeat","proj":"a\u0085b"}'.encode(),
    "proj-empty": b'{"type":"heartbeat","proj":""}',
    "proj-number": b'{"type":"heartbeat","proj":12}',
    "proj-null": b'{"type":"heartbeat","proj":null}',
    "broken-json": b"{not json",
    "array": b"[1,2]",
    "string": b'"heartbeat"',
    "trailing": b'{"type":"heartbeat","proj":"a","x":1} trailing',
    "nested": b'{"type":"heartbeat","proj":"a","x":[[[{"a":[{"b":[[[]]]}]}]]]}',
    "deep-nesting": b'{"type":"x","a":' + b"[" * 200 + b"]" * 200 + b"}",
    "duplicate-type": b'{"type":"heartbeat","type":"offline","proj":"a"}',
    "duplicate-proj": b'{"type":"heartbeat","proj":"a","proj":"b"}',
    "duplicate-other": b'{"type":"heartbeat","proj":"a","x":1,"x":2}',
    "seq-u64-max": b'{"type":"heartbeat","proj":"a","seq":18446744073709551615}',
    "seq-over-u64": b'{"type":"heartbeat","proj":"a","seq":18446744073709551616}',
    "seq-negative": b'{"type":"offline","proj":"a","seq":-1}',
    "seq-minus-zero": b'{"type":"pong","seq":-0}',
    "seq-string": b'{"type":"heartbeat","proj":"a","seq":"7"}',
    "seq-long-string": b'{"type":"pong","seq":"' + b"\\u0001" * 300 + b'"}',
    "timeout-zero": b'{"type":"heartbeat","proj":"a","timeout_ms":0}',
    "timeout-float": b'{"type":"heartbeat","proj":"a","timeout_ms":1.5}',
    "timeout-exponent": b'{"type":"heartbeat","proj":"a","timeout_ms":1e3}',
    "timeout-huge-exponent": b'{"type":"heartbeat","proj":"a","timeout_ms":1e400}',
    "timeout-null": b'{"type":"heartbeat","proj":"a","timeout_ms":null}',
    "ignored-huge-number": b'{"type":"status","n":-1e999}',
    "type-number": b'{"type":7,"proj":"a"}',
    "type-missing": b'{"proj":"a"}',
    "bad-utf8": b'{"type":"heartbeat","proj":"\xff"}',
    "utf8-cut-mid-char": '{"type":"heartbeat","proj":"中"}'.encode()[:30],
    "crlf": b'{"type":"heartbeat","proj":"crlf"}\r',
    "spaces": b'   {"type":"heartbeat","proj":"P-17","seq":7}   ',
    "nul-bytes": b'{"type":"heartbeat","proj":"a"}\x00\x00',
    "empty": b"",
    "whitespace-only": b" \t\r",
}


def stream(limit, space, seed, body):
    """A frame_decoder input: the three header bytes (limit - 1, read space, read-size seed)."""
    assert 1 <= limit <= 256
    return bytes([limit - 1, space, seed]) + body


HB = b'{"type":"heartbeat","proj":"P-17","seq":1}'
STREAMS = {
    "three-heartbeats": stream(64, 128, 0x07, HB + b"\n" + HB + b"\n" + HB + b"\n"),
    "crlf-and-blank-lines": stream(64, 16, 0x03, HB + b"\r\n\r\n\n" + HB + b"\r\n"),
    "unterminated-tail": stream(64, 32, 0x0B, HB + b"\n" + HB),
    "exact-limit": stream(16, 8, 0x02, b"0123456789abcdef\n" + b"0123456789abcdef"),
    "one-over-limit": stream(16, 8, 0x02, b"0123456789abcdefg\nafter\n"),
    "oversize-mid-stream": stream(64, 128, 0x3F, HB + b"\n" + b"y" * 200 + b"\n" + HB + b"\n"),
    "oversize-tail": stream(32, 0, 0x01, b"ok\n" + b"z" * 40),
    "split-mid-utf8": stream(64, 4, 0x01, '{"type":"heartbeat","proj":"é-ü-中"}\n'.encode() * 2),
    "one-byte-reads-pending": stream(64, 0, 0x80, HB + b"\n" + HB + b"\n"),
    "long-proj-frames": stream(256, 255, 0x3F, FRAMES["proj-256-wide"][:255] + b"\n" + FRAMES["proj-256-ascii"] + b"\n"),
    "nul-bytes": stream(8, 1, 0x05, b"\x00\x00\n\x00\n\n\x00\x00\x00"),
    "only-newlines": stream(1, 0, 0x09, b"\n" * 20),
    "empty-stream": stream(64, 128, 0x00, b""),
    "big-reads": stream(200, 200, 0xBF, (HB + b"\n") * 10),
}

# What a client reads from a server, one line each.
REPLIES = {
    "ack": b'{"type":"ack","proj":"P-17","seq":42,"timeout_ms":30000}',
    "ack-offline": b'{"type":"ack","proj":"P-17"}',
    "ack-bad-proj": b'{"type":"ack","proj":""}',
    "ack-seq-float": b'{"type":"ack","proj":"P","seq":1.5}',
    "ping": b'{"type":"ping","seq":0}',
    "ping-negative": b'{"type":"ping","seq":-1}',
    "ping-no-seq": b'{"type":"ping"}',
    "error": b'{"type":"error","code":"bad_json","message":"frame must be a JSON object"}',
    "error-unknown-code": b'{"type":"error","code":"no_such_code","message":"x"}',
    "custom": b'{"online":true,"type":"status"}',
    "custom-no-type": b'{"online":true}',
    "custom-floats": b'{"type":"x","a":1.2345678901234567e-300,"b":[0.1,1e308]}',
    "duplicate-type": b'{"type":"ack","type":"ping","seq":1}',
    "not-an-object": b"[1,2,3]",
    "nested": b'{"type":"ack","proj":{"a":[{"b":null}]}}',
    "crlf": b'{"type":"ping","seq":3}\r\n',
    "bad-utf8": b'{"type":"error","code":"bad_json","message":"\xff"}',
    "broken": b'{"type":"ack",',
}


def write(target, name, data):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def main():
    for name, data in FRAMES.items():
        write("request_parse", name, data)
    for name, data in STREAMS.items():
        write("frame_decoder", name, data)
    for name, data in REPLIES.items():
        write("reply_parse", name, data)
    # round_trip takes `arbitrary` input, not text: a few fixed byte strings to start from.
    for i in range(12):
        write("round_trip", f"bytes-{i:02}", hashlib.sha256(bytes([i])).digest()[: 8 + 4 * i])


if __name__ == "__main__":
    main()
