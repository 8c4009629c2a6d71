#!/usr/bin/env bash
# Side-by-side benchmark: heartwatch against a bare tokio line-echo server (the floor), same
# client count, same interval, back to back on this machine, with `heartwatch bench`.
#
#   scripts/bench.sh                      # 1k, 5k, 10k, 15k clients, 20 s windows
#   SIZES="10000" WINDOW=30s scripts/bench.sh
#   SILENCE=0 scripts/bench.sh            # skip the hung-client detection run
#   BASELINE=/path/to/other/heartwatch scripts/bench.sh
#                                         # A/B: also run another heartwatch binary (an older
#                                         # commit's) with the same clients, after the floor
#   ROUNDS=3 scripts/bench.sh             # repeat floor/baseline/heartwatch ROUNDS times,
#                                         # alternating; the table shows medians
#   SIZES= SILENCE=0 TLS_CLIENTS=2000 scripts/bench.sh
#                                         # only the cost of TLS and tokens: plaintext and TLS,
#                                         # each without and with a hello token, alternating
#                                         # for TLS_ROUNDS rounds (2), medians and ratios
#
# Prints one table (CPU seconds per 100k heartbeats, RSS per client, ack latency, and the
# ratios heartwatch / floor) and keeps every JSON report under target/bench/.
# Everything runs on loopback; each server is stopped after its run.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES-"1000 5000 10000 15000"}
INTERVAL=${INTERVAL:-1s}
WINDOW=${WINDOW:-20s}
WARMUP=${WARMUP:-3s}
SILENCE=${SILENCE:-0.1}
SILENCE_CLIENTS=${SILENCE_CLIENTS:-10000}
TLS_CLIENTS=${TLS_CLIENTS:-}
TLS_ROUNDS=${TLS_ROUNDS:-2}
BASELINE=${BASELINE:-}
ROUNDS=${ROUNDS:-1}
HW_PORT=${HW_PORT:-7900}
ECHO_PORT=${ECHO_PORT:-7902}
TARGET=${CARGO_TARGET_DIR:-target}
OUT=target/bench
mkdir -p "$OUT"

ulimit -n "$(ulimit -Hn)"
cargo build --release --bin heartwatch --example echo_floor
HW=$TARGET/release/heartwatch
ECHO=$TARGET/release/examples/echo_floor

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
        "${1:-$HW}" serve --listen "127.0.0.1:$HW_PORT" --http "127.0.0.1:$((HW_PORT + 1))" \
        2>"$OUT/heartwatch.log" &
    server_pid=$!
    wait_port "$HW_PORT"
}

start_echo() {
    "$ECHO" "127.0.0.1:$ECHO_PORT" >/dev/null &
    server_pid=$!
    wait_port "$ECHO_PORT"
}

bench_size() {  # SERVER_KIND N ROUND: one run, its JSON report kept under $OUT
    local kind=$1 n=$2 round=$3
    echo "== $n clients: $kind (round $round)" >&2
    case $kind in
        floor) start_echo; port=$ECHO_PORT ;;
        baseline) start_heartwatch "$BASELINE"; port=$HW_PORT ;;
        heartwatch) start_heartwatch; port=$HW_PORT ;;
    esac
    "$HW" bench --server "127.0.0.1:$port" --pid "$server_pid" --clients "$n" \
        --interval "$INTERVAL" --duration "$WINDOW" --warmup "$WARMUP" --json \
        >"$OUT/$kind-$n-$round.json"
    stop_server
}

KINDS="floor${BASELINE:+ baseline} heartwatch"
for n in $SIZES; do
    for round in $(seq 1 "$ROUNDS"); do
        for kind in $KINDS; do
            bench_size "$kind" "$n" "$round"
        done
    done
done

if [ "$SILENCE" != "0" ]; then
    echo "== $SILENCE_CLIENTS clients, $SILENCE of them hung: heartwatch detection" >&2
    start_heartwatch
    "$HW" bench --server "127.0.0.1:$HW_PORT" --http "127.0.0.1:$((HW_PORT + 1))" \
        --pid "$server_pid" --clients "$SILENCE_CLIENTS" --interval "$INTERVAL" \
        --duration "$WINDOW" --warmup "$WARMUP" --silence "$SILENCE" --json >"$OUT/detection.json"
    stop_server
fi

if [ -n "$TLS_CLIENTS" ]; then
    # A self-signed ECDSA P-256 certificate for 127.0.0.1 (the recipe of docs/tls.md).
    mkdir -p "$OUT/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -keyout "$OUT/tls/key.pem" -out "$OUT/tls/cert.pem" -subj /CN=heartwatch-bench \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -addext "basicConstraints=critical,CA:FALSE" 2>/dev/null
    TOKEN=$(openssl rand -hex 32)
    : >"$OUT/tls-loadavg.txt"
    for round in $(seq 1 "$TLS_ROUNDS"); do
        for case in plain plain-token tls tls-token; do
            echo "== round $round: $TLS_CLIENTS clients, $case" >&2
            server_env=(HEARTWATCH__STORAGE__PATH= HEARTWATCH__LOG__CONFIG=/nonexistent
                HEARTWATCH__LOG__LEVEL=warn)
            bench_args=()
            bench_env=(HEARTWATCH_TOKEN=)
            case $case in tls*)
                server_env+=(HEARTWATCH__TLS__CERT="$OUT/tls/cert.pem"
                    HEARTWATCH__TLS__KEY="$OUT/tls/key.pem")
                bench_args+=(--tls --ca "$OUT/tls/cert.pem")
            esac
            case $case in *token)
                server_env+=(HEARTWATCH__AUTH__TOKEN="$TOKEN")
                bench_env=(HEARTWATCH_TOKEN="$TOKEN")
            esac
            env "${server_env[@]}" "$HW" serve --listen "127.0.0.1:$HW_PORT" \
                --http "127.0.0.1:$((HW_PORT + 1))" 2>"$OUT/heartwatch.log" &
            server_pid=$!
            wait_port "$HW_PORT"
            echo "$round $case start $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/tls-loadavg.txt"
            env "${bench_env[@]}" "$HW" bench --server "127.0.0.1:$HW_PORT" --pid "$server_pid" \
                --clients "$TLS_CLIENTS" --interval "$INTERVAL" --duration "$WINDOW" \
                --warmup "$WARMUP" "${bench_args[@]}" --json >"$OUT/tls-$case-$round.json"
            echo "$round $case end $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/tls-loadavg.txt"
            stop_server
        done
    done
fi

python3 - "$OUT" "$SIZES" "$SILENCE" "$TLS_CLIENTS" "$TLS_ROUNDS" "$KINDS" "$ROUNDS" <<'PY'
import json, statistics, sys
out, sizes, silence = sys.argv[1], sys.argv[2].split(), sys.argv[3]
tls_clients, tls_rounds = sys.argv[4], int(sys.argv[5])
kinds, rounds = sys.argv[6].split(), int(sys.argv[7])
def load(name):
    with open(f"{out}/{name}.json") as f:
        return json.load(f)
if sizes:
    print(f"medians of {rounds} round(s), kinds alternating in each round")
    print(f"{'clients':>8} | {'server':<10} | {'acked/s':>8} | {'CPU s/100k':>10} | {'RSS B/client':>12} | {'p50 ms':>7} | {'p99 ms':>7} | {'p99.9 ms':>8} | errors | per-round CPU s/100k")
    print("-" * 130)
    for n in sizes:
        runs = {k: [load(f"{k}-{n}-{r}") for r in range(1, rounds + 1)] for k in kinds}
        def med(k, f):
            return statistics.median(f(r) for r in runs[k])
        cpu = lambda r: r["server_cost"]["cpu_seconds_per_100k"]
        rss = lambda r: r["server_cost"]["rss_per_client_bytes"]
        p99 = lambda r: r["latency_ms"]["p99"]
        for k in kinds:
            errors = sum(sum(r["errors"].values()) for r in runs[k])
            per_round = ", ".join(f"{cpu(r):.3f}" for r in runs[k])
            print(f"{n:>8} | {k:<10} | {med(k, lambda r: r['acked_per_s']):>8.0f} | {med(k, cpu):>10.3f} | "
                  f"{med(k, rss):>12.0f} | {med(k, lambda r: r['latency_ms']['p50']):>7.3f} | {med(k, p99):>7.3f} | "
                  f"{med(k, lambda r: r['latency_ms']['p999']):>8.3f} | {errors:>6} | {per_round}")
        for k in kinds[1:]:
            print(f"{n:>8} | {k + '/floor':<10} | {'':>8} | {med(k, cpu) / max(med('floor', cpu), 1e-9):>9.2f}x | "
                  f"{med(k, rss) / max(med('floor', rss), 1e-9):>11.2f}x | {'':>7} | {med(k, p99) / max(med('floor', p99), 1e-9):>6.2f}x |")
if silence != "0":
    d = load("detection")
    det = d["detection"]
    o = det["overshoot_ms"]
    print()
    print(f"hung-client detection, {d['clients']} clients, {det['silenced']} hung: overshoot p50 {o['p50']:.3f} ms, "
          f"p99 {o['p99']:.3f} ms, max {o['max']:.3f} ms; missing {det['missing']}, premature {det['premature']}")
if tls_clients:
    cases = ["plain", "plain-token", "tls", "tls-token"]
    runs = {c: [load(f"tls-{c}-{r}") for r in range(1, tls_rounds + 1)] for c in cases}
    def med(case, f):
        return statistics.median(f(r) for r in runs[case])
    cols = {  # name: (value of one run, format)
        "CPU s/100k": (lambda r: r["server_cost"]["cpu_seconds_per_100k"], ".3f"),
        "RSS B/client": (lambda r: r["server_cost"]["rss_per_client_bytes"], ".0f"),
        "p50 ms": (lambda r: r["latency_ms"]["p50"], ".3f"),
        "p99 ms": (lambda r: r["latency_ms"]["p99"], ".3f"),
        "CPU s before": (lambda r: r["server_cost"]["cpu_seconds_before_window"], ".2f"),
    }
    print()
    print(f"TLS and tokens, {tls_clients} clients, medians of {tls_rounds} rounds; load average in {out}/tls-loadavg.txt")
    print(f"{'case':<12} | {'acked/s':>8} | " + " | ".join(f"{c:>12}" for c in cols) + " | errors | per-run CPU s/100k")
    for case in cases:
        acked = med(case, lambda r: r["acked_per_s"])
        errors = sum(sum(r["errors"].values()) for r in runs[case])
        per_run = ", ".join(f"{r['server_cost']['cpu_seconds_per_100k']:.3f}" for r in runs[case])
        print(f"{case:<12} | {acked:>8.0f} | " + " | ".join(f"{med(case, f):>12{fmt}}" for f, fmt in cols.values()) + f" | {errors:>6} | {per_run}")
        if case != "plain":
            def ratio(f):
                base = med("plain", f)
                return f"{med(case, f) / base:>11.2f}x" if base > 0 else f"{'-':>12}"
            print(f"{'  / plain':<12} | {'':>8} | " + " | ".join(ratio(f) for f, _ in cols.values()) + " |")
PY
