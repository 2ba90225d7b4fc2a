"""A ``url:`` provider's probe loop never outlives its stop, even when a cancel is lost inside
a probe (Python 3.11's ``wait_for`` dropped one that came as its probe finished), and a start
during a stop leaves one loop, not two. The prober here drops every cancel on purpose, and
blocks until the test lets it answer, so each moment is chosen by the test, not by timing."""

from __future__ import annotations

import asyncio
from pathlib import Path

from supervisor.config import ProviderConfig, loads
from supervisor.lifecycle.probe import ProbeResult
from supervisor.lifecycle.remote import RemoteRuntime
from supervisor.lifecycle.runtime import Shared
from supervisor.view import State

CONFIG = """
supervisor: {probe_interval: 0.05, probe_timeout: 1}
providers:
  - {name: far, url: "http://127.0.0.1:9", health: /health}
"""


class CancelDropping:
    """A prober whose probe waits until released and swallows a cancel meanwhile."""

    def __init__(self) -> None:
        self.calls = 0
        self.dropped = 0
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def probe(self, provider: ProviderConfig) -> ProbeResult:
        self.calls += 1
        self.entered.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.dropped += 1  # as if the answer came at the same moment: the cancel is lost
        return ProbeResult(True, True, 1.0, status=200)

    async def models(self, provider: ProviderConfig) -> None:
        return None


def remote(tmp_path: Path) -> tuple[RemoteRuntime, CancelDropping]:
    config = loads(CONFIG, tmp_path / "providers.yaml", environ={})
    prober = CancelDropping()
    shared = Shared(config, tmp_path / ".unigw", tmp_path / "apis", lambda: None)
    shared.prober = prober  # type: ignore[assignment]
    return RemoteRuntime(config.providers[0], shared), prober


async def stopped(rt: RemoteRuntime) -> bool:
    """Whether ``rt.stop()`` returns within 5 s (asyncio.wait: a bound that cancels nothing,
    so a stop that hangs is seen, not ended by the bound's own cancel)."""
    done, _ = await asyncio.wait({asyncio.create_task(rt.stop())}, timeout=5)
    return bool(done)


def loops() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "remote-far" and not t.done()]


def test_a_stop_ends_the_loop_though_its_probe_drops_the_cancel(tmp_path: Path) -> None:
    async def main() -> None:
        rt, prober = remote(tmp_path)
        rt.launch()
        await prober.entered.wait()
        assert await stopped(rt)
        assert prober.dropped == 1 and rt.state is State.STOPPED
        assert loops() == [] and prober.calls == 1  # it probed no more after its stop

    asyncio.run(main())


def test_a_start_during_a_stop_leaves_one_loop(tmp_path: Path) -> None:
    async def main() -> None:
        rt, prober = remote(tmp_path)
        rt.launch()
        await prober.entered.wait()
        stopping = asyncio.create_task(rt.stop())
        await asyncio.sleep(0)  # the stop has cancelled the loop and waits for it
        rt.launch()  # a start comes meanwhile: the old loop must not carry on beside it
        prober.release.set()
        assert (await asyncio.wait({stopping}, timeout=5))[0]  # it returned
        assert len(loops()) == 1 and prober.dropped == 1
        await asyncio.sleep(0.3)  # several probe intervals
        assert len(loops()) == 1 and rt.state is State.READY
        assert await stopped(rt) and loops() == []

    asyncio.run(main())
