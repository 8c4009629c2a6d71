#!/usr/bin/env bash
# Cluster-mode measurements (docs/cluster.md): a redis-server and heartwatch nodes on loopback,
# loaded with `heartwatch bench` processes. Every process is stopped at the end.
#
#   scripts/cluster_bench.sh steady     # Redis commands/s per 1,000 clients at steady state:
#                                       # NODES nodes x CLIENTS_PER_NODE clients, 1 beat/s
#   scripts/cluster_bench.sh compare    # one node, with and without cluster mode, ROUNDS
#                                       # alternating rounds of CLIENTS clients: ack latency, CPU
#   scripts/cluster_bench.sh scale      # NODES nodes x PER_NODE clients, one beat every 5 s,
#                                       # BENCHES_PER_NODE bench processes per node; checks that
#                                       # every node lists every client
#
# Knobs (environment): NODES (3), CLIENTS_PER_NODE (5000), CLIENTS (10000), ROUNDS (3),
# PER_NODE (19900), BENCHES_PER_NODE (2), INTERVAL (1s; scale: 5s), TIMEOUT (scale: 15s),
# WINDOW (30s), WARMUP (5s),
# REDIS_PORT (16391), BASE_PORT (17800: node i takes BASE_PORT+i, HTTP BASE_PORT+100+i).
# JSON reports go to target/cluster-bench/.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${1:-steady}
NODES=${NODES:-3}
REDIS_PORT=${REDIS_PORT:-16391}
BASE_PORT=${BASE_PORT:-17800}
WINDOW=${WINDOW:-30s}
WARMUP=${WARMUP:-5s}
TARGET=${CARGO_TARGET_DIR:-target}
OUT=target/cluster-bench
REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)"
command -v redis-server >/dev/null || { echo "apt-get install -y redis-server" >&2; exit 1; }
cargo build --release --bin heartwatch
HW=$TARGET/release/heartwatch

pids=()
stop_all() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
trap stop_all EXIT

wait_port() {
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    return 1
}

start_redis() {
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
        >"$OUT/redis.log" 2>&1 &
    pids+=($!)
    wait_port "$REDIS_PORT"
}

# start_node NAME PORT [cluster]: heartbeats on PORT, HTTP on PORT+100; prints its pid.
node_pids=()
start_node() {
    local name=$1 port=$2 cluster=${3:-cluster}
    local env=(HEARTWATCH__STORAGE__PATH="$OUT/data" HEARTWATCH__LOG__CONFIG=/nonexistent
        HEARTWATCH__LOG__LEVEL=warn)
    if [ "$cluster" = cluster ]; then
        env+=(HEARTWATCH__CLUSTER__REDIS="$REDIS_URL" HEARTWATCH__CLUSTER__NODE="$name")
    fi
    env "${env[@]}" "$HW" serve --listen "127.0.0.1:$port" --http "127.0.0.1:$((port + 100))" \
        2>"$OUT/$name.log" &
    pids+=($!)
    node_pids+=($!)
    wait_port "$port"
}

case $MODE in
steady)
    CLIENTS_PER_NODE=${CLIENTS_PER_NODE:-5000}
    INTERVAL=${INTERVAL:-1s}
    rm -rf "$OUT/data"
    start_redis
    for i in $(seq "$NODES"); do start_node "n$i" $((BASE_PORT + i)); done
    bench_pids=()
    for i in $(seq "$NODES"); do
        redis_arg=()
        [ "$i" = 1 ] && redis_arg=(--redis "$REDIS_URL")
        "$HW" bench --server "127.0.0.1:$((BASE_PORT + i))" --pid "${node_pids[$((i - 1))]}" \
            --clients "$CLIENTS_PER_NODE" --interval "$INTERVAL" --duration "$WINDOW" \
            --warmup "$WARMUP" --proj-prefix "n$i-" --ramp 2500 "${redis_arg[@]}" --json \
            >"$OUT/steady-n$i.json" &
        bench_pids+=($!)
    done
    for pid in "${bench_pids[@]}"; do wait "$pid"; done
    python3 - "$OUT" "$NODES" <<'PY'
import json, sys
out, nodes = sys.argv[1], int(sys.argv[2])
reports = [json.load(open(f"{out}/steady-n{i}.json")) for i in range(1, nodes + 1)]
clients = sum(r["established"] for r in reports)
acked = sum(r["acked_per_s"] for r in reports)
redis = reports[0]["redis"]
print(f"{nodes} nodes, {clients} clients, {acked:.0f} heartbeats/s acked")
print(f"redis: {redis['commands_per_s']:.1f} commands/s = {redis['commands_per_s'] / (clients / 1000):.3f} per 1k clients; {redis['scripts_per_s']:.1f} scripts/s")
print("  by command: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(redis["by_command"].items())))
for i, r in enumerate(reports, 1):
    l, c = r["latency_ms"], r["server_cost"]
    print(f"  n{i}: p50 {l['p50']:.3f} p99 {l['p99']:.3f} ms, cpu {c['cpu_seconds_per_100k']:.3f} s/100k, errors {r['errors']}")
PY
    ;;
compare)
    CLIENTS=${CLIENTS:-10000}
    ROUNDS=${ROUNDS:-3}
    INTERVAL=${INTERVAL:-1s}
    start_redis
    for round in $(seq "$ROUNDS"); do
        for mode in single cluster; do
            echo "== round $round: $mode" >&2
            rm -rf "$OUT/data"
            redis-cli -p "$REDIS_PORT" flushall >/dev/null
            node_pids=()
            start_node n1 $((BASE_PORT + 1)) "$mode"
            "$HW" bench --server "127.0.0.1:$((BASE_PORT + 1))" --pid "${node_pids[0]}" --clients "$CLIENTS" \
                --interval "$INTERVAL" --duration "$WINDOW" --warmup "$WARMUP" --json \
                >"$OUT/compare-$mode-$round.json"
            kill "${node_pids[0]}"; wait "${node_pids[0]}" 2>/dev/null || true
        done
    done
    python3 - "$OUT" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def load(mode):
    return [json.load(open(f"{out}/compare-{mode}-{r}.json")) for r in range(1, rounds + 1)]
med = lambda xs: statistics.median(xs)
rows = {}
for mode in ("single", "cluster"):
    rs = load(mode)
    rows[mode] = (med([r["latency_ms"]["p50"] for r in rs]), med([r["latency_ms"]["p99"] for r in rs]),
                  med([r["server_cost"]["cpu_seconds_per_100k"] for r in rs]))
    print(f"{mode:8} p50 {rows[mode][0]:.3f} ms  p99 {rows[mode][1]:.3f} ms  cpu {rows[mode][2]:.3f} s/100k  (medians of {rounds})")
s, c = rows["single"], rows["cluster"]
print(f"cluster/single: p50 {c[0]/s[0]:.2f}  p99 {c[1]/s[1]:.2f}  cpu {c[2]/s[2]:.2f}")
PY
    ;;
scale)
    PER_NODE=${PER_NODE:-19900}
    BENCHES_PER_NODE=${BENCHES_PER_NODE:-2}
    INTERVAL=${INTERVAL:-5s}
    TIMEOUT=${TIMEOUT:-15s}
    rm -rf "$OUT/data"
    start_redis
    for i in $(seq "$NODES"); do start_node "n$i" $((BASE_PORT + i)); done
    per_bench=$((PER_NODE / BENCHES_PER_NODE))
    bench_pids=()
    k=0
    for i in $(seq "$NODES"); do
        for b in $(seq "$BENCHES_PER_NODE"); do
            k=$((k + 1))
            redis_arg=()
            [ "$k" = 1 ] && redis_arg=(--redis "$REDIS_URL")
            "$HW" bench --server "127.0.0.1:$((BASE_PORT + i))" --pid "${node_pids[$((i - 1))]}" \
                --clients "$per_bench" --interval "$INTERVAL" --timeout "$TIMEOUT" \
                --duration "$WINDOW" --warmup "$WARMUP" --ramp 1500 --proj-prefix "n$i-b$b-" "${redis_arg[@]}" \
                --json >"$OUT/scale-$k.json" &
            bench_pids+=($!)
        done
    done
    # During the window: every node lists every client.
    ramp_s=$(( (per_bench + 1499) / 1500 ))
    sleep $((ramp_s + ${WARMUP%s} + 5))
    for i in $(seq "$NODES"); do
        n=$(curl -s "127.0.0.1:$((BASE_PORT + 100 + i))/api/v1/clients" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
        t0=$(date +%s.%N)
        curl -s -o /dev/null "127.0.0.1:$((BASE_PORT + 100 + i))/api/v1/clients"
        t1=$(date +%s.%N)
        echo "n$i lists $n clients (list took $(python3 -c "print(round($t1 - $t0, 3))") s)" | tee -a "$OUT/scale-lists.txt"
    done
    curl -s "127.0.0.1:$((BASE_PORT + 101))/api/v1/nodes" >"$OUT/scale-nodes.json"
    for pid in "${bench_pids[@]}"; do wait "$pid"; done
    python3 - "$OUT" "$k" <<'PY'
import json, sys
out, n = sys.argv[1], int(sys.argv[2])
reports = [json.load(open(f"{out}/scale-{i}.json")) for i in range(1, n + 1)]
clients = sum(r["established"] for r in reports)
failed = sum(r["failed"] for r in reports)
acked = sum(r["acked_per_s"] for r in reports)
print(f"{clients} clients established ({failed} failed), {acked:.0f} heartbeats/s acked")
print("p99 per bench (ms): " + ", ".join(f"{r['latency_ms']['p99']:.2f}" for r in reports))
redis = reports[0]["redis"]
print(f"redis: {redis['commands_per_s']:.1f} commands/s = {redis['commands_per_s'] / (clients / 1000):.3f} per 1k clients")
nodes = json.load(open(f"{out}/scale-nodes.json"))
print("nodes: " + ", ".join(f"{x['node']} {x['state']} {x['clients']}" for x in nodes))
for i, r in enumerate(reports, 1):
    c = r["server_cost"]
    print(f"  bench {i}: rss {c['rss_bytes'] / 1048576:.0f} MiB, cpu {c['cpu_seconds']:.2f} s in window, errors {r['errors']}")
PY
    ;;
*)
    echo "usage: $0 steady|compare|scale" >&2
    exit 2
    ;;
esac
