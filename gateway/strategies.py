"""Load-balancing strategies: small classes with one ``pick`` method, found by name.

The shape is Starlette's ``convertors.py``: a base class, one implementation per strategy, and a
name → class table, :data:`STRATEGIES`. Nothing outside this module compares strategy names.

``pick(candidates, ctx)`` gets the providers that may take this request right now: ready, able
to serve the model, not yet tried for this request, and not ejected (unless all are). It must
return one of them. What a strategy needs to know about past traffic (in-flight counts,
smoothed latency, recent outcomes) it reads from each candidate's ``stats``, which the proxy
keeps through its one :meth:`gateway.stats.Stats.observe` call per attempt; a strategy with
state of its own (a rotation position, current weights) keeps it on its instance.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gateway.stats import ProviderStats

STALE_SAMPLE_S = 10.0  # response_time re-measures a provider whose last sample is this old
HEALTH_EXPONENT = 3  # health_based: weight = success_rate ** HEALTH_EXPONENT


class Candidate(Protocol):
    """What a strategy may look at: the routing table's backends satisfy this."""

    name: str
    index: int  # position in providers.yaml
    weight: int
    stats: ProviderStats
    probe_ok: bool | None
    probe_ms: float | None


_RNG = random.Random()


@dataclass
class PickContext:
    """The request being routed."""

    model: str
    now: float = 0.0  # monotonic
    routes: Mapping[str, Sequence[str]] = field(default_factory=dict)
    rng: random.Random = field(default_factory=lambda: _RNG)


def _index(c: Candidate) -> int:
    return c.index


class Strategy:
    """Base class: choose one of ``candidates`` (never empty)."""

    name = ""

    def pick(self, candidates: Sequence[Candidate], ctx: PickContext) -> Candidate:
        raise NotImplementedError


class RoundRobin(Strategy):
    """Strict rotation in providers.yaml order: the next candidate after the last one picked."""

    name = "round_robin"

    def __init__(self) -> None:
        self._last = -1

    def pick(self, candidates: Sequence[Candidate], ctx: PickContext) -> Candidate:
        after = [c for c in candidates if c.index > self._last]
        chosen = min(after or candidates, key=_index)
        self._last = chosen.index
        return chosen


class LeastConnections(Strategy):
    """Fewest in-flight requests; ties broken at random."""

    name = "least_connections"

    def pick(self, candidates: Sequence[Candidate], ctx: PickContext) -> Candidate:
        fewest = min(c.stats.in_flight for c in candidates)
        return ctx.rng.choice([c for c in candidates if c.stats.in_flight == fewest])


class ResponseTime(Strategy):
    """Lowest smoothed latency; unmeasured (or long unmeasured) providers are tried first.

    Errors reach the smoothed latency as slow samples (see :mod:`gateway.stats`). A provider
    whose last sample is older than :data:`STALE_SAMPLE_S` counts as unmeasured again, so a
    provider that was slow once is re-measured now and then instead of being shunned forever.
    """

    name = "response_time"

    def pick(self, candidates: Sequence[Candidate], ctx: PickContext) -> Candidate:
        unmeasured = [c for c in candidates if c.stats.ewma_s is None
                      or ctx.now - c.stats.last_sample > STALE_SAMPLE_S]
        if unmeasured:  # one at a time: the least busy of them
            return min(unmeasured, key=lambda c: c.stats.in_flight)
        return min(candidates, key=lambda c: c.stats.ewma_s or 0.0)


class Random(Strategy):
    """Uniform."""

    name = "random"

    def pick(self, candidates: Sequence[Candidate], ctx: PickContext) -> Candidate:
        return ctx.rng.choice(candidates)


class WeightedRoundRobin(Strategy):
    """nginx's smooth weighted round robin: weights 5:1:1 give a a b a c a a, never a burst.

    Each pick adds every candidate's weight to its current value, takes the largest, and
    subtracts the total of the weights from the one taken.
    """

    name = "weighted_round_robin"

    def __init__(self) -> None:
        self._current: dict[str, int] = {}

    def pick(self, candidates: Sequence[Candidate], ctx: PickContext) -> Candidate:
        current = self._current
        total, best, best_value = 0, candidates[0], None
        for c in candidates:
            value = current.get(c.name, 0) + c.weight
            current[c.name] = value
            total += c.weight
            if best_value is None or value > best_value:
                best, best_value = c, value
        current[best.name] -= total
        return best


class HealthBased(Strategy):
    """Weighted random by recent success rate and probe results.

    A candidate's weight is its recent success rate (Laplace-smoothed over the last outcomes of
    the past minute) to the power :data:`HEALTH_EXPONENT`, halved when its last probe failed and
    lowered a little by a slow probe. A provider failing half its calls gets about an eighth of
    a healthy one's share; one failing all of them almost nothing, until its old outcomes age
    out of the window and it is tried again.
    """

    name = "health_based"

    def pick(self, candidates: Sequence[Candidate], ctx: PickContext) -> Candidate:
        weights = [self.score(c, ctx.now) for c in candidates]
        return ctx.rng.choices(list(candidates), weights)[0]

    @staticmethod
    def score(c: Candidate, now: float) -> float:
        ok, n = c.stats.success_rate(now)
        rate = (ok + 1) / (n + 2)
        score = rate**HEALTH_EXPONENT
        if c.probe_ok is False:
            score /= 2
        if c.probe_ms:
            score /= 1 + c.probe_ms / 1000
        return score


class ModelSpecific(Strategy):
    """Follow gateway.routes[model]: the first listed candidate wins; else round robin."""

    name = "model_specific"

    def __init__(self) -> None:
        self._fallback = RoundRobin()

    def pick(self, candidates: Sequence[Candidate], ctx: PickContext) -> Candidate:
        by_name = {c.name: c for c in candidates}
        for name in ctx.routes.get(ctx.model, ()):
            if name in by_name:
                return by_name[name]
        return self._fallback.pick(candidates, ctx)


STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (RoundRobin, LeastConnections, ResponseTime, Random, WeightedRoundRobin,
                HealthBased, ModelSpecific)
}


def make(name: str) -> Strategy:
    """A fresh instance of the strategy called ``name`` (KeyError if there is none)."""
    return STRATEGIES[name]()
