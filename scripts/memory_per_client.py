#!/usr/bin/env python3
"""RSS a heartwatch server spends per connection and per client, measured from /proc.

    scripts/memory_per_client.py CLIENTS PORT SERVER_PID

Opens CLIENTS connections to 127.0.0.1:PORT (over source addresses 127.0.0.2..51), reads the
server's RSS, sends one heartbeat per connection (a new client each), reads it again, sends a
second heartbeat each, and reads it a last time. Loopback only; every step is bounded.
"""
import asyncio
import sys

TIMEOUT = 30


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def main(n, port, pid):
    conns = []
    gate = asyncio.Semaphore(500)
    base = rss_kb(pid)

    async def connect(i):
        async with gate:
            conns.append(await asyncio.wait_for(asyncio.open_connection(
                "127.0.0.1", port, local_addr=(f"127.0.0.{2 + i % 50}", 0)), TIMEOUT))

    async def beat(i, first):
        reader, writer = conns[i]
        extra = ',"timeout_ms":3600000' if first else ""
        writer.write(f'{{"type":"heartbeat","proj":"M-{i}"{extra}}}\n'.encode())
        await writer.drain()
        await asyncio.wait_for(reader.readline(), TIMEOUT)

    await asyncio.gather(*(connect(i) for i in range(n)))
    await asyncio.sleep(1)
    connected = rss_kb(pid)
    await asyncio.gather(*(beat(i, True) for i in range(n)))
    await asyncio.sleep(1)
    first = rss_kb(pid)
    await asyncio.gather(*(beat(i, False) for i in range(n)))
    await asyncio.sleep(1)
    second = rss_kb(pid)
    per = lambda a, b: (b - a) * 1024 / n
    print(f"baseline {base} kB; per connection {per(base, connected):.0f} B; "
          f"first heartbeat {per(connected, first):.0f} B per client; "
          f"second {per(first, second):.0f} B; total {per(base, second):.0f} B per client")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
