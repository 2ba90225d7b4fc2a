"""The judge of 2xx answers (gateway.truth) and the serving summary (gateway.stats): pure logic."""

from __future__ import annotations

import json
import time

import pytest

from gateway.errors import BadAnswer, FailureClass
from gateway.stats import Failure, Outcome, Serving, Stats
from gateway.truth import NO_PATTERNS, ErrorPatterns, Held, check_answer, provider_message


def sse(*chunks: dict[str, object] | str) -> bytes:
    return b"".join(b"data: %b\n\n" % (c if isinstance(c, str) else json.dumps(c)).encode()
                    for c in chunks)


def delta(d: dict[str, object], finish: str | None = None) -> dict[str, object]:
    return {"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}


@pytest.mark.parametrize("first", [
    delta({"content": "hi"}), delta({"reasoning_content": "hmm"}), delta({}, "stop"),
    delta({"tool_calls": [{"index": 0, "function": {"name": "f"}}]}), delta({}, "length"),
    {"choices": [{"index": 0, "text": "completion text", "finish_reason": None}]},
])
def test_a_stream_commits_at_its_first_content_or_normal_finish(first: dict[str, object]) -> None:
    held = Held(NO_PATTERNS, 1 << 20)
    assert not held.feed(b": comment\n\n" + sse(delta({"role": "assistant"})))
    assert not held.feed(sse(delta({"content": ""}), {"usage": {"total_tokens": 1}}))
    rest = sse(first, "[DONE]")
    assert held.feed(rest[:7]) is False  # half an event is neither content nor failure
    assert held.feed(rest[7:]) is True
    assert held.data.endswith(rest) and held.data.startswith(b": comment\n\n")


def test_an_event_split_across_crlf_pieces_is_judged_whole() -> None:
    held = Held(NO_PATTERNS, 1 << 20)
    event = b'data: {"choices": [{"delta": {"content": "x"}}]}\r\n\r\n'
    assert not held.feed(event[:20])
    assert held.feed(event[20:])


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_every_cut_of_a_stream_into_two_pieces_commits_at_the_content_event(
        newline: bytes) -> None:
    """However the bytes come, the stream commits on the piece that completes its first content
    event, never earlier; events are judged one by one, so the role chunk (``data:`` with no
    space, a comment line before it) is held and the error chunk after the content is never
    judged."""
    events = [b": keep-alive", b'data:{"choices": [{"delta": {"role": "assistant"}}]}',
              b'data: {"choices": [{"delta": {"content": "x"}}]}',
              b'data: {"error": {"message": "after the commit: not judged"}}', b"data: [DONE]"]
    stream = b"".join(e + newline + newline for e in events)
    content_end = stream.index(b'"x"') + stream[stream.index(b'"x"'):].index(newline * 2)
    for cut in range(1, len(stream)):
        held = Held(NO_PATTERNS, 1 << 20)
        first, second = held.feed(stream[:cut]), None
        if not first:
            second = held.feed(stream[cut:])
        committed_first = cut >= content_end + 2 * len(newline)
        assert (first, second) == ((True, None) if committed_first else (False, True)), cut


def test_content_holding_a_raw_line_separator_character_commits_the_stream() -> None:
    """JSON may hold U+2028 (and U+0085, U+000B …) raw in a string; SSE lines end only at CR
    and LF, so such a chunk is one data line, its JSON whole."""
    held = Held(NO_PATTERNS, 1 << 20)
    text = "line\u2028next\x85\x0bend"
    event = b"data: " + json.dumps(delta({"content": text}), ensure_ascii=False).encode() + b"\n\n"
    assert held.feed(sse(delta({"role": "assistant"})) + event) is True
    assert held.data.endswith(event)


def test_multi_line_data_and_a_named_event_are_read_as_sse_says() -> None:
    event = b'event: message\ndata: {"choices": [{"delta":\ndata:  {"content": "x"}}]}\n\n'
    assert Held(NO_PATTERNS, 1 << 20).feed(event) is True
    named = b'event:  error \r\ndata: {"error": {"message": "gone"}}\r\n\r\n'
    with pytest.raises(BadAnswer, match="error event: gone"):
        Held(NO_PATTERNS, 1 << 20).feed(named)


@pytest.mark.parametrize(("events", "message"), [
    (sse("[DONE]"), "[DONE]"),
    (sse({"error": {"message": "boom", "type": "stream_error"}}), "error: boom"),
    (b'event: error\ndata: {"error": {"message": "gone"}}\n\n', "error event: gone"),
    (sse(delta({"role": "assistant"}), delta({}, "error")), 'finish_reason "error"'),
    (sse("not json at all"), "not JSON"),
])
def test_a_stream_failing_before_content_raises_bad_answer(events: bytes, message: str) -> None:
    with pytest.raises(BadAnswer) as exc:
        Held(NO_PATTERNS, 1 << 20).feed(events)
    assert message in str(exc.value) and exc.value.failure is FailureClass.UPSTREAM_ERROR


def test_holding_is_bounded_in_bytes() -> None:
    held = Held(NO_PATTERNS, 4096)
    with pytest.raises(BadAnswer, match="hold_max_bytes"):
        for _ in range(1000):
            held.feed(sse(delta({"role": "assistant"})))
    with pytest.raises(BadAnswer, match="hold_max_bytes"):  # no event end at all
        Held(NO_PATTERNS, 4096).feed(b"data: " + b"x" * 5000)


def test_error_patterns_are_substrings_or_slashed_regexes() -> None:
    patterns = ErrorPatterns.of(["Failed to call upstream", "/^<!DOCTYPE/"])
    assert patterns.match("oops: FAILED TO CALL UPSTREAM") == "failed to call upstream"
    assert patterns.match("<!DOCTYPE html>") == "/^<!DOCTYPE/"
    assert patterns.match("a page that says <!DOCTYPE later") is None
    with pytest.raises(BadAnswer, match="error pattern"):
        Held(patterns, 1 << 20).feed(sse(delta({"content": "<!DOCTYPE html><p>502"})))


def test_error_patterns_see_an_error_text_streamed_in_pieces() -> None:
    patterns = ErrorPatterns.of(["tokens强制刷新已启动"])
    held = Held(patterns, 1 << 20)
    assert not held.feed(sse(delta({"role": "assistant", "content": ""}), delta({"content": "🔄 "})))
    with pytest.raises(BadAnswer, match="error pattern 'tokens强制刷新已启动'"):
        held.feed(sse(delta({"content": "tokens强制刷新已启动，"}), delta({"content": "请稍后再试"})))


@pytest.mark.parametrize("ending", ["window", "finish", "[DONE]", "end", "hold_max_bytes"])
def test_with_error_patterns_a_stream_commits_after_its_opening_text(ending: str) -> None:
    held = Held(ErrorPatterns.of(["/^<!DOCTYPE/"]), 1 << 20 if ending != "hold_max_bytes" else 200)
    assert not held.feed(sse(delta({"content": "a real "}), delta({"content": "answer"})))
    if ending == "window":
        assert held.feed(sse(delta({"content": "x" * 64})))
    elif ending == "finish":
        assert held.feed(sse(delta({"content": "."}, "stop")))
    elif ending == "[DONE]":
        assert held.feed(sse("[DONE]"))
    elif ending == "end":
        assert held.end()
    else:
        assert held.feed(sse(delta({"role": "assistant"})) * 3)
    assert Held(ErrorPatterns.of(["x"]), 1 << 20).end() is False  # nothing held: no answer


def test_a_providers_message_is_found_inside_nested_error_objects() -> None:
    nested = {"detail": {"error": {"message": "非流式请求失败: boom", "type": "api_error"}}}
    assert provider_message(json.dumps(nested).encode()) == "非流式请求失败: boom"
    assert provider_message(b'{"detail": "plain"}') == "plain"
    assert provider_message(b'{"error": {"code": 7}}') == '{"code": 7}'


def test_a_plain_answer_with_content_or_tool_calls_is_an_answer() -> None:
    text = {"choices": [{"message": {"role": "assistant", "content": "hi"},
                         "finish_reason": "stop"}]}
    tools = {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [
        {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        "finish_reason": "tool_calls"}]}
    for body in (text, tools):
        assert check_answer(json.dumps(body).encode(), NO_PATTERNS) == body


def test_a_rate_limit_message_in_a_2xx_is_rate_limited() -> None:
    body = json.dumps({"error": {"message": "Too Many Requests, retry later"}}).encode()
    with pytest.raises(BadAnswer) as exc:
        check_answer(body, NO_PATTERNS)
    assert exc.value.failure is FailureClass.RATE_LIMITED and exc.value.status_code == 429


def test_serving_follows_the_latest_blamed_outcome() -> None:
    stats = Stats()
    s = stats.get("a")
    now = time.monotonic()
    assert s.serving(now) is Serving.UNKNOWN
    stats.start(s)
    stats.observe(s, Outcome.OK, 0.01)
    assert s.serving(time.monotonic()) is Serving.OK
    excused = Failure(FailureClass.CLIENT_ERROR, "bad request", 400, time.time(), False)
    stats.start(s)
    stats.observe(s, Outcome.EXCUSED, 0.01, failure=excused)
    assert s.serving(time.monotonic()) is Serving.OK and s.last_failure == excused
    failed = Failure(FailureClass.TIMEOUT, "slow", None, time.time())
    stats.start(s)
    stats.observe(s, Outcome.FAIL, 0.01, failure=failed)
    assert s.serving(time.monotonic()) is Serving.FAILING
    assert s.failures == {FailureClass.CLIENT_ERROR: 1, FailureClass.TIMEOUT: 1}
    s.block(time.monotonic())
    assert s.serving(time.monotonic()) is Serving.AUTH_FAILED
    assert s.serving(time.monotonic() + 3600) is Serving.AUTH_FAILED
    s.unblock()
    assert s.serving(time.monotonic() + 3600) is Serving.UNKNOWN
