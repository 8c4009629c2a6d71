#!/usr/bin/env python3
"""The server's CPU per heartbeat over the HTTP or the UDP ingest (docs/performance.md).

    scripts/ingest_load.py http COUNT PING_PORT API_PORT SERVER_PID
    scripts/ingest_load.py udp  COUNT UDP_PORT  API_PORT SERVER_PID

Start the server first with the ingest on and no frame budget, on loopback, e.g.

    HEARTWATCH__INGEST__HTTP=127.0.0.1:17802 HEARTWATCH__INGEST__UDP=127.0.0.1:17800 \\
    HEARTWATCH__SESSION__MAX_FRAME_RATE=0 HEARTWATCH__STORAGE__PATH= \\
    HEARTWATCH__LOG__CONFIG=/nonexistent HEARTWATCH__LOG__LEVEL=warn \\
        target/release/heartwatch serve --listen 127.0.0.1:17810 --http 127.0.0.1:17811 &

1,000 clients (`H-*` or `U-*`, one-hour timeouts) first beat once each, so that the measured
heartbeats are those of known clients; then COUNT heartbeats are sent: over HTTP as POSTs on
four keep-alive connections, each waiting for its answer; over UDP at about 100,000 a second
(200 datagrams, then 2 ms of rest), answers (if on) not read. The server's CPU time is read
from /proc/PID/stat before and after. Prints the CPU per heartbeat, the server's heartbeat
count and any ingest error. Loopback only; bounded by COUNT.
"""

import http.client
import json
import socket
import sys
import threading
import time

CLIENTS = 1000


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


def http_pings(port, worker, count):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for i in range(count):
        conn.request("POST", f"/ping/H-{worker}-{i % (CLIENTS // 4)}?timeout=1h")
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            sys.exit(f"ping answered {response.status}")


def run_http(port, count, pid):
    for worker in range(4):
        http_pings(port, worker, CLIENTS // 4)
    start, cpu = time.time(), cpu_seconds(pid)
    workers = [
        threading.Thread(target=http_pings, args=(port, w, count // 4)) for w in range(4)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.time() - start, cpu_seconds(pid) - cpu


def run_udp(port, count, pid):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    frames = [
        json.dumps({"type": "heartbeat", "proj": f"U-{i}", "timeout_ms": 3_600_000}).encode()
        for i in range(CLIENTS)
    ]
    for frame in frames:
        sock.sendto(frame, ("127.0.0.1", port))
    time.sleep(0.5)
    start, cpu = time.time(), cpu_seconds(pid)
    for i in range(count):
        sock.sendto(frames[i % CLIENTS], ("127.0.0.1", port))
        if i % 200 == 199:
            time.sleep(0.002)
    time.sleep(0.5)
    return time.time() - start, cpu_seconds(pid) - cpu


def main():
    if len(sys.argv) != 6 or sys.argv[1] not in ("http", "udp"):
        sys.exit(__doc__)
    kind, count = sys.argv[1], int(sys.argv[2])
    port, api, pid = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    run = run_http if kind == "http" else run_udp
    elapsed, cpu = run(port, count, pid)
    conn = http.client.HTTPConnection("127.0.0.1", api, timeout=10)
    conn.request("GET", "/metrics")
    metrics = conn.getresponse().read().decode().splitlines()
    beats = next(l for l in metrics if l.startswith("heartwatch_heartbeats_total"))
    errors = [
        l for l in metrics
        if l.startswith("heartwatch_ingest_errors_total") and not l.endswith(" 0")
    ]
    print(
        f"{kind}: {count} heartbeats in {elapsed:.2f} s, server CPU {cpu:.2f} s = "
        f"{cpu / count * 1e6:.1f} us per heartbeat; {beats}; errors: {errors or 'none'}"
    )


if __name__ == "__main__":
    main()
