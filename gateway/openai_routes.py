"""The OpenAI-compatible endpoints.

``POST /v1/chat/completions`` and ``POST /v1/completions`` are served by :class:`Proxied`, a
raw ASGI endpoint: they are the hot path, and Starlette's request and response objects cost
more than the proxying itself. ``GET /v1/models`` and ``POST /v1/test`` are ordinary Starlette
endpoints (:class:`OpenAI`). Every one of them checks the gateway keys first. The routes
themselves are listed in :mod:`gateway.routes`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from gateway.asgi import (
    PIN_HEADER,
    authorize,
    headers_of,
    parse_object,
    pass_through,
    pin_of,
    read_body,
    send_bytes,
    send_error,
    unless_gone,
)
from gateway.calls import Trace
from gateway.errors import OPENAI, BadRequest, GatewayError
from gateway.results import Answer, Job, Opened
from gateway.stats import Outcome

if TYPE_CHECKING:
    from gateway.app import Gateway


class Proxied:
    """Raw ASGI endpoint of one proxied route: the body is checked and passed through as is."""

    envelope = OPENAI

    def __init__(self, gateway: Gateway, path: str) -> None:
        self.gateway = gateway
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        trace = self.gateway.calls.begin(self.path, "openai")
        try:
            await self._proxy(scope, receive, send, trace)
        except GatewayError as exc:
            trace.error(exc)
            await send_error(send, exc)
        finally:
            self.gateway.calls.end(trace)

    async def _proxy(self, scope: Scope, receive: Receive, send: Send, trace: Trace) -> None:
        gateway = self.gateway
        headers = headers_of(scope)
        authorize(gateway.api_keys, headers)
        raw = await read_body(headers, receive, gateway.max_body_bytes)
        trace.keep_request(raw)
        body = parse_object(raw)
        model, stream = validate(self.path, body)
        trace.model_asked, trace.stream = model, stream
        pin = pin_of(scope, headers)
        router = gateway.router
        plan = router.pinned(pin, model) if pin else router.plan(model)
        job = Job(self.path, body, raw, stream, plan, trace)
        result = await unless_gone(receive, gateway.proxy.call(job))
        if isinstance(result, Answer):
            head = [(b"content-type", result.content_type),
                    (PIN_HEADER, result.served.encode())]
            await send_bytes(send, result.status, result.body, head)
        else:
            await stream_answer(gateway, result, receive, send, trace)


def validate(path: str, body: dict[str, Any]) -> tuple[str, bool]:
    """``(model, stream)`` of a chat or completions request, or 400 naming the field."""
    model, stream = body.get("model"), body.get("stream", False)
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required and must be a non-empty string", param="model")
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be true or false", param="stream")
    if path == "/v1/completions":
        prompt = body.get("prompt")
        if not isinstance(prompt, (str, list)):
            raise BadRequest("'prompt' is required and must be a string or a list",
                             param="prompt")
        return model, stream
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' is required and must be a non-empty list",
                         param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BadRequest(f"'messages[{i}]' must be an object with a string 'role'",
                             param=f"messages[{i}]")
    return model, stream


async def stream_answer(gateway: Gateway, opened: Opened, receive: Receive, send: Send,
                        trace: Trace) -> None:
    """Pass an opened stream through; if the client goes away, stop and close the upstream."""
    content_type = opened.response.header(b"content-type") or b"text/event-stream"
    head = [(b"content-type", content_type), (b"cache-control", b"no-cache"),
            (PIN_HEADER, opened.served.encode())]
    events = gateway.proxy.sse(opened)
    try:
        await pass_through(receive, send, opened.response.status, head, events, trace,
                           opened.finished)
    finally:
        await events.aclose()  # closes the upstream if the stream was under way
        opened.finish(Outcome.CANCELLED)  # a no-op if it finished already (or never began)


class OpenAI:
    """``GET /v1/models`` and ``POST /v1/test``, as Starlette endpoints."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def models(self, request: Request) -> Response:
        """Every model once (a model group once, with its members), owned by a ready provider."""
        authorize(self.gateway.api_keys, headers_of(request.scope))
        return JSONResponse({"object": "list", "data": self.gateway.router.model_list()})

    async def test(self, request: Request) -> Response:
        """``POST /v1/test``: see :func:`one_shot_test`."""
        authorize(self.gateway.api_keys, headers_of(request.scope))
        return await one_shot_test(self.gateway, request)


async def one_shot_test(gateway: Gateway, request: Request) -> Response:
    """``POST /v1/test {"message"?, "provider"?, "model"?}``: one canary now.

    The canary of :mod:`gateway.canary` (``max_tokens: 1``, pinned, recorded like any call),
    to ``provider``, or else to the ready provider (serving ``model``, if given) tried least
    recently; ``message`` defaults to ``gateway.canary_prompt``. It answers 200 with
    :meth:`~gateway.canary.CanaryResult.to_json` whenever the chat was sent, the provider's
    failure included (``ok: false``); 400/404/503 when it could not be sent.
    """
    raw = await read_body(headers_of(request.scope), request.receive, gateway.max_body_bytes)
    body = parse_object(raw)
    unknown = sorted(set(body) - {"message", "provider", "model"})
    if unknown:
        raise BadRequest(f"unknown field(s) {', '.join(map(repr, unknown))}: /v1/test takes "
                         "'message', 'provider' and 'model'", param=unknown[0])
    message, provider, model = body.get("message"), body.get("provider"), body.get("model")
    if message is not None and not (isinstance(message, str) and message):
        raise BadRequest("'message' must be a non-empty string")
    for name, value in (("provider", provider), ("model", model)):
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"'{name}' must be a string")
    canary = gateway.canary
    name = provider or canary.least_recently_tried(model)
    result = await unless_gone(request.receive, canary.check(name, prompt=message, model=model))
    return JSONResponse(result.to_json())
