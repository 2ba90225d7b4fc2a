"""The probe's own HTTP/1.1 GET against a real socket with canned answers: status, headers
sent, the body when whole and small, and what counts as no answer."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable

from support.echo import free_port

from supervisor.config import ProviderConfig, ReadyWhen
from supervisor.lifecycle.probe import BODY_MAX, Prober, ProbeResult, fetch
from supervisor.proc.listens import _proc_net_listens, listening

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def answering(raw: bytes) -> tuple[Handler, list[bytes]]:
    """A handler that records the request head and sends ``raw``."""
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(raw)
        await writer.drain()
        writer.close()

    return handle, heads


def probe(handler: Handler | None, timeout: float = 2.0, **fields: object) -> ProbeResult:
    async def main() -> ProbeResult:
        port = free_port()
        server = None
        if handler is not None:
            server = await asyncio.start_server(handler, "127.0.0.1", port)
        provider = ProviderConfig(name="p", port=port, runtime="python", start=("x",),
                                  health="/health", **fields)  # type: ignore[arg-type]
        try:
            return await Prober(timeout).probe(provider)
        finally:
            if server is not None:
                server.close()

    return asyncio.run(main())


def test_a_whole_small_body_comes_with_the_status_and_the_key_is_sent() -> None:
    handle, heads = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}")
    result = probe(handle, key="sk-probe")
    assert (result.alive, result.ready, result.status) == (True, True, 200)
    assert result.body == b'{"status":"ok"}'
    assert heads[0].startswith(b"GET /health HTTP/1.1\r\n")
    assert b"Authorization: Bearer sk-probe\r\n" in heads[0]


def test_a_chunked_body_is_decoded_and_a_close_delimited_one_read_to_the_end() -> None:
    chunked, _ = answering(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    assert probe(chunked).body == b"abcde"
    closing, _ = answering(b"HTTP/1.0 200 OK\r\n\r\nuntil the end")
    assert probe(closing).body == b"until the end"


def test_an_error_status_is_alive_not_ready_and_ready_when_any_accepts_it() -> None:
    handle, _ = answering(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
    result = probe(handle)
    assert (result.alive, result.ready, result.status, result.body) == (True, False, 503, b"")
    assert probe(handle, ready_when=ReadyWhen("any")).ready


def test_a_body_too_long_or_an_event_stream_is_not_kept_but_the_status_stands() -> None:
    big = b"x" * (BODY_MAX + 1)
    long, _ = answering(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big))
    result = probe(long)
    assert result.ready and result.body is None

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
        while True:
            writer.write(b"data: tick\n\n")
            await writer.drain()
            await asyncio.sleep(0.01)

    result = probe(endless)
    assert result.ready and result.body is None


def test_a_body_that_does_not_finish_in_time_leaves_the_status() -> None:
    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await asyncio.sleep(5)

    result = probe(stalls, timeout=0.5)
    assert (result.alive, result.status, result.body) == (True, 200, None)


def test_refused_silent_and_non_http_answers_are_not_alive() -> None:
    refused = probe(None)
    assert not refused.alive and refused.describe() == "connection refused"

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    assert probe(silent, timeout=0.3).describe() == "timed out"
    garbage, _ = answering(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    result = probe(garbage)
    assert not result.alive and "not an HTTP answer" in result.describe()
    hangup, _ = answering(b"")
    assert probe(hangup).describe() == "connection closed before an answer"


def test_a_probe_cancelled_at_any_moment_before_its_end_ends_cancelled() -> None:
    """A cancel is never lost (Python 3.11's wait_for drops one that comes as its inner task
    finishes, and the probe loop then outlives its stop): a probe is cancelled after 0, 1, 2,
    ... turns of the event loop, until one turn count sees it over before the cancel."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):  # a cancelled probe
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
        writer.close()

    async def main() -> tuple[list[int], int]:
        port = free_port()
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        lost = []
        try:
            for turns in range(1000):
                task = asyncio.create_task(fetch(port, "/health", {}, 5.0))
                for _ in range(turns):
                    await asyncio.sleep(0)
                if task.done():  # every moment of a probe before its end was tried
                    assert task.result().status == 200
                    return lost, turns
                task.cancel()
                try:
                    await task
                    lost.append(turns)  # it answered: the cancel was dropped
                except asyncio.CancelledError:
                    pass
            return lost, -1
        finally:
            server.close()

    lost, turns = asyncio.run(main())
    assert turns > 0 and lost == []


def test_listening_sockets_are_found_per_process_as_the_proc_tables_say() -> None:
    with socket.socket() as v4, socket.socket(socket.AF_INET6) as v6:
        v4.bind(("127.0.0.1", 0))
        v4.listen()
        v6.bind(("::1", 0))
        v6.listen()
        found = listening([os.getpid()])
        assert ("127.0.0.1", v4.getsockname()[1]) in found
        assert ("::1", v6.getsockname()[1]) in found
        proc_table = set(_proc_net_listens().values())
        assert found <= proc_table
