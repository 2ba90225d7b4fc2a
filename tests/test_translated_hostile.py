"""Providers that answer 200 with parts of the wrong type, or declare an error after their
content, behind the Anthropic and Gemini routes (and the raw OpenAI one): the client gets a
translated answer or the API's own error event, never a 500, and the provider's outcome says
what happened. Replay providers on real sockets, the official clients."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import anthropic
import pytest
from support.replay import HEAD_SSE, MODEL, ROLE, Bench, Replay, chunk, event, head

from gateway.stats import Serving
from gateway.translate.stream import write_stream

MESSAGES = [{"role": "user", "content": "hi"}]
ERROR_AFTER = [HEAD_SSE, ROLE, chunk({"content": "hel"}),
               event({"error": {"message": "upstream lost the session", "type": "stream_error"}})]


def weird(**message: Any) -> bytes:
    return json.dumps({"id": 7, "object": "chat.completion", "choices": [{
        "index": 0, "finish_reason": "stop",
        "message": {"role": "assistant", "content": "fine", **message}}],
        "usage": {"prompt_tokens": "a", "completion_tokens": 1e999}}).encode()


def claude(bench: Bench) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=bench.url, api_key="sk-test", max_retries=0)


@pytest.mark.parametrize("message", [{"tool_calls": "x"}, {"tool_calls": [1, {"id": 5}]},
                                     {"function_call": "f"}, {"content": [{"text": 3}]}])
def test_a_200_with_parts_of_the_wrong_type_is_still_translated(tmp_path: Path,
                                                                message: dict[str, Any]) -> None:
    odd = Replay(plain=[head(200), weird(**message)])
    with Bench(tmp_path, {"odd": odd}) as b:
        answer = claude(b).messages.create(model=MODEL, max_tokens=10, messages=MESSAGES)
        assert answer.usage.input_tokens == 0 and answer.usage.output_tokens == 0
        with b.http() as http:
            gemini = http.post(f"/v1beta/models/{MODEL}:generateContent",
                               json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
        assert gemini.status_code == 200, gemini.text


def test_an_error_after_content_ends_a_translated_stream_with_the_apis_error(
        tmp_path: Path) -> None:
    with Bench(tmp_path, {"late": Replay(stream=ERROR_AFTER)}) as b:
        with claude(b).messages.stream(model=MODEL, max_tokens=10, messages=MESSAGES) as s:
            with pytest.raises(anthropic.APIStatusError) as exc:
                for _ in s:
                    pass
        assert "upstream lost the session" in str(exc.value)
        with b.http() as http:
            raw = http.post(f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
                            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).text
        assert "hel" in raw and "upstream lost the session" in raw and '"STOP"' not in raw
        stats = b.stats("late")
        assert stats.errors == 2 and stats.last_failure is not None
        assert "upstream lost the session" in stats.last_failure.message


def test_an_error_after_content_on_the_raw_route_reaches_the_client_and_counts(
        tmp_path: Path) -> None:
    with Bench(tmp_path, {"late": Replay(stream=ERROR_AFTER)}) as b:
        with b.http() as http:
            raw = http.post("/v1/chat/completions",
                            json={"model": MODEL, "stream": True, "messages": MESSAGES}).text
        assert "hel" in raw and "upstream lost the session" in raw  # unchanged, as it came
        stats = b.stats("late")
        assert stats.errors == 1 and stats.serving(stats.last_sample) is Serving.FAILING


async def _broken_chunks() -> Any:
    yield {"choices": [{"index": 0, "delta": {"content": "hi"}}]}
    raise KeyError("a bug of the gateway's own")


class _Writer:
    def feed(self, deltas: Any, summary: Any) -> list[bytes]:
        return [b"delta"]

    def finish(self, summary: Any) -> list[bytes]:
        return [b"end"]

    def error(self, status: int, message: str) -> bytes:
        return f"error {status} {message}".encode()


def test_a_translation_bug_ends_the_stream_with_a_plain_error_not_python_text() -> None:
    async def events() -> list[bytes]:
        return [e async for e in write_stream(_broken_chunks(), _Writer())]

    out = asyncio.run(events())
    assert out == [b"delta", b"error 502 internal error in the gateway while translating the "
                   b"stream (see its log)"]



def test_a_chunk_spread_over_several_data_lines_is_read_whole(tmp_path: Path) -> None:
    spread = (b'data: {"id": "c1", "object": "chat.completion.chunk",\n'
              b'data:  "choices": [{"index": 0, "delta": {"content": "hello"}}]}\n\n')
    steps = [HEAD_SSE, ROLE, spread, chunk({}, "stop"), b"data: [DONE]\n\n"]
    with Bench(tmp_path, {"multi": Replay(stream=steps)}) as b:
        with claude(b).messages.stream(model=MODEL, max_tokens=10, messages=MESSAGES) as s:
            assert s.get_final_text() == "hello"
        assert b.stats("multi").errors == 0


def test_an_error_event_after_content_ends_a_translated_stream_with_the_apis_error(
        tmp_path: Path) -> None:
    steps = [HEAD_SSE, ROLE, chunk({"content": "hel"}), b"event: error\ndata: gone\n\n",
             b"data: [DONE]\n\n"]
    with Bench(tmp_path, {"late": Replay(stream=steps)}) as b:
        with claude(b).messages.stream(model=MODEL, max_tokens=10, messages=MESSAGES) as s:
            with pytest.raises(anthropic.APIStatusError) as exc:
                s.get_final_text()
        assert "error event: gone" in str(exc.value)
        assert b.stats("late").errors == 1
