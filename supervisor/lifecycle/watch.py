"""Watching one running process: its exit, its probes, its resources, its sockets.

:class:`Watch` runs while a provider's process lives and returns, as a sentence, why it should
end: the process exited, it never answered within the startup grace, or it failed
``liveness_failures`` probes in a row. Everything else it reports through ``observe`` (each
probe's result, the readiness state it implies, and now and then CPU, memory and listening
sockets of the whole tree), which the runtime records. It never kills anything itself.

Cadence: until the first answer the process is probed every :data:`STARTUP_POLL` seconds, so
``ready`` follows the provider's own start within that (a refused connection costs about
70 µs of CPU); from the first answer on, every ``probe_interval``, on a grid of the clock that
all watches share, so the probes of all providers run in one wake-up (measured with 14 echo
providers at 2 s: the supervisor's idle CPU went from 0.67% to 0.27% of a core). The tree is
sampled (0.5-3 ms in a thread) every :data:`STARTUP_SAMPLE_EVERY` seconds while starting (a
tree that listens on the wrong port says so soon) and every :data:`SAMPLE_EVERY` seconds
after, never on every probe: at 14 providers a sample per probe was most of an idle
supervisor's CPU. Exits are seen at once (:func:`~supervisor.proc.process.wait_exit` waits
on a pidfd).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable

from supervisor.config import ProviderConfig, SupervisorConfig, is_loopback
from supervisor.lifecycle.probe import Prober, ProbeResult
from supervisor.proc.process import Child, TreeSample, TreeSampler, wait_exit
from supervisor.view import State

Observer = Callable[[ProbeResult, "State | None", "TreeSample | None"], None]
STARTUP_POLL = 0.05  # probe this often until the first answer, so ready is seen soon
STARTUP_SAMPLE_EVERY = 1.0  # sample the tree this often until the first answer
SAMPLE_EVERY = 10.0  # and this often after it


class Watch:
    """Probe a live child until a reason to end it appears (see the module docstring)."""

    def __init__(self, provider: ProviderConfig, settings: SupervisorConfig, child: Child,
                 prober: Prober, sampler: TreeSampler, observe: Observer) -> None:
        self.provider = provider
        self.settings = settings
        self.child = child
        self.prober = prober
        self.sampler = sampler
        self.observe = observe
        self.started_ok = False  # the startup probe has succeeded (it answered once)
        self.failures = 0  # consecutive unanswered probes since then
        self._sample_at = child.started  # when the next tree sample is due
        self.clock: Callable[[], float] = time.monotonic  # (a test's fake clock replaces it)

    async def run(self) -> str:
        """Until the child exits or must be restarted; return why."""
        while True:
            if await wait_exit(self.child, self._interval()):
                return describe_exit(self.child.returncode)
            result, sample = await self._probe()
            if self.child.returncode is not None:
                continue  # it died during the probe: report the exit, not the probe
            ended = self._liveness(result)
            if ended is not None:
                return ended
            self.observe(result, self._readiness(result), sample)

    async def _probe(self) -> tuple[ProbeResult, TreeSample | None]:
        """One probe, and a tree sample alongside when one is due."""
        now = self.clock()
        if now < self._sample_at:
            return await self.prober.probe(self.provider), None
        self._sample_at = now + (SAMPLE_EVERY if self.started_ok else STARTUP_SAMPLE_EVERY)
        return await asyncio.gather(self.prober.probe(self.provider),
                                    asyncio.to_thread(self.sampler.sample))

    def _interval(self) -> float:
        """Until the next probe: :data:`STARTUP_POLL` while starting; then up to the next
        multiple of ``probe_interval`` on the clock, so every provider's watch wakes in the same
        loop iteration and their probes run together (one wake-up, warm caches) instead of one
        timer each at its own phase."""
        interval = self.settings.probe_interval
        if not self.started_ok:
            return min(interval, STARTUP_POLL)
        return interval - self.clock() % interval

    def _liveness(self, result: ProbeResult) -> str | None:
        """A reason to restart, or None. Before the first answer only the grace counts."""
        health = self.provider.health
        if not self.started_ok:
            if result.alive:
                self.started_ok = True
                return None
            grace = self.settings.startup_grace
            if self.clock() - self.child.started >= grace:
                return f"no answer from {health} within the startup grace of {grace:g}s " \
                       f"({result.describe()})"
            return None
        if result.alive:
            self.failures = 0
            return None
        self.failures += 1
        if self.failures >= self.settings.liveness_failures:
            return f"liveness probe of {health} failed {self.failures} times in a row " \
                   f"({result.describe()})"
        return None

    def _readiness(self, result: ProbeResult) -> State | None:
        """READY or UNHEALTHY once started; None (stay starting) before."""
        if not self.started_ok:
            return None
        return State.READY if result.ready else State.UNHEALTHY


def describe_exit(code: int | None) -> str:
    """``exited with code 1`` or ``killed by SIGKILL``."""
    if code is None:
        return "still running"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def port_warnings(port: int, listens: set[tuple[str, int]]) -> list[str]:
    """What is wrong with where a tree listens: another port, or a non-loopback address."""
    out = []
    ports = sorted({p for _, p in listens})
    if ports and port not in ports:
        shown = ", ".join(str(p) for p in ports)
        out.append(f"listens on port {shown}, not on its assigned port {port}")
    for ip, p in sorted(listens):
        if not is_loopback(ip):
            addr = f"[{ip}]" if ":" in ip else ip
            out.append(f"listens on {addr}:{p}: exposed to the network")
    return out
