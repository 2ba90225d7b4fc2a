"""The streams benchmark's client process (started by :mod:`bench_streams`).

    python scripts/bench_stream_client.py PORT FIRST STEP COUNT TIMEOUT

opens COUNT streaming chat calls to the gateway on PORT, the i-th at monotonic time
FIRST + i * STEP (CLOCK_MONOTONIC is one clock for every process of the machine), each on its
own connection (asyncio on uvloop, raw sockets, no HTTP library to pay for), reads every one to
its last chunk, and prints its :class:`Outcome` as JSON.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

PROMPT = "one two three four"  # 4 words: a role chunk, 4 words, a finish chunk, [DONE]
GAPS = len(PROMPT.split()) + 2  # chunk delays in one stream
STREAM_BODY = json.dumps({"model": "echo-1", "stream": True, "messages": [
    {"role": "user", "content": PROMPT}]}).encode()


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE to the hard limit (children inherit it); the new soft limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# -- the client ---------------------------------------------------------------------------------

@dataclass
class Outcome:
    """One client process's streams: when each that ended with [DONE] was sent and ended
    (monotonic), failures by cause, and how many streams had how many events."""

    spans: list[tuple[float, float]] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    events: Counter[int] = field(default_factory=Counter)


async def _read_stream(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read a chunked SSE body to its end: (events, whether the last one was [DONE])."""
    events, last = 0, b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return events, last.rstrip().endswith(b"[DONE]")
        data = await reader.readexactly(size + 2)
        events += data.count(b"data:")
        last = data[:-2] or last


async def _one(port: int, at: float, timeout: float, out: Outcome) -> None:
    """One stream on its own connection, opened at monotonic ``at``; into ``out``."""
    await asyncio.sleep(max(0.0, at - time.monotonic()))
    opened: list[float] = []  # when the request was sent (the gateway may hold the answer's
    # head back until the first content, to fail over a stream that breaks before it)
    try:
        if await asyncio.wait_for(_request(port, opened, out), timeout):
            out.spans.append((opened[0], time.monotonic()))
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
            asyncio.TimeoutError, ValueError, IndexError) as exc:
        out.failures[type(exc).__name__] += 1


async def _request(port: int, opened: list[float], out: Outcome) -> bool:
    """Send the request, read the whole stream; whether it ended with [DONE]."""
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(STREAM_BODY)}\r\n"
            "Connection: close\r\n\r\n").encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + STREAM_BODY)
        opened.append(time.monotonic())
        status = (await reader.readuntil(b"\r\n\r\n")).split(b" ", 2)[1].decode()
        if status != "200":
            out.failures[f"HTTP {status}"] += 1
            return False
        events, done = await _read_stream(reader)
        out.events[events] += 1
        if not done:
            out.failures["no [DONE]"] += 1
        return done
    finally:
        writer.close()


async def _client(port: int, starts: list[float], timeout: float) -> Outcome:
    out = Outcome()
    await asyncio.gather(*(_one(port, at, timeout, out) for at in starts))
    return out


def client_child(port: int, first: float, step: float, count: int, timeout: float) -> None:
    """Run in a subprocess: ``count`` streams, the i-th opened at monotonic ``first + i*step``;
    print the :class:`Outcome` as JSON."""
    import uvloop

    raise_fd_limit()
    out = uvloop.run(_client(port, [first + i * step for i in range(count)], timeout))
    print(json.dumps({"spans": out.spans, "failures": out.failures, "events": out.events}))



if __name__ == "__main__":
    port, first, step, count, timeout = sys.argv[1:]
    client_child(int(port), float(first), float(step), int(count), float(timeout))
