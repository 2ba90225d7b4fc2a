"""The one pooled HTTP/1.1 client the gateway talks to every provider with.

Why not httpx: measured in front of the echo provider on this 2-core machine, an httpx
``AsyncClient`` costs the gateway about 1 ms of CPU per proxied call (3 ms at 64 concurrent
clients), aiohttp 0.2-0.35 ms, and this client, an ``asyncio.Protocol`` around the same
``httptools`` parser uvicorn uses, about 0.05 ms. Providers are local HTTP/1.1 servers, so this
is all the client needs to be: keep-alive connections pooled per origin (at most
``max_connections`` busy at once), chunked / length / close-delimited bodies, a timeout to
connect, one to the first byte and one between chunks, and a response that is read piece by
piece as it arrives (``next_piece``), so a stream is never buffered.

A provider is not trusted to answer well-formed HTTP. Every malformed answer is a failed
attempt, never a hang, a crash or a leaked connection: a head (status line and headers) over
:data:`MAX_HEAD_BYTES`, a body that is not HTTP framing, a ``Content-Length`` that lies, a
connection closed or reset at any point. A whole (non-streaming) body is refused past
``max_response_bytes`` and must end within ``total_timeout`` of the request (``read_timeout``
alone restarts at every byte, so a drip of one byte a second would hold the call for ever);
a stream's reader passes its own :class:`Deadline` to ``next_piece``. Measured on a 300-byte
chat answer, these checks cost about 3 us of CPU per answer. The connection itself, the
``asyncio.Protocol`` that feeds httptools and enforces the head limit, is
:class:`gateway.connection.Connection`.

A reused keep-alive connection the provider closed while it sat idle is retried once on a fresh
connection (nothing came back, so it is no failure of the provider); every other failure is
raised as an :class:`gateway.errors.AttemptFailed` whose message names the cause. A response
that failed, or was closed before its end, closes its connection (never back to the pool),
which is also how the provider learns that the client went away.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.connection import Connection, Deadline
from gateway.errors import (
    AttemptFailed,
    ConnectFailed,
    FirstByteTimeout,
    MalformedAnswer,
    StreamBroken,
)


@dataclass(frozen=True)
class Origin:
    """Where a provider listens: scheme, host, port, and a path prefix (no trailing slash)."""

    host: str
    port: int
    tls: bool = False
    prefix: str = ""

    @classmethod
    def parse(cls, base_url: str) -> Origin:
        """``http://127.0.0.1:8001`` or ``.../v1`` (the ``/v1`` is dropped: routes add it)."""
        parts = urlsplit(base_url)
        tls = parts.scheme == "https"
        prefix = parts.path.rstrip("/").removesuffix("/v1")
        return cls(parts.hostname or "127.0.0.1", parts.port or (443 if tls else 80), tls, prefix)

    def head(self, method: str, path: str, headers: dict[str, str]) -> bytes:
        """A request head up to (not including) the Content-Length value."""
        lines = [f"{method} {self.prefix}{path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")


class UpstreamResponse:
    """A provider's answer: status and headers now, the body as it arrives. Always close it."""

    def __init__(self, pool: Upstream, origin: Origin, conn: Connection,
                 deadline: Deadline) -> None:
        self._pool, self._origin, self._conn = pool, origin, conn
        self._deadline = deadline  # of the whole answer, for read()
        self.status = conn.status
        self.headers = conn.headers
        self._released = False

    def header(self, name: bytes) -> bytes | None:
        """The first value of a header (``name`` in lower case)."""
        return next((v for n, v in self.headers if n == name), None)

    def retry_after(self) -> float | None:
        """``Retry-After`` in seconds, if it says so (an HTTP date is not worth parsing for a
        local provider)."""
        value = self.header(b"retry-after")
        try:
            return max(0.0, float(value)) if value else None
        except ValueError:
            return None

    def ended(self) -> bool:
        """The body ended cleanly and every byte of it was taken: the next piece is ``b""``."""
        conn = self._conn
        return conn.complete and not conn.pieces and conn.error is None

    async def next_piece(self, timeout: float, deadline: Deadline | None = None) -> bytes:
        """The body bytes that arrived since the last call (waiting up to ``timeout`` for
        some, and not past ``deadline``); ``b""`` at the end. Raises :class:`StreamBroken` if
        the provider fails (a 504 one if it was too slow)."""
        conn = self._conn
        while True:
            if conn.pieces:
                return conn.take()
            if conn.error is not None:  # checked first: bytes after the end are an error too
                error = conn.error
                raise error if isinstance(error, StreamBroken) else StreamBroken(str(error))
            if conn.complete:
                return b""
            wait = timeout
            if deadline is not None:
                wait = min(timeout, deadline.at - time.monotonic())
                if wait <= 0:
                    raise deadline.missed()
            if not await conn.wait(wait):
                if deadline is not None and wait < timeout:
                    raise deadline.missed()
                raise StreamBroken(f"no data for {timeout:g}s", timeout=True)

    async def read(self, timeout: float) -> bytes:
        """The whole body: ``timeout`` between two pieces, at most the pool's
        ``max_response_bytes``, and done within its ``total_timeout`` of the request. A failed
        read closes the connection. (Whether a 2xx body is really an answer is for
        :func:`gateway.truth.check_answer` to say, which parses it once.)"""
        limit = self._pool.max_response_bytes
        try:
            length = self.header(b"content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                raise MalformedAnswer(f"Content-Length {int(length)} is over the limit of "
                                      f"{limit} bytes")
            parts, size = [], 0
            while piece := await self.next_piece(timeout, self._deadline):
                size += len(piece)
                if size > limit:
                    raise MalformedAnswer(f"body over {limit} bytes")
                parts.append(piece)
            return parts[0] if len(parts) == 1 else b"".join(parts)
        except AttemptFailed:
            self._conn.abort()  # never back to the pool, whatever close() finds
            raise

    def close(self) -> None:
        """Give the connection back for reuse if the answer was read to its end, else close it."""
        if self._released:
            return
        self._released = True
        self._pool._release(self._origin, self._conn)

    def discard(self) -> None:
        """Close the connection, never to be reused: its provider failed the attempt (even a
        well-framed answer that lied is reason enough not to trust the connection again)."""
        if not self._released:
            self._conn.abort()
        self.close()


class Upstream:
    """The pool: idle keep-alive connections per origin, at most ``max_connections`` busy.

    ``total_timeout`` and ``max_response_bytes`` bound a whole body read with ``read``.
    """

    def __init__(self, *, max_connections: int = 1000, connect_timeout: float = 3.0,
                 total_timeout: float = 180.0, max_response_bytes: int = 32 * 1024 * 1024,
                 ) -> None:
        self.connect_timeout = connect_timeout
        self.total_timeout = total_timeout
        self.max_response_bytes = max_response_bytes
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[Origin, list[Connection]] = {}
        self._tls: ssl_module.SSLContext | None = None

    async def request(self, origin: Origin, data: bytes, first_byte_timeout: float,
                      ) -> UpstreamResponse:
        """Send a whole request (head and body) and wait for the answer's status and headers."""
        deadline = Deadline.after(self.total_timeout)
        await self._slots.acquire()
        try:
            conn = self._idle_conn(origin)
            if conn is not None:
                try:
                    await self._send(conn, data, first_byte_timeout)
                    return UpstreamResponse(self, origin, conn, deadline)
                except ConnectFailed:
                    if conn.got_bytes:
                        raise  # it did answer something: a real failure, not a stale socket
            conn = await self._connect(origin)
            await self._send(conn, data, first_byte_timeout)
            return UpstreamResponse(self, origin, conn, deadline)
        except BaseException:
            self._slots.release()
            raise

    async def _send(self, conn: Connection, data: bytes, timeout: float) -> None:
        assert conn.transport is not None
        until = time.monotonic() + timeout  # the whole head, however slowly it drips
        try:
            conn.transport.write(data)
            while not conn.headers_done:
                if conn.error is not None:
                    raise conn.error
                left = until - time.monotonic()
                if left <= 0 or not await conn.wait(left):
                    raise FirstByteTimeout(f"no answer within {timeout:g}s")
        except (AttemptFailed, RuntimeError, OSError, asyncio.CancelledError) as exc:
            conn.abort()
            if isinstance(exc, (RuntimeError, OSError)):
                raise ConnectFailed(str(exc)) from None
            raise

    def _idle_conn(self, origin: Origin) -> Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if conn.idle_clean():
                return conn
            conn.abort()
        return None

    async def _connect(self, origin: Origin) -> Connection:
        loop = asyncio.get_running_loop()
        tls = self._tls_context() if origin.tls else None
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: Connection(loop), origin.host, origin.port,
                                       ssl=tls),
                self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            reason = str(exc) or f"no connection within {self.connect_timeout:g}s"
            raise ConnectFailed(reason) from None
        return conn

    def _tls_context(self) -> ssl_module.SSLContext:
        if self._tls is None:
            self._tls = ssl_module.create_default_context()
        return self._tls

    def _release(self, origin: Origin, conn: Connection) -> None:
        self._slots.release()
        if conn.reusable():
            conn._reset()
            self._idle.setdefault(origin, []).append(conn)
        else:
            conn.abort()

    async def aclose(self) -> None:
        """Close every idle connection."""
        for idle in self._idle.values():
            for conn in idle:
                conn.abort()
        self._idle.clear()
