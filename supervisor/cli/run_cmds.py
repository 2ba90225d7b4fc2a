"""``unigw up``, ``demo``, ``gateway`` and ``down``: run the whole thing, in the foreground or
in the background, and stop it (or what a run that died left behind)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import click
import httpx

from supervisor.cli.app import (
    ExitCode,
    cli,
    config_option,
    control_config,
    demo_config,
    fail,
    gateway_url,
    load_config,
    plain_option,
    setup_logging,
)
from supervisor.config import Config
from supervisor.proc import instance


def _serve(
    config: Config, only: list[str] | None, watch: bool, verbose: bool, plain: bool
) -> None:
    from supervisor.cli import live
    from supervisor.run import RunError, run, run_loop

    setup_logging(verbose)
    url = gateway_url(config)
    board = live.Board(live=live.live_wanted(plain),
                       urls=[f"gateway   {url}/v1", f"dashboard {url}/"])
    try:
        run_loop(run(config, only=only, watch=watch, progress=board.progress,
                     on_start=board.attach))
    except RunError as exc:
        fail(str(exc))


def _detach(argv: list[str], config: Config, timeout: float = 120.0) -> None:
    """Start ``unigw`` again in the background and return once its gateway answers.

    The checks that would stop it (an instance already running, the gateway's port taken) run
    here first, so they are said here rather than in the log; and the answer waited for must
    come from the child itself (the instance it records), not from whatever holds the port.
    """
    from supervisor.run import RunError, preflight

    try:
        preflight(config)
    except RunError as exc:
        fail(str(exc))
    log_file = config.state_dir / "unigw.log"  # beside logs/, so no provider name clashes
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "supervisor.cli", *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    url = f"{gateway_url(config)}/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            tail = log_file.read_text(errors="replace").splitlines()[-15:]
            click.echo("\n".join(tail), err=True)
            fail(
                f"unigw exited with code {child.returncode} before its gateway answered "
                f"(log: {log_file})"
            )
        try:
            httpx.get(url, timeout=1.0)
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        recorded = instance.running(config.state_dir)
        if recorded is not None and recorded.pid == child.pid:
            click.echo(
                f"unigw is running in the background (pid {child.pid}); gateway "
                f"{url.removesuffix('/health')}/v1; log {log_file}; stop with `unigw down`"
            )
            return
        time.sleep(0.2)
    fail(f"the gateway did not answer within {timeout:.0f}s (pid {child.pid}, log: {log_file})")


@cli.command()
@config_option
@click.option(
    "-d", "--detach", is_flag=True, help="Run in the background; return once the gateway answers."
)
@click.option("--only", help="Comma-separated provider names to run (the others stay stopped).")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@plain_option
def up(config_path: str, detach: bool, only: str | None, verbose: bool, plain: bool) -> None:
    """Clone what is missing, install, start the providers and the gateway.

    Runs in the foreground until Ctrl-C, which stops every provider and every process they
    started. Providers that cannot run (clone or install failed, toolchain or secret missing)
    are marked failed with the reason; the others run. Editing providers.yaml while it runs
    applies the change.
    """
    config = load_config(config_path)
    names = [n.strip() for n in only.split(",") if n.strip()] if only else None
    unknown = [n for n in names or [] if not config.members(n)]
    if unknown:
        fail(f"--only: unknown provider(s) {', '.join(unknown)} in {config_path}", ExitCode.USAGE)
    if detach:
        argv = ["up", "--config", str(config.path)] + (["--only", only] if only else [])
        _detach(argv, config)
    else:
        _serve(config, names, watch=True, verbose=verbose, plain=plain)


@cli.command()
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Refused (exit 2): the demo runs its built-in config. Use `unigw up -c PATH`.",
)
@click.option(
    "-d", "--detach", is_flag=True, help="Run in the background; return once the gateway answers."
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@plain_option
def demo(config_path: str | None, detach: bool, verbose: bool, plain: bool) -> None:
    """The whole system offline: unigw's own echo providers on 8000-8013 stand in for the
    fourteen real ones (same names, ports and models), behind the gateway on 7999.

    Nothing is cloned and no account is needed. The demo always runs its built-in config:
    -c/--config is refused with a usage error (exit 2), and UNIGW_CONFIG is not read; to run
    a providers.yaml of your own, use `unigw up -c PATH`. State and logs go to ./.unigw.
    """
    if config_path is not None:
        fail(
            f"demo runs its built-in config and takes no --config ({config_path}); "
            "run your own with `unigw up -c PATH`",
            ExitCode.USAGE,
        )
    config = demo_config()
    if detach:
        _detach(["demo"], config)
    else:
        _serve(config, None, watch=False, verbose=verbose, plain=plain)


@cli.command()
@config_option
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def gateway(config_path: str, verbose: bool) -> None:
    """The gateway alone, in front of providers something else runs (an orchestrator, a
    container, your own terminal).

    Each provider of providers.yaml is expected on 127.0.0.1 at its port; nothing is cloned,
    installed, started or stopped. Providers are probed every supervisor.probe_interval
    seconds and get traffic while their health path answers. `unigw stop NAME` takes one out
    of traffic and `unigw start NAME` puts it back. Runs in the foreground until Ctrl-C.
    """
    from supervisor.run import RunError, run_loop, serve_gateway

    config = load_config(config_path)
    setup_logging(verbose)
    try:
        run_loop(serve_gateway(config))
    except RunError as exc:
        fail(str(exc))


@cli.command()
@config_option
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for it to stop.")
def down(config_path: str, timeout: float) -> None:
    """Stop the running instance: every provider, every process they started, then the gateway."""
    config = control_config(config_path)
    inst = instance.running(config.state_dir)
    if inst is None:
        _stop_leftovers(config)
        return
    os.kill(inst.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while inst.alive:
        if time.monotonic() > deadline:
            fail(f"unigw (pid {inst.pid}) did not stop within {timeout:.0f}s")
        time.sleep(0.1)
    click.echo(f"unigw stopped (pid {inst.pid})")


def _stop_leftovers(config: Config) -> None:
    """No live instance: stop what a unigw that died (kill -9, a crash) left running, the way
    the next ``up`` would, and say what; exit 3 when there is nothing at all."""
    from supervisor.proc.leftovers import kill_leftovers

    stopped = asyncio.run(kill_leftovers(config.state_dir))
    if not stopped:
        fail(f"unigw is not running (no live instance recorded in {config.state_dir}, and "
              "nothing an earlier run left behind)", ExitCode.NOT_RUNNING)
    click.echo(f"unigw was not running; stopped {len(stopped)} process(es) a run that died "
               "left behind:")
    for line in stopped:
        click.echo(f"  {line}")
