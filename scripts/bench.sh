#!/usr/bin/env bash
# Side-by-side benchmark: heartwatch against a bare tokio line-echo server (the floor), same
# client count, same interval, back to back on this machine, with `heartwatch bench`.
#
#   scripts/bench.sh                      # 1k, 5k, 10k, 15k clients, 20 s windows
#   SIZES="10000" WINDOW=30s scripts/bench.sh
#   SILENCE=0 scripts/bench.sh            # skip the hung-client detection run
#
# Prints one table (CPU seconds per 100k heartbeats, RSS per client, ack latency, and the
# ratios heartwatch / floor) and keeps every JSON report under target/bench/.
# Everything runs on loopback; each server is stopped after its run.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-"1000 5000 10000 15000"}
INTERVAL=${INTERVAL:-1s}
WINDOW=${WINDOW:-20s}
WARMUP=${WARMUP:-3s}
SILENCE=${SILENCE:-0.1}
SILENCE_CLIENTS=${SILENCE_CLIENTS:-10000}
HW_PORT=${HW_PORT:-7900}
ECHO_PORT=${ECHO_PORT:-7902}
OUT=target/bench
mkdir -p "$OUT"

ulimit -n "$(ulimit -Hn)"
cargo build --release --bin heartwatch --example echo_floor
HW=target/release/heartwatch
ECHO=target/release/examples/echo_floor

server_pid=""
stop_server() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
trap stop_server EXIT

wait_port() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    return 1
}

start_heartwatch() {
    # A fresh event log per run: a log left by the previous run would recover its clients.
    rm -rf "$OUT/data"
    HEARTWATCH__STORAGE__PATH="$OUT/data" \
    HEARTWATCH__LOG__CONFIG=/nonexistent HEARTWATCH__LOG__LEVEL=warn \
        "$HW" serve --listen "127.0.0.1:$HW_PORT" --http "127.0.0.1:$((HW_PORT + 1))" \
        2>"$OUT/heartwatch.log" &
    server_pid=$!
    wait_port "$HW_PORT"
}

start_echo() {
    "$ECHO" "127.0.0.1:$ECHO_PORT" >/dev/null &
    server_pid=$!
    wait_port "$ECHO_PORT"
}

for n in $SIZES; do
    echo "== $n clients: echo floor" >&2
    start_echo
    "$HW" bench --server "127.0.0.1:$ECHO_PORT" --pid "$server_pid" --clients "$n" \
        --interval "$INTERVAL" --duration "$WINDOW" --warmup "$WARMUP" --json >"$OUT/floor-$n.json"
    stop_server
    echo "== $n clients: heartwatch" >&2
    start_heartwatch
    "$HW" bench --server "127.0.0.1:$HW_PORT" --pid "$server_pid" --clients "$n" \
        --interval "$INTERVAL" --duration "$WINDOW" --warmup "$WARMUP" --json >"$OUT/heartwatch-$n.json"
    stop_server
done

if [ "$SILENCE" != "0" ]; then
    echo "== $SILENCE_CLIENTS clients, $SILENCE of them hung: heartwatch detection" >&2
    start_heartwatch
    "$HW" bench --server "127.0.0.1:$HW_PORT" --http "127.0.0.1:$((HW_PORT + 1))" \
        --pid "$server_pid" --clients "$SILENCE_CLIENTS" --interval "$INTERVAL" \
        --duration "$WINDOW" --warmup "$WARMUP" --silence "$SILENCE" --json >"$OUT/detection.json"
    stop_server
fi

python3 - "$OUT" "$SIZES" "$SILENCE" <<'PY'
import json, sys
out, sizes, silence = sys.argv[1], sys.argv[2].split(), sys.argv[3]
def load(name):
    with open(f"{out}/{name}.json") as f:
        return json.load(f)
print(f"{'clients':>8} | {'server':<10} | {'acked/s':>8} | {'CPU s/100k':>10} | {'RSS B/client':>12} | {'p50 ms':>7} | {'p99 ms':>7} | {'p99.9 ms':>8} | errors")
print("-" * 100)
for n in sizes:
    rows = {"floor": load(f"floor-{n}"), "heartwatch": load(f"heartwatch-{n}")}
    for name, r in rows.items():
        c = r["server_cost"] or {}
        lat = r["latency_ms"]
        errors = sum(r["errors"].values())
        print(f"{n:>8} | {name:<10} | {r['acked_per_s']:>8.0f} | {c.get('cpu_seconds_per_100k', float('nan')):>10.3f} | "
              f"{c.get('rss_per_client_bytes', float('nan')):>12.0f} | {lat['p50']:>7.3f} | {lat['p99']:>7.3f} | {lat['p999']:>8.3f} | {errors}")
    f, h = rows["floor"], rows["heartwatch"]
    cpu = h["server_cost"]["cpu_seconds_per_100k"] / max(f["server_cost"]["cpu_seconds_per_100k"], 1e-9)
    rss = h["server_cost"]["rss_per_client_bytes"] / max(f["server_cost"]["rss_per_client_bytes"], 1e-9)
    p99 = h["latency_ms"]["p99"] / max(f["latency_ms"]["p99"], 1e-9)
    print(f"{n:>8} | {'ratio':<10} | {'':>8} | {cpu:>9.2f}x | {rss:>11.2f}x | {'':>7} | {p99:>6.2f}x |")
if silence != "0":
    d = load("detection")
    det = d["detection"]
    o = det["overshoot_ms"]
    print()
    print(f"hung-client detection, {d['clients']} clients, {det['silenced']} hung: overshoot p50 {o['p50']:.3f} ms, "
          f"p99 {o['p99']:.3f} ms, max {o['max']:.3f} ms; missing {det['missing']}, premature {det['premature']}")
PY
