"""``/metrics`` and ``unigw requests`` on a whole instance (``unigw up -d``: the supervisor runs
two echo providers, one failing with a real provider's 502, so the supervisor's numbers are
real), read with ``prometheus_client``'s own parser, after traffic and after a restart of the
instance."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from support.echo import free_port
from support.supervisor import FAST, echo

CALLS = 6
PER_PROVIDER = {  # the families with a sample per provider, whichever runs it
    "unigw_requests", "unigw_errors", "unigw_attempts", "unigw_in_flight",
    "unigw_provider_ejected", "unigw_latency_seconds", "unigw_provider_state",
    "unigw_provider_serving", "unigw_provider_restarts", "unigw_provider_rss_bytes",
    "unigw_provider_cpu_percent", "unigw_provider_probe_ok", "unigw_provider_probe_seconds",
    "unigw_provider_uptime_seconds",
}
GATEWAY = {"unigw_tokens", "unigw_providers_ready", "unigw_strategy", "unigw_added_seconds",
           "unigw_request_log_rows", "unigw_request_log_writer_cpu_seconds",
           "unigw_gateway_start_time_seconds"}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def unigw(path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "supervisor.cli", *args, "-c", str(path)],
                          capture_output=True, text=True, timeout=timeout)


class Instance:
    def __init__(self, tmp: Path) -> None:
        self.path = tmp / "providers.yaml"
        self.url = f"http://127.0.0.1:{free_port()}"
        doc = {"gateway": {"port": int(self.url.rsplit(":", 1)[1]), "strategy": "model_specific",
                           "routes": {"echo-1": ["bad", "good"]}, "eject_after": 1000},
               # a lenient probe: a provider a loaded machine stalls for a second must not
               # drop out of routing for a call, as every call here is to try both
               "supervisor": {**FAST, "probe_timeout": 5.0},
               "providers": [echo("bad", free_port(), "--failure", "text-502"),
                             echo("good", free_port())]}
        self.path.write_text(yaml.safe_dump(doc))

    def up(self) -> None:
        out = unigw(self.path, "up", "-d")
        assert out.returncode == 0, out.stderr
        self.wait_ready(30)

    def wait_ready(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while httpx.get(self.url + "/providers").json()["summary"]["ready"] < 2:
            assert time.monotonic() < deadline, "providers never ready"
            time.sleep(0.05)

    def history(self) -> str:
        """What the providers went through (for a failure's message)."""
        logs = self.path.parent / ".unigw" / "logs"
        return "\n".join(f"{name}: " + "".join(
            line for line in (logs / f"{name}.log").read_text().splitlines(keepends=True)
            if "state " in line) for name in ("bad", "good"))

    def metrics(self) -> tuple[set[str], Samples]:
        """The family names and every sample by (name, labels), as prometheus_client reads."""
        families, samples = set(), {}
        for family in text_string_to_metric_families(httpx.get(self.url + "/metrics").text):
            families.add(family.name)
            for s in family.samples:
                samples[s.name, tuple(sorted(s.labels.items()))] = s.value
        return families, samples

    def requests(self, *args: str) -> Any:
        out = unigw(self.path, "requests", *args)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout) if "--json" in args else out.stdout.splitlines()


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, tuple(sorted(labels.items()))]


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    tmp = tmp_path_factory.mktemp("instance")
    inst = Instance(tmp)
    try:
        inst.up()
        for i in range(CALLS):
            inst.wait_ready()  # each call is to try bad, then good
            r = httpx.post(inst.url + "/v1/chat/completions", timeout=20, json={
                "model": "echo-1", "messages": [{"role": "user", "content": f"one two {i}"}]})
            assert r.status_code == 200 and r.headers["x-unigw-provider"] == "good"
        deadline = time.monotonic() + 10
        while len(inst.requests("--json", "-n", "100")["requests"]) < CALLS:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        yield inst
    finally:
        unigw(inst.path, "down")
        for p in psutil.process_iter(["cmdline"]):
            if str(tmp) in " ".join(p.info["cmdline"] or []):
                p.kill()


def test_unigw_requests_shows_each_call_newest_first(instance: Instance) -> None:
    header, *lines = instance.requests()
    assert header.split() == ["TIME", "ROUTE", "MODEL", "PROVIDER", "STATUS", "TTFB", "TOTAL",
                              "TOKENS", "TRIED"]
    assert len(lines) == CALLS
    assert all("good" in line and " 200 " in line and "3+3" in line for line in lines)
    assert all(line.rstrip().endswith("bad:upstream_error good") for line in lines), (
        "\n".join(lines) + "\n" + instance.history())
    data = instance.requests("--json", "-n", "2")
    assert [r["model_asked"] for r in data["requests"]] == ["echo-1", "echo-1"]
    assert data["requests"][0]["id"] > data["requests"][1]["id"]
    assert len(instance.requests("--failed")) == 1  # the header: no call failed
    assert len(instance.requests("--provider", "bad")) == CALLS + 1  # tried every time
    assert len(instance.requests("--provider", "nobody")) == 1


def test_metrics_have_every_family_with_sane_values_after_traffic_and_a_restart(
        instance: Instance, tmp_path: Path) -> None:
    families, s = instance.metrics()
    assert PER_PROVIDER | GATEWAY <= families, PER_PROVIDER | GATEWAY - families
    for name in ("bad", "good"):
        assert value(s, "unigw_provider_state", provider=name, state="ready") == 1
        assert value(s, "unigw_provider_rss_bytes", provider=name) > 1 << 20
        assert value(s, "unigw_provider_cpu_percent", provider=name) >= 0
        assert value(s, "unigw_provider_uptime_seconds", provider=name) > 0
        assert value(s, "unigw_provider_probe_ok", provider=name) == 1
        assert 0 < value(s, "unigw_provider_probe_seconds", provider=name) < 5
        assert value(s, "unigw_provider_restarts_total", provider=name) == 0
    assert value(s, "unigw_requests_total", provider="good") == CALLS
    assert value(s, "unigw_attempts_total", provider="bad", outcome="upstream_error") == CALLS, (
        {k: v for k, v in s.items() if k[0] == "unigw_attempts_total"}, instance.history())
    assert value(s, "unigw_attempts_total", provider="good", outcome="ok") == CALLS
    assert value(s, "unigw_latency_seconds_count", provider="good") == CALLS
    assert value(s, "unigw_provider_serving", provider="good", serving="ok") == 1
    assert value(s, "unigw_provider_serving", provider="bad", serving="failing") == 1
    assert value(s, "unigw_tokens_total", provider="good", model="echo-1", kind="prompt") == (
        3 * CALLS)
    assert value(s, "unigw_tokens_total", provider="good", model="echo-1",
                 kind="completion") == 3 * CALLS
    added = [v for (n, _), v in s.items() if n == "unigw_added_seconds_bucket"]
    assert added == sorted(added) and added[-1] == CALLS
    assert 0 < value(s, "unigw_added_seconds_sum") < CALLS  # under a second each
    assert value(s, "unigw_request_log_rows_total") == CALLS
    assert 0 < value(s, "unigw_request_log_writer_cpu_seconds_total") < 10
    assert value(s, "unigw_providers_ready") == 2
    assert value(s, "unigw_strategy", strategy="model_specific") == 1
    started = value(s, "unigw_gateway_start_time_seconds")
    assert started <= time.time()

    assert unigw(instance.path, "restart", "good").returncode == 0
    _, s = instance.metrics()
    assert value(s, "unigw_provider_restarts_total", provider="good") == 1

    assert unigw(instance.path, "down").returncode == 0
    instance.up()
    again, s = instance.metrics()
    assert again == families  # every family is still there ...
    assert value(s, "unigw_requests_total", provider="good") == 0  # ... counting from zero
    assert value(s, "unigw_added_seconds_count") == 0
    assert value(s, "unigw_gateway_start_time_seconds") > started
    assert len(instance.requests("--json", "-n", "100")["requests"]) == CALLS  # the log stays
