"""The echo provider, as a real subprocess, seen through the official openai client and httpx."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest
from openai import OpenAI
from support.echo import REPO_ROOT, EchoProc, free_port, spawn_echoes, start_echo

pytestmark = pytest.mark.timeout(60)

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def client_for(echo: EchoProc, api_key: str = "unused", timeout: float = 10.0) -> OpenAI:
    return OpenAI(base_url=echo.base_url, api_key=api_key, max_retries=0, timeout=timeout)


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoProc]:
    proc = start_echo()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(echo: EchoProc) -> OpenAI:
    return client_for(echo)


spawn = pytest.fixture(spawn_echoes, name="spawn")


# -- answers ---------------------------------------------------------------------------------


def test_chat_echoes_last_user_message_with_word_usage(client: OpenAI) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        user("first question"),
        {"role": "assistant", "content": "an answer"},
        user("say  this back"),
    ]
    reply = client.chat.completions.create(model="echo-2", messages=messages)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "say  this back"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == "echo-2"
    assert re.fullmatch(r"chatcmpl-echo-\d+", reply.id)
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (9, 3)
    assert reply.usage.total_tokens == 12


def test_chat_list_content_joins_text_parts(client: OpenAI) -> None:
    parts = [{"type": "text", "text": "hello "}, {"type": "image_url", "image_url": {"url": "x"}},
             {"type": "text", "text": "world"}]
    reply = client.chat.completions.create(
        model="echo-1", messages=[{"role": "user", "content": parts}]  # type: ignore[list-item]
    )
    assert reply.choices[0].message.content == "hello world"


def test_chat_empty_user_message_answers_placeholder(client: OpenAI) -> None:
    reply = client.chat.completions.create(model="echo-1", messages=[user("")])
    assert reply.choices[0].message.content == "(empty)"
    assert reply.usage is not None and reply.usage.prompt_tokens == 1


def test_chat_stream_deltas_join_to_the_reply_then_usage(client: OpenAI) -> None:
    text = "  one two   three four "
    chunks = list(client.chat.completions.create(
        model="echo-1", messages=[user(text)], stream=True,
        stream_options={"include_usage": True},
    ))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content is None  # a role-only chunk, as real streams
    deltas = [c.choices[0].delta.content for c in chunks[1:-2]]
    assert len(deltas) == 4 and "".join(deltas) == text  # type: ignore[arg-type]
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4


def test_chat_stream_without_usage_option_has_no_usage_chunk(client: OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="echo-1", messages=[user("a b")],
                                                 stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


def test_max_tokens_keeps_that_many_words_and_finishes_with_length(client: OpenAI) -> None:
    reply = client.chat.completions.create(model="echo-1", messages=[user("a b c d e")],
                                           max_tokens=3)
    assert reply.choices[0].message.content == "a b c"
    assert reply.choices[0].finish_reason == "length"
    stream = client.chat.completions.create(model="echo-1", messages=[user("a b c d e")],
                                            max_completion_tokens=2, stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "a b"
    assert chunks[-1].choices[0].finish_reason == "length"


def test_stop_sequence_cuts_the_reply_before_it(client: OpenAI) -> None:
    reply = client.chat.completions.create(model="echo-1", messages=[user("one two END three")],
                                           stop=["zzz", "END"])
    assert reply.choices[0].message.content == "one two "
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].model_extra == {"matched_stop": "END"}  # as vLLM and SGLang name it
    reply = client.chat.completions.create(model="echo-1", messages=[user("a-b")], stop="-")
    assert reply.choices[0].message.content == "a"


def test_tool_command_answers_with_a_tool_call(client: OpenAI) -> None:
    reply = client.chat.completions.create(
        model="echo-1", tools=TOOLS,  # type: ignore[list-item]
        messages=[user('/tool get_weather {"city": "Paris"}')],
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert re.fullmatch(r"call_echo_\d+", call.id)
    assert (call.function.name, call.function.arguments) == ("get_weather", '{"city": "Paris"}')


def test_tool_command_without_tools_is_echoed_as_text(client: OpenAI) -> None:
    reply = client.chat.completions.create(model="echo-1", messages=[user("/tool f {}")])
    assert reply.choices[0].message.content == "/tool f {}"


def test_streamed_tool_call_splits_arguments_over_chunks(client: OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model="echo-1", tools=TOOLS, stream=True,  # type: ignore[list-item]
        messages=[user('/tool get_weather {"city": "Paris"}'),
                  {"role": "tool", "tool_call_id": "x", "content": "sunny"}],
    ))
    calls = [c.choices[0].delta.tool_calls[0] for c in chunks
             if c.choices and c.choices[0].delta.tool_calls]
    assert calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    argument_parts = [c.function.arguments for c in calls[1:]]  # type: ignore[union-attr]
    assert len(argument_parts) >= 2
    assert "".join(argument_parts) == '{"city": "Paris"}'  # type: ignore[arg-type]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_completions_echo_the_prompt(client: OpenAI) -> None:
    reply = client.completions.create(model="echo-1", prompt="the quick brown fox")
    assert reply.choices[0].text == "the quick brown fox"
    assert reply.usage is not None and reply.usage.prompt_tokens == 4
    chunks = list(client.completions.create(model="echo-1", prompt="the quick brown fox",
                                            max_tokens=2, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == "the quick"
    assert chunks[-1].choices[0].finish_reason == "length"


def test_models_lists_configured_models_owned_by_echo(client: OpenAI) -> None:
    models = client.models.list().data
    assert [m.id for m in models] == ["echo-1", "echo-2"]
    assert {m.owned_by for m in models} == {"echo"}


def test_health_root_and_errors_use_the_openai_envelope(echo: EchoProc) -> None:
    assert httpx.get(echo.url + "/health").json() == {"status": "ok"}
    assert httpx.get(echo.url + "/").json()["name"] == "unigw-echo"
    missing = httpx.get(echo.url + "/v1/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = httpx.get(echo.url + "/v1/chat/completions")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert set(wrong.json()["error"]) == {"message", "type", "param", "code"}  # OpenAI ErrorResponse


def test_malformed_json_answers_400(echo: EchoProc) -> None:
    answer = httpx.post(echo.base_url + "/chat/completions", content=b"{not json")
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"
    no_messages = httpx.post(echo.base_url + "/chat/completions", json={"model": "echo-1"})
    assert no_messages.status_code == 400


# -- knobs ------------------------------------------------------------------------------------


def test_api_key_is_required_on_v1_only(spawn: Callable[..., EchoProc]) -> None:
    echo = spawn("--api-key", "sk-secret")
    with pytest.raises(openai.AuthenticationError):
        client_for(echo, "sk-wrong").models.list()
    assert client_for(echo, "sk-secret").models.list().data
    assert httpx.get(echo.url + "/health").status_code == 200
    assert httpx.get(echo.url + "/_echo/stats").status_code == 200


def test_latency_delays_the_answer_and_the_first_chunk(spawn: Callable[..., EchoProc]) -> None:
    client = client_for(spawn("--latency", "0.3"))
    started = time.monotonic()
    client.chat.completions.create(model="echo-1", messages=[user("hi")])
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    next(iter(client.chat.completions.create(model="echo-1", messages=[user("hi")],
                                             stream=True)))
    assert time.monotonic() - started >= 0.3


def test_chunk_delay_spreads_chunks_over_time(spawn: Callable[..., EchoProc]) -> None:
    client = client_for(spawn("--chunk-delay", "0.05"))
    stamps = [time.monotonic() for _ in client.chat.completions.create(
        model="echo-1", messages=[user("a b c d e f")], stream=True)]
    assert len(stamps) == 8
    assert stamps[-1] - stamps[0] >= (len(stamps) - 1) * 0.05 * 0.5


def test_error_rate_one_answers_500(spawn: Callable[..., EchoProc]) -> None:
    echo = spawn("--error-rate", "1")
    with pytest.raises(openai.InternalServerError):
        client_for(echo).chat.completions.create(model="echo-1", messages=[user("hi")])


def test_error_rate_is_reproducible_with_a_seed(spawn: Callable[..., EchoProc]) -> None:
    def statuses(echo: EchoProc) -> list[int]:
        return [httpx.get(echo.base_url + "/models").status_code for _ in range(20)]

    first = statuses(spawn("--error-rate", "0.5", "--seed", "7"))
    assert first == statuses(spawn("--error-rate", "0.5", "--seed", "7"))
    assert set(first) == {200, 500}


def test_status_429_carries_retry_after(spawn: Callable[..., EchoProc]) -> None:
    echo = spawn("--status", "429", "--retry-after", "7")
    answer = httpx.post(echo.base_url + "/chat/completions", json={"messages": [user("x")]})
    assert answer.status_code == 429 and answer.headers["retry-after"] == "7"
    assert answer.json()["error"]["type"] == "rate_limit_error"
    with pytest.raises(openai.RateLimitError):
        client_for(echo).models.list()


def test_crash_after_exits_with_code_3(spawn: Callable[..., EchoProc]) -> None:
    echo = spawn("--crash-after", "2")
    client = client_for(echo)
    for _ in range(2):
        client.chat.completions.create(model="echo-1", messages=[user("hi")])
    assert echo.wait(timeout=5) == 3


def test_crash_mid_stream_cuts_the_connection(spawn: Callable[..., EchoProc]) -> None:
    echo = spawn("--crash-mid-stream", "2")
    received: list[str] = []
    with pytest.raises((httpx.HTTPError, openai.APIError)):
        for chunk in client_for(echo).chat.completions.create(
                model="echo-1", messages=[user("a b c d e")], stream=True):
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "a b "
    assert echo.wait(timeout=5) == 3


def test_hang_after_stops_answering_everything_but_echo_routes(
        spawn: Callable[..., EchoProc]) -> None:
    echo = spawn("--hang-after", "1")
    client = client_for(echo, timeout=0.5)
    client.models.list()
    with pytest.raises(openai.APITimeoutError):
        client.models.list()
    with pytest.raises(httpx.TimeoutException):
        httpx.get(echo.url + "/health", timeout=0.5)
    assert httpx.get(echo.url + "/_echo/stats").json()["in_flight"] == 1
    assert httpx.post(echo.url + "/_echo/config", json={"hang": False}).status_code == 200
    assert httpx.get(echo.url + "/health", timeout=2).status_code == 200


def test_hang_after_zero_hangs_from_the_start(spawn: Callable[..., EchoProc]) -> None:
    echo = spawn("--hang-after", "0", wait="port")
    with pytest.raises(httpx.TimeoutException):
        httpx.get(echo.url + "/health", timeout=0.3)
    httpx.post(echo.url + "/_echo/config", json={"hang": False})  # lets it stop at once


def test_exit_at_start_prints_and_exits_with_the_code(spawn: Callable[..., EchoProc]) -> None:
    echo = spawn("--exit-at-start", "7", wait="none")
    assert echo.wait(timeout=10) == 7
    assert "echo: exiting at start with code 7" in echo.stderr_text()


def test_strict_models_rejects_unknown_models(spawn: Callable[..., EchoProc]) -> None:
    client = client_for(spawn("--strict-models", "--models", "m1"))
    assert client.chat.completions.create(model="m1", messages=[user("x")]).model == "m1"
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4", messages=[user("x")])
    assert caught.value.code == "model_not_found"


def test_config_route_changes_knobs_at_run_time(spawn: Callable[..., EchoProc]) -> None:
    echo = spawn()
    client = client_for(echo)
    knobs = httpx.post(echo.url + "/_echo/config", json={"status": 503, "latency": 0.1}).json()
    assert knobs["status"] == 503 and knobs["latency"] == 0.1
    with pytest.raises(openai.InternalServerError):
        client.models.list()
    httpx.post(echo.url + "/_echo/config", json={"status": None, "latency": 0})
    assert client.models.list().data
    bad = httpx.post(echo.url + "/_echo/config", json={"error_rate": 2})
    assert bad.status_code == 400 and "error_rate" in bad.json()["error"]["message"]


def test_stats_count_a_stream_the_client_abandoned(spawn: Callable[..., EchoProc]) -> None:
    echo = spawn("--chunk-delay", "0.2")
    stream = client_for(echo).chat.completions.create(
        model="echo-1", messages=[user("a b c d e f g h")], stream=True)
    iterator = iter(stream)
    next(iterator), next(iterator)
    stream.close()
    deadline = time.monotonic() + 5
    stats = httpx.get(echo.url + "/_echo/stats").json()
    while stats["streams_cancelled"] != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
        stats = httpx.get(echo.url + "/_echo/stats").json()
    assert stats["streams_cancelled"] == 1
    assert (stats["streams_started"], stats["streams_completed"]) == (1, 0)
    assert stats["requests"] == 1 and stats["in_flight"] == 0
    assert stats["by_path"]["/v1/chat/completions"] == 1 and stats["pid"] == echo.proc.pid


def test_env_vars_set_knobs_and_flags_win(spawn: Callable[..., EchoProc]) -> None:
    echo = spawn(env={"UNIGW_ECHO_MODELS": "env-a,env-b", "UNIGW_ECHO_STATUS": "418"})
    assert httpx.get(echo.url + "/v1/models").status_code == 418
    echo = spawn("--models", "flag-model", env={"UNIGW_ECHO_MODELS": "env-a"})
    assert [m.id for m in client_for(echo).models.list().data] == ["flag-model"]
    port = free_port()
    echo = spawn(env={"PORT": str(port)}, port=port, port_flag=False)
    assert f"http://127.0.0.1:{port} (models: echo-1,echo-2)" in echo.stderr_text()


def test_ignore_sigterm_survives_sigterm(spawn: Callable[..., EchoProc]) -> None:
    echo = spawn("--ignore-sigterm")
    echo.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert echo.proc.poll() is None
    assert httpx.get(echo.url + "/health").status_code == 200
    echo.stop(timeout=0.5)
    assert echo.proc.returncode == -signal.SIGKILL


def test_spawn_child_puts_a_sleeper_in_the_same_process_group(
        spawn: Callable[..., EchoProc]) -> None:
    echo = spawn("--spawn-child")
    found = re.search(r"spawned child pid (\d+)", echo.stderr_text())
    assert found
    child = int(found.group(1))
    assert os.getpgid(child) == os.getpgid(echo.proc.pid)
    echo.stop()
    assert not alive(child)


def test_startup_delay_postpones_the_port(spawn: Callable[..., EchoProc]) -> None:
    started = time.monotonic()
    spawn("--startup-delay", "0.5")
    assert time.monotonic() - started >= 0.5


def test_bad_knob_value_is_a_usage_error() -> None:
    done = subprocess.run([sys.executable, "-m", "supervisor.demo.echo", "--latency", "-1"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=20)
    assert done.returncode == 2 and "--latency" in done.stderr
