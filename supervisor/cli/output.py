"""How the command line shows things: the status table, durations, sizes, colour rules.

A row of ``GET /providers`` is parsed once, by :meth:`StatusRow.from_json`, into the seam's
:class:`~supervisor.view.ProviderStatus` and the gateway's counters; the table is made from
their attributes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from supervisor.view import ProviderStatus, State

STATUS_COLUMNS = (
    "NAME",
    "PORT",
    "STATE",
    "PID",
    "UPTIME",
    "RESTARTS",
    "HEALTH",
    "SERVING",
    "REQS",
    "ERRORS",
    "LAST_ERROR",
)
STATE_COLOURS = {
    State.READY: "green",
    State.STARTING: "yellow",
    State.INSTALLING: "yellow",
    State.UNHEALTHY: "yellow",
    State.BACKOFF: "yellow",
    State.FAILED: "red",
}
SERVING_COLOURS = {"ok": "green", "rate_limited": "yellow", "failing": "red",
                   "auth_failed": "red"}  # "unknown": uncoloured
_HEALTH = {"ok": True, "fail": False, None: None}  # the JSON's "health" → probe_ok
_NOT_SERVING = frozenset(("failing", "rate_limited", "auth_failed"))


@dataclass(frozen=True)
class StatusRow:
    """One provider as ``GET /providers`` shows it: its status and the gateway's counters.

    ``serving`` is the row's ``serving`` value; ``serving_error`` its latest failed attempt as
    ``class: message`` (None before any), see :mod:`gateway.rows`; ``inner`` a unigw node's
    provider that gave its latest answer.
    """

    status: ProviderStatus
    reqs: int
    errors: int
    serving: str = "unknown"
    serving_error: str | None = None
    inner: str | None = None

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> StatusRow:
        """Parse one row of ``GET /providers`` (KeyError/ValueError when it is not one)."""
        status = ProviderStatus(
            name=row["name"], port=row["port"], state=State(row["state"]), pid=row["pid"],
            uptime_s=row["uptime_s"], restarts=row["restarts"],
            probe_ok=_HEALTH[row["health"]], probe_ms=row["health_ms"],
            last_error=row["last_error"], cpu_percent=row["cpu_percent"],
            rss_bytes=row["rss_bytes"], runtime=row["runtime"], models=tuple(row["models"]),
            warnings=tuple(row["warnings"]), enabled=row["enabled"],
            description=row["description"], missing_secrets=tuple(row["missing_secrets"]),
            url=row.get("url"),
            group=row.get("group") or "",
        )
        error = row["serving_error"]
        if error is not None:
            error = f"{row['serving_class']}: {error}"
        return cls(status, row["reqs"], row["errors"], str(row["serving"]), error,
                   row.get("inner"))

    def reason(self) -> str | None:
        """What LAST_ERROR shows: a ready provider that does not serve says why (its latest
        failed attempt); otherwise the supervisor's last error."""
        if self.status.state is State.READY and self.serving in _NOT_SERVING:
            return self.serving_error or self.status.last_error
        return self.status.last_error


def use_colour(stream: TextIO = sys.stdout) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def duration(seconds: float | None) -> str:
    """``42s``, ``7m03s``, ``3h12m``, ``2d04h``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def health(status: ProviderStatus) -> str:
    """``ok 12ms``, ``ok``, ``fail``, or ``-`` while nothing answers."""
    if status.probe_ok is None:
        return "-"
    if not status.probe_ok:
        return "fail"
    return "ok" if status.probe_ms is None else f"ok {status.probe_ms:.0f}ms"


def status_cells(row: StatusRow, last_error_width: int = 60) -> list[str]:
    """One provider's row as the cells of ``unigw status``."""
    s = row.status
    err = " ".join((row.reason() or "-").split())
    if len(err) > last_error_width:  # its start says what failed, its end usually why
        head = last_error_width * 2 // 5
        err = err[:head] + "…" + err[len(err) - (last_error_width - head - 1):]
    name = s.name if row.inner is None else f"{s.name} → {row.inner}"  # a unigw node's last
    return [name, str(s.port), s.state.value, str(s.pid or "-"), duration(s.uptime_s),
            str(s.restarts), health(s), row.serving, str(row.reqs), str(row.errors), err]


def grouped_cells(rows: Sequence[StatusRow]) -> list[tuple[list[str], State | None]]:
    """The lines of ``unigw status``, each with the state it shows (None for a group's line).

    The instances of a provider with ``instances:`` come under one line of its own: its name,
    its ports, how many are ready, and their restarts, requests and errors added up; each
    instance's line is indented under it.
    """
    out: list[tuple[list[str], State | None]] = []
    for i, row in enumerate(rows):
        group = row.status.group
        if group and (i == 0 or rows[i - 1].status.group != group):
            out.append((_group_cells(group, [r for r in rows if r.status.group == group]), None))
        cells = status_cells(row)
        if group:
            cells[0] = "  " + cells[0]
        out.append((cells, row.status.state))
    return out


def _group_cells(group: str, rows: Sequence[StatusRow]) -> list[str]:
    ports = sorted(r.status.port for r in rows)
    contiguous = ports == list(range(ports[0], ports[0] + len(ports)))
    shown = (f"{ports[0]}-{ports[-1]}" if contiguous and len(ports) > 1
             else ",".join(map(str, ports)))
    ready = sum(1 for r in rows if r.status.state is State.READY)
    return [group, shown, f"{ready}/{len(rows)} ready", "-", "-",
            str(sum(r.status.restarts for r in rows)), "-", "-",
            str(sum(r.reqs for r in rows)), str(sum(r.errors for r in rows)), "-"]


def status_table(rows: Sequence[StatusRow], colour: bool = False) -> str:
    """The table of ``unigw status``, its STATE column coloured on request."""
    lines = grouped_cells(rows)
    paint = [STATE_COLOURS.get(state) if colour and state else None for _, state in lines]
    return table(STATUS_COLUMNS, [cells for cells, _ in lines], paint, 2)


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    paint: Sequence[str | None] = (),
    paint_col: int = 0,
) -> str:
    """Left-aligned columns separated by two spaces; ``paint[i]`` colours row i's ``paint_col``."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for i, r in enumerate(rows):
        cells = [c.ljust(w) for c, w in zip(r, widths, strict=True)]
        colour = paint[i] if i < len(paint) else None
        if colour is not None:
            cells[paint_col] = _paint(cells[paint_col], colour)
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _paint(text: str, colour: str) -> str:
    codes = {"green": 32, "yellow": 33, "red": 31}
    return f"\x1b[{codes[colour]}m{text}\x1b[0m"
