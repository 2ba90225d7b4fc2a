"""The one small interface between the supervisor and the gateway.

The gateway reads which providers exist, which are ready, at which address, with which key and
models, and asks for start/stop/restart, only through :class:`ProviderView`. It never imports
the supervisor's internals, so it can also run in front of providers something else runs.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class State(str, enum.Enum):
    """Provider lifecycle states (DESIGN.md). Only ``ready`` providers get traffic."""

    STOPPED = "stopped"
    INSTALLING = "installing"
    STARTING = "starting"
    READY = "ready"
    UNHEALTHY = "unhealthy"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    FAILED = "failed"


@dataclass(frozen=True)
class ProviderInfo:
    """What the gateway needs to route to one provider, as of one moment."""

    name: str
    state: State
    base_url: str
    key: str | None
    models: tuple[str, ...]
    weight: int = 1
    probe_ok: bool | None = None
    probe_ms: float | None = None
    nested: bool = False  # another unigw: its answers name the inner provider that answered
    group: str = ""  # an instance (NAME#k) of a provider with ``instances:``: NAME

    @property
    def ready(self) -> bool:
        return self.state is State.READY


@dataclass(frozen=True)
class ProviderStatus:
    """One provider's live state as the supervisor (or an external view) knows it: the
    supervisor's fields of ``unigw status``. The gateway adds its own numbers and makes JSON.
    """

    name: str
    port: int
    state: State
    pid: int | None = None
    uptime_s: float | None = None
    restarts: int = 0
    probe_ok: bool | None = None  # the last probe's readiness; None while nothing answers
    probe_ms: float | None = None
    last_error: str | None = None
    cpu_percent: float | None = None
    rss_bytes: int | None = None
    runtime: str = ""
    models: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    enabled: bool = True
    description: str = ""
    missing_secrets: tuple[str, ...] = ()
    url: str | None = None  # a provider something else runs, at this address (config url:)
    group: str = ""  # an instance (NAME#k) of a provider with ``instances:``: NAME


class ProviderView(Protocol):
    """The supervisor's live view, as the gateway sees it.

    ``version`` grows on every change of any provider's state or config, so the gateway can
    cache its routing tables and rebuild them only when it changes.
    """

    @property
    def version(self) -> int: ...

    def providers(self) -> Sequence[ProviderInfo]:
        """Every configured provider, in config order."""
        ...

    def status(self) -> Sequence[ProviderStatus]:
        """One row per provider, in config order."""
        ...

    def log_tail(self, name: str, lines: int) -> list[str] | None:
        """The last lines of a provider's captured output, or None for an unknown provider."""
        ...

    async def start(self, name: str) -> ProviderStatus:
        """Start one provider; return its status row once it is ready or has failed."""
        ...

    async def stop(self, name: str) -> ProviderStatus:
        """Stop one provider; return its status row once it is stopped."""
        ...

    async def restart(self, name: str) -> ProviderStatus:
        """Stop then start; clears a failed provider's crash history first."""
        ...
