"""The gateway's own HTTP client against a hostile provider (a raw TCP server, support.raw).

Every malformed answer must be a failed attempt: the call ends, the connection is closed (the
raw server sees it end, never left open), the client gets a clean 502/504 in the OpenAI
envelope naming the cause, and with a good provider beside it the client gets the good answer.
Each case runs against the client (``gateway.upstream.Upstream``) directly and through the real
gateway (``unigw gateway``) in front of the raw server and an echo provider.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.echo import EchoProc, start_echo
from support.gateway import GatewayProc, write_config
from support.raw import CLOSE, RESET, Endless, RawServer, Step, answer

from gateway.errors import AttemptFailed
from gateway.truth import NO_PATTERNS, check_answer
from gateway.upstream import Deadline, Origin, Upstream

FIRST_BYTE, READ, TOTAL = 2.0, 1.5, 3.0  # the timeouts of both the client and the gateway
LIMIT = 32 * 1024 * 1024  # the default gateway.max_response_bytes
CHAT = {"model": "echo-1", "messages": [{"role": "user", "content": "hello"}]}
GOOD = (b'{"id":"x","object":"chat.completion","choices":[{"index":0,"finish_reason":"stop",'
        b'"message":{"role":"assistant","content":"fine"}}]}')
SSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def drip(data: bytes, every: float) -> list[Step]:
    steps: list[Step] = []
    for i in range(len(data)):
        steps += [data[i:i + 1], every]
    return steps


def head(length: int | None = None, extra: str = "") -> bytes:
    framing = "" if length is None else f"Content-Length: {length}\r\n"
    return f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{framing}{extra}\r\n".encode()


CHUNKED = head(extra="Transfer-Encoding: chunked\r\n")
CLOSE_DELIMITED = head(extra="Connection: close\r\n")

# id: (script, a fragment of the message, status)
CASES: dict[str, tuple[list[Step], str, int]] = {
    "status line not HTTP": ([b"SSH-2.0-OpenSSH_9.2\r\n\r\n"], "malformed HTTP answer", 502),
    "head over the limit": ([b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 2_000_000 + b"\r\n\r\n"],
                            "response head over 65536 bytes", 502),
    "head that never ends": ([b"HTTP/1.1 200 OK\r\n", Endless(b"X-A: b\r\n" * 128)],
                             "response head over 65536 bytes", 502),
    "Content-Length too long, closed": ([head(100) + b'{"a":', 0.2, CLOSE],
                                        "Content-Length says 100, the provider closed the "
                                        "connection after 5", 502),
    "Content-Length too long, held": ([head(100) + b'{"a":'], f"no data for {READ:g}s", 504),
    "Content-Length too short": ([head(5) + GOOD + b"\r\nmore garbage"],
                                 "(Content-Length says 5)|not JSON", 502),
    "broken chunked encoding": ([CHUNKED + b"zz\r\nhello\r\n"], "malformed HTTP answer", 502),
    "chunked cut short": ([CHUNKED + b"a\r\n{\"a\":", 0.2, CLOSE],
                          "closed the connection mid-body, after 5 bytes", 502),
    "endless body, size": ([CLOSE_DELIMITED, Endless(b"x" * 65536)], f"body over {LIMIT} bytes",
                           502),
    "endless body, time": ([CHUNKED, Endless(b"3\r\nabc\r\n", 0.2)],
                           f"answer not complete within {TOTAL:g}s", 504),
    "Content-Length over the limit": ([head(100 * 2**20)],
                                      f"Content-Length 104857600 is over the limit of {LIMIT}",
                                      502),
    "a drip of one byte a second": ([head(len(GOOD)), *drip(GOOD, 1.0)],
                                    f"answer not complete within {TOTAL:g}s", 504),
    "head that drips": ([*drip(b"HTTP/1.1 200 OK\r\n" * 10, 0.3)],
                        f"no answer within {FIRST_BYTE:g}s", 504),
    "not UTF-8": ([head(4) + b"\xff\xfe\xfa\xfb"], "the answer is not UTF-8|not JSON", 502),
    "not JSON": ([head(18) + b"<html>oops</html>\n"], "not JSON", 502),
    "reset before answering": ([RESET], "reset the connection before answering", 502),
    "reset mid status line": ([b"HTTP/1.1 20", 0.2, RESET], "reset the connection mid-head",
                              502),
    "reset after the head": ([head(100), 0.2, RESET],
                             "Content-Length says 100, the provider reset the connection "
                             "after 0", 502),
    "reset mid body": ([head(100) + b'{"a":', 0.2, RESET],
                       "Content-Length says 100, the provider reset the connection after 5", 502),
    "reset mid chunk": ([CHUNKED + b"a\r\n{\"a\":", 0.2, RESET],
                        "reset the connection mid-body, after 5 bytes", 502),
    "closed before answering": ([CLOSE], "closed the connection before answering", 502),
}


def attempt(port: int, *, stream: bool = False, limit: int = LIMIT) -> bytes:
    """One chat request through a fresh Upstream, read as the proxy reads it."""

    async def run() -> bytes:
        pool = Upstream(total_timeout=TOTAL, max_response_bytes=limit)
        origin = Origin("127.0.0.1", port)
        body = json.dumps({**CHAT, "stream": stream}).encode()
        data = origin.head("POST", "/v1/chat/completions", {"Content-Type": "application/json"})
        try:
            response = await pool.request(origin, data + b"%d\r\n\r\n%b" % (len(body), body),
                                          FIRST_BYTE)
            try:
                if not stream:
                    body = await response.read(READ)
                    if 200 <= response.status < 300:
                        check_answer(body, NO_PATTERNS)  # the proxy's judge of a 2xx
                    return body
                deadline, got = Deadline.after(READ, "no complete event"), b""
                while piece := await response.next_piece(READ, deadline):
                    got += piece  # (an SSE reader would renew the deadline at each event)
                return got
            finally:
                response.close()
        finally:
            await pool.aclose()

    return asyncio.run(run())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", CASES)
def test_the_client_fails_a_hostile_answer_naming_the_cause(case: str) -> None:
    steps, fragment, status = CASES[case]
    with RawServer(lambda conn, req: steps) as raw:
        with pytest.raises(AttemptFailed) as exc:
            attempt(raw.port)
        assert re.search(re.escape(fragment).replace(r"\|", "|"), str(exc.value)), exc.value
        assert exc.value.status_code == status
        assert raw.wait_all_ended(), "the client left the provider's connection open"


# -- through the real gateway ------------------------------------------------------------------

class Front:
    """A gateway in front of the raw server ("bad", tried first) and an echo provider ("good")."""

    def __init__(self, tmp: Path) -> None:
        self.raw = RawServer(lambda conn, req: [answer(200, GOOD)])
        self.echo: EchoProc | None = None
        self.gateway: GatewayProc | None = None
        try:
            self.echo = start_echo()
            providers = [{"name": "bad", "port": self.raw.port},
                         {"name": "good", "port": self.echo.port}]
            config = write_config(
                tmp / "providers.yaml", providers, strategy="model_specific",
                routes={"echo-1": ["bad", "good"]}, eject_after=1000, first_byte_timeout=FIRST_BYTE,
                read_timeout=READ, total_timeout=TOTAL)
            self.gateway = GatewayProc(config)
            self.gateway.wait_up()
            self.http = httpx.Client(base_url=self.gateway.url, timeout=30)
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _wait_ready(self) -> None:
        for _ in range(200):
            if self.http.get("/providers").json()["summary"]["ready"] == 2:
                return
            time.sleep(0.05)
        raise RuntimeError("providers never ready")

    def chat(self, pin: str | None = None, **extra: object) -> httpx.Response:
        params = {"provider": pin} if pin else None
        return self.http.post("/v1/chat/completions", json={**CHAT, **extra}, params=params)

    def rss_mib(self) -> float:
        assert self.gateway is not None
        status = Path(f"/proc/{self.gateway.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]

    def errors(self, name: str) -> int:
        rows = {r["name"]: r for r in self.http.get("/providers").json()["providers"]}
        return int(rows[name]["errors"])

    def close(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
        if self.echo is not None:
            self.echo.stop()
        self.raw.close()


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    f = Front(tmp_path_factory.mktemp("hostile"))
    yield f
    f.close()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("case", CASES)
def test_the_gateway_answers_a_hostile_provider_with_a_clean_error_or_the_good_one(
        front: Front, case: str) -> None:
    steps, fragment, status = CASES[case]
    front.raw.script = lambda conn, req: steps
    pinned = front.chat(pin="bad")
    assert pinned.status_code == status, pinned.text
    error = pinned.json()["error"]
    assert error["type"] in ("upstream_error", "timeout_error")
    assert re.search(re.escape(fragment).replace(r"\|", "|"), error["message"]), error
    assert error["message"].startswith("every provider tried failed (1): bad: ")

    failed_over = front.chat()
    assert failed_over.status_code == 200, failed_over.text
    assert failed_over.headers["x-unigw-provider"] == "good"
    assert front.raw.wait_all_ended(), "the gateway left the provider's connection open"


@pytest.mark.timeout(60)
def test_a_stream_that_drips_without_completing_an_event_ends(front: Front) -> None:
    front.raw.script = lambda conn, req: [SSE, *drip(b"8\r\ndata: {\"\r\n" * 20, 0.3)]
    with front.http.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True},
                           params={"provider": "bad"}) as response:
        text = response.read().decode()
    # Either an error event after the stream began, or (when events are held back until the
    # first content) a 504 before it: never a stream that just goes on.
    assert "no complete event within 1.5s" in text or "time" in text, text
    assert "[DONE]" not in text
    assert front.raw.wait_all_ended()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def test_a_committed_stream_whose_next_event_never_ends_is_cut_not_buffered(front: Front) -> None:
    content = (b'data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,'
               b'"delta":{"content":"hello"},"finish_reason":null}]}\n\n')
    front.raw.script = lambda conn, req: [SSE, _chunk(content), _chunk(b"data: "),
                                          Endless(_chunk(b"x" * 65536))]
    with front.http.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True},
                           params={"provider": "bad"}) as response:
        text = response.read().decode()
    assert response.status_code == 200 and '"content":"hello"' in text  # committed first
    assert "event: error" in text and "an event over 1048576 bytes" in text
    assert "[DONE]" not in text
    assert front.raw.wait_all_ended()


def test_the_client_bounds_a_stream_that_never_completes_an_event() -> None:
    steps: list[Step] = [SSE, Endless(b"1\r\nx\r\n", 0.2)]
    with RawServer(lambda conn, req: steps) as raw:
        with pytest.raises(AttemptFailed, match=r"no complete event within 1.5s") as exc:
            attempt(raw.port, stream=True)
        assert exc.value.status_code == 504
        assert raw.wait_all_ended()


# -- a keep-alive connection the provider closed between two requests ---------------------------


async def two_calls(port: int, pause: float = 0.0) -> list[bytes]:
    """Two chat calls through one pool, ``pause`` seconds apart; their bodies."""
    pool = Upstream(total_timeout=TOTAL)
    origin = Origin("127.0.0.1", port)
    data = origin.head("POST", "/v1/chat/completions", {}) + b"2\r\n\r\n{}"
    bodies = []
    try:
        for _ in range(2):
            response = await pool.request(origin, data, FIRST_BYTE)
            bodies.append(await response.read(READ))
            response.close()
            await asyncio.sleep(pause)
    finally:
        await pool.aclose()
    return bodies


STALE: dict[str, list[Step]] = {
    "closed while idle": [answer(200, GOOD), 0.1, CLOSE],
    "reset while idle": [answer(200, GOOD), 0.1, RESET],
}


@pytest.mark.parametrize("how", STALE)
def test_a_pooled_connection_the_provider_closed_is_retried_on_a_fresh_one(how: str) -> None:
    with RawServer(lambda conn, req: STALE[how]) as raw:
        assert asyncio.run(two_calls(raw.port, pause=0.4)) == [GOOD, GOOD]  # it closes the idle one
        assert [c.chat_requests for c in raw.conns] == [1, 1]


def test_a_request_on_a_connection_closed_as_it_was_sent_is_retried_once() -> None:
    # the race of a provider's keep-alive timeout: it reads the next request and closes
    script = {0: [[answer(200, GOOD)], [CLOSE]]}
    with RawServer(lambda conn, req: script.get(conn, [[answer(200, GOOD)]] * 2)[req]) as raw:
        assert asyncio.run(two_calls(raw.port)) == [GOOD, GOOD]
        assert [c.chat_requests for c in raw.conns] == [2, 1]


def test_the_gateway_counts_no_failure_for_a_stale_pooled_connection(front: Front) -> None:
    front.raw.script = lambda conn, req: [answer(200, GOOD), 0.1, CLOSE]
    before = front.errors("bad")
    for _ in range(3):
        reply = front.chat(pin="bad")
        assert reply.status_code == 200, reply.text
        time.sleep(0.3)
    assert front.errors("bad") == before


def test_gateway_memory_with_a_100_mb_body(front: Front, capsys: pytest.CaptureFixture[str],
                                           ) -> None:
    """Not an assertion of size: the numbers are printed for the record (``-s``)."""
    front.raw.script = lambda conn, req: [CLOSE_DELIMITED, Endless(b"x" * 65536, 0.0, 100 * 2**20),
                                          CLOSE]
    before = front.rss_mib()
    reply = front.chat(pin="bad")
    after = front.rss_mib()
    assert reply.status_code == 502
    assert f"body over {LIMIT} bytes" in reply.json()["error"]["message"]
    with capsys.disabled():
        print(f"\ngateway RSS around a 100 MB body: {before:.1f} -> {after:.1f} MiB")
