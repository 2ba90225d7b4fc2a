"""Start the echo provider (``python -m supervisor.demo.echo``) as a real subprocess, for any test.

    echo = start_echo("--latency", "0.1")
    try:
        httpx.get(echo.url + "/health")
    finally:
        echo.stop()

The process runs in its own session (process group), so ``stop()`` also takes down anything it
spawned. Its stderr goes to a temporary file, readable with ``stderr_text()``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV_PREFIX = "UNIGW_ECHO_"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EchoProc:
    """A running echo provider subprocess."""

    port: int
    proc: subprocess.Popen[bytes]
    stderr_path: Path

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, ``http://127.0.0.1:PORT/v1``."""
        return self.url + "/v1"

    def stderr_text(self) -> str:
        """Everything the process wrote to stderr so far."""
        return self.stderr_path.read_text(errors="replace")

    def wait(self, timeout: float = 10.0) -> int:
        """Wait for the process to exit; its exit code."""
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM the process group, wait up to ``timeout``, then SIGKILL it. The exit code."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass  # the leader and everything in its group are gone already
            try:
                self.proc.wait(timeout)
                break
            except subprocess.TimeoutExpired:
                continue
        _kill_group(self.proc.pid)  # a grandchild may outlive its parent in the same group
        self.stderr_path.unlink(missing_ok=True)
        return self.proc.returncode


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _child_env(env: dict[str, str] | None) -> dict[str, str]:
    """The test process's environment without echo knobs, plus ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX) and k != "PORT"}
    return {**base, **(env or {})}


def _ready(echo: EchoProc, wait: str) -> bool:
    if wait == "port":
        try:
            socket.create_connection(("127.0.0.1", echo.port), timeout=0.2).close()
            return True
        except OSError:
            return False
    try:
        return httpx.get(echo.url + "/health", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def start_echo(
    *args: str,
    env: dict[str, str] | None = None,
    port: int | None = None,
    wait: str = "health",
    timeout: float = 15.0,
    port_flag: bool = True,
) -> EchoProc:
    """Start an echo provider with extra ``args`` and wait until it answers.

    ``env`` adds variables to the (echo-knob-free) environment. ``port`` defaults to a free
    one; with ``port_flag=False`` it is not passed as ``--port`` (the caller sets it through
    ``env`` instead). ``wait`` is ``"health"`` (GET /health answers 200), ``"port"`` (the port
    accepts connections) or ``"none"``. Raises ``RuntimeError`` if it exits or never gets ready.
    """
    port = free_port() if port is None else port
    port_args = ["--port", str(port)] if port_flag else []
    argv = [sys.executable, "-m", "supervisor.demo.echo", *port_args, *args]
    fd, name = tempfile.mkstemp(prefix="echo-", suffix=".stderr")
    os.close(fd)
    with open(name, "ab") as stderr:
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=_child_env(env), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    echo = EchoProc(port, proc, Path(name))
    if wait == "none":
        return echo
    deadline = time.monotonic() + timeout
    while not _ready(echo, wait):
        if proc.poll() is not None or time.monotonic() > deadline:
            text = echo.stderr_text()
            echo.stop()
            raise RuntimeError(f"echo provider {argv} did not get ready: {text}")
        time.sleep(0.05)
    return echo


def spawn_echoes() -> Iterator[Callable[..., EchoProc]]:
    """A fixture body (``pytest.fixture(spawn_echoes, name="spawn")``): start echo providers
    with given knobs (``start_echo``'s arguments); all are stopped when the test ends."""
    started: list[EchoProc] = []

    def _spawn(*args: str, **kwargs: Any) -> EchoProc:
        proc = start_echo(*args, **kwargs)
        started.append(proc)
        return proc

    yield _spawn
    for proc in started:
        proc.stop(timeout=3)
