"""What the Anthropic and Gemini translations share, written once.

Pure helpers, no I/O:

* request validation (`expect`, `expect_list`, ...) that raises `ValueError` naming the field;
* images: a base64 payload becomes an OpenAI `image_url` part with a `data:` URL;
* finish reasons: OpenAI `finish_reason` → Anthropic `stop_reason` / Gemini `finishReason`;
* the chat messages both request translations end with (`assistant_message`, `user_messages`,
  `with_stream`);
* reading a chat completion (`read_chat_response`) into a few neutral values, so each API
  module only decides how to *write* its own format (streams: :mod:`gateway.translate.stream`).

OpenAI's `finish_reason: "stop"` does not say whether a stop sequence matched. Some providers
add a non-standard string field to the choice (`stop_sequence`, SGLang's `matched_stop`, vLLM's
`stop_reason`); when one is present it is reported as the matched stop sequence, otherwise
"stop" means a natural end of turn.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

# OpenAI finish_reason → Anthropic stop_reason. "function_call" is the legacy name.
ANTHROPIC_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
# OpenAI finish_reason → Gemini finishReason. Gemini ends a function-calling turn with STOP.
GEMINI_FINISH_REASONS = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "function_call": "STOP",
    "content_filter": "SAFETY",
}


class ErrorNames(NamedTuple):
    """How each API names one HTTP error status."""

    anthropic: str  # the error's "type"
    google: str  # the google.rpc status name


_ERROR_NAMES = {
    400: ErrorNames("invalid_request_error", "INVALID_ARGUMENT"),
    401: ErrorNames("authentication_error", "UNAUTHENTICATED"),
    403: ErrorNames("permission_error", "PERMISSION_DENIED"),
    404: ErrorNames("not_found_error", "NOT_FOUND"),
    409: ErrorNames("invalid_request_error", "ABORTED"),
    413: ErrorNames("request_too_large", "INVALID_ARGUMENT"),
    429: ErrorNames("rate_limit_error", "RESOURCE_EXHAUSTED"),
    499: ErrorNames("invalid_request_error", "CANCELLED"),
    500: ErrorNames("api_error", "INTERNAL"),
    501: ErrorNames("api_error", "UNIMPLEMENTED"),
    502: ErrorNames("api_error", "INTERNAL"),
    503: ErrorNames("overloaded_error", "UNAVAILABLE"),
    504: ErrorNames("timeout_error", "DEADLINE_EXCEEDED"),
    529: ErrorNames("overloaded_error", "INTERNAL"),
}
_CLIENT_ERROR = ErrorNames("invalid_request_error", "INVALID_ARGUMENT")  # any other 4xx
_SERVER_ERROR = ErrorNames("api_error", "INTERNAL")  # any other 5xx


def error_names(status: int) -> ErrorNames:
    """The names each API gives HTTP error ``status``."""
    return _ERROR_NAMES.get(status) or (_CLIENT_ERROR if status < 500 else _SERVER_ERROR)


# Non-standard choice fields some providers use to name the stop sequence that matched.
_MATCHED_STOP_FIELDS = ("stop_sequence", "matched_stop", "stop_reason")


# -- request validation ------------------------------------------------------------------------


def expect(value: object, kind: type | tuple[type, ...], path: str, what: str) -> Any:
    """Return `value` if it is an instance of `kind` (bools are never numbers), else raise."""
    is_bool = isinstance(value, bool) and bool not in _as_tuple(kind)
    if value is None:
        raise ValueError(f"{path}: required")
    if is_bool or not isinstance(value, kind):
        raise ValueError(f"{path}: must be {what}")
    return value


def optional(value: object, kind: type | tuple[type, ...], path: str, what: str) -> Any:
    """Like `expect`, but None passes through."""
    return None if value is None else expect(value, kind, path, what)


def expect_turns(messages: list[dict[str, Any]], path: str) -> list[dict[str, Any]]:
    """``messages``, unless no turn but the system's is left once translated (every block
    dropped: only thinking, or empty texts): a provider would refuse an empty conversation in
    words about a ``messages`` list the client never sent."""
    if not any(m.get("role") != "system" for m in messages):
        raise ValueError(f"{path}: no turn has anything to send (thinking blocks and empty "
                         "parts are not sent)")
    return messages


def expect_list(value: object, path: str, *, non_empty: bool = True) -> list[Any]:
    """A list (non-empty unless told otherwise)."""
    what = "a non-empty list" if non_empty else "a list"
    items = expect(value, list, path, what)
    if non_empty and not items:
        raise ValueError(f"{path}: must be {what}")
    return items


def expect_strings(value: object, path: str) -> list[str]:
    """A list of strings (may be empty)."""
    items = expect_list(value, path, non_empty=False)
    for i, item in enumerate(items):
        expect(item, str, f"{path}[{i}]", "a string")
    return items


def set_number(out: dict[str, Any], key: str, value: object, path: str) -> None:
    """Copy an optional number into the chat request."""
    if value is not None:
        out[key] = expect(value, (int, float), path, "a number")


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


# -- content -----------------------------------------------------------------------------------


def image_part(url: str) -> dict[str, Any]:
    """An OpenAI image content part for a URL (http(s) or data)."""
    return {"type": "image_url", "image_url": {"url": url}}


def data_url_part(media_type: str, data: str) -> dict[str, Any]:
    """An OpenAI image content part carrying base64 `data` inline."""
    return image_part(f"data:{media_type};base64,{data}")


def collapse_parts(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Text-only content becomes one string (many providers accept nothing else)."""
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def assistant_message(texts: list[str], calls: list[dict[str, Any]]) -> dict[str, Any]:
    """One assistant chat message: the texts joined, and the tool calls if there are any."""
    out: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        out["tool_calls"] = calls
    elif out["content"] is None:
        out["content"] = ""
    return out


def user_messages(tool_messages: list[dict[str, Any]],
                  parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A user turn: its tool results first (chat wants them right after the call), then the rest."""
    if parts:
        return [*tool_messages, {"role": "user", "content": collapse_parts(parts)}]
    return tool_messages


def with_stream(out: dict[str, Any], stream: bool) -> dict[str, Any]:
    """``out`` with ``stream`` set; a stream also asks for the usage in its last chunk."""
    out["stream"] = stream
    if stream:
        out["stream_options"] = {"include_usage": True}
    return out


def new_id(prefix: str) -> str:
    """A fresh identifier such as `toolu_0123...` for values a provider left out."""
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def parse_arguments(raw: str) -> dict[str, Any]:
    """Tool-call arguments as an object; text that is not a JSON object is kept under `_raw`."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"_raw": raw}


# -- chat completion responses -----------------------------------------------------------------


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass
class ChatResult:
    """The parts of a chat completion the translations need."""

    id: str
    text: str
    tool_calls: list[ToolCall]
    finish_reason: str | None
    matched_stop: str | None
    input_tokens: int
    output_tokens: int


def read_chat_response(resp: dict[str, Any]) -> ChatResult:
    """Read the first choice of a chat completion, tolerating missing fields and fields of the
    wrong type (a provider's mistake is skipped, never a crash)."""
    choices = as_list(resp.get("choices")) or [{}]
    choice = as_dict(choices[0])
    message = as_dict(choice.get("message"))
    calls = [c for c in as_list(message.get("tool_calls")) if isinstance(c, dict)]
    if isinstance(message.get("function_call"), dict):
        calls.append({"function": message["function_call"]})
    tool_calls = [
        ToolCall(
            id=as_text(call.get("id")) or new_id("call_"),
            name=as_text(as_dict(call.get("function")).get("name")),
            arguments=arguments_text(as_dict(call.get("function")).get("arguments")),
        )
        for call in calls
    ]
    input_tokens, output_tokens = read_usage(resp.get("usage"))
    finish = choice.get("finish_reason")
    return ChatResult(
        id=as_text(resp.get("id")) or new_id(""),
        text=content_text(message.get("content")),
        tool_calls=tool_calls,
        finish_reason=finish if isinstance(finish, str) else None,
        matched_stop=matched_stop(choice),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )


def as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_text(value: object) -> str:
    """A string as it is; a number as its digits (an id sent as 1); anything else empty."""
    if isinstance(value, str):
        return value
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else ""


def arguments_text(value: object) -> str:
    """A tool call's arguments as JSON text (some providers send the object itself)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else ""


def content_text(content: object) -> str:
    """Message content as text; some providers answer with a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content
                       if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def read_usage(usage: object) -> tuple[int, int]:
    """(prompt_tokens, completion_tokens), zero when unknown or not a count."""
    if not isinstance(usage, dict):
        return 0, 0
    return _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))


def _count(value: object) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(0, value)
    if isinstance(value, float) and math.isfinite(value):
        return max(0, int(value))
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return 0


def matched_stop(choice: dict[str, Any]) -> str | None:
    """The stop sequence a provider says matched, from a non-standard field, if any."""
    if choice.get("finish_reason") != "stop":
        return None
    for name in _MATCHED_STOP_FIELDS:
        value = choice.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def stop_sequence_matched(matched: str | None, stop_sequences: Sequence[str]) -> str | None:
    """Trust the provider's matched stop unless the request's own list says otherwise."""
    if matched is None or (stop_sequences and matched not in stop_sequences):
        return None
    return matched


def finish_reason(reason: str | None, *, has_tool_calls: bool) -> str:
    """Normalise an OpenAI finish_reason: none means "stop"; tool calls that "stop" are calls."""
    if has_tool_calls and reason in (None, "stop"):
        return "tool_calls"
    return reason or "stop"
