"""What the raw ASGI endpoints share: reading a request, sending an answer, passing a stream.

The hot routes (``/v1/chat/completions``, ``/v1/completions``, the translated APIs) are ASGI
apps rather than Starlette request/response endpoints: Starlette's ``Request`` and
``Response`` objects cost more than the proxying itself. These helpers are all they need, on
``starlette.types``. Errors are answered by :func:`send_error`, which sends what
:func:`gateway.errors.answer` makes, the same bytes the Starlette exception handlers send.
"""

from __future__ import annotations

import asyncio
import hmac
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qs

from starlette.types import Receive, Scope, Send

from gateway import jsonio
from gateway.errors import (
    OPENAI,
    BadRequest,
    BodyTooLarge,
    ClientGone,
    Envelope,
    GatewayError,
    Unauthorized,
)
from gateway.errors import answer as error_answer

Headers = dict[bytes, bytes]
T = TypeVar("T")

JSON = b"application/json"
SSE = b"text/event-stream"
PIN_HEADER = b"x-unigw-provider"
KEY_HEADERS = (b"authorization", b"x-api-key", b"x-goog-api-key")
WATCH_AFTER_S = 0.25  # into a call, when its client begins to be watched (see _Watch)
WATCH_TICK_S = 0.125  # how often the blocks open that long are looked for


# -- the request ---------------------------------------------------------------------------------

def headers_of(scope: Scope) -> Headers:
    """The request headers by lower-case name (the last value wins: fine for those read here)."""
    return dict(scope["headers"])


def authorize(keys: tuple[bytes, ...], headers: Headers, query_key: bytes | None = None) -> None:
    """401 unless a gateway key came as a bearer, ``x-api-key``, ``x-goog-api-key`` or (Gemini's
    ``?key=``) ``query_key``; anything goes when no keys are configured."""
    if not keys:
        return
    bearer = headers.get(b"authorization")  # the common case first: no list, no generator
    if bearer is not None and bearer[:7].lower() == b"bearer ":
        token = bearer[7:]
        for key in keys:
            if hmac.compare_digest(token, key):
                return
    tokens = [query_key] if query_key else []
    for name in KEY_HEADERS:
        value = headers.get(name)
        if value is not None:
            tokens.append(value[7:] if value[:7].lower() == b"bearer " else value)
    if any(hmac.compare_digest(token, key) for token in tokens for key in keys):
        return
    if bearer is None and not tokens:
        raise Unauthorized("a gateway API key is required: send it as 'Authorization: Bearer "
                           "KEY', 'x-api-key: KEY' or 'x-goog-api-key: KEY'")
    raise Unauthorized("the API key sent is not one of the gateway's keys (gateway.api_keys)")


async def read_body(headers: Headers, receive: Receive, limit: int) -> bytes:
    """The request body; 413 past ``limit`` bytes (by Content-Length or as it arrives).

    The pieces are joined once at the end: ``bytes +=`` per piece copies the body so far each
    time (an 8 MB body in 1 KB pieces cost 1.94 s of CPU that way, against 0.05 s at once).
    """
    length = headers.get(b"content-length")
    if length is not None and length.isdigit() and (len(length) > 18 or int(length) > limit):
        raise BodyTooLarge(f"request body of {length.decode()} bytes is over the limit of {limit}")
    message = await receive()
    first = message.get("body", b"")
    if not message.get("more_body"):
        if len(first) > limit:
            raise BodyTooLarge(f"request body of {len(first)} bytes is over the limit of {limit}")
        return first  # the common case: the whole body in one piece
    pieces, size = [first], len(first)
    while message.get("more_body"):
        message = await receive()
        piece = message.get("body", b"")
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            raise BodyTooLarge(f"request body is over the limit of {limit} bytes")
    return b"".join(pieces)


def parse_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or 400 (see :func:`gateway.jsonio.parse` for what it refuses)."""
    try:
        body = jsonio.parse(raw)
    except jsonio.InvalidJSON as exc:
        raise BadRequest(str(exc), param=exc.param) from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def query_value(scope: Scope, name: str) -> str | None:
    """The first value of query parameter ``name``, or None (cheap when it is absent)."""
    query = scope.get("query_string") or b""
    if name.encode() + b"=" not in query:
        return None
    values = parse_qs(query.decode("latin-1")).get(name)
    return values[0] if values else None


def pin_of(scope: Scope, headers: Headers) -> str | None:
    """The provider a request is pinned to: ``?provider=NAME`` or ``X-Unigw-Provider``."""
    value = query_value(scope, "provider")
    if value:
        return value
    header = headers.get(PIN_HEADER)
    return header.decode("latin-1") if header else None


# -- the answer ----------------------------------------------------------------------------------

async def send_bytes(send: Send, status: int, body: bytes, head: list[tuple[bytes, bytes]]) -> None:
    """A whole answer: ``head`` plus its Content-Length, then ``body``."""
    head = [*head, (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, body: dict[str, Any], provider: str | None) -> None:
    """``body`` as JSON, with ``X-Unigw-Provider`` when a provider answered."""
    data = jsonio.dumps(body)
    head = [(b"content-type", JSON)]
    if provider is not None:
        head.append((PIN_HEADER, provider.encode()))
    await send_bytes(send, status, data, head)


async def send_error(send: Send, exc: GatewayError, envelope: Envelope = OPENAI) -> None:
    """``exc`` answered in ``envelope`` (see :func:`gateway.errors.answer`)."""
    status, headers, body = error_answer(exc, envelope)
    head = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send_bytes(send, status, body, [(b"content-type", JSON), *head])


class _Watch:
    """``watch = _Watch(receive).open()``: the current task is cancelled when the client
    disconnects; in the ``except CancelledError`` of that task, :meth:`left` says whether the
    cancellation was that one (and takes it back), and :meth:`stop` ends the watch (a
    disconnect no longer matters), in a ``finally``. Plain calls, no ``async with``: an
    asynchronous context manager made two coroutines per watch, and a stream has two watches.

    The watch begins :data:`WATCH_AFTER_S` into the block (up to :data:`WATCH_TICK_S` later):
    a task reading ``receive`` for each call, created and cancelled, was a tenth of the
    gateway's CPU per call in front of the echo provider (``scripts/bench.py``; PROFILE.md),
    and nearly every call is over before then. Nor does each call arm a timer of its own
    (a timer armed and cancelled per call was 2% of its instructions): :class:`_Watches`,
    one per event loop, ticks while any block is open and begins the watch of those open long
    enough. A client that leaves is noticed that much later at most; a real provider takes
    seconds, and its call is watched for all of them but the first.
    """

    __slots__ = ("receive", "gone", "watcher", "task", "watches")

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.gone = False
        self.watcher: asyncio.Task[None] | None = None
        self.watches: _Watches | None = None

    def open(self) -> _Watch:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        loop = task.get_loop()
        self.watches = watches = _watches(loop)
        watches.add(self, loop)
        return self

    def begin(self) -> None:
        self.watches = None
        self.watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        self.task.cancel()

    def stop(self) -> None:
        if self.watches is not None:
            self.watches.discard(self)
            self.watches = None
        if self.watcher is not None:
            self.watcher.cancel()

    def left(self) -> bool:
        """In a CancelledError: whether the client's leaving cancelled the task. If so the
        cancellation is taken back, and the request ends normally."""
        if not self.gone:
            return False
        uncancel = getattr(self.task, "uncancel", None)  # Python 3.11+ counts cancellations
        if uncancel is not None:
            uncancel()
        return True


class _Watches:
    """The open :class:`_Watch` blocks of one event loop whose watch has not begun, by when
    each opened; a tick every :data:`WATCH_TICK_S`, while there are any, begins the watch of
    those open :data:`WATCH_AFTER_S` or longer. It keeps no reference to its loop but through
    a pending tick, so a loop with no open block can go (:data:`_WATCHES` is weak)."""

    def __init__(self) -> None:
        self.opened: dict[_Watch, float] = {}
        self.timer: asyncio.TimerHandle | None = None

    def add(self, watch: _Watch, loop: asyncio.AbstractEventLoop) -> None:
        self.opened[watch] = loop.time()
        if self.timer is None:
            self.timer = loop.call_later(WATCH_TICK_S, self._tick)

    def discard(self, watch: _Watch) -> None:
        self.opened.pop(watch, None)

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        since = loop.time() - WATCH_AFTER_S
        due = [watch for watch, opened in self.opened.items() if opened <= since]
        for watch in due:
            del self.opened[watch]
            watch.begin()
        self.timer = loop.call_later(WATCH_TICK_S, self._tick) if self.opened else None


_WATCHES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watches] = (
    weakref.WeakKeyDictionary())
_LAST: list[Any] = [None, None]  # a weak reference to the loop asked for last, and its _Watches


def _watches(loop: asyncio.AbstractEventLoop) -> _Watches:
    """The loop's :class:`_Watches` (the one loop of a gateway, nearly always the last one
    asked for: a weak reference's call, not the weak dictionary's Python-level lookup)."""
    ref, watches = _LAST
    if ref is not None and ref() is loop:
        return watches  # type: ignore[no-any-return]
    watches = _WATCHES.get(loop)
    if watches is None:
        watches = _WATCHES[loop] = _Watches()
    _LAST[:] = [weakref.ref(loop), watches]
    return watches


async def unless_gone(receive: Receive, work: Awaitable[T]) -> T:
    """``work``'s result; if the client disconnects first, ``work`` is cancelled (a provider
    attempt under way records ``cancelled``) and :class:`~gateway.errors.ClientGone` raised.

    Call it once the whole body was received: from then on ``receive`` returns only at the
    disconnect.
    """
    watch = _Watch(receive).open()
    try:
        return await work
    except asyncio.CancelledError:
        if not watch.left():
            raise
    finally:
        watch.stop()
    raise ClientGone("the client disconnected before its answer")


class StreamNotes(Protocol):
    """What :func:`pass_through` tells of a stream as it goes (a call's
    :class:`~gateway.calls.Trace`)."""

    def sent(self, piece: bytes) -> None: ...

    def stream_ended(self) -> None: ...


async def pass_through(receive: Receive, send: Send, status: int, head: list[tuple[bytes, bytes]],
                       events: AsyncIterator[bytes], notes: StreamNotes,
                       over: Callable[[], bool] | None = None) -> None:
    """Send ``events`` as they come, telling ``notes`` of each piece before it goes and of the
    end; stop early, normally, when the client goes away. (``notes`` is told here rather than
    by a generator around ``events``: one layer fewer for every piece of every stream.)

    ``over``, if given, says after a piece came whether the source already ended with it:
    then that piece is sent as the answer's last, and its chunked end goes in the same write
    (a write is one system call, and on loopback the most costly part of a stream's piece).

    The caller closes the upstream behind ``events`` in its own ``finally``.
    """
    watch = _Watch(receive).open()
    try:
        await send({"type": "http.response.start", "status": status, "headers": head})
        last = b""  # the answer's last body: empty, or the piece the source ended with
        try:
            async for data in events:
                notes.sent(data)
                if over is not None and over():
                    last = data
                    break
                await send({"type": "http.response.body", "body": data, "more_body": True})
        finally:
            notes.stream_ended()
        watch.stop()  # from here a disconnect no longer matters
        await send({"type": "http.response.body", "body": last})
    except asyncio.CancelledError:
        if not watch.left():
            raise
    finally:
        watch.stop()
