"""The Anthropic and Gemini APIs end to end: the official clients, a real gateway, echo providers.

One gateway (``unigw gateway``) runs for the module in front of echo provider
processes: ``one`` and ``two`` serve ``m-a`` (the alias target of ``claude-sonnet-4`` and
``gemini-2.5-flash``); ``broken`` answers 500, ``slow`` answers after the first-byte timeout,
``crash-a`` / ``crash-g`` exit mid-stream, ``drip`` streams slowly, and ``dead`` is a port
nobody listens on. A second gateway checks gateway keys and the body limit; the failover test
starts its own :class:`~support.gateway.Cluster`.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from support.echo import EchoProc, free_port, start_echo
from support.gateway import Cluster, GatewayProc, write_config

pytestmark = pytest.mark.timeout(60)

SERVING = {"one", "two"}
ALIASES = {"claude-sonnet-4": "m-a", "gemini-2.5-flash": "m-a"}
GW_KEY = "sk-gw-translated-test"
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5Er"
       "kJggg==")
WEATHER_TOOL: Any = {"name": "get_weather", "description": "Weather for a city",
                     "input_schema": {"type": "object", "required": ["city"],
                                      "properties": {"city": {"type": "string"}}}}


# -- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def echoes() -> Iterator[dict[str, EchoProc]]:
    procs: dict[str, EchoProc] = {}
    specs = {"one": ["--models", "m-a"], "two": ["--models", "m-a"],
             "broken": ["--models", "m-broken", "--status", "500"],
             "slow": ["--models", "m-slow", "--latency", "30"],
             "crash-a": ["--models", "m-crash-a", "--crash-mid-stream", "2"],
             "crash-g": ["--models", "m-crash-g", "--crash-mid-stream", "2"],
             "drip": ["--models", "m-drip", "--chunk-delay", "0.2"]}
    try:
        for name, args in specs.items():
            procs[name] = start_echo(*args)
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()


def serve(folder: Path, providers: list[dict[str, Any]], ready: int,
          **gateway: Any) -> Iterator[GatewayProc]:
    """A gateway for ``providers``, once ``ready`` of them are; checks its log when done."""
    gw = GatewayProc(write_config(folder / "providers.yaml", providers, **gateway))
    try:
        gw.wait_up()
        deadline = time.monotonic() + 15
        while httpx.get(gw.url + "/health").json()["ready"] < ready:
            assert time.monotonic() < deadline, gw.stderr_text()
            time.sleep(0.05)
        yield gw
        log = gw.stderr_text()
    finally:
        gw.stop()
    assert "Traceback" not in log, log


@pytest.fixture(scope="module")
def gateway(echoes: dict[str, EchoProc], tmp_path_factory: pytest.TempPathFactory,
            ) -> Iterator[GatewayProc]:
    providers = [{"name": name, "port": echo.port,
                  "models": ["m-a" if name in SERVING else "m-" + name]}
                 for name, echo in echoes.items()]
    providers.append({"name": "dead", "port": free_port(), "models": ["m-dead"]})
    yield from serve(tmp_path_factory.mktemp("gw"), providers, len(echoes), aliases=ALIASES,
                     unknown_model="reject", first_byte_timeout=1.5, retries=2)


@pytest.fixture(scope="module")
def keyed(echoes: dict[str, EchoProc], tmp_path_factory: pytest.TempPathFactory,
          ) -> Iterator[GatewayProc]:
    providers = [{"name": name, "port": echoes[name].port, "models": ["m-a"]}
                 for name in sorted(SERVING)]
    yield from serve(tmp_path_factory.mktemp("keyed"), providers, 2, aliases=ALIASES,
                     api_keys=[GW_KEY], max_body_bytes=4096)


Served = GatewayProc | Cluster  # anything with the gateway's ``url``


def claude(gw: Served, key: str = "unused") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0, timeout=20)


MakeGemini = Callable[..., genai.Client]


@pytest.fixture
def gemini() -> Iterator[MakeGemini]:
    """``gemini(gw, key)``: a google-genai client for ``gw`` (kept open until the test ends)."""
    clients: list[genai.Client] = []

    def make(gw: Served, key: str = "unused") -> genai.Client:
        options = types.HttpOptions(base_url=gw.url, timeout=20_000,
                                    retry_options=types.HttpRetryOptions(attempts=1))
        clients.append(genai.Client(api_key=key, http_options=options))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def provider_of(response: Any) -> str | None:
    """``X-Unigw-Provider`` of a google-genai response (its headers dict keeps httpx's case)."""
    headers = response.sdk_http_response.headers or {}
    return {k.lower(): v for k, v in headers.items()}.get("x-unigw-provider")


def user(text: str) -> Any:
    return {"role": "user", "content": text}


# -- Anthropic: non-streaming --------------------------------------------------------------------

def test_anthropic_create_echoes_last_user_message_with_usage_and_provider(
        gateway: GatewayProc) -> None:
    raw = claude(gateway).messages.with_raw_response.create(
        model="claude-sonnet-4", max_tokens=100, system="You are terse.",
        messages=[user("first question"), {"role": "assistant", "content": "first answer"},
                  user("the second question here")],
        extra_body={"temperature": 0.3, "top_p": 0.9})
    message = raw.parse()
    assert raw.headers["x-unigw-provider"] in SERVING
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "the second question here"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.model == "m-a"  # claude-sonnet-4 resolved through gateway.aliases
    assert message.usage.output_tokens == 4
    assert message.usage.input_tokens == 3 + 2 + 2 + 4  # every message's words, system too


def test_anthropic_max_tokens_below_the_word_count_stops_at_max_tokens(
        gateway: GatewayProc) -> None:
    message = claude(gateway).messages.create(
        model="claude-sonnet-4", max_tokens=2, messages=[user("one two three four five")])
    assert message.content[0].text == "one two"  # type: ignore[union-attr]
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 2


def test_anthropic_stop_sequence_cuts_the_text(gateway: GatewayProc) -> None:
    message = claude(gateway).messages.create(
        model="claude-sonnet-4", max_tokens=50, stop_sequences=["STOP"],
        messages=[user("keep this STOP drop that")])
    assert message.content[0].text == "keep this "  # type: ignore[union-attr]
    # OpenAI's finish_reason "stop" cannot say a sequence matched; only a provider that names
    # it (vLLM/SGLang's matched_stop, which the echo provider sends) gets "stop_sequence".
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "STOP")


def test_anthropic_base64_image_block_travels_with_the_text(gateway: GatewayProc) -> None:
    image: Any = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": PNG}}
    message = claude(gateway).messages.create(
        model="claude-sonnet-4", max_tokens=50,
        messages=[{"role": "user", "content": [image, {"type": "text", "text": "what is it"}]}])
    assert message.content[0].text == "what is it"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"


def test_anthropic_tool_use_and_tool_result_round_trip(gateway: GatewayProc) -> None:
    client = claude(gateway)
    asked = [user('/tool get_weather {"city": "Paris"}')]
    first = client.messages.create(model="claude-sonnet-4", max_tokens=50,
                                   tools=[WEATHER_TOOL], messages=asked)
    assert first.stop_reason == "tool_use"
    [call] = first.content
    assert call.type == "tool_use"
    assert (call.name, call.input) == ("get_weather", {"city": "Paris"})
    result = {"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21C"}
    follow: Any = [*asked, {"role": "assistant", "content": [call.model_dump()]},
              {"role": "user", "content": [result, {"type": "text", "text": "thanks"}]}]
    second = client.messages.create(model="claude-sonnet-4", max_tokens=50,
                                    tools=[WEATHER_TOOL], messages=follow)
    assert second.content[0].text == "thanks"  # type: ignore[union-attr]
    assert second.stop_reason == "end_turn"


# -- Anthropic: streaming ------------------------------------------------------------------------

def test_anthropic_stream_sends_the_event_sequence_with_text_deltas(gateway: GatewayProc) -> None:
    with claude(gateway).messages.stream(
            model="claude-sonnet-4", max_tokens=3, system="be brief",
            messages=[user("alpha beta gamma delta")]) as stream:
        provider = stream.response.headers["x-unigw-provider"]
        events = list(stream)
        final = stream.get_final_message()
    kinds = [event.type for event in events]
    assert kinds[0] == "message_start"
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    deltas = [e.delta.text for e in events if e.type == "content_block_delta"]  # type: ignore[union-attr]
    assert len(deltas) == 3 and "".join(deltas) == "alpha beta gamma"
    assert provider in SERVING
    assert final.content[0].text == "alpha beta gamma"  # type: ignore[union-attr]
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 3


def test_anthropic_stream_rebuilds_a_tool_call_from_json_deltas(gateway: GatewayProc) -> None:
    with claude(gateway).messages.stream(
            model="claude-sonnet-4", max_tokens=50, tools=[WEATHER_TOOL],
            messages=[user('/tool get_weather {"city": "Oslo", "days": 3}')]) as stream:
        events = list(stream)
        final = stream.get_final_message()
    pieces = [e.delta.partial_json for e in events
              if e.type == "content_block_delta" and e.delta.type == "input_json_delta"]
    assert len(pieces) >= 2
    assert json.loads("".join(pieces)) == {"city": "Oslo", "days": 3}
    assert final.stop_reason == "tool_use"
    [call] = final.content
    assert call.type == "tool_use" and call.name == "get_weather"
    assert call.input == {"city": "Oslo", "days": 3}


def test_anthropic_provider_dying_mid_stream_ends_with_an_error_event(
        gateway: GatewayProc) -> None:
    texts: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        with claude(gateway).messages.stream(
                model="m-crash-a", max_tokens=50,
                messages=[user("one two three four five six")]) as stream:
            assert stream.response.headers["x-unigw-provider"] == "crash-a"
            for text in stream.text_stream:
                texts.append(text)
    assert "".join(texts) == "one two "  # what came before the crash, then the error event
    body = caught.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "api_error"
    assert "crash-a" in body["error"]["message"]


# -- Gemini ---------------------------------------------------------------------------------------

def test_gemini_generate_content_echoes_text_with_usage_metadata(
        gateway: GatewayProc, gemini: MakeGemini) -> None:
    response = gemini(gateway).models.generate_content(
        model="gemini-2.5-flash",
        contents=[types.Content(role="user", parts=[types.Part(text="hi there")]),
                  types.Content(role="model", parts=[types.Part(text="hello")]),
                  types.Content(role="user", parts=[types.Part(text="say it back now")])],
        config=types.GenerateContentConfig(system_instruction="be brief", temperature=0.2,
                                           top_p=0.9, max_output_tokens=100))
    assert response.text == "say it back now"
    assert provider_of(response) in SERVING
    candidate = response.candidates[0]  # type: ignore[index]
    assert candidate.finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count) == (2 + 2 + 1 + 4, 4)
    assert usage.total_token_count == 13
    assert response.model_version == "m-a"


def test_gemini_max_output_tokens_below_the_word_count_is_max_tokens(
        gateway: GatewayProc, gemini: MakeGemini) -> None:
    response = gemini(gateway).models.generate_content(
        model="gemini-2.5-flash", contents="one two three four",
        config=types.GenerateContentConfig(max_output_tokens=3, stop_sequences=["never"]))
    assert response.text == "one two three"
    assert response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS  # type: ignore[index]


def test_gemini_stop_sequence_cuts_the_text(gateway: GatewayProc, gemini: MakeGemini) -> None:
    response = gemini(gateway).models.generate_content(
        model="gemini-2.5-flash", contents="keep this END not this",
        config=types.GenerateContentConfig(stop_sequences=["END"]))
    assert response.text == "keep this "
    assert response.candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]


def test_gemini_inline_image_part_travels_with_the_text(
        gateway: GatewayProc, gemini: MakeGemini) -> None:
    image = types.Part.from_bytes(data=base64.b64decode(PNG), mime_type="image/png")
    response = gemini(gateway).models.generate_content(
        model="gemini-2.5-flash",
        contents=[types.Content(role="user", parts=[image, types.Part(text="describe")])])
    assert response.text == "describe"


def weather_config() -> types.GenerateContentConfig:
    declaration = types.FunctionDeclaration(
        name="get_weather", description="Weather for a city",
        parameters=types.Schema(type=types.Type.OBJECT,
                                properties={"city": types.Schema(type=types.Type.STRING)}))
    return types.GenerateContentConfig(tools=[types.Tool(function_declarations=[declaration])])


def test_gemini_function_declarations_give_a_function_call(
        gateway: GatewayProc, gemini: MakeGemini) -> None:
    response = gemini(gateway).models.generate_content(
        model="gemini-2.5-flash", contents='/tool get_weather {"city": "Rome"}',
        config=weather_config())
    [call] = response.function_calls or []
    assert (call.name, call.args) == ("get_weather", {"city": "Rome"})
    assert response.candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]


def test_gemini_stream_yields_text_then_finish_reason_and_usage(
        gateway: GatewayProc, gemini: MakeGemini) -> None:
    chunks = list(gemini(gateway).models.generate_content_stream(
        model="gemini-2.5-flash", contents="red green blue"))
    assert "".join(c.text or "" for c in chunks) == "red green blue"
    assert len([c for c in chunks if c.text]) == 3  # one per word, as the provider sent them
    last = chunks[-1]
    assert last.candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]
    assert last.usage_metadata is not None and last.usage_metadata.candidates_token_count == 3
    assert provider_of(chunks[0]) in SERVING


def test_gemini_stream_sends_a_function_call_whole(
        gateway: GatewayProc, gemini: MakeGemini) -> None:
    chunks = list(gemini(gateway).models.generate_content_stream(
        model="gemini-2.5-flash", contents='/tool get_weather {"city": "Lima"}',
        config=weather_config()))
    calls = [call for c in chunks for call in c.function_calls or []]
    assert [(c.name, c.args) for c in calls] == [("get_weather", {"city": "Lima"})]


def test_gemini_provider_dying_mid_stream_ends_with_an_error(
        gateway: GatewayProc, gemini: MakeGemini) -> None:
    texts: list[str] = []
    with pytest.raises(genai_errors.APIError) as caught:
        for chunk in gemini(gateway).models.generate_content_stream(
                model="m-crash-g", contents="one two three four five six"):
            texts.append(chunk.text or "")
    assert "".join(texts) == "one two "
    assert caught.value.code == 502
    assert "crash-g" in (caught.value.message or "")


def test_gemini_v1beta_paths_key_in_query_and_stream_without_sse(gateway: GatewayProc) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "plain json array"}]}]}
    base = gateway.url + "/v1beta/models/gemini-2.5-flash"
    whole = httpx.post(base + ":generateContent?key=anything", json=body)
    assert whole.status_code == 200 and whole.headers["x-unigw-provider"] in SERVING
    assert whole.json()["candidates"][0]["content"]["parts"] == [{"text": "plain json array"}]
    streamed = httpx.post(base + ":streamGenerateContent", json=body)
    assert streamed.headers["content-type"].startswith("application/json")
    items = streamed.json()
    assert "".join(p.get("text", "") for i in items
                   for p in i["candidates"][0]["content"]["parts"]) == "plain json array"
    assert items[-1]["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/messages", {"model": "m-drip", "max_tokens": 100, "stream": True,
                      "messages": [user(" ".join(["drip"] * 30))]}),
    ("/v1beta/models/m-drip:streamGenerateContent?alt=sse",
     {"contents": [{"role": "user", "parts": [{"text": " ".join(["drip"] * 30)}]}]}),
])
def test_client_leaving_a_stream_closes_the_providers_stream(
        gateway: GatewayProc, echoes: dict[str, EchoProc], path: str, body: Any) -> None:
    stats_url = echoes["drip"].url + "/_echo/stats"
    before = httpx.get(stats_url).json()["streams_cancelled"]
    with httpx.stream("POST", gateway.url + path, json=body, timeout=10) as response:
        assert response.headers["x-unigw-provider"] == "drip"
        assert b"drip" in next(response.iter_bytes())
    deadline = time.monotonic() + 5  # the provider is told well before its 6 s stream ends
    while (stats := httpx.get(stats_url).json())["streams_cancelled"] == before:
        assert time.monotonic() < deadline, stats
        time.sleep(0.05)
    assert stats["in_flight"] == 0


# -- errors in each API's own shape --------------------------------------------------------------

@pytest.mark.parametrize(("body", "field"), [
    ({"model": "claude-sonnet-4", "messages": [user("hi")]}, "max_tokens"),
    ({"model": "claude-sonnet-4", "max_tokens": "10", "messages": [user("hi")]}, "max_tokens"),
    ({"model": "claude-sonnet-4", "max_tokens": 10, "messages": "hi"}, "messages"),
    ({"model": 7, "max_tokens": 10, "messages": [user("hi")]}, "model"),
    ({"model": "claude-sonnet-4", "max_tokens": 10, "messages": [user("hi")],
      "temperature": "hot"}, "temperature"),
])
def test_anthropic_malformed_request_is_a_400_in_anthropic_shape(
        gateway: GatewayProc, body: dict[str, Any], field: str) -> None:
    response = httpx.post(gateway.url + "/v1/messages", json=body)
    assert response.status_code == 400
    data = response.json()
    assert data["type"] == "error" and data["error"]["type"] == "invalid_request_error"
    assert data["error"]["message"].startswith(field)


def test_anthropic_body_that_is_not_json_is_a_400_in_anthropic_shape(
        gateway: GatewayProc) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude(gateway).messages.create(model="claude-sonnet-4", max_tokens=0,
                                        messages=[user("hi")])
    assert caught.value.body["error"]["message"].startswith("max_tokens")  # type: ignore[index]
    response = httpx.post(gateway.url + "/v1/messages", content=b"{not json")
    assert response.status_code == 400 and response.json()["type"] == "error"


@pytest.mark.parametrize(("body", "field"), [
    ({"contents": []}, "contents"),
    ({"contents": "hi"}, "contents"),
    ({"contents": [{"role": "user", "parts": "hi"}]}, "contents[0].parts"),
    ({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
      "generationConfig": {"temperature": "warm"}}, "generationConfig.temperature"),
])
def test_gemini_malformed_request_is_a_400_in_google_shape(
        gateway: GatewayProc, body: dict[str, Any], field: str) -> None:
    response = httpx.post(gateway.url + "/v1beta/models/gemini-2.5-flash:generateContent",
                          json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert error["message"].startswith(field)


@pytest.mark.parametrize(("model", "status", "anthropic_type", "google_status"), [
    ("no-such-model", 404, "not_found_error", "NOT_FOUND"),
    ("m-dead", 503, "overloaded_error", "UNAVAILABLE"),
    ("m-broken", 502, "api_error", "INTERNAL"),
    ("m-slow", 504, "timeout_error", "DEADLINE_EXCEEDED"),
])
def test_gateway_errors_come_back_in_each_api_shape(
        gateway: GatewayProc, model: str, status: int, anthropic_type: str,
        google_status: str, gemini: MakeGemini) -> None:
    with pytest.raises(anthropic.APIStatusError) as caught:
        claude(gateway).messages.create(model=model, max_tokens=10, messages=[user("hi")])
    assert caught.value.status_code == status
    assert caught.value.body["error"]["type"] == anthropic_type  # type: ignore[index]
    with pytest.raises(genai_errors.APIError) as google:
        gemini(gateway).models.generate_content(model=model, contents="hi")
    assert (google.value.code, google.value.status) == (status, google_status)
    if status == 503:
        assert caught.value.response.headers["retry-after"]


def test_gateway_keys_are_accepted_in_each_api_header(
        keyed: GatewayProc, gemini: MakeGemini) -> None:
    message = claude(keyed, GW_KEY).messages.create(model="claude-sonnet-4", max_tokens=10,
                                                     messages=[user("keyed")])
    assert message.content[0].text == "keyed"  # type: ignore[union-attr]
    response = gemini(keyed, GW_KEY).models.generate_content(model="gemini-2.5-flash",
                                                            contents="keyed too")
    assert response.text == "keyed too"
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    body = {"contents": [{"parts": [{"text": "by query"}]}]}
    by_query = httpx.post(f"{keyed.url}{path}?key={GW_KEY}", json=body)
    assert by_query.status_code == 200 and by_query.headers["x-unigw-provider"] in SERVING
    bearer = {"authorization": f"Bearer {GW_KEY}"}
    by_bearer = httpx.post(keyed.url + "/v1/messages", headers=bearer,
                           json={"model": "m-a", "max_tokens": 5, "messages": [user("bearer")]})
    assert by_bearer.json()["content"][0]["text"] == "bearer"


def test_wrong_gateway_key_is_a_401_in_each_api_shape(
        keyed: GatewayProc, gemini: MakeGemini) -> None:
    with pytest.raises(anthropic.AuthenticationError) as caught:
        claude(keyed, "wrong").messages.create(model="claude-sonnet-4", max_tokens=10,
                                               messages=[user("hi")])
    assert caught.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(genai_errors.ClientError) as google:
        gemini(keyed, "wrong").models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert (google.value.code, google.value.status) == (401, "UNAUTHENTICATED")
    path = "/v1beta/models/gemini-2.5-flash:generateContent?key=wrong"
    response = httpx.post(keyed.url + path, json={"contents": [{"parts": [{"text": "x"}]}]})
    assert response.status_code == 401 and response.json()["error"]["status"] == "UNAUTHENTICATED"


def test_body_over_the_limit_is_a_413_in_each_api_shape(
        keyed: GatewayProc, gemini: MakeGemini) -> None:
    big = "word " * 2000
    with pytest.raises(anthropic.APIStatusError) as caught:
        claude(keyed, GW_KEY).messages.create(model="claude-sonnet-4", max_tokens=10,
                                              messages=[user(big)])
    assert caught.value.status_code == 413
    assert caught.value.body["error"]["type"] == "request_too_large"  # type: ignore[index]
    with pytest.raises(genai_errors.ClientError) as google:
        gemini(keyed, GW_KEY).models.generate_content(model="gemini-2.5-flash", contents=big)
    assert google.value.code == 413


# -- failover --------------------------------------------------------------------------------------

def test_calls_keep_succeeding_after_one_of_two_providers_is_killed(
        tmp_path: Path, gemini: MakeGemini) -> None:
    models = {"models": ["m-a"]}
    with Cluster(tmp_path, [("first", ("--models", "m-a")), ("second", ("--models", "m-a"))],
                 provider_fields={"first": models, "second": models}, aliases=ALIASES,
                 retries=1, unknown_model="reject") as cluster:
        first = cluster.echoes["first"]
        os.killpg(first.proc.pid, signal.SIGKILL)
        first.wait()
        client, google = claude(cluster), gemini(cluster)
        for i in range(4):
            raw = client.messages.with_raw_response.create(
                model="claude-sonnet-4", max_tokens=10, messages=[user(f"still here {i}")])
            assert raw.parse().content[0].text == f"still here {i}"  # type: ignore[union-attr]
            assert raw.headers["x-unigw-provider"] == "second"
            response = google.models.generate_content(model="gemini-2.5-flash",
                                                      contents=f"also here {i}")
            assert response.text == f"also here {i}" and provider_of(response) == "second"
        with client.messages.stream(model="claude-sonnet-4", max_tokens=10,
                                    messages=[user("streamed on")]) as stream:
            assert stream.get_final_text() == "streamed on"
        chunks = google.models.generate_content_stream(model="gemini-2.5-flash",
                                                       contents="streamed too")
        assert "".join(c.text or "" for c in chunks) == "streamed too"
