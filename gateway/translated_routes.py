"""The translated APIs: Anthropic Messages and Gemini generateContent, over the same proxy.

    POST /v1/messages                                     Anthropic (``stream`` in the body)
    POST /v1beta/models/{model}:generateContent           Gemini
    POST /v1beta/models/{model}:streamGenerateContent     Gemini: ``?alt=sse``, else a JSON array
    POST /v1/models/{model}:generateContent               the same two again: google-genai with
    POST /v1/models/{model}:streamGenerateContent         a custom base URL speaks API "v1"

Each route is a :class:`Translated` raw ASGI endpoint (listed in :mod:`gateway.routes`). A
translated request is: the gateway-key check
(``x-api-key``, ``x-goog-api-key``, ``?key=`` or a bearer), the body (same size limit), the
API's ``to_chat_request``, :meth:`gateway.app.Gateway.forward_chat` (the same model resolution,
aliases, pinning, routing, failover and statistics as ``/v1/chat/completions``), and the API's
``from_chat_response`` or ``stream_from_chat`` back. Each API is an :class:`Api` in the
:data:`APIS` registry: nothing else here knows which API it is serving.

Errors are answered in the API's own envelope (:data:`gateway.errors.ANTHROPIC`, ``GEMINI``)
by :func:`gateway.errors.answer`, the one place errors become answers: a
:class:`~gateway.errors.GatewayError` keeps its status (and ``Retry-After``), a translation
``ValueError`` is a 400, and a wrong method (405) is answered in the same envelope. Once a
stream has started, a provider failure ends it with the API's error event (written by
``stream_from_chat``). Every answer a provider gave carries ``X-Unigw-Provider``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from starlette.types import Receive, Scope, Send

from gateway.asgi import (
    JSON,
    PIN_HEADER,
    SSE,
    StreamNotes,
    authorize,
    headers_of,
    parse_object,
    pass_through,
    pin_of,
    query_value,
    read_body,
    send_error,
    send_json,
    unless_gone,
)
from gateway.calls import Trace
from gateway.errors import ANTHROPIC, GEMINI, BadRequest, Envelope, GatewayError
from gateway.results import ChatResult, ChatStream
from gateway.translate import anthropic as anthropic_api
from gateway.translate import gemini as gemini_api
from gateway.translate.stream import close_upstream

if TYPE_CHECKING:
    from gateway.app import Gateway



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
    """One translated API: its translation module, its error envelope, and whether ``?key=``
    carries the key."""

    name: str
    translation: Translation
    envelope: Envelope
    query_key: bool = False


APIS = {
    "anthropic": Api("anthropic", anthropic_api, ANTHROPIC),
    "gemini": Api("gemini", gemini_api, GEMINI, query_key=True),
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


class Translated:
    """Raw ASGI endpoint of one translated route (``stream``: None when the body says)."""

    def __init__(self, gateway: Gateway, api: Api, *, stream: bool | None = None) -> None:
        self.gateway = gateway
        self.api = api
        self.stream = stream
        self.envelope = api.envelope  # read by gateway.errors.envelope_of

    def call(self, scope: Scope) -> Call:
        """What this request's URL says: the Gemini model, and ``?alt=sse`` for its streams."""
        model = scope.get("path_params", {}).get("model")
        sse = not self.stream or query_value(scope, "alt") == "sse"
        return Call(self.api, model=model, stream=self.stream, sse=sse)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        call = self.call(scope)
        trace = self.gateway.calls.begin(scope["path"], call.api.name)
        try:
            await self._serve(call, scope, receive, send, trace)
        finally:
            self.gateway.calls.end(trace)

    async def _serve(self, call: Call, scope: Scope, receive: Receive, send: Send,
                     trace: Trace) -> None:
        try:
            result, stop = await self._forward(call, scope, receive, trace)
        except GatewayError as exc:
            trace.error(exc)
            return await send_error(send, exc, call.api.envelope)
        if isinstance(result, ChatResult):
            body = call.api.translation.from_chat_response(
                result.body, model=result.model, stop_sequences=stop)
            if trace.bodies:
                trace.keep_response(json.dumps(body, ensure_ascii=False).encode())
            return await send_json(send, 200, body, result.provider)
        events = call.api.translation.stream_from_chat(
            trace.chunks(result), model=result.model, stop_sequences=stop)
        if not call.sse:
            events = json_array(events)
        await send_stream(send, receive, result.provider, events, SSE if call.sse else JSON,
                          trace)

    async def _forward(self, call: Call, scope: Scope, receive: Receive, trace: Trace,
                       ) -> tuple[ChatResult | ChatStream, Sequence[str]]:
        """Check the key, read and translate the body, and forward it; GatewayError if not."""
        gateway = self.gateway
        headers = headers_of(scope)
        query_key = query_value(scope, "key") if call.api.query_key else None
        authorize(gateway.api_keys, headers, query_key.encode() if query_key else None)
        raw = await read_body(headers, receive, gateway.max_body_bytes)
        trace.keep_request(raw)
        body = parse_object(raw)
        try:
            chat = call.api.translation.to_chat_request(
                body, stream=bool(call.stream), model=call.model)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        stop = chat.get("stop") or ()
        model = chat.get("model")
        trace.model_asked = model if isinstance(model, str) else None
        trace.stream = bool(chat["stream"])
        result = await unless_gone(receive, gateway.forward_chat(
            chat, pin=pin_of(scope, headers), stream=chat["stream"], trace=trace))
        return result, stop


# -- answering -----------------------------------------------------------------------------------

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
                      events: AsyncIterator[bytes], content_type: bytes,
                      notes: StreamNotes) -> None:
    """Send ``events`` as they come; if the client goes away, stop and close the upstream."""
    head = [(b"content-type", content_type), (b"cache-control", b"no-cache"),
            (PIN_HEADER, provider.encode())]
    try:
        await pass_through(receive, send, 200, head, events, notes)
    finally:
        await close_upstream(events)  # closing the events closes the provider's stream


__all__ = ["APIS", "Api", "Call", "Translated"]
