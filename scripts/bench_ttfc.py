"""The benchmark's time to first content of streams (``scripts/bench.py``'s stream rows).

A small asyncio client, in a process of its own (this module run as a script, so that its
CPU is not the bench's), keeps ``clients`` streamed chat calls going on kept-alive
connections for a while and times each from its request to the first chunk that carries
content. Not the first body byte: a provider's stream begins with a role-only chunk, which
the gateway holds until content comes (it judges a stream by its first content), so the first
byte would time different things on the direct and the proxied paths.

    python scripts/bench_ttfc.py PORT CLIENTS SECONDS     prints [p50 ms, p99 ms, samples]
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time

import psutil

STREAM_BODY = json.dumps({"model": "echo-1", "stream": True, "messages": [
    {"role": "user", "content": "one two three four five six seven eight"}]}).encode()
# the gateway's key: every call sends it (the direct ones too), so its check is measured
KEY = "bench-key"
# the first chunk of a chat stream that carries content (the echo's JSON is compact)
FIRST_CONTENT = re.compile(rb'"(?:content|text)":"[^"]')


async def _chunk(reader: asyncio.StreamReader) -> bytes:
    """One chunk of a chunked body (``b""``: the last)."""
    size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
    return (await reader.readexactly(size + 2))[:-2]


async def _ttfb_worker(port: int, until: float, out: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(STREAM_BODY)}\r\n\r\n").encode()
    while time.perf_counter() < until:
        started = time.perf_counter()
        writer.write(head + STREAM_BODY)
        await reader.readuntil(b"\r\n\r\n")  # status line and headers
        seen, timed = b"", False
        while chunk := await _chunk(reader):  # up to the last chunk
            if not timed:
                seen += chunk
                if FIRST_CONTENT.search(seen):  # the first content: stop the clock
                    out.append(time.perf_counter() - started)
                    timed = True
        if not timed:
            raise RuntimeError(f"a stream from port {port} ended with no content: {seen[:200]!r}")
    writer.close()


async def _ttfb(port: int, clients: int, seconds: float) -> list[float]:
    out: list[float] = []
    until = time.perf_counter() + seconds
    await asyncio.gather(*(_ttfb_worker(port, until, out) for _ in range(clients)))
    return out


def ttfb_child(port: int, clients: int, seconds: float) -> None:
    """Run in a subprocess: print [p50 ms, p99 ms, samples] of the streams' time to first
    content as JSON."""
    try:
        import uvloop
        samples = uvloop.run(_ttfb(port, clients, seconds))
    except ImportError:
        samples = asyncio.run(_ttfb(port, clients, seconds))
    samples.sort()

    def pick(q: float) -> float:
        return samples[min(len(samples) - 1, int(q * len(samples)))] * 1000

    print(json.dumps([pick(0.5), pick(0.99), len(samples)]))


def ttfb(port: int, clients: int, seconds: float) -> tuple[float, float, int]:
    """(p50 ms, p99 ms, samples) of streams' time to first content, from a separate process."""
    argv = [sys.executable, __file__, str(port), str(clients), str(seconds)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    p50, p99, n = json.loads(out)
    return p50, p99, n



def stream_report(echo_port: int, gateway_port: int, seconds: float,
                  stream_clients: tuple[int, ...] = (16, 1),
                  floors: list[tuple[str, int]] | None = None,
                  servers: dict[int, psutil.Process] | None = None) -> None:
    """Streams' time to first content at each of ``stream_clients`` (16 is the issue's
    measure; 1 has no queueing), directly, through each of ``floors`` (label, port: the bare
    proxy of :mod:`bench_floor`) and through the gateway. ``servers`` (by port) are the
    processes whose CPU per stream is shown. "cores busy" is the whole machine's over the
    run: once it nears 100%, the client, the echoes and the proxy queue for the same cores,
    and the time to first content is the CPU per stream of all of them times the clients per
    core (PROFILE.md), so a proxy's CPU per stream, not its latency, is what it adds."""
    paths = [("echo direct", echo_port), *(floors or []), ("gateway", gateway_port)]
    servers = servers or {}
    for clients in stream_clients:
        head = f"streams, {clients} client{'s' if clients > 1 else ''}"
        print(f"\n{head:<32} {'TTFC p50 ms':>12} {'TTFC p99 ms':>12} {'streams':>8} "
              f"{'CPU ms/stream':>14} {'cores busy':>10}")
        base = None
        for label, port in paths:
            ttfb(port, clients, 0.5)  # warm-up
            before = cpu_seconds(servers.get(port))
            psutil.cpu_percent()  # from here: the whole machine's busy share over the run
            p50, p99, n = ttfb(port, clients, seconds)
            busy = psutil.cpu_percent()
            cpu = (cpu_seconds(servers.get(port)) - before) * 1000 / max(n, 1)
            shown = f"{cpu:>14.3f}" if port in servers else f"{'':>14}"
            extra = "" if base is None else f"   ({p50 - base:+.3f} ms p50)"
            base = p50 if base is None else base
            print(f"{label:<32} {p50:>12.3f} {p99:>12.3f} {n:>8} {shown} {busy:>9.0f}%{extra}")


def cpu_seconds(proc: psutil.Process | None) -> float:
    if proc is None:
        return 0.0
    times = proc.cpu_times()
    return times.user + times.system


if __name__ == "__main__":
    ttfb_child(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
