"""``unigw status``, ``start/stop/restart NAME``, ``logs NAME``, ``strategy`` and ``test``: look
at and control the running instance through its gateway's control routes."""

from __future__ import annotations

import json
import sys
from urllib.parse import quote

import click

from supervisor.cli import output
from supervisor.cli.app import ExitCode, call, cli, config_option, control_config, fail
from supervisor.view import State


@cli.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print GET /providers as one JSON object.")
def status(config_path: str, as_json: bool) -> None:
    """One row per provider: NAME PORT STATE PID UPTIME RESTARTS HEALTH SERVING REQS ERRORS
    LAST_ERROR. A provider's instances are indented under one line of their own."""
    data = call(config_path, lambda c: c.get("/providers"))
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    try:
        rows = [output.StatusRow.from_json(r) for r in data["providers"]]
    except (KeyError, TypeError, ValueError) as exc:
        fail(f"the gateway's GET /providers is not what this unigw reads ({exc!r})")
    if output.use_colour():
        from supervisor.cli import live

        live.print_status(output.STATUS_COLUMNS, [c for c, _ in output.grouped_cells(rows)],
                          state_col=2, serving_col=output.STATUS_COLUMNS.index("SERVING"))
    else:
        click.echo(output.status_table(rows))
    for r in rows:
        for w in r.status.warnings:
            click.echo(f"warning: {r.status.name}: {w}", err=True)


def _control(action: str, name: str, config_path: str) -> None:
    """POST the action; one line per provider it acted on (a group: each instance)."""
    path = f"/providers/{quote(name, safe='')}/{action}"  # NAME#2: '#' is not a fragment
    answer = call(config_path, lambda c: c.post(path), timeout=300.0)
    try:
        rows = [output.StatusRow.from_json(r).status
                for r in (answer["providers"] if "providers" in answer else [answer])]
    except (KeyError, TypeError, ValueError) as exc:
        fail(f"the gateway's answer is not what this unigw reads ({exc!r})")
    bad = []
    for row in rows:
        line = f"{row.name}: {row.state.value}" + (f" (pid {row.pid})" if row.pid else "")
        if row.state is State.FAILED or (action != "stop" and row.state is not State.READY):
            bad.append(f"{line}: {row.last_error or 'see unigw logs ' + row.name}")
        else:
            click.echo(line)
    if bad:
        fail("\n".join(bad))


#: ``unigw start/stop/restart NAME``: one command each, made by one factory.
PROVIDER_ACTIONS = {
    "start": "Start one provider of the running instance; return once it is ready (or failed). "
    "NAME of a provider with instances: all of them; NAME#2: that one.",
    "stop": "Stop one provider of the running instance (its whole process tree). "
    "NAME of a provider with instances: all of them; NAME#2: that one.",
    "restart": "Restart one provider; a failed one has its crash history cleared and is "
    "tried again. NAME of a provider with instances: all of them; NAME#2: that one.",
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
@click.option("-n", "lines", default=50, show_default=True, type=click.IntRange(min=0),
              help="How many of the last lines.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
def logs(config_path: str, name: str, lines: int, follow: bool) -> None:
    """A provider's captured output (clone, install and run), from .unigw/logs/NAME.log.

    NAME of a provider with instances: each instance's last lines in turn, after a
    ``==> NAME#k <==`` line (-f follows one instance: give NAME#k). A ``url:`` provider runs
    elsewhere: there is no log of it here, and it says so (exit 1).
    """
    from supervisor.proc import logs as logfiles

    config = control_config(config_path)
    members = config.members(name)
    if not members:
        where = (config.path.name if config.path.exists() else
                 "the built-in demo (there is no providers.yaml here)")
        known = ", ".join(dict.fromkeys(p.group or p.name for p in config.providers)) or "none"
        fail(f"unknown provider {name!r} in {where} (known: {known})")
    if config.provider(name) is None:  # a group
        if follow:
            fail(f"-f follows one instance: {members[0].name}, …", ExitCode.USAGE)
        for p in members:
            path = logfiles.log_path(config.state_dir, p.name)
            click.echo(f"==> {p.name} <==")
            for line in logfiles.tail(path, lines) if path.exists() else []:
                click.echo(line)
        return
    provider = config.provider(name)
    if provider is not None and provider.remote:
        there = ("its providers' logs are on that machine: `unigw logs` there" if provider.nested
                 else "read its output where it runs")
        fail(f"{name} runs at {provider.url}, not here: unigw has no log of it ({there})")
    path = logfiles.log_path(config.state_dir, name)
    if not path.exists():
        fail(f"no log yet for {name} ({path})")
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
@click.argument("name", required=False)
def strategy(config_path: str, name: str | None) -> None:
    """Show the load-balancing strategy, or switch the running gateway to NAME."""
    shown = call(config_path, lambda c: c.get("/config"))
    known = shown["strategies"]  # the gateway's registry; this command copies no names
    if name is not None:
        if name not in known:
            fail(f"unknown strategy {name!r} (known: {', '.join(known)})", ExitCode.USAGE)
        shown = call(config_path, lambda c: c.put("/config", json={"strategy": name}))
    current = shown["gateway"]["strategy"]
    for s in known:
        click.echo(f"{'*' if s == current else ' '} {s}")


@cli.command("test")
@config_option
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print every answer as one JSON object.")
def test_command(config_path: str, names: tuple[str, ...], as_json: bool) -> None:
    """One tiny real chat (max_tokens 1) to each ready provider, or the NAMEs: serving or not,
    latency, its error. Exit 0 when all serve, 1 when any fails, 3 when nothing runs.

    Each chat spends a little of the provider's upstream quota and counts like a real call.
    """
    from supervisor.cli import canary

    config = control_config(config_path)
    wait = config.gateway.total_timeout + 10.0  # a provider's whole answer, and some
    rows = call(config_path, lambda c: c.get("/providers"))["providers"]
    chosen = list(names) or canary.ready_names(rows)
    if not chosen:
        fail(f"no provider is ready (0 of {len(rows)}); nothing to test")
    results = call(config_path, lambda c: canary.check_all(c, chosen), timeout=wait)
    ok = all(r.ok for r in results)
    if as_json:
        click.echo(json.dumps({"ok": ok, "providers": [r.answer for r in results]}, indent=2))
    else:
        click.echo("\n".join(canary.lines(results)))
    if not ok:
        sys.exit(ExitCode.ERROR)
