"""Per-provider counters, kept by the proxy through one entry point: :meth:`Stats.observe`.

The proxy calls :meth:`Stats.start` when an attempt begins and :meth:`Stats.observe` exactly
once when it ends (from a ``finally``), so the in-flight count can never drift. The strategies
and the outlier-ejection policy read these live numbers; nothing else writes them.

Latency is the time to the full answer for plain calls and the time to the first byte for
streams. A failed attempt counts as slow: it is fed to the smoothed latency as at least
:data:`ERROR_LATENCY_S`, so ``response_time`` steers away from failing providers.
"""

from __future__ import annotations

import bisect
import enum
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

EWMA_ALPHA = 0.3
ERROR_LATENCY_S = 1.0
WINDOW = 20  # outcomes kept for the recent success rate ...
WINDOW_AGE_S = 60.0  # ... each for at most this long
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Outcome(enum.Enum):
    """How one attempt at one provider ended."""

    OK = "ok"  # the provider answered (any status but 5xx/429), or a stream ended cleanly
    FAIL = "fail"  # connect error, timeout, 5xx, 429, or a stream broken mid-way
    CANCELLED = "cancelled"  # the client went away first: no verdict on the provider


@dataclass(eq=False)
class ProviderStats:
    """Live counters of one provider. Survive routing-table rebuilds (keyed by name)."""

    name: str
    requests: int = 0
    errors: int = 0
    in_flight: int = 0
    ewma_s: float | None = None
    last_sample: float = 0.0  # monotonic time of the last latency sample
    consecutive_failures: int = 0
    ejections: int = 0  # ejections in a row; reset by a success
    ejected_until: float = 0.0  # monotonic; out of rotation until then
    recent: deque[tuple[float, bool]] = field(default_factory=lambda: deque(maxlen=WINDOW))
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    latency_sum: float = 0.0
    latency_count: int = 0

    def success_rate(self, now: float) -> tuple[int, int]:
        """(successes, outcomes) among the recent outcomes younger than WINDOW_AGE_S."""
        fresh = [ok for t, ok in self.recent if now - t <= WINDOW_AGE_S]
        return sum(fresh), len(fresh)

    def latency_ms(self) -> float | None:
        """The smoothed latency in milliseconds, or None before the first sample."""
        return None if self.ewma_s is None else round(self.ewma_s * 1000, 2)

    def _sample(self, seconds: float, now: float) -> None:
        self.ewma_s = seconds if self.ewma_s is None else (
            EWMA_ALPHA * seconds + (1 - EWMA_ALPHA) * self.ewma_s)
        self.last_sample = now


# Called after every observed outcome: (stats, outcome, now, retry_after) → None.
OutcomeHook = Callable[[ProviderStats, Outcome, float, "float | None"], None]


class Stats:
    """Every provider's :class:`ProviderStats`, and the one way to record what happened."""

    def __init__(self, on_outcome: OutcomeHook | None = None) -> None:
        self._by_name: dict[str, ProviderStats] = {}
        self.on_outcome = on_outcome

    def get(self, name: str) -> ProviderStats:
        """The counters of ``name``, created on first use."""
        stats = self._by_name.get(name)
        if stats is None:
            stats = self._by_name[name] = ProviderStats(name)
        return stats

    def all(self) -> list[ProviderStats]:
        return list(self._by_name.values())

    def start(self, stats: ProviderStats) -> float:
        """An attempt begins; returns its start time for :meth:`observe`."""
        stats.requests += 1
        stats.in_flight += 1
        return time.perf_counter()

    def observe(self, stats: ProviderStats, outcome: Outcome, seconds: float,
                retry_after: float | None = None) -> None:
        """An attempt ended after ``seconds`` (full answer, or first byte of a stream)."""
        stats.in_flight -= 1
        now = time.monotonic()
        if outcome is Outcome.CANCELLED:
            return
        ok = outcome is Outcome.OK
        stats.recent.append((now, ok))
        if ok:
            stats.consecutive_failures = 0
            stats._sample(seconds, now)
            stats.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
            stats.latency_sum += seconds
            stats.latency_count += 1
        else:
            stats.errors += 1
            stats.consecutive_failures += 1
            stats._sample(max(seconds, ERROR_LATENCY_S, 2 * (stats.ewma_s or 0.0)), now)
        if self.on_outcome is not None:
            self.on_outcome(stats, outcome, now, retry_after)
