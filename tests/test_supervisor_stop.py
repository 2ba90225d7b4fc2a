"""Stopping leaves nothing: stubborn providers, grandchildren, escaped children, crashed runs."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
from support.supervisor import (
    echo,
    free_port,
    marked_alive,
    row,
    run,
    script,
    until_state,
    write_config,
)

from supervisor.lifecycle.manager import Supervisor
from supervisor.proc.leftovers import record
from supervisor.proc.process import Child, close_pump, port_is_free
from supervisor.view import State

ESCAPE = """\
# Starts the real server in a session of its own (out of our process group), then idles.
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-m", "supervisor.demo.echo", "--port", sys.argv[1]],
                         start_new_session=True)
print(f"escape: server pid {child.pid}", flush=True)
while True:
    time.sleep(3600)
"""

DAEMON = """\
# Double-forks a daemon (new session, parent gone) that serves the port; the leader idles.
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        print(f"daemon: server pid {os.getpid()}", flush=True)
        sys.argv = ["echo", "--port", sys.argv[1]]
        from supervisor.demo.echo import main
        main()
    os._exit(0)
while True:
    time.sleep(3600)
"""

CRASHING_SUPERVISOR = """\
import asyncio, os, signal, sys
from supervisor.config import load
from supervisor.lifecycle.manager import Supervisor

async def main():
    sup = Supervisor(load(sys.argv[1]))
    await sup.up()
    assert await sup.wait_settled(30), sup.status()
    print(" ".join(str(r.pid) for r in sup.status()), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # crash: no down(), children stay behind

asyncio.run(main())
"""


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _pid_in_log(sup: Supervisor, name: str, pattern: str) -> int:
    text = "\n".join(sup.log_tail(name, 100) or [])
    m = re.search(pattern, text)
    assert m, text
    return int(m.group(1))


def test_provider_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, [echo("stubborn", port, "--ignore-sigterm")], stop_grace=1.5)

    async def body(sup: Supervisor) -> None:
        await until_state(sup, "stubborn", "ready")
        pid = row(sup, "stubborn").pid
        started = time.monotonic()
        answer = await sup.stop("stubborn")
        assert time.monotonic() - started >= 1.5  # it waited the grace, then SIGKILLed
        assert answer.state is State.STOPPED and _gone(pid) and port_is_free(port)

    run(config, body)


def test_stop_kills_the_grandchild_a_provider_spawned(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, [echo("parent", port, "--spawn-child")])

    async def body(sup: Supervisor) -> None:
        await until_state(sup, "parent", "ready")
        pid = row(sup, "parent").pid
        grandchild = _pid_in_log(sup, "parent", r"spawned child pid (\d+)")
        assert psutil.Process(grandchild).ppid() == pid
        await sup.stop("parent")
        assert _gone(pid) and _gone(grandchild) and port_is_free(port)

    run(config, body)


def test_stop_kills_a_child_that_left_the_group_and_holds_the_port(tmp_path: Path) -> None:
    (tmp_path / "escape.py").write_text(ESCAPE)
    port = free_port()
    provider = script("escape", port, "escape.py")
    provider["start"] = ["{python}", "escape.py", "{port}"]
    config = write_config(tmp_path, [provider])

    async def body(sup: Supervisor) -> None:
        await until_state(sup, "escape", "ready")
        server = _pid_in_log(sup, "escape", r"server pid (\d+)")
        assert psutil.Process(server).pid != row(sup, "escape").pid
        await sup.stop("escape")
        assert _gone(server) and port_is_free(port)
        assert marked_alive(config.state_dir) == []

    run(config, body)


def test_stop_kills_a_double_forked_daemon_by_its_marker(tmp_path: Path) -> None:
    (tmp_path / "daemon.py").write_text(DAEMON)
    port = free_port()
    provider = script("daemon", port, "daemon.py")
    provider["start"] = ["{python}", "daemon.py", "{port}"]
    config = write_config(tmp_path, [provider])

    async def body(sup: Supervisor) -> None:
        await until_state(sup, "daemon", "ready")
        server = _pid_in_log(sup, "daemon", r"server pid (\d+)")
        assert server not in [p.pid for p in psutil.Process(row(sup, "daemon").pid).children()]
        await sup.stop("daemon")
        assert _gone(server) and port_is_free(port)

    run(config, body)


def test_down_leaves_no_process_and_frees_every_port(tmp_path: Path) -> None:
    ports = [free_port() for _ in range(3)]
    config = write_config(tmp_path, [
        echo("a", ports[0]), echo("b", ports[1], "--spawn-child"),
        echo("c", ports[2], "--ignore-sigterm"),
    ])
    pids: list[int] = []

    async def body(sup: Supervisor) -> None:
        assert await sup.wait_settled(20)
        assert all(r.state is State.READY for r in sup.status())
        pids.extend(marked_alive(config.state_dir))
        assert len(pids) == 4  # three providers and one grandchild
        await sup.down()
        assert all(r.state is State.STOPPED for r in sup.status())
        await sup.down()  # idempotent

    run(config, body)
    assert all(_gone(p) for p in pids)
    assert marked_alive(config.state_dir) == []
    assert all(port_is_free(p) for p in ports)
    assert list((config.state_dir / "run" / "providers").glob("*.json")) == []


def test_next_up_kills_the_leftovers_of_a_crashed_supervisor(tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    config = write_config(tmp_path, [echo("a", ports[0]), echo("b", ports[1], "--spawn-child")])
    (tmp_path / "crash.py").write_text(CRASHING_SUPERVISOR)
    done = subprocess.run([sys.executable, "crash.py", str(config.path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == -9, done.stderr
    old = [int(x) for x in done.stdout.split()]
    orphans = marked_alive(config.state_dir)
    assert set(old) <= set(orphans) and len(orphans) == 3  # two providers and a grandchild
    assert not any(port_is_free(p) for p in ports)
    # An unrelated process whose pid is recorded with another create time must survive.
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record(config.state_dir, "ghost", bystander.pid, 12345.0, free_port())

        async def body(sup: Supervisor) -> None:
            assert await sup.wait_settled(20)
            assert [r.state for r in sup.status()] == ["ready", "ready"]
            assert all(_gone(p) for p in orphans)
            assert bystander.poll() is None

        run(config, body)
    finally:
        bystander.kill()
        bystander.wait()


def test_a_stop_that_comes_while_a_pipe_drains_is_not_swallowed() -> None:
    """The lifecycle task closes a crashed child's log pipe (up to 2 s while something still
    holds it); a stop cancelling it then must end it, not leave it to restart the provider."""
    async def main() -> tuple[bool, bool]:
        held = asyncio.Event()
        pump = asyncio.create_task(held.wait())  # a pipe that something keeps open
        child = Child(proc=None, create_time=0.0, started=0.0, pump=pump)  # type: ignore[arg-type]
        closing = asyncio.create_task(close_pump(child, timeout=30))
        await asyncio.sleep(0)  # it waits for the pump now
        closing.cancel()
        done, _ = await asyncio.wait({closing}, timeout=5)
        alive = not pump.done()  # left to the stop, which closes the pipe itself
        pump.cancel()
        return bool(done) and closing.cancelled(), alive

    assert asyncio.run(main()) == (True, True)
