"""Anthropic Messages request → OpenAI chat-completions request (validation included).

Mapping, field by field:

* `system` (string or text blocks) → a leading `system` message;
* `messages[].content` blocks: `text` → text, `image` (base64 or url source) → `image_url`,
  assistant `tool_use` → `tool_calls`, user `tool_result` → one `tool` message each, placed
  before the rest of that user turn (images inside a tool result follow in a user message, as
  OpenAI tool messages carry text only); `thinking` / `redacted_thinking` are dropped;
* `max_tokens`, `temperature`, `top_p`, `stop_sequences` → `max_tokens`, `temperature`,
  `top_p`, `stop`; `top_k`, `metadata` and unknown fields are ignored;
* `tools` → function tools; `tool_choice` auto/any/tool/none → "auto"/"required"/named/"none",
  `disable_parallel_tool_use` → `parallel_tool_calls: false`.

Every malformed input raises `ValueError` whose message starts with the offending field path.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.translate import common
from gateway.translate.common import expect, expect_list, expect_strings, optional, set_number

_SKIPPED_BLOCKS = ("thinking", "redacted_thinking")


def to_chat_request(body: object, *, stream: bool, model: str | None = None) -> dict:
    """Validate an Anthropic Messages body and return the equivalent chat-completions request.

    `model`, when given (the gateway resolved it), replaces the body's model. The request streams
    if either `stream` or the body's `stream` is true.
    """
    data: dict[str, Any] = expect(body, dict, "body", "a JSON object")
    model = model or expect(data.get("model"), str, "model", "a string")
    max_tokens = expect(data.get("max_tokens"), int, "max_tokens", "a positive integer")
    if max_tokens < 1:
        raise ValueError("max_tokens: must be a positive integer")
    stream = stream or bool(optional(data.get("stream"), bool, "stream", "a boolean"))

    messages = _system_messages(data.get("system"))
    for i, message in enumerate(expect_list(data.get("messages"), "messages")):
        messages.extend(_message(message, f"messages[{i}]"))

    out: dict[str, Any] = {"model": model, "messages": common.expect_turns(messages, "messages"),
                           "max_tokens": max_tokens}
    set_number(out, "temperature", data.get("temperature"), "temperature")
    set_number(out, "top_p", data.get("top_p"), "top_p")
    if data.get("stop_sequences") is not None:
        stops = expect_strings(data["stop_sequences"], "stop_sequences")
        if stops:
            out["stop"] = stops
    if data.get("tools") is not None:
        tools = [_tool(t, f"tools[{i}]") for i, t in enumerate(expect_list(data["tools"], "tools"))]
        out["tools"] = tools
    if data.get("tool_choice") is not None:
        choice = _tool_choice(data["tool_choice"])
        if "tools" in out:  # providers reject a tool_choice that has no tools to choose from
            out.update(choice)
    return common.with_stream(out, stream)


def _system_messages(system: Any) -> list[dict[str, Any]]:
    if system is None:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}] if system else []
    blocks = expect(system, list, "system", "a string or a list of text blocks")
    texts = []
    for i, block in enumerate(blocks):
        path = f"system[{i}]"
        block = expect(block, dict, path, "a text block")
        if block.get("type") != "text":
            raise ValueError(f"{path}.type: must be 'text'")
        texts.append(expect(block.get("text"), str, f"{path}.text", "a string"))
    return [{"role": "system", "content": "\n".join(texts)}] if texts else []


def _message(message: Any, path: str) -> list[dict[str, Any]]:
    message = expect(message, dict, path, "an object")
    role = message.get("role")
    if role not in ("user", "assistant"):
        raise ValueError(f"{path}.role: must be 'user' or 'assistant'")
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    what = "a string or a non-empty list of content blocks"
    blocks = expect(content, list, f"{path}.content", what)
    if not blocks:
        raise ValueError(f"{path}.content: must be {what}")
    if role == "assistant":
        return [_assistant(blocks, f"{path}.content")]
    return _user(blocks, f"{path}.content")


def _assistant(blocks: list[Any], path: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        bpath = f"{path}[{i}]"
        kind = _block_type(block, bpath)
        if kind == "text":
            texts.append(expect(block.get("text"), str, f"{bpath}.text", "a string"))
        elif kind == "tool_use":
            calls.append(_tool_call(block, bpath))
        elif kind not in _SKIPPED_BLOCKS:
            raise ValueError(f"{bpath}.type: unsupported block type {kind!r} in an assistant turn")
    return common.assistant_message(texts, calls)


def _tool_call(block: dict[str, Any], path: str) -> dict[str, Any]:
    call_input = block.get("input", {})
    expect(call_input, dict, f"{path}.input", "an object")
    return {
        "id": expect(block.get("id"), str, f"{path}.id", "a string"),
        "type": "function",
        "function": {
            "name": expect(block.get("name"), str, f"{path}.name", "a string"),
            "arguments": json.dumps(call_input, ensure_ascii=False),
        },
    }


def _user(blocks: list[Any], path: str) -> list[dict[str, Any]]:
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(blocks):
        bpath = f"{path}[{i}]"
        kind = _block_type(block, bpath)
        if kind == "tool_result":
            message, images = _tool_result(block, bpath)
            tool_messages.append(message)
            parts.extend(images)
        elif kind in ("text", "image"):
            parts.append(_part(block, bpath))
        elif kind not in _SKIPPED_BLOCKS:
            raise ValueError(f"{bpath}.type: unsupported block type {kind!r}")
    return common.user_messages(tool_messages, parts)


def _tool_result(block: dict[str, Any], path: str) -> tuple[dict[str, Any], list[dict]]:
    """One `tool` message with the result's text, and the result's images (if any)."""
    call_id = expect(block.get("tool_use_id"), str, f"{path}.tool_use_id", "a string")
    content = block.get("content", "")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    if isinstance(content, str):
        texts.append(content)
    else:
        what = "a string or a list of text and image blocks"
        for i, inner in enumerate(expect(content, list, f"{path}.content", what)):
            ipath = f"{path}.content[{i}]"
            kind = _block_type(inner, ipath)
            if kind not in ("text", "image"):
                raise ValueError(f"{ipath}.type: unsupported block type {kind!r}")
            part = _part(inner, ipath)
            if part["type"] == "text":
                texts.append(part["text"])
            else:
                images.append(part)
    text = "\n".join(texts)
    if optional(block.get("is_error"), bool, f"{path}.is_error", "a boolean"):
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": call_id, "content": text}, images


def _block_type(block: Any, path: str) -> str:
    block = expect(block, dict, path, "a content block object")
    return expect(block.get("type"), str, f"{path}.type", "a string")


def _part(block: dict[str, Any], path: str) -> dict[str, Any]:
    """A `text` or `image` block as an OpenAI content part."""
    if block["type"] == "text":
        return {"type": "text", "text": expect(block.get("text"), str, f"{path}.text", "a string")}
    source = expect(block.get("source"), dict, f"{path}.source", "an object")
    kind = source.get("type")
    if kind == "base64":
        media_type = expect(source.get("media_type"), str, f"{path}.source.media_type", "a string")
        data = expect(source.get("data"), str, f"{path}.source.data", "a base64 string")
        return common.data_url_part(media_type, data)
    if kind == "url":
        return common.image_part(expect(source.get("url"), str, f"{path}.source.url", "a string"))
    raise ValueError(f"{path}.source.type: must be 'base64' or 'url'")


def _tool(tool: Any, path: str) -> dict[str, Any]:
    tool = expect(tool, dict, path, "an object")
    if tool.get("type") not in (None, "custom"):
        raise ValueError(f"{path}.type: unsupported tool type {tool['type']!r}")
    function: dict[str, Any] = {"name": expect(tool.get("name"), str, f"{path}.name", "a string")}
    description = optional(tool.get("description"), str, f"{path}.description", "a string")
    if description:
        function["description"] = description
    schema = expect(tool.get("input_schema"), dict, f"{path}.input_schema", "an object")
    function["parameters"] = schema
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> dict[str, Any]:
    choice = expect(choice, dict, "tool_choice", "an object")
    kind = choice.get("type")
    out: dict[str, Any] = {}
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool":
        name = expect(choice.get("name"), str, "tool_choice.name", "a string")
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        raise ValueError("tool_choice.type: must be 'auto', 'any', 'tool' or 'none'")
    disable = choice.get("disable_parallel_tool_use")
    if optional(disable, bool, "tool_choice.disable_parallel_tool_use", "a boolean"):
        out["parallel_tool_calls"] = False
    return out
