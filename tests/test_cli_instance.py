"""A whole unigw instance driven by its command line: `up -d`, status, logs, control, hot
reload of providers.yaml, strategy, `down`. Real subprocesses, sockets and files throughout."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml
from support.echo import free_port
from support.supervisor import FAST, echo

from supervisor.cli.output import STATUS_COLUMNS
from supervisor.config import load
from supervisor.proc.instance import running

STATUS_FIELDS = {
    "name",
    "port",
    "state",
    "pid",
    "uptime_s",
    "restarts",
    "health",
    "health_ms",
    "last_error",
    "cpu_percent",
    "rss_bytes",
    "models",
    "warnings",
    "reqs",
    "errors",
    "in_flight",
    "latency_ms",
    "serving",
    "serving_class",
    "serving_error",
    "serving_error_at",
    "failures",
    "group",
}


def unigw(path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "supervisor.cli", *args, "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Instance:
    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "providers.yaml"
        self.gateway_port = free_port()
        self.gateway: dict[str, Any] = {}  # more gateway settings beside its port
        self.providers = [
            echo("a", free_port(), "--models", "m-a"),
            echo("b", free_port(), "--models", "m-b"),
        ]
        self.write()

    def write(self) -> None:
        doc = {
            "gateway": {"port": self.gateway_port, **self.gateway},
            "supervisor": FAST,
            "providers": self.providers,
        }
        self.path.write_text(yaml.safe_dump(doc))

    def status(self) -> dict[str, Any]:
        out = unigw(self.path, "status", "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def rows(self) -> dict[str, dict[str, Any]]:
        return {r["name"]: r for r in self.status()["providers"]}

    def url(self, route: str) -> str:
        return f"http://127.0.0.1:{self.gateway_port}{route}"


def cleanup(tmp_path: Path) -> None:
    """Whatever a test left running under ``tmp_path``: the instance and its providers."""
    for p in psutil.process_iter(["environ", "cmdline"]):
        try:
            ours = (p.info["environ"] or {}).get("UNIGW_STATE_DIR", "").startswith(str(tmp_path))
            if ours or str(tmp_path) in " ".join(p.info["cmdline"] or []):
                p.kill()
        except psutil.Error:
            pass


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[Instance]:
    inst = Instance(tmp_path)
    try:
        out = unigw(inst.path, "up", "-d")
        assert out.returncode == 0, out.stderr
        assert "running in the background" in out.stdout
        yield inst
        unigw(inst.path, "down")  # a no-op (exit 3) when the test stopped it already
    finally:
        cleanup(tmp_path)  # belt and braces: nothing survives a failed test


def test_up_d_again_says_one_is_running_and_starts_nothing(instance: Instance) -> None:
    first = running(load(instance.path).state_dir)
    assert first is not None
    out = unigw(instance.path, "up", "-d")
    assert out.returncode == 1, out.stdout
    assert "unigw is already running (pid" in out.stderr and "unigw down" in out.stderr
    assert "running in the background" not in out.stdout
    again = running(load(instance.path).state_dir)  # the first instance, untouched
    assert again is not None and again.pid == first.pid and again.alive


def test_up_d_with_the_gateway_port_taken_says_by_what(tmp_path: Path) -> None:
    inst = Instance(tmp_path)
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past a TIME_WAIT
        holder.bind(("127.0.0.1", inst.gateway_port))
        holder.listen()
        out = unigw(inst.path, "up", "-d")
    assert out.returncode == 1, out.stdout
    assert f"gateway: port {inst.gateway_port}" in out.stderr, out.stderr
    assert not (load(inst.path).state_dir / "unigw.log").exists()  # nothing was started


def test_status_json_is_get_providers_with_every_field(instance: Instance) -> None:
    until(lambda: all(r["state"] == "ready" for r in instance.rows().values()), 30, "ready")
    data = instance.status()
    assert data == httpx.get(instance.url("/providers")).json() | {"providers": data["providers"]}
    for row in data["providers"]:
        assert STATUS_FIELDS <= set(row), STATUS_FIELDS - set(row)
        assert row["pid"] and psutil.pid_exists(row["pid"])
        assert (row["serving"], row["serving_class"], row["failures"]["timeout"]) == (
            "unknown", None, 0)  # no traffic yet
    answer = httpx.post(instance.url("/v1/chat/completions"), timeout=10, json={
        "model": "m-a", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200
    table = unigw(instance.path, "status")
    assert table.returncode == 0
    header, *lines = table.stdout.splitlines()
    assert tuple(header.split()) == STATUS_COLUMNS
    assert [line.split()[:3] for line in lines] == [
        ["a", str(instance.providers[0]["port"]), "ready"],
        ["b", str(instance.providers[1]["port"]), "ready"],
    ]
    serving = header.index("SERVING")
    assert [line[serving:].split()[0] for line in lines] == ["ok", "unknown"]  # a answered


def test_logs_n_prints_the_last_lines_of_the_provider_output(instance: Instance) -> None:
    until(lambda: instance.rows()["a"]["state"] == "ready", 30, "a ready")
    out = unigw(instance.path, "logs", "a", "-n", "3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert 1 <= len(lines) <= 3
    full = unigw(instance.path, "logs", "a", "-n", "200").stdout
    assert "echo provider listening on http://127.0.0.1:" in full
    assert unigw(instance.path, "logs", "ghost").returncode == 1


def test_restart_stop_start_through_the_cli(instance: Instance) -> None:
    until(lambda: instance.rows()["a"]["state"] == "ready", 30, "a ready")
    before = instance.rows()["a"]
    out = unigw(instance.path, "restart", "a")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("a: ready (pid ")
    after = instance.rows()["a"]
    assert after["pid"] != before["pid"] and after["restarts"] == before["restarts"] + 1
    assert unigw(instance.path, "stop", "a").stdout.strip() == "a: stopped"
    assert instance.rows()["a"]["state"] == "stopped"
    assert unigw(instance.path, "start", "a").returncode == 0
    assert instance.rows()["a"]["state"] == "ready"
    missing = unigw(instance.path, "restart", "ghost")
    assert missing.returncode == 1
    assert "unknown provider 'ghost' (known: a, b) (HTTP 404)" in missing.stderr


def test_strategy_command_switches_the_running_gateway(instance: Instance) -> None:
    out = unigw(instance.path, "strategy")
    assert out.returncode == 0 and "* round_robin" in out.stdout
    out = unigw(instance.path, "strategy", "least_connections")
    assert out.returncode == 0 and "* least_connections" in out.stdout
    assert httpx.get(instance.url("/config")).json()["gateway"]["strategy"] == "least_connections"
    assert unigw(instance.path, "strategy", "fastest").returncode == 2


def test_editing_providers_yaml_adds_removes_and_changes_providers(instance: Instance) -> None:
    until(lambda: all(r["state"] == "ready" for r in instance.rows().values()), 30, "ready")
    pid_a, pid_b = instance.rows()["a"]["pid"], instance.rows()["b"]["pid"]
    port_b = instance.providers[1]["port"]
    instance.providers[1] = echo("b", port_b, "--models", "m-b2")  # changed
    instance.providers.append(echo("c", free_port(), "--models", "m-c"))  # added
    instance.write()
    until(lambda: instance.rows().get("c", {}).get("state") == "ready", 30, "c added")
    until(
        lambda: (
            instance.rows()["b"]["pid"] not in (None, pid_b)
            and instance.rows()["b"]["state"] == "ready"
        ),
        30,
        "b restarted with its new command",
    )
    assert instance.rows()["a"]["pid"] == pid_a  # untouched
    until(
        lambda: (
            {"id": "m-b2", "owned_by": "b"}
            in [
                {k: m[k] for k in ("id", "owned_by")}
                for m in httpx.get(instance.url("/v1/models")).json()["data"]
            ]
        ),
        15,
        "the gateway to learn b's new model",
    )
    del instance.providers[0]  # removed
    instance.write()
    until(lambda: "a" not in instance.rows(), 30, "a removed")
    assert not psutil.pid_exists(pid_a) or psutil.Process(pid_a).status() == "zombie"
    instance.path.write_text("providers: [\n")  # an invalid edit keeps the running config
    time.sleep(1.5)
    assert set(instance.rows()) == {"b", "c"}
    log = (instance.path.parent / ".unigw" / "unigw.log").read_text()
    assert "is not valid; keeping the running config" in log


def test_down_stops_everything_and_frees_the_ports(instance: Instance) -> None:
    until(lambda: all(r["state"] == "ready" for r in instance.rows().values()), 30, "ready")
    pids = [r["pid"] for r in instance.rows().values()]
    procs = [psutil.Process(p) for p in pids]
    out = unigw(instance.path, "down")
    assert out.returncode == 0, out.stderr
    assert [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    for port in [instance.gateway_port, *(p["port"] for p in instance.providers)]:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
    assert unigw(instance.path, "status").returncode == 3


def test_requests_reads_the_log_file_once_the_instance_is_down(instance: Instance) -> None:
    until(lambda: instance.rows()["a"]["state"] == "ready", 30, "a ready")
    answer = httpx.post(instance.url("/v1/chat/completions"), timeout=10, json={
        "model": "m-a", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200
    assert unigw(instance.path, "down").returncode == 0
    out = unigw(instance.path, "requests", "--json")
    assert out.returncode == 0, out.stderr
    assert "unigw: not running; the calls" in out.stderr and "requests.db kept" in out.stderr
    (row,) = json.loads(out.stdout)["requests"]
    assert (row["provider"], row["status"], row["route"]) == ("a", 200, "/v1/chat/completions")
    table = unigw(instance.path, "requests", "--provider", "b")
    assert table.returncode == 0 and len(table.stdout.splitlines()) == 1  # the header only


def test_status_and_check_warn_of_a_provider_exposed_on_all_interfaces(tmp_path: Path) -> None:
    inst = Instance(tmp_path)
    port = inst.providers[1]["port"]
    inst.providers[1] = echo("b", port, "--host", "0.0.0.0")
    inst.write()
    try:
        assert unigw(inst.path, "up", "-d").returncode == 0
        expected = f"b: listens on 0.0.0.0:{port}: exposed to the network"
        until(lambda: expected in unigw(inst.path, "status").stderr, 30, "the status warning")
        check = unigw(inst.path, "check")
        assert f"warning: {expected}" in check.stderr  # warnings on stderr, data on stdout
        assert "warning: a:" not in check.stderr and "warning" not in check.stdout
        assert unigw(inst.path, "down").returncode == 0
    finally:
        cleanup(tmp_path)


def test_logs_follow_prints_new_lines_as_they_are_written(instance: Instance) -> None:
    until(lambda: instance.rows()["a"]["state"] == "ready", 30, "a ready")
    follow = subprocess.Popen(
        [sys.executable, "-m", "supervisor.cli", "logs", "a", "-f", "-n", "1", "-c", str(instance.path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert unigw(instance.path, "restart", "a").returncode == 0
        pid = instance.rows()["a"]["pid"]
        assert follow.stdout is not None
        seen = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            seen.append(follow.stdout.readline())
            if f"started pid {pid}" in seen[-1]:
                break
        assert any(f"started pid {pid}" in line for line in seen), seen
    finally:
        follow.terminate()
        follow.wait(timeout=10)


def test_install_command_clones_and_installs_and_names_what_failed(tmp_path: Path) -> None:
    from support.supervisor import make_echo_repo, repo_provider, write_config

    url, sha = make_echo_repo(tmp_path / "src")
    config = write_config(tmp_path, [
        repo_provider("cloned", free_port(), url, sha),
        repo_provider("gone", free_port(), (tmp_path / "no-such-repo").as_uri(), sha),
        repo_provider("locked", free_port(), url, sha, key="${LOCKED_TOKEN}"),
    ])
    out = unigw(config.path, "install", "cloned")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "cloned: installed"
    assert "[cloned] install:" in out.stderr  # progress while installing
    assert (tmp_path / "apis" / "cloned" / ".git").is_dir()
    again = unigw(config.path, "install", "cloned")
    assert "install is current (stamp matches); skipping" in again.stderr
    out = unigw(config.path, "install")
    assert out.returncode == 1
    # data on stdout, problems on stderr; a secret is needed to run, not to install
    assert out.stdout.splitlines() == [
        "cloned: installed",
        "locked: installed; needs LOCKED_TOKEN to run (unigw secret set LOCKED_TOKEN)"]
    assert "unigw: gone: failed: clone failed:" in out.stderr
    assert "unigw: 1 of 3 provider(s) failed to install" in out.stderr
    assert (tmp_path / "apis" / "locked" / ".git").is_dir()
    assert unigw(config.path, "install", "ghost").returncode == 2


def test_down_after_unigw_was_killed_stops_what_it_left_running(instance: Instance) -> None:
    until(lambda: all(r["state"] == "ready" for r in instance.rows().values()), 30, "ready")
    pids = {name: r["pid"] for name, r in instance.rows().items()}
    record = instance.path.parent / ".unigw" / "run" / "instance.json"
    unigw_pid = int(json.loads(record.read_text())["pid"])
    os.kill(unigw_pid, signal.SIGKILL)
    until(lambda: not psutil.pid_exists(unigw_pid) or
          psutil.Process(unigw_pid).status() == psutil.STATUS_ZOMBIE, 10, "unigw gone")
    assert all(psutil.pid_exists(pid) for pid in pids.values())  # orphans hold their ports

    out = unigw(instance.path, "down")
    assert out.returncode == 0, out.stderr
    assert "stopped 2 process(es)" in out.stdout
    assert "of provider a" in out.stdout and "of provider b" in out.stdout
    assert "of provider a" not in out.stderr  # said once, in the list
    until(lambda: not any(psutil.pid_exists(pid) for pid in pids.values()), 10, "orphans gone")
    again = unigw(instance.path, "down")
    assert again.returncode == 3 and "not running" in again.stderr

