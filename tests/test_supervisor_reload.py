"""Hot reload: added providers start, removed ones stop, changed ones restart, others stay."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psutil
import pytest
from support.echo import spawn_echoes
from support.supervisor import (
    echo,
    free_port,
    row,
    run,
    until_state,
    write_config,
)

from supervisor.lifecycle.manager import Supervisor
from supervisor.proc.process import port_is_free
from supervisor.view import State

spawn = pytest.fixture(spawn_echoes, name="spawn")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_reload_starts_added_stops_removed_restarts_changed_only(tmp_path: Path) -> None:
    pa, pb, pc, pd = (free_port() for _ in range(4))
    config = write_config(tmp_path, [echo("a", pa), echo("b", pb), echo("c", pc)])

    async def body(sup: Supervisor) -> None:
        assert await sup.wait_settled(20)
        before = {r.name: r.pid for r in sup.status()}
        version = sup.version
        edited = write_config(tmp_path, [
            echo("a", pa), echo("c", pc, models=["new-model"]), echo("d", pd),
        ])
        changes = await sup.reload(edited)
        assert changes == {"added": ["d"], "removed": ["b"], "changed": ["c"]}
        assert sup.version > version
        assert [r.name for r in sup.status()] == ["a", "c", "d"]
        assert _gone(before["b"]) and port_is_free(pb)
        assert await sup.wait_settled(20)
        rows = {r.name: r for r in sup.status()}
        assert rows["a"].pid == before["a"] and rows["a"].state is State.READY
        assert rows["c"].pid != before["c"] and rows["c"].state is State.READY
        assert rows["c"].models == ("new-model",) and _gone(before["c"])
        assert rows["d"].state is State.READY
        assert sup.log_tail("b", 5) is None

    run(config, body)


def test_reload_keeps_a_stopped_provider_stopped_and_honours_enabled(tmp_path: Path) -> None:
    pa, pb = free_port(), free_port()
    config = write_config(tmp_path, [echo("a", pa), echo("b", pb, enabled=False)])

    async def body(sup: Supervisor) -> None:
        assert await sup.wait_settled(20)
        await sup.stop("a")
        edited = write_config(tmp_path, [echo("a", pa, description="x"), echo("b", pb)])
        assert await sup.reload(edited) == {"added": [], "removed": [], "changed": ["a", "b"]}
        await until_state(sup, "b", "ready")  # enabled now: it starts
        await asyncio.sleep(0.5)
        assert row(sup, "a").state is State.STOPPED  # stopped by hand: the edit does not start it
        disabled = write_config(tmp_path, [echo("a", pa, description="x"),
                                           echo("b", pb, enabled=False)])
        await sup.reload(disabled)
        assert row(sup, "b").state is State.STOPPED and port_is_free(pb)

    run(config, body)


def test_only_starts_the_named_providers(tmp_path: Path) -> None:
    config = write_config(tmp_path, [echo("a", free_port()), echo("b", free_port())])

    async def body(sup: Supervisor) -> None:
        assert await sup.wait_settled(20)
        assert [r.state for r in sup.status()] == ["stopped", "ready"]

    run(config, body, only=["b"])


def test_concurrent_controls_of_one_provider_end_in_a_consistent_state(tmp_path: Path) -> None:
    config = write_config(tmp_path, [echo("a", free_port())])

    async def body(sup: Supervisor) -> None:
        await until_state(sup, "a", "ready")
        rows = await asyncio.gather(sup.restart("a"), sup.restart("a"), sup.start("a"))
        assert all(r.state is State.READY for r in rows)
        alive = [p for p in psutil.process_iter() if _is_echo_on(p, row(sup, "a").port)]
        assert [p.pid for p in alive] == [row(sup, "a").pid]  # exactly one process runs

    run(config, body)


def _is_echo_on(p: psutil.Process, port: int) -> bool:
    try:
        cmd = p.cmdline()
        return "supervisor.demo.echo" in cmd and str(port) in cmd and p.status() != "zombie"
    except psutil.Error:
        return False


def test_reload_adds_and_removes_instances_and_leaves_the_others_running(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(3)]

    def qw(count: int) -> dict[str, object]:
        item = echo("qw", 0, instances=count, ports=ports[:count])
        del item["port"]
        return item

    config = write_config(tmp_path, [qw(2)])

    async def body(sup: Supervisor) -> None:
        assert await sup.wait_settled(20)
        before = {r.name: r.pid for r in sup.status()}
        assert list(before) == ["qw#1", "qw#2"]
        changes = await sup.reload(write_config(tmp_path, [qw(3)]))
        assert changes == {"added": ["qw#3"], "removed": [], "changed": []}
        assert await sup.wait_settled(20)
        rows = {r.name: r for r in sup.status()}
        assert [(n, r.state, r.group) for n, r in rows.items()] == [
            (f"qw#{k}", State.READY, "qw") for k in (1, 2, 3)]
        assert {n: rows[n].pid for n in before} == before  # #1 and #2 untouched
        third = rows["qw#3"].pid
        assert third is not None and rows["qw#3"].port == ports[2]

        changes = await sup.reload(write_config(tmp_path, [qw(1)]))
        assert changes == {"added": [], "removed": ["qw#2", "qw#3"], "changed": []}
        assert [(r.name, r.pid) for r in sup.status()] == [("qw#1", before["qw#1"])]
        assert _gone(before["qw#2"]) and _gone(third)
        assert port_is_free(ports[1]) and port_is_free(ports[2])

    run(config, body)


def test_reload_turns_a_local_provider_remote_and_back(tmp_path: Path, spawn: Any) -> None:
    outside = spawn("--models", "m-out")
    port = free_port()
    local = echo("p", port, "--models", "m-here")
    remote = {"name": "p", "url": f"http://127.0.0.1:{outside.port}", "health": "/health",
              "models": ["m-out"]}
    config = write_config(tmp_path, [local])

    async def body(sup: Supervisor) -> None:
        assert await sup.wait_settled(20)
        child = row(sup, "p").pid
        assert child is not None
        assert await sup.reload(write_config(tmp_path, [remote])) == {
            "added": [], "removed": [], "changed": ["p"]}
        assert _gone(child) and port_is_free(port)  # its child stopped
        await until_state(sup, "p", "ready")  # probed where it runs
        now = row(sup, "p")
        assert (now.runtime, now.url, now.pid, now.probe_ok) == ("remote", remote["url"], None,
                                                                True)
        info = next(i for i in sup.providers() if i.name == "p")
        assert info.base_url == remote["url"] and info.models == ("m-out",)

        assert await sup.reload(write_config(tmp_path, [local])) == {
            "added": [], "removed": [], "changed": ["p"]}
        await until_state(sup, "p", "ready")
        back = row(sup, "p")
        assert back.runtime == "python" and back.url is None
        assert back.pid is not None and back.pid != child and back.port == port
        assert outside.proc.poll() is None  # the one something else runs is never touched

    run(config, body)
