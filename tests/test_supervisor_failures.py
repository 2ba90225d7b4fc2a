"""Providers that cannot run fail alone, with the exact reason; the others run regardless."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from pathlib import Path

import psutil
import pytest
from support.supervisor import (
    echo,
    free_port,
    row,
    run,
    until,
    until_state,
    write_config,
)

from supervisor.install import toolchains
from supervisor.lifecycle.manager import Supervisor
from supervisor.view import State

FLOOD = """\
import sys, threading
def flood():
    line = "flood " * 200 + "\\n"
    while True:
        sys.stdout.write(line)
threading.Thread(target=flood, daemon=True).start()
from supervisor.demo.echo import main
main()
"""


def test_port_held_by_a_foreign_process_fails_with_who_holds_it(tmp_path: Path) -> None:
    held = free_port()
    config = write_config(tmp_path, [echo("blocked", held), echo("fine", free_port())])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", held))
        sock.listen()

        async def body(sup: Supervisor) -> None:
            assert await sup.wait_settled(20)
            me = psutil.Process()
            assert row(sup, "blocked").state is State.FAILED
            assert row(sup, "blocked").last_error == (
                f"port {held} is in use by pid {me.pid} ({me.name()})"
            )
            assert row(sup, "fine").state is State.READY

        run(config, body)


def test_missing_secret_fails_without_starting_and_others_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UNIGW_TEST_ABSENT_TOKEN", raising=False)
    secret = echo("secretive", free_port(), env={"TOKEN": "${UNIGW_TEST_ABSENT_TOKEN}"})
    config = write_config(tmp_path, [secret, echo("fine", free_port())])

    async def body(sup: Supervisor) -> None:
        assert await sup.wait_settled(20)
        r = row(sup, "secretive")
        assert r.state is State.FAILED and r.pid is None
        assert r.last_error == "missing secret UNIGW_TEST_ABSENT_TOKEN"
        assert r.missing_secrets == ("UNIGW_TEST_ABSENT_TOKEN",)
        assert not any("started pid" in ln for ln in sup.log_tail("secretive", 50) or [])
        assert row(sup, "fine").state is State.READY

    run(config, body)


def test_missing_toolchain_fails_with_the_reason_and_others_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dirs = os.environ["PATH"].split(os.pathsep)
    monkeypatch.setenv("PATH", os.pathsep.join(d for d in dirs if not (Path(d) / "go").exists()))
    assert shutil.which("go") is None
    gosvc = {"name": "gosvc", "port": free_port(), "runtime": "go", "start": ["go", "run", "."]}
    config = write_config(tmp_path, [gosvc, echo("fine", free_port())])
    expected = toolchains.check_problems(config.providers[0], config)

    async def body(sup: Supervisor) -> None:
        assert await sup.wait_settled(20)
        r = row(sup, "gosvc")
        assert r.state is State.FAILED
        assert r.last_error.startswith("go not found on PATH")
        assert [r.last_error] == expected
        assert row(sup, "fine").state is State.READY

    run(config, body)


def test_listening_elsewhere_or_on_all_interfaces_is_reported(tmp_path: Path) -> None:
    assigned, actual, exposed = free_port(), free_port(), free_port()
    wrong = echo("wrong", assigned)
    wrong["start"] = ["{python}", "-m", "supervisor.demo.echo", "--port", str(actual)]
    config = write_config(tmp_path, [wrong, echo("open", exposed, "--host", "0.0.0.0")],
                          startup_grace=30)

    async def body(sup: Supervisor) -> None:
        await until(lambda: row(sup, "wrong").warnings != (), 15, "a warning")
        message = f"listens on port {actual}, not on its assigned port {assigned}"
        assert row(sup, "wrong").warnings == (message,)
        assert row(sup, "wrong").last_error == message
        assert row(sup, "wrong").state is State.STARTING  # its assigned port never answers
        await until_state(sup, "open", "ready")
        await until(lambda: row(sup, "open").warnings != (), 5, "a warning")
        assert row(sup, "open").warnings == (
            f"listens on 0.0.0.0:{exposed}: exposed to the network",
        )

    run(config, body)


def test_flooding_provider_stalls_nothing_and_its_log_stays_capped(tmp_path: Path) -> None:
    (tmp_path / "flood.py").write_text(FLOOD)
    flood = echo("flood", free_port())
    flood["start"] = ["{python}", "flood.py", "--port", "{port}"]
    cap = 256 * 1024
    config = write_config(tmp_path, [flood, echo("quiet", free_port())],
                          log_max_bytes=cap, log_backups=2)

    async def body(sup: Supervisor) -> None:
        await until_state(sup, "flood", "ready")
        await until_state(sup, "quiet", "ready")
        probes = set()
        for _ in range(40):  # two seconds of flooding; the loop keeps probing and answering
            rows = {r.name: r for r in sup.status()}
            probes.add(rows["quiet"].probe_ms)
            assert rows["quiet"].state is State.READY and rows["flood"].state is State.READY
            await asyncio.sleep(0.05)
        assert len(probes) > 3
        logs = sorted((config.state_dir / "logs").glob("flood.log*"))
        assert [p.name for p in logs] == ["flood.log", "flood.log.1", "flood.log.2"]
        assert all(p.stat().st_size <= cap for p in logs)
        stopped = await sup.stop("flood")
        assert stopped.state is State.STOPPED

    run(config, body)
