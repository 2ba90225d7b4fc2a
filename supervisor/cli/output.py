"""How the command line shows things: the status table, durations, sizes, colour rules."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

STATUS_COLUMNS = (
    "NAME",
    "PORT",
    "STATE",
    "PID",
    "UPTIME",
    "RESTARTS",
    "HEALTH",
    "REQS",
    "ERRORS",
    "LAST_ERROR",
)
_STATE_COLOURS = {
    "ready": "green",
    "starting": "yellow",
    "installing": "yellow",
    "unhealthy": "yellow",
    "backoff": "yellow",
    "failed": "red",
}


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


def status_cells(row: dict[str, Any], last_error_width: int = 60) -> list[str]:
    """One provider's row as the cells of ``unigw status``."""
    health = row.get("health")
    if health == "ok" and row.get("health_ms") is not None:
        health = f"ok {row['health_ms']:.0f}ms"
    err = " ".join(str(row.get("last_error") or "-").split())
    if len(err) > last_error_width:
        err = err[: last_error_width - 1] + "…"
    return [
        str(row.get("name", "?")),
        str(row.get("port", "-")),
        str(row.get("state", "?")),
        str(row.get("pid") or "-"),
        duration(row.get("uptime_s")),
        str(row.get("restarts", 0)),
        str(health or "-"),
        str(row.get("reqs", 0)),
        str(row.get("errors", 0)),
        err,
    ]


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    colour_col: int | None = None,
    colour: bool = False,
) -> str:
    """Left-aligned columns separated by two spaces; the state column coloured on request."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r, widths, strict=True)]
        if colour and colour_col is not None and r[colour_col] in _STATE_COLOURS:
            cells[colour_col] = _paint(cells[colour_col], _STATE_COLOURS[r[colour_col]])
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _paint(text: str, colour: str) -> str:
    codes = {"green": 32, "yellow": 33, "red": 31}
    return f"\x1b[{codes[colour]}m{text}\x1b[0m"
