"""Slow and idle clients cannot hold the gateway's connections: every request must arrive whole
within ``gateway.request_timeout``, and ``gateway.max_clients`` bounds connections at once.
Real gateway subprocess, real sockets."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.gateway import Cluster, chat

HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
BODY = b'{"model": "echo-1", "messages": [{"role": "user", "content": "hi"}]}'


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(10)
    return sock


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) before ``within`` seconds pass."""
    sock.settimeout(within)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _trickle(sock: socket.socket, data: bytes, pause: float, stop: threading.Event) -> None:
    """Send ``data`` a byte at a time until it is all sent, the server closes, or ``stop``."""
    for i in range(len(data)):
        if stop.is_set():
            return
        try:
            sock.send(data[i:i + 1])
        except OSError:
            return
        time.sleep(pause)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(tmp_path, [("a", ())], request_timeout=1.5) as c:
        yield c


def test_a_trickled_request_head_is_closed_within_the_request_timeout(cluster: Cluster) -> None:
    port = cluster.gateway.port if cluster.gateway else 0
    stop = threading.Event()
    socks = [_connect(port) for _ in range(20)]
    threads = [threading.Thread(target=_trickle, args=(s, HEAD * 50, 0.2, stop), daemon=True)
               for s in socks]
    for t in threads:
        t.start()
    try:
        # while twenty clients trickle, a normal call is answered
        provider, text = chat(cluster.client(), "still answered")
        assert provider == "a" and "still answered" in text
        assert all(_closed_by_server(s, within=10) for s in socks)
    finally:
        stop.set()
        for s in socks:
            s.close()


def test_a_client_that_sends_nothing_or_half_a_body_is_closed(cluster: Cluster) -> None:
    port = cluster.gateway.port if cluster.gateway else 0
    silent = _connect(port)
    half = _connect(port)
    half.sendall(HEAD + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY[:10])
    try:
        assert _closed_by_server(silent, within=10)
        assert _closed_by_server(half, within=10)
    finally:
        silent.close()
        half.close()


def test_a_kept_alive_connection_gets_a_new_deadline_for_each_request(cluster: Cluster) -> None:
    port = cluster.gateway.port if cluster.gateway else 0
    sock = _connect(port)
    try:
        for _ in range(3):  # three whole requests, each well within its own deadline
            sock.sendall(HEAD + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY)
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                answer += sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
            time.sleep(0.8)  # 3 x 0.8 s idle+request time exceeds one 1.5 s deadline
        sock.sendall(HEAD[:20])  # then a request that never completes is cut off
        assert _closed_by_server(sock, within=10)
    finally:
        sock.close()


def test_connections_past_max_clients_get_an_immediate_503(tmp_path: Path) -> None:
    with Cluster(tmp_path, [("a", ())], max_clients=4, request_timeout=20) as c:
        port = c.gateway.port if c.gateway else 0
        idle = [_connect(port) for _ in range(4)]
        try:
            time.sleep(0.3)  # the server has accepted them
            sock = _connect(port)
            sock.sendall(HEAD + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY)
            answer = sock.recv(65536)
            sock.close()
            assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        finally:
            for s in idle:
                s.close()
        time.sleep(0.3)
        provider, _ = chat(c.client(), "room again")  # the limit counts open connections
        assert provider == "a"


@pytest.mark.parametrize("pipelined", [False, True], ids=["alone", "pipelined"])
def test_a_client_gone_before_a_whole_answer_cancels_the_attempt_quietly(
        tmp_path: Path, pipelined: bool) -> None:
    """The provider attempt is cancelled (recorded ``cancelled``: no answered latency) and the
    gateway logs no traceback, also when a second request was pipelined behind the first
    (uvicorn marks only the newest request of a connection as disconnected)."""
    with Cluster(tmp_path, [("slow", ("--latency", "2"))]) as c:
        request = HEAD + b"Content-Length: %d\r\n\r\n%b" % (len(BODY), BODY)
        sock = _connect(c.gateway.port)  # type: ignore[union-attr]
        sock.sendall(request * (2 if pipelined else 1))
        deadline = time.monotonic() + 10
        while c.echo_stats("slow")["by_path"].get("/v1/chat/completions", 0) < 1:
            assert time.monotonic() < deadline, "the provider never got the request"
            time.sleep(0.05)
        sock.close()  # before the provider's answer (2 s away)
        time.sleep(2.5)  # past the provider's answer: nothing left to write it to
        row = c.http().get("/providers").json()["providers"][0]
        metrics = c.http().get("/metrics").text
        stderr = c.gateway.stderr_text()  # type: ignore[union-attr]
        assert row["in_flight"] == 0
        assert 'unigw_latency_seconds_count{provider="slow"} 0' in metrics  # not answered
        assert "Exception in ASGI application" not in stderr and "Traceback" not in stderr
        assert chat(c.client(), "still fine")[0] == "slow"
