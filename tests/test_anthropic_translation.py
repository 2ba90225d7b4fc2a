"""Anthropic Messages ⇄ chat completions: pure translation, checked against the official SDK."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

import anthropic
import httpx2
import pytest
from support.translation import agen, chat_response, chunk, tool_chunk, usage_chunk

from gateway.errors import ProviderFailed
from gateway.translate import anthropic as anthropic_api
from gateway.translate.anthropic import (
    error_body,
    error_event,
    from_chat_response,
    stream_from_chat,
    to_chat_request,
)

# -- helpers -----------------------------------------------------------------------------------


def body(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "claude-x",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
    }
    return {**base, **overrides}


def run_stream(chunks: Iterable[dict], fail: Exception | None = None, **kw: Any) -> list[bytes]:
    async def collect() -> list[bytes]:
        return [e async for e in stream_from_chat(agen(chunks, fail), model="claude-x", **kw)]

    return asyncio.run(collect())


def parse_sse(events: list[bytes]) -> list[tuple[str, dict]]:
    out = []
    for raw in events:
        text = raw.decode()
        assert text.endswith("\n\n")
        event_line, data_line = text.strip("\n").split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: ")
        data = json.loads(data_line[len("data: ") :])
        assert data["type"] == event_line[len("event: ") :]
        out.append((data["type"], data))
    return out


def sdk_client(handler: Any) -> anthropic.Anthropic:
    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    return anthropic.Anthropic(
        api_key="x", base_url="http://gw.test", http_client=http, max_retries=0
    )


def sdk_final_message(events: list[bytes]) -> anthropic.types.Message:
    def handler(request: httpx2.Request) -> httpx2.Response:
        headers = {"content-type": "text/event-stream"}
        return httpx2.Response(200, headers=headers, content=b"".join(events))

    client = sdk_client(handler)
    messages = [{"role": "user", "content": "hi"}]
    with client.messages.stream(model="claude-x", max_tokens=64, messages=messages) as stream:
        return stream.get_final_message()


# -- request -----------------------------------------------------------------------------------


def test_minimal_request_maps_model_messages_and_max_tokens() -> None:
    out = to_chat_request(body(), stream=False)
    assert out == {
        "model": "claude-x",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 64,
        "stream": False,
    }


def test_model_argument_overrides_body_model() -> None:
    assert to_chat_request(body(), stream=False, model="gpt-4o")["model"] == "gpt-4o"


def test_stream_from_body_or_keyword_adds_usage_option() -> None:
    for out in (
        to_chat_request(body(stream=True), stream=False),
        to_chat_request(body(), stream=True),
    ):
        assert out["stream"] is True
        assert out["stream_options"] == {"include_usage": True}


def test_sampling_and_stop_sequences_are_mapped() -> None:
    out = to_chat_request(
        body(temperature=0.2, top_p=0.9, top_k=5, stop_sequences=["END", "###"], metadata={}),
        stream=False,
    )
    assert (out["temperature"], out["top_p"], out["stop"]) == (0.2, 0.9, ["END", "###"])
    assert "top_k" not in out and "metadata" not in out


def test_system_string_and_text_blocks_become_one_system_message() -> None:
    out = to_chat_request(body(system="Be brief."), stream=False)
    assert out["messages"][0] == {"role": "system", "content": "Be brief."}
    blocks = [{"type": "text", "text": "A"}, {"type": "text", "text": "B", "cache_control": {}}]
    out = to_chat_request(body(system=blocks), stream=False)
    assert out["messages"][0] == {"role": "system", "content": "A\nB"}


def test_multi_turn_text_blocks_collapse_to_strings() -> None:
    messages = [
        {
            "role": "user",
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
        {"role": "user", "content": "three"},
    ]
    out = to_chat_request(body(messages=messages), stream=False)
    assert out["messages"] == [
        {"role": "user", "content": "one\ntwo"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "three"},
    ]


def test_base64_and_url_images_become_image_url_parts() -> None:
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.jpg"}},
    ]
    out = to_chat_request(body(messages=[{"role": "user", "content": content}]), stream=False)
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/cat.jpg"}},
    ]


def test_tool_use_and_tool_result_become_tool_calls_and_tool_messages() -> None:
    messages = [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "s"},
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": "no data"}],
                    "is_error": True,
                },
                {"type": "text", "text": "Thanks"},
            ],
        },
    ]
    out = to_chat_request(body(messages=messages), stream=False)
    assistant, tool1, tool2, user = out["messages"][1:]
    assert assistant["content"] == "Checking."
    assert assistant["tool_calls"] == [
        {
            "id": "toolu_1",
            "type": "function",
            "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
        },
        {
            "id": "toolu_2",
            "type": "function",
            "function": {"name": "weather", "arguments": '{"city": "Rome"}'},
        },
    ]
    assert tool1 == {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"}
    assert tool2 == {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: no data"}
    assert user == {"role": "user", "content": "Thanks"}


def test_image_inside_tool_result_follows_as_user_message() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/gif", "data": "R0"}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": [image]}
    out = to_chat_request(body(messages=[{"role": "user", "content": [result]}]), stream=False)
    assert out["messages"] == [
        {"role": "tool", "tool_call_id": "t1", "content": ""},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0"}}],
        },
    ]


def test_tools_and_tool_choice_are_mapped() -> None:
    tools = [
        {
            "name": "weather",
            "description": "Get weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    expected_tool = {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Get weather",
            "parameters": tools[0]["input_schema"],
        },
    }
    cases = [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        (
            {"type": "tool", "name": "weather"},
            {"type": "function", "function": {"name": "weather"}},
        ),
    ]
    for choice, expected in cases:
        out = to_chat_request(body(tools=tools, tool_choice=choice), stream=False)
        assert out["tools"] == [expected_tool]
        assert out["tool_choice"] == expected
    choice = {"type": "auto", "disable_parallel_tool_use": True}
    out = to_chat_request(body(tools=tools, tool_choice=choice), stream=False)
    assert out["parallel_tool_calls"] is False


def test_tool_choice_without_tools_is_dropped() -> None:
    out = to_chat_request(body(tool_choice={"type": "none"}), stream=False)
    assert "tool_choice" not in out


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"max_tokens": None}, "max_tokens: required"),
        ({"max_tokens": "10"}, "max_tokens: must be a positive integer"),
        ({"max_tokens": 0}, "max_tokens: must be a positive integer"),
        ({"max_tokens": True}, "max_tokens: must be a positive integer"),
        ({"model": None}, "model: required"),
        ({"messages": []}, "messages: must be a non-empty list"),
        ({"messages": "hi"}, "messages: must be a non-empty list"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages[0].role: must be"),
        ({"messages": [{"role": "user", "content": []}]}, "messages[0].content: must be"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content: must be"),
        (
            {"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
            "messages[0].content[0].type: unsupported block type 'document'",
        ),
        (
            {"messages": [{"role": "user", "content": [{"text": "no type"}]}]},
            "messages[0].content[0].type: required",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages[0].content[0].text: required",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}
                ]
            },
            "messages[0].content[0].source.type: must be 'base64' or 'url'",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "n"}]}
                ]
            },
            "messages[0].content[0].type: unsupported block type 'tool_use'",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t", "name": "n", "input": []}],
                    }
                ]
            },
            "messages[0].content[0].input: must be an object",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result"}]}]},
            "messages[0].content[0].tool_use_id: required",
        ),
        ({"system": 3}, "system: must be a string or a list of text blocks"),
        ({"system": [{"type": "image"}]}, "system[0].type: must be 'text'"),
        ({"temperature": "hot"}, "temperature: must be a number"),
        ({"stop_sequences": "END"}, "stop_sequences: must be a list"),
        ({"stop_sequences": ["a", 1]}, "stop_sequences[1]: must be a string"),
        ({"stream": "yes"}, "stream: must be a boolean"),
        ({"tools": [{"name": "f"}]}, "tools[0].input_schema: required"),
        (
            {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
            "tools[0].type: unsupported",
        ),
        ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type: must be"),
        ({"tool_choice": {"type": "tool"}}, "tool_choice.name: required"),
    ],
)
def test_malformed_request_raises_value_error_naming_the_field(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as info:
        to_chat_request(body(**overrides), stream=False)
    assert str(info.value).startswith(message)


def test_a_conversation_of_thinking_blocks_only_is_refused_before_any_provider() -> None:
    thinking = [{"role": "user", "content": [{"type": "thinking", "thinking": "hm"}]}]
    with pytest.raises(ValueError, match="^messages: no turn has anything to send"):
        to_chat_request(body(messages=thinking, system="be brief"), stream=False)


def test_body_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(ValueError, match="^body: must be a JSON object$"):
        to_chat_request([1, 2], stream=False)


def test_request_sent_by_the_sdk_translates() -> None:
    seen: list[dict] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(json.loads(request.content))
        chat = to_chat_request(seen[-1], stream=False)
        return httpx2.Response(
            200, json=from_chat_response(chat_response("ok"), model=chat["model"])
        )

    client = sdk_client(handler)
    message = client.messages.create(
        model="claude-x",
        max_tokens=32,
        system=[{"type": "text", "text": "sys"}],
        messages=[{"role": "user", "content": "hi"}],
        stop_sequences=["Z"],
        extra_body={"temperature": 0.5},  # this SDK version no longer has the parameter
        tools=[{"name": "f", "input_schema": {"type": "object", "properties": {}}}],
        tool_choice={"type": "any"},
    )
    assert message.content[0].text == "ok"
    chat = to_chat_request(seen[0], stream=False)
    assert chat["messages"][0] == {"role": "system", "content": "sys"}
    assert chat["stop"] == ["Z"] and chat["tool_choice"] == "required"
    assert chat["temperature"] == 0.5


# -- response ----------------------------------------------------------------------------------


def test_text_response_maps_content_stop_reason_and_usage() -> None:
    out = from_chat_response(chat_response("Hello"), model="claude-x")
    assert out == {
        "id": "msg_abc",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [{"type": "text", "text": "Hello"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 11, "output_tokens": 7},
    }
    anthropic.types.Message.model_validate(out)


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("content_filter", "refusal"),
        ("tool_calls", "tool_use"),
        ("function_call", "tool_use"),
        (None, "end_turn"),
        ("something_new", "end_turn"),
    ],
)
def test_finish_reason_maps_to_stop_reason(finish: str | None, stop_reason: str) -> None:
    assert from_chat_response(chat_response(finish=finish), model="m")["stop_reason"] == stop_reason


def test_matched_stop_field_reports_stop_sequence() -> None:
    resp = chat_response("Hi")
    resp["choices"][0]["matched_stop"] = "END"
    out = from_chat_response(resp, model="m", stop_sequences=["END"])
    assert (out["stop_reason"], out["stop_sequence"]) == ("stop_sequence", "END")
    out = from_chat_response(resp, model="m", stop_sequences=["OTHER"])
    assert (out["stop_reason"], out["stop_sequence"]) == ("end_turn", None)
    out = from_chat_response(chat_response("Hi"), model="m", stop_sequences=["END"])
    assert (out["stop_reason"], out["stop_sequence"]) == ("end_turn", None)


def test_tool_calls_become_tool_use_blocks() -> None:
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
        {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": ""}},
    ]
    out = from_chat_response(
        chat_response("Let me see.", finish="tool_calls", tool_calls=calls), model="m"
    )
    assert out["content"] == [
        {"type": "text", "text": "Let me see."},
        {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
        {"type": "tool_use", "id": "call_2", "name": "g", "input": {}},
    ]
    assert out["stop_reason"] == "tool_use"
    anthropic.types.Message.model_validate(out)


def test_tool_calls_with_stop_finish_are_still_tool_use() -> None:
    calls = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    out = from_chat_response(chat_response(None, finish="stop", tool_calls=calls), model="m")
    assert out["stop_reason"] == "tool_use"
    assert [b["type"] for b in out["content"]] == ["tool_use"]


def test_unparseable_tool_arguments_are_kept_raw() -> None:
    calls = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]
    out = from_chat_response(chat_response(None, finish="tool_calls", tool_calls=calls), model="m")
    assert out["content"][0]["input"] == {"_raw": "{oops"}


def test_response_without_usage_or_choices_is_tolerated() -> None:
    out = from_chat_response({"id": "x"}, model="m")
    assert out["content"] == [] and out["stop_reason"] == "end_turn"
    assert out["usage"] == {"input_tokens": 0, "output_tokens": 0}


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (529, "overloaded_error"),
        (504, "timeout_error"),
        (418, "invalid_request_error"),
        (599, "api_error"),
    ],
)
def test_error_body_uses_anthropic_error_types(status: int, kind: str) -> None:
    assert error_body(status, "boom") == {
        "type": "error",
        "error": {"type": kind, "message": "boom"},
    }


def test_error_event_is_an_sse_error_event() -> None:
    assert parse_sse([error_event(503, "busy")]) == [
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
    ]


# -- streaming ---------------------------------------------------------------------------------


def test_text_stream_emits_the_full_event_sequence() -> None:
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
    assert [t for t, _ in parsed] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = parsed[0][1]["message"]
    assert start["id"] == "msg_s1" and start["model"] == "claude-x" and start["content"] == []
    assert parsed[2][1]["content_block"] == {"type": "text", "text": ""}
    assert parsed[3][1]["delta"] == {"type": "text_delta", "text": "Hel"}
    assert parsed[6][1]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert parsed[6][1]["usage"] == {"input_tokens": 5, "output_tokens": 9}

    message = sdk_final_message(events)
    assert message.content[0].text == "Hello"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (5, 9)


def test_text_then_tool_call_split_across_chunks_rebuilds_in_sdk() -> None:
    events = run_stream(
        [
            chunk({"role": "assistant", "content": "Checking"}),
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
    parsed = parse_sse(events)
    starts = [d["content_block"] for t, d in parsed if t == "content_block_start"]
    assert starts == [
        {"type": "text", "text": ""},
        {"type": "tool_use", "id": "call_1", "name": "weather", "input": {}},
        {"type": "tool_use", "id": "call_2", "name": "weather", "input": {}},
    ]
    json_deltas = [
        (d["index"], d["delta"]["partial_json"])
        for t, d in parsed
        if t == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    ]
    assert json_deltas == [
        (1, '{"ci'),
        (1, 'ty": "Par'),
        (1, 'is"}'),
        (2, '{"city"'),
        (2, ': "Rome"}'),
    ]
    stops = [d["index"] for t, d in parsed if t == "content_block_stop"]
    assert stops == [0, 1, 2]

    message = sdk_final_message(events)
    assert message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
    assert message.content[0].text == "Checking"
    assert message.content[1].input == {"city": "Paris"}
    assert message.content[2].input == {"city": "Rome"}


def test_tool_call_whose_name_arrives_late_buffers_its_arguments() -> None:
    events = run_stream(
        [
            tool_chunk(0, '{"a"', id="call_9"),
            tool_chunk(0, ": 1}", name="f"),
            chunk({}, finish="tool_calls"),
        ]
    )
    message = sdk_final_message(events)
    assert message.content[0].name == "f" and message.content[0].input == {"a": 1}


def test_whole_tool_call_in_one_chunk_then_text() -> None:
    events = run_stream(
        [
            tool_chunk(0, '{"q": "x"}', id="call_1", name="search"),
            chunk({"content": "done"}),
            chunk({}, finish="stop"),
        ]
    )
    message = sdk_final_message(events)
    assert [b.type for b in message.content] == ["tool_use", "text"]
    assert message.stop_reason == "tool_use"


def test_stream_without_finish_reason_ends_turn() -> None:
    events = run_stream([chunk({"content": "partial"})])
    parsed = parse_sse(events)
    assert parsed[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert parsed[-1][0] == "message_stop"
    assert sdk_final_message(events).content[0].text == "partial"


def test_empty_stream_is_still_a_well_formed_message() -> None:
    parsed = parse_sse(run_stream([]))
    assert [t for t, _ in parsed] == ["message_start", "message_delta", "message_stop"]


@pytest.mark.parametrize(
    ("finish", "stop_reason"), [("length", "max_tokens"), ("content_filter", "refusal")]
)
def test_stream_finish_reasons_map(finish: str, stop_reason: str) -> None:
    parsed = parse_sse(run_stream([chunk({"content": "x"}, finish=finish)]))
    assert parsed[-2][1]["delta"]["stop_reason"] == stop_reason


def test_stream_reports_matched_stop_sequence() -> None:
    final = chunk({}, finish="stop")
    final["choices"][0]["stop_reason"] = "END"  # vLLM's name for the matched stop string
    parsed = parse_sse(run_stream([chunk({"content": "x"}), final], stop_sequences=["END"]))
    assert parsed[-2][1]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}


def test_usage_in_the_finishing_chunk_is_used() -> None:
    final = chunk({"content": "x"}, finish="stop")
    final["usage"] = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    parsed = parse_sse(run_stream([final]))
    assert parsed[-2][1]["usage"] == {"input_tokens": 3, "output_tokens": 1}


def test_failure_mid_stream_ends_with_error_event_and_no_message_stop() -> None:
    events = run_stream([chunk({"content": "Hel"})], fail=ProviderFailed("provider went away"))
    parsed = parse_sse(events)
    assert parsed[-1] == (
        "error",
        {"type": "error", "error": {"type": "api_error", "message": "provider went away"}},
    )
    assert "message_stop" not in [t for t, _ in parsed]
    with pytest.raises(anthropic.APIStatusError, match="provider went away"):
        sdk_final_message(events)


def test_timeout_before_first_chunk_is_a_timeout_error_event() -> None:
    parsed = parse_sse(run_stream([], fail=TimeoutError("slow")))
    assert parsed == [
        ("error", {"type": "error", "error": {"type": "timeout_error", "message": "slow"}})
    ]


def test_stream_closes_its_upstream_iterator() -> None:
    closed: list[bool] = []

    async def upstream() -> AsyncIterator[dict]:
        try:
            yield chunk({"content": "a"})
            yield chunk({"content": "b"})
        finally:
            closed.append(True)

    async def take_first() -> None:
        stream = stream_from_chat(upstream(), model="m")
        await stream.__anext__()
        await stream.aclose()

    asyncio.run(take_first())
    assert closed == [True]


def test_public_names() -> None:
    assert set(anthropic_api.__all__) == {
        "error_body",
        "error_event",
        "from_chat_response",
        "stream_from_chat",
        "to_chat_request",
    }
