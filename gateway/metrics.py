"""``GET /metrics``: the gateway's numbers in the Prometheus text format, by ``prometheus_client``.

One custom collector, :class:`GatewayCollector`, reads at scrape time what the gateway keeps
anyway: each provider's :class:`~gateway.stats.ProviderStats`, the router's backends, the
view's :class:`~supervisor.view.ProviderStatus` (the supervisor's numbers) and the request
log's count. Nothing is kept per request for it. Its registry holds only this collector (no
default process or platform collectors). Every family is always present, with a sample per
provider where the number is known (a process's RSS and CPU only when the supervisor runs it).

Per provider (label ``provider``): ``unigw_requests_total``, ``unigw_errors_total``,
``unigw_attempts_total{outcome}`` (``ok`` or a failure class), ``unigw_in_flight``,
``unigw_provider_ejected``, ``unigw_latency_seconds`` (histogram), ``unigw_provider_state{state}``,
``unigw_provider_serving{serving}``, ``unigw_provider_restarts_total``,
``unigw_provider_rss_bytes``, ``unigw_provider_cpu_percent``, ``unigw_provider_probe_ok``,
``unigw_provider_probe_seconds``, ``unigw_provider_uptime_seconds``,
``unigw_tokens_total{model,kind}``. ``unigw_provider_group{provider,group}`` is 1 for each
instance (``NAME#2``) of a provider with ``instances:`` (``group``: ``NAME``), to add its
instances up: ``sum by (group) (unigw_requests_total * on (provider) group_left (group)
unigw_provider_group)``. For the gateway: ``unigw_providers_ready``,
``unigw_strategy{strategy}``, ``unigw_added_seconds`` (histogram of its own added time per
call, see :mod:`gateway.calls`), ``unigw_request_log_rows_total``,
``unigw_request_log_writer_cpu_seconds_total``, ``unigw_gateway_start_time_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from gateway.errors import FailureClass
from gateway.routing import Backend
from gateway.stats import BUCKETS, Histogram, Serving
from supervisor.view import ProviderStatus, State

if TYPE_CHECKING:
    from gateway.app import Gateway

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
P = ["provider"]


class GatewayCollector(Collector):
    """Every family of the module docstring, read from the gateway at each scrape."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def collect(self) -> Iterator[Metric]:
        gw = self.gateway
        backends = list(gw.router.table().backends)
        yield from _traffic(backends)
        yield from _provider_states(backends, time.monotonic())
        statuses = gw.view.status()
        yield from _processes(statuses)
        yield _groups(statuses)
        yield _tokens(backends)
        ready = sum(1 for b in backends if b.ready)
        yield GaugeMetricFamily("unigw_providers_ready", "Providers ready to take traffic.",
                                value=ready)
        strategy = GaugeMetricFamily("unigw_strategy", "The load-balancing strategy in use.",
                                     labels=["strategy"])
        strategy.add_metric([gw.strategy_name], 1)
        yield strategy
        yield _histogram("unigw_added_seconds", "The gateway's own added time per call: total "
                         "(a stream: to its first byte) minus the wait on providers.",
                         [([], gw.stats.added)])
        log = gw.calls.log
        yield CounterMetricFamily("unigw_request_log_rows", "Rows written to the request log.",
                                  value=log.written if log is not None else 0)
        yield CounterMetricFamily("unigw_request_log_writer_cpu_seconds",
                                  "CPU time the request log's writer thread has used.",
                                  value=log.writer_cpu_s if log is not None else 0.0)
        yield GaugeMetricFamily("unigw_gateway_start_time_seconds",
                                "When the gateway started, in unix seconds.", value=gw.started_at)


def registry(gateway: Gateway) -> CollectorRegistry:
    """A registry with only the gateway's collector."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(GatewayCollector(gateway))
    return reg


def render(reg: CollectorRegistry) -> bytes:
    """The whole exposition."""
    return generate_latest(reg)


def _traffic(backends: Sequence[Backend]) -> Iterator[Metric]:
    requests = CounterMetricFamily("unigw_requests", "Attempts sent to each provider.", labels=P)
    errors = CounterMetricFamily(
        "unigw_errors", "Failed attempts that count against the provider: connect error, "
        "timeout, 5xx, 429, or a stream broken mid-way; not a client error, nor a request every "
        "provider failed the same way (unigw_attempts_total counts those too).", labels=P)
    attempts = CounterMetricFamily(
        "unigw_attempts", "Ended attempts at each provider, by outcome (ok or failure class).",
        labels=["provider", "outcome"])
    in_flight = GaugeMetricFamily("unigw_in_flight", "Requests in flight at each provider.",
                                  labels=P)
    for b in backends:
        s = b.stats
        requests.add_metric([b.name], s.requests)
        errors.add_metric([b.name], s.errors)
        in_flight.add_metric([b.name], s.in_flight)
        # ok: the answered attempts (the latency histogram's count); excused failures included
        attempts.add_metric([b.name, "ok"], s.latency_count)
        for kind in FailureClass:
            attempts.add_metric([b.name, kind.value], s.failures[kind])
    yield from (requests, errors, attempts, in_flight)
    yield _histogram("unigw_latency_seconds", "Latency of answered attempts (time to first "
                     "content for streams).", [([b.name], _latency(b)) for b in backends], P)


def _latency(b: Backend) -> Histogram:
    h = Histogram(BUCKETS)
    h.counts, h.total, h.count = b.stats.buckets, b.stats.latency_sum, b.stats.latency_count
    return h


def _provider_states(backends: Sequence[Backend], now: float) -> Iterator[Metric]:
    ejected = GaugeMetricFamily("unigw_provider_ejected",
                                "1 while the provider is ejected from rotation.", labels=P)
    state = GaugeMetricFamily("unigw_provider_state", "1 for each provider's current state.",
                              labels=["provider", "state"])
    serving = GaugeMetricFamily(
        "unigw_provider_serving", "1 for whether each provider's answers are really answers "
        "(ok, failing, rate_limited, auth_failed, unknown).", labels=["provider", "serving"])
    for b in backends:
        ejected.add_metric([b.name], int(b.stats.ejected_until > now))
        for st in State:
            state.add_metric([b.name, st.value], int(b.info.state is st))
        current = b.stats.serving(now)
        for sv in Serving:
            serving.add_metric([b.name, sv.value], int(current is sv))
    yield from (ejected, state, serving)


def _processes(statuses: Iterable[ProviderStatus]) -> Iterator[Metric]:
    """The supervisor's numbers of each provider (a sample only where the number is known)."""
    restarts = CounterMetricFamily("unigw_provider_restarts",
                                   "Restarts of each provider, automatic and manual.", labels=P)
    gauges = {
        "rss_bytes": GaugeMetricFamily("unigw_provider_rss_bytes",
                                       "Resident memory of the provider's process tree.", labels=P),
        "cpu_percent": GaugeMetricFamily("unigw_provider_cpu_percent",
                                         "CPU use of the provider's process tree, percent.",
                                         labels=P),
        "probe_ok": GaugeMetricFamily("unigw_provider_probe_ok",
                                      "1 if the last health probe said ready, 0 if not.", labels=P),
        "probe_s": GaugeMetricFamily("unigw_provider_probe_seconds",
                                     "Latency of the last health probe.", labels=P),
        "uptime_s": GaugeMetricFamily("unigw_provider_uptime_seconds",
                                      "Seconds since the provider's process started.", labels=P),
    }
    for s in statuses:
        restarts.add_metric([s.name], s.restarts)
        values = {"rss_bytes": s.rss_bytes, "cpu_percent": s.cpu_percent,
                  "probe_ok": None if s.probe_ok is None else int(s.probe_ok),
                  "probe_s": None if s.probe_ms is None else s.probe_ms / 1000,
                  "uptime_s": s.uptime_s}
        for key, value in values.items():
            if value is not None:
                gauges[key].add_metric([s.name], value)
    yield restarts
    yield from gauges.values()


def _groups(statuses: Iterable[ProviderStatus]) -> Metric:
    groups = GaugeMetricFamily("unigw_provider_group", "1 for each instance of a provider with "
                               "instances: the provider it belongs to.",
                               labels=["provider", "group"])
    for s in statuses:
        if s.group:
            groups.add_metric([s.name, s.group], 1)
    return groups


def _tokens(backends: Sequence[Backend]) -> Metric:
    tokens = CounterMetricFamily("unigw_tokens", "Tokens the providers reported, by provider, "
                                 "model sent and kind (prompt or completion).",
                                 labels=["provider", "model", "kind"])
    for b in backends:
        for (model, kind), n in sorted(b.stats.tokens.items()):
            tokens.add_metric([b.name, model, kind], n)
    return tokens


def _histogram(name: str, doc: str, series: Iterable[tuple[list[str], Histogram]],
               labels: Sequence[str] = ()) -> Metric:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for values, h in series:
        cumulative, buckets = 0, []
        for bound, count in zip((*h.bounds, float("inf")), h.counts, strict=True):
            cumulative += count
            buckets.append((floatToGoString(bound), float(cumulative)))
        family.add_metric(values, buckets, h.total)
    return family
