"""Forwarding: pick a provider, send, fail over, and pass streams through as they arrive.

:meth:`Proxy.call` is the attempt loop behind every proxied route. It asks the strategy for a
candidate that has not yet failed this request (skipping ejected ones unless all are), sends
the request with that provider's key and an explicit ``stream``, and tries the next, up to
``retries`` more, on any :class:`~gateway.errors.AttemptFailed`: a connect error, a timeout,
an error status, or a 2xx that is really an error (:mod:`gateway.truth` judges it). A
provider's 400/404/413/422 is the request's fault: it is returned as it is, with no failover.
Nothing has reached the client until it returns, so every retry is safe; after that nothing is
retried. When every candidate failed, one error names each provider, its failure class and its
own message; if they all failed the same way (:func:`~gateway.errors.same_failure_everywhere`)
their failures are excused, not counted against them, unless a different request was excused
at the same providers with no success since (:meth:`~gateway.stats.Stats.excuse`: then it is
an outage of the site they share, and it counts).

It returns an :class:`Answer` (a whole non-streaming answer: a real 2xx answer or the
provider's client error) or an :class:`Opened` stream, committed at its first content: the
provider's first events are held (:class:`gateway.truth.Held`, bounded by
``first_content_timeout`` and ``hold_max_bytes``) until one carries content or a normal
finish, and any failure before that is a failed attempt the client never sees. ``Opened.first``
is every byte held, up to and including the committing event. :meth:`Proxy.sse` is the
passthrough of an opened stream: it yields the provider's bytes unchanged, as they come, cut
only at event boundaries, and ends a stream the provider broke with an SSE ``error`` event and no
``[DONE]``. Closing it early (the client went away) closes the upstream connection.

Translated routes (Anthropic, Gemini) call :meth:`Proxy.forward_chat`, which runs the same loop
with the same failover and statistics and hands back parsed JSON. A job's ``trace`` (a
:class:`gateway.calls.Trace`) is told every attempt and the answer when the loop ends.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.asgi import PIN_HEADER
from gateway.connection import Deadline
from gateway.errors import (
    CLIENT_ERROR_STATUSES,
    AttemptFailed,
    BadAnswer,
    BadRequest,
    BadStatus,
    FailureClass,
    MalformedAnswer,
    ProviderFailed,
    ProviderRejected,
    ProviderTimeout,
    StreamBroken,
    all_failed,
    same_failure_everywhere,
)
from gateway.results import Answer, ChatResult, ChatStream, Chunks, Job, Opened
from gateway.routing import Backend, Plan, Router
from gateway.scrub import Secrets
from gateway.stats import Failure, Outcome, Stats
from gateway.strategies import PickContext, Strategy
from gateway.truth import (
    NO_PATTERNS,
    ErrorPatterns,
    Held,
    check_answer,
    declared_error,
    event_end,
    events_of,
    late_error,
    provider_message,
)
from gateway.upstream import Upstream, UpstreamResponse

if TYPE_CHECKING:
    from gateway.calls import Trace

CHAT_PATH = "/v1/chat/completions"
WHOLE_TYPES = (b"application/json", b"text/html")  # a stream request answered with these: whole


class Proxy:
    """The attempt loop, the stream passthrough and ``forward_chat``; see the module docstring."""

    def __init__(self, router: Router, stats: Stats, strategy: Strategy, *, retries: int,
                 first_byte_timeout: float, read_timeout: float,
                 first_content_timeout: float = 30.0, hold_max_bytes: int = 1024 * 1024,
                 error_patterns: Mapping[str, ErrorPatterns] | None = None) -> None:
        self.router = router
        self.stats = stats
        self.strategy = strategy
        self.retries = retries
        self.first_byte_timeout = first_byte_timeout
        self.read_timeout = read_timeout
        self.first_content_timeout = first_content_timeout
        self.hold_max_bytes = hold_max_bytes
        self.error_patterns: Mapping[str, ErrorPatterns] = error_patterns or {}
        self.secrets = Secrets()  # masked in what a failing provider says (gateway.scrub)
        self.upstream: Upstream | None = None  # set by the app's lifespan

    async def call(self, job: Job) -> Answer | Opened:
        """Try candidates until one answers; raise ProviderFailed naming every one tried."""
        failed: list[_Failed] = []
        excluded: set[str] = set()
        excused = False
        ctx = PickContext(job.plan.model, time.monotonic(), self.router.settings.routes)
        result = None
        try:
            for _ in range(self.retries + 1):
                backend = self._choose(job.plan, excluded, ctx)
                if backend is None:
                    break
                excluded.add(backend.name)
                try:
                    result = await self._attempt(backend, job, failed)
                    return result
                except AttemptFailed:
                    continue
            assert failed  # a plan always has a candidate
            excused = same_failure_everywhere([f.exc for f in failed]) and self.stats.excuse(
                [f.backend.stats for f in failed], job.key())
            raise all_failed([(f.backend.name, f.exc) for f in failed], excused=excused)
        finally:
            self._settle(failed, excused)
            if job.trace is not None:
                job.trace.tried(job.plan, [(f.backend, f.seconds, f.exc) for f in failed], result)

    def _settle(self, failed: list[_Failed], excused: bool) -> None:
        """The verdicts of this request's failed attempts, now that the loop is over."""
        now = time.time()
        for f in failed:
            exc = f.exc
            failure = Failure(exc.failure, getattr(exc, "detail", None) or str(exc),
                              exc.status, now, not excused)
            self.stats.verdict(f.backend.stats, Outcome.EXCUSED if excused else Outcome.FAIL,
                               f.seconds, exc.retry_after, failure)

    def _choose(self, plan: Plan, excluded: set[str], ctx: PickContext) -> Backend | None:
        pool = [b for b in plan.candidates if b.name not in excluded] if excluded else list(
            plan.candidates)
        if not pool:
            return None
        live = [b for b in pool if b.stats.ejected_until <= ctx.now]
        chosen = self.strategy.pick(live or pool, ctx)  # all ejected: panic, try them anyway
        assert isinstance(chosen, Backend)
        return chosen

    async def _attempt(self, backend: Backend, job: Job, failed: list[_Failed],
                       ) -> Answer | Opened:
        """One provider, once. Records the outcome (an opened stream's when it is finished;
        a failure's, in ``failed``, when the loop is over)."""
        assert self.upstream is not None, "the gateway's lifespan has not started"
        model = job.plan.upstream_model(backend)
        started = self.stats.start(backend.stats)
        response = None
        try:
            response = await self.upstream.request(
                backend.origin, _encode(job, backend, model), self.first_byte_timeout)
            result = await self._receive(backend, job, response, started, model)
        except AttemptFailed as exc:
            if response is not None:
                response.discard()
            self.stats.release(backend.stats)
            failed.append(_Failed(backend, time.perf_counter() - started,
                                  exc.scrubbed(self.secrets.text)))
            raise
        except BaseException:  # cancelled (or a bug): release, record no verdict, re-raise
            _close(response)
            self.stats.observe(backend.stats, Outcome.CANCELLED, 0.0)
            raise
        if isinstance(result, Answer):
            response.close()
            seconds = result.seconds = time.perf_counter() - started
            if 200 <= result.status < 300:
                self.stats.observe(backend.stats, Outcome.OK, seconds)
            else:  # the request's fault: counted, no verdict on the provider
                failure = Failure(FailureClass.CLIENT_ERROR, provider_message(result.body),
                                  result.status, time.time(), False)
                self.stats.observe(backend.stats, Outcome.EXCUSED, seconds, failure=failure)
        return result

    async def _receive(self, backend: Backend, job: Job, response: UpstreamResponse,
                       started: float, model: str) -> Answer | Opened:
        status = response.status
        content_type = response.header(b"content-type") or b"application/json"
        inner = _inner(backend, response) if backend.nested else None
        if not 200 <= status < 300:
            body = await response.read(self.read_timeout)
            if status in CLIENT_ERROR_STATUSES:  # passed back as it is, but for any secret
                return Answer(backend, status, content_type, self.secrets.data(body), model,
                              inner=inner)
            raise BadStatus(status, provider_message(body), response.retry_after())
        patterns = self.error_patterns.get(backend.name, NO_PATTERNS)
        if job.stream and not content_type.startswith(WHOLE_TYPES):
            first = await self._hold(response, patterns)
            return Opened(backend, response, first, time.perf_counter() - started, model,
                          self.stats, inner=inner)
        body = await response.read(self.read_timeout)
        try:
            data = check_answer(body, patterns)
        except BadAnswer as exc:
            if status == 200:
                raise
            raise BadAnswer(exc.detail, status=status, said_error=exc.said_error) from None
        return Answer(backend, status, content_type, body, model, data, inner=inner)

    async def _hold(self, response: UpstreamResponse, patterns: ErrorPatterns) -> bytes:
        """The stream's bytes up to its first content (see :class:`gateway.truth.Held`)."""
        held = Held(patterns, self.hold_max_bytes)
        deadline = time.monotonic() + self.first_content_timeout
        wait = min(self.first_byte_timeout, self.read_timeout)
        while True:
            left = deadline - time.monotonic()
            try:
                piece = await response.next_piece(max(0.0, min(wait, left)))
            except StreamBroken as exc:
                if exc.failure is FailureClass.TIMEOUT and left <= wait:
                    raise BadAnswer(f"no content within first_content_timeout "
                                    f"({self.first_content_timeout:g}s)", timeout=True) from None
                raise BadAnswer(f"the stream broke before any content: {exc}",
                                timeout=exc.failure is FailureClass.TIMEOUT) from None
            if not piece:
                if held.end():
                    return held.data  # short, but it had content: the whole answer, checked
                raise BadAnswer("the stream ended before any content")
            if held.feed(piece):
                return held.data
            wait = self.read_timeout

    async def events(self, opened: Opened, *, error_event: bool = False,
                     ) -> AsyncGenerator[bytes, None]:
        """The stream's bytes as they arrive, each piece ending at an event boundary.

        If the provider fails, raises StreamBroken, or with ``error_event`` ends with an SSE
        ``error`` event instead (and no ``[DONE]``). Always finishes ``opened``; when the
        provider's stream is known to be over before its last piece is yielded (it had
        arrived whole, as a short answer does), ``opened`` is finished (``ok``) before that
        piece goes, so the piece can be sent as the answer's last (:func:`pass_through`'s
        ``over``: its chunked end in the same write).
        """
        outcome, pending = Outcome.CANCELLED, opened.first
        failure: Failure | None = None
        late: str | None = None  # an error an event declared after the commit: the verdict
        deadline = Deadline.after(self.read_timeout, "no complete event")
        response = opened.response
        try:
            while True:
                cut = event_end(pending)
                if cut:
                    piece, pending = pending[:cut], pending[cut:]
                    if late is None and b"error" in piece:
                        late = late_error(piece)
                    if not pending and response.ended():
                        outcome, failure = self._ended(opened, late)
                        opened.finish(outcome, failure)
                        yield piece
                        return
                    yield piece
                    deadline = Deadline.after(self.read_timeout, "no complete event")
                piece = await response.next_piece(self.read_timeout, deadline)
                if not piece:
                    break
                pending = pending + piece if pending else piece
                if len(pending) > self.hold_max_bytes:  # no event boundary: never buffer on
                    raise MalformedAnswer(f"an event over {self.hold_max_bytes} bytes")
            if pending:
                yield pending
            outcome, failure = self._ended(opened, late)
        except StreamBroken as exc:
            exc.scrubbed(self.secrets.text)
            outcome = Outcome.FAIL
            failure = Failure(exc.failure, str(exc), opened.response.status, time.time())
            if not error_event:
                raise
            err = _broken(opened.backend.name, exc)
            yield b"event: error\ndata: " + json.dumps(err.body()).encode() + b"\n\n"
        finally:
            opened.finish(outcome, failure)

    def _ended(self, opened: Opened, late: str | None) -> tuple[Outcome, Failure | None]:
        """How a stream that ran to its end went: OK, unless an event declared an error."""
        if late is None:
            return Outcome.OK, None
        return Outcome.FAIL, Failure(FailureClass.UPSTREAM_ERROR, self.secrets.text(late),
                                     opened.response.status, time.time())

    def sse(self, opened: Opened) -> AsyncGenerator[bytes, None]:
        """The SSE passthrough: the provider's events unchanged, or an ``error`` event at the
        point it broke (no ``[DONE]``), so the client knows the answer is incomplete."""
        return self.events(opened, error_event=True)

    async def forward_chat(self, request: dict[str, Any], *, pin: str | None = None,
                           stream: bool = False, plan: Plan | None = None,
                           trace: Trace | None = None) -> ChatResult | ChatStream:
        """Proxy one chat-completions request dict, exactly as /v1/chat/completions does.

        ``request`` needs a string ``model`` (unless ``plan`` or ``pin`` chooses one); its
        ``stream`` is replaced by ``stream``. ``pin`` is a provider name (``?provider=``).
        Raises a :class:`~gateway.errors.GatewayError` (400/404/429/502/503/504, or
        :class:`~gateway.errors.ProviderRejected` with the provider's own 4xx status) before
        anything is streamed. Returns :class:`ChatResult` or
        :class:`ChatStream`, both naming the provider that answered.
        """
        if plan is None:
            model = request.get("model")
            if not (isinstance(model, str) and model) and pin is None:
                raise BadRequest("'model' must be a non-empty string")
            plan = (self.router.pinned(pin, model if isinstance(model, str) else None) if pin
                    else self.router.plan(model))  # type: ignore[arg-type]
        result = await self.call(Job(CHAT_PATH, request, None, stream, plan, trace))
        if isinstance(result, Opened):
            chunks = Chunks(self._chunks(result), result)
            return ChatStream(result.served, result.model, chunks)
        if result.data is None:  # only a client error comes without a parsed body
            raise ProviderRejected(result.served, result.status,
                                   provider_message(result.body))
        return ChatResult(result.served, result.model, result.data)

    async def _chunks(self, opened: Opened) -> AsyncGenerator[dict[str, Any], None]:
        """An opened stream as parsed chunk dicts (the translated routes' view of it)."""
        async with aclosing(self.events(opened)) as events:
            try:
                async for data in events:
                    for name, payload in events_of(data):
                        if payload == "[DONE]":  # a clean end: the verdict is OK, now
                            opened.finish(Outcome.OK)  # (returning closes events() paused)
                            return
                        said = declared_error(name, payload)
                        if said is not None:  # the translation has no place for it: it ends
                            opened.finish(*self._ended(opened, said))
                            raise ProviderFailed(f"provider {opened.backend.name!r} failed "
                                                 f"mid-stream: {self.secrets.text(said)}")
                        chunk = json.loads(payload)
                        if isinstance(chunk, dict):
                            yield chunk
            except StreamBroken as exc:
                raise _broken(opened.backend.name, exc) from None
            except ValueError:
                raise ProviderFailed(f"provider {opened.backend.name!r} sent a chunk that is "
                                     "not JSON") from None


@dataclass(frozen=True)
class _Failed:
    """One failed attempt of a request, its verdict not recorded yet."""

    backend: Backend
    seconds: float
    exc: AttemptFailed


def _close(response: UpstreamResponse | None) -> None:
    if response is not None:
        response.close()


def _encode(job: Job, backend: Backend, model: str) -> bytes:
    """Request head and body; the body is re-encoded only if model or stream must change.

    A body without ``stream`` (most non-streaming calls) gets it spliced in before its closing
    brace rather than re-encoded whole (a ``json.dumps`` was 4% of the gateway's CPU per call).
    A pin through a unigw node (``node-2/ZtoApi``) is passed on to it (``ZtoApi``).
    """
    body, raw = job.body, job.raw
    if raw is not None and body.get("model") == model and "stream" not in body:
        raw = _with_stream(raw, job.stream)
    if raw is None or body.get("model") != model or body.get("stream", job.stream) is not (
            job.stream):
        raw = json.dumps({**body, "model": model, "stream": job.stream},
                         separators=(",", ":"), ensure_ascii=False).encode()
    return b"%b%d\r\n\r\n%b" % (backend.head("POST", job.path, job.plan.inner), len(raw), raw)


def _inner(backend: Backend, response: UpstreamResponse) -> str | None:
    """The inner provider a unigw node's answer names (and the node's last, for its row)."""
    name = response.header(PIN_HEADER)
    if name is None:
        return None
    inner = backend.stats.last_inner = name.decode("latin-1")
    return inner


def _with_stream(raw: bytes, stream: bool) -> bytes | None:
    """``raw`` (a JSON object with members, and no ``stream``) with ``"stream"`` added, or None
    if it is not plain UTF-8 ``{...}`` (a UTF-16 body, say: then it is re-encoded)."""
    text = raw.strip()
    if text[:1] != b"{" or text[-1:] != b"}":
        return None
    return text[:-1] + (b',"stream":true}' if stream else b',"stream":false}')


def _broken(name: str, exc: StreamBroken) -> ProviderFailed:
    message = f"provider {name!r} failed mid-stream: {exc}"
    return ProviderTimeout(message) if exc.status_code == 504 else ProviderFailed(message)
