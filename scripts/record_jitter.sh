#!/usr/bin/env bash
# Records the jitter traces of docs/detection.md (tests/data/jitter/): three `heartwatch beat
# --interval 1s` clients as they are ("loopback-N"), and three whose process is stopped for 200
# to 900 ms every 15 to 60 s, as a garbage collector or an overloaded host would ("paused-N"),
# each to a recorder that acks like a server and writes the milliseconds between heartbeats.
#
#   SECS=3600 OUT=tests/data/jitter scripts/record_jitter.sh
#
# Loopback only (ports 17800 and 17801); every process it starts is stopped at the end.
set -u
cd "$(dirname "$0")/.."
SECS=${SECS:-3600}
OUT=${OUT:-target/jitter}
cargo build --release --bin heartwatch --example record_intervals
REC=target/release/examples/record_intervals
HW=target/release/heartwatch
mkdir -p "$OUT"
$REC 127.0.0.1:17800 "$SECS" "$OUT" loopback & rec1=$!
$REC 127.0.0.1:17801 "$SECS" "$OUT" paused & rec2=$!
sleep 1
plain=()
paused=()
for i in 1 2 3; do
    HEARTWATCH__LOG__CONFIG=/nonexistent $HW beat --server 127.0.0.1:17800 --proj "loop-$i" \
        --interval 1s >/dev/null 2>&1 & plain+=($!)
    HEARTWATCH__LOG__CONFIG=/nonexistent $HW beat --server 127.0.0.1:17801 --proj "pause-$i" \
        --interval 1s >/dev/null 2>&1 & paused+=($!)
done
end=$((SECONDS + SECS))
(
    while [ $SECONDS -lt "$end" ]; do
        sleep $(( (RANDOM % 46) + 15 ))
        p=${paused[$((RANDOM % 3))]}
        kill -STOP "$p" 2>/dev/null
        sleep "0.$(( (RANDOM % 8) + 2 ))"
        kill -CONT "$p" 2>/dev/null
    done
) & pauser=$!
wait "$rec1" "$rec2"
kill "$pauser" 2>/dev/null
for p in "${plain[@]}" "${paused[@]}"; do
    kill -CONT "$p" 2>/dev/null
    kill "$p" 2>/dev/null
done
wait
