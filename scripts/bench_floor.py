"""The floors under the gateway's cost, measured in the same run as the gateway (bench.py).

Two ASGI apps, each served by uvicorn exactly as the gateway is served (httptools, uvloop, no
access log), in a process of its own:

``constant``
    answers every request with the same chat completion, reading nothing: what uvicorn itself
    costs per call. No ASGI gateway can cost less.
``proxy``
    passes each request to the echo providers in turn through the gateway's own upstream
    client (:class:`gateway.upstream.Upstream`) and their answer back, a stream as it comes:
    uvicorn plus the client side of a call, with none of unigw's features (no routing,
    failover, key check, truth judge, statistics or request log).

The gateway's CPU per call above ``proxy`` is what its features cost; ``constant`` and
``proxy`` are what a target below them would have to beat without uvicorn.

    python scripts/bench_floor.py constant|proxy PORT [UPSTREAM_PORT ...]
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import uvicorn  # noqa: E402

from gateway.upstream import Origin, Upstream  # noqa: E402

ANSWER = (b'{"id":"chatcmpl-floor","object":"chat.completion","created":0,"model":"echo-1",'
          b'"choices":[{"index":0,"message":{"role":"assistant","content":"hello from the '
          b'benchmark, echo this back please"},"finish_reason":"stop"}],"usage":'
          b'{"prompt_tokens":9,"completion_tokens":9,"total_tokens":18}}')
JSON_HEAD = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ANSWER))]
SSE_HEAD = [(b"content-type", b"text/event-stream")]
TIMEOUT = 30.0

Scope = dict[str, Any]


async def _lifespan(receive: Any, send: Any, on_start: Any = None) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if on_start is not None:
                on_start()
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _body(receive: Any) -> bytes:
    pieces = []
    while True:
        message = await receive()
        pieces.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(pieces)


async def constant(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await _body(receive)
    await send({"type": "http.response.start", "status": 200, "headers": JSON_HEAD})
    await send({"type": "http.response.body", "body": ANSWER})


class BareProxy:
    """Each request to the next upstream, unchanged; its answer back, a stream piece by piece."""

    def __init__(self, ports: list[int]) -> None:
        self.origins = itertools.cycle([Origin("127.0.0.1", p) for p in ports])
        self.upstream: Upstream | None = None

    def _start(self) -> None:
        self.upstream = Upstream()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send, self._start)
        assert self.upstream is not None
        body = await _body(receive)
        origin = next(self.origins)
        head = origin.head(scope["method"], scope["path"], {"Content-Type": "application/json"})
        response = await self.upstream.request(
            origin, b"%b%d\r\n\r\n%b" % (head, len(body), body), TIMEOUT)
        try:
            if response.header(b"content-type") == b"text/event-stream":
                await send({"type": "http.response.start", "status": response.status,
                            "headers": SSE_HEAD})
                while piece := await response.next_piece(TIMEOUT):
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
                return
            data = await response.read(TIMEOUT)
            await send({"type": "http.response.start", "status": response.status, "headers": [
                (b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]})
            await send({"type": "http.response.body", "body": data})
        finally:
            response.close()


def main(argv: list[str]) -> None:
    kind, port, upstreams = argv[0], int(argv[1]), [int(p) for p in argv[2:]]
    app = constant if kind == "constant" else BareProxy(upstreams)
    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                log_level="warning", access_log=False, lifespan="on")


if __name__ == "__main__":
    main(sys.argv[1:])
