"""Streams pass through as they arrive; a broken one ends in an error event; a gone client
cancels the provider's request."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import openai
import pytest
from support.gateway import Cluster

WORDS = "alpha beta gamma delta epsilon zeta"
BODY = {"model": "echo-1", "stream": True, "messages": [{"role": "user", "content": WORDS}]}


def test_chunks_arrive_spread_over_the_providers_pacing(tmp_path: Path) -> None:
    with Cluster(tmp_path, [("a", ("--chunk-delay", "0.15"))]) as c:
        stream = c.client().chat.completions.create(
            model="echo-1", messages=[{"role": "user", "content": WORDS}], stream=True)
        arrivals = []
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append((time.monotonic(), chunk.choices[0].delta.content))
        assert "".join(text for _, text in arrivals) == WORDS
        gaps = [b[0] - a[0] for a, b in zip(arrivals, arrivals[1:], strict=False)]
        # each word when the provider sent it (0.15 s apart), not all at the end; a busy
        # machine may hand two over together, so only most gaps and the whole spread count
        assert len(gaps) == 5 and sum(gap >= 0.05 for gap in gaps) >= 3, gaps
        assert arrivals[-1][0] - arrivals[0][0] >= 0.3, gaps


def test_a_provider_crashing_mid_stream_ends_with_an_error_event_and_no_done(
        tmp_path: Path) -> None:
    with Cluster(tmp_path, [("a", ("--crash-mid-stream", "2")), ("b", ())]) as c:
        with httpx.stream("POST", c.url + "/v1/chat/completions", json=BODY,
                          params={"provider": "a"}) as r:
            assert r.status_code == 200
            text = "".join(r.iter_text())
        assert '"content":"alpha "' in text and '"content":"beta "' in text
        assert text.endswith("\n\n") and "event: error\ndata: {\"error\"" in text
        assert "[DONE]" not in text and "failed mid-stream" in text


def test_the_openai_client_sees_a_broken_stream_as_an_error(tmp_path: Path) -> None:
    with Cluster(tmp_path, [("a", ("--crash-mid-stream", "3"))]) as c:
        stream = c.client().chat.completions.create(
            model="echo-1", messages=[{"role": "user", "content": WORDS}], stream=True)
        got = []
        with pytest.raises(openai.APIError) as exc:
            for chunk in stream:
                if chunk.choices:
                    got.append(chunk.choices[0].delta.content or "")
        assert "".join(got) == "alpha beta gamma "
        assert "a" in str(exc.value) and "mid-stream" in str(exc.value)


def test_a_client_disconnecting_cancels_the_upstream_request(tmp_path: Path) -> None:
    with Cluster(tmp_path, [("a", ("--chunk-delay", "0.3"))]) as c:
        with httpx.stream("POST", c.url + "/v1/chat/completions", json=BODY) as r:
            lines = r.iter_lines()
            assert next(lines).startswith("data: ")
        deadline = time.monotonic() + 5
        while c.echo_stats("a")["streams_cancelled"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        stats = c.echo_stats("a")
        assert stats["streams_cancelled"] == 1 and stats["streams_completed"] == 0
        row = httpx.get(c.url + "/providers/a").json()
        assert row["in_flight"] == 0 and row["errors"] == 0


def test_a_stream_whose_provider_fails_before_the_first_byte_is_retried(
        tmp_path: Path) -> None:
    with Cluster(tmp_path, [("a", ("--status", "500")), ("b", ())], eject_after=100) as c:
        for _ in range(3):
            with httpx.stream("POST", c.url + "/v1/chat/completions", json=BODY) as r:
                assert r.headers["x-unigw-provider"] == "b"
                text = r.read().decode()
            assert text.rstrip().endswith("data: [DONE]")


def test_stream_false_is_sent_explicitly(tmp_path: Path) -> None:
    # echo streams only for stream: true; the gateway must not leave `stream` out either way
    with Cluster(tmp_path, [("a", ())]) as c:
        r = httpx.post(c.url + "/v1/chat/completions",
                       json={"model": "echo-1", "messages": [{"role": "user", "content": "x"}]})
        assert r.headers["content-type"].startswith("application/json")
        assert r.json()["choices"][0]["message"]["content"] == "x"
