"""Run the real gateway alone (``unigw gateway``) in front of real echo providers.

    with Cluster(tmp_path, [("a", ()), ("b", ("--latency", "0.05"))]) as c:
        c.client().chat.completions.create(model="echo-1", messages=[...])

Each provider is an echo subprocess on a free port; the gateway is a subprocess on another,
configured by a providers.yaml written in ``tmp_path``. Everything is stopped on exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx
import openai
import yaml
from prometheus_client.parser import text_string_to_metric_families
from support.echo import REPO_ROOT, EchoProc, free_port, start_echo

CLIENT = {"X-Unigw-Client": "test"}


def write_config(path: Path, providers: Sequence[dict[str, Any]], **gateway: Any) -> Path:
    """A providers.yaml for ``providers`` (name, port, models, weight...) at ``path``."""
    gw = {"port": free_port(), **gateway}
    sup = {"probe_interval": 0.3, "probe_timeout": 1.0}
    items = [{"runtime": "python", "start": ["{python}", "-m", "supervisor.demo.echo"],
              "health": "/health", "models": ["echo-1", "echo-2"], **p} for p in providers]
    path.write_text(yaml.safe_dump({"gateway": gw, "supervisor": sup, "providers": items}))
    return path


class GatewayProc:
    """A running ``unigw gateway`` subprocess (``python -m supervisor.cli gateway``)."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        data = yaml.safe_load(config.read_text())
        self.port = int(data["gateway"]["port"])
        self.url = f"http://127.0.0.1:{self.port}"
        fd, name = tempfile.mkstemp(prefix="gateway-", suffix=".stderr")
        os.close(fd)
        self.stderr_path = Path(name)
        full_env = {k: v for k, v in os.environ.items() if k != "UNIGW_API_KEY"}
        full_env.update(env or {})
        with open(name, "ab") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "supervisor.cli", "gateway", "--config", str(config)], cwd=REPO_ROOT,
                env=full_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=stderr, start_new_session=True)

    def wait_up(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.stderr_text()}")
            try:
                httpx.get(self.url + "/health", timeout=0.5)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"gateway never answered: {self.stderr_text()}")

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(5)
                break
            except subprocess.TimeoutExpired:
                continue
        self.stderr_path.unlink(missing_ok=True)


class Cluster:
    """Echo providers plus a gateway in front of them; a context manager."""

    def __init__(self, tmp: Path, providers: Iterable[tuple[str, Sequence[str]]],
                 provider_fields: dict[str, dict[str, Any]] | None = None,
                 env: dict[str, str] | None = None, wait_ready: bool = True,
                 **gateway: Any) -> None:
        self.echoes: dict[str, EchoProc] = {}
        self.gateway: GatewayProc | None = None
        try:
            for name, args in providers:
                self.echoes[name] = start_echo(*args)
            fields = provider_fields or {}
            items = [{"name": n, "port": e.port, **fields.get(n, {})}
                     for n, e in self.echoes.items()]
            self.config = write_config(tmp / "providers.yaml", items, **gateway)
            self.gateway = GatewayProc(self.config, env)
            self.gateway.wait_up()
            if wait_ready:
                self.wait_ready(len(self.echoes))
        except BaseException:
            self.close()
            raise

    @property
    def url(self) -> str:
        assert self.gateway is not None
        return self.gateway.url

    def client(self, **kw: Any) -> openai.OpenAI:
        """The official OpenAI client pointed at the gateway (no retries of its own)."""
        kw.setdefault("api_key", "sk-test")
        return openai.OpenAI(base_url=self.url + "/v1", max_retries=0, timeout=20, **kw)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=20)

    def wait_ready(self, n: int, timeout: float = 10.0) -> None:
        """Until the gateway sees ``n`` ready providers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = httpx.get(self.url + "/providers", timeout=2).json()
            if rows["summary"]["ready"] == n:
                return
            time.sleep(0.05)
        raise RuntimeError(f"not {n} ready providers: {rows}")

    def set_strategy(self, name: str) -> None:
        r = httpx.put(self.url + "/config", json={"strategy": name}, headers=CLIENT)
        assert r.status_code == 200, r.text

    def echo_stats(self, name: str) -> dict[str, Any]:
        return httpx.get(self.echoes[name].url + "/_echo/stats").json()

    def chat_requests(self, name: str) -> int:
        """How many chat completion requests provider ``name`` received."""
        return int(self.echo_stats(name)["by_path"].get("/v1/chat/completions", 0))

    def echo_config(self, name: str, **knobs: Any) -> None:
        r = httpx.post(self.echoes[name].url + "/_echo/config", json=knobs)
        assert r.status_code == 200, r.text

    def close(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
        for echo in self.echoes.values():
            echo.stop()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def chat(client: openai.OpenAI, text: str = "hello world", model: str = "echo-1",
         **kw: Any) -> tuple[str, str]:
    """One chat call: (provider that answered, reply text)."""
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], **kw)
    completion = raw.parse()
    return raw.headers["x-unigw-provider"], completion.choices[0].message.content or ""


def parse_prometheus(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples by sample name (``unigw_requests_total``, ``unigw_latency_seconds_bucket``), as
    ``prometheus_client``'s own parser reads the text (it raises on anything malformed)."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples
