"""Chat-completions answers and chunk streams, as providers send them, for the translation tests
of both APIs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any


def chat_response(
    content: str | None = "Hello", *, finish: str | None = "stop", **message: Any
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, **message},
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return {"id": "chatcmpl-s1", "object": "chat.completion.chunk", "choices": [choice]}


def usage_chunk(prompt: int = 5, completion: int = 9) -> dict[str, Any]:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    return {"id": "chatcmpl-s1", "object": "chat.completion.chunk", "choices": [], "usage": usage}


def tool_chunk(index: int, args: str, *, id: str | None = None, name: str | None = None) -> dict:
    call: dict[str, Any] = {"index": index, "function": {"arguments": args}}
    if id:
        call.update(id=id, type="function")
    if name:
        call["function"]["name"] = name
    return chunk({"tool_calls": [call]})


async def agen(items: Iterable[dict], fail: Exception | None = None) -> AsyncIterator[dict]:
    for item in items:
        yield item
    if fail is not None:
        raise fail
