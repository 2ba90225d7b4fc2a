"""The composition root: ``unigw up`` and ``unigw demo``, the supervisor and the gateway on one
asyncio loop; ``unigw gateway``, the gateway alone. The only module of ``supervisor`` that
imports ``gateway``.

Order of things (:func:`run`): refuse to start when another instance runs or the gateway's
port is taken; serve the gateway; launch the providers; watch providers.yaml; wait for
SIGINT/SIGTERM (the handlers only set an event); then stop every provider and only after that
the gateway. :func:`serve_gateway` serves the gateway in front of an
:class:`~supervisor.lifecycle.external.ExternalView` instead: providers something else runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from gateway.app import check_bind, create_app, request_log, run_loop, server_config
from supervisor.config import Config, ConfigError, load
from supervisor.lifecycle.external import ExternalView
from supervisor.lifecycle.manager import Supervisor
from supervisor.proc import instance
from supervisor.proc.leftovers import port_holder
from supervisor.proc.process import port_is_free
from supervisor.view import ProviderView

log = logging.getLogger("unigw")


class RunError(Exception):
    """unigw cannot start; the message says why and what to do."""


class _GatewayServer(uvicorn.Server):
    """uvicorn, minus its own signal handling: the runner decides when the gateway stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def logged_requests(config: Config, *, limit: int, provider: str | None,
                    failed: bool | None) -> tuple[Path, list[dict[str, Any]]] | None:
    """The request log read from its file, for when no gateway runs: (its path, the rows as
    ``GET /requests`` gives them); None when it is off or was never written."""
    log = request_log(config)
    if log is None or not log.settings.path.exists():
        return None
    return log.settings.path, log.query(limit=limit, provider=provider, failed=failed)


def preflight(config: Config) -> None:
    """Raise :class:`RunError` when this config cannot be served right now."""
    problem = check_bind(config)
    if problem:
        raise RunError(problem)
    other = instance.running(config.state_dir)
    if other is not None:
        raise RunError(
            f"unigw is already running (pid {other.pid}, {other.url}); "
            "stop it with `unigw down` first"
        )
    gw = config.gateway
    if not port_is_free(gw.port, gw.host):
        fix = (f"set gateway.port in {config.path.name}" if config.path.exists() else
               "the demo's ports are fixed: stop that process first")  # the built-in demo
        raise RunError(f"gateway: {port_holder(gw.port)}; {fix}")


async def run(
    config: Config,
    *,
    only: Sequence[str] | None = None,
    watch: bool = True,
    progress: Callable[[str, str], None] | None = None,
    on_start: Callable[[Supervisor], None] | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, then stop everything that was started.

    ``on_start(sup)`` is called just before the providers launch (the CLI's progress board).
    """
    preflight(config)
    sup = Supervisor(config, only=only, progress=progress)
    async with _serving(config, sup) as (app, url, stop):
        log.info("gateway on %s/v1, dashboard on %s/ (Ctrl-C stops everything)", url, url)
        watcher: asyncio.Task[None] | None = None
        try:
            if on_start is not None:
                on_start(sup)
            await sup.up()
            if watch:
                watcher = asyncio.create_task(_watch(config.path, sup, app), name="config-watch")
            await stop.wait()
            log.info("stopping: providers first, then the gateway")
        finally:
            if watcher is not None:
                watcher.cancel()
            await sup.down()


async def serve_gateway(config: Config) -> None:
    """The gateway alone, in front of providers something else runs, until SIGINT/SIGTERM.

    Each configured provider is expected on its port and only probed (see
    :class:`~supervisor.lifecycle.external.ExternalView`); nothing is started or stopped.
    """
    preflight(config)
    view = ExternalView(config)
    await view.open()
    try:
        async with _serving(config, view) as (_, url, stop):
            log.info("gateway on %s/v1, in front of providers something else runs "
                     "(Ctrl-C stops it)", url)
            await stop.wait()
    finally:
        await view.close()


@contextlib.asynccontextmanager
async def _serving(
    config: Config, view: ProviderView
) -> AsyncIterator[tuple[Starlette, str, asyncio.Event]]:
    """Serve the gateway in front of ``view`` and record the instance; yield the app, its URL
    and the event SIGINT/SIGTERM set. On the way out the gateway stops (after the caller's
    own clean-up) and the record goes."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    app = create_app(config, view)
    server = _GatewayServer(server_config(app, config))
    serving = asyncio.create_task(server.serve(), name="gateway")
    try:
        await _until_started(server, serving)
        gw = config.gateway
        url = f"http://{gw.host}:{gw.port}"
        instance.write(config.state_dir, url, config.path)
        yield app, url, stop
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        instance.remove(config.state_dir)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _until_started(server: uvicorn.Server, serving: asyncio.Task[None]) -> None:
    while not server.started:
        if serving.done():
            exc = serving.exception()
            raise RunError(f"the gateway could not start: {exc or 'it exited'}")
        await asyncio.sleep(0.02)


async def _watch(path: Path, sup: Supervisor, app: object) -> None:
    """Apply every valid edit of providers.yaml, or of the ``.env`` beside it (``unigw secret
    set``: a provider waiting for a secret starts); log an invalid one and keep the running
    config."""
    from watchfiles import awatch

    watched = {path, path.parent / ".env"}
    async for _ in awatch(path.parent, watch_filter=lambda _c, p: Path(p) in watched):
        try:
            new = load(path)
        except ConfigError as exc:
            log.error("%s changed but is not valid; keeping the running config:\n%s", path, exc)
            continue
        changes = await sup.reload(new)
        app.state.gateway.apply_config(new)  # type: ignore[attr-defined]
        log.info("reloaded %s: %s", path.name, _describe(changes))


def _describe(changes: dict[str, list[str]]) -> str:
    parts = [f"{k} {', '.join(v)}" for k, v in changes.items() if v]
    return "; ".join(parts) or "no provider changed"


__all__ = ["RunError", "preflight", "run", "run_loop", "serve_gateway"]
