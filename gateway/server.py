"""How uvicorn serves the gateway: httptools, plus a deadline for reading each request.

uvicorn (0.54) has a keep-alive timeout but no limit on how long a client may take to send a
request: a client that opens a connection and sends nothing, or trickles a request head or body
a byte at a time, holds its connection (and a file descriptor) for ever. Measured: 400 such
connections stayed open indefinitely. :class:`GuardedHttpTools` notes when a connection opens
and when each further request on it begins, and when that request has arrived whole; a timer
checks, ``request_timeout`` after the beginning it knows of, whether that request is still
arriving, and closes the connection if so. The timer is armed once and moved on only when it
fires (a timer armed and cancelled per request was 2-3% of a proxied call's instructions).
Once a request is in, its answer may take as long as the provider needs (streams stay open
for minutes).

``limit_concurrency`` bounds the connections at once: past it uvicorn answers 503 at once.

uvicorn also marks only the connection's *newest* request as disconnected when the client goes
away: a client that pipelines a second request and closes left the first one's answer to be
written to a closed transport, and uvicorn logged "Exception in ASGI application" for it.
:class:`GuardedHttpTools` marks the request being answered too, so the gateway sees the
disconnect (and cancels the provider attempt) and writes nothing.

uvicorn writes a response's status line and headers as soon as the app sends
``http.response.start``, and its body with the next message: two ``write`` system calls for a
whole answer, the most expensive single steps of a proxied call (PROFILE.md). Each request's
writes go through a :class:`HeadWithBody`, which holds the head until the body's first write
and sends the two together (or, if the body is slow to come, at the loop's next turn).
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from supervisor.config import Config


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for receiving each whole request."""

    request_timeout = 30.0  # set per server by :func:`server_config`

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._began = 0.0  # loop time the request now arriving began
        self._arriving = False  # a request (or the connection's first bytes) is not in yet
        self._answering: RequestResponseCycle | None = None  # the request being answered

    def _arm(self) -> None:
        """A request begins to arrive (or the connection opened): it has until
        ``request_timeout`` from now."""
        self._began = self.loop.time()
        self._arriving = True
        if self._deadline is None:
            self._deadline = self.loop.call_at(self._began + self.request_timeout, self._check)

    def _disarm(self) -> None:
        """The request has arrived whole (the timer, if any, finds nothing to do)."""
        self._arriving = False

    def _check(self) -> None:
        self._deadline = None
        if not self._arriving or self.transport.is_closing():
            return  # whatever began since is armed again by its own beginning
        due = self._began + self.request_timeout
        if self.loop.time() < due:  # a later request began since: check again at its due
            self._deadline = self.loop.call_at(due, self._check)
        else:
            self.transport.close()  # the request never arrived whole: nothing to answer

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # covers a client that connects and sends nothing

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        cycle = self._answering
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # uvicorn marks only the newest (pipelined) request
            cycle.message_event.set()
        super().connection_lost(exc)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        self._answering = cycle  # one at a time: a pipelined request starts after the last
        if cycle.scope["method"] != "HEAD":  # a HEAD answer has no body write to wait for
            cycle.transport = HeadWithBody(self.transport, self.loop)  # type: ignore[assignment]
        super()._start_asgi_task(cycle, app)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()  # the next request on a kept-alive connection gets its own deadline

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()


class HeadWithBody:
    """One request's view of its connection's transport: the response head is held until the
    body's first write and written with it, in one system call (see the module docstring).

    A head whose body does not follow at once (a stream waiting for its first event) goes out
    at the event loop's next turn; ``close`` sends a held head first. uvicorn's
    ``100 Continue`` is never held: the client waits for it before sending its body.
    """

    __slots__ = ("_transport", "_loop", "_head", "_flush", "_started")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None
        self._flush: asyncio.Handle | None = None
        self._started = False

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            if self._flush is not None:
                self._flush.cancel()
            self._transport.write(head + data)
        elif self._started or data.startswith(b"HTTP/1.1 100 "):
            self._transport.write(data)
        else:  # the response head: uvicorn's first write of a request but a 100 Continue
            self._started = True
            self._head = data
            self._flush = self._loop.call_soon(self.send_head)

    def send_head(self) -> None:
        """Write the held head, if any (the body did not follow within the loop's turn)."""
        head, self._head = self._head, None
        if head is not None and not self._transport.is_closing():
            self._transport.write(head)

    def close(self) -> None:
        self.send_head()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:  # anything else uvicorn may ask of a transport
        return getattr(self._transport, name)


def server_config(app: Any, config: Config) -> uvicorn.Config:
    """How uvicorn serves the gateway, the same for ``unigw up`` and ``unigw gateway``:
    httptools with the request deadline, no access log, no proxy-header rewriting (it listens
    for clients directly), and at most ``gateway.max_clients`` connections at once.
    """
    gw = config.gateway
    protocol = type("GatewayHttp", (GuardedHttpTools,), {"request_timeout": gw.request_timeout})
    return uvicorn.Config(app, host=gw.host, port=gw.port, log_level="warning",
                          access_log=False, proxy_headers=False, loop="none", http=protocol,
                          lifespan="on", timeout_graceful_shutdown=3,
                          limit_concurrency=gw.max_clients)
