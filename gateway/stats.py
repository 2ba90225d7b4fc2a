"""Per-provider counters, kept by the proxy through one entry point: :meth:`Stats.observe`.

The proxy calls :meth:`Stats.start` when an attempt begins and :meth:`Stats.observe` exactly
once when it ends (from a ``finally``), so the in-flight count can never drift. A failed
attempt inside a failover is the one exception: its slot is given back at once
(:meth:`Stats.release`) and its verdict recorded when the request's attempt loop ends
(:meth:`Stats.verdict`), because only then is it known whether every provider failed the
request the same way (the poison-request rule, :func:`gateway.errors.same_failure_everywhere`),
which excuses them. The strategies and the outlier-ejection policy read these live numbers;
nothing else writes them.

What the status views may show of a provider's truth (typed, see :class:`ProviderStats`):
``failures`` (counts by :class:`~gateway.errors.FailureClass`, excused ones included),
``last_failure`` (a :class:`Failure`: class, the provider's own message, when) and
:meth:`ProviderStats.serving`.

Per call rather than per attempt, :meth:`Stats.call_ended` (from :mod:`gateway.calls`) adds
the tokens the provider reported, by model (``ProviderStats.tokens``), and the gateway's own
added time to :attr:`Stats.added`.

Latency is the time to the full answer for plain calls and the time to the first content of
streams. A failed attempt counts as slow: it is fed to the smoothed latency as at least
:data:`ERROR_LATENCY_S`, so ``response_time`` steers away from failing providers.
"""

from __future__ import annotations

import bisect
import enum
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gateway.errors import FailureClass

EWMA_ALPHA = 0.3
ERROR_LATENCY_S = 1.0
WINDOW = 20  # outcomes kept for the recent success rate ...
WINDOW_AGE_S = 60.0  # ... each for at most this long
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# the gateway's own added time per call: well under a millisecond when all is well
ADDED_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0)


class Outcome(enum.Enum):
    """How one attempt at one provider ended."""

    OK = "ok"  # a real answer, or a stream that ended cleanly
    FAIL = "fail"  # any FailureClass but client_error, blamed on the provider
    EXCUSED = "excused"  # the request's fault (client_error, or a poison request): no verdict
    CANCELLED = "cancelled"  # the client went away first: no verdict on the provider


class Serving(str, enum.Enum):
    """Whether a provider's answers are really answers (DESIGN.md ``serving``)."""

    OK = "ok"
    FAILING = "failing"
    RATE_LIMITED = "rate_limited"
    AUTH_FAILED = "auth_failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Failure:
    """One failed attempt as recorded: its class, the provider's own message, and when.

    ``message`` is what the provider said (its error message, shortened) or, when it said
    nothing, what the gateway saw ("connect error: ...", "the stream ended before any
    content"). ``status`` is its HTTP status, None when it never answered. ``at`` is wall-clock
    time (``time.time()``). ``blamed`` is False when the failure was excused as the request's
    fault (``client_error``, or the poison-request rule); then it is counted but does not
    weigh on ejection or ``serving``.
    """

    kind: FailureClass
    message: str
    status: int | None
    at: float
    blamed: bool = True


@dataclass(eq=False)
class ProviderStats:
    """Live counters of one provider. Survive routing-table rebuilds (keyed by name).

    ``failures`` counts failed attempts by class (excused ones too); ``last_failure`` is the
    latest :class:`Failure` (None before any); ``auth_blocked`` is True from an ``auth_failed``
    until the router sees the provider's key change or its process restart, or it answers
    (see :mod:`gateway.routing`); :meth:`serving` sums it up.
    """

    name: str
    requests: int = 0
    errors: int = 0
    in_flight: int = 0
    ewma_s: float | None = None
    last_sample: float = 0.0  # monotonic time of the last latency sample
    last_attempt_at: float | None = None  # monotonic start of the latest attempt (the canary's)
    consecutive_failures: int = 0
    ejections: int = 0  # ejections in a row; reset by a success
    ejected_until: float = 0.0  # monotonic; out of rotation until then
    recent: deque[tuple[float, bool]] = field(default_factory=lambda: deque(maxlen=WINDOW))
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    latency_sum: float = 0.0
    latency_count: int = 0
    failures: Counter[FailureClass] = field(default_factory=Counter)
    last_failure: Failure | None = None
    auth_blocked: bool = False
    blocked_at: float = 0.0  # monotonic time of the auth failure that blocked it
    # tokens the provider reported, by (model sent, "prompt" | "completion")
    tokens: Counter[tuple[str, str]] = field(default_factory=Counter)
    last_inner: str | None = None  # a unigw node's: the inner provider of its latest answer
    last_ok_at: float = 0.0  # monotonic time of its latest success
    excused: tuple[int, float] | None = None  # (request key, when): its latest poison excuse

    def may_excuse(self, key: int) -> bool:
        """The poison-request rule's second half (:func:`gateway.errors.same_failure_everywhere`
        is the first): may its failure of the request ``key`` be that request's fault? Not when,
        since its last success, it was already excused for a *different* request: two requests
        that every provider fails the same way, with no success in between, are an outage of
        what they share (one upstream site), not two bad requests. The same request again
        (a client's retry) stays excused."""
        last = self.excused
        return last is None or last[1] < self.last_ok_at or last[0] == key

    def serving(self, now: float) -> Serving:
        """What the recent outcomes say (``now`` is ``time.monotonic()``):

        * ``auth_failed`` while ``auth_blocked``;
        * ``unknown`` when no blamed outcome is younger than WINDOW_AGE_S (excused ones and
          cancelled streams say nothing about the provider);
        * ``ok`` when the latest one was a success;
        * ``rate_limited`` when it was a rate limit and the provider is still cooling;
        * ``failing`` otherwise (its latest outcome failed: see ``last_failure``).
        """
        if self.auth_blocked:
            return Serving.AUTH_FAILED
        if not self.recent or now - self.recent[-1][0] > WINDOW_AGE_S:
            return Serving.UNKNOWN
        if self.recent[-1][1]:
            return Serving.OK
        last = self.last_failure
        if last is not None and last.kind is FailureClass.RATE_LIMITED and (
                self.ejected_until > now):
            return Serving.RATE_LIMITED
        return Serving.FAILING

    def block(self, now: float) -> None:
        """Out of traffic until unblocked (an auth failure)."""
        self.auth_blocked, self.blocked_at, self.ejected_until = True, now, math.inf

    def unblock(self) -> None:
        """Back in traffic, with a clean slate of failures."""
        self.auth_blocked, self.ejected_until = False, 0.0
        self.consecutive_failures = self.ejections = 0

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


@dataclass(eq=False)
class Histogram:
    """Counts of observed values per bucket (``bounds``, then +Inf), their sum and number."""

    bounds: tuple[float, ...]
    counts: list[int] = field(init=False)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def add(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1


# Called after every verdict: (stats, outcome, now, retry_after, failure) → None.
OutcomeHook = Callable[[ProviderStats, Outcome, float, "float | None", "Failure | None"], None]


class Stats:
    """Every provider's :class:`ProviderStats`, and the one way to record what happened."""

    def __init__(self, on_outcome: OutcomeHook | None = None) -> None:
        self._by_name: dict[str, ProviderStats] = {}
        self.on_outcome = on_outcome
        self.added = Histogram(ADDED_BUCKETS)  # the gateway's own time per call, seconds

    def get(self, name: str) -> ProviderStats:
        """The counters of ``name``, created on first use."""
        stats = self._by_name.get(name)
        if stats is None:
            stats = self._by_name[name] = ProviderStats(name)
        return stats

    def all(self) -> list[ProviderStats]:
        return list(self._by_name.values())

    def call_ended(self, added_s: float, answered: str | None = None, model: str | None = None,
                   prompt: int | None = None, completion: int | None = None) -> None:
        """A call ended (:mod:`gateway.calls`): its added time, and the tokens ``answered`` (a
        provider) reported for ``model``, when it did."""
        self.added.add(added_s)
        if answered is not None and model is not None:
            tokens = self.get(answered).tokens
            if prompt:
                tokens[model, "prompt"] += prompt
            if completion:
                tokens[model, "completion"] += completion

    def start(self, stats: ProviderStats) -> float:
        """An attempt begins; returns its start time for :meth:`observe`."""
        stats.requests += 1
        stats.in_flight += 1
        stats.last_attempt_at = time.monotonic()
        return time.perf_counter()

    def observe(self, stats: ProviderStats, outcome: Outcome, seconds: float,
                retry_after: float | None = None, failure: Failure | None = None) -> None:
        """An attempt ended after ``seconds`` (full answer, or first content of a stream)."""
        self.release(stats)
        self.verdict(stats, outcome, seconds, retry_after, failure)

    def excuse(self, tried: Sequence[ProviderStats], key: int) -> bool:
        """Whether the providers ``tried``, which all failed the request ``key`` the same way,
        are excused (:meth:`ProviderStats.may_excuse`, each); if so it is recorded."""
        if not all(s.may_excuse(key) for s in tried):
            return False
        now = time.monotonic()
        for s in tried:
            s.excused = (key, now)
        return True

    def release(self, stats: ProviderStats) -> None:
        """An attempt ended; its verdict follows with :meth:`verdict` (see the docstring)."""
        stats.in_flight -= 1

    def verdict(self, stats: ProviderStats, outcome: Outcome, seconds: float,
                retry_after: float | None = None, failure: Failure | None = None) -> None:
        """Record how an attempt that already ended went."""
        now = time.monotonic()
        if outcome is Outcome.CANCELLED:
            return
        if failure is not None:
            stats.failures[failure.kind] += 1
            stats.last_failure = failure
        if outcome is Outcome.EXCUSED:
            return
        ok = outcome is Outcome.OK
        stats.recent.append((now, ok))
        if ok:
            stats.last_ok_at = now
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
            self.on_outcome(stats, outcome, now, retry_after, failure)
