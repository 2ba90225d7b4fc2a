"""Hot reload: added providers start, removed ones stop, changed ones restart, others stay."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psutil
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
