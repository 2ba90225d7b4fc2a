"""Gemini generateContent / streamGenerateContent ⇄ OpenAI chat completions, as pure functions.

* `to_chat_request(body, *, stream, model)`: a GenerateContentRequest → a chat-completions
  request (see `gateway.translate.gemini_request`); malformed input raises `ValueError`
  naming the field.
* `from_chat_response(resp, *, model)`: a chat.completion → a GenerateContentResponse.
* `stream_from_chat(chunks, *, model)`: chat.completion.chunk dicts → `?alt=sse` events,
  `data: <GenerateContentResponse>\\r\\n\\r\\n`. Text is sent as it comes; function calls are
  sent whole, with the finishReason and usageMetadata, in the last event, since a Gemini
  `functionCall` part carries complete `args`. If `chunks` raises, the stream ends with a data
  event holding the error object.
* `error_body(status, message)` / `error_event(status, message)`: errors in Google's shape.

Finish reasons: "stop" and "tool_calls" → STOP, "length" → MAX_TOKENS, "content_filter" →
SAFETY, anything else → OTHER; a stream that ends without a finish_reason is STOP. Gemini has
no field for the stop sequence that matched, so `stop_sequences` is accepted only so both API
modules share one signature.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from gateway.translate.common import (
    GEMINI_FINISH_REASONS,
    StreamSummary,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    chat_deltas,
    close_upstream,
    failure_status,
    finish_reason,
    new_id,
    parse_arguments,
    read_chat_response,
)
from gateway.translate.gemini_request import to_chat_request

__all__ = [
    "error_body",
    "error_event",
    "from_chat_response",
    "stream_from_chat",
    "to_chat_request",
]

_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_body(status: int, message: str) -> dict:
    """`{"error": {"code", "message", "status"}}` for an HTTP status."""
    name = _STATUSES.get(status) or ("INVALID_ARGUMENT" if status < 500 else "INTERNAL")
    return {"error": {"code": status, "message": message, "status": name}}


def error_event(status: int, message: str) -> bytes:
    """The data event that ends a failed stream."""
    return _sse(error_body(status, message))


def from_chat_response(resp: dict, *, model: str, stop_sequences: Sequence[str] = ()) -> dict:
    """A chat.completion as a GenerateContentResponse with one candidate."""
    result = read_chat_response(resp)
    parts: list[dict[str, Any]] = [{"text": result.text}] if result.text else []
    parts += [_function_call(call) for call in result.tool_calls]
    reason = finish_reason(result.finish_reason, has_tool_calls=bool(result.tool_calls))
    return _response(
        result.id,
        model,
        parts or [{"text": ""}],
        finish=GEMINI_FINISH_REASONS.get(reason, "OTHER"),
        usage=(result.input_tokens, result.output_tokens),
    )


async def stream_from_chat(
    chunks: AsyncIterator[dict], *, model: str, stop_sequences: Sequence[str] = ()
) -> AsyncIterator[bytes]:
    """Chat completion chunks as Gemini SSE events, one event per yielded bytes."""
    summary = StreamSummary()
    calls: dict[int, ToolCall] = {}  # by the chat tool-call index, arguments accumulated
    try:
        async for deltas in chat_deltas(chunks, summary):
            text = "".join(d.text for d in deltas if isinstance(d, TextDelta))
            for delta in deltas:
                if isinstance(delta, ToolCallDelta):
                    _accumulate(calls, delta)
            if text:
                yield _sse(_response(summary.id, model, [{"text": text}]))
    except Exception as exc:  # any upstream failure ends the stream in Google's own words
        yield error_event(failure_status(exc), str(exc))
        return
    finally:
        await close_upstream(chunks)
    parts = [_function_call(call) for _, call in sorted(calls.items())]
    usage = summary.usage
    yield _sse(
        _response(
            summary.id,
            model,
            parts or [{"text": ""}],
            finish=GEMINI_FINISH_REASONS.get(summary.final_reason(), "OTHER"),
            usage=(usage.input_tokens, usage.output_tokens),
        )
    )


def _accumulate(calls: dict[int, ToolCall], delta: ToolCallDelta) -> None:
    call = calls.setdefault(delta.index, ToolCall(id="", name="", arguments=""))
    call.id = call.id or delta.id or ""
    call.name = call.name or delta.name or ""
    call.arguments += delta.arguments


def _function_call(call: ToolCall) -> dict[str, Any]:
    function_call = {"id": call.id or new_id("call_"), "name": call.name}
    return {"functionCall": {**function_call, "args": parse_arguments(call.arguments)}}


def _response(
    response_id: str,
    model: str,
    parts: list[dict[str, Any]],
    *,
    finish: str | None = None,
    usage: tuple[int, int] | None = None,
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    out: dict[str, Any] = {"candidates": [candidate]}
    if usage is not None:
        prompt, completion = usage
        out["usageMetadata"] = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": completion,
            "totalTokenCount": prompt + completion,
        }
    return {**out, "modelVersion": model, "responseId": response_id}


def _sse(data: dict[str, Any]) -> bytes:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"data: {payload}\r\n\r\n".encode()
