"""One provider's row of ``GET /providers`` (and ``unigw status --json``): the supervisor's
:class:`~supervisor.view.ProviderStatus` plus the gateway's numbers for it, turned into JSON in
one place, :meth:`ProviderRow.to_json`.

The JSON keeps the names the dashboard and scripts read: ``health`` is ``"ok"``, ``"fail"``
or ``null`` (made from ``probe_ok``), ``health_ms`` the last probe's time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.stats import ProviderStats
from supervisor.view import ProviderStatus

_HEALTH = {True: "ok", False: "fail", None: None}


@dataclass(frozen=True)
class ProviderRow:
    """A status row and the gateway's counters for that provider, at one moment."""

    status: ProviderStatus
    reqs: int
    errors: int
    in_flight: int
    latency_ms: float | None

    @classmethod
    def of(cls, status: ProviderStatus, stats: ProviderStats) -> ProviderRow:
        return cls(status, stats.requests, stats.errors, stats.in_flight, stats.latency_ms())

    def to_json(self) -> dict[str, Any]:
        """The row as the HTTP answers carry it."""
        s = self.status
        return {
            "name": s.name, "port": s.port, "state": s.state.value, "pid": s.pid,
            "uptime_s": s.uptime_s, "restarts": s.restarts, "health": _HEALTH[s.probe_ok],
            "health_ms": s.probe_ms, "last_error": s.last_error, "cpu_percent": s.cpu_percent,
            "rss_bytes": s.rss_bytes, "runtime": s.runtime, "models": list(s.models),
            "warnings": list(s.warnings), "enabled": s.enabled, "description": s.description,
            "missing_secrets": list(s.missing_secrets), "reqs": self.reqs,
            "errors": self.errors, "in_flight": self.in_flight, "latency_ms": self.latency_ms,
        }
