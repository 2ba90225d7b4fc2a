"""The restart policy, with a fake clock: delays, jitter, reset after stability, crash loops."""

from __future__ import annotations

from supervisor.config import SupervisorConfig
from supervisor.lifecycle.backoff import Restart, RestartPolicy


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def policy(
    clock: FakeClock, *, jitter: float = 0.0, rand: float = 0.0, **kw: float
) -> RestartPolicy:
    settings = dict(initial=1.0, maximum=8.0, reset_after=60.0, crash_loop_max=100,
                    crash_loop_window=120.0)
    settings.update(kw)
    return RestartPolicy(**settings, jitter=jitter, clock=clock, rand=lambda: rand)  # type: ignore[arg-type]


def test_restart_delay_doubles_until_cap() -> None:
    clock = FakeClock()
    p = policy(clock)
    delays = []
    for _ in range(6):
        delays.append(p.on_exit().delay)
        clock.now += 1
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_jitter_shortens_the_delay_but_never_exceeds_the_cap() -> None:
    clock = FakeClock()
    low = policy(clock, jitter=0.25, rand=1.0)
    assert low.on_exit().delay == 0.75
    high = policy(clock, jitter=0.25, rand=0.0, initial=8.0)
    assert high.on_exit().delay == 8.0
    for _ in range(10):
        delay = high.on_exit().delay
        assert delay is not None and 6.0 <= delay <= 8.0


def test_delay_starts_over_after_staying_ready_for_reset_after() -> None:
    clock = FakeClock()
    p = policy(clock, reset_after=60.0)
    assert [p.on_exit().delay, p.on_exit().delay, p.on_exit().delay] == [1.0, 2.0, 4.0]
    p.on_ready()
    clock.now += 61
    assert p.on_exit().delay == 0.0  # started over: the immediate restart of a ready one
    assert p.on_exit().delay == 1.0


def test_a_ready_provider_that_exits_restarts_at_once_the_first_time_only() -> None:
    clock = FakeClock()
    p = policy(clock, reset_after=60.0)
    delays = []
    for _ in range(4):  # ready for 5 s, then dead: again and again
        p.on_ready()
        clock.now += 5
        delays.append(p.on_exit().delay)
        clock.now += 1
    assert delays == [0.0, 1.0, 2.0, 4.0]


def test_a_ready_provider_whose_probe_failed_before_its_exit_was_seen_restarts_at_once() -> None:
    # kill -9 under load: the next probe finds nothing listening (unhealthy) before the
    # supervisor has read the exit; the process was serving all the same
    clock = FakeClock()
    p = policy(clock)
    p.on_ready()
    clock.now += 5
    p.on_not_ready()
    clock.now += 0.1
    assert p.on_exit() == Restart(0.0, crash_loop=False)
    assert p.on_exit().delay == 1.0  # the next exit, with no ready in between, backs off


def test_a_provider_that_never_became_ready_gets_no_immediate_restart() -> None:
    clock = FakeClock()
    p = policy(clock)
    assert p.on_exit() == Restart(1.0, crash_loop=False)
    p.on_ready()  # ready now, but its backoff is not fresh: it died before
    assert p.on_exit().delay == 2.0


def test_the_immediate_restart_comes_back_after_staying_ready_for_reset_after() -> None:
    clock = FakeClock()
    p = policy(clock, reset_after=60.0)
    p.on_ready()
    assert p.on_exit().delay == 0.0
    p.on_ready()
    clock.now += 61
    assert p.on_exit().delay == 0.0
    p.reset()
    p.on_ready()
    assert p.on_exit().delay == 0.0  # and after a reset (`unigw restart`)


def test_a_crash_loop_never_restarts_at_once() -> None:
    clock = FakeClock()
    p = policy(clock, crash_loop_max=1, crash_loop_window=100.0)
    p.on_ready()
    restart = p.on_exit()
    assert restart.crash_loop and restart.delay == 1.0


def test_short_ready_period_keeps_the_backoff_growing() -> None:
    clock = FakeClock()
    p = policy(clock, reset_after=60.0)
    assert [p.on_exit().delay, p.on_exit().delay] == [1.0, 2.0]
    p.on_ready()
    clock.now += 30
    p.on_not_ready()  # unhealthy for a while: the ready period ended at 30 s
    p.on_ready()
    clock.now += 30
    assert p.on_exit().delay == 4.0


def test_crash_loop_detected_when_max_exits_fall_within_window() -> None:
    clock = FakeClock()
    p = policy(clock, crash_loop_max=3, crash_loop_window=10.0)
    assert not p.on_exit().crash_loop
    clock.now += 4
    assert not p.on_exit().crash_loop
    clock.now += 4
    assert p.on_exit().crash_loop
    assert p.recent_exits == 3


def test_a_crash_loop_keeps_trying_with_the_delay_capped_at_the_crash_loop_cap() -> None:
    clock = FakeClock()
    p = policy(clock, crash_loop_max=2, crash_loop_window=1000.0, crash_loop_max_delay=30.0)
    delays = [p.on_exit() for _ in range(8)]  # 1 2 4 8 | 16 30 30 30: past maximum=8
    assert [r.crash_loop for r in delays] == [False] + [True] * 7
    assert [r.delay for r in delays] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_a_crash_loop_ends_when_the_exits_leave_the_window() -> None:
    clock = FakeClock()
    p = policy(clock, crash_loop_max=2, crash_loop_window=10.0)
    p.on_exit()
    assert p.on_exit().crash_loop
    clock.now += 11
    p.on_ready()
    clock.now += 60  # stayed ready for reset_after: the backoff starts again
    restart = p.on_exit()
    assert not restart.crash_loop and restart.delay == 0.0  # (at once: it was ready)


def test_exits_spread_wider_than_the_window_are_not_a_crash_loop() -> None:
    clock = FakeClock()
    p = policy(clock, crash_loop_max=3, crash_loop_window=10.0)
    for _ in range(10):
        assert not p.on_exit().crash_loop
        clock.now += 6


def test_reset_forgets_exits_and_backoff() -> None:
    clock = FakeClock()
    p = policy(clock, crash_loop_max=2, crash_loop_window=100.0)
    assert p.on_exit().delay == 1.0
    assert p.on_exit().crash_loop
    p.reset()
    assert p.recent_exits == 0
    assert p.on_exit() == Restart(1.0, crash_loop=False)


def test_policy_from_supervisor_settings() -> None:
    s = SupervisorConfig(backoff_initial=0.5, backoff_max=2.0, crash_loop_max=7)
    p = RestartPolicy.from_settings(s)
    assert (p.initial, p.maximum, p.crash_loop_max) == (0.5, 2.0, 7)
    assert p.crash_loop_window == s.crash_loop_window
