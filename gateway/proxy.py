"""Forwarding: pick a provider, send, fail over, and pass streams through as they arrive.

:meth:`Proxy.call` is the attempt loop behind every proxied route. It asks the strategy for a
candidate that has not yet failed this request (skipping ejected ones unless all are), sends
the request with that provider's key and an explicit ``stream``, and on a connect error, a
timeout before the first byte, a 5xx or a 429 tries the next, up to ``retries`` more. Nothing
has reached the client until it returns, so every retry is safe; after that nothing is retried.

It returns an :class:`Answer` (a whole non-streaming answer, any status the provider chose) or
an :class:`Opened` stream whose first bytes have already arrived. :meth:`Proxy.sse` is the
passthrough of an opened stream: it yields the provider's bytes unchanged, as they come, cut
only at event boundaries, and ends a stream the provider broke with an SSE ``error`` event and no
``[DONE]``. Closing it early (the client went away) closes the upstream connection.

Translated routes (Anthropic, Gemini) call :meth:`Proxy.forward_chat`, which runs the same loop
with the same failover and statistics and hands back parsed JSON.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import (
    AttemptFailed,
    BadRequest,
    BadStatus,
    GatewayError,
    ProviderFailed,
    ProviderTimeout,
    StreamBroken,
    all_failed,
    describe,
)
from gateway.routing import Backend, Plan, Router
from gateway.stats import Outcome, Stats
from gateway.strategies import PickContext, Strategy
from gateway.upstream import Deadline, Upstream, UpstreamResponse

CHAT_PATH = "/v1/chat/completions"
DETAIL_LIMIT = 300  # characters of a failing provider's answer kept for the error message


@dataclass
class Job:
    """One request to proxy: the parsed body, its original bytes, and where it may go."""

    path: str
    body: dict[str, Any]
    raw: bytes | None
    stream: bool
    plan: Plan


@dataclass
class Answer:
    """A provider's whole (non-streaming) answer."""

    backend: Backend
    status: int
    content_type: bytes
    body: bytes
    model: str


@dataclass(eq=False)
class Opened:
    """A provider's stream, its first bytes already here; in flight until :meth:`finish`."""

    backend: Backend
    response: UpstreamResponse
    first: bytes
    ttfb: float
    model: str
    stats: Stats
    _done: bool = False

    def finish(self, outcome: Outcome) -> None:
        """Close the upstream response and record the outcome (once; later calls do nothing)."""
        if not self._done:
            self._done = True
            self.response.close()
            self.stats.observe(self.backend.stats, outcome, self.ttfb)


@dataclass
class ChatResult:
    """``forward_chat`` without streaming: the provider's chat.completion as a dict."""

    provider: str
    model: str
    body: dict[str, Any]


@dataclass
class ChatStream:
    """``forward_chat`` with streaming: chat.completion.chunk dicts as they arrive.

    Iterating ``chunks`` ends after the provider's ``[DONE]``; it raises a
    :class:`~gateway.errors.ProviderFailed` (``status_code`` 502, or 504 on a stall) if the
    provider breaks the stream. Close it (``await chunks.aclose()``) if you stop early.
    """

    provider: str
    model: str
    chunks: AsyncIterator[dict[str, Any]] = field(repr=False)


class Proxy:
    """The attempt loop, the stream passthrough and ``forward_chat``; see the module docstring."""

    def __init__(self, router: Router, stats: Stats, strategy: Strategy, *, retries: int,
                 first_byte_timeout: float, read_timeout: float) -> None:
        self.router = router
        self.stats = stats
        self.strategy = strategy
        self.retries = retries
        self.first_byte_timeout = first_byte_timeout
        self.read_timeout = read_timeout
        self.upstream: Upstream | None = None  # set by the app's lifespan

    async def call(self, job: Job) -> Answer | Opened:
        """Try candidates until one answers; raise ProviderFailed naming every one tried."""
        tried: list[tuple[str, str]] = []
        excluded: set[str] = set()
        last: AttemptFailed | None = None
        ctx = PickContext(job.plan.model, time.monotonic(), self.router.settings.routes)
        for _ in range(self.retries + 1):
            backend = self._choose(job.plan, excluded, ctx)
            if backend is None:
                break
            excluded.add(backend.name)
            try:
                return await self._attempt(backend, job)
            except AttemptFailed as exc:
                tried.append((backend.name, describe(exc)))
                last = exc
        assert last is not None  # a plan always has a candidate
        raise all_failed(tried, last)

    def _choose(self, plan: Plan, excluded: set[str], ctx: PickContext) -> Backend | None:
        pool = [b for b in plan.candidates if b.name not in excluded] if excluded else list(
            plan.candidates)
        if not pool:
            return None
        live = [b for b in pool if b.stats.ejected_until <= ctx.now]
        chosen = self.strategy.pick(live or pool, ctx)  # all ejected: panic, try them anyway
        assert isinstance(chosen, Backend)
        return chosen

    async def _attempt(self, backend: Backend, job: Job) -> Answer | Opened:
        """One provider, once. Records the outcome (an opened stream's when it is finished)."""
        assert self.upstream is not None, "the gateway's lifespan has not started"
        model = job.plan.upstream_model(backend)
        started = self.stats.start(backend.stats)
        response = None
        try:
            response = await self.upstream.request(
                backend.origin, _encode(job, backend, model), self.first_byte_timeout)
            result = await self._receive(backend, job, response, started, model)
        except AttemptFailed as exc:
            self._end(backend, response, Outcome.FAIL, started, getattr(exc, "retry_after", None))
            raise
        except BaseException:  # cancelled (or a bug): release, record no verdict, re-raise
            self._end(backend, response, Outcome.CANCELLED, started)
            raise
        if isinstance(result, Answer):
            self._end(backend, response, Outcome.OK, started)
        return result

    def _end(self, backend: Backend, response: UpstreamResponse | None, outcome: Outcome,
             started: float, retry_after: float | None = None) -> None:
        if response is not None:
            response.close()
        self.stats.observe(backend.stats, outcome, time.perf_counter() - started, retry_after)

    async def _receive(self, backend: Backend, job: Job, response: UpstreamResponse,
                       started: float, model: str) -> Answer | Opened:
        status = response.status
        if status >= 500 or status == 429:
            detail = await response.read(self.read_timeout)
            raise BadStatus(status, _detail(detail), _retry_after(response))
        if job.stream and 200 <= status < 300:
            first = await response.next_piece(self.first_byte_timeout)
            ttfb = time.perf_counter() - started
            return Opened(backend, response, first, ttfb, model, self.stats)
        body = await response.read(self.read_timeout, expect_json=200 <= status < 300)
        content_type = response.header(b"content-type") or b"application/json"
        return Answer(backend, status, content_type, body, model)

    async def events(self, opened: Opened, *, error_event: bool = False,
                     ) -> AsyncGenerator[bytes, None]:
        """The stream's bytes as they arrive, each piece ending at an event boundary.

        If the provider fails, raises StreamBroken, or with ``error_event`` ends with an SSE
        ``error`` event instead (and no ``[DONE]``). Always finishes ``opened``.
        """
        outcome, pending = Outcome.CANCELLED, opened.first
        deadline = Deadline.after(self.read_timeout, "no complete event")
        try:
            while True:
                cut = _event_end(pending)
                if cut:
                    yield pending[:cut]
                    pending = pending[cut:]
                    deadline = Deadline.after(self.read_timeout, "no complete event")
                piece = await opened.response.next_piece(self.read_timeout, deadline)
                if not piece:
                    break
                pending = pending + piece if pending else piece
            if pending:
                yield pending
            outcome = Outcome.OK
        except StreamBroken as exc:
            outcome = Outcome.FAIL
            if not error_event:
                raise
            err = _broken(opened.backend.name, exc)
            yield b"event: error\ndata: " + json.dumps(err.body()).encode() + b"\n\n"
        finally:
            opened.finish(outcome)

    def sse(self, opened: Opened) -> AsyncGenerator[bytes, None]:
        """The SSE passthrough: the provider's events unchanged, or an ``error`` event at the
        point it broke (no ``[DONE]``), so the client knows the answer is incomplete."""
        return self.events(opened, error_event=True)

    async def forward_chat(self, request: dict[str, Any], *, pin: str | None = None,
                           stream: bool = False, plan: Plan | None = None,
                           ) -> ChatResult | ChatStream:
        """Proxy one chat-completions request dict, exactly as /v1/chat/completions does.

        ``request`` needs a string ``model`` (unless ``plan`` or ``pin`` chooses one); its
        ``stream`` is replaced by ``stream``. ``pin`` is a provider name (``?provider=``).
        Raises a :class:`~gateway.errors.GatewayError` (400/404/429/502/503/504, the provider's
        own 4xx status) before anything is streamed. Returns :class:`ChatResult` or
        :class:`ChatStream`, both naming the provider that answered.
        """
        if plan is None:
            model = request.get("model")
            if not (isinstance(model, str) and model) and pin is None:
                raise BadRequest("'model' must be a non-empty string")
            plan = (self.router.pinned(pin, model if isinstance(model, str) else None) if pin
                    else self.router.plan(model))  # type: ignore[arg-type]
        result = await self.call(Job(CHAT_PATH, request, None, stream, plan))
        if isinstance(result, Opened):
            chunks = _Chunks(self._chunks(result), result)
            return ChatStream(result.backend.name, result.model, chunks)
        if not 200 <= result.status < 300:
            raise _rejected(result)
        try:
            body = json.loads(result.body)
        except ValueError:
            raise ProviderFailed(f"provider {result.backend.name!r} answered invalid JSON",
                                 ) from None
        return ChatResult(result.backend.name, result.model, body)

    async def _chunks(self, opened: Opened) -> AsyncGenerator[dict[str, Any], None]:
        """An opened stream as parsed chunk dicts (the translated routes' view of it)."""
        async with aclosing(self.events(opened)) as events:
            try:
                async for data in events:
                    for payload in _data_lines(data):
                        if payload == b"[DONE]":
                            return
                        chunk = json.loads(payload)
                        if isinstance(chunk, dict):
                            yield chunk
            except StreamBroken as exc:
                raise _broken(opened.backend.name, exc) from None
            except ValueError:
                raise ProviderFailed(f"provider {opened.backend.name!r} sent a chunk that is "
                                     "not JSON") from None


class _Chunks:
    """An opened stream's chunk iterator whose ``aclose`` releases the provider even if
    iteration never started (an async generator's ``finally`` would not run then)."""

    def __init__(self, chunks: AsyncGenerator[dict[str, Any], None], opened: Opened) -> None:
        self._chunks, self._opened = chunks, opened

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        await self._chunks.aclose()
        self._opened.finish(Outcome.CANCELLED)  # a no-op if it was finished already


def _encode(job: Job, backend: Backend, model: str) -> bytes:
    """Request head and body; the body is re-encoded only if model or stream must change."""
    body, raw = job.body, job.raw
    if raw is None or body.get("model") != model or body.get("stream") is not job.stream:
        raw = json.dumps({**body, "model": model, "stream": job.stream},
                         separators=(",", ":"), ensure_ascii=False).encode()
    return b"%b%d\r\n\r\n%b" % (backend.head("POST", job.path), len(raw), raw)


def _event_end(buf: bytes) -> int:
    """The index just past the last complete SSE event in ``buf`` (0 if none)."""
    lf = buf.rfind(b"\n\n")
    crlf = buf.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


def _data_lines(data: bytes) -> list[bytes]:
    out = []
    for line in data.splitlines():
        if line.startswith(b"data:"):
            out.append(line[5:].strip())
    return out


def _detail(body: bytes) -> str:
    """The message of a provider's error answer, shortened."""
    try:
        err = json.loads(body)["error"]
        text = str(err.get("message", err) if isinstance(err, dict) else err)
    except (ValueError, KeyError, TypeError):
        text = body.decode("utf-8", "replace").strip()
    return text[:DETAIL_LIMIT]


def _retry_after(response: UpstreamResponse) -> float | None:
    value = response.header(b"retry-after")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: not worth parsing for a local provider


def _broken(name: str, exc: StreamBroken) -> ProviderFailed:
    message = f"provider {name!r} failed mid-stream: {exc}"
    return ProviderTimeout(message) if exc.status_code == 504 else ProviderFailed(message)


def _rejected(answer: Answer) -> GatewayError:
    """A provider's own 4xx, as an error a translated route can answer in its format."""
    err = GatewayError(f"provider {answer.backend.name!r} answered HTTP {answer.status}: "
                       f"{_detail(answer.body)}")
    err.status_code, err.type, err.code = answer.status, "invalid_request_error", "provider_error"
    return err
