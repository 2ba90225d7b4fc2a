"""One provider, several accounts: ``instances:`` run end to end. A real ``unigw up -d``
(supervisor and gateway), three real echo provider processes that each demand their own key
(read from ``.env`` through per-instance ``secrets:``), and the official openai client."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from support.echo import free_port
from support.gateway import chat, parse_prometheus
from support.supervisor import (
    FAST,
    echo,
    make_echo_repo,
    repo_provider,
    until_state,
    write_config,
)
from support.supervisor import run as run_supervisor
from test_cli_instance import Instance, cleanup, unigw, until

from supervisor.lifecycle.manager import Supervisor

KEYS = {f"ECHO_KEY_{k}": f"sk-instance-{k}-secret" for k in (1, 2, 3)}
QW = ("qw#1", "qw#2", "qw#3")


class Accounts(Instance):
    """Provider ``qw`` with three instances (three keys) and a plain provider ``solo``."""

    def __init__(self, tmp_path: Path) -> None:
        self.ports = [free_port() for _ in QW]
        super().__init__(tmp_path)

    def write(self) -> None:
        qw = echo("qw", 0, "--models", "m-q", "--api-key", "${ECHO_KEY}", key="${ECHO_KEY}",
                  ports=self.ports,
                  instances=[{"secrets": {"ECHO_KEY": name}} for name in KEYS])
        del qw["port"]
        doc = {"gateway": {"port": self.gateway_port}, "supervisor": FAST,
               "providers": [qw, echo("solo", free_port(), "--models", "m-s")]}
        self.path.write_text(yaml.safe_dump(doc))
        (self.path.parent / ".env").write_text("".join(f"{k}={v}\n" for k, v in KEYS.items()))

    def pids(self) -> dict[str, int]:
        return {name: row["pid"] for name, row in self.rows().items()}

    def ready(self, *names: str) -> bool:
        rows = self.rows()
        return all(rows[n]["state"] == "ready" for n in names or rows)


@pytest.fixture
def accounts(tmp_path: Path) -> Iterator[Accounts]:
    inst = Accounts(tmp_path)
    try:
        out = unigw(inst.path, "up", "-d")
        assert out.returncode == 0, out.stderr
        until(inst.ready, 30, "every instance ready")
        yield inst
        unigw(inst.path, "down")
    finally:
        cleanup(tmp_path)


def client(inst: Instance) -> openai.OpenAI:
    return openai.OpenAI(base_url=inst.url("/v1"), api_key="unused", max_retries=0,
                         timeout=15)


def test_each_instance_runs_with_its_own_key(accounts: Accounts) -> None:
    for k, port in enumerate(accounts.ports, start=1):
        url = f"http://127.0.0.1:{port}/v1/models"
        own = httpx.get(url, headers={"Authorization": f"Bearer {KEYS[f'ECHO_KEY_{k}']}"})
        other = httpx.get(url, headers={"Authorization": f"Bearer {KEYS['ECHO_KEY_1']}"})
        assert own.status_code == 200
        assert other.status_code == (200 if k == 1 else 401)
    shown = unigw(accounts.path, "status", "--json").stdout + httpx.get(
        accounts.url("/config")).text + unigw(accounts.path, "logs", "qw").stdout
    assert not any(key in shown for key in KEYS.values())  # never shown, never logged
    assert (accounts.path.parent / ".unigw" / "logs" / "qw#2.log").is_file()  # one each


def test_round_robin_spreads_over_instances_and_a_killed_one_costs_no_call(
        accounts: Accounts) -> None:
    llm = client(accounts)
    answered = Counter(chat(llm, f"call {i}", model="m-q")[0] for i in range(6))
    assert answered == {"qw#1": 2, "qw#2": 2, "qw#3": 2}

    before = accounts.pids()
    os.kill(before["qw#2"], signal.SIGKILL)
    after_kill = [chat(llm, f"after {i}", model="m-q") for i in range(9)]  # none raises
    assert all(text for _, text in after_kill)
    assert {name for name, _ in after_kill} <= set(QW)

    until(lambda: accounts.ready("qw#2") and accounts.pids()["qw#2"] != before["qw#2"], 30,
          "qw#2 restarted on its own")
    rows = accounts.rows()
    assert rows["qw#2"]["restarts"] == 1
    assert [(rows[n]["pid"], rows[n]["restarts"]) for n in ("qw#1", "qw#3", "solo")] == [
        (before[n], 0) for n in ("qw#1", "qw#3", "solo")]
    again = Counter(chat(llm, f"again {i}", model="m-q")[0] for i in range(6))
    assert again == {"qw#1": 2, "qw#2": 2, "qw#3": 2}  # back in rotation


def test_status_shows_the_three_instances_under_one_provider(accounts: Accounts) -> None:
    out = unigw(accounts.path, "status")
    assert out.returncode == 0, out.stderr
    _, *lines = out.stdout.splitlines()
    ports = accounts.ports
    assert [line.split()[:3] for line in lines] == [
        ["qw", ",".join(map(str, sorted(ports))) if sorted(ports) != list(
            range(min(ports), min(ports) + 3)) else f"{min(ports)}-{max(ports)}", "3/3"],
        *[[name, str(port), "ready"] for name, port in zip(QW, ports, strict=True)],
        ["solo", str(accounts.rows()["solo"]["port"]), "ready"]]
    assert [line[:6] for line in lines[1:4]] == ["  qw#1", "  qw#2", "  qw#3"]
    groups = {r["name"]: r["group"] for r in accounts.status()["providers"]}
    assert groups == {"qw#1": "qw", "qw#2": "qw", "qw#3": "qw", "solo": None}
    samples = parse_prometheus(httpx.get(accounts.url("/metrics")).text)
    metric: list[tuple[dict[str, Any], float]] = samples["unigw_provider_group"]
    assert sorted((s["provider"], s["group"], v) for s, v in metric) == [
        (n, "qw", 1.0) for n in QW]
    assert {s["provider"] for s, _ in samples["unigw_provider_state"]} == {*QW, "solo"}


def test_restart_of_an_instance_or_of_its_provider(accounts: Accounts) -> None:
    before = accounts.pids()
    out = unigw(accounts.path, "restart", "qw#2")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("qw#2: ready (pid ") and len(out.stdout.splitlines()) == 1
    middle = accounts.pids()
    assert [middle[n] == before[n] for n in (*QW, "solo")] == [True, False, True, True]

    out = unigw(accounts.path, "restart", "qw")
    assert out.returncode == 0, out.stderr
    assert [line.split(":")[0] for line in out.stdout.splitlines()] == list(QW)
    after = accounts.pids()
    assert [after[n] == middle[n] for n in (*QW, "solo")] == [False, False, False, True]
    assert unigw(accounts.path, "stop", "qw").returncode == 0
    assert [accounts.rows()[n]["state"] for n in QW] == ["stopped"] * 3


def test_an_instance_by_its_url_or_pin_and_the_provider_by_its_name(accounts: Accounts,
                                                                     ) -> None:
    one = httpx.get(accounts.url("/providers/qw%232")).json()
    assert (one["name"], one["group"], one["port"]) == ("qw#2", "qw", accounts.ports[1])
    group = httpx.get(accounts.url("/providers/qw")).json()
    assert group["group"] == "qw" and [r["name"] for r in group["providers"]] == list(QW)
    logs = httpx.get(accounts.url("/providers/qw/logs"), params={"n": 5}).json()["lines"]
    assert [line for line in logs if line.startswith("==> ")] == [f"==> {n} <==" for n in QW]
    out = unigw(accounts.path, "logs", "qw#3", "-n", "200")
    assert out.returncode == 0 and f"port {accounts.ports[2]}" in out.stdout.replace(":", " ")
    assert unigw(accounts.path, "logs", "qw", "-f").returncode == 2
    llm = client(accounts)
    pinned = Counter(chat(llm, "pinned", model="m-q", extra_headers={
        "X-Unigw-Provider": "qw"})[0] for _ in range(3))
    assert pinned == {"qw#1": 1, "qw#2": 1, "qw#3": 1}
    assert chat(llm, "one", model="m-q", extra_query={"provider": "qw#3"})[0] == "qw#3"


def test_instances_share_one_clone_and_one_install(tmp_path: Path) -> None:
    url, sha = make_echo_repo(tmp_path / "src")
    cloned = repo_provider("cl", 0, url, sha, instances=2, ports=[free_port(), free_port()])
    del cloned["port"]
    config = write_config(tmp_path, [cloned])
    progress: list[tuple[str, str]] = []

    async def body(sup: Supervisor) -> None:
        await until_state(sup, "cl#1", "ready", 90)
        await until_state(sup, "cl#2", "ready", 90)

    run_supervisor(config, body, progress=lambda name, line: progress.append((name, line)))
    assert sorted(p.name for p in config.apis_dir.iterdir()) == ["cl"]
    assert sorted(p.name for p in (config.state_dir / "venvs").iterdir()) == ["cl"]
    assert sorted(p.name for p in (config.state_dir / "stamps").iterdir()) == ["cl.json"]
    clones = [name for name, line in progress if line.startswith("cloning ")]
    installs = [name for name, line in progress if line.startswith("install: ")]
    skipped = [name for name, line in progress if line.startswith("install is current")]
    assert len(clones) == 1 and len(installs) == 1 and len(skipped) == 1
    assert {installs[0], skipped[0]} == {"cl#1", "cl#2"}
    logs = sorted(p.name for p in (config.state_dir / "logs").iterdir() if p.suffix == ".log")
    assert logs == ["cl#1.log", "cl#2.log"]
