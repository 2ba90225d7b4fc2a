"""One call through the gateway, seen whole and recorded once, at its end.

Every proxied endpoint (``/v1/chat/completions``, ``/v1/completions``, the Anthropic and Gemini
routes) begins a :class:`Trace` when the request reaches it (:meth:`Calls.begin`), puts it in
the proxy's :class:`~gateway.proxy.Job`, and ends it (:meth:`Calls.end`) in a ``finally`` once
the answer's last byte has gone to the server. The proxy tells the trace every attempt and the
answer when its attempt loop ends (:meth:`Trace.tried`). Nothing is computed on the way: the
record is made at the end, from objects the call had anyway, and :meth:`RequestLog.add
<gateway.requestlog.RequestLog.add>` only appends it to a list (the writer thread does the I/O).

The times (``time.perf_counter``, from the moment the endpoint starts, the request's head
already parsed by the server, its body not yet read):

``total``
    to the answer's last byte handed to the server (a stream: its last event).
``ttfb``
    to the answer's first byte: a stream's first event handed to the server; a whole answer
    is sent at once, so its ``ttfb`` is its ``total``.
waiting on providers
    the sum, over the attempts, of each one's time from its request being sent to its answer
    read and checked (a failed one: to its failure; a stream: to its first content).
``added`` (the gateway's own added time)
    ``total`` minus the wait, for a whole answer; ``ttfb`` minus the wait, for a stream (after
    its first content the pace is the provider's and the client's). Parsing, routing,
    re-encoding, translation and the answer's sending are in it. A call that no provider was
    tried for (a 400, 401, 404 or 503 of the gateway's own) has none.

Tokens are the provider's ``usage``: a whole answer's parsed body (the proxy parsed it to judge
it); a translated stream's chunks (parsed anyway, one dict lookup each); an OpenAI stream's
last two pieces, parsed once at its end (the usage chunk is the last before ``[DONE]`` when
the client asked for ``stream_options.include_usage``), so no chunk is parsed for it.

The status is the one the client got, except for a stream: one that broke after it began is
recorded as 502 (504 if it stalled) and one whose client went away as 499, though both were
sent as 200. Each call also feeds the statistics' tokens by provider and model and the
added-time histogram (:meth:`gateway.stats.Stats.call_ended`), with the request log on or off.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from gateway.errors import AttemptFailed, FailureClass, GatewayError
from gateway.requestlog import Attempt, RequestLog, row
from gateway.results import Answer, ChatStream, Opened
from gateway.routing import Backend, Plan
from gateway.stats import Outcome, Stats
from gateway.translate.stream import close_upstream
from gateway.truth import provider_message

log = logging.getLogger("unigw.gateway")
MESSAGE_CHARS = 300  # of a provider's failure message in the log
GONE = 499  # the client went away before the answer's end (nginx's number)


@dataclass(eq=False)
class Trace:
    """One call as it goes; see the module docstring."""

    route: str
    api: str  # openai | anthropic | gemini
    bodies: bool  # keep the request and the answer (gateway.log_bodies)
    started: float = field(default_factory=time.perf_counter)
    ts: float = field(default_factory=time.time)
    stream: bool = False
    model_asked: str | None = None
    status: int | None = None  # set when the gateway answered with an error
    plan: Plan | None = None
    failed: list[tuple[Backend, float, AttemptFailed]] = field(default_factory=list)
    result: Answer | Opened | None = None
    first: float | None = None  # a stream's first event sent
    usage: Any = None
    _prev: bytes = b""  # the two pieces sent last, while a stream goes
    _last: bytes = b""
    _kept: list[bytes] | None = None  # every piece sent, with bodies
    request_body: str | None = None
    response_body: str | None = None

    def tried(self, plan: Plan, failed: list[tuple[Backend, float, AttemptFailed]],
              result: Answer | Opened | None) -> None:
        """The proxy's attempt loop ended: the failed attempts, and the answer if one came."""
        self.plan, self.failed, self.result = plan, failed, result

    def error(self, exc: GatewayError) -> None:
        """The gateway answered ``exc``."""
        self.status = exc.status_code

    def keep_request(self, raw: bytes) -> None:
        if self.bodies:
            self.request_body = raw.decode("utf-8", "replace")

    def keep_response(self, body: bytes) -> None:
        if self.bodies:
            self.response_body = body.decode("utf-8", "replace")

    def sent(self, piece: bytes) -> None:
        """A stream's piece goes out (:func:`gateway.asgi.pass_through` says so before it
        sends it): the first one's time, the last two pieces, and, with ``bodies``, all."""
        if self.first is None:
            self.first = time.perf_counter()
            if self.bodies:
                self._kept = []
        self._prev, self._last = self._last, piece
        if self._kept is not None:
            self._kept.append(piece)

    def stream_ended(self) -> None:
        """The stream's last piece went out (or it stopped): with ``bodies``, keep them all."""
        if self.bodies:
            self.keep_response(b"".join(self._kept or ()))

    @property
    def tail(self) -> bytes:
        """An OpenAI stream's last two pieces (where its ``usage`` chunk is)."""
        return self._prev + self._last

    def chunks(self, stream: ChatStream) -> _NoteUsage:
        """A translated stream's chunks, passed through, noting the ``usage`` one reports."""
        return _NoteUsage(stream.chunks, self)


class _NoteUsage:
    """Chunk dicts passed through; the last non-empty ``usage`` goes to the trace. Closing it
    closes the chunks (and so the provider's stream) even if iteration never began."""

    def __init__(self, chunks: AsyncIterator[dict[str, Any]], trace: Trace) -> None:
        self._chunks, self._trace = chunks, trace

    def __aiter__(self) -> _NoteUsage:
        return self

    async def __anext__(self) -> dict[str, Any]:
        chunk = await self._chunks.__anext__()
        usage = chunk.get("usage")
        if usage:
            self._trace.usage = usage
        return chunk

    async def aclose(self) -> None:
        await close_upstream(self._chunks)


class Calls:
    """Where traces begin and end: the statistics, and the request log when it is on."""

    def __init__(self, stats: Stats, requests: RequestLog | None) -> None:
        self.stats = stats
        self.log = requests
        self.bodies = requests is not None and requests.log_bodies

    def open(self) -> None:
        """Open the request log (the lifespan's start); without it if it cannot be opened."""
        if self.log is None:
            return
        try:
            self.log.open()
        except (OSError, sqlite3.Error) as exc:
            log.error("request log: cannot open %s, running without it: %s",
                      self.log.settings.path, exc)
            self.log = None

    def close(self) -> None:
        """Write what is queued and stop the log's writer (the lifespan's end)."""
        if self.log is not None:
            self.log.close()

    def begin(self, route: str, api: str) -> Trace:
        return Trace(route, api, self.bodies)

    def end(self, trace: Trace) -> None:
        """The call is over: count it, and queue its row."""
        total = time.perf_counter() - trace.started
        end = _Ending.of(trace, total)
        prompt, completion = _tokens(end.usage)
        if trace.result is not None or trace.failed:
            self.stats.call_ended(max(0.0, end.added), end.provider, end.model_sent,
                                  prompt, completion)
        if self.log is None:
            return
        self.log.add_row(row(
            trace.ts, trace.route, trace.api, end.status, trace.stream, trace.model_asked,
            end.model_sent, end.served, end.attempts, _ms(end.ttfb), _ms(total), prompt,
            completion, _ms(max(0.0, end.added)) if trace.plan is not None else None,
            trace.request_body, trace.response_body))


class _Ending(NamedTuple):
    """What a trace says at its end, from its attempts and its answer (a named tuple: one is
    made for every call)."""

    status: int
    provider: str | None  # the provider (for the statistics)
    model_sent: str | None
    attempts: tuple[Attempt, ...]
    ttfb: float | None
    added: float
    usage: Any
    served: str | None = None  # who answered, for the log (``node-2/ZtoApi`` via a unigw node)

    @classmethod
    def of(cls, trace: Trace, total: float) -> _Ending:
        plan, result = trace.plan, trace.result
        attempts = [Attempt(b.name, exc.failure.value, _message(exc),
                            plan.upstream_model(b) if plan else None)
                    for b, _, exc in trace.failed]
        wait = sum(seconds for _, seconds, _ in trace.failed)
        if isinstance(result, Answer):
            return cls._whole(trace, result, attempts, wait, total)
        if isinstance(result, Opened):
            return cls._stream(trace, result, attempts, wait, total)
        return cls(trace.status or 500, None, None, tuple(attempts), None, total - wait, None)

    @classmethod
    def _whole(cls, trace: Trace, answer: Answer, attempts: list[Attempt], wait: float,
               total: float) -> _Ending:
        name, model, served = answer.backend.name, answer.model, answer.served
        if answer.status >= 400:  # the provider's 4xx, passed on: the request's fault
            message = provider_message(answer.body)[:MESSAGE_CHARS]
            attempts.append(Attempt(served, FailureClass.CLIENT_ERROR.value, message, model))
        else:
            attempts.append(Attempt(served, model=model))
        if trace.response_body is None:
            trace.keep_response(answer.body)
        usage = answer.data.get("usage") if answer.data else None
        return cls(trace.status or answer.status, name, model, tuple(attempts), total,
                   total - wait - answer.seconds, usage, served)

    @classmethod
    def _stream(cls, trace: Trace, opened: Opened, attempts: list[Attempt], wait: float,
                total: float) -> _Ending:
        name, model, failure = opened.backend.name, opened.model, opened.failure
        served = opened.served
        status = trace.status or 200
        if opened.outcome is Outcome.FAIL and failure is not None:
            status = 504 if failure.kind is FailureClass.TIMEOUT else 502
            attempts.append(Attempt(served, failure.kind.value,
                                    failure.message[:MESSAGE_CHARS], model))
        else:
            attempts.append(Attempt(served, model=model))
            if opened.outcome is not Outcome.OK:
                status = GONE
        ttfb = (trace.first or time.perf_counter()) - trace.started
        usage = trace.usage if trace.usage is not None else _stream_usage(trace.tail)
        return cls(status, name, model, tuple(attempts), ttfb, ttfb - wait - opened.ttfb, usage,
                   served)


def _message(exc: AttemptFailed) -> str:
    return (getattr(exc, "detail", None) or str(exc))[:MESSAGE_CHARS]


def _ms(seconds: float | None) -> float | None:
    """Milliseconds to the microsecond (``round(x * 1000, 3)`` in a third of its time)."""
    return None if seconds is None else round(seconds * 1e6) / 1000


def _tokens(usage: Any) -> tuple[int | None, int | None]:
    """(prompt, completion) tokens of an OpenAI ``usage`` object, None where it says none."""
    if not isinstance(usage, dict):
        return None, None
    out = []
    for key in ("prompt_tokens", "completion_tokens"):
        n = usage.get(key)
        out.append(n if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else None)
    return out[0], out[1]


def _stream_usage(tail: bytes) -> Any:
    """The ``usage`` of the last chunk in ``tail`` (an SSE stream's end) that has one."""
    at = tail.rfind(b'"usage"')
    if at < 0:
        return None
    start, end = tail.rfind(b"data:", 0, at), tail.find(b"\n", at)
    if start < 0:
        return None
    try:
        chunk = json.loads(tail[start + 5:end if end >= 0 else len(tail)])
    except ValueError:
        return None
    return chunk.get("usage") if isinstance(chunk, dict) else None
