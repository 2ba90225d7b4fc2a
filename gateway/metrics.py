"""``GET /metrics``: the gateway's per-provider numbers in the Prometheus text format (0.0.4)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from gateway.errors import FailureClass
from gateway.routing import Backend
from gateway.stats import BUCKETS
from supervisor.view import State

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_FAMILIES = (
    ("unigw_requests_total", "counter", "Attempts sent to each provider."),
    ("unigw_errors_total", "counter",
     "Failed attempts: connect error, timeout, 5xx, 429, or a stream broken mid-way."),
    ("unigw_in_flight", "gauge", "Requests in flight at each provider."),
    ("unigw_provider_ejected", "gauge", "1 while the provider is ejected from rotation."),
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def render(backends: Iterable[Backend], strategy: str) -> str:
    """The whole exposition, one family after another."""
    backends = list(backends)
    return "".join(_lines(backends, strategy))


def _lines(backends: list[Backend], strategy: str) -> Iterator[str]:
    now = time.monotonic()
    values = {
        "unigw_requests_total": lambda b: b.stats.requests,
        "unigw_errors_total": lambda b: b.stats.errors,
        "unigw_in_flight": lambda b: b.stats.in_flight,
        "unigw_provider_ejected": lambda b: int(b.stats.ejected_until > now),
    }
    for name, kind, help_text in _FAMILIES:
        yield f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"
        for b in backends:
            yield f'{name}{{provider="{_label(b.name)}"}} {values[name](b)}\n'
    yield from _attempts(backends)
    yield from _histogram(backends)
    yield ("# HELP unigw_provider_state 1 for each provider's current state.\n"
           "# TYPE unigw_provider_state gauge\n")
    for b in backends:
        label = _label(b.name)
        for state in State:
            on = int(b.info.state is state)
            yield f'unigw_provider_state{{provider="{label}",state="{state.value}"}} {on}\n'
    ready = sum(1 for b in backends if b.ready)
    yield ("# HELP unigw_providers_ready Providers ready to take traffic.\n"
           f"# TYPE unigw_providers_ready gauge\nunigw_providers_ready {ready}\n")
    yield ("# HELP unigw_strategy The load-balancing strategy in use.\n"
           f'# TYPE unigw_strategy gauge\nunigw_strategy{{strategy="{_label(strategy)}"}} 1\n')


def _attempts(backends: list[Backend]) -> Iterator[str]:
    """Ended attempts by outcome: ``ok`` (the answered ones, the latency histogram's count) or
    the failure class (excused ``client_error`` ones included). Attempts in flight, and
    streams whose client went away first, are in none."""
    name = "unigw_attempts_total"
    yield (f"# HELP {name} Ended attempts at each provider, by outcome (ok or failure class).\n"
           f"# TYPE {name} counter\n")
    for b in backends:
        label = _label(b.name)
        yield f'{name}{{provider="{label}",outcome="ok"}} {b.stats.latency_count}\n'
        for kind in FailureClass:
            count = b.stats.failures[kind]
            yield f'{name}{{provider="{label}",outcome="{kind.value}"}} {count}\n'


def _histogram(backends: list[Backend]) -> Iterator[str]:
    name = "unigw_latency_seconds"
    yield (f"# HELP {name} Latency of answered attempts (time to first byte for streams).\n"
           f"# TYPE {name} histogram\n")
    for b in backends:
        label = _label(b.name)
        total = 0
        for bound, count in zip((*BUCKETS, float("inf")), b.stats.buckets, strict=True):
            total += count
            le = "+Inf" if bound == float("inf") else _num(bound)
            yield f'{name}_bucket{{provider="{label}",le="{le}"}} {total}\n'
        yield f'{name}_sum{{provider="{label}"}} {_num(b.stats.latency_sum)}\n'
        yield f'{name}_count{{provider="{label}"}} {b.stats.latency_count}\n'
