"""One keep-alive connection to a provider: an ``asyncio.Protocol`` that feeds the ``httptools``
parser uvicorn uses, keeps what arrived for the reader, and refuses what is not HTTP.

Every way a provider can answer badly ends here as one :class:`gateway.errors.AttemptFailed`
with the cause in its message: a head (status line and headers) over :data:`MAX_HEAD_BYTES`,
framing httptools rejects, a ``Content-Length`` that lies, a close or reset at any point. Reading
pauses when :data:`HIGH_WATER` bytes wait unread, so a fast provider cannot fill the gateway's
memory faster than the client takes it. The pool and the response that use it are in
:mod:`gateway.upstream`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httptools

from gateway.errors import AttemptFailed, ConnectFailed, MalformedAnswer, StreamBroken

HIGH_WATER = 256 * 1024  # pause reading a provider once this much is buffered unread
# An answer's status line and headers; real providers send well under 2 KiB. Past this it is a
# failed attempt, before the parser has buffered more (httptools keeps a header whole).
MAX_HEAD_BYTES = 64 * 1024


@dataclass(slots=True)
class Deadline:
    """A moment (``time.monotonic()``) by which a reader must be done, and how to say it wasn't.
    (Not frozen: a stream makes one per event, and a frozen one costs twice as much to build.)"""

    at: float
    seconds: float
    what: str

    @classmethod
    def after(cls, seconds: float, what: str = "answer not complete") -> Deadline:
        return cls(time.monotonic() + seconds, seconds, what)

    def missed(self) -> StreamBroken:
        """The error of a reader that was not done in time (a 504)."""
        return StreamBroken(f"{self.what} within {self.seconds:g}s", timeout=True)


class Connection(asyncio.Protocol):
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
        # once a read, not in each callback: httptools calls on_body for every chunk of a
        # chunked body, and a provider's stream has a chunk per event (a dozen in one read)
        self._wake()

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

    def on_body(self, body: bytes) -> None:
        self.pieces.append(body)
        size = len(body)
        self.buffered += size
        self.body_bytes += size
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        self.complete = True

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


