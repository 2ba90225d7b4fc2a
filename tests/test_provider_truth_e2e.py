"""Provider truth end to end: every failure shape of the real providers (the echo provider's
``--failure SHAPE``, byte for byte), streaming and not, through the real gateway app, with the
official ``openai``, ``anthropic`` and ``google-genai`` clients.

The providers are echo processes; the gateway is ``gateway.app.create_app`` served by uvicorn
on a real socket (tests/support/replay.py ``Bench``), in this process so a test can read the
gateway's record of each failure: :func:`recorded` is the one place that reads it, from the
user-visible surface (``GET /providers``: ``serving``, ``serving_class``, ``serving_error``,
``failures``; ``/metrics``' ``unigw_attempts_total`` too).

One bench serves the whole module: ``first`` is tried first (``model_specific``) and fails in
the shape a test sets at run time (``POST /_echo/config``); ``second`` answers.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from support.echo import REPO_ROOT, EchoProc, start_echo
from support.gateway import parse_prometheus
from support.replay import Bench

from gateway.errors import FailureClass
from gateway.stats import Serving
from supervisor.config import load

MODEL = "m"
PROMPT = "the answer is here"
TIMEOUT = 1.5  # first_byte_timeout and first_content_timeout of the bench
SLOW = 3.0  # slow-first-content's delay: past TIMEOUT
# what the shipped providers.yaml gives k2think2api3, whose errors come as content
K2_PATTERNS = load(REPO_ROOT / "providers.yaml", environ={}).provider(  # type: ignore[union-attr]
    "k2think2api3").error_patterns

UPSTREAM, TIMED_OUT = FailureClass.UPSTREAM_ERROR, FailureClass.TIMEOUT
# shape → {stream: (class, what the gateway records: the provider's own message where it gave one)}
SHAPES: dict[str, dict[bool, tuple[FailureClass, str]]] = {
    "zai-python": {
        False: (UPSTREAM, "zai 请求处理 错误: [Errno -3] Temporary failure in name resolution"),
        True: (UPSTREAM, "Stream processing failed after 5 retries: [Errno -3]")},
    "k2-role-then-close": {
        False: (UPSTREAM, "the provider closed the connection mid-body"),
        True: (UPSTREAM, "the stream broke before any content")},
    "k2think-500": {
        False: (UPSTREAM, "非流式请求失败: [Errno -3] Temporary failure in name resolution"),
        True: (UPSTREAM, "请求处理失败: [Errno -3] Temporary failure in name resolution")},
    "finish-error": {
        False: (UPSTREAM, "非流式请求失败: [Errno -3] Temporary failure in name resolution"),
        True: (UPSTREAM, 'finish_reason "error"')},
    "html-502": {s: (UPSTREAM, "上游请求失败: HTTPSConnectionPool(host='chat.z.ai'")
                 for s in (False, True)},
    "text-502": {s: (UPSTREAM, "Failed to call upstream") for s in (False, True)},
    "ztoapits-502": {
        False: (UPSTREAM, "Failed to process non-stream response"),
        True: (UPSTREAM, "Failed to process stream response")},
    "error-in-200": {s: (UPSTREAM, "upstream error: [Errno -3] Temporary failure")
                     for s in (False, True)},
    "html-200": {s: (UPSTREAM, "<title>Just a moment...</title>") for s in (False, True)},
    "error-as-content": {s: (UPSTREAM, "🔄 tokens强制刷新已启动，请稍后再试") for s in (False, True)},
    "slow-first-content": {
        False: (TIMED_OUT, f"no answer within {TIMEOUT:g}s"),
        True: (TIMED_OUT, f"no content within first_content_timeout ({TIMEOUT:g}s)")},
}


class EchoSlot:
    """An echo provider process in a :class:`Bench`'s provider slot (Bench starts and stops)."""

    def __init__(self, *args: str) -> None:
        self.args = ("--models", MODEL, *args)
        self.port = 0
        self.proc: EchoProc | None = None

    async def start(self) -> None:
        self.proc = await asyncio.to_thread(start_echo, *self.args)
        self.port = self.proc.port

    async def stop(self) -> None:
        if self.proc is not None:
            await asyncio.to_thread(self.proc.stop, 3)

    def configure(self, **knobs: Any) -> None:
        assert self.proc is not None
        r = httpx.post(self.proc.url + "/_echo/config", json=knobs, timeout=5)
        assert r.status_code == 200, r.text

    def stats(self) -> dict[str, Any]:
        assert self.proc is not None
        return httpx.get(self.proc.url + "/_echo/stats", timeout=5).json()

    def chats(self) -> int:
        return int(self.stats()["by_path"].get("/v1/chat/completions", 0))


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    providers = {"first": EchoSlot("--failure-delay", "0", "--health-fail-after", "1000000"),
                 "second": EchoSlot()}
    fields = {"first": {"error_patterns": list(K2_PATTERNS)}}
    with Bench(tmp_path_factory.mktemp("truth"), providers, fields,  # type: ignore[arg-type]
               strategy="model_specific", routes={MODEL: ["first", "second"]},
               first_byte_timeout=TIMEOUT, first_content_timeout=TIMEOUT) as b:
        yield b


def slot(bench: Bench, name: str) -> EchoSlot:
    provider = bench.providers[name]
    assert isinstance(provider, EchoSlot)
    return provider


@pytest.fixture
def first(bench: Bench) -> Iterator[EchoSlot]:
    """The provider tried first; back to answering normally after the test."""
    yield slot(bench, "first")
    slot(bench, "first").configure(failure=None, fail_first=None, failure_delay=0, status=None)
    slot(bench, "second").configure(failure=None, status=None)


def row(bench: Bench, name: str) -> dict[str, Any]:
    """``name``'s row of ``GET /providers``, as ``unigw status --json`` and the dashboard see it."""
    with bench.http() as http:
        rows = http.get("/providers").json()["providers"]
    return next(r for r in rows if r["name"] == name)


def recorded(bench: Bench, name: str) -> tuple[int, FailureClass | None, str, Serving]:
    """What the gateway shows of ``name``'s failures in its ``GET /providers`` row: (failed
    attempts, class and message of the last one, serving)."""
    r = row(bench, name)
    kind = r["serving_class"]
    return (sum(r["failures"].values()), FailureClass(kind) if kind else None,
            r["serving_error"] or "", Serving(r["serving"]))


def errors_row(bench: Bench, name: str) -> int:
    return int(row(bench, name)["errors"])


def attempts(bench: Bench, name: str, outcome: str) -> float:
    """``unigw_attempts_total`` of ``name`` and ``outcome`` in ``GET /metrics``."""
    with bench.http() as http:
        samples = parse_prometheus(http.get("/metrics").text)
    return next(v for labels, v in samples["unigw_attempts_total"]
                if labels == {"provider": name, "outcome": outcome})


# -- the three clients: one call each, (reply text, provider that answered or None) ----------

def ask_openai(bench: Bench, stream: bool) -> str:
    client = bench.client()
    messages: Any = [{"role": "user", "content": PROMPT}]
    if stream:
        chunks = client.chat.completions.create(model=MODEL, messages=messages, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return client.chat.completions.create(model=MODEL, messages=messages).choices[0].message.content or ""


def claude(bench: Bench) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=bench.url, api_key="unused", max_retries=0, timeout=20)


def ask_anthropic(bench: Bench, stream: bool) -> str:
    messages: Any = [{"role": "user", "content": PROMPT}]
    if stream:
        with claude(bench).messages.stream(model=MODEL, max_tokens=50, messages=messages) as s:
            return "".join(s.text_stream)
    message = claude(bench).messages.create(model=MODEL, max_tokens=50, messages=messages)
    return "".join(b.text for b in message.content if b.type == "text")


def gemini(bench: Bench) -> genai.Client:
    options = types.HttpOptions(base_url=bench.url, timeout=20_000,
                                retry_options=types.HttpRetryOptions(attempts=1))
    return genai.Client(api_key="unused", http_options=options)


def ask_gemini(bench: Bench, stream: bool) -> str:
    client = gemini(bench)
    try:
        if stream:
            return "".join(c.text or "" for c in client.models.generate_content_stream(
                model=MODEL, contents=PROMPT))
        return client.models.generate_content(model=MODEL, contents=PROMPT).text or ""
    finally:
        client.close()


CLIENTS: dict[str, Callable[[Bench, bool], str]] = {
    "openai": ask_openai, "anthropic": ask_anthropic, "google-genai": ask_gemini}


@pytest.mark.parametrize("client", list(CLIENTS))
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_each_failure_shape_fails_over_unseen_and_is_recorded_with_its_class_and_message(
        bench: Bench, first: EchoSlot, shape: str, stream: bool, client: str) -> None:
    first.configure(failure=shape, failure_delay=SLOW if shape == "slow-first-content" else 0)
    second = slot(bench, "second")
    failed_before, answered_before = first.stats()["chats_failed"], second.chats()
    count_before, errors_before = recorded(bench, "first")[0], errors_row(bench, "first")
    kind, message = SHAPES[shape][stream]
    metric_before = attempts(bench, "first", kind.value)

    assert CLIENTS[client](bench, stream) == PROMPT  # the second's answer, and no error

    assert first.stats()["chats_failed"] == failed_before + 1
    assert second.chats() == answered_before + 1
    count, last_kind, last_message, serving = recorded(bench, "first")
    assert (count, last_kind, serving) == (count_before + 1, kind, Serving.FAILING)
    assert message in last_message
    assert errors_row(bench, "first") == errors_before + 1
    assert attempts(bench, "first", kind.value) == metric_before + 1
    assert recorded(bench, "second")[3] is Serving.OK


# -- a good answer after a failure: serving is ok again, and the answer is counted ------------

@pytest.mark.parametrize(("client", "stream"), [
    ("openai", False), ("openai", True), ("anthropic", False), ("google-genai", False),
    ("anthropic", True), ("google-genai", True)])
def test_a_good_answer_after_a_failure_shows_serving_ok_and_counts_as_ok(
        bench: Bench, first: EchoSlot, client: str, stream: bool) -> None:
    first.configure(failure="text-502", fail_first=1)
    assert CLIENTS[client](bench, stream) == PROMPT  # first fails, second answers
    assert recorded(bench, "first")[3] is Serving.FAILING
    ok_before = attempts(bench, "first", "ok")

    assert CLIENTS[client](bench, stream) == PROMPT  # first answers this time

    count, kind, message, serving = recorded(bench, "first")
    assert (kind, serving) == (FailureClass.UPSTREAM_ERROR, Serving.OK)  # the failure stays
    assert "Failed to call upstream" in message
    assert attempts(bench, "first", "ok") == ok_before + 1


# -- every candidate fails before content: one 502 naming each ---------------------------------

def both_named(message: str) -> None:
    assert "every provider tried failed (2)" in message
    assert "first: HTTP 502 (Failed to call upstream) [upstream_error]" in message
    assert "second: " in message and "the provider closed the connection mid-body" in message


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_every_candidate_failing_is_one_502_naming_each_in_each_clients_shape(
        bench: Bench, first: EchoSlot, stream: bool) -> None:
    first.configure(failure="text-502")
    slot(bench, "second").configure(failure="k2-role-then-close", failure_delay=0)
    with pytest.raises(openai.APIStatusError) as oa:
        ask_openai(bench, stream)
    assert oa.value.status_code == 502
    both_named(oa.value.message)
    with pytest.raises(anthropic.APIStatusError) as an:
        ask_anthropic(bench, stream)
    body = an.value.body
    assert an.value.status_code == 502 and isinstance(body, dict)
    assert body["type"] == "error" and body["error"]["type"] == "api_error"
    both_named(body["error"]["message"])
    with pytest.raises(genai_errors.APIError) as ge:
        ask_gemini(bench, stream)
    assert (ge.value.code, ge.value.status) == (502, "INTERNAL")
    both_named(ge.value.message or "")


# -- a stream that breaks after content ---------------------------------------------------------

def test_a_stream_broken_after_content_ends_with_an_error_event_and_no_done(
        tmp_path: Path) -> None:
    providers = {"crash": EchoSlot("--crash-mid-stream", "2", "--chunk-delay", "0.01")}
    with Bench(tmp_path, providers) as b:  # type: ignore[arg-type]
        body = {"model": MODEL, "stream": True,
                "messages": [{"role": "user", "content": "one two three four five"}]}
        with b.http() as http, http.stream("POST", "/v1/chat/completions", json=body) as r:
            assert r.status_code == 200
            raw = b"".join(r.iter_bytes())
        events = [e for e in raw.split(b"\n\n") if e]
        assert b"[DONE]" not in raw
        assert b'"content": "one "' in raw.replace(b'":"', b'": "')  # content came first
        assert events[-1].startswith(b"event: error\ndata: ")
        error = json.loads(events[-1].split(b"data: ", 1)[1])["error"]
        assert "crash" in error["message"]
        count, kind, message, serving = recorded(b, "crash")
        assert (count, kind, serving) == (1, FailureClass.UPSTREAM_ERROR, Serving.FAILING)
        assert message


# -- a provider's 400 -----------------------------------------------------------------------

def test_a_providers_400_reaches_each_client_as_400_with_no_failover_and_no_ejection(
        bench: Bench, first: EchoSlot) -> None:
    first.configure(status=400)
    second = slot(bench, "second")
    answered_before = second.chats()
    stats = bench.stats("first")
    serving_before, consecutive_before = recorded(bench, "first")[3], stats.consecutive_failures
    with pytest.raises(openai.BadRequestError) as oa:
        ask_openai(bench, False)
    assert "echo: forced status 400" in oa.value.message
    with pytest.raises(anthropic.BadRequestError) as an:
        ask_anthropic(bench, True)
    assert "echo: forced status 400" in str(an.value.body)
    with pytest.raises(genai_errors.APIError) as ge:
        ask_gemini(bench, False)
    assert ge.value.code == 400 and "echo: forced status 400" in (ge.value.message or "")
    for answered in (oa.value.response, an.value.response, ge.value.response):
        assert answered.headers["x-unigw-provider"] == "first"  # whose verdict it is
    assert second.chats() == answered_before  # no failover
    shown = row(bench, "first")
    assert shown["serving_class"] == "client_error"
    assert "forced status 400" in shown["serving_error"]
    assert shown["failures"]["client_error"] == 3
    assert stats.last_failure is not None and stats.last_failure.blamed is False
    assert stats.ejected_until <= time.monotonic() and not stats.auth_blocked  # not ejected
    assert stats.consecutive_failures == consecutive_before  # no verdict on the provider
    assert Serving(shown["serving"]) is serving_before
