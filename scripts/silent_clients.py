#!/usr/bin/env python3
"""Holds CLIENTS silent clients on a heartwatch server: each connects, sends one heartbeat
with a one-hour timeout, reads its ack, then stays connected and says nothing for HOLD
seconds. For measuring an idle server's CPU, its client list and its shutdown.

    scripts/silent_clients.py CLIENTS PORT HOLD_SECONDS

Loopback only (127.0.0.2..51 as source addresses); every step is bounded.
"""
import asyncio
import sys
import time

TIMEOUT = 30


async def main(n, port, hold):
    conns = []
    gate = asyncio.Semaphore(500)

    async def one(i):
        async with gate:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                "127.0.0.1", port, local_addr=(f"127.0.0.{2 + i % 50}", 0)), TIMEOUT)
            writer.write(f'{{"type":"heartbeat","proj":"S-{i}","timeout_ms":3600000}}\n'.encode())
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), TIMEOUT)
            assert b'"ack"' in line, line
            conns.append((reader, writer))

    start = time.time()
    await asyncio.gather(*(one(i) for i in range(n)))
    print(f"{len(conns)} connected and acked in {time.time() - start:.2f}s", flush=True)
    await asyncio.sleep(hold)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
