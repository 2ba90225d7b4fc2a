"""Gemini generateContent ⇄ chat completions: pure translation, checked against google-genai."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types
from support.translation import agen, chat_response, chunk, tool_chunk, usage_chunk

from gateway.errors import ProviderFailed
from gateway.translate import gemini as gemini_api
from gateway.translate.gemini import (
    error_body,
    error_event,
    from_chat_response,
    stream_from_chat,
    to_chat_request,
)

# -- helpers -----------------------------------------------------------------------------------


def body(**overrides: Any) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], **overrides}


def chat(body_: object, stream: bool = False) -> dict[str, Any]:
    return to_chat_request(body_, stream=stream, model="gemini-x")


def run_stream(chunks: Iterable[dict], fail: Exception | None = None) -> list[bytes]:
    async def collect() -> list[bytes]:
        return [e async for e in stream_from_chat(agen(chunks, fail), model="gemini-x")]

    return asyncio.run(collect())


def parse_sse(events: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for raw in events:
        assert raw.startswith(b"data: ") and raw.endswith(b"\r\n\r\n")
        out.append(json.loads(raw[len(b"data: ") : -4]))
    return out


def sdk_client(handler: Any) -> genai.Client:
    options = types.HttpOptions(
        base_url="http://gw.test",
        api_version="v1beta",
        httpx_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    return genai.Client(api_key="x", http_options=options)


def sdk_stream(events: list[bytes]) -> list[types.GenerateContentResponse]:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params["alt"] == "sse"
        headers = {"content-type": "text/event-stream"}
        return httpx.Response(200, headers=headers, content=b"".join(events))

    return list(sdk_client(handler).models.generate_content_stream(model="gemini-x", contents="hi"))


WEATHER = {
    "functionDeclarations": [
        {
            "name": "weather",
            "description": "Get weather",
            "parameters": {
                "type": "OBJECT",
                "properties": {
                    "city": {"type": "STRING", "description": "City"},
                    "type": {"type": "STRING", "nullable": True, "enum": ["a", "b"]},
                    "days": {"type": "ARRAY", "items": {"type": "INTEGER"}},
                },
                "required": ["city"],
                "propertyOrdering": ["city", "type", "days"],
            },
        }
    ]
}


# -- request -----------------------------------------------------------------------------------


def test_minimal_request_uses_model_from_url() -> None:
    assert chat(body()) == {
        "model": "gemini-x",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
    }
    assert to_chat_request(body(), stream=False, model="models/gemini-x")["model"] == "gemini-x"


def test_stream_request_asks_for_usage() -> None:
    out = chat(body(), stream=True)
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}


def test_system_instruction_and_multi_turn_roles() -> None:
    out = chat(
        body(
            systemInstruction={"parts": [{"text": "Be brief."}, {"text": "Be kind."}]},
            contents=[
                {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
                {"role": "model", "parts": [{"text": "c"}, {"text": "d"}]},
                {"parts": [{"text": "e"}]},
            ],
        )
    )
    assert out["messages"] == [
        {"role": "system", "content": "Be brief.\nBe kind."},
        {"role": "user", "content": "a\nb"},
        {"role": "assistant", "content": "cd"},
        {"role": "user", "content": "e"},
    ]


def test_generation_config_is_mapped() -> None:
    config = {
        "temperature": 0.1,
        "topP": 0.8,
        "topK": 40,
        "maxOutputTokens": 99,
        "stopSequences": ["END"],
        "candidateCount": 1,
        "presencePenalty": 0.5,
        "frequencyPenalty": 0.25,
        "seed": 7,
    }
    out = chat(body(generationConfig=config))
    assert {k: out[k] for k in ("temperature", "top_p", "max_tokens", "stop", "seed")} == {
        "temperature": 0.1,
        "top_p": 0.8,
        "max_tokens": 99,
        "stop": ["END"],
        "seed": 7,
    }
    assert (out["presence_penalty"], out["frequency_penalty"]) == (0.5, 0.25)
    assert "top_k" not in out and "n" not in out


def test_snake_case_fields_are_accepted() -> None:
    out = chat(
        {
            "contents": [
                {
                    "role": "user",
                    "parts": [{"inline_data": {"mime_type": "image/jpeg", "data": "/9j/"}}],
                }
            ],
            "system_instruction": {"parts": [{"text": "sys"}]},
            "generation_config": {"max_output_tokens": 5, "top_p": 0.5, "stop_sequences": ["x"]},
            "tools": [
                {
                    "function_declarations": [
                        {"name": "f", "parameters_json_schema": {"type": "object"}}
                    ]
                }
            ],
            "tool_config": {
                "function_calling_config": {"mode": "ANY", "allowed_function_names": ["f"]}
            },
        }
    )
    assert out["messages"][0] == {"role": "system", "content": "sys"}
    assert out["messages"][1]["content"] == [
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}}
    ]
    assert (out["max_tokens"], out["top_p"], out["stop"]) == (5, 0.5, ["x"])
    assert out["tools"][0]["function"]["parameters"] == {"type": "object"}
    assert out["tool_choice"] == {"type": "function", "function": {"name": "f"}}


def test_inline_and_file_images_become_image_url_parts() -> None:
    parts = [
        {"text": "what?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBO"}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://x.test/cat.jpg"}},
    ]
    out = chat(body(contents=[{"role": "user", "parts": parts}]))
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "what?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/cat.jpg"}},
    ]


def test_function_declarations_become_tools_with_json_schema() -> None:
    out = chat(body(tools=[WEATHER]))
    assert out["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Get weather",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string", "description": "City"},
                        "type": {"type": ["string", "null"], "enum": ["a", "b"]},
                        "days": {"type": "array", "items": {"type": "integer"}},
                    },
                    "required": ["city"],
                },
            },
        }
    ]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"mode": "AUTO"}, "auto"),
        ({"mode": "ANY"}, "required"),
        (
            {"mode": "ANY", "allowedFunctionNames": ["weather"]},
            {"type": "function", "function": {"name": "weather"}},
        ),
        ({"mode": "NONE"}, "none"),
    ],
)
def test_tool_config_maps_to_tool_choice(config: dict, expected: object) -> None:
    out = chat(body(tools=[WEATHER], toolConfig={"functionCallingConfig": config}))
    assert out["tool_choice"] == expected


def test_function_call_and_response_pair_up_by_name_without_ids() -> None:
    contents = [
        {"role": "user", "parts": [{"text": "Paris and Rome?"}]},
        {
            "role": "model",
            "parts": [
                {"text": "thinking...", "thought": True},
                {"functionCall": {"name": "weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "weather", "args": {"city": "Rome"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "weather", "response": {"output": "sunny"}}},
                {"functionResponse": {"name": "weather", "response": {"output": "rain"}}},
            ],
        },
    ]
    out = chat(body(contents=contents))
    assistant, tool1, tool2 = out["messages"][1:]
    assert assistant == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_0",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
            },
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Rome"}'},
            },
        ],
    }
    assert tool1 == {"role": "tool", "tool_call_id": "call_0", "content": '{"output": "sunny"}'}
    assert tool2 == {"role": "tool", "tool_call_id": "call_1", "content": '{"output": "rain"}'}


def test_function_response_with_id_answers_that_call() -> None:
    contents = [
        {
            "role": "model",
            "parts": [
                {"functionCall": {"id": "a", "name": "f", "args": {}}},
                {"functionCall": {"id": "b", "name": "f", "args": {}}},
            ],
        },
        {"role": "user", "parts": [{"functionResponse": {"id": "b", "name": "f", "response": {}}}]},
    ]
    out = chat(body(contents=contents))
    assert out["messages"][1]["tool_call_id"] == "b"


def test_json_response_mime_type_becomes_response_format() -> None:
    out = chat(body(generationConfig={"responseMimeType": "application/json"}))
    assert out["response_format"] == {"type": "json_object"}
    schema = {"type": "OBJECT", "properties": {"n": {"type": "NUMBER"}}}
    out = chat(
        body(generationConfig={"responseMimeType": "application/json", "responseSchema": schema})
    )
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "response",
            "schema": {"type": "object", "properties": {"n": {"type": "number"}}},
        },
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"contents": []}, "contents: must be a non-empty list"),
        ({"contents": None}, "contents: required"),
        (
            {"contents": [{"role": "user", "parts": []}]},
            "contents[0].parts: must be a non-empty list",
        ),
        ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "contents[0].role: must be"),
        ({"contents": [{"parts": [{"text": 3}]}]}, "contents[0].parts[0].text: must be a string"),
        (
            {"contents": [{"parts": [{"executableCode": {}}]}]},
            "contents[0].parts[0].executableCode: unsupported",
        ),
        ({"contents": [{"parts": [{}]}]}, "contents[0].parts[0]: must have one of"),
        (
            {"contents": [{"parts": [{"inlineData": {"mimeType": "audio/wav", "data": "x"}}]}]},
            "contents[0].parts[0].inlineData.mimeType: only image types",
        ),
        (
            {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png"}}]}]},
            "contents[0].parts[0].inlineData.data: required",
        ),
        (
            {"contents": [{"parts": [{"functionResponse": {"name": "f", "response": {}}}]}]},
            "contents[0].parts[0].functionResponse: no earlier functionCall named 'f'",
        ),
        (
            {"contents": [{"role": "model", "parts": [{"functionCall": {"args": {}}}]}]},
            "contents[0].parts[0].functionCall.name: required",
        ),
        (
            {
                "contents": [
                    {
                        "role": "model",
                        "parts": [{"inlineData": {"mimeType": "image/png", "data": "x"}}],
                    }
                ]
            },
            "contents[0].parts[0].inlineData: not supported in a model turn",
        ),
        ({"generationConfig": {"candidateCount": 2}}, "generationConfig.candidateCount: must be 1"),
        ({"generationConfig": {"maxOutputTokens": 0}}, "generationConfig.maxOutputTokens: must be"),
        (
            {"generationConfig": {"temperature": "hot"}},
            "generationConfig.temperature: must be a number",
        ),
        (
            {"generationConfig": {"stopSequences": "x"}},
            "generationConfig.stopSequences: must be a list",
        ),
        ({"generationConfig": []}, "generationConfig: must be an object"),
        ({"systemInstruction": 5}, "systemInstruction: must be"),
        ({"tools": [{"googleSearch": {}}]}, "tools[0].googleSearch: unsupported tool"),
        (
            {"tools": [{"functionDeclarations": [{"description": "x"}]}]},
            "tools[0].functionDeclarations[0].name: required",
        ),
        (
            {"toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}},
            "toolConfig.functionCallingConfig.mode: must be",
        ),
    ],
)
def test_malformed_request_raises_value_error_naming_the_field(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as info:
        chat(body(**overrides))
    assert str(info.value).startswith(message)


def test_contents_of_thought_parts_only_are_refused_before_any_provider() -> None:
    thoughts = [{"role": "user", "parts": [{"thought": True, "text": "hm"}]}]
    with pytest.raises(ValueError, match="^contents: no turn has anything to send"):
        to_chat_request({"contents": thoughts}, stream=False, model="gemini-x")


def test_body_or_model_of_the_wrong_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="^body: must be a JSON object$"):
        chat("hi")
    with pytest.raises(ValueError, match="^model: required$"):
        to_chat_request(body(), stream=False)


def test_request_sent_by_the_sdk_translates() -> None:
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json=from_chat_response(chat_response("ok"), model="gemini-x"))

    config = types.GenerateContentConfig(
        system_instruction="sys",
        temperature=0.3,
        max_output_tokens=20,
        stop_sequences=["X"],
        tools=[
            types.Tool(
                function_declarations=[
                    types.FunctionDeclaration(**WEATHER["functionDeclarations"][0])
                ]
            )
        ],
        tool_config=types.ToolConfig(
            function_calling_config=types.FunctionCallingConfig(mode="ANY")
        ),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    contents = ["hi", types.Part.from_bytes(data=b"\x89PNG", mime_type="image/png")]
    result = sdk_client(handler).models.generate_content(
        model="gemini-x", contents=contents, config=config
    )
    assert result.text == "ok"
    out = chat(seen[0])
    assert out["messages"] == [
        {"role": "system", "content": "sys"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hi"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}},
            ],
        },
    ]
    assert (out["temperature"], out["max_tokens"], out["stop"]) == (0.3, 20, ["X"])
    assert out["tools"][0]["function"]["parameters"]["properties"]["city"] == {
        "type": "string",
        "description": "City",
    }
    assert out["tool_choice"] == "required"


# -- response ----------------------------------------------------------------------------------


def test_text_response_maps_candidate_finish_reason_and_usage() -> None:
    out = from_chat_response(chat_response("Hello"), model="gemini-x")
    assert out == {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "Hello"}]},
                "index": 0,
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {"promptTokenCount": 11, "candidatesTokenCount": 7, "totalTokenCount": 18},
        "modelVersion": "gemini-x",
        "responseId": "chatcmpl-abc",
    }
    parsed = types.GenerateContentResponse.model_validate(out)
    assert parsed.text == "Hello"


@pytest.mark.parametrize(
    ("finish", "reason"),
    [
        ("stop", "STOP"),
        ("length", "MAX_TOKENS"),
        ("tool_calls", "STOP"),
        ("content_filter", "SAFETY"),
        (None, "STOP"),
        ("something_new", "OTHER"),
    ],
)
def test_finish_reason_maps(finish: str | None, reason: str) -> None:
    out = from_chat_response(chat_response(finish=finish), model="m")
    assert out["candidates"][0]["finishReason"] == reason


def test_tool_calls_become_function_call_parts() -> None:
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
        {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": ""}},
    ]
    out = from_chat_response(chat_response(None, finish="tool_calls", tool_calls=calls), model="m")
    assert out["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"id": "call_1", "name": "f", "args": {"a": 1}}},
        {"functionCall": {"id": "call_2", "name": "g", "args": {}}},
    ]
    parsed = types.GenerateContentResponse.model_validate(out)
    assert [c.name for c in parsed.function_calls] == ["f", "g"]


def test_empty_response_still_has_a_text_part() -> None:
    out = from_chat_response(chat_response("", finish="length"), model="m")
    assert out["candidates"][0]["content"]["parts"] == [{"text": ""}]


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (400, "INVALID_ARGUMENT"),
        (401, "UNAUTHENTICATED"),
        (404, "NOT_FOUND"),
        (413, "INVALID_ARGUMENT"),
        (429, "RESOURCE_EXHAUSTED"),
        (500, "INTERNAL"),
        (502, "INTERNAL"),
        (503, "UNAVAILABLE"),
        (504, "DEADLINE_EXCEEDED"),
    ],
)
def test_error_body_uses_google_status_names(status: int, name: str) -> None:
    assert error_body(status, "boom") == {
        "error": {"code": status, "message": "boom", "status": name}
    }


def test_error_event_is_a_data_event() -> None:
    assert parse_sse([error_event(429, "slow down")]) == [
        {"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}}
    ]


# -- streaming ---------------------------------------------------------------------------------


def test_text_stream_sends_text_then_a_final_event_with_finish_and_usage() -> None:
    events = run_stream(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}),
            chunk({}, finish="stop"),
            usage_chunk(5, 9),
        ]
    )
    parsed = parse_sse(events)
    assert [p["candidates"][0]["content"]["parts"] for p in parsed] == [
        [{"text": "Hel"}],
        [{"text": "lo"}],
        [{"text": ""}],
    ]
    assert "finishReason" not in parsed[0]["candidates"][0]
    assert parsed[-1]["candidates"][0]["finishReason"] == "STOP"
    assert parsed[-1]["usageMetadata"] == {
        "promptTokenCount": 5,
        "candidatesTokenCount": 9,
        "totalTokenCount": 14,
    }

    responses = sdk_stream(events)
    assert "".join(r.text or "" for r in responses) == "Hello"
    assert responses[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert responses[-1].usage_metadata.total_token_count == 14


def test_text_then_tool_calls_split_across_chunks_arrive_whole() -> None:
    events = run_stream(
        [
            chunk({"content": "Checking"}),
            tool_chunk(0, "", id="call_1", name="weather"),
            tool_chunk(0, '{"ci'),
            tool_chunk(0, 'ty": "Par'),
            tool_chunk(0, 'is"}'),
            tool_chunk(1, '{"city"', id="call_2", name="weather"),
            tool_chunk(1, ': "Rome"}'),
            chunk({}, finish="tool_calls"),
            usage_chunk(),
        ]
    )
    responses = sdk_stream(events)
    assert responses[0].text == "Checking"
    calls = responses[-1].function_calls
    assert [(c.id, c.name, c.args) for c in calls] == [
        ("call_1", "weather", {"city": "Paris"}),
        ("call_2", "weather", {"city": "Rome"}),
    ]
    assert responses[-1].candidates[0].finish_reason == types.FinishReason.STOP


def test_stream_without_finish_reason_is_stop() -> None:
    parsed = parse_sse(run_stream([chunk({"content": "partial"})]))
    assert parsed[-1]["candidates"][0]["finishReason"] == "STOP"


def test_stream_length_finish_is_max_tokens() -> None:
    parsed = parse_sse(run_stream([chunk({"content": "x"}, finish="length")]))
    assert parsed[-1]["candidates"][0]["finishReason"] == "MAX_TOKENS"


def test_failure_mid_stream_ends_with_error_data_event() -> None:
    events = run_stream([chunk({"content": "Hel"})], fail=ProviderFailed("provider went away"))
    parsed = parse_sse(events)
    assert parsed[-1] == {
        "error": {"code": 502, "message": "provider went away", "status": "INTERNAL"}
    }
    assert all("finishReason" not in p.get("candidates", [{}])[0] for p in parsed)
    with pytest.raises(errors.APIError, match="provider went away"):
        sdk_stream(events)


def test_timeout_mid_stream_is_deadline_exceeded() -> None:
    parsed = parse_sse(run_stream([], fail=TimeoutError("slow")))
    assert parsed == [{"error": {"code": 504, "message": "slow", "status": "DEADLINE_EXCEEDED"}}]


def test_public_names() -> None:
    assert set(gemini_api.__all__) == {
        "error_body",
        "error_event",
        "from_chat_response",
        "stream_from_chat",
        "to_chat_request",
    }
