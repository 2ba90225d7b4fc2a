"""How often a watch probes and samples, with a fake clock: fast until the first answer, then
the probe interval; tree samples now and then, never on every fast startup probe."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from supervisor.config import ProviderConfig, SupervisorConfig
from supervisor.lifecycle import watch as watch_module
from supervisor.lifecycle.probe import ProbeResult
from supervisor.lifecycle.watch import SAMPLE_EVERY, STARTUP_POLL, Watch
from supervisor.proc.process import TreeSample

REFUSED = ProbeResult(False, False, 0.1, error="connection refused")
ANSWERED = ProbeResult(True, True, 0.1, status=200)


@dataclass
class FakeChild:
    started: float = 0.0
    returncode: int | None = None
    pid: int = 1


@dataclass
class Clock:
    """Time that moves only when the watch waits (its fake ``wait_exit``)."""

    now: float = 0.0
    waits: list[float] = field(default_factory=list)


class FakeProber:
    def __init__(self, answers: list[ProbeResult], clock: Clock) -> None:
        self.answers = answers
        self.clock = clock
        self.at: list[float] = []  # the fake time of each probe

    @property
    def count(self) -> int:
        return len(self.at)

    async def probe(self, provider: ProviderConfig) -> ProbeResult:
        self.at.append(self.clock.now)
        return self.answers.pop(0) if self.answers else ANSWERED


class FakeSampler:
    def __init__(self) -> None:
        self.count = 0

    def sample(self) -> TreeSample:
        self.count += 1
        return TreeSample()


def watch_for(monkeypatch: pytest.MonkeyPatch, rounds: int, answers: list[ProbeResult],
              interval: float = 2.0) -> tuple[Clock, FakeProber, FakeSampler, list[Any]]:
    """Run a watch for ``rounds`` waits on a fake clock; the child 'exits' after them."""
    clock = Clock()
    child = FakeChild()

    async def fake_wait_exit(_child: object, timeout: float | None = None) -> bool:
        assert timeout is not None
        clock.waits.append(timeout)
        clock.now += timeout
        if len(clock.waits) > rounds:
            child.returncode = 0
            return True
        return False

    monkeypatch.setattr(watch_module, "wait_exit", fake_wait_exit)
    monkeypatch.setattr(watch_module.asyncio, "to_thread", _inline)
    provider = ProviderConfig(name="p", port=1, runtime="python", start=("x",), health="/health")
    settings = SupervisorConfig(probe_interval=interval, startup_grace=60.0)
    prober, sampler, seen = FakeProber(list(answers), clock), FakeSampler(), []
    w = Watch(provider, settings, child, prober, sampler,  # type: ignore[arg-type]
              lambda result, state, sample: seen.append((result, state, sample)))
    w.clock = lambda: clock.now
    assert asyncio.run(w.run()) == "exited with code 0"
    return clock, prober, sampler, seen


async def _inline(fn: Any, *args: Any) -> Any:
    return fn(*args)


def test_a_starting_process_is_probed_fast_until_it_answers_then_at_the_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock, prober, _, seen = watch_for(monkeypatch, rounds=12, answers=[REFUSED] * 8)
    assert clock.waits[:9] == [STARTUP_POLL] * 9  # 8 refused probes, then the first answer
    # then on the interval's grid (every watch wakes together): 2 s, 4 s, 6 s of the clock
    assert prober.at[9:] == pytest.approx([2.0, 4.0, 6.0])
    assert prober.count == 12
    states = [state for _, state, _ in seen]
    assert states[:8] == [None] * 8 and set(states[8:]) == {watch_module.State.READY}


def test_tree_samples_are_not_taken_on_every_fast_startup_probe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, prober, sampler, seen = watch_for(monkeypatch, rounds=40, answers=[REFUSED] * 40)
    assert prober.count == 40  # two seconds of fake time at 50 ms
    assert 1 <= sampler.count <= 3  # about one a second while starting
    assert sum(sample is not None for _, _, sample in seen) == sampler.count


def test_after_the_start_the_tree_is_sampled_every_sample_period_not_every_probe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rounds = 1 + int(6 * SAMPLE_EVERY / 2.0)  # the first answer, then 6 sample periods
    _, prober, sampler, _ = watch_for(monkeypatch, rounds=rounds, answers=[])
    assert prober.count == rounds
    assert 6 <= sampler.count <= 8
