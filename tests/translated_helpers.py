"""Run the real gateway (``python -m gateway.serve``) in front of echo providers, for any test.

    gw = start_gateway(tmp_path, [("one", echo.port, ["m-a"])], aliases={"claude-x": "m-a"})
    try:
        httpx.get(gw.url + "/health")
    finally:
        gw.stop()

The providers.yaml is written to ``folder``; each provider is expected at ``127.0.0.1:PORT``
(the gateway's StaticView probes it, nothing is spawned). ``start_gateway`` returns once
``GET /health`` says ``ready`` providers are ready.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from echo_helpers import REPO_ROOT, free_port

Provider = tuple[str, int, Sequence[str]]  # name, port, models


@dataclass
class GatewayProc:
    """A running gateway subprocess."""

    port: int
    proc: subprocess.Popen[bytes]
    stderr_path: Path

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the base URL of every API (OpenAI's adds ``/v1``)."""
        return f"http://127.0.0.1:{self.port}"

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL the process group."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout)
                break
            except subprocess.TimeoutExpired:
                continue
        self.stderr_path.unlink(missing_ok=True)


def write_config(folder: Path, port: int, providers: Sequence[Provider],
                 **gateway: Any) -> Path:
    """A providers.yaml for ``providers`` with ``gateway`` settings; its path."""
    entries = [{"name": name, "port": p, "runtime": "python", "health": "/health",
                "start": ["{python}", "-m", "supervisor.echo"], "models": list(models)}
               for name, p, models in providers]
    data = {"gateway": {"host": "127.0.0.1", "port": port, **gateway},
            "supervisor": {"probe_interval": 0.3, "probe_timeout": 1},
            "providers": entries}
    path = folder / "providers.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def start_gateway(folder: Path, providers: Sequence[Provider], *, ready: int | None = None,
                  timeout: float = 20.0, **gateway: Any) -> GatewayProc:
    """Start a gateway on a free port and wait until ``ready`` providers (default all) are."""
    port = free_port()
    config = write_config(folder, port, providers, **gateway)
    fd, name = tempfile.mkstemp(prefix="gateway-", suffix=".stderr")
    os.close(fd)
    env = {k: v for k, v in os.environ.items() if k != "UNIGW_API_KEY"}
    with open(name, "ab") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "gateway.serve", "--config", str(config)],
                                cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=stderr,
                                start_new_session=True)
    gw = GatewayProc(port, proc, Path(name))
    wanted = len(providers) if ready is None else ready
    deadline = time.monotonic() + timeout
    while _ready_count(gw) < wanted:
        if proc.poll() is not None or time.monotonic() > deadline:
            text = gw.stderr_text()
            gw.stop()
            raise RuntimeError(f"gateway did not get {wanted} providers ready: {text}")
        time.sleep(0.1)
    return gw


def _ready_count(gw: GatewayProc) -> int:
    try:
        return int(httpx.get(gw.url + "/health", timeout=0.5).json()["ready"])
    except (httpx.HTTPError, ValueError, KeyError):
        return -1
