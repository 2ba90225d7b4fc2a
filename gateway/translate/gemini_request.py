"""Gemini generateContent request → OpenAI chat-completions request (validation included).

Every field is accepted in camelCase (the REST form) or snake_case; error messages name it in
camelCase. Mapping:

* `systemInstruction` (Content or string) → a leading `system` message;
* `contents[]` with role `user` / `model` → user / assistant messages; `parts`: `text`,
  `inlineData` images → data-URL `image_url`, `fileData` images → `image_url`, `functionCall` →
  `tool_calls`, `functionResponse` → a `tool` message; `thought` parts are dropped;
* `generationConfig`: temperature, topP, maxOutputTokens, stopSequences, presencePenalty,
  frequencyPenalty, seed; `candidateCount` must be 1; `responseMimeType: application/json`
  (with `responseJsonSchema` or `responseSchema`) → `response_format`; the rest is ignored;
* `tools[].functionDeclarations` → function tools (Gemini's OpenAPI-style schema is turned into
  JSON Schema: lower-case types, `nullable` as a "null" type); `toolConfig` → `tool_choice`.

Gemini calls often carry no id, so a `functionCall` without one gets `call_<n>` and each
`functionResponse` answers the oldest unanswered call of the same name (or its own `id`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from gateway.translate import common
from gateway.translate.common import expect, expect_list, expect_strings, optional, set_number

_PART_KINDS = ("text", "inlineData", "fileData", "functionCall", "functionResponse")
_ROLES = {"user": "user", "model": "assistant", "function": "user"}
_SCHEMA_DROPPED = ("propertyOrdering",)


def to_chat_request(body: object, *, stream: bool, model: str | None = None) -> dict:
    """Validate a Gemini GenerateContentRequest and return the chat-completions request.

    `model` comes from the URL (`models/{model}:generateContent`); a `models/` prefix is dropped.
    """
    data: dict[str, Any] = expect(body, dict, "body", "a JSON object")
    model = expect(model, str, "model", "a string").removeprefix("models/")
    messages = _system(_get(data, "systemInstruction"))
    calls = _CallIds()
    for i, content in enumerate(expect_list(_get(data, "contents"), "contents")):
        messages.extend(_content(content, f"contents[{i}]", calls))
    out: dict[str, Any] = {"model": model, "messages": common.expect_turns(messages, "contents")}
    _generation_config(_get(data, "generationConfig"), out)
    if _get(data, "tools") is not None:
        tools = [
            fn
            for i, tool in enumerate(expect_list(_get(data, "tools"), "tools"))
            for fn in _functions(tool, f"tools[{i}]")
        ]
        if tools:
            out["tools"] = tools
    if _get(data, "toolConfig") is not None:
        choice = _tool_choice(_get(data, "toolConfig"))
        if choice is not None and "tools" in out:  # a choice without tools is refused upstream
            out["tool_choice"] = choice
    return common.with_stream(out, stream)


def _get(obj: dict[str, Any], camel: str) -> Any:
    """`obj[camel]`, or the same field spelled in snake_case."""
    if camel in obj:
        return obj[camel]
    return obj.get(re.sub(r"(?<!^)([A-Z])", r"_\1", camel).lower())


def _system(system: Any) -> list[dict[str, Any]]:
    if system is None:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    system = expect(system, dict, "systemInstruction", "a Content object or a string")
    texts = []
    for i, part in enumerate(expect_list(_get(system, "parts"), "systemInstruction.parts")):
        path = f"systemInstruction.parts[{i}]"
        part = expect(part, dict, path, "an object")
        texts.append(expect(part.get("text"), str, f"{path}.text", "a string"))
    return [{"role": "system", "content": "\n".join(texts)}]


class _CallIds:
    """Pairs function responses with the calls they answer."""

    def __init__(self) -> None:
        self.count = 0
        self.pending: dict[str, list[str]] = {}

    def call(self, name: str, given: str | None) -> str:
        call_id = given or f"call_{self.count}"
        self.count += 1
        self.pending.setdefault(name, []).append(call_id)
        return call_id

    def answer(self, name: str, given: str | None, path: str) -> str:
        queue = self.pending.get(name, [])
        if given:
            if given in queue:
                queue.remove(given)
            return given
        if not queue:
            raise ValueError(f"{path}: no earlier functionCall named {name!r} to answer")
        return queue.pop(0)


def _content(content: Any, path: str, calls: _CallIds) -> list[dict[str, Any]]:
    content = expect(content, dict, path, "a Content object")
    role = optional(content.get("role"), str, f"{path}.role", "a string") or "user"
    if role not in _ROLES:
        raise ValueError(f"{path}.role: must be 'user' or 'model'")
    parts = expect_list(_get(content, "parts"), f"{path}.parts")
    pairs = [(p, f"{path}.parts[{i}]") for i, p in enumerate(parts)]
    if _ROLES[role] == "assistant":
        return [_model_turn(pairs, calls)]
    return _user_turn(pairs, calls)


def _part_kind(part: Any, path: str) -> str | None:
    """The part's data field in camelCase, or None for a thought to skip."""
    part = expect(part, dict, path, "a Part object")
    if part.get("thought") is True:
        return None
    for kind in _PART_KINDS:
        if _get(part, kind) is not None:
            return kind
    known = {"thought", "thoughtSignature", "thought_signature", "partMetadata", "part_metadata"}
    others = [key for key in part if key not in known]
    if others:
        raise ValueError(f"{path}.{others[0]}: unsupported part type")
    raise ValueError(f"{path}: must have one of {', '.join(_PART_KINDS)}")


def _model_turn(pairs: list[tuple[Any, str]], calls: _CallIds) -> dict[str, Any]:
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for part, path in pairs:
        kind = _part_kind(part, path)
        if kind == "text":
            texts.append(expect(part["text"], str, f"{path}.text", "a string"))
        elif kind == "functionCall":
            tool_calls.append(_function_call(_get(part, kind), f"{path}.functionCall", calls))
        elif kind is not None:
            raise ValueError(f"{path}.{kind}: not supported in a model turn")
    return common.assistant_message(texts, tool_calls)


def _function_call(call: Any, path: str, calls: _CallIds) -> dict[str, Any]:
    call = expect(call, dict, path, "an object")
    name = expect(call.get("name"), str, f"{path}.name", "a string")
    args = optional(call.get("args"), dict, f"{path}.args", "an object") or {}
    call_id = calls.call(name, optional(call.get("id"), str, f"{path}.id", "a string"))
    arguments = json.dumps(args, ensure_ascii=False)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _user_turn(pairs: list[tuple[Any, str]], calls: _CallIds) -> list[dict[str, Any]]:
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for part, path in pairs:
        kind = _part_kind(part, path)
        if kind == "functionResponse":
            tool_messages.append(_function_response(_get(part, kind), f"{path}.{kind}", calls))
        elif kind == "functionCall":
            raise ValueError(f"{path}.functionCall: only allowed in a model turn")
        elif kind is not None:
            parts.append(_user_part(part, kind, path))
    return common.user_messages(tool_messages, parts)


def _function_response(response: Any, path: str, calls: _CallIds) -> dict[str, Any]:
    response = expect(response, dict, path, "an object")
    name = expect(response.get("name"), str, f"{path}.name", "a string")
    result = expect(response.get("response"), dict, f"{path}.response", "an object")
    call_id = calls.answer(name, optional(response.get("id"), str, f"{path}.id", "a string"), path)
    content = json.dumps(result, ensure_ascii=False)
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def _user_part(part: dict[str, Any], kind: str, path: str) -> dict[str, Any]:
    value = _get(part, kind)
    path = f"{path}.{kind}"
    if kind == "text":
        return {"type": "text", "text": expect(value, str, path, "a string")}
    blob = expect(value, dict, path, "an object")
    mime = _get(blob, "mimeType")
    if kind == "inlineData":
        mime = expect(mime, str, f"{path}.mimeType", "a string")
        _require_image(mime, path)
        data = expect(_get(blob, "data"), str, f"{path}.data", "a string")
        return common.data_url_part(mime, data)
    if mime is not None:
        _require_image(expect(mime, str, f"{path}.mimeType", "a string"), path)
    return common.image_part(expect(_get(blob, "fileUri"), str, f"{path}.fileUri", "a string"))


def _require_image(mime: str, path: str) -> None:
    if not mime.startswith("image/"):
        raise ValueError(f"{path}.mimeType: only image types are supported, not {mime!r}")


def _generation_config(config: Any, out: dict[str, Any]) -> None:
    if config is None:
        return
    config = expect(config, dict, "generationConfig", "an object")
    path = "generationConfig."
    count = optional(_get(config, "candidateCount"), int, path + "candidateCount", "an integer")
    if count not in (None, 1):
        raise ValueError("generationConfig.candidateCount: must be 1")
    max_tokens = _get(config, "maxOutputTokens")
    if max_tokens is not None:
        what = "a positive integer"
        if expect(max_tokens, int, path + "maxOutputTokens", what) < 1:
            raise ValueError(f"{path}maxOutputTokens: must be {what}")
        out["max_tokens"] = max_tokens
    for camel, key in (
        ("temperature", "temperature"),
        ("topP", "top_p"),
        ("presencePenalty", "presence_penalty"),
        ("frequencyPenalty", "frequency_penalty"),
    ):
        set_number(out, key, _get(config, camel), path + camel)
    seed = optional(_get(config, "seed"), int, path + "seed", "an integer")
    if seed is not None:
        out["seed"] = seed
    if _get(config, "stopSequences") is not None:
        stops = expect_strings(_get(config, "stopSequences"), path + "stopSequences")
        if stops:
            out["stop"] = stops
    _response_format(config, out)


def _response_format(config: dict[str, Any], out: dict[str, Any]) -> None:
    path = "generationConfig.responseMimeType"
    mime = optional(_get(config, "responseMimeType"), str, path, "a string")
    if mime != "application/json":
        return
    schema = _get(config, "responseJsonSchema")
    if schema is None and _get(config, "responseSchema") is not None:
        schema = json_schema(_get(config, "responseSchema"), "generationConfig.responseSchema")
    if schema is None:
        out["response_format"] = {"type": "json_object"}
    else:
        json_format = {"name": "response", "schema": schema}
        out["response_format"] = {"type": "json_schema", "json_schema": json_format}


def json_schema(schema: Any, path: str) -> dict[str, Any]:
    """Gemini's OpenAPI-style Schema as JSON Schema (types lower-case, `nullable` as a type)."""
    schema = expect(schema, dict, path, "a Schema object")
    out: dict[str, Any] = {}
    for key, value in schema.items():
        key = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key)
        if key in _SCHEMA_DROPPED or key == "nullable":
            continue
        if key == "type" and isinstance(value, str):
            value = value.lower()
        elif key == "properties":
            props = expect(value, dict, f"{path}.properties", "an object")
            value = {name: json_schema(s, f"{path}.properties.{name}") for name, s in props.items()}
        elif key == "items":
            value = json_schema(value, f"{path}.items")
        elif key == "anyOf":
            options = expect_list(value, f"{path}.anyOf")
            value = [json_schema(s, f"{path}.anyOf[{i}]") for i, s in enumerate(options)]
        out[key] = value
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _functions(tool: Any, path: str) -> list[dict[str, Any]]:
    tool = expect(tool, dict, path, "a Tool object")
    for key in tool:
        if key not in ("functionDeclarations", "function_declarations"):
            raise ValueError(f"{path}.{key}: unsupported tool; only functionDeclarations are")
    declarations = expect_list(_get(tool, "functionDeclarations"), f"{path}.functionDeclarations")
    return [_function(d, f"{path}.functionDeclarations[{i}]") for i, d in enumerate(declarations)]


def _function(declaration: Any, path: str) -> dict[str, Any]:
    declaration = expect(declaration, dict, path, "a FunctionDeclaration object")
    name = expect(declaration.get("name"), str, f"{path}.name", "a string")
    function: dict[str, Any] = {"name": name}
    description = optional(declaration.get("description"), str, f"{path}.description", "a string")
    if description:
        function["description"] = description
    if _get(declaration, "parametersJsonSchema") is not None:
        value = _get(declaration, "parametersJsonSchema")
        schema = expect(value, dict, f"{path}.parametersJsonSchema", "an object")
    elif declaration.get("parameters") is not None:
        schema = json_schema(declaration["parameters"], f"{path}.parameters")
    else:
        schema = {"type": "object", "properties": {}}
    function["parameters"] = schema
    return {"type": "function", "function": function}


def _tool_choice(config: Any) -> str | dict[str, Any] | None:
    config = expect(config, dict, "toolConfig", "an object")
    calling = _get(config, "functionCallingConfig")
    if calling is None:
        return None
    path = "toolConfig.functionCallingConfig"
    calling = expect(calling, dict, path, "an object")
    mode = optional(calling.get("mode"), str, f"{path}.mode", "a string") or "AUTO"
    names = _get(calling, "allowedFunctionNames")
    names = [] if names is None else expect_strings(names, f"{path}.allowedFunctionNames")
    if mode == "NONE":
        return "none"
    if mode == "ANY":
        if len(names) == 1:
            return {"type": "function", "function": {"name": names[0]}}
        return "required"
    if mode in ("AUTO", "VALIDATED", "MODE_UNSPECIFIED"):
        return "auto"
    raise ValueError(f"{path}.mode: must be AUTO, ANY, NONE or VALIDATED")
