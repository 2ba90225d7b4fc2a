"""The restart policy: when to restart a provider that exited, and when to give up.

A pure object with no I/O and an injectable clock and random source, so it is tested with a fake
clock. The supervisor asks it one question after every exit (or liveness failure):
:meth:`RestartPolicy.on_exit` answers with a :class:`Restart`: the delay to wait before the next
start, and whether the exits form a crash loop.

- A provider that was ready in this run (since its last start, even if a probe saw it go
  unhealthy just before its exit was noticed) restarts at once if its backoff is fresh (no exit
  since it last started over): one death of a working process (killed, out of memory) should
  cost its start time and nothing more. That immediate restart is used up until the backoff
  starts over (below), so a provider that keeps dying right after becoming ready gets the
  growing delays all the same, and a crash loop never restarts at once.
- Otherwise the delay starts at ``initial`` and doubles on each exit up to ``maximum``; jitter
  shortens it by up to ``jitter`` (a fraction), so providers that died together do not restart
  together, and the cap is never exceeded.
- A provider that stayed ready for ``reset_after`` seconds starts again from ``initial`` (and
  has its immediate restart back).
- ``crash_loop_max`` exits within ``crash_loop_window`` seconds is a crash loop. A crash loop
  never gives up (Kubernetes' CrashLoopBackOff, not systemd's ``StartLimitBurst``): the delay
  keeps doubling, now capped at ``crash_loop_max_delay`` instead of ``maximum``, so a provider
  killed from outside or waiting for its upstream comes back by itself. Only causes a retry
  cannot fix (missing secret or toolchain, clone or install failed) make a provider ``failed``.
- :meth:`reset` forgets everything (``unigw restart NAME``, or the retry after the failed
  cool-down).
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from supervisor.config import SupervisorConfig


@dataclass(frozen=True)
class Restart:
    """The answer to one exit: wait ``delay`` seconds, then start again."""

    delay: float
    crash_loop: bool  # the recent exits form a crash loop (the delay is then the longer cap)


@dataclass
class RestartPolicy:
    """Capped exponential restart delays with jitter, reset after stability, crash-loop limit."""

    initial: float
    maximum: float
    reset_after: float
    crash_loop_max: int
    crash_loop_window: float
    crash_loop_max_delay: float = 300.0
    jitter: float = 0.2
    clock: Callable[[], float] = time.monotonic
    rand: Callable[[], float] = random.random
    attempt: int = 0
    _exits: deque[float] = field(default_factory=deque, repr=False)
    _ready_since: float | None = None
    _at_once_used: bool = False  # the immediate restart after a ready exit was taken
    _ready_this_run: bool = False  # ready at some time since the process last started

    @classmethod
    def from_settings(cls, settings: SupervisorConfig) -> RestartPolicy:
        """The policy that ``supervisor:`` in providers.yaml describes."""
        return cls(
            initial=settings.backoff_initial,
            maximum=settings.backoff_max,
            reset_after=settings.backoff_reset_after,
            crash_loop_max=settings.crash_loop_max,
            crash_loop_window=settings.crash_loop_window,
            crash_loop_max_delay=settings.crash_loop_max_delay,
        )

    def on_ready(self) -> None:
        """The provider became ready: start timing how long it stays that way."""
        if self._ready_since is None:
            self._ready_since = self.clock()
        self._ready_this_run = True

    def on_not_ready(self) -> None:
        """The provider left ready; if it had been ready long enough, forget the backoff."""
        if self._ready_since is not None and self.clock() - self._ready_since >= self.reset_after:
            self.attempt = 0
            self._at_once_used = False
        self._ready_since = None

    def on_exit(self) -> Restart:
        """The provider exited or failed liveness: how long to wait, and whether it loops."""
        # a killed provider's probe can fail before its exit is seen: it was still serving
        was_ready, self._ready_this_run = self._ready_this_run, False
        self.on_not_ready()
        now = self.clock()
        self._exits.append(now)
        while self._exits and now - self._exits[0] > self.crash_loop_window:
            self._exits.popleft()
        crash_loop = len(self._exits) >= self.crash_loop_max
        if was_ready and self.attempt == 0 and not self._at_once_used and not crash_loop:
            self._at_once_used = True
            return Restart(0.0, crash_loop=False)
        cap = max(self.maximum, self.crash_loop_max_delay) if crash_loop else self.maximum
        return Restart(self.next_delay(cap), crash_loop)

    def next_delay(self, cap: float | None = None) -> float:
        """The delay for the current attempt, at most ``cap`` (``maximum``); count the attempt."""
        base = min(self.maximum if cap is None else cap,
                   self.initial * (2 ** min(self.attempt, 62)))
        self.attempt += 1
        return base * (1.0 - self.jitter * self.rand())

    @property
    def recent_exits(self) -> int:
        """Exits counted in the current crash-loop window."""
        now = self.clock()
        return sum(1 for t in self._exits if now - t <= self.crash_loop_window)

    def reset(self) -> None:
        """Forget every exit and the backoff (a fresh start)."""
        self.attempt = 0
        self._exits.clear()
        self._ready_since = None
        self._at_once_used = False
