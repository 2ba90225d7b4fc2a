"""The echo provider's failure shapes: real providers' failed answers, byte for byte.

Expected bytes are written out here from the real programs' source (see
supervisor/demo/failures.py); only ids and clocks are masked.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator

import httpx
import pytest
from openai import OpenAI
from support.echo import REPO_ROOT, EchoProc, spawn_echoes, start_echo

pytestmark = pytest.mark.timeout(60)

ERRNO = "[Errno -3] Temporary failure in name resolution"
CHAT = {"model": "k2-think", "messages": [{"role": "user", "content": "hi"}]}
STREAM = {**CHAT, "stream": True}


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoProc]:
    proc = start_echo("--failure-delay", "0")
    yield proc
    proc.stop()


@pytest.fixture
def fail(echo: EchoProc) -> Iterator[Callable[..., None]]:
    """Switch the shared provider to a failure shape at run time; back to normal afterwards."""

    def _fail(shape: str | None, **knobs: object) -> None:
        answer = httpx.post(echo.url + "/_echo/config", json={"failure": shape, **knobs})
        assert answer.status_code == 200, answer.text

    yield _fail
    _fail(None, fail_first=None, health="ok", health_fail_after=3)


spawn = pytest.fixture(spawn_echoes, name="spawn")


def chat(echo: EchoProc, body: dict[str, object]) -> httpx.Response:
    return httpx.post(echo.base_url + "/chat/completions", json=body, timeout=10)


def masked(body: bytes) -> bytes:
    """``body`` with its chunk ids and clocks replaced by fixed values."""
    body = re.sub(rb'"chatcmpl-\d+"', b'"chatcmpl-X"', body)
    return re.sub(rb'("(?:created|timestamp)": ?)\d+', rb"\g<1>0", body)


def k2_chunk(delta: str, finish: str) -> bytes:
    """One k2think2api3 / zsuroy chunk as Python's json.dumps writes it (masked)."""
    return (b'data: {"id": "chatcmpl-X", "object": "chat.completion.chunk", "created": 0, '
            b'"model": "k2-think", "choices": [{"index": 0, "delta": ' + delta.encode()
            + b', "finish_reason": ' + finish.encode() + b"}]}\n\n")


def raw_exchange(echo: EchoProc, body: dict[str, object]) -> bytes:
    """POST ``body`` on a raw socket and read until the server closes the connection."""
    payload = json.dumps(body).encode()
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Content-Type: application/json\r\nContent-Length: "
               + str(len(payload)).encode() + b"\r\n\r\n" + payload)
    with socket.create_connection(("127.0.0.1", echo.port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


# -- each real program's shape ----------------------------------------------------------------


def test_zai_python_stream_is_a_200_with_an_error_event_then_done(
        echo: EchoProc, fail: Callable[..., None]) -> None:
    fail("zai-python")
    answer = chat(echo, STREAM)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert answer.headers["access-control-allow-origin"] == "*"
    assert answer.content == (
        b'data: {"error": {"message": "Stream processing failed after 5 retries: '
        + ERRNO.encode() + b'", "type": "stream_error"}}\n\ndata: [DONE]\n\n')


def test_zai_python_non_stream_is_a_500_detail_in_utf8(
        echo: EchoProc, fail: Callable[..., None]) -> None:
    fail("zai-python")
    answer = chat(echo, CHAT)
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/json"
    assert answer.content == ('{"detail":"zai 请求处理 错误: ' + ERRNO + '"}').encode()


@pytest.mark.parametrize("stream", [False, True])
def test_k2think2api_sends_the_role_chunk_then_drops_the_connection(
        echo: EchoProc, fail: Callable[..., None], stream: bool) -> None:
    fail("k2-role-then-close")
    received = raw_exchange(echo, {**CHAT, "stream": stream})
    head, _, framed = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\ncontent-type: text/event-stream; charset=utf-8\r\n" in head
    assert b"\r\ntransfer-encoding: chunked" in head
    size, _, rest = framed.partition(b"\r\n")
    event = rest[: int(size, 16)]
    assert rest[int(size, 16):] == b"\r\n"  # one chunk, no terminating 0-chunk: cut off
    assert re.fullmatch(
        rb'data: \{"id":"chatcmpl-[0-9a-f]{32}","object":"chat.completion.chunk",'
        rb'"created":\d+,"model":"k2-think","choices":\[\{"delta":\{"role":"assistant"\},'
        rb'"index":0,"finish_reason":null\}\]\}\n\n', event)


def test_k2think2api3_non_stream_is_a_500_detail_error(
        echo: EchoProc, fail: Callable[..., None]) -> None:
    fail("k2think-500")
    answer = chat(echo, CHAT)
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/json"
    assert answer.content == ('{"detail":{"error":{"message":"非流式请求失败: ' + ERRNO
                              + '","type":"api_error"}}}').encode()


def test_k2think2api3_stream_carries_the_error_as_content_then_finish_error(
        echo: EchoProc, fail: Callable[..., None]) -> None:
    fail("k2think-500")
    answer = chat(echo, STREAM)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert answer.headers["x-accel-buffering"] == "no"
    content = json.dumps({"content": "\n\n请求处理失败: " + ERRNO})
    assert masked(answer.content) == (
        k2_chunk('{"role": "assistant", "content": ""}', "null") + k2_chunk(content, "null")
        + k2_chunk("{}", '"error"') + b"data: [DONE]\n\n")


def test_k2think2api3_without_its_token_fails_with_its_attribute_error(
        echo: EchoProc, fail: Callable[..., None]) -> None:
    fail("k2think-500", health_fail_after=1)
    assert b"api_error" in chat(echo, CHAT).content  # the failure that marks the token bad
    for body in (CHAT, STREAM):
        answer = chat(echo, body)
        assert answer.status_code == 500
        assert answer.content == (
            b'{"detail":{"error":{"message":"type object \'APIConstants\' has no attribute '
            b'\'HTTP_SERVICE_UNAVAILABLE\'","type":"api_error"}}}')


def test_zsuroy_stream_finishes_with_error_then_done(
        echo: EchoProc, fail: Callable[..., None]) -> None:
    fail("finish-error")
    answer = chat(echo, STREAM)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert masked(answer.content) == (
        k2_chunk('{"role": "assistant", "content": ""}', "null")
        + k2_chunk("{}", '"error"') + b"data: [DONE]\n\n")
    assert chat(echo, CHAT).status_code == 500


@pytest.mark.parametrize("body", [CHAT, STREAM])
def test_zai2api_answers_502_html_with_the_upstream_error(
        echo: EchoProc, fail: Callable[..., None], body: dict[str, object]) -> None:
    fail("html-502")
    answer = chat(echo, body)
    assert answer.status_code == 502
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["access-control-allow-methods"] == "GET, POST, OPTIONS"
    text = answer.content.decode()
    assert text.startswith("上游请求失败: HTTPSConnectionPool(host='chat.z.ai', port=443)")
    assert text.endswith(f"Failed to resolve 'chat.z.ai' ({ERRNO})\"))")


@pytest.mark.parametrize("body", [CHAT, STREAM])
def test_go_proxies_answer_502_plain_text_failed_to_call_upstream(
        echo: EchoProc, fail: Callable[..., None], body: dict[str, object]) -> None:
    fail("text-502")
    answer = chat(echo, body)
    assert answer.status_code == 502
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.content == b"Failed to call upstream\n"


def test_ztoapits_answers_502_naming_the_stream_or_non_stream_path(
        echo: EchoProc, fail: Callable[..., None]) -> None:
    fail("ztoapits-502")
    streamed, plain = chat(echo, STREAM), chat(echo, CHAT)
    assert (streamed.status_code, plain.status_code) == (502, 502)
    assert streamed.headers["content-type"] == "text/plain;charset=UTF-8"
    assert streamed.content == b"Failed to process stream response"
    assert plain.content == b"Failed to process non-stream response"


# -- failures that look like success ----------------------------------------------------------


@pytest.mark.parametrize("body", [CHAT, STREAM])
def test_error_in_200_is_a_json_error_envelope_with_status_200(
        echo: EchoProc, fail: Callable[..., None], body: dict[str, object]) -> None:
    fail("error-in-200")
    answer = chat(echo, body)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.content == (b'{"error":{"message":"upstream error: ' + ERRNO.encode()
                              + b'","type":"upstream_error","code":"upstream_error"}}')


def test_html_200_is_a_page_where_json_was_expected(
        echo: EchoProc, fail: Callable[..., None]) -> None:
    fail("html-200")
    answer = chat(echo, CHAT)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.content.startswith(b"<!DOCTYPE html><html><head><title>Just a moment...")


def test_error_as_content_is_a_well_formed_completion_saying_an_error(
        echo: EchoProc, fail: Callable[..., None]) -> None:
    fail("error-as-content")
    client = OpenAI(base_url=echo.base_url, api_key="x", max_retries=0)
    reply = client.chat.completions.create(model="k2-think", messages=[{"role": "user",
                                                                        "content": "hi"}])
    assert reply.choices[0].message.content == "🔄 tokens强制刷新已启动，请稍后再试"
    assert reply.choices[0].finish_reason == "stop"
    chunks = list(client.chat.completions.create(
        model="k2-think", messages=[{"role": "user", "content": "hi"}], stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "🔄 tokens强制刷新已启动，请稍后再试"


def test_slow_first_content_delivers_the_normal_answer(
        echo: EchoProc, fail: Callable[..., None]) -> None:
    fail("slow-first-content")
    client = OpenAI(base_url=echo.base_url, api_key="x", max_retries=0)
    chunks = list(client.chat.completions.create(
        model="echo-1", messages=[{"role": "user", "content": "late words"}], stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "late words"
    assert chat(echo, CHAT).json()["choices"][0]["message"]["content"] == "hi"


# -- when: first N, run-time switching, flags and env -----------------------------------------


def test_fail_first_n_fails_that_many_chat_calls_then_answers(
        spawn: Callable[..., EchoProc]) -> None:
    echo = spawn("--failure", "text-502", "--fail-first", "2")
    assert [chat(echo, CHAT).status_code for _ in range(4)] == [502, 502, 200, 200]
    assert httpx.get(echo.url + "/_echo/stats").json()["chats_failed"] == 2
    assert httpx.get(echo.base_url + "/models").status_code == 200  # only chat calls fail


def test_config_switches_shapes_and_restarts_the_first_n_count(
        echo: EchoProc, fail: Callable[..., None]) -> None:
    fail("text-502", fail_first=1)
    assert [chat(echo, CHAT).status_code for _ in range(2)] == [502, 200]
    fail("ztoapits-502")  # a new shape counts again from zero
    assert [chat(echo, CHAT).status_code for _ in range(2)] == [502, 200]
    fail(None)
    assert chat(echo, CHAT).status_code == 200
    knobs = httpx.post(echo.url + "/_echo/config", json={"failure": "html-502"}).json()
    assert knobs["failure"] == "html-502" and knobs["fail_first"] == 1  # knobs persist
    bad = httpx.post(echo.url + "/_echo/config", json={"failure": "no-such-shape"})
    assert bad.status_code == 400 and "k2-role-then-close" in bad.json()["error"]["message"]


def test_failure_knobs_come_from_the_environment_too(spawn: Callable[..., EchoProc]) -> None:
    echo = spawn(env={"UNIGW_ECHO_FAILURE": "ztoapits-502", "UNIGW_ECHO_FAIL_FIRST": "1"})
    assert [chat(echo, CHAT).status_code for _ in range(2)] == [502, 200]


def test_unknown_failure_shape_is_a_usage_error() -> None:
    done = subprocess.run([sys.executable, "-m", "supervisor.demo.echo", "--failure", "nope"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=20)
    assert done.returncode == 2 and "--failure" in done.stderr and "zai-python" in done.stderr


# -- the lying /health ------------------------------------------------------------------------


def test_k2think2api3_health_stays_healthy_while_its_token_goes_bad(
        spawn: Callable[..., EchoProc]) -> None:
    echo = spawn("--health", "k2think2api3", "--failure", "k2think-500", "--failure-delay", "0")

    def tokens() -> dict[str, object]:
        answer = httpx.get(echo.url + "/health")
        assert answer.status_code == 200 and answer.json()["status"] == "healthy"
        return answer.json()["tokens"]  # type: ignore[no-any-return]

    assert tokens() == {"total": 1, "active": 1, "inactive": 0, "consecutive_failures": 0,
                        "auto_update_enabled": False}
    for failed in (1, 2):
        assert chat(echo, CHAT).status_code == 500
        assert tokens()["active"] == 1 and tokens()["consecutive_failures"] == failed
    assert chat(echo, CHAT).status_code == 500
    assert tokens() == {"total": 1, "active": 0, "inactive": 1, "consecutive_failures": 3,
                        "auto_update_enabled": False}


def test_k2think2api3_health_body_bytes(spawn: Callable[..., EchoProc]) -> None:
    echo = spawn("--health", "k2think2api3")
    answer = httpx.get(echo.url + "/health")
    assert answer.headers["content-type"] == "application/json"
    assert masked(answer.content) == (
        '{"status":"healthy","timestamp":0,"config":{"tool_support":true,'
        '"debug_logging":false,"note":"思考内容输出现在通过模型名控制"},"tokens":{"total":1,'
        '"active":1,"inactive":0,"consecutive_failures":0,"auto_update_enabled":false}}'
    ).encode()


def test_health_shape_and_token_reset_at_run_time(echo: EchoProc,
                                                  fail: Callable[..., None]) -> None:
    fail("text-502", health="k2think2api3", health_fail_after=1)
    chat(echo, CHAT)
    assert httpx.get(echo.url + "/health").json()["tokens"]["active"] == 0
    fail("text-502", health_fail_after=2)  # a fresh token
    assert httpx.get(echo.url + "/health").json()["tokens"]["active"] == 1
    fail(None, health="ok")
    assert httpx.get(echo.url + "/health").json() == {"status": "ok"}


# -- a bad request is a 400, never a 5xx of its own -------------------------------------------


@pytest.mark.parametrize("body", [
    {**STREAM, "stream_options": "x"},
    {**STREAM, "stream_options": ["include_usage"]},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
])
def test_malformed_fields_answer_400_in_the_openai_envelope(
        echo: EchoProc, body: dict[str, object]) -> None:
    answer = chat(echo, body)
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"


def test_bad_stream_options_on_completions_and_deep_json_answer_400(echo: EchoProc) -> None:
    legacy = httpx.post(echo.base_url + "/completions",
                        json={"prompt": "x", "stream": True, "stream_options": 1})
    assert legacy.status_code == 400
    deep = httpx.post(echo.base_url + "/chat/completions", content=b"[" * 100_000)
    assert deep.status_code == 400 and deep.json()["error"]["code"] == "invalid_json"
