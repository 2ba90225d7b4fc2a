"""A provider's life under the supervisor: ready, crash, backoff, failed, liveness, grace.

Real echo providers (``python -m supervisor.demo.echo``) on free ports, with small timings.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
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

from supervisor.lifecycle.manager import Supervisor
from supervisor.view import State

FLAKY = """\
import os, sys
if os.path.exists("broken"):
    print("flaky: the file 'broken' exists, giving up", flush=True)
    sys.exit(2)
from supervisor.demo.echo import main
main()
"""


def test_local_provider_becomes_ready_with_its_numbers(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, [echo("a", port, models=["m1"], key="sk-a")])

    async def body(sup: Supervisor) -> None:
        assert await sup.wait_settled(20)
        await until(lambda: row(sup, "a").rss_bytes is not None, 5, "a sample")
        r = row(sup, "a")
        assert r.state is State.READY and r.probe_ok is True and r.probe_ms > 0
        assert r.pid == psutil.Process(r.pid).pid and r.rss_bytes > 1_000_000
        assert r.restarts == 0 and r.warnings == () and r.models == ("m1",)
        info = sup.providers()[0]
        assert info.ready and info.base_url == f"http://127.0.0.1:{port}" and info.key == "sk-a"
        answer = httpx.get(f"{info.base_url}/v1/models", timeout=5)
        assert answer.status_code == 200  # the echo really serves on its assigned port
        assert sup.version > 0

    run(config, body)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_killed_provider_is_restarted_once_and_ready_again(tmp_path: Path) -> None:
    # --spawn-child: the grandchild keeps the output pipe open after the leader dies, so the
    # exit must be noticed without waiting for the pipe to close.
    config = write_config(tmp_path, [echo("a", free_port(), "--spawn-child")])

    async def body(sup: Supervisor) -> None:
        await until_state(sup, "a", "ready")
        first = row(sup, "a").pid
        grandchild = psutil.Process(first).children()[0].pid
        os.kill(first, signal.SIGKILL)
        await until(lambda: row(sup, "a").pid not in (None, first)
                    and row(sup, "a").state is State.READY, 15, "a restarted and ready")
        r = row(sup, "a")
        assert r.restarts == 1
        assert r.last_error == "killed by SIGKILL"
        assert _gone(first) and _gone(grandchild)
        log = sup.log_tail("a", 100) or []
        assert any("restarting in 0.00s" in line for line in log)  # it was ready: at once

    run(config, body)


def test_a_crash_loop_keeps_backing_off_with_its_reason_and_recovers_by_itself(
    tmp_path: Path,
) -> None:
    (tmp_path / "flaky.py").write_text(FLAKY)
    (tmp_path / "broken").write_text("")
    flaky = echo("flaky", free_port())
    flaky["start"] = ["{python}", "flaky.py", "--port", "{port}"]
    config = write_config(tmp_path, [flaky, echo("ok", free_port())], crash_loop_max=4)

    def looping(sup: Supervisor) -> bool:
        r = row(sup, "flaky")
        return r.state is State.BACKOFF and (r.last_error or "").startswith("crash loop")

    async def body(sup: Supervisor) -> None:
        await until(lambda: looping(sup), 30, "flaky in a crash loop")
        r = row(sup, "flaky")
        assert r.last_error.startswith("crash loop: 4 exits within 60s; next try in ")
        assert "flaky: the file 'broken' exists, giving up" in r.last_error
        assert row(sup, "ok").state is State.READY
        notes = [ln for ln in sup.log_tail("flaky", 200) or [] if "restarting in" in ln]
        delays = [float(ln.rsplit(" ", 1)[1].rstrip("s")) for ln in notes]
        assert delays[0] < delays[1] < delays[2] <= 1.0  # 0.2 doubling, 20 % jitter, cap 1
        assert all(d <= 1.5 for d in delays)  # in the loop: the crash-loop cap, 1.5 s
        await asyncio.sleep(2)  # it keeps trying: never failed, more exits counted
        assert row(sup, "flaky").state in (State.BACKOFF, State.STARTING)
        assert row(sup, "flaky").restarts >= 4
        (tmp_path / "broken").unlink()  # the cause goes away: it comes back on its own
        await until_state(sup, "flaky", "ready", 15)
        answer = await sup.restart("flaky")
        assert answer.state is State.READY and answer.last_error is None

    run(config, body)


def test_hung_provider_is_restarted_by_the_liveness_probe(tmp_path: Path) -> None:
    hung = echo("hung", free_port(), "--hang-after", "3", health="/v1/models")
    config = write_config(tmp_path, [hung])

    async def body(sup: Supervisor) -> None:
        await until_state(sup, "hung", "ready")
        first = row(sup, "hung").pid
        await until(lambda: row(sup, "hung").restarts >= 1, 20, "a liveness restart")
        assert "liveness probe of /v1/models failed 3 times in a row (timed out)" in (
            "\n".join(sup.log_tail("hung", 100) or [])
        )
        assert _gone(first)
        await until(lambda: row(sup, "hung").probe_ok is True, 10, "the new process answers")

    run(config, body)


def test_slow_starter_is_not_killed_during_its_startup_grace(tmp_path: Path) -> None:
    slow = echo("slow", free_port(), "--startup-delay", "2.5")
    config = write_config(tmp_path, [slow], liveness_failures=1, startup_grace=6)

    async def body(sup: Supervisor) -> None:
        started = time.monotonic()
        await until(lambda: row(sup, "slow").pid is not None, 10, "a pid")
        pid = row(sup, "slow").pid
        assert row(sup, "slow").state is State.STARTING
        await until_state(sup, "slow", "ready", 15)
        assert time.monotonic() - started >= 2.5
        r = row(sup, "slow")
        assert r.restarts == 0 and r.pid == pid

    run(config, body)


def test_provider_silent_past_its_startup_grace_is_restarted(tmp_path: Path) -> None:
    mute = echo("mute", free_port(), "--startup-delay", "30")
    config = write_config(tmp_path, [mute], startup_grace=1)

    async def body(sup: Supervisor) -> None:
        await until(lambda: row(sup, "mute").restarts >= 1, 15, "a restart")
        assert row(sup, "mute").last_error.startswith(
            "no answer from /health within the startup grace of 1s (connection refused)"
        )

    run(config, body)


def test_start_stop_restart_return_the_row_when_done(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, [echo("a", port), echo("off", free_port(), enabled=False)])

    async def body(sup: Supervisor) -> None:
        assert await sup.wait_settled(20)
        assert row(sup, "off").state is State.STOPPED and row(sup, "off").pid is None
        stopped = await sup.stop("a")
        assert stopped.state is State.STOPPED and stopped.pid is None
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
        started = await sup.start("a")
        assert started.state is State.READY and started.pid
        again = await sup.restart("a")
        assert again.state is State.READY and again.pid != started.pid
        assert again.restarts == 1  # counted as a restart, but not as a crash:
        assert (await sup.restart("a")).restarts == 2  # no crash loop from asked-for ones
        assert (await sup.start("off")).state is State.READY
        for call in (sup.start, sup.stop, sup.restart):
            with pytest.raises(KeyError):
                await call("nope")
        assert sup.log_tail("nope", 5) is None

    run(config, body)
