"""``unigw requests [-n N] [--provider P] [--failed] [--json]``: the request log, newest
first, as a table or as one JSON object: the running gateway's ``GET /requests``, or, with no
instance running, what its file (``<state>/requests.db``) kept.

It registers itself on the click group of :mod:`supervisor.cli.commands` (imported by the
package's ``__init__``), which it uses for the shared option and the way to the instance.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import click

from supervisor.cli import output
from supervisor.cli.app import call, cli, config_option, fail
from supervisor.config import Config

COLUMNS = ("TIME", "ROUTE", "MODEL", "PROVIDER", "STATUS", "TTFB", "TOTAL", "TOKENS", "TRIED")


@cli.command("requests")
@config_option
@click.option("-n", "count", default=20, show_default=True, type=click.IntRange(1, 10_000),
              help="How many of the newest calls.")
@click.option("--provider", help="Only calls that this provider answered or was tried for.")
@click.option("--failed", is_flag=True, help="Only calls that did not succeed.")
@click.option("--json", "as_json", is_flag=True, help="Print GET /requests as one JSON object.")
def requests_command(config_path: str, count: int, provider: str | None, failed: bool,
                     as_json: bool) -> None:
    """The request log: one line per call, newest first: TIME ROUTE MODEL PROVIDER STATUS
    TTFB TOTAL TOKENS TRIED (each provider tried, with how it failed).

    With no instance running it reads the log's file, which outlives the instance."""
    params: dict[str, Any] = {"n": count}
    if provider:
        params["provider"] = provider
    if failed:
        params["failed"] = "true"
    data = _requests(config_path, params)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    if not data.get("enabled", True):
        click.echo("unigw: the request log is off (gateway.request_log: false)", err=True)
    try:
        rows = [cells(r) for r in data["requests"]]
    except (KeyError, TypeError, ValueError) as exc:
        fail(f"the gateway's GET /requests is not what this unigw reads ({exc!r})")
    colour = output.use_colour()
    paint = [("green" if r["ok"] else "red") if colour else None for r in data["requests"]]
    click.echo(output.table(COLUMNS, rows, paint, COLUMNS.index("STATUS")))


def _requests(config_path: str, params: dict[str, Any]) -> dict[str, Any]:
    """``GET /requests`` of the running gateway; with none running, the log's own file (it
    outlives the instance), said on stderr; exit 3 when there is neither."""
    from supervisor.run import logged_requests

    def kept(config: Config) -> dict[str, Any] | None:
        found = logged_requests(config, limit=params["n"], provider=params.get("provider"),
                                failed=True if params.get("failed") else None)
        if found is None:
            return None
        path, rows = found
        click.echo(f"unigw: not running; the calls {path} kept", err=True)
        return {"enabled": True, "requests": rows}

    answer: dict[str, Any] = call(config_path, lambda c: c.get("/requests", params=params),
                                  offline=kept)
    return answer


def cells(row: Mapping[str, Any]) -> list[str]:
    """One call's row of the table."""
    model = row["model_asked"] or "-"
    if row["model_sent"] and row["model_sent"] != row["model_asked"]:
        model += f" → {row['model_sent']}"
    route = row["route"] + (" (stream)" if row["stream"] else "")
    return [_when(row["ts"]), route, model, row["provider"] or "-", str(row["status"]),
            _ms(row["ttfb_ms"]), _ms(row["total_ms"]),
            _tokens(row["prompt_tokens"], row["completion_tokens"]), _tried(row["tried"])]


def _when(ts: float, now: float | None = None) -> str:
    """``14:03:07`` today, ``03-11 14:03`` before."""
    local = time.localtime(ts)
    today = time.localtime(now if now is not None else time.time())
    same_day = local[:3] == today[:3]
    return time.strftime("%H:%M:%S" if same_day else "%m-%d %H:%M", local)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}ms" if value < 1000 else f"{value / 1000:.1f}s"


def _tokens(prompt: int | None, completion: int | None) -> str:
    """``12+30`` (prompt+completion), or ``-`` when the provider reported none."""
    if prompt is None and completion is None:
        return "-"
    return "+".join("?" if n is None else str(n) for n in (prompt, completion))


def _tried(tried: Sequence[Mapping[str, Any]]) -> str:
    """``bad:upstream_error good``: each provider tried, with its failure class if it failed."""
    return " ".join(a["provider"] + (f":{a['failure']}" if a.get("failure") else "")
                    for a in tried) or "-"
