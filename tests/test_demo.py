"""`unigw demo` as a user runs it: a real subprocess on the real ports, stopped with SIGINT."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

PORTS = list(range(8000, 8014))
GATEWAY = "http://127.0.0.1:7999"


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_for(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def demo(tmp_path: Path):  # type: ignore[no-untyped-def]
    busy = [p for p in [*PORTS, 7999] if not port_free(p)]
    if busy:
        pytest.fail(f"ports {busy} are taken; the demo needs 7999 and 8000-8013")
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor.cli", "demo"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()


def test_demo_serves_fourteen_echo_providers_and_sigint_leaves_nothing(demo) -> None:  # type: ignore[no-untyped-def]
    wait_for(lambda: answers(f"{GATEWAY}/health"), 60, "the gateway's /health")
    wait_for(
        lambda: all(answers(f"http://127.0.0.1:{p}/health") for p in PORTS),
        60,
        "the 14 echo providers",
    )
    rows = httpx.get(f"{GATEWAY}/providers", timeout=5).json()["providers"]
    assert [r["port"] for r in rows] == PORTS
    wait_for(
        lambda: all(
            r["state"] == "ready"
            for r in httpx.get(f"{GATEWAY}/providers", timeout=5).json()["providers"]
        ),
        30,
        "every provider ready",
    )
    children = psutil.Process(demo.pid).children(recursive=True)
    assert len(children) >= 14

    demo.send_signal(signal.SIGINT)
    assert demo.wait(timeout=60) == 0, demo.stdout.read() if demo.stdout else ""
    survivors = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert survivors == []
    assert [p for p in [*PORTS, 7999] if not port_free(p)] == []


def test_demo_d_with_7999_taken_names_the_holder_and_what_to_do(tmp_path: Path) -> None:
    if not port_free(7999):
        pytest.fail("port 7999 is taken; this test must hold it itself")
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past a TIME_WAIT
        holder.bind(("127.0.0.1", 7999))
        holder.listen()
        out = subprocess.run([sys.executable, "-m", "supervisor.cli", "demo", "-d"],
                             cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stdout
    assert "gateway: port 7999 is in use by pid" in out.stderr
    assert "the demo's ports are fixed: stop that process first" in out.stderr
    assert "demo.yaml" not in out.stderr and "running in the background" not in out.stdout
