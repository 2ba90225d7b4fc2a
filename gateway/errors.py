"""The gateway's error tree, and the one place that turns it into an HTTP answer.

Everything the gateway refuses or fails at is raised as one of these, and answered by
:func:`answer` in the route's :class:`Envelope`: OpenAI's ``{"error": {"message", "type",
"code"}}`` by default, Anthropic's or Gemini's on their routes. The raw ASGI endpoints send
that answer themselves (:func:`gateway.asgi.send_error`); everything else, Starlette's own
404/405 and any unexpected exception included, reaches :func:`handle_error`::

    GatewayError                         status   type
    ├── BadRequest                       400      invalid_request_error
    │   └── BodyTooLarge                 413      invalid_request_error
    ├── Unauthorized                     401      authentication_error
    ├── Forbidden                        403      permission_error      (control routes)
    ├── NotFound                         404      not_found_error       (model, provider, route)
    ├── MethodNotAllowed                 405      invalid_request_error (+ Allow)
    ├── NoProviderReady                  503      service_unavailable   (+ Retry-After)
    └── ProviderFailed                   502      upstream_error        (every candidate failed)
        ├── ProviderTimeout              504      timeout_error
        └── ProviderRateLimited          429      rate_limit_error      (+ Retry-After)

One attempt at one provider fails with an :class:`AttemptFailed` (raised by
:mod:`gateway.upstream` and :mod:`gateway.proxy`, never answered directly): the proxy records
it, tries the next candidate, and when none is left raises a :class:`ProviderFailed` naming each
provider tried and why::

    AttemptFailed
    ├── ConnectFailed        cannot connect, or the connection broke before the first byte
    ├── FirstByteTimeout     no first byte within gateway.first_byte_timeout
    ├── BadStatus            the provider answered 5xx or 429 (``retry_after`` from its header)
    └── StreamBroken         the provider failed after the first byte (never retried)

Every class carries ``status_code``, which the API translators read to pick their own status.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from gateway.translate import anthropic, gemini


class GatewayError(Exception):
    """An answer the gateway gives instead of a provider's; see the module docstring."""

    status_code = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The OpenAI error envelope."""
        return {"error": {"message": self.message, "type": self.type, "code": self.code}}


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


class ProviderFailed(GatewayError):
    status_code, type, code = 502, "upstream_error", "provider_failed"


class ProviderTimeout(ProviderFailed):
    status_code, type, code = 504, "timeout_error", "provider_timeout"


class ProviderRateLimited(ProviderFailed):
    status_code, type, code = 429, "rate_limit_error", "provider_rate_limited"


# -- one attempt at one provider ---------------------------------------------------------------

class AttemptFailed(Exception):
    """One provider failed one request; the proxy may try another."""

    status_code = 502
    kind = "failed"


class ConnectFailed(AttemptFailed):
    kind = "connect error"


class FirstByteTimeout(AttemptFailed):
    status_code, kind = 504, "timed out before the first byte"


class BadStatus(AttemptFailed):
    """The provider answered 5xx or 429."""

    def __init__(self, status: int, detail: str, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}" + (f" ({detail})" if detail else ""))
        self.status = status
        self.retry_after = retry_after
        self.status_code = 429 if status == 429 else 502


class StreamBroken(AttemptFailed):
    kind = "failed mid-stream"

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        if timeout:
            self.status_code = 504


def describe(exc: AttemptFailed) -> str:
    """A short reason for one failed attempt, for the message naming every provider tried."""
    text = str(exc)
    if isinstance(exc, BadStatus):
        return text
    return f"{exc.kind}: {text}" if text and text != exc.kind else exc.kind


def all_failed(tried: list[tuple[str, str]], last: AttemptFailed) -> ProviderFailed:
    """The error for a request every candidate failed: the last failure's class, each named."""
    named = "; ".join(f"{name}: {why}" for name, why in tried)
    message = f"every provider tried failed ({len(tried)}): {named}"
    if isinstance(last, BadStatus) and last.status == 429:
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
    body = json.dumps(envelope.shape(exc), ensure_ascii=False, separators=(",", ":"))
    return exc.status_code, exc.headers, body.encode()


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
    where = f"{request.method} {request.url.path}"
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
