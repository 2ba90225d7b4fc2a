"""The OpenAI-compatible routes.

``POST /v1/chat/completions`` and ``POST /v1/completions`` are served by :class:`FrontDoor`, a
raw ASGI layer in front of Starlette's router: they are the hot path, and Starlette's request
and response objects cost more than the proxying itself. The front door also checks the
gateway keys of every ``/v1*`` route. ``GET /v1/models`` and ``POST /v1/test`` are ordinary
Starlette routes (:func:`openai_routes`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.errors import (
    BadRequest,
    BodyTooLarge,
    GatewayError,
    MethodNotAllowed,
    Unauthorized,
    error_bytes,
)
from gateway.proxy import Answer, ChatResult, Job, Opened
from gateway.stats import Outcome

if TYPE_CHECKING:
    from gateway.app import Gateway

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON = b"application/json"
PIN_HEADER = b"x-unigw-provider"
PROXIED = frozenset(("/v1/chat/completions", "/v1/completions"))
KEY_HEADERS = (b"authorization", b"x-api-key", b"x-goog-api-key")


class FrontDoor:
    """Raw ASGI: gateway keys on ``/v1*``, then the two proxied routes, else Starlette."""

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/v1"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])  # last value wins; fine for the ones read here
        try:
            authorize(self.gateway.api_keys, headers)
            if path in PROXIED:
                if scope["method"] != "POST":
                    raise MethodNotAllowed(f"{scope['method']} {path}: use POST",
                                           headers={"Allow": "POST"})
                return await self._proxy(scope, headers, receive, send, path)
        except GatewayError as exc:
            return await send_error(send, exc)
        await self.app(scope, receive, send)

    async def _proxy(self, scope: Scope, headers: dict[bytes, bytes], receive: Receive,
                     send: Send, path: str) -> None:
        gateway = self.gateway
        raw = await read_body(headers, receive, gateway.max_body_bytes)
        body = parse_object(raw)
        model, stream = validate(path, body)
        pin = pin_of(scope, headers)
        router = gateway.router
        plan = router.pinned(pin, model) if pin else router.plan(model)
        result = await gateway.proxy.call(Job(path, body, raw, stream, plan))
        if isinstance(result, Answer):
            await send_answer(send, result)
        else:
            await stream_answer(gateway, result, receive, send)


def authorize(keys: tuple[bytes, ...], headers: dict[bytes, bytes],
              query_key: bytes | None = None) -> None:
    """401 unless a gateway key came as a bearer, ``x-api-key``, ``x-goog-api-key`` or (Gemini's
    ``?key=``) ``query_key``; anything goes when no keys are configured."""
    if not keys:
        return
    tokens = [query_key] if query_key else []
    for name in KEY_HEADERS:
        value = headers.get(name)
        if value is not None:
            tokens.append(value[7:] if value[:7].lower() == b"bearer " else value)
    if any(hmac.compare_digest(token, key) for token in tokens for key in keys):
        return
    raise Unauthorized("a gateway API key is required: send 'Authorization: Bearer KEY'")


async def read_body(headers: dict[bytes, bytes], receive: Receive, limit: int) -> bytes:
    """The request body; 413 past ``limit`` bytes (by Content-Length or as it arrives)."""
    length = headers.get(b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise BodyTooLarge(f"request body of {int(length)} bytes is over the limit of {limit}")
    message = await receive()
    body = message.get("body", b"")
    while message.get("more_body"):
        message = await receive()
        body += message.get("body", b"")
        if len(body) > limit:
            raise BodyTooLarge(f"request body is over the limit of {limit} bytes")
    if len(body) > limit:
        raise BodyTooLarge(f"request body of {len(body)} bytes is over the limit of {limit}")
    return body


def parse_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or 400."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def validate(path: str, body: dict[str, Any]) -> tuple[str, bool]:
    """``(model, stream)`` of a chat or completions request, or 400 naming the field."""
    model, stream = body.get("model"), body.get("stream", False)
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required and must be a non-empty string")
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be true or false")
    if path == "/v1/completions":
        prompt = body.get("prompt")
        if not isinstance(prompt, (str, list)):
            raise BadRequest("'prompt' is required and must be a string or a list")
        return model, stream
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' is required and must be a non-empty list")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BadRequest(f"'messages[{i}]' must be an object with a string 'role'")
    return model, stream


def pin_of(scope: Scope, headers: dict[bytes, bytes]) -> str | None:
    """The provider a request is pinned to: ``?provider=NAME`` or ``X-Unigw-Provider``."""
    query = scope.get("query_string")
    if query and b"provider=" in query:
        values = parse_qs(query.decode("latin-1")).get("provider")
        if values and values[0]:
            return values[0]
    value = headers.get(PIN_HEADER)
    return value.decode("latin-1") if value else None


async def send_error(send: Send, exc: GatewayError) -> None:
    body = error_bytes(exc)
    head = [(b"content-type", JSON), (b"content-length", b"%d" % len(body))]
    head += [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
    await send({"type": "http.response.start", "status": exc.status_code, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def send_answer(send: Send, answer: Answer) -> None:
    head = [(b"content-type", answer.content_type),
            (b"content-length", b"%d" % len(answer.body)),
            (PIN_HEADER, answer.backend.name.encode())]
    await send({"type": "http.response.start", "status": answer.status, "headers": head})
    await send({"type": "http.response.body", "body": answer.body})


async def stream_answer(gateway: Gateway, opened: Opened, receive: Receive, send: Send) -> None:
    """Pass an opened stream through; if the client goes away, stop and close the upstream."""
    content_type = opened.response.header(b"content-type") or b"text/event-stream"
    head = [(b"content-type", content_type), (b"cache-control", b"no-cache"),
            (PIN_HEADER, opened.backend.name.encode())]
    events = gateway.proxy.sse(opened)
    try:
        await pass_through(receive, send, opened.response.status, head, events)
    finally:
        await events.aclose()  # closes the upstream if the stream was under way
        opened.finish(Outcome.CANCELLED)  # a no-op if it finished already (or never began)


async def pass_through(receive: Receive, send: Send, status: int, head: list[tuple[bytes, bytes]],
                       events: AsyncIterator[bytes]) -> None:
    """Send ``events`` as they come; stop early, normally, when the client goes away.

    The caller closes the upstream behind ``events`` in its own ``finally``.
    """
    task = asyncio.current_task()
    assert task is not None
    gone = asyncio.Event()
    watcher = asyncio.ensure_future(_watch_disconnect(receive, task, gone))
    try:
        await send({"type": "http.response.start", "status": status, "headers": head})
        async for data in events:
            await send({"type": "http.response.body", "body": data, "more_body": True})
        watcher.cancel()  # from here a disconnect no longer matters
        await send({"type": "http.response.body", "body": b""})
    except asyncio.CancelledError:
        if not gone.is_set():
            raise
        uncancel = getattr(task, "uncancel", None)  # Python 3.11+ counts cancellations
        if uncancel is not None:
            uncancel()  # the client left: that ends this request normally
    finally:
        watcher.cancel()


async def _watch_disconnect(receive: Receive, task: asyncio.Task[Any], gone: asyncio.Event) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    gone.set()
    task.cancel()


# -- Starlette routes ----------------------------------------------------------------------------

def openai_routes(gateway: Gateway) -> list[BaseRoute]:
    """``GET /v1/models`` and ``POST /v1/test`` (the translated APIs: gateway.translated_routes)."""

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": gateway.router.model_list()})

    async def test(request: Request) -> Response:
        return await one_shot_test(gateway, request)

    return [
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/test", test, methods=["POST"]),
    ]


async def one_shot_test(gateway: Gateway, request: Request) -> Response:
    """``POST /v1/test {"message", "provider"?, "model"?}``: one non-streaming check."""
    raw = await read_body(dict(request.scope["headers"]), request.receive,
                          gateway.max_body_bytes)
    body = parse_object(raw)
    message, provider, model = body.get("message"), body.get("provider"), body.get("model")
    if not isinstance(message, str) or not message:
        raise BadRequest("'message' is required and must be a non-empty string")
    for name, value in (("provider", provider), ("model", model)):
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"'{name}' must be a string")
    router = gateway.router
    plan = (router.pinned(provider, model) if provider
            else router.plan(model) if model else router.any_ready())
    chat = {"model": plan.model, "messages": [{"role": "user", "content": message}]}
    started = time.perf_counter()
    result = await gateway.proxy.forward_chat(chat, plan=plan, stream=False)
    assert isinstance(result, ChatResult)
    choices = result.body.get("choices") or [{}]
    reply = ((choices[0] or {}).get("message") or {}).get("content")
    return JSONResponse({"provider": result.provider, "model": result.model, "reply": reply,
                         "latency_ms": round((time.perf_counter() - started) * 1000, 2)})
