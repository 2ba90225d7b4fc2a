"""The ``unigw`` command group and what every command shares: exit codes, the one way to fail,
loading the config, the options written once, and calling the running instance.

The commands themselves live beside this module, one module per kind: ``run_cmds`` (up, demo,
gateway, down), ``control_cmds`` (status, start/stop/restart, logs, strategy), ``setup_cmds``
(install, check), ``secret_cmds`` (secret set/list), ``requests_cmds`` (requests),
``export_cmds`` (export kubernetes); :mod:`supervisor.cli.commands` gathers them.
Only this package knows click. Data goes to stdout; problems, warnings, logs and progress to
stderr.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from enum import IntEnum
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import click

from supervisor.cli.client import ControlError, InstanceClient, NotRunning
from supervisor.config import Config, ConfigError, load, loads
from supervisor.proc.instance import running

DEMO_FILE = resources.files("supervisor.demo") / "demo.yaml"


class ExitCode(IntEnum):
    """What ``unigw`` exits with (DESIGN.md); click's own usage errors are USAGE too."""

    OK = 0
    ERROR = 1
    USAGE = 2
    NOT_RUNNING = 3  # nothing running, or cannot connect to it


def fail(message: str, code: ExitCode = ExitCode.ERROR) -> NoReturn:
    """The one way a command reports a problem: a line on stderr, then the exit code."""
    click.echo(f"unigw: {message}", err=True)
    sys.exit(code)


def load_config(path: str) -> Config:
    """providers.yaml, or exit 1 naming every problem (or the missing file and what to do)."""
    if not Path(path).exists():
        fail(f"{path} not found: run unigw in the folder that has it, pass -c PATH or set "
              "UNIGW_CONFIG (`unigw demo` needs none)")
    try:
        return load(path)
    except ConfigError as exc:
        click.echo("\n".join(exc.problems), err=True)
        fail(f"{path} has {len(exc.problems)} problem(s); nothing was started")


def demo_config() -> Config:
    """The built-in demo, as if its file lived in the current folder (state goes to ./.unigw)."""
    return loads(DEMO_FILE.read_text(encoding="utf-8"), Path.cwd() / "demo.yaml")


def control_config(path: str) -> Config:
    """The config that says where the running instance is; the demo's when there is no file.

    A providers.yaml broken by an edit must not lock the user out of the instance that runs
    with the previous version: its problems are shown and the default state folder is used.
    """
    if not Path(path).exists():
        if path == "providers.yaml":
            return demo_config()
        fail(f"{path}: no such file (-c names the providers.yaml of the instance to talk to)")
    try:
        return load(path)
    except ConfigError as exc:
        click.echo("\n".join(exc.problems), err=True)
        fallback = loads("", Path(path).resolve())
        if running(fallback.state_dir) is None:  # its port is not known: never guess one
            fail(f"{path} has {len(exc.problems)} problem(s), and no running instance is "
                 f"recorded in {fallback.state_dir}")
        click.echo(
            f"unigw: {path} has problems; talking to the instance recorded in "
            f"{fallback.state_dir}", err=True)
        return fallback


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


def setup_logging(verbose: bool) -> None:
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


def gateway_url(config: Config) -> str:
    """Where the gateway answers: its host, or 127.0.0.1 when it listens on every address."""
    gw = config.gateway
    return f"http://{'127.0.0.1' if gw.host in ('0.0.0.0', '::') else gw.host}:{gw.port}"


def call(config_path: str, fn: Callable[[InstanceClient], Any], timeout: float = 10.0,
         offline: Callable[[Config], Any] | None = None) -> Any:
    """``fn(client)`` against the running instance; exit 3 when nothing runs (unless
    ``offline(config)`` has an answer without it: not None), 1 on its error."""
    config = control_config(config_path)
    client = InstanceClient(config, timeout=timeout)
    try:
        return fn(client)
    except NotRunning as exc:
        answer = None if offline is None else offline(config)
        if answer is None:
            fail(str(exc), ExitCode.NOT_RUNNING)
        return answer
    except ControlError as exc:
        fail(str(exc))
    finally:
        client.close()
