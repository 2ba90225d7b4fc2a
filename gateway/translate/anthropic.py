"""Anthropic Messages API ⇄ OpenAI chat completions, as pure functions.

* `to_chat_request(body, *, stream, model)`: a Messages body → a chat-completions request
  (see `gateway.translate.anthropic_request`); malformed input raises `ValueError` naming the field.
* `from_chat_response(resp, *, model)`: a chat.completion → a Messages `message`.
* `stream_from_chat(chunks, *, model)`: chat.completion.chunk dicts → Anthropic SSE bytes
  (`message_start`, `ping`, `content_block_start/delta/stop`, `message_delta`, `message_stop`).
  If `chunks` raises, the stream ends with `event: error` and no `message_stop`.
* `error_body(status, message)` / `error_event(status, message)`: errors in Anthropic's shape.

Stop reasons: "stop" → end_turn, "length" → max_tokens, "tool_calls"/"function_call" → tool_use,
"content_filter" → refusal; a stream that ends without a finish_reason ends its turn. OpenAI
cannot say which stop sequence matched, so `stop_sequence` is reported only when the provider
names it in a non-standard choice field (`stop_sequence`, `matched_stop`, or a string
`stop_reason`); pass the request's `stop_sequences` to accept only those. Otherwise a stop is
`end_turn` with `stop_sequence: null`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from gateway import jsonio
from gateway.translate import common, stream
from gateway.translate.anthropic_request import to_chat_request

__all__ = ["error_body", "error_event", "from_chat_response", "stream_from_chat", "to_chat_request"]


def from_chat_response(resp: dict, *, model: str, stop_sequences: Sequence[str] = ()) -> dict:
    """A chat.completion as an Anthropic `message` (text block first, then tool_use blocks)."""
    result = common.read_chat_response(resp)
    content: list[dict[str, Any]] = []
    if result.text:
        content.append({"type": "text", "text": result.text})
    for call in result.tool_calls:
        block = {"type": "tool_use", "id": call.id, "name": call.name}
        content.append({**block, "input": common.parse_arguments(call.arguments)})
    reason = common.finish_reason(result.finish_reason, has_tool_calls=bool(result.tool_calls))
    stop_reason, sequence = _stop_reason(reason, result.matched_stop, stop_sequences)
    return {
        **_message_shell(result.id, model),
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": sequence,
        "usage": {"input_tokens": result.input_tokens, "output_tokens": result.output_tokens},
    }


def stream_from_chat(
    chunks: AsyncIterator[dict], *, model: str, stop_sequences: Sequence[str] = ()
) -> AsyncIterator[bytes]:
    """Chat completion chunks as Anthropic stream events, one SSE event per yielded bytes.

    `message_start` is sent on the first chunk, so a caller can still fail over before that.
    """
    return stream.write_stream(chunks, _Events(model, stop_sequences))


class _Events:
    """Writes one Anthropic stream (a :class:`~gateway.translate.stream.StreamWriter`)."""

    def __init__(self, model: str, stop_sequences: Sequence[str]) -> None:
        self.model = model
        self.stop_sequences = stop_sequences
        self.blocks = _Blocks()
        self.started = False

    def feed(self, deltas: list[stream.Delta], summary: stream.StreamSummary) -> list[bytes]:
        events = []
        if not self.started:
            self.started = True
            events = [_message_start(summary.id, self.model), _sse("ping", {"type": "ping"})]
        for delta in deltas:
            events += self.blocks.feed(delta)
        return events

    def finish(self, summary: stream.StreamSummary) -> list[bytes]:
        events = [] if self.started else [_message_start(summary.id, self.model)]  # no ping
        events += self.blocks.finish()
        matched = summary.finish.matched_stop if summary.finish else None
        stop_reason, sequence = _stop_reason(summary.final_reason(), matched, self.stop_sequences)
        usage = {"input_tokens": summary.usage.input_tokens,
                 "output_tokens": summary.usage.output_tokens}
        delta = {"stop_reason": stop_reason, "stop_sequence": sequence}
        return [*events,
                _sse("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}),
                _sse("message_stop", {"type": "message_stop"})]

    def error(self, status: int, message: str) -> bytes:
        return error_event(status, message)


class _Blocks:
    """Opens and closes content blocks as text and tool-call fragments arrive.

    A text fragment after a tool call (or the reverse) closes the open block and opens the next.
    A tool call's block opens once its name is known; arguments that came before are sent then.
    A fragment for a tool call whose block is already closed (providers that interleave calls)
    is still sent as a delta to that block's index, which is all a client needs to rebuild it.
    """

    def __init__(self) -> None:
        self.count = 0
        self.open: int | None = None  # block index of the open block
        self.text_block: int | None = None  # block index of the open text block
        self.tools: dict[int, _Tool] = {}  # by the chat tool-call index

    def feed(self, delta: stream.Delta) -> list[bytes]:
        if isinstance(delta, stream.TextDelta):
            return self._text(delta.text)
        if isinstance(delta, stream.ToolCallDelta):
            return self._tool(delta)
        return []

    def finish(self) -> list[bytes]:
        events = []
        for tool in self.tools.values():
            if tool.block is None:  # never named: send what there is rather than drop it
                events += self._open_tool(tool)
        return events + self._close()

    def _text(self, text: str) -> list[bytes]:
        events = []
        if self.text_block is None:
            events = self._close()
            self.text_block, start = self._start({"type": "text", "text": ""})
            events.append(start)
        delta = {"type": "text_delta", "text": text}
        return [*events, _block_delta(self.text_block, delta)]

    def _tool(self, delta: stream.ToolCallDelta) -> list[bytes]:
        tool = self.tools.setdefault(delta.index, _Tool())
        tool.id = tool.id or delta.id
        tool.name = tool.name or delta.name
        tool.pending += delta.arguments
        if tool.block is None:
            return self._open_tool(tool) if tool.name else []
        return self._flush_arguments(tool)

    def _open_tool(self, tool: _Tool) -> list[bytes]:
        events = self._close()
        tool_id = tool.id or common.new_id("toolu_")
        block = {"type": "tool_use", "id": tool_id, "name": tool.name or ""}
        tool.block, start = self._start({**block, "input": {}})
        return [*events, start, *self._flush_arguments(tool)]

    def _flush_arguments(self, tool: _Tool) -> list[bytes]:
        if not tool.pending or tool.block is None:
            return []
        delta = {"type": "input_json_delta", "partial_json": tool.pending}
        tool.pending = ""
        return [_block_delta(tool.block, delta)]

    def _start(self, block: dict[str, Any]) -> tuple[int, bytes]:
        index, self.count = self.count, self.count + 1
        self.open = index
        event = {"type": "content_block_start", "index": index, "content_block": block}
        return index, _sse("content_block_start", event)

    def _close(self) -> list[bytes]:
        if self.open is None:
            return []
        index, self.open, self.text_block = self.open, None, None
        return [_sse("content_block_stop", {"type": "content_block_stop", "index": index})]


class _Tool:
    def __init__(self) -> None:
        self.id: str | None = None
        self.name: str | None = None
        self.pending = ""  # arguments not yet sent
        self.block: int | None = None


def _stop_reason(
    reason: str, matched: str | None, stop_sequences: Sequence[str]
) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) for a normalised OpenAI finish_reason."""
    sequence = common.stop_sequence_matched(matched, stop_sequences) if reason == "stop" else None
    if sequence is not None:
        return "stop_sequence", sequence
    return common.ANTHROPIC_STOP_REASONS.get(reason, "end_turn"), None


def _message_shell(chat_id: str, model: str) -> dict[str, Any]:
    message_id = "msg_" + chat_id.removeprefix("chatcmpl-")
    return {"id": message_id, "type": "message", "role": "assistant", "model": model}


def _message_start(chat_id: str, model: str) -> bytes:
    message = {
        **_message_shell(chat_id, model),
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }
    return _sse("message_start", {"type": "message_start", "message": message})


def _block_delta(index: int, delta: dict[str, Any]) -> bytes:
    event = {"type": "content_block_delta", "index": index, "delta": delta}
    return _sse("content_block_delta", event)


def error_body(status: int, message: str) -> dict:
    """`{"type": "error", "error": {"type", "message"}}` for an HTTP status."""
    kind = common.error_names(status).anthropic
    return {"type": "error", "error": {"type": kind, "message": message}}


def error_event(status: int, message: str) -> bytes:
    """The `event: error` that ends a failed stream."""
    return _sse("error", error_body(status, message))


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: %b\ndata: %b\n\n" % (event.encode(), jsonio.dumps(data))
