"""Outlier ejection: how a provider's failed attempt takes it out of rotation, by its class.

The policy is the statistics' outcome hook (:class:`gateway.stats.Stats`). What each class
does is in :mod:`gateway.routing`'s docstring, beside the router, which sees an
``auth_failed`` provider's key or process change; the proxy skips ejected candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import FailureClass
from gateway.stats import Failure, Outcome, ProviderStats
from supervisor.config import GatewayConfig


@dataclass(frozen=True)
class OutlierPolicy:
    """Ejects a failing provider for a growing cool-down; a hook for :class:`Stats`."""

    after: int = 3
    base: float = 5.0
    cap: float = 120.0

    @classmethod
    def of(cls, gw: GatewayConfig) -> OutlierPolicy:
        return cls(gw.eject_after, gw.eject_base, gw.eject_max)

    def __call__(self, stats: ProviderStats, outcome: Outcome, now: float,
                 retry_after: float | None, failure: Failure | None = None) -> None:
        if outcome is Outcome.OK:
            stats.ejections = 0
            if stats.auth_blocked:
                stats.unblock()  # a panic-mode try got through: its key works again
            return
        if outcome is not Outcome.FAIL:
            return
        kind = failure.kind if failure is not None else None
        if kind is FailureClass.AUTH_FAILED:
            stats.block(now)
            return
        if retry_after or kind is FailureClass.RATE_LIMITED:
            stats.ejected_until = max(stats.ejected_until, now + (retry_after or self.base))
        if stats.consecutive_failures >= self.after and now >= stats.ejected_until:
            seconds = min(self.base * 2**stats.ejections, self.cap)
            stats.ejections += 1
            stats.ejected_until = now + seconds
