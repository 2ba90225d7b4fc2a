"""The ``unigw`` command line. Only this module knows click.

Each command parses its flags, builds the config, calls one function and maps errors to an
``ExitCode``. Data goes to stdout; problems, warnings, logs and progress go to stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from enum import IntEnum
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import click
import httpx

from supervisor.cli import instance, output
from supervisor.cli.client import ControlError, InstanceClient, NotRunning
from supervisor.config import Config, ConfigError, load, loads

DEMO_FILE = resources.files("supervisor.demo") / "demo.yaml"


class ExitCode(IntEnum):
    """What ``unigw`` exits with (DESIGN.md); click's own usage errors are USAGE too."""

    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_RUNNING = 3  # nothing running, or cannot connect to it


def _fail(message: str, code: ExitCode = ExitCode.ERROR) -> NoReturn:
    """The one way a command reports a problem: a line on stderr, then the exit code."""
    click.echo(f"unigw: {message}", err=True)
    sys.exit(code)


def _load(path: str) -> Config:
    if not Path(path).exists():
        _fail(f"{path} not found: run unigw in the folder that has it, pass -c PATH or set "
              "UNIGW_CONFIG (`unigw demo` needs none)")
    try:
        return load(path)
    except ConfigError as exc:
        click.echo("\n".join(exc.problems), err=True)
        _fail(f"{path} has {len(exc.problems)} problem(s); nothing was started")


def _demo_config() -> Config:
    """The built-in demo, as if its file lived in the current folder (state goes to ./.unigw)."""
    return loads(DEMO_FILE.read_text(encoding="utf-8"), Path.cwd() / "demo.yaml")


def _control_config(path: str) -> Config:
    """The config that says where the running instance is; the demo's when there is no file.

    A providers.yaml broken by an edit must not lock the user out of the instance that runs
    with the previous version: its problems are shown and the default state folder is used.
    """
    if not Path(path).exists() and path == "providers.yaml":
        return _demo_config()
    try:
        return load(path)
    except ConfigError as exc:
        click.echo("\n".join(exc.problems), err=True)
        click.echo(
            f"unigw: {path} has problems; looking for the instance in its default state folder",
            err=True,
        )
        return loads("", Path(path).resolve())


config_option = click.option(
    "-c",
    "--config",
    "config_path",
    default="providers.yaml",
    envvar="UNIGW_CONFIG",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="providers.yaml to use (env UNIGW_CONFIG).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="unigw")
def cli() -> None:
    """unigw: one OpenAI-compatible endpoint (http://127.0.0.1:7999/v1) in front of many free
    web-chat API providers, which it clones, installs, runs, health-checks and restarts.

    Try it offline with `unigw demo`; run the real providers with `unigw up`.

    Data goes to stdout, problems and logs to stderr. Exit codes: 0 ok, 1 error, 2 usage,
    3 nothing running (or cannot connect to it).
    """


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("httpx", "watchfiles"):  # a line per probe / per file event otherwise
        logging.getLogger(noisy).setLevel(logging.WARNING)


plain_option = click.option(
    "--plain",
    is_flag=True,
    help="Progress as plain lines, no live view (also when stderr is not a terminal, or "
    "NO_COLOR or CI is set).",
)


def _gateway_url(config: Config) -> str:
    """Where the gateway answers: its host, or 127.0.0.1 when it listens on every address."""
    gw = config.gateway
    return f"http://{'127.0.0.1' if gw.host in ('0.0.0.0', '::') else gw.host}:{gw.port}"


def _serve(
    config: Config, only: list[str] | None, watch: bool, verbose: bool, plain: bool
) -> None:
    from supervisor.cli import live
    from supervisor.run import RunError, run, run_loop

    _setup_logging(verbose)
    url = _gateway_url(config)
    board = live.Board(live=live.live_wanted(plain),
                       urls=[f"gateway   {url}/v1", f"dashboard {url}/"])
    try:
        run_loop(run(config, only=only, watch=watch, progress=board.progress,
                     on_start=board.attach))
    except RunError as exc:
        _fail(str(exc))


def _detach(argv: list[str], config: Config, timeout: float = 120.0) -> None:
    """Start ``unigw`` again in the background and return once its gateway answers."""
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
    url = f"{_gateway_url(config)}/health"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            tail = log_file.read_text(errors="replace").splitlines()[-15:]
            click.echo("\n".join(tail), err=True)
            _fail(
                f"unigw exited with code {child.returncode} before its gateway answered "
                f"(log: {log_file})"
            )
        try:
            httpx.get(url, timeout=1.0)
            click.echo(
                f"unigw is running in the background (pid {child.pid}); gateway "
                f"{url.removesuffix('/health')}/v1; log {log_file}; stop with `unigw down`"
            )
            return
        except httpx.TransportError:
            time.sleep(0.2)
    _fail(f"the gateway did not answer within {timeout:.0f}s (pid {child.pid}, log: {log_file})")


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
    config = _load(config_path)
    names = [n.strip() for n in only.split(",") if n.strip()] if only else None
    unknown = [n for n in names or [] if config.provider(n) is None]
    if unknown:
        _fail(f"--only: unknown provider(s) {', '.join(unknown)} in {config_path}", ExitCode.USAGE)
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
        _fail(
            f"demo runs its built-in config and takes no --config ({config_path}); "
            "run your own with `unigw up -c PATH`",
            ExitCode.USAGE,
        )
    config = _demo_config()
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

    config = _load(config_path)
    _setup_logging(verbose)
    try:
        run_loop(serve_gateway(config))
    except RunError as exc:
        _fail(str(exc))


@cli.command()
@config_option
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for it to stop.")
def down(config_path: str, timeout: float) -> None:
    """Stop the running instance: every provider, every process they started, then the gateway."""
    config = _control_config(config_path)
    inst = instance.running(config.state_dir)
    if inst is None:
        _stop_leftovers(config)
        return
    os.kill(inst.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while inst.alive:
        if time.monotonic() > deadline:
            _fail(f"unigw (pid {inst.pid}) did not stop within {timeout:.0f}s")
        time.sleep(0.1)
    click.echo(f"unigw stopped (pid {inst.pid})")


def _stop_leftovers(config: Config) -> None:
    """No live instance: stop what a unigw that died (kill -9, a crash) left running, the way
    the next ``up`` would, and say what; exit 3 when there is nothing at all."""
    from supervisor.proc.leftovers import kill_leftovers

    stopped = asyncio.run(kill_leftovers(config.state_dir))
    if not stopped:
        _fail(f"unigw is not running (no live instance recorded in {config.state_dir}, and "
              "nothing an earlier run left behind)", ExitCode.NOT_RUNNING)
    click.echo(f"unigw was not running; stopped {len(stopped)} process(es) a run that died "
               "left behind:")
    for line in stopped:
        click.echo(f"  {line}")


def _call(config_path: str, fn: Callable[[InstanceClient], Any], timeout: float = 10.0) -> Any:
    client = InstanceClient(_control_config(config_path), timeout=timeout)
    try:
        return fn(client)
    except NotRunning as exc:
        _fail(str(exc), ExitCode.NOT_RUNNING)
    except ControlError as exc:
        _fail(str(exc))
    finally:
        client.close()


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print GET /providers as one JSON object.")
def status(config_path: str, as_json: bool) -> None:
    """One row per provider: NAME PORT STATE PID UPTIME RESTARTS HEALTH SERVING REQS ERRORS
    LAST_ERROR."""
    data = _call(config_path, lambda c: c.get("/providers"))
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    try:
        rows = [output.StatusRow.from_json(r) for r in data["providers"]]
    except (KeyError, TypeError, ValueError) as exc:
        _fail(f"the gateway's GET /providers is not what this unigw reads ({exc!r})")
    if output.use_colour():
        from supervisor.cli import live

        live.print_status(output.STATUS_COLUMNS, [output.status_cells(r) for r in rows],
                          state_col=2, serving_col=output.STATUS_COLUMNS.index("SERVING"))
    else:
        click.echo(output.status_table(rows))
    for r in rows:
        for w in r.status.warnings:
            click.echo(f"warning: {r.status.name}: {w}", err=True)


def _control(action: str, name: str, config_path: str) -> None:
    row = _call(config_path, lambda c: c.post(f"/providers/{name}/{action}"), timeout=300.0)
    state = row.get("state")
    line = f"{name}: {state}" + (f" (pid {row['pid']})" if row.get("pid") else "")
    if state == "failed" or (action != "stop" and state != "ready"):
        _fail(f"{line}: {row.get('last_error') or 'see unigw logs ' + name}")
    click.echo(line)


#: ``unigw start/stop/restart NAME``: one command each, made by one factory.
PROVIDER_ACTIONS = {
    "start": "Start one provider of the running instance; return once it is ready (or failed).",
    "stop": "Stop one provider of the running instance (its whole process tree).",
    "restart": "Restart one provider; a failed one has its crash history cleared and is "
    "tried again.",
}


def _provider_command(action: str, help_text: str) -> click.Command:
    """The click command that POSTs ``/providers/NAME/<action>`` to the running instance."""

    @click.command(action, help=help_text)
    @config_option
    @click.argument("name")
    def command(config_path: str, name: str) -> None:
        _control(action, name, config_path)

    return command


for _action, _help in PROVIDER_ACTIONS.items():
    cli.add_command(_provider_command(_action, _help))


@cli.command()
@config_option
@click.argument("name")
@click.option("-n", "lines", default=50, show_default=True, help="How many of the last lines.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
def logs(config_path: str, name: str, lines: int, follow: bool) -> None:
    """A provider's captured output (clone, install and run), from .unigw/logs/NAME.log."""
    from supervisor.proc import logs as logfiles

    config = _control_config(config_path)
    if config.provider(name) is None:
        _fail(f"unknown provider {name!r} in {config.path.name}")
    path = logfiles.log_path(config.state_dir, name)
    if not path.exists():
        _fail(f"no log yet for {name} ({path})")
    for line in logfiles.tail(path, lines):
        click.echo(line)
    if follow:
        try:
            for line in logfiles.follow(path):
                click.echo(line)
        except KeyboardInterrupt:
            pass


@cli.command()
@config_option
@click.argument("names", nargs=-1)
@plain_option
def install(config_path: str, names: tuple[str, ...], plain: bool) -> None:
    """Clone and install providers (all enabled ones, or the NAMEs given) without starting them."""
    from supervisor.cli import live
    from supervisor.lifecycle.manager import Supervisor

    config = _load(config_path)
    unknown = [n for n in names if config.provider(n) is None]
    if unknown:
        _fail(f"unknown provider(s) {', '.join(unknown)} in {config_path}", ExitCode.USAGE)
    _setup_logging(False)
    board = live.Board(live=live.live_wanted(plain), labels={"stopped": "installed"})
    sup = Supervisor(config, progress=board.progress)
    chosen = list(names) or [p.name for p in config.providers if p.enabled]
    results = asyncio.run(board.during(sup, chosen, sup.install_only(chosen)))
    failed = {name: err for name, err in results.items() if err is not None}
    for name, err in results.items():
        missing = config.provider(name).missing_secrets  # type: ignore[union-attr]
        if err is not None:
            click.echo(f"unigw: {name}: failed: {err}", err=True)
        elif missing:
            click.echo(f"{name}: installed; needs {', '.join(missing)} to run "
                       f"(unigw secret set {missing[0]})")
        else:
            click.echo(f"{name}: installed")
    if failed:
        _fail(f"{len(failed)} of {len(results)} provider(s) failed to install")


@cli.command()
@config_option
def check(config_path: str) -> None:
    """Validate providers.yaml, toolchains, free ports and secrets; exit 1 on any problem.

    One line per provider goes to stdout; warnings and problems go to stderr.
    """
    from supervisor.cli import checks

    try:
        config = load(config_path)
    except ConfigError as exc:
        click.echo("\n".join(exc.problems), err=True)
        _fail(f"{config_path}: {len(exc.problems)} problem(s)")
    report = checks.run(config)
    for line in report.lines:
        click.echo(line)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)
    if report.problems:
        _fail(f"{len(report.problems)} problem(s) found")
    click.echo(f"{config.path.name}: no problems")


@cli.command()
@config_option
@click.argument("name", required=False)
def strategy(config_path: str, name: str | None) -> None:
    """Show the load-balancing strategy, or switch the running gateway to NAME."""
    shown = _call(config_path, lambda c: c.get("/config"))
    known = shown["strategies"]  # the gateway's registry; this command copies no names
    if name is not None:
        if name not in known:
            _fail(f"unknown strategy {name!r} (known: {', '.join(known)})", ExitCode.USAGE)
        shown = _call(config_path, lambda c: c.put("/config", json={"strategy": name}))
    current = shown["gateway"]["strategy"]
    for s in known:
        click.echo(f"{'*' if s == current else ' '} {s}")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="unigw")


if __name__ == "__main__":
    main()
