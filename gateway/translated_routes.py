"""The translated APIs: Anthropic Messages and Gemini generateContent, over the same proxy.

    POST /v1/messages                                     Anthropic (``stream`` in the body)
    POST /v1beta/models/{model}:generateContent           Gemini
    POST /v1beta/models/{model}:streamGenerateContent     Gemini: ``?alt=sse``, else a JSON array
    POST /v1/models/{model}:generateContent               the same two again: google-genai with
    POST /v1/models/{model}:streamGenerateContent         a custom base URL speaks API "v1"

:class:`TranslatedDoor` is raw ASGI in front of :class:`~gateway.openai_routes.FrontDoor`; any
other request passes through untouched. A translated request is: the gateway-key check
(``x-api-key``, ``x-goog-api-key``, ``?key=`` or a bearer), the body (same size limit), the
API's ``to_chat_request``, :meth:`gateway.app.Gateway.forward_chat` (the same model resolution,
aliases, pinning, routing, failover and statistics as ``/v1/chat/completions``), and the API's
``from_chat_response`` or ``stream_from_chat`` back. Each API is an :class:`Api` in the
:data:`APIS` registry: nothing else here knows which API it is serving.

Errors are answered in the API's own shape at one place, :func:`send_error`: a
:class:`~gateway.errors.GatewayError` keeps its status (and ``Retry-After``), a translation
``ValueError`` is a 400. Once a stream has started, a provider failure ends it with the API's
error event (written by ``stream_from_chat``). Every answer a provider gave carries
``X-Unigw-Provider``.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs

from gateway.errors import BadRequest, GatewayError
from gateway.openai_routes import (
    PIN_HEADER,
    ASGIApp,
    Receive,
    Scope,
    Send,
    authorize,
    parse_object,
    pass_through,
    pin_of,
    read_body,
)
from gateway.proxy import ChatResult, ChatStream
from gateway.translate import anthropic as anthropic_api
from gateway.translate import gemini as gemini_api
from gateway.translate.common import close_upstream

if TYPE_CHECKING:
    from gateway.app import Gateway

JSON = b"application/json"
SSE = b"text/event-stream"
GEMINI_PATH = re.compile(r"/v1(?:beta)?/models/(.+):(generateContent|streamGenerateContent)")


class Translation(Protocol):
    """What :mod:`gateway.translate.anthropic` and :mod:`gateway.translate.gemini` both offer."""

    def to_chat_request(self, body: object, *, stream: bool,
                        model: str | None = None) -> dict[str, Any]: ...

    def from_chat_response(self, resp: dict[str, Any], *, model: str,
                           stop_sequences: Sequence[str] = ()) -> dict[str, Any]: ...

    def stream_from_chat(self, chunks: AsyncIterator[dict[str, Any]], *, model: str,
                         stop_sequences: Sequence[str] = ()) -> AsyncIterator[bytes]: ...

    def error_body(self, status: int, message: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Api:
    """One translated API: its translation module, and whether ``?key=`` carries the key."""

    name: str
    translation: Translation
    query_key: bool = False


APIS = {
    "anthropic": Api("anthropic", anthropic_api),
    "gemini": Api("gemini", gemini_api, query_key=True),
}


@dataclass(frozen=True)
class Call:
    """What the URL says about one translated request.

    ``model`` and ``stream`` are None when the body says (Anthropic); ``sse`` is False for a
    Gemini stream asked for without ``?alt=sse`` (answered as one streamed JSON array).
    """

    api: Api
    model: str | None = None
    stream: bool | None = None
    sse: bool = True


def match(scope: Scope) -> Call | None:
    """The translated request ``scope`` is, or None for any other request."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    path: str = scope["path"]
    if path == "/v1/messages":
        return Call(APIS["anthropic"])
    found = GEMINI_PATH.fullmatch(path) if ":" in path else None  # cheap for the OpenAI routes
    if found is None:
        return None
    stream = found.group(2) == "streamGenerateContent"
    sse = not stream or query_value(scope, "alt") == "sse"
    return Call(APIS["gemini"], model=found.group(1), stream=stream, sse=sse)


def query_value(scope: Scope, name: str) -> str | None:
    """The first value of query parameter ``name``, or None."""
    query = scope.get("query_string") or b""
    if name.encode() + b"=" not in query:
        return None
    values = parse_qs(query.decode("latin-1")).get(name)
    return values[0] if values else None


class TranslatedDoor:
    """Raw ASGI: serves the translated routes, passes everything else to ``app``."""

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        call = match(scope)
        if call is None:
            return await self.app(scope, receive, send)
        try:
            result, stop = await self._forward(call, scope, receive)
        except GatewayError as exc:
            return await send_error(send, call.api, exc)
        if isinstance(result, ChatResult):
            body = call.api.translation.from_chat_response(
                result.body, model=result.model, stop_sequences=stop)
            return await send_json(send, 200, body, result.provider)
        events = call.api.translation.stream_from_chat(
            result.chunks, model=result.model, stop_sequences=stop)
        if not call.sse:
            events = json_array(events)
        await send_stream(send, receive, result.provider, events, SSE if call.sse else JSON)

    async def _forward(self, call: Call, scope: Scope, receive: Receive,
                       ) -> tuple[ChatResult | ChatStream, Sequence[str]]:
        """Check the key, read and translate the body, and forward it; GatewayError if not."""
        gateway = self.gateway
        headers = dict(scope["headers"])
        query_key = query_value(scope, "key") if call.api.query_key else None
        authorize(gateway.api_keys, headers, query_key.encode() if query_key else None)
        body = parse_object(await read_body(headers, receive, gateway.max_body_bytes))
        try:
            chat = call.api.translation.to_chat_request(
                body, stream=bool(call.stream), model=call.model)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        stop = chat.get("stop") or ()
        result = await gateway.forward_chat(chat, pin=pin_of(scope, headers),
                                            stream=chat["stream"])
        return result, stop


# -- answering -----------------------------------------------------------------------------------

async def send_error(send: Send, api: Api, exc: GatewayError) -> None:
    """The one place a gateway error becomes an answer in ``api``'s own error shape."""
    extra = [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
    await send_json(send, exc.status_code, api.translation.error_body(exc.status_code,
                                                                        exc.message), None, extra)


async def send_json(send: Send, status: int, body: dict[str, Any], provider: str | None,
                    extra: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    head = [(b"content-type", JSON), (b"content-length", b"%d" % len(data)), *(extra or [])]
    if provider is not None:
        head.append((PIN_HEADER, provider.encode()))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": data})


async def json_array(events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Gemini's stream without ``?alt=sse``: the events' objects as one JSON array."""
    separator = b"["
    try:
        async for event in events:
            yield separator + event.removeprefix(b"data: ").rstrip(b"\r\n")
            separator = b",\r\n"
    finally:
        await close_upstream(events)
    yield b"[]" if separator == b"[" else b"]"


async def send_stream(send: Send, receive: Receive, provider: str,
                      events: AsyncIterator[bytes], content_type: bytes) -> None:
    """Send ``events`` as they come; if the client goes away, stop and close the upstream."""
    head = [(b"content-type", content_type), (b"cache-control", b"no-cache"),
            (PIN_HEADER, provider.encode())]
    try:
        await pass_through(receive, send, 200, head, events)
    finally:
        await close_upstream(events)  # closing the events closes the provider's stream


__all__ = ["APIS", "Api", "Call", "TranslatedDoor", "match", "send_error"]
