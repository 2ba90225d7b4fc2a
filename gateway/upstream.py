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
chat answer, these checks cost about 3 us of CPU per answer, and ``read(expect_json=True)``
(a 2xx body must be UTF-8 JSON, which the proxy asks for) 4 us more.

A reused keep-alive connection the provider closed while it sat idle is retried once on a fresh
connection (nothing came back, so it is no failure of the provider); every other failure is
raised as an :class:`gateway.errors.AttemptFailed` whose message names the cause. A response
that failed, or was closed before its end, closes its connection (never back to the pool),
which is also how the provider learns that the client went away.
"""

from __future__ import annotations

import asyncio
import json
import ssl as ssl_module
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

from gateway.errors import (
    AttemptFailed,
    ConnectFailed,
    FirstByteTimeout,
    MalformedAnswer,
    StreamBroken,
)

HIGH_WATER = 256 * 1024  # pause reading a provider once this much is buffered unread
# An answer's status line and headers; real providers send well under 2 KiB. Past this it is a
# failed attempt, before the parser has buffered more (httptools keeps a header whole).
MAX_HEAD_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Deadline:
    """A moment (``time.monotonic()``) by which a reader must be done, and how to say it wasn't."""

    at: float
    seconds: float
    what: str

    @classmethod
    def after(cls, seconds: float, what: str = "answer not complete") -> Deadline:
        return cls(time.monotonic() + seconds, seconds, what)

    def missed(self) -> StreamBroken:
        """The error of a reader that was not done in time (a 504)."""
        return StreamBroken(f"{self.what} within {self.seconds:g}s", timeout=True)


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


class _Conn(asyncio.Protocol):
    """One connection to a provider and the response being read on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.pieces: list[bytes] = []
        self.buffered = 0
        self.head_bytes = 0  # received while the head is incomplete
        self.head_size = 0  # of the parsed status line and headers
        self.body_bytes = 0
        self.got_bytes = self.headers_done = self.complete = self.paused = False
        self.keep_alive = False
        self.error: AttemptFailed | None = None
        self.waiter: asyncio.Future[bool] | None = None

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        if not self.headers_done:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(MalformedAnswer(self._malformed(exc)))
            self.abort()
            return
        if not self.headers_done and self.head_bytes > MAX_HEAD_BYTES:
            self._fail(MalformedAnswer(f"response head over {MAX_HEAD_BYTES} bytes"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.complete:
            return
        how = "reset" if isinstance(exc, ConnectionResetError) else "closed"
        if self.headers_done and self._close_delimited():
            self.complete = True  # the end of the connection is the end of the body
            self._wake()
        elif self.headers_done:
            self._fail(StreamBroken(self._cut_short(how)))
        elif self.got_bytes:
            self._fail(ConnectFailed(f"the provider {how} the connection mid-head, after "
                                     f"{self.head_bytes} bytes"))
        else:
            self._fail(ConnectFailed(f"the provider {how} the connection before answering"))

    # -- httptools callbacks -----------------------------------------------------------------
    def on_status(self, reason: bytes) -> None:
        self.head_size += len(reason) + 15  # "HTTP/1.1 200 " and CRLF

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))
        self.head_size += len(name) + len(value) + 4

    def on_headers_complete(self) -> None:
        if self.head_size > MAX_HEAD_BYTES:  # a head that came in one read with its body
            self._fail(MalformedAnswer(f"response head over {MAX_HEAD_BYTES} bytes"))
            return  # headers_done stays False: the answer is never handed out
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()  # only meaningful until the body
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.pieces.append(body)
        self.buffered += len(body)
        self.body_bytes += len(body)
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self._wake()

    # -- used by Upstream / UpstreamResponse --------------------------------------------------
    def _close_delimited(self) -> bool:
        names = {n for n, _ in self.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    def _length(self) -> bytes | None:
        return next((v for n, v in self.headers if n == b"content-length"), None)

    def _cut_short(self, how: str) -> str:
        """Why a body the provider stopped sending is incomplete."""
        length = self._length()
        if length is not None:
            return (f"Content-Length says {length.decode('latin-1')}, the provider {how} the "
                    f"connection after {self.body_bytes} bytes")
        return f"the provider {how} the connection mid-body, after {self.body_bytes} bytes"

    def _malformed(self, exc: Exception) -> str:
        if not self.complete:
            return f"malformed HTTP answer: {exc}"
        length = self._length()
        said = f" (Content-Length says {length.decode('latin-1')})" if length else ""
        return f"the provider sent bytes after the end of its answer{said}"

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def _fail(self, error: AttemptFailed) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    async def wait(self, timeout: float) -> bool:
        """Wait for news (headers, data, end, error); False if ``timeout`` passed first."""
        waiter = self.waiter = self.loop.create_future()
        timer = self.loop.call_later(timeout, _expire, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            self.waiter = None

    def take(self) -> bytes:
        """Everything received and not yet taken."""
        pieces = self.pieces
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        self.pieces = []
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    def reusable(self) -> bool:
        return (self.complete and not self.closed and self.error is None
                and not self.pieces and self.keep_alive)

    def idle_clean(self) -> bool:
        """An idle connection still fit to send on: open, and nothing arrived while idle."""
        return not self.closed and not self.got_bytes

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class UpstreamResponse:
    """A provider's answer: status and headers now, the body as it arrives. Always close it."""

    def __init__(self, pool: Upstream, origin: Origin, conn: _Conn, deadline: Deadline) -> None:
        self._pool, self._origin, self._conn = pool, origin, conn
        self._deadline = deadline  # of the whole answer, for read()
        self.status = conn.status
        self.headers = conn.headers
        self._released = False

    def header(self, name: bytes) -> bytes | None:
        """The first value of a header (``name`` in lower case)."""
        return next((v for n, v in self.headers if n == name), None)

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

    async def read(self, timeout: float, *, expect_json: bool = False) -> bytes:
        """The whole body: ``timeout`` between two pieces, at most the pool's
        ``max_response_bytes``, and done within its ``total_timeout`` of the request. With
        ``expect_json``, a body that is not UTF-8 JSON is a :class:`MalformedAnswer`. A failed
        read closes the connection."""
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
            body = parts[0] if len(parts) == 1 else b"".join(parts)
            if expect_json:
                _check_json(body)
            return body
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


def _check_json(body: bytes) -> None:
    try:
        json.loads(body.decode())
    except UnicodeDecodeError as exc:
        raise MalformedAnswer(f"the answer is not UTF-8: {exc}") from None
    except ValueError as exc:
        raise MalformedAnswer(f"the answer is not JSON: {exc}: {body[:60]!r}") from None


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
        self._idle: dict[Origin, list[_Conn]] = {}
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

    async def _send(self, conn: _Conn, data: bytes, timeout: float) -> None:
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

    def _idle_conn(self, origin: Origin) -> _Conn | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if conn.idle_clean():
                return conn
            conn.abort()
        return None

    async def _connect(self, origin: Origin) -> _Conn:
        loop = asyncio.get_running_loop()
        tls = self._tls_context() if origin.tls else None
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Conn(loop), origin.host, origin.port, ssl=tls),
                self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as exc:
            reason = str(exc) or f"no connection within {self.connect_timeout:g}s"
            raise ConnectFailed(reason) from None
        return conn

    def _tls_context(self) -> ssl_module.SSLContext:
        if self._tls is None:
            self._tls = ssl_module.create_default_context()
        return self._tls

    def _release(self, origin: Origin, conn: _Conn) -> None:
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
