"""A stream's end in the server messages the gateway sends: a stream whose provider had
ended it when its last piece went out ends in that piece (its chunked end goes in the same
write); one whose end was still to come ends with an empty last message. The ASGI messages
are what is checked, so the app is called in process, in front of replay providers on real
sockets (tests/support/replay.py) that send exact bytes, pauses where the test needs them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from support.asgi import http_scope
from support.replay import ROLE, Bench, Replay, chunk

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
EVENTS = [ROLE, chunk({"content": "one "}), chunk({"content": "two"}), chunk({}, "stop"),
          b"data: [DONE]\n\n"]
END = b"0\r\n\r\n"


def chunked(*events: bytes) -> bytes:
    return b"".join(b"%x\r\n%b\r\n" % (len(e), e) for e in events)


BODY = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


async def stream_messages(bench: Bench, provider: str) -> list[dict[str, Any]]:
    """The ASGI messages the gateway sends for one streamed chat pinned to ``provider``."""
    body = json.dumps(BODY).encode()
    port = bench.config.gateway.port
    scope = http_scope("POST", "/v1/chat/completions", port, [
        (b"host", b"127.0.0.1:%d" % port), (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)), (b"x-unigw-provider", provider.encode())])
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # the client stays: the disconnect watch waits for ever
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await bench.server.config.app(scope, receive, send)
    return sent


def test_a_stream_the_provider_had_ended_ends_in_its_last_piece(tmp_path: Path) -> None:
    whole = Replay(stream=[HEAD + chunked(*EVENTS) + END])  # one write: it arrives whole
    with Bench(tmp_path, {"whole": whole}) as bench:
        sent = bench.run(stream_messages(bench, "whole"))
        assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
        assert sent[1:] == [{"type": "http.response.body", "body": b"".join(EVENTS)}]
        stats = bench.stats("whole")
        assert (stats.requests, stats.errors, stats.in_flight, stats.latency_count) == (
            1, 0, 0, 1)


def test_a_stream_whose_end_is_still_to_come_ends_with_an_empty_last_message(
        tmp_path: Path) -> None:
    late = Replay(stream=[HEAD + chunked(*EVENTS), 0.3, END])
    with Bench(tmp_path, {"late": late}) as bench:
        sent = bench.run(stream_messages(bench, "late"))
        assert sent[1:] == [
            {"type": "http.response.body", "body": b"".join(EVENTS), "more_body": True},
            {"type": "http.response.body", "body": b""},
        ]
        stats = bench.stats("late")
        assert (stats.requests, stats.errors, stats.in_flight, stats.latency_count) == (
            1, 0, 0, 1)
