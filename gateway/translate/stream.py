"""A chat-completion chunk stream, translated: read into neutral deltas, written by each API.

* :func:`chat_deltas` turns chunks into :class:`TextDelta`, :class:`ToolCallDelta`,
  :class:`Finish` and :class:`Usage` values and keeps a :class:`StreamSummary`;
* :func:`write_stream` drives one translated stream: it reads the chunks, hands the deltas to
  the API's :class:`StreamWriter`, ends a failed stream with that API's error event, and always
  closes the upstream.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.translate.common import (
    arguments_text,
    as_dict,
    as_list,
    as_text,
    content_text,
    finish_reason,
    matched_stop,
    new_id,
    read_usage,
)

log = logging.getLogger("unigw.gateway")


@dataclass
class TextDelta:
    text: str


@dataclass
class ToolCallDelta:
    """A fragment of tool call number `index`; `arguments` is a piece of JSON text."""

    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass
class Finish:
    reason: str
    matched_stop: str | None = None


@dataclass
class Usage:
    input_tokens: int
    output_tokens: int


Delta = TextDelta | ToolCallDelta | Finish | Usage


@dataclass
class StreamSummary:
    """What a stream has said by its end: id, finish, usage, whether it called tools."""

    id: str = field(default_factory=lambda: new_id(""))
    finish: Finish | None = None
    usage: Usage = field(default_factory=lambda: Usage(0, 0))
    saw_id: bool = False
    tool_indexes: set[int] = field(default_factory=set)

    def note_chunk(self, chunk: dict[str, Any]) -> None:
        if not self.saw_id and chunk.get("id"):
            self.id, self.saw_id = str(chunk["id"]), True

    def note(self, delta: Delta) -> None:
        if isinstance(delta, Finish):
            self.finish = delta
        elif isinstance(delta, Usage):
            self.usage = delta
        elif isinstance(delta, ToolCallDelta):
            self.tool_indexes.add(delta.index)

    def final_reason(self) -> str:
        reason = self.finish.reason if self.finish else None
        return finish_reason(reason, has_tool_calls=bool(self.tool_indexes))


def chunk_deltas(chunk: dict[str, Any]) -> list[Delta]:
    """The neutral deltas in one chat.completion.chunk (first choice only); a part of the
    wrong type (a provider's mistake) is skipped, never a crash."""
    out: list[Delta] = []
    for choice in as_list(chunk.get("choices")):
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            continue
        delta = as_dict(choice.get("delta"))
        text = content_text(delta.get("content"))
        if text:
            out.append(TextDelta(text))
        for pos, call in enumerate(as_list(delta.get("tool_calls"))):
            if isinstance(call, dict):
                out.append(_tool_delta(call, pos))
        if isinstance(delta.get("function_call"), dict):
            out.append(_tool_delta({"index": 0, "function": delta["function_call"]}, 0))
        if isinstance(choice.get("finish_reason"), str) and choice["finish_reason"]:
            out.append(Finish(choice["finish_reason"], matched_stop(choice)))
    if isinstance(chunk.get("usage"), dict):
        out.append(Usage(*read_usage(chunk["usage"])))
    return out


def _tool_delta(call: dict[str, Any], pos: int) -> ToolCallDelta:
    function = as_dict(call.get("function"))
    index = call.get("index")
    return ToolCallDelta(
        index=index if isinstance(index, int) and not isinstance(index, bool) else pos,
        id=as_text(call.get("id")) or None,
        name=as_text(function.get("name")) or None,
        arguments=arguments_text(function.get("arguments")),
    )


async def chat_deltas(
    chunks: AsyncIterator[dict[str, Any]], summary: StreamSummary
) -> AsyncIterator[list[Delta]]:
    """Yield each chunk's deltas (maybe none), recording id, finish and usage in `summary`."""
    async for chunk in chunks:
        if not isinstance(chunk, dict):
            continue
        summary.note_chunk(chunk)
        deltas = chunk_deltas(chunk)
        for delta in deltas:
            summary.note(delta)
        yield deltas


class StreamWriter(Protocol):
    """How one API writes a translated stream (see :func:`write_stream`)."""

    def feed(self, deltas: list[Delta], summary: StreamSummary) -> Iterable[bytes]:
        """The events for one chunk's deltas (maybe none)."""

    def finish(self, summary: StreamSummary) -> Iterable[bytes]:
        """The closing events of a stream that ended normally."""

    def error(self, status: int, message: str) -> bytes:
        """The event that ends a failed stream."""


async def write_stream(
    chunks: AsyncIterator[dict[str, Any]], writer: StreamWriter
) -> AsyncIterator[bytes]:
    """Chat completion chunks as ``writer``'s events, one event per yielded bytes.

    If ``chunks`` raises, the stream ends with ``writer.error`` and no closing events; the
    upstream behind ``chunks`` is closed however the stream ends.
    """
    summary = StreamSummary()
    try:
        async for deltas in chat_deltas(chunks, summary):
            for event in writer.feed(deltas, summary):
                yield event
    except Exception as exc:  # any upstream failure ends the stream in the API's own words
        message = getattr(exc, "message", None)  # a GatewayError's: the provider's failure
        if isinstance(exc, TimeoutError):
            message = str(exc)
        elif not isinstance(message, str):  # anything else is the gateway's own fault
            log.exception("translating a stream failed")
            message = "internal error in the gateway while translating the stream (see its log)"
        yield writer.error(failure_status(exc), message)
        return
    finally:
        await close_upstream(chunks)
    for event in writer.finish(summary):
        yield event


def failure_status(exc: BaseException) -> int:
    """HTTP status to report for an upstream failure: its own if it carries one, else 502/504."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and 400 <= status <= 599:
        return status
    return 504 if isinstance(exc, TimeoutError) else 502


async def close_upstream(chunks: object) -> None:
    """Close an async generator we were reading from, so the upstream response is released."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
