"""What the echo provider answers: pure functions from a request body to OpenAI-shaped JSON.

Nothing here does I/O. The reply is deterministic so that tests and benchmarks can assert on it:

* the text is the last ``user`` message echoed verbatim (``"(empty)"`` when there is none);
* ``stop`` cuts the text before the first stop sequence (finish_reason ``"stop"``, and the
  sequence named in ``matched_stop`` as vLLM and SGLang do), then
  ``max_tokens`` / ``max_completion_tokens`` keeps that many words (finish_reason ``"length"``);
* with ``tools`` in the request and a last user text ``/tool NAME {json}``, the answer is one
  tool call (finish_reason ``"tool_calls"``) whose arguments are the JSON text as given;
* a chat stream starts with a role-only chunk (``delta: {"role": "assistant"}``) as real
  streams do, then one content chunk per word, a finish chunk, the usage chunk if asked, [DONE];
* usage counts whitespace-separated words: every message text for the prompt (min 1), the
  reply (or the tool call arguments) for the completion.

Every problem with a request is raised as :class:`EchoError`, which carries the HTTP status and
the OpenAI error envelope.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_PIECE = re.compile(r"\s*\S+\s*")
_WORD = re.compile(r"\S+")
_TOOL = re.compile(r"/tool\s+(\S+)\s*(.*)\Z", re.S)

Headers = tuple[tuple[bytes, bytes], ...]

_ENCODER = json.JSONEncoder(separators=(",", ":"))

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    429: "rate_limit_error",
}


class EchoError(Exception):
    """An answer in the OpenAI error envelope: ``{"error": {"message", "type", "param",
    "code"}}`` (OpenAI's ErrorResponse requires all four; ``param`` null when no field is to
    blame)."""

    def __init__(
        self, status: int, message: str, code: str | None = None, headers: Headers = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers

    def body(self) -> dict[str, Any]:
        """The JSON body of this error."""
        kind = _ERROR_TYPES.get(self.status, "server_error" if self.status >= 500 else "api_error")
        return {"error": {"message": self.message, "type": kind, "param": None,
                          "code": self.code}}


@dataclass(frozen=True)
class ToolCall:
    """One function call the echo provider "decides" to make."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Reply:
    """The planned answer to one request, independent of streaming or not."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    tool_call: ToolCall | None = None
    matched_stop: str | None = None  # the stop sequence that cut the text (vLLM/SGLang style)

    def usage(self) -> dict[str, int]:
        """The OpenAI ``usage`` object."""
        total = self.prompt_tokens + self.completion_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": total,
        }


def parse_body(raw: bytes) -> dict[str, Any]:
    """Decode a JSON object body, or raise a 400 :class:`EchoError`."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise EchoError(400, f"malformed JSON body: {exc}", "invalid_json") from None
    if not isinstance(body, dict):
        raise EchoError(400, "the request body must be a JSON object", "invalid_json")
    return body


def content_text(content: Any) -> str:
    """The text of a message ``content``: a string, or the ``text`` parts of a list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [part.get("text") or "" for part in content
                 if isinstance(part, dict) and part.get("type") == "text"]
        if not all(isinstance(text, str) for text in texts):
            raise EchoError(400, "the 'text' of a text part must be a string")
        return "".join(texts)
    raise EchoError(400, "message content must be a string, a list of parts or null")


def include_usage(body: dict[str, Any]) -> bool:
    """Whether a streamed answer ends with a usage chunk (``stream_options.include_usage``)."""
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise EchoError(400, "'stream_options' must be an object or null")
    return bool(options.get("include_usage"))


def words(text: str) -> int:
    """How many whitespace-separated words ``text`` has."""
    return len(text.split())


def pieces(text: str) -> list[str]:
    """Split ``text`` into one piece per word (with its spaces); joined they give ``text``."""
    found = _PIECE.findall(text)
    return found if found else ([text] if text else [])


def _cut(text: str, body: dict[str, Any]) -> tuple[str, str, str | None]:
    """Apply ``stop`` then ``max_tokens``; return (text, finish_reason, matched stop)."""
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise EchoError(400, "'stop' must be a string or a list of strings")
    hits = sorted((text.find(s), s) for s in stops if s and s in text)
    matched = hits[0][1] if hits else None
    if hits:
        text = text[: hits[0][0]]
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is None:
        return text, "stop", matched
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise EchoError(400, "'max_tokens' must be a non-negative integer")
    found = list(_WORD.finditer(text))
    if len(found) <= limit:
        return text, "stop", matched
    return (text[: found[limit - 1].end()] if limit else ""), "length", None


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise EchoError(400, "'messages' must be a non-empty list")
    if not all(isinstance(m, dict) for m in messages):
        raise EchoError(400, "every message must be an object")
    return messages


def plan_chat(body: dict[str, Any], serial: int) -> Reply:
    """Plan the answer to a chat completion request (``serial`` numbers the tool call id)."""
    messages = _messages(body)
    texts = [content_text(m.get("content")) for m in messages]
    prompt_tokens = max(1, sum(words(t) for t in texts))
    users = [t for m, t in zip(messages, texts, strict=True) if m.get("role") == "user"]
    last = users[-1] if users else ""
    match = _TOOL.match(last)
    if match and body.get("tools") and body.get("tool_choice") != "none":
        arguments = match.group(2).strip() or "{}"
        call = ToolCall(f"call_echo_{serial}", match.group(1), arguments)
        return Reply("", "tool_calls", prompt_tokens, words(arguments), call)
    text, finish, matched = _cut(last or "(empty)", body)
    return Reply(text, finish, prompt_tokens, words(text), matched_stop=matched)


def error_text_reply(reply: Reply, text: str) -> Reply:
    """``reply`` with its answer replaced by an error ``text`` that looks like content."""
    return Reply(text, "stop", reply.prompt_tokens, words(text))


def plan_completion(body: dict[str, Any]) -> Reply:
    """Plan the answer to a legacy completion request: the prompt echoed back."""
    prompt = body.get("prompt", "")
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        prompt = "\n".join(prompt)
    if not isinstance(prompt, str):
        raise EchoError(400, "'prompt' must be a string or a list of strings")
    text, finish, matched = _cut(prompt or "(empty)", body)
    return Reply(text, finish, max(1, words(prompt)), words(text), matched_stop=matched)


def chat_completion(reply: Reply, rid: str, model: str, created: int) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` object."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    if reply.tool_call is not None:
        call = reply.tool_call
        function = {"name": call.name, "arguments": call.arguments}
        message["content"] = None
        message["tool_calls"] = [{"id": call.id, "type": "function", "function": function}]
    choice = {"index": 0, "message": message, "logprobs": None,
              "finish_reason": reply.finish_reason}
    if reply.matched_stop is not None:
        choice["matched_stop"] = reply.matched_stop
    return {"id": rid, "object": "chat.completion", "created": created, "model": model,
            "system_fingerprint": "echo", "choices": [choice], "usage": reply.usage()}


def text_completion(reply: Reply, rid: str, model: str, created: int) -> dict[str, Any]:
    """The non-streaming ``text_completion`` object."""
    choice = {"text": reply.text, "index": 0, "logprobs": None,
              "finish_reason": reply.finish_reason}
    return {"id": rid, "object": "text_completion", "created": created, "model": model,
            "choices": [choice], "usage": reply.usage()}


def _tool_deltas(call: ToolCall) -> Iterator[dict[str, Any]]:
    """The tool call as stream deltas: name first, then the arguments in at least 2 parts."""
    function = {"name": call.name, "arguments": ""}
    yield {"tool_calls": [{"index": 0, "id": call.id, "type": "function", "function": function}]}
    args = call.arguments
    size = max(1, min(8, len(args) // 2))
    parts = [args[i : i + size] for i in range(0, len(args), size)]
    for part in parts + [""] * (2 - len(parts)):
        yield {"tool_calls": [{"index": 0, "function": {"arguments": part}}]}


def chat_deltas(reply: Reply) -> Iterator[dict[str, Any]]:
    """The content deltas of a streamed chat answer (role and finish chunks excluded)."""
    if reply.tool_call is not None:
        yield from _tool_deltas(reply.tool_call)
        return
    for piece in pieces(reply.text):
        yield {"content": piece}


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes."""
    return _ENCODER.encode(obj).encode()


def sse(obj: Any) -> bytes:
    """One server-sent event carrying ``obj`` as JSON."""
    return b"data: " + dumps(obj) + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"


def chat_stream(reply: Reply, rid: str, model: str, created: int,
                include_usage: bool) -> Iterator[tuple[bool, bytes]]:
    """Every event of a streamed chat answer, as (is_content_chunk, bytes)."""
    head = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": "echo"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        if finish is not None and reply.matched_stop is not None:
            choice["matched_stop"] = reply.matched_stop
        return sse({**head, "choices": [choice]})

    yield False, chunk({"role": "assistant"})
    for delta in chat_deltas(reply):
        yield True, chunk(delta)
    yield False, chunk({}, reply.finish_reason)
    if include_usage:
        yield False, sse({**head, "choices": [], "usage": reply.usage()})
    yield False, SSE_DONE


def completion_stream(reply: Reply, rid: str, model: str, created: int,
                      include_usage: bool) -> Iterator[tuple[bool, bytes]]:
    """Every event of a streamed legacy completion, as (is_content_chunk, bytes)."""
    head = {"id": rid, "object": "text_completion", "created": created, "model": model}

    def chunk(text: str, finish: str | None = None) -> bytes:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}
        return sse({**head, "choices": [choice]})

    for piece in pieces(reply.text):
        yield True, chunk(piece)
    yield False, chunk("", reply.finish_reason)
    if include_usage:
        yield False, sse({**head, "choices": [], "usage": reply.usage()})
    yield False, SSE_DONE
