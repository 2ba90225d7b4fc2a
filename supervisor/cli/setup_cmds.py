"""``unigw install`` and ``unigw check``: get providers ready to run, and say what stands in
the way."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from supervisor.cli.app import (
    ExitCode,
    cli,
    config_option,
    fail,
    load_config,
    plain_option,
    setup_logging,
)
from supervisor.config import ConfigError, load


@cli.command()
@config_option
@click.argument("names", nargs=-1)
@plain_option
def install(config_path: str, names: tuple[str, ...], plain: bool) -> None:
    """Clone and install providers (all enabled ones, or the NAMEs given) without starting them."""
    from supervisor.cli import live
    from supervisor.lifecycle.manager import Supervisor
    from supervisor.lifecycle.remote import NOTHING_TO_INSTALL

    config = load_config(config_path)
    unknown = [n for n in names if not config.members(n)]
    if unknown:
        fail(f"unknown provider(s) {', '.join(unknown)} in {config_path}", ExitCode.USAGE)
    setup_logging(False)
    board = live.Board(live=live.live_wanted(plain), labels={"stopped": "installed"})
    sup = Supervisor(config, progress=board.progress)
    asked = ([p.name for n in names for p in config.members(n)]  # a group: its instances
             or [p.name for p in config.providers if p.enabled])
    remote = {p.name: p.url for p in config.providers if p.remote and p.name in asked}
    for name, url in remote.items():
        click.echo(f"{name}: {NOTHING_TO_INSTALL} ({url})")
    chosen = [n for n in asked if n not in remote]
    if not chosen:
        return
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
        fail(f"{len(failed)} of {len(results)} provider(s) failed to install")


@cli.command()
@config_option
def check(config_path: str) -> None:
    """Validate providers.yaml, toolchains, free ports and secrets; exit 1 on any problem.

    One line per provider goes to stdout; warnings and problems go to stderr.
    """
    from supervisor.cli import checks

    if not Path(config_path).exists():
        load_config(config_path)  # says it is missing, and what to do, as `up` does
    try:
        config = load(config_path)
    except ConfigError as exc:
        click.echo("\n".join(exc.problems), err=True)
        fail(f"{config_path}: {len(exc.problems)} problem(s)")
    report = checks.run(config)
    for line in report.lines:
        click.echo(line)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)
    if report.problems:
        fail(f"{len(report.problems)} problem(s) found")
    click.echo(f"{config.path.name}: no problems")
