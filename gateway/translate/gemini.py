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

from collections.abc import AsyncIterator, Sequence
from typing import Any

from gateway import jsonio
from gateway.translate import common, stream
from gateway.translate.gemini_request import to_chat_request

__all__ = ["error_body", "error_event", "from_chat_response", "stream_from_chat", "to_chat_request"]


def from_chat_response(resp: dict, *, model: str, stop_sequences: Sequence[str] = ()) -> dict:
    """A chat.completion as a GenerateContentResponse with one candidate."""
    result = common.read_chat_response(resp)
    parts: list[dict[str, Any]] = [{"text": result.text}] if result.text else []
    parts += [_function_call(call) for call in result.tool_calls]
    reason = common.finish_reason(result.finish_reason, has_tool_calls=bool(result.tool_calls))
    return _response(
        result.id,
        model,
        parts or [{"text": ""}],
        finish=common.GEMINI_FINISH_REASONS.get(reason, "OTHER"),
        usage=(result.input_tokens, result.output_tokens),
    )


def stream_from_chat(
    chunks: AsyncIterator[dict], *, model: str, stop_sequences: Sequence[str] = ()
) -> AsyncIterator[bytes]:
    """Chat completion chunks as Gemini SSE events, one event per yielded bytes."""
    return stream.write_stream(chunks, _Events(model))


class _Events:
    """Writes one Gemini stream (a :class:`~gateway.translate.stream.StreamWriter`): text as
    it comes, function calls whole in the last event."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.calls: dict[int, common.ToolCall] = {}  # by tool-call index, arguments accumulated

    def feed(self, deltas: list[stream.Delta], summary: stream.StreamSummary) -> list[bytes]:
        for delta in deltas:
            if isinstance(delta, stream.ToolCallDelta):
                _accumulate(self.calls, delta)
        text = "".join(d.text for d in deltas if isinstance(d, stream.TextDelta))
        return [_sse(_response(summary.id, self.model, [{"text": text}]))] if text else []

    def finish(self, summary: stream.StreamSummary) -> list[bytes]:
        parts = [_function_call(call) for _, call in sorted(self.calls.items())]
        usage = summary.usage
        finish = common.GEMINI_FINISH_REASONS.get(summary.final_reason(), "OTHER")
        last = _response(summary.id, self.model, parts or [{"text": ""}], finish=finish,
                         usage=(usage.input_tokens, usage.output_tokens))
        return [_sse(last)]

    def error(self, status: int, message: str) -> bytes:
        return error_event(status, message)


def _accumulate(calls: dict[int, common.ToolCall], delta: stream.ToolCallDelta) -> None:
    call = calls.setdefault(delta.index, common.ToolCall(id="", name="", arguments=""))
    call.id = call.id or delta.id or ""
    call.name = call.name or delta.name or ""
    call.arguments += delta.arguments


def _function_call(call: common.ToolCall) -> dict[str, Any]:
    function_call = {"id": call.id or common.new_id("call_"), "name": call.name}
    return {"functionCall": {**function_call, "args": common.parse_arguments(call.arguments)}}


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


def error_body(status: int, message: str) -> dict:
    """`{"error": {"code", "message", "status"}}` for an HTTP status."""
    name = common.error_names(status).google
    return {"error": {"code": status, "message": message, "status": name}}


def error_event(status: int, message: str) -> bytes:
    """The data event that ends a failed stream."""
    return _sse(error_body(status, message))


def _sse(data: dict[str, Any]) -> bytes:
    return b"data: %b\r\n\r\n" % jsonio.dumps(data)
