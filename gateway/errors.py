"""The gateway's error tree, and the one place that turns it into an HTTP answer.

Everything the gateway refuses or fails at is raised as one of these, and answered by
:func:`answer` in the route's :class:`Envelope`: OpenAI's ``{"error": {"message", "type",
"param", "code"}}`` by default (all four always present, as OpenAI's ``ErrorResponse`` schema
requires: ``param`` names the request field to blame, or is null), Anthropic's or Gemini's on
their routes. The raw ASGI endpoints send that answer themselves
(:func:`gateway.asgi.send_error`); everything else, Starlette's own 404/405 and any unexpected
exception included, reaches :func:`handle_error`::

    GatewayError                         status   type
    ├── BadRequest                       400      invalid_request_error
    │   └── BodyTooLarge                 413      invalid_request_error
    ├── Unauthorized                     401      authentication_error
    ├── Forbidden                        403      permission_error      (control routes)
    ├── NotFound                         404      not_found_error       (model, provider, route)
    ├── MethodNotAllowed                 405      invalid_request_error (+ Allow)
    ├── NoProviderReady                  503      service_unavailable   (+ Retry-After)
    ├── ClientGone                       499      client_closed         (nobody reads it)
    ├── ProviderRejected                 4xx      invalid_request_error (the provider's own)
    └── ProviderFailed                   502      upstream_error        (every candidate failed)
        ├── ProviderTimeout              504      timeout_error
        └── ProviderRateLimited          429      rate_limit_error      (+ Retry-After)

A provider's own refusal of the request itself (HTTP 400/404/413/422) is not a failure of the
provider: the raw OpenAI routes pass its answer through unchanged, and translated routes raise
:class:`ProviderRejected` (``GatewayError``, the provider's status and message), so the client
gets the provider's verdict and nobody fails over.

One attempt at one provider fails with an :class:`AttemptFailed` (raised by
:mod:`gateway.upstream`, :mod:`gateway.proxy` and :mod:`gateway.truth`, never answered
directly): the proxy records it, tries the next candidate, and when none is left raises a
:class:`ProviderFailed` naming each provider tried, its :class:`FailureClass` and its message::

    AttemptFailed                 class (FailureClass)
    ├── ConnectFailed             unreachable: refused, or closed before an answer
    ├── FirstByteTimeout          timeout: no answer within gateway.first_byte_timeout
    ├── BadStatus                 by status: 5xx upstream_error, 429 rate_limited, 401/403
    │                             auth_failed, other 4xx upstream_error (``retry_after`` kept)
    ├── BadAnswer                 a 2xx that is really an error (error member, no choices, not
    │                             JSON, an error event, cut or silent before its first content):
    │                             upstream_error, rate_limited (by its message) or timeout
    └── StreamBroken              the provider failed after the stream was committed (never
                                  retried; raised by the upstream client while reading)
        └── MalformedAnswer       not HTTP, a head or body over its limit, a 2xx body not JSON

A provider's message that says it is rate limited makes a BadStatus or BadAnswer
``rate_limited``. Every class carries ``status_code``, which the API translators read to pick
their own status.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from gateway import jsonio
from gateway.translate import anthropic, gemini


class GatewayError(Exception):
    """An answer the gateway gives instead of a provider's; see the module docstring."""

    status_code = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, code: str | None = None,
                 headers: dict[str, str] | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.headers = headers or {}
        self.param = param  # the request field to blame, when there is one

    def body(self) -> dict[str, Any]:
        """The OpenAI error envelope."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


class BadRequest(GatewayError):
    status_code, type, code = 400, "invalid_request_error", "bad_request"


class BodyTooLarge(BadRequest):
    status_code, code = 413, "body_too_large"


class Unauthorized(GatewayError):
    status_code, type, code = 401, "authentication_error", "invalid_api_key"


class Forbidden(GatewayError):
    status_code, type, code = 403, "permission_error", "forbidden"


class NotFound(GatewayError):
    status_code, type, code = 404, "not_found_error", "not_found"


class MethodNotAllowed(GatewayError):
    status_code, type, code = 405, "invalid_request_error", "method_not_allowed"


class NoProviderReady(GatewayError):
    status_code, type, code = 503, "service_unavailable", "no_provider_ready"

    def __init__(self, message: str, *, retry_after: int = 2, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"Retry-After": str(retry_after)})


class ClientGone(GatewayError):
    """The client went away before its answer: the work for it was cancelled, and the answer
    (sent to a closed connection, which the server drops) is for the record only."""

    status_code, type, code = 499, "client_closed", "client_gone"


class ProviderFailed(GatewayError):
    status_code, type, code = 502, "upstream_error", "provider_failed"


class ProviderTimeout(ProviderFailed):
    status_code, type, code = 504, "timeout_error", "provider_timeout"


class ProviderRateLimited(ProviderFailed):
    status_code, type, code = 429, "rate_limit_error", "provider_rate_limited"


class ProviderRejected(GatewayError):
    """The provider refused the request itself (400/404/413/422): its status and message."""

    type, code = "invalid_request_error", "provider_rejected"

    def __init__(self, provider: str, status: int, detail: str) -> None:
        super().__init__(f"provider {provider!r} answered HTTP {status}: {detail}",
                         headers={"X-Unigw-Provider": provider})  # the provider's own answer
        self.provider, self.status, self.detail = provider, status, detail
        self.status_code = status


# -- one attempt at one provider ---------------------------------------------------------------

class FailureClass(str, enum.Enum):
    """Why one attempt failed, which decides the reaction (see :mod:`gateway.routing`)."""

    UNREACHABLE = "unreachable"  # refused or reset before an answer: eject after a few
    TIMEOUT = "timeout"  # no answer, or no first content, in time: eject after a few
    UPSTREAM_ERROR = "upstream_error"  # 5xx, an error inside a 2xx, cut before content: same
    RATE_LIMITED = "rate_limited"  # 429 or a message saying so: cooled for its Retry-After
    AUTH_FAILED = "auth_failed"  # 401/403: out of traffic until its key or process changes
    CLIENT_ERROR = "client_error"  # 400/404/413/422: the request's fault, answered unchanged


CLIENT_ERROR_STATUSES = frozenset((400, 404, 413, 422))
_RATE_LIMIT_TEXT = re.compile(r"rate.?limit|too many requests|quota exceeded", re.IGNORECASE)


def says_rate_limited(message: str) -> bool:
    """Whether a provider's own message says it is rate limited."""
    return bool(_RATE_LIMIT_TEXT.search(message))


class AttemptFailed(Exception):
    """One provider failed one request; the proxy may try another.

    ``failure`` is its class; ``status`` the provider's HTTP status when it answered at all;
    ``said_error`` whether the provider itself declared an error (a 5xx, an error object or
    event, ``finish_reason: "error"``), which is what the poison-request rule compares.
    """

    status_code = 502
    kind = "failed"
    failure = FailureClass.UPSTREAM_ERROR
    status: int | None = None
    said_error = False
    retry_after: float | None = None

    def scrubbed(self, scrub: Callable[[str], str]) -> AttemptFailed:
        """This failure with ``scrub`` applied to its texts (:mod:`gateway.scrub`)."""
        self.args = tuple(scrub(a) if isinstance(a, str) else a for a in self.args)
        detail = getattr(self, "detail", None)
        if isinstance(detail, str):
            self.detail = scrub(detail)
        return self


class ConnectFailed(AttemptFailed):
    kind, failure = "connect error", FailureClass.UNREACHABLE


class FirstByteTimeout(AttemptFailed):
    status_code, kind, failure = 504, "timed out before the first byte", FailureClass.TIMEOUT


class BadStatus(AttemptFailed):
    """The provider answered an error status (anything but 2xx and the client errors)."""

    def __init__(self, status: int, detail: str, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}" + (f" ({detail})" if detail else ""))
        self.status, self.detail, self.retry_after = status, detail, retry_after
        self.said_error = status >= 500
        if status == 429 or says_rate_limited(detail):
            self.failure = FailureClass.RATE_LIMITED
        elif status in (401, 403):
            self.failure = FailureClass.AUTH_FAILED
        self.status_code = 429 if self.failure is FailureClass.RATE_LIMITED else 502


class BadAnswer(AttemptFailed):
    """A 2xx answer that is an error, or a stream that failed before its first content."""

    kind = "bad answer"

    def __init__(self, detail: str, *, status: int = 200, said_error: bool = False,
                 timeout: bool = False) -> None:
        super().__init__(f"HTTP {status}, {detail}")
        self.status, self.detail, self.said_error = status, detail, said_error
        if timeout:
            self.failure, self.status_code = FailureClass.TIMEOUT, 504
        elif says_rate_limited(detail):
            self.failure, self.status_code = FailureClass.RATE_LIMITED, 429


class StreamBroken(AttemptFailed):
    kind = "failed mid-stream"

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.detail = message
        if timeout:
            self.status_code, self.failure = 504, FailureClass.TIMEOUT


class MalformedAnswer(StreamBroken):
    kind = "malformed answer"


def describe(exc: AttemptFailed) -> str:
    """A short reason for one failed attempt, for the message naming every provider tried."""
    text = str(exc)
    if not isinstance(exc, (BadStatus, BadAnswer)):
        text = f"{exc.kind}: {text}" if text and text != exc.kind else exc.kind
    return f"{text} [{exc.failure.value}]"


def same_failure_everywhere(failures: list[AttemptFailed]) -> bool:
    """The poison-request rule: did every provider tried fail this request the same way?

    True when at least two providers were tried and each *declared* an error for this request
    with the same HTTP status and class ``upstream_error``: all the same 5xx, or all an error
    object / error event / ``finish_reason: "error"`` inside a 2xx. Then the request, not the
    providers, is the likely cause, and the proxy does not count it against them. Connection
    failures, timeouts, streams cut before content, rate limits and auth failures never match:
    those say something about the provider whatever the request was.
    """
    if len(failures) < 2:
        return False
    first = failures[0]
    return all(f.failure is FailureClass.UPSTREAM_ERROR and f.said_error and f.status is not None
               and f.status == first.status and type(f) is type(first) for f in failures)


def all_failed(tried: list[tuple[str, AttemptFailed]], *, excused: bool = False,
               ) -> ProviderFailed:
    """The error for a request every candidate failed: the last failure's class, each named.

    ``excused``: :func:`same_failure_everywhere` held, and the message says so.
    """
    named = "; ".join(f"{name}: {describe(exc)}" for name, exc in tried)
    last = tried[-1][1]
    if excused:
        return ProviderFailed(
            f"every provider tried failed this request the same way ({len(tried)}, HTTP "
            f"{last.status}), so the request is the likely cause: {named}",
            code="request_failed_everywhere")
    message = f"every provider tried failed ({len(tried)}): {named}"
    if last.failure is FailureClass.RATE_LIMITED:
        seconds = max(1, round(last.retry_after or 1))
        err: ProviderFailed = ProviderRateLimited(message, headers={"Retry-After": str(seconds)})
        return err
    if last.status_code == 504:
        return ProviderTimeout(message)
    return ProviderFailed(message)


# -- answering ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Envelope:
    """How one API shapes an error's body: OpenAI's, Anthropic's or Gemini's."""

    name: str
    shape: Callable[[GatewayError], dict[str, Any]]


OPENAI = Envelope("openai", GatewayError.body)
ANTHROPIC = Envelope("anthropic", lambda exc: anthropic.error_body(exc.status_code, exc.message))
GEMINI = Envelope("gemini", lambda exc: gemini.error_body(exc.status_code, exc.message))


def answer(exc: GatewayError, envelope: Envelope = OPENAI) -> tuple[int, dict[str, str], bytes]:
    """The one place an error becomes an answer: ``(status, headers, JSON body)``.

    The raw ASGI endpoints send it (:func:`gateway.asgi.send_error`); :func:`handle_error`
    makes it a Starlette response.
    """
    return exc.status_code, exc.headers, jsonio.dumps(envelope.shape(exc))


def envelope_of(scope: Scope) -> Envelope:
    """The envelope of the route that matched (an endpoint's ``envelope``), else OpenAI's."""
    envelope = getattr(scope.get("endpoint"), "envelope", OPENAI)
    return envelope if isinstance(envelope, Envelope) else OPENAI


def as_gateway_error(request: Request, exc: Exception) -> GatewayError:
    """Any exception a route raised, as a :class:`GatewayError` (a foreign one is a 500)."""
    if isinstance(exc, GatewayError):
        return exc
    if not isinstance(exc, HTTPException):
        return GatewayError("internal error in the gateway (see its log)")
    where = f"{request.method} {request.scope['path']}"  # request.url decodes the query
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        return NotFound(f"no such route: {where}")
    if exc.status_code == 405:
        allow = _allowed(request)
        return MethodNotAllowed(f"{where}: use {allow}", headers={**headers, "Allow": allow})
    err = GatewayError(str(exc.detail), code="bad_request", headers=headers)
    err.status_code, err.type = exc.status_code, "invalid_request_error"
    return err


def _allowed(request: Request) -> str:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    scope = {**request.scope, "method": ""}  # no route takes it: a path match is PARTIAL
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.matches(scope)[0] is not Match.NONE:
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


async def handle_error(request: Request, exc: Exception) -> Response:
    """Starlette's handler for every error: ours, its own 404/405, and the unexpected (500)."""
    status, headers, body = answer(as_gateway_error(request, exc), envelope_of(request.scope))
    return Response(body, status, headers, "application/json")
