"""Failure shapes: what real providers answer when their upstream fails, byte for byte.

The gateway has to see each of these as a failure, and some look like success (a 200 whose
body says otherwise). ``--failure NAME`` makes the echo provider answer chat calls this way;
``--fail-first N`` limits it to the first N chat calls. Each shape was read from the real
program's source at the commit providers.yaml pins, and matches what PROVIDERS.md measured
under ``unigw up`` with no internet (the upstream error is then
``[Errno -3] Temporary failure in name resolution``):

``zai-python``  z.ai2api_python (ZyphrZero, 544d00f): ``app/providers/zai_provider.py``.
    stream: 200 SSE, after 5 retries of 1 s one ``json.dumps`` event
    ``{"error": {"message": "Stream processing failed after 5 retries: …", "type":
    "stream_error"}}`` then ``data: [DONE]``; non-stream: ``handle_error`` → FastAPI
    ``HTTPException(500)``: ``{"detail":"zai 请求处理 错误: …"}`` (Starlette JSON: compact, UTF-8).
``k2-role-then-close``  k2Think2Api (rinuldui-dotcom, 1fb6a58): ``main.py``, stream or not.
    200 SSE, one pydantic ``.json()`` chunk with ``delta: {"role": "assistant"}``, then the
    generator raises on the upstream call: the connection closes, no error, no ``[DONE]``.
``k2think-500``  k2think2api3 (Zeeeepa, b571571): ``src/api_handler.py``.
    non-stream: 3 tries 0.5 s apart, then 500 ``{"detail":{"error":{"message":"非流式请求失败:
    …","type":"api_error"}}}``; stream: 200 SSE (``json.dumps``): role chunk, the error as
    content ``"\\n\\n请求处理失败: …"``, a ``finish_reason: "error"`` chunk, ``[DONE]``. Once
    its only token is marked bad (see ``/health``), both answer 500 at once with the
    ``AttributeError`` of its missing ``APIConstants.HTTP_SERVICE_UNAVAILABLE``.
``finish-error``  zsuroy/k2think2api (251b1ab): ``src/response_processor.py``.
    stream: 200 SSE: role chunk, a chunk with ``delta: {}`` and ``finish_reason: "error"``,
    ``[DONE]``; non-stream: as k2think2api3's first failures.
``html-502``  Z.ai2api (hmjz100, 0bf1d2f): ``app.py``, stream or not. Flask
    ``make_response(f"上游请求失败: {e}", 502)``: ``text/html; charset=utf-8`` with the
    requests exception as text, and its three CORS headers.
``text-502``  OpenAI-Compatible-API-Proxy-for-Z (kbykb, 714a3b6) and ZtoApi (libaxuan,
    ac45524): ``main.go``, stream or not. Go's ``http.Error``: ``text/plain; charset=utf-8``,
    ``X-Content-Type-Options: nosniff``, ``Failed to call upstream`` and a newline.
``ztoapits-502``  ZtoApits (roseforyou, b639338): ``main.ts``. Deno ``new Response(text,
    {status: 502})``: ``text/plain;charset=UTF-8``, ``Failed to process stream response``
    (stream) or ``Failed to process non-stream response``, no newline.

Shapes the issue names without one program behind them (bodies are unigw's own):

``error-in-200``  200 ``application/json`` whose body is an OpenAI error envelope.
``html-200``  200 ``text/html``: a challenge page where an API answer was expected.
``error-as-content``  a well-formed completion (finish_reason ``stop``) whose text is an
    error; the text is k2think2api3's answer to an upstream 401 (``api_handler.py``).
``slow-first-content``  the normal answer, but the first content comes late: a stream
    sends its role chunk at once and the rest after the delay.

When: ``--fail-first N`` (the first N chat calls; unset: every one) counts from start-up or
from the ``/_echo/config`` change that sets ``failure`` or ``fail_first``. Only
``/v1/chat/completions`` fails. The lying health, ``--health k2think2api3``: ``GET /health``
answers k2think2api3's ``200 {"status":"healthy",…,"tokens":{"total":1,"active":1,…}}`` until
``--health-fail-after K`` (3) chats have failed, then ``active`` 0 and ``inactive`` 1 (the
real one counts 3 tries per failed chat, so K=1 is its exact pace);
``tokens.consecutive_failures`` is the failed chats. Changing ``health`` or
``health_fail_after`` at run time gives it a fresh token. At run time::

    curl -X POST localhost:8002/_echo/config \
        -d '{"failure": "k2think-500", "health": "k2think2api3"}'

Auth and rate-limit failures are ``--api-key`` (401), ``--status 401|403|429`` and
``--retry-after``. ``--failure-delay S`` replaces the shapes' own delays (5 s, ~1.2 s, 10 s).
Headers are sent lower-case (ASGI), beside uvicorn's ``date`` and ``server``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from supervisor.demo.replies import SSE_DONE, Headers, dumps

UPSTREAM_ERROR = "[Errno -3] Temporary failure in name resolution"
K2THINK_NO_TOKEN = "type object 'APIConstants' has no attribute 'HTTP_SERVICE_UNAVAILABLE'"
K2THINK_REFRESH = "🔄 tokens强制刷新已启动，请稍后再试"
ZAI_REQUESTS_ERROR = (
    "HTTPSConnectionPool(host='chat.z.ai', port=443): Max retries exceeded with url: "
    "/api/chat/completions (Caused by NameResolutionError(\"<urllib3.connection."
    "HTTPSConnection object at 0x7f3c2a1b4d10>: Failed to resolve 'chat.z.ai' "
    f"({UPSTREAM_ERROR})\"))"
)
HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    b"<body><h1>Checking your browser before accessing the site.</h1></body></html>"
)

_JSON = (b"content-type", b"application/json")
_SSE_UTF8 = (b"content-type", b"text/event-stream; charset=utf-8")
_NO_CACHE = (b"cache-control", b"no-cache")
_KEEP_ALIVE = (b"connection", b"keep-alive")
_FASTAPI_K2_SSE: Headers = (_SSE_UTF8, _NO_CACHE, _KEEP_ALIVE, (b"x-accel-buffering", b"no"))
_GO_CORS: Headers = (
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, POST, PUT, DELETE, OPTIONS"),
    (b"access-control-allow-headers", b"Content-Type, Authorization"),
    (b"access-control-allow-credentials", b"true"),
)
_FLASK_CORS: Headers = (
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
    (b"access-control-allow-headers", b"Content-Type, Authorization"),
)


@dataclass(frozen=True)
class Ask:
    """The chat call being failed, and what the echo provider would have answered."""

    stream: bool
    model: str
    serial: int
    created: int
    normal: tuple[bytes, ...]  # the normal answer: its SSE events, or its one JSON body
    token_active: bool = True  # k2think2api3: whether its only token is still good


@dataclass(frozen=True)
class Failure:
    """One failed answer: wait ``delay``, send the head, then each (pause, bytes) part.

    ``complete=False`` leaves the body unfinished: the connection closes after the parts.
    """

    status: int
    headers: Headers
    parts: tuple[tuple[float, bytes], ...]
    delay: float = 0.0
    complete: bool = True


def _py_dumps(obj: Any) -> bytes:
    """Python's ``json.dumps`` with its defaults (``", "``/``": "``, ``ensure_ascii``)."""
    return json.dumps(obj).encode()


def _starlette_json(obj: Any) -> bytes:
    """Starlette's ``JSONResponse`` body: compact, non-ASCII kept as UTF-8."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _plain(status: int, headers: Headers, body: bytes, delay: float = 0.0) -> Failure:
    length = (b"content-length", str(len(body)).encode())
    return Failure(status, (*headers, length), ((0.0, body),), delay)


def _k2_chunk(model: str, delta: dict[str, Any], finish: str | None) -> bytes:
    """k2think2api3 / zsuroy ``_create_chunk_data`` through ``json.dumps``."""
    now = time.time()
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    chunk = {"id": f"chatcmpl-{int(now * 1000)}", "object": "chat.completion.chunk",
             "created": int(now), "model": model, "choices": [choice]}
    return b"data: " + _py_dumps(chunk) + b"\n\n"


def _k2_detail(message: str, delay: float) -> Failure:
    body = _starlette_json({"detail": {"error": {"message": message, "type": "api_error"}}})
    return _plain(500, (_JSON,), body, delay)


def zai_python(ask: Ask, delay: float | None) -> Failure:
    """z.ai2api_python: an error event in a 200 stream after 5 s, or a 500 ``detail``."""
    if not ask.stream:
        body = _starlette_json({"detail": f"zai 请求处理 错误: {UPSTREAM_ERROR}"})
        return _plain(500, (_JSON,), body)
    error = {"error": {"message": f"Stream processing failed after 5 retries: {UPSTREAM_ERROR}",
                       "type": "stream_error"}}
    headers = (_SSE_UTF8, _NO_CACHE, _KEEP_ALIVE, (b"access-control-allow-origin", b"*"))
    wait = 5.0 if delay is None else delay
    parts = ((wait, b"data: " + _py_dumps(error) + b"\n\n"), (0.0, SSE_DONE))
    return Failure(200, headers, parts)


def k2_role_then_close(ask: Ask, delay: float | None) -> Failure:
    """k2Think2Api: a 200 stream (always) with the role chunk, then the connection drops."""
    chunk = {"id": f"chatcmpl-{ask.serial:032x}", "object": "chat.completion.chunk",
             "created": ask.created, "model": ask.model,
             "choices": [{"delta": {"role": "assistant"}, "index": 0, "finish_reason": None}]}
    parts = ((0.0, b"data: " + dumps(chunk) + b"\n\n"),)
    return Failure(200, (_SSE_UTF8,), parts, 0.0 if delay is None else delay, complete=False)


def k2think_500(ask: Ask, delay: float | None) -> Failure:
    """k2think2api3: 500 after 3 tries, or an error-as-content stream; 500 once tokenless."""
    if not ask.token_active:
        return _k2_detail(K2THINK_NO_TOKEN, 0.0)
    if not ask.stream:
        return _k2_detail(f"非流式请求失败: {UPSTREAM_ERROR}", 1.2 if delay is None else delay)
    parts = (
        _k2_chunk(ask.model, {"role": "assistant", "content": ""}, None),
        _k2_chunk(ask.model, {"content": f"\n\n请求处理失败: {UPSTREAM_ERROR}"}, None),
        _k2_chunk(ask.model, {}, "error"),
        SSE_DONE,
    )
    return Failure(200, _FASTAPI_K2_SSE, tuple((0.0, p) for p in parts),
                   0.0 if delay is None else delay)


def finish_error(ask: Ask, delay: float | None) -> Failure:
    """zsuroy/k2think2api: a 200 stream that finishes with ``"error"``; non-stream a 500."""
    if not ask.stream:
        return _k2_detail(f"非流式请求失败: {UPSTREAM_ERROR}", 1.2 if delay is None else delay)
    parts = (
        _k2_chunk(ask.model, {"role": "assistant", "content": ""}, None),
        _k2_chunk(ask.model, {}, "error"),
        SSE_DONE,
    )
    return Failure(200, _FASTAPI_K2_SSE, tuple((0.0, p) for p in parts),
                   0.0 if delay is None else delay)


def html_502(ask: Ask, delay: float | None) -> Failure:
    """Z.ai2api: Flask's 502 ``text/html`` with the upstream exception as text."""
    headers = ((b"content-type", b"text/html; charset=utf-8"), *_FLASK_CORS)
    return _plain(502, headers, f"上游请求失败: {ZAI_REQUESTS_ERROR}".encode(), delay or 0.0)


def text_502(ask: Ask, delay: float | None) -> Failure:
    """The Go Z.ai proxies: ``http.Error(w, "Failed to call upstream", 502)``."""
    headers = (*_GO_CORS, (b"content-type", b"text/plain; charset=utf-8"),
               (b"x-content-type-options", b"nosniff"))
    return _plain(502, headers, b"Failed to call upstream\n", delay or 0.0)


def ztoapits_502(ask: Ask, delay: float | None) -> Failure:
    """ZtoApits (Deno): a 502 ``text/plain`` naming the stream or non-stream path."""
    kind = "stream" if ask.stream else "non-stream"
    body = f"Failed to process {kind} response".encode()
    return _plain(502, ((b"content-type", b"text/plain;charset=UTF-8"),), body, delay or 0.0)


def error_in_200(ask: Ask, delay: float | None) -> Failure:
    """A 200 JSON answer that is an error envelope (stream or not)."""
    error = {"error": {"message": f"upstream error: {UPSTREAM_ERROR}", "type": "upstream_error",
                       "code": "upstream_error"}}
    return _plain(200, (_JSON,), dumps(error), delay or 0.0)


def html_200(ask: Ask, delay: float | None) -> Failure:
    """A 200 HTML page where an API answer was expected."""
    return _plain(200, ((b"content-type", b"text/html; charset=utf-8"),), HTML_PAGE, delay or 0.0)


def slow_first_content(ask: Ask, delay: float | None) -> Failure:
    """The normal answer with its first content ``delay`` (10 s) late."""
    wait = 10.0 if delay is None else delay
    if not ask.stream:
        return _plain(200, (_JSON,), ask.normal[0], wait)
    parts = ((0.0, ask.normal[0]), (wait, ask.normal[1]), *((0.0, p) for p in ask.normal[2:]))
    return Failure(200, ((b"content-type", b"text/event-stream"), _NO_CACHE), parts)


def error_as_content(ask: Ask, delay: float | None) -> Failure:
    """A well-formed completion whose text is an error message (see ``error_text_reply``)."""
    if not ask.stream:
        return _plain(200, (_JSON,), ask.normal[0], delay or 0.0)
    parts = tuple((0.0, p) for p in ask.normal)
    return Failure(200, ((b"content-type", b"text/event-stream"), _NO_CACHE), parts,
                   delay or 0.0)


async def send(failure: Failure, out: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
    """Send a failure shape; an unfinished one leaves uvicorn to close the connection."""
    if failure.delay:
        await asyncio.sleep(failure.delay)
    head = list(failure.headers)
    await out({"type": "http.response.start", "status": failure.status, "headers": head})
    for pause, data in failure.parts:
        if pause:
            await asyncio.sleep(pause)
        await out({"type": "http.response.body", "body": data, "more_body": True})
    if failure.complete:
        await out({"type": "http.response.body", "body": b"", "more_body": False})


SHAPES = {
    "zai-python": zai_python,
    "k2-role-then-close": k2_role_then_close,
    "k2think-500": k2think_500,
    "finish-error": finish_error,
    "html-502": html_502,
    "text-502": text_502,
    "ztoapits-502": ztoapits_502,
    "error-in-200": error_in_200,
    "html-200": html_200,
    "error-as-content": error_as_content,
    "slow-first-content": slow_first_content,
}


def build(name: str, ask: Ask, delay: float | None) -> Failure:
    """The failed answer of shape ``name`` to ``ask``; ``delay`` replaces the shape's own."""
    return SHAPES[name](ask, delay)


def k2think_health(active: bool, consecutive_failures: int) -> bytes:
    """k2think2api3's ``GET /health`` body: always ``healthy``, whatever its one token says."""
    tokens = {"total": 1, "active": int(active), "inactive": int(not active),
              "consecutive_failures": consecutive_failures, "auto_update_enabled": False}
    note = "思考内容输出现在通过模型名控制"
    config = {"tool_support": True, "debug_logging": False, "note": note}
    return _starlette_json({"status": "healthy", "timestamp": int(time.time()),
                            "config": config, "tokens": tokens})
