"""The canary: one tiny real chat to one provider, its outcome recorded like any call's.

:meth:`Canary.check` sends ``{"messages": [{"role": "user", "content": PROMPT}],
"max_tokens": 1}`` to one provider, pinned (no failover), through the proxy's public
:meth:`~gateway.proxy.Proxy.forward_chat`. The attempt is counted, judged (:mod:`gateway.truth`)
and recorded in that provider's statistics exactly like a client's, so its ``serving``
(:meth:`~gateway.stats.ProviderStats.serving`) reflects it, and a failing canary weighs on
ejection like a failing call; it is a row of the request log too (route ``/v1/test``, whether
``unigw test``, ``POST /v1/test`` or the background loop sent it). The answer is a
:class:`CanaryResult`: serving or not, latency, the provider's own error text.

:meth:`Canary.start` runs the opt-in background loop. ``gateway.canary_interval`` (a provider
may set its own ``canary_interval``; 0 = off, the default, because every canary spends the
provider's upstream quota): every :data:`TICK_S` seconds (sooner for short intervals), each
ready provider with nothing in flight whose latest attempt started longer ago than its interval,
or that has had none yet, gets one canary. ``POST /v1/test`` and ``unigw test`` run the same
check at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.calls import Calls, Trace
from gateway.errors import GatewayError, ProviderFailed, ProviderRejected
from gateway.proxy import Proxy
from gateway.results import ChatResult
from gateway.routing import Plan, Router
from gateway.stats import Serving
from supervisor.config import Config

log = logging.getLogger("unigw.gateway")
CANARY_ROUTE = "/v1/test"  # the request log's route for a canary, asked for or not
TICK_S = 2.0  # how often the loop looks for providers due a canary (at most)
MIN_TICK_S = 0.05


@dataclass(frozen=True)
class CanaryResult:
    """One canary's outcome. ``status`` is the failing answer's HTTP status (None when it
    served, or never answered); ``error`` the provider's own message, or what the gateway saw."""

    provider: str
    model: str
    ok: bool
    serving: Serving
    latency_ms: float
    status: int | None = None
    error: str | None = None
    reply: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The answer of ``POST /v1/test``."""
        return {"provider": self.provider, "model": self.model, "ok": self.ok,
                "serving": self.serving.value, "latency_ms": self.latency_ms,
                "status": self.status, "error": self.error, "reply": self.reply}


@dataclass(frozen=True)
class CanarySettings:
    """The canary's part of the config: each provider's interval (0: off), prompt, models."""

    prompt: str = "ping"
    default_interval: float = 0.0
    intervals: Mapping[str, float] = field(default_factory=dict)
    models: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, config: Config) -> CanarySettings:
        gw = config.gateway
        intervals = {p.name: p.canary_interval for p in config.providers
                     if p.canary_interval is not None}
        models = {p.name: p.canary_model for p in config.providers if p.canary_model}
        return cls(gw.canary_prompt, gw.canary_interval, intervals, models)

    def interval(self, name: str) -> float:
        """Seconds without traffic after which ``name`` gets a canary; 0 when off."""
        return self.intervals.get(name, self.default_interval)

    def tick(self) -> float:
        """How long the loop sleeps: TICK_S, or half the shortest interval in force."""
        on = [s for s in (self.default_interval, *self.intervals.values()) if s > 0]
        return max(MIN_TICK_S, min([TICK_S, *(s / 2 for s in on)]))


class Canary:
    """Checks providers with one tiny chat, now (:meth:`check`) or in the background."""

    def __init__(self, router: Router, proxy: Proxy, settings: CanarySettings,
                 calls: Calls | None = None) -> None:
        self.router = router
        self.proxy = proxy
        self.settings = settings  # replaced whole on a config reload
        self.calls = calls  # each canary is a row of the request log, as any call is
        self._loop_task: asyncio.Task[None] | None = None
        self._running: dict[str, asyncio.Task[None]] = {}

    async def check(self, name: str, *, prompt: str | None = None,
                    model: str | None = None) -> CanaryResult:
        """One canary to provider ``name`` now (NotFound / NoProviderReady when it cannot)."""
        plan = self.router.pinned(name, model or self.settings.models.get(name))
        if self.calls is None:
            return await _send(self.proxy, plan, prompt or self.settings.prompt, None)
        trace = self.calls.begin(CANARY_ROUTE, "openai")
        trace.model_asked = plan.upstream_model(plan.candidates[0])
        try:
            return await _send(self.proxy, plan, prompt or self.settings.prompt, trace)
        finally:
            self.calls.end(trace)

    def least_recently_tried(self, model: str | None) -> str:
        """The ready provider (serving ``model``, if given) whose latest attempt is oldest."""
        plan = self.router.plan(model) if model else self.router.any_ready()
        return min(plan.candidates, key=lambda b: b.stats.last_attempt_at or -math.inf).name

    def due(self, now: float) -> list[str]:
        """The ready providers due a canary at ``now`` (``time.monotonic()``)."""
        out = []
        for b in self.router.table().ready:
            interval, last = self.settings.interval(b.name), b.stats.last_attempt_at
            if (interval > 0 and b.name not in self._running and not b.stats.in_flight
                    and (last is None or now - last >= interval)):
                out.append(b.name)
        return out

    def start(self) -> None:
        """Run the background loop (it does nothing while every interval is 0)."""
        self._loop_task = asyncio.get_running_loop().create_task(self._loop(), name="canary")

    async def stop(self) -> None:
        """Cancel the loop and the canaries under way."""
        tasks = [t for t in (self._loop_task, *self._running.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop_task = None

    async def _loop(self) -> None:
        while True:
            try:
                for name in self.due(time.monotonic()):
                    self._launch(name)
            except Exception:  # the top of a background task: log, never stop checking
                log.exception("canary: could not look for providers due a check")
            await asyncio.sleep(self.settings.tick())

    def _launch(self, name: str) -> None:
        task = asyncio.get_running_loop().create_task(self._one(name), name=f"canary-{name}")
        self._running[name] = task
        task.add_done_callback(lambda _: self._running.pop(name, None))

    async def _one(self, name: str) -> None:
        try:
            result = await self.check(name)
        except GatewayError as exc:  # it left ready (or the config) since it was due
            log.debug("canary: %s: not checked: %s", name, exc.message)
            return
        except Exception:  # the top of a background task
            log.exception("canary: %s: the check failed", name)
            return
        if result.ok:
            log.debug("canary: %s serves (%.0f ms)", name, result.latency_ms)
        else:
            log.info("canary: %s is %s: %s", name, result.serving.value, result.error)


async def _send(proxy: Proxy, plan: Plan, prompt: str, trace: Trace | None) -> CanaryResult:
    """The canary's chat over ``plan`` (one pinned provider), its outcome as a result."""
    backend = plan.candidates[0]
    model = plan.upstream_model(backend)
    chat = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 1}
    since, started = time.time(), time.perf_counter()
    status: int | None = None
    error: str | None = None
    reply: str | None = None
    try:
        result = await proxy.forward_chat(chat, plan=plan, stream=False, trace=trace)
    except ProviderRejected as exc:  # it refused the request itself: no verdict on it
        status, error = exc.status, exc.detail
    except ProviderFailed as exc:
        if trace is not None:
            trace.error(exc)
        last = backend.stats.last_failure  # the provider's own words, recorded by the proxy
        if last is not None and last.at >= since:
            status, error = last.status, last.message
        else:
            error = exc.message
    else:
        assert isinstance(result, ChatResult)
        model, reply = result.model, _reply(result.body)
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    serving = backend.stats.serving(time.monotonic())
    return CanaryResult(backend.name, model, error is None, serving, latency_ms, status, error,
                        reply)


def _reply(body: dict[str, Any]) -> str | None:
    choices = body.get("choices") or [{}]
    content = ((choices[0] or {}).get("message") or {}).get("content")
    return content if isinstance(content, str) else None
