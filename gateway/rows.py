"""One provider's row of ``GET /providers`` (and ``unigw status --json``): the supervisor's
:class:`~supervisor.view.ProviderStatus` plus the gateway's numbers for it, turned into JSON in
one place, :meth:`ProviderRow.to_json`.

The JSON keeps the names the dashboard and scripts read: ``health`` is ``"ok"``, ``"fail"``
or ``null`` (made from ``probe_ok``), ``health_ms`` the last probe's time. ``group`` is the
provider an instance (``NAME#2``) belongs to, ``null`` for a provider without ``instances:``.

Whether the provider really serves, from the gateway's outcomes (:mod:`gateway.stats`):

``serving``
    ``"ok"``, ``"failing"``, ``"rate_limited"``, ``"auth_failed"`` or ``"unknown"``
    (:meth:`~gateway.stats.ProviderStats.serving`: the latest blamed outcome of the last
    minute; ``unknown`` before any, or when the last is older).
``serving_class``, ``serving_error``, ``serving_error_at``
    The latest failed attempt: its :class:`~gateway.errors.FailureClass` value, the
    provider's own message (or what the gateway saw when it said nothing), at most
    :data:`ERROR_CHARS` characters, and when, in unix seconds (a float). All ``null`` before
    any failure. They stay after the provider recovers (``serving`` says whether it did), and
    an excused failure (``client_error``: the request's fault) is one too.
``failures``
    Failed attempts so far by class, every class present (``0`` when none), excused ones
    included.

A provider something else runs (``url:``) has its ``url``; a unigw node (``kind: unigw``)
has ``inner``, the node's provider that gave its latest answer (``null`` before any, and for
every other provider).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import FailureClass
from gateway.stats import Failure, ProviderStats, Serving
from supervisor.view import ProviderStatus

_HEALTH = {True: "ok", False: "fail", None: None}
ERROR_CHARS = 300  # a provider's message can be a whole HTML page: the start says enough


@dataclass(frozen=True)
class ProviderRow:
    """A status row and the gateway's counters for that provider, at one moment."""

    status: ProviderStatus
    reqs: int
    errors: int
    in_flight: int
    latency_ms: float | None
    serving: Serving = Serving.UNKNOWN
    last_failure: Failure | None = None
    failures: Mapping[FailureClass, int] = field(default_factory=dict)
    inner: str | None = None

    @classmethod
    def of(cls, status: ProviderStatus, stats: ProviderStats) -> ProviderRow:
        return cls(status, stats.requests, stats.errors, stats.in_flight, stats.latency_ms(),
                   stats.serving(time.monotonic()), stats.last_failure, dict(stats.failures),
                   stats.last_inner)

    def to_json(self) -> dict[str, Any]:
        """The row as the HTTP answers carry it."""
        s = self.status
        return {
            "name": s.name, "port": s.port, "state": s.state.value, "pid": s.pid,
            "uptime_s": s.uptime_s, "restarts": s.restarts, "health": _HEALTH[s.probe_ok],
            "health_ms": s.probe_ms, "last_error": s.last_error, "cpu_percent": s.cpu_percent,
            "rss_bytes": s.rss_bytes, "runtime": s.runtime, "models": list(s.models),
            "warnings": list(s.warnings), "enabled": s.enabled, "description": s.description,
            "missing_secrets": list(s.missing_secrets), "group": s.group or None,
            "reqs": self.reqs,
            "errors": self.errors, "in_flight": self.in_flight, "latency_ms": self.latency_ms,
            "url": s.url, "inner": self.inner, **self._serving_json(),
        }

    def _serving_json(self) -> dict[str, Any]:
        last = self.last_failure
        return {
            "serving": self.serving.value,
            "serving_class": last.kind.value if last else None,
            "serving_error": last.message[:ERROR_CHARS] if last else None,
            "serving_error_at": round(last.at, 3) if last else None,
            "failures": {kind.value: self.failures.get(kind, 0) for kind in FailureClass},
        }
