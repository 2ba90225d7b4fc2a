"""Provider truth: answers that look like success but are failures fail over, unseen by the
client; each failure is classified and reacted to. Real sockets: replaying providers in front of
the real gateway app (tests/support/replay.py), and the official openai client."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import openai
import pytest
from support.replay import (
    HEAD_SSE,
    MODEL,
    ROLE,
    Bench,
    Replay,
    Step,
    chunk,
    completion,
    event,
    good_stream,
    head,
)

from gateway.errors import FailureClass, ProviderRejected
from gateway.stats import Serving

MESSAGES = [{"role": "user", "content": "hi"}]
ORDER = {"strategy": "model_specific", "routes": {MODEL: ["bad", "good"]}}
ZAI_ERROR = {"error": {"message": "Stream processing failed after 5 retries: [Errno -3]",
                       "type": "stream_error"}}


def plain(status: int, body: bytes, content_type: str = "application/json", **h: str,
          ) -> list[Step]:
    return [head(status, content_type, **h), body]


def stream_text(bench: Bench) -> str:
    stream = bench.client().chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def plain_text(bench: Bench) -> str:
    answer = bench.client().chat.completions.create(model=MODEL, messages=MESSAGES)
    return answer.choices[0].message.content or ""


STREAM_SHAPES = {
    "error object then [DONE] (z.ai2api_python)": (
        [HEAD_SSE, 0.05, event(ZAI_ERROR), b"data: [DONE]\n\n"],
        "Stream processing failed after 5 retries"),
    "a role-only chunk then the connection closes (k2Think2Api)": (
        [HEAD_SSE, ROLE], "the stream ended before any content"),
    'finish_reason "error" then [DONE] (zsuroy/k2think2api)': (
        [HEAD_SSE, ROLE, chunk({}, "error"), b"data: [DONE]\n\n"], 'finish_reason "error"'),
    "[DONE] with nothing before it": ([HEAD_SSE, b"data: [DONE]\n\n"], "[DONE]"),
    "an SSE error event": (
        [HEAD_SSE, b": ping\n\n", b'event: error\ndata: {"message": "upstream down"}\n\n'],
        "upstream down"),
    "a 2xx HTML page": (
        [head(200, "text/html"), b"<html><body>Bad gateway at the site</body></html>"],
        "Bad gateway at the site"),
    "a chunked stream cut before content": (
        [b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n", b"%x\r\n%b\r\n" % (len(ROLE), ROLE)],
        "the stream broke before any content"),
}


@pytest.mark.parametrize("shape", list(STREAM_SHAPES))
def test_a_stream_that_fails_before_content_fails_over_unseen(tmp_path: Path, shape: str,
                                                              ) -> None:
    steps, message = STREAM_SHAPES[shape]
    with Bench(tmp_path, {"bad": Replay(stream=steps), "good": Replay()}, **ORDER) as b:
        assert stream_text(b) == "hello there"
        bad = b.stats("bad")
        assert bad.failures[FailureClass.UPSTREAM_ERROR] == 1 and bad.errors == 1
        assert bad.last_failure is not None and message in bad.last_failure.message
        assert bad.in_flight == 0
        deadline = time.monotonic() + 5  # the stream is finished just after its last byte
        while b.stats("good").in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        assert b.stats("good").in_flight == 0


PLAIN_SHAPES = {
    "a 200 JSON with an error member": (
        plain(200, json.dumps({"error": {"message": "token expired upstream"}}).encode()),
        "token expired upstream"),
    "a 200 JSON without choices": (plain(200, b'{"id": "x", "object": "chat.completion"}'),
                                   "no choices"),
    'choices that all finished with "error"': (
        plain(200, json.dumps({"choices": [{"index": 0, "finish_reason": "error",
                                            "message": {"role": "assistant"}}]}).encode()),
        'finish_reason "error"'),
    "choices with no content and no tool calls": (
        plain(200, json.dumps({"choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": ""}}]}).encode()), "no content"),
    "a 2xx text/html page": (plain(200, b"<html>Service Unavailable</html>", "text/html"),
                             "Service Unavailable"),
    "an event stream to a plain request (k2Think2Api always streams)": (
        [HEAD_SSE, ROLE], "not JSON"),
    "a 500 with FastAPI's detail (z.ai2api_python)": (
        plain(500, json.dumps({"detail": "zai 请求处理 错误: [Errno -3]"}).encode()),
        "zai 请求处理 错误"),
}


@pytest.mark.parametrize("shape", list(PLAIN_SHAPES))
def test_a_plain_answer_that_is_an_error_fails_over_unseen(tmp_path: Path, shape: str) -> None:
    steps, message = PLAIN_SHAPES[shape]
    with Bench(tmp_path, {"bad": Replay(plain=steps), "good": Replay()}, **ORDER) as b:
        assert plain_text(b) == "hello there"
        bad = b.stats("bad")
        assert bad.failures[FailureClass.UPSTREAM_ERROR] == 1
        assert bad.last_failure is not None and message in bad.last_failure.message
        assert bad.serving(time.monotonic()) is Serving.FAILING
        assert b.stats("good").serving(time.monotonic()) is Serving.OK


def test_error_patterns_catch_an_error_page_sent_as_content(tmp_path: Path) -> None:
    page = "<!DOCTYPE html><title>502 Bad Gateway</title>"
    bad = Replay(stream=[HEAD_SSE, ROLE, chunk({"content": page}), b"data: [DONE]\n\n"],
                 plain=plain(200, completion(page)))
    fields = {"bad": {"error_patterns": ["/^<!DOCTYPE/", "cloudflare"]}}
    with Bench(tmp_path, {"bad": bad, "good": Replay()}, fields, **ORDER) as b:
        assert plain_text(b) == "hello there"
        assert stream_text(b) == "hello there"
        s = b.stats("bad")
        assert s.failures[FailureClass.UPSTREAM_ERROR] == 2
        assert s.last_failure is not None and "/^<!DOCTYPE/" in s.last_failure.message


def test_held_back_events_reach_the_client_unchanged_and_in_order(tmp_path: Path) -> None:
    head_sse, *events = good_stream("one two")
    sent = [b": keep-alive\n\n", *events]  # a comment and a role-only chunk are held
    with Bench(tmp_path, {"good": Replay(stream=[head_sse, *sent])}) as b, b.http() as http:
        body = {"model": MODEL, "messages": MESSAGES, "stream": True}
        with http.stream("POST", "/v1/chat/completions", json=body) as r:
            got = r.read()
        assert r.status_code == 200
        assert got == b"".join(e for e in sent if isinstance(e, bytes))


def test_no_content_within_first_content_timeout_is_a_timeout(tmp_path: Path) -> None:
    slow = Replay(stream=[HEAD_SSE, ROLE, 3.0, chunk({"content": "late"})])
    with Bench(tmp_path, {"bad": slow, "good": Replay()}, first_content_timeout=0.3,
               **ORDER) as b:
        assert stream_text(b) == "hello there"
        s = b.stats("bad")
        assert s.failures[FailureClass.TIMEOUT] == 1
        assert s.last_failure is not None and "first_content_timeout" in s.last_failure.message


@pytest.mark.parametrize("filler", [ROLE, b": keep-alive comment padding padding\n\n"])
def test_megabytes_without_content_fail_the_attempt_instead_of_being_held(
        tmp_path: Path, filler: bytes) -> None:
    flood = HEAD_SSE + filler * (10 * 2**20 // len(filler))
    with Bench(tmp_path, {"bad": Replay(stream=[flood]), "good": Replay()}, **ORDER) as b:
        assert stream_text(b) == "hello there"
        s = b.stats("bad")
        assert s.last_failure is not None and "hold_max_bytes" in s.last_failure.message


def test_every_candidate_failing_before_content_is_one_502_naming_each(tmp_path: Path) -> None:
    providers = {"bad": Replay(stream=[HEAD_SSE, ROLE]),
                 "good": Replay(stream=[HEAD_SSE, event(ZAI_ERROR), b"data: [DONE]\n\n"])}
    with Bench(tmp_path, providers, **ORDER) as b, b.http() as http:
        body = {"model": MODEL, "messages": MESSAGES, "stream": True}
        r = http.post("/v1/chat/completions", json=body)
        assert r.status_code == 502 and r.headers["content-type"] == "application/json"
        message = r.json()["error"]["message"]
        assert "bad: HTTP 200, the stream ended before any content [upstream_error]" in message
        assert "good: HTTP 200, error: Stream processing failed" in message
        with pytest.raises(openai.APIStatusError) as exc:
            stream_text(b)
        assert exc.value.status_code == 502


def test_a_stream_broken_after_content_ends_with_an_error_event(tmp_path: Path) -> None:
    cut = [b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n"]
    cut += [b"%x\r\n%b\r\n" % (len(e), e) for e in (ROLE, chunk({"content": "half"}))]
    with Bench(tmp_path, {"bad": Replay(stream=cut), "good": Replay()}, **ORDER) as b, \
            b.http() as http:
        body = {"model": MODEL, "messages": MESSAGES, "stream": True}
        with http.stream("POST", "/v1/chat/completions", json=body) as r:
            text = r.read().decode()
        assert r.status_code == 200 and '"content": "half"' in text
        assert "event: error" in text and "[DONE]" not in text
        assert b.providers["good"].posts == 0  # committed: never retried
        assert b.stats("bad").failures[FailureClass.UPSTREAM_ERROR] == 1


def test_a_providers_400_reaches_the_client_unchanged_with_no_failover(tmp_path: Path) -> None:
    refusal = json.dumps({"error": {"message": "messages too long", "type": "invalid"}})
    bad = Replay(plain=plain(400, refusal.encode()))
    with Bench(tmp_path, {"bad": bad, "good": Replay()}, eject_after=1, **ORDER) as b:
        for _ in range(3):
            with pytest.raises(openai.BadRequestError) as exc:
                plain_text(b)
            assert exc.value.response.text == refusal
        assert b.providers["good"].posts == 0 and bad.posts == 3
        s = b.stats("bad")
        assert s.failures[FailureClass.CLIENT_ERROR] == 3 and s.errors == 0
        assert s.ejected_until == 0 and s.serving(time.monotonic()) is Serving.UNKNOWN
        with pytest.raises(ProviderRejected) as rejected:
            b.run(b.gateway.forward_chat({"model": MODEL, "messages": MESSAGES}))
        assert rejected.value.status_code == 400 and "messages too long" in rejected.value.message


def test_a_401_takes_the_provider_out_until_it_restarts(tmp_path: Path) -> None:
    bad = Replay(plain=plain(401, b'{"error": {"message": "invalid token"}}'))
    with Bench(tmp_path, {"bad": bad, "good": Replay()}, **ORDER) as b:
        for _ in range(4):
            assert plain_text(b) == "hello there"
        assert bad.posts == 1
        s = b.stats("bad")
        assert s.serving(time.monotonic()) is Serving.AUTH_FAILED
        assert s.last_failure is not None and s.last_failure.kind is FailureClass.AUTH_FAILED
        assert s.last_failure.message == "invalid token"
        time.sleep(0.6)  # the restart comes later than the failure, by more than the rounding
        bad.plain = Replay().plain  # the fixed secret
        with b.http() as http:
            r = http.post("/providers/bad/restart", headers={"X-Unigw-Client": "t"})
            assert r.status_code == 200, r.text
        assert plain_text(b) == "hello there"
        assert bad.posts == 2 and not s.auth_blocked


def test_a_429_cools_the_provider_for_its_retry_after(tmp_path: Path) -> None:
    bad = Replay(plain=plain(429, b'{"error": {"message": "slow down"}}', Retry_After="30"))
    with Bench(tmp_path, {"bad": bad, "good": Replay()}, **ORDER) as b:
        for _ in range(4):
            assert plain_text(b) == "hello there"
        assert bad.posts == 1
        s = b.stats("bad")
        assert s.failures[FailureClass.RATE_LIMITED] == 1
        assert s.ejected_until > time.monotonic() + 25
        assert s.serving(time.monotonic()) is Serving.RATE_LIMITED


def test_a_rate_limit_said_in_a_200_stream_is_rate_limited(tmp_path: Path) -> None:
    said = event({"error": {"message": "Rate limit exceeded, try later"}})
    with Bench(tmp_path, {"bad": Replay(stream=[HEAD_SSE, said]), "good": Replay()},
               **ORDER) as b:
        assert stream_text(b) == "hello there"
        assert b.stats("bad").failures[FailureClass.RATE_LIMITED] == 1
        assert b.stats("bad").ejected_until > time.monotonic()


def test_a_poison_request_does_not_eject_healthy_providers(tmp_path: Path) -> None:
    poison = plain(500, b'{"error": {"message": "cannot process this content"}}')
    providers = {n: Replay(plain=poison) for n in ("a", "b", "c")}
    with Bench(tmp_path, providers, eject_after=1, retries=2) as b:
        with pytest.raises(openai.InternalServerError) as exc:
            plain_text(b)
        assert exc.value.status_code == 502
        assert "failed this request the same way" in exc.value.message
        assert all(f"{n}: HTTP 500 (cannot process this content)" in exc.value.message
                   for n in "abc")
        for name in "abc":
            s = b.stats(name)
            assert s.ejected_until == 0 and s.consecutive_failures == 0 and s.errors == 0
            assert s.failures[FailureClass.UPSTREAM_ERROR] == 1
            assert s.last_failure is not None and not s.last_failure.blamed
        for replay in providers.values():
            replay.plain = Replay().plain
        assert plain_text(b) == "hello there"


def ask(bench: Bench, text: str) -> openai.InternalServerError:
    """A plain chat saying ``text`` that every provider fails: the client's 502."""
    with pytest.raises(openai.InternalServerError) as exc:
        bench.client().chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": text}])
    return exc.value


def test_an_outage_is_not_a_poison_request_once_two_requests_fail_alike(
        tmp_path: Path) -> None:
    down = plain(500, b'{"error": {"message": "upstream site unreachable"}}')
    providers = {n: Replay(plain=down) for n in ("a", "b", "c")}
    with Bench(tmp_path, providers, eject_after=2, retries=2) as b:
        assert "failed this request the same way" in ask(b, "first").message
        assert "failed this request the same way" in ask(b, "first").message  # a retry of it
        assert all(b.stats(n).errors == 0 for n in "abc")
        second = ask(b, "another request")  # no success since: the site they share is down
        assert "every provider tried failed (3)" in second.message
        for name in "abc":
            s = b.stats(name)
            assert s.errors == 1 and s.last_failure is not None and s.last_failure.blamed
            assert s.serving(time.monotonic()) is Serving.FAILING


def test_a_success_between_two_poison_requests_keeps_both_excused(tmp_path: Path) -> None:
    poison = plain(500, b'{"error": {"message": "cannot process this content"}}')
    providers = {n: Replay(plain=poison) for n in ("a", "b")}
    with Bench(tmp_path, providers, eject_after=1, retries=1) as b:
        ask(b, "first poison")
        for replay in providers.values():
            replay.plain = Replay().plain
        assert plain_text(b) == "hello there" and plain_text(b) == "hello there"  # both served
        for replay in providers.values():
            replay.plain = poison
        assert "failed this request the same way" in ask(b, "second poison").message
        assert all(b.stats(n).errors == 0 and b.stats(n).ejected_until == 0 for n in "ab")


def test_a_2xx_that_is_not_an_answer_is_named_by_its_own_status(tmp_path: Path) -> None:
    with Bench(tmp_path, {"bad": Replay(plain=plain(204, b"")), "good": Replay()},
               **ORDER) as b:
        assert plain_text(b) == "hello there"
        failure = b.stats("bad").last_failure
        assert failure is not None and failure.status == 204


def test_failures_that_differ_are_not_excused(tmp_path: Path) -> None:
    providers = {"a": Replay(plain=plain(500, b"{}")), "b": Replay(plain=plain(502, b"{}"))}
    with Bench(tmp_path, providers, eject_after=1, retries=1) as b:
        with pytest.raises(openai.InternalServerError) as exc:
            plain_text(b)
        assert "every provider tried failed (2)" in exc.value.message
        assert all(b.stats(n).ejected_until > time.monotonic() for n in "ab")


def test_a_failover_answer_names_the_provider_that_answered(tmp_path: Path) -> None:
    with Bench(tmp_path, {"bad": Replay(stream=[HEAD_SSE, ROLE]), "good": Replay()},
               **ORDER) as b:
        raw = b.client().chat.completions.with_raw_response.create(
            model=MODEL, messages=MESSAGES, stream=True)
        assert raw.headers["x-unigw-provider"] == "good"
        assert "".join(c.choices[0].delta.content or "" for c in raw.parse()
                       if c.choices) == "hello there"
        assert httpx.get(b.url + "/health").status_code == 200
