#!/usr/bin/env bash
# A local cluster for a demo and a manual test: one redis-server and three heartwatch nodes on
# loopback. Ctrl-C (or `kill` of this script) stops them all.
#
#   scripts/cluster.sh                    # nodes n1 n2 n3: heartbeats on 7711-7713, HTTP on 7721-7723
#   REUSE_PORT=1 scripts/cluster.sh       # the three nodes share heartbeat port 7710 (SO_REUSEPORT)
#   NODES=5 REDIS_PORT=6395 scripts/cluster.sh
#
# Then, for example:
#   heartwatch beat --server 127.0.0.1:7711 --proj A --interval 1s &
#   curl -s 127.0.0.1:7722/api/v1/clients        # A, on n1, from n2
#   curl -s 127.0.0.1:7723/api/v1/nodes
#   curl -sN 127.0.0.1:7723/api/v1/events        # every node's events
#   kill -9 <pid of n1>                           # n1 dead after 5 s; A offline (or moved)
# Logs and event logs go to target/cluster/.
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=${NODES:-3}
REDIS_PORT=${REDIS_PORT:-6390}
REUSE_PORT=${REUSE_PORT:-0}
TARGET=${CARGO_TARGET_DIR:-target}
OUT=target/cluster

if ! command -v redis-server >/dev/null 2>&1; then
    echo "redis-server 7 is needed: apt-get install -y redis-server (Debian/Ubuntu)" >&2
    exit 1
fi
cargo build --release --bin heartwatch
HW=$TARGET/release/heartwatch
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)"

pids=()
stop() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    echo "stopped"
}
trap stop EXIT
trap "exit 130" INT TERM

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly yes \
    --dir "$OUT" --appendfilename cluster.aof >"$OUT/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
    sleep 0.1
done
echo "redis on 127.0.0.1:$REDIS_PORT"

for i in $(seq "$NODES"); do
    if [ "$REUSE_PORT" = 1 ]; then listen=127.0.0.1:7710; else listen=127.0.0.1:$((7710 + i)); fi
    http=127.0.0.1:$((7720 + i))
    HEARTWATCH__CLUSTER__REDIS=redis://127.0.0.1:$REDIS_PORT/0 \
    HEARTWATCH__CLUSTER__NODE=n$i \
    HEARTWATCH__SERVER__REUSE_PORT=$([ "$REUSE_PORT" = 1 ] && echo true || echo false) \
    HEARTWATCH__STORAGE__PATH=$OUT/data \
    HEARTWATCH__LOG__CONFIG=/nonexistent \
        "$HW" serve --listen "$listen" --http "$http" >"$OUT/n$i.log" 2>&1 &
    pids+=($!)
    echo "node n$i (pid $!): heartbeats on $listen, HTTP API on http://$http, log $OUT/n$i.log"
done
echo "Ctrl-C to stop"
wait
