"""Which providers may take a request: model resolution, aliases, pinning, outlier ejection.

The routing table is built from the :class:`~supervisor.view.ProviderView` and rebuilt only when
the view's ``version`` changes (or a provider's ``/v1/models`` taught us new models), so a
request costs a few dictionary look-ups. Resolving a model gives a :class:`Plan`: the ready
providers that may answer and the model each must be asked for.

* A model some provider serves goes to the ready providers that serve it, unchanged.
* Otherwise ``gateway.aliases`` may map it to a served model (``gpt-4: GLM-4.5``).
* Otherwise, with ``unknown_model: default``, any ready provider takes it and is asked for its
  own default model (the first in its list); with ``reject`` it is a 404 listing the models.

``gateway.model_groups`` names one model that providers call differently (``K2-Think:
[k2-think, MBZUAI-IFM/K2-Think]``). A request for the group, for a member, or for an alias of
either, goes to every ready provider that serves any member, and each is asked for the name it
serves: the one asked for if it serves that, else the first member of the group it serves; so
failover crosses providers that name the model differently. Strategies route a group by its
group name (``gateway.routes`` is keyed by it), and ``/v1/models`` (:meth:`Router.model_list`)
lists a group once. A group none of whose members any provider lists is an unknown model.

Outlier ejection (:class:`gateway.ejection.OutlierPolicy`) reacts to each failure's class.
``unreachable``, ``timeout`` and ``upstream_error`` take a provider out of rotation after
``eject_after`` consecutive failures, for ``eject_base`` seconds doubling (up to ``eject_max``)
while it keeps failing. ``rate_limited`` cools it at once for its ``Retry-After`` (``eject_base``
without one).
``auth_failed`` (its key, or the secret behind it, is wrong or expired) takes it out until the
router sees that changed: its key in the view differs, or its process restarted after the
failure (its status row's ``uptime_s`` is younger than the failure, or the router saw it leave
``ready``), or a panic-mode try of it succeeds. ``client_error`` and excused failures change
nothing. The proxy skips ejected candidates unless every candidate is ejected (panic mode: try
them anyway).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from gateway.errors import BadRequest, NoProviderReady, NotFound
from gateway.stats import ProviderStats, Stats
from gateway.upstream import Origin
from supervisor.config import GatewayConfig
from supervisor.view import ProviderInfo, ProviderView

USER_AGENT = "unigw"
# an inner pin: provider names (letters, digits, . _ - and an instance's #N) joined by '/'
_INNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._#-]*(/[A-Za-z0-9][A-Za-z0-9._#-]*)*")
RESTART_SLACK_S = 0.5  # status rows round uptime; a restart this soon after a failure is missed


@dataclass(eq=False)
class Backend:
    """One provider as the router and the strategies see it (rebuilt with the table)."""

    name: str
    index: int
    info: ProviderInfo
    origin: Origin
    models: tuple[str, ...]
    stats: ProviderStats
    weight: int = 1
    probe_ok: bool | None = None
    probe_ms: float | None = None
    nested: bool = False  # another unigw: its answers name the inner provider
    _heads: dict[str, bytes] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.info.ready

    @property
    def default_model(self) -> str | None:
        return self.models[0] if self.models else None

    def head(self, method: str, path: str, pin: str | None = None) -> bytes:
        """The request head for ``path`` with this provider's key, up to Content-Length;
        with ``pin`` (a unigw node's inner provider) also ``X-Unigw-Provider: pin``."""
        key = method + path
        head = self._heads.get(key) if pin is None else None
        if head is None:
            headers = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
            if self.info.key:
                headers["Authorization"] = f"Bearer {self.info.key}"
            if pin is not None:
                headers["X-Unigw-Provider"] = pin
                return self.origin.head(method, path, headers)
            head = self._heads[key] = self.origin.head(method, path, headers)
        return head


@dataclass(frozen=True)
class Plan:
    """The candidates for one model, and what to ask each for.

    ``model`` is the name strategies route by (the alias target or the group, if any);
    ``send`` the model to put in the request, or None for each provider's own default model;
    ``sends`` overrides it per provider (a model group's member names).
    """

    model: str
    candidates: tuple[Backend, ...]
    send: str | None
    sends: Mapping[str, str] = field(default_factory=dict)  # per provider name (model groups)
    names: tuple[str, ...] = ()  # the model names it stands for, when more than ``model``
    inner: str | None = None  # a pin passed on to the unigw node it goes to (node-2/ZtoApi)

    def upstream_model(self, backend: Backend) -> str:
        """The model to ask ``backend`` for."""
        sent = self.sends.get(backend.name)
        if sent is not None:
            return sent
        return self.send if self.send is not None else (backend.default_model or self.model)


@dataclass(frozen=True)
class RoutingSettings:
    """The part of GatewayConfig routing reads; replaced whole on a config reload."""

    aliases: Mapping[str, str] = field(default_factory=dict)
    routes: Mapping[str, Sequence[str]] = field(default_factory=dict)
    reject_unknown: bool = False
    groups: Mapping[str, Sequence[str]] = field(default_factory=dict)
    group_of: Mapping[str, str] = field(init=False)  # a group's name and members → the group

    def __post_init__(self) -> None:
        group_of = {m: g for g, members in self.groups.items() for m in members}
        group_of.update((g, g) for g in self.groups)
        object.__setattr__(self, "group_of", group_of)

    @classmethod
    def of(cls, gw: GatewayConfig) -> RoutingSettings:
        return cls(dict(gw.aliases), dict(gw.routes), gw.unknown_model == "reject",
                   dict(gw.model_groups))

    def group(self, model: str) -> str | None:
        """The group ``model`` (or the model its alias names) belongs to, if any."""
        group = self.group_of.get(model)
        if group is None and model in self.aliases:
            group = self.group_of.get(self.aliases[model])
        return group


class RoutingTable:
    """Every provider as a :class:`Backend`, and the ready ones by model."""

    def __init__(self, backends: Sequence[Backend]) -> None:
        self.backends = tuple(backends)
        self.by_name = {b.name: b for b in backends}
        self.ready = tuple(b for b in backends if b.ready)
        self.models = tuple(dict.fromkeys(m for b in backends for m in b.models))
        serving: dict[str, list[Backend]] = {}
        for b in self.ready:
            for m in b.models:
                serving.setdefault(m, []).append(b)
        self.serving = {m: tuple(bs) for m, bs in serving.items()}
        self.plans: dict[str, Plan] = {}


class Router:
    """Resolves models and pins to :class:`Plan` objects, against a cached routing table."""

    def __init__(self, view: ProviderView, stats: Stats, settings: RoutingSettings) -> None:
        self.view = view
        self.stats = stats
        self.settings = settings
        self.on_ready: Callable[[Backend], None] | None = None  # discovery hook
        self._learned: dict[str, tuple[str, ...]] = {}  # name → models from /v1/models
        self._key: tuple[int, int] = (-1, -1)
        self._learned_version = 0
        self._table = RoutingTable(())

    def configure(self, settings: RoutingSettings) -> None:
        self.settings = settings
        self._table.plans.clear()

    def reset(self) -> None:
        """Forget the table: the next one is built from scratch (every ready one is new)."""
        self._key = (-1, -1)
        self._table = RoutingTable(())

    def learn_models(self, name: str, models: Sequence[str]) -> None:
        """Models a provider's ``/v1/models`` listed; merged after the configured ones."""
        self._learned[name] = tuple(models)
        self._learned_version += 1

    def table(self) -> RoutingTable:
        """The current table; rebuilt only when the view or the learned models changed."""
        key = (self.view.version, self._learned_version)
        if key != self._key:
            self._key = key
            self._table = self._build(self._table)
        return self._table

    def _build(self, old: RoutingTable) -> RoutingTable:
        backends = []
        for index, info in enumerate(self.view.providers()):
            learned = self._learned.get(info.name, ())
            backends.append(Backend(
                info.name, index, info, Origin.parse(info.base_url),
                tuple(dict.fromkeys((*info.models, *learned))), self.stats.get(info.name),
                info.weight, info.probe_ok, info.probe_ms, info.nested))
        table = RoutingTable(backends)
        self._renew_blocked(old, table)
        if self.on_ready is not None:
            for b in table.ready:
                was = old.by_name.get(b.name)
                if was is None or not was.ready:
                    self.on_ready(b)
        return table

    def _renew_blocked(self, old: RoutingTable, table: RoutingTable) -> None:
        """Put back auth-blocked providers whose key changed or whose process restarted."""
        blocked = [b for b in table.backends if b.stats.auth_blocked]
        if not blocked:
            return
        uptimes = {row.name: row.uptime_s for row in self.view.status()}
        now = time.monotonic()
        for b in blocked:
            was = old.by_name.get(b.name)
            uptime = uptimes.get(b.name)
            restarted = isinstance(uptime, (int, float)) and uptime + RESTART_SLACK_S < (
                now - b.stats.blocked_at)
            if (was is not None and (was.info.key != b.info.key or not was.ready)
                    and b.ready) or restarted:
                b.stats.unblock()

    def plan(self, model: str) -> Plan:
        """The candidates for ``model`` (NotFound / NoProviderReady when there are none)."""
        table = self.table()
        plan = table.plans.get(model)
        if plan is None:
            plan = self._resolve(table, model)
            table.plans[model] = plan
        if not plan.candidates:
            raise self._nobody(table, plan)
        return plan

    def any_ready(self) -> Plan:
        """Every ready provider, each asked for its own default model."""
        table = self.table()
        if not table.ready:
            raise self._nobody(table, Plan("", (), None))
        return Plan("", table.ready, None)

    def _resolve(self, table: RoutingTable, model: str) -> Plan:
        group = self.settings.group(model)
        if group is not None:
            members = self.settings.groups[group]
            if any(m in table.models for m in members):
                asked = model if model in self.settings.group_of else self.settings.aliases[model]
                return self._group_plan(table.ready, group, asked)
        if model in table.models:
            return Plan(model, table.serving.get(model, ()), model)
        target = self.settings.aliases.get(model)
        if target is not None and table.serving.get(target):
            return Plan(target, table.serving[target], target)
        if self.settings.reject_unknown:
            if target is not None and target in table.models:
                return Plan(target, (), target)
            groups = [g for g, ms in self.settings.groups.items()
                      if any(m in table.models for m in ms)]
            known = ", ".join(dict.fromkeys((*groups, *table.models))) or "(none)"
            raise NotFound(f"model {model!r} does not exist; available models: {known}",
                           code="model_not_found")
        return Plan(model, table.ready, None)

    def _group_plan(self, ready: Sequence[Backend], group: str, asked: str) -> Plan:
        """Every one of ``ready`` serving a member of ``group``, asked for the name it serves."""
        members = tuple(self.settings.groups[group])
        sends: dict[str, str] = {}
        for b in ready:
            served = asked if asked in b.models else next(
                (m for m in members if m in b.models), None)
            if served is not None:
                sends[b.name] = served
        candidates = tuple(b for b in ready if b.name in sends)
        return Plan(group, candidates, None, sends, members)

    def model_list(self) -> list[dict[str, Any]]:
        """``GET /v1/models``'s ``data``: each model ready providers serve, a group once.

        ``owned_by`` is the first ready provider serving it, ``providers`` all of them; a
        group's entry also lists the ``members`` those providers serve.
        """
        table = self.table()
        data, seen = [], set()
        for backend in table.ready:
            for model in backend.models:
                group = self.settings.group_of.get(model)
                name = group or model
                if name in seen:
                    continue
                seen.add(name)
                if group is None:
                    owners = [b.name for b in table.serving.get(model, ())]
                    extra = {}
                else:
                    plan = self._group_plan(table.ready, group, group)
                    owners = [b.name for b in plan.candidates]
                    extra = {"members": list(dict.fromkeys(
                        m for m in plan.names if m in table.serving))}
                data.append({"id": name, "object": "model", "created": 0,
                             "owned_by": backend.name, "providers": owners, **extra})
        return data

    def _nobody(self, table: RoutingTable, plan: Plan) -> NoProviderReady:
        model = plan.model
        if not table.ready:
            return NoProviderReady(f"no provider is ready (0 of {len(table.backends)})")
        names = plan.names or (model,)
        owners = [b.name for b in table.backends if any(m in b.models for m in names)]
        return NoProviderReady(
            f"no ready provider serves model {model!r} (served by: {', '.join(owners)})")

    def pinned(self, name: str, model: str | None) -> Plan:
        """The plan for a request pinned to provider ``name`` (404 unknown, 503 not ready).

        ``node-2/ZtoApi`` pins to ``node-2``, a unigw node, which is asked to pin ``ZtoApi``
        (and may pass on what follows its own first ``/`` likewise).
        """
        outer, through, inner = name.partition("/")
        if not through:
            return self._pinned(name, model)
        if not _INNER.fullmatch(inner):
            raise BadRequest(f"bad provider pin {name!r}: after 'NAME/' comes a provider name "
                             "of the unigw node NAME", param="provider")
        plan = self._pinned(outer, model)
        if not plan.candidates[0].nested:
            raise NotFound(f"provider {outer!r} is not a unigw node (kind: unigw), so it "
                           f"has no provider {inner!r}", code="provider_not_found")
        return replace(plan, inner=inner)

    def _pinned(self, name: str, model: str | None) -> Plan:
        """The plan for a request pinned to provider ``name`` (404 unknown, 503 not ready);
        the name of a provider with ``instances:`` pins to its ready instances."""
        table = self.table()
        backend = table.by_name.get(name)
        if backend is None:
            members = [b for b in table.backends if name and b.info.group == name]
            ready = tuple(b for b in members if b.ready)
            if ready:
                plan = self._pin(ready[0], model)
                sent = plan.sends.get(ready[0].name)
                return replace(plan, candidates=ready,
                               sends={b.name: sent for b in ready} if sent else {})
            if members:
                raise NoProviderReady(f"no instance of provider {name!r} is ready")
            known = ", ".join(table.by_name) or "(none)"
            raise NotFound(f"unknown provider {name!r}; providers: {known}",
                           code="provider_not_found")
        if not backend.ready:
            raise NoProviderReady(f"provider {name!r} is not ready ({backend.info.state.value})")
        return self._pin(backend, model)

    def _pin(self, backend: Backend, model: str | None) -> Plan:
        """The plan for ``model`` on one ready provider."""
        name = backend.name
        if model is None:
            return Plan(backend.default_model or "", (backend,), None)
        if model in backend.models or not backend.models:
            return Plan(model, (backend,), model)
        group = self.settings.group(model)
        if group is not None:
            plan = self._group_plan((backend,), group, self.settings.aliases.get(model, model))
            if plan.candidates:
                return plan
        target = self.settings.aliases.get(model)
        if target is not None and target in backend.models:
            return Plan(target, (backend,), target)
        if self.settings.reject_unknown:
            raise NotFound(f"provider {name!r} does not serve model {model!r}; it serves: "
                           f"{', '.join(backend.models)}", code="model_not_found")
        return Plan(model, (backend,), None)
