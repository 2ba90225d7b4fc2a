"""Progress as people expect from ``docker compose up``: one line per provider that updates in
place, then a summary. The only module that knows rich (the way commands.py knows click).

``unigw up``, ``demo`` and ``install`` make a :class:`Board`, give its :meth:`Board.progress`
to the supervisor as the progress callback and let it follow the supervisor (``attach`` from
``run()``, or ``during`` an install). The board reads each provider's state, pid and last error
from the view's status rows; the progress lines only say the current step.

On a terminal, the board is a ``rich.live.Live`` table on stderr (PROVIDER STATE TIME STEP),
redrawn a few times a second; log lines scroll above it, except the lines about its own
providers below ERROR (the board shows those). Once every provider is done (ready, unhealthy,
failed, stopped or backoff; or after ``max_wait``) the last table stays, the summary follows,
and for ``up`` the gateway's and dashboard's URLs; from then on, log lines as usual.

Plain (stderr not a terminal, ``--plain``, ``NO_COLOR`` or ``CI``): the progress lines as
``  [name] line`` (no repeats, no escape codes), the log lines, and the same summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO, TypeVar

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from supervisor.cli.output import SERVING_COLOURS, STATE_COLOURS
from supervisor.cli.progress import DONE_STATES, plain_text, step_of, summary
from supervisor.view import ProviderView

T = TypeVar("T")
_BY_VALUE = {state.value: colour for state, colour in STATE_COLOURS.items()}
_STYLES = {**_BY_VALUE, "installed": "green"}  # by label first, then by state
_TICK = 0.2  # seconds between redraws: 5 Hz is live to the eye and cheap on 2 cores


def live_wanted(plain: bool, stream: TextIO | None = None) -> bool:
    """Whether to draw the live board: stderr is a terminal, no --plain, NO_COLOR or CI."""
    stream = stream or sys.stderr
    quiet = any(os.environ.get(var) for var in ("NO_COLOR", "CI"))
    return not plain and not quiet and stream.isatty()


def field_of(row: object, name: str) -> Any:
    """A status row's field, whether the row is a dict or a dataclass (an Enum as its value)."""
    value = row.get(name) if isinstance(row, Mapping) else getattr(row, name, None)
    return getattr(value, "value", value)


@dataclass
class _Track:
    """What the board remembers of one provider between redraws."""

    started: float
    ended: float | None = None
    step: str = ""
    detail: str = ""  # the last output line of the current step
    last: str = ""  # the last progress line, so a repeat is not printed again
    active: bool = False  # seen working, so a settled state means it is done


class Board:
    """The live (or plain) progress of a set of providers, and the summary at the end."""

    def __init__(
        self,
        *,
        live: bool,
        urls: Sequence[str] = (),
        labels: Mapping[str, str] | None = None,
        max_wait: float = 900.0,
    ) -> None:
        self.live = live
        self.urls = tuple(urls)
        self.labels = dict(labels or {})  # e.g. stopped → installed, for ``unigw install``
        self.max_wait = max_wait
        self._t0 = time.monotonic()
        self._tracks: dict[str, _Track] = {}
        self._shown: set[str] = set()
        self._over = False  # summed up: from now on, progress lines are plain lines
        self._task: asyncio.Task[None] | None = None

    # -- input -------------------------------------------------------------------------------

    def progress(self, name: str, line: str) -> None:
        """The supervisor's progress callback: note the step; in plain mode, print the line."""
        text = plain_text(line)
        track = self._track(name)
        if not text.strip() or text == track.last:
            return
        track.last, track.active = text, True
        step = step_of(text)
        if step is None:
            track.detail = text.strip()
        else:
            track.step, track.detail = step, ""
        if not self.live or self._over:
            click.echo(f"  [{name}] {text}", err=True)

    def attach(self, view: ProviderView) -> None:
        """For ``run(on_start=…)``, just before the providers launch: show those that do
        until they are done. The live view and the quieter log start at once, so that no
        transition line slips out before the first redraw."""
        stack = contextlib.ExitStack()
        live = stack.enter_context(self._showing([field_of(r, "name") for r in view.status()]))
        self._task = asyncio.get_running_loop().create_task(
            self._follow(view, None, None, live, stack), name="progress-board")

    async def during(self, view: ProviderView, names: Sequence[str],
                     work: Coroutine[Any, Any, T]) -> T:
        """Show ``names`` while ``work`` runs (``unigw install``); return its result."""
        task = asyncio.ensure_future(work)
        stack = contextlib.ExitStack()
        live = stack.enter_context(self._showing(names))
        await self._follow(view, names, task, live, stack)
        return await task

    async def _follow(self, view: ProviderView, names: Sequence[str] | None,
                      until_done: asyncio.Future[Any] | None, live: Live | None,
                      stack: contextlib.ExitStack) -> None:
        """Redraw until every provider shown is done (or ``until_done`` is), then sum up."""
        rows: list[object] = []
        with stack:
            while True:
                rows = self._rows(view, names)
                self._note(rows)
                if live is not None:
                    live.update(self._table(rows), refresh=True)
                if until_done is not None:
                    finished = until_done.done()
                else:  # a run: until all are done, or for at most max_wait
                    finished = bool(rows) and self._all_done(rows)
                    finished |= time.monotonic() - self._t0 > self.max_wait
                if finished:
                    break
                await asyncio.sleep(_TICK)
        self._over = True
        self._say(summary(((self._label(r), field_of(r, "last_error")) for r in rows),
                          time.monotonic() - self._t0))
        if any(field_of(r, "state") != "stopped" for r in rows):  # not after Ctrl-C
            for url in self.urls:
                self._say(url)

    # -- reading the view --------------------------------------------------------------------

    def _track(self, name: str) -> _Track:
        return self._tracks.setdefault(name, _Track(started=self._t0))

    def _rows(self, view: ProviderView, names: Sequence[str] | None) -> list[object]:
        """The rows of ``names``; without names, of every provider that has left stopped."""
        rows = list(view.status())
        if names is None:
            self._shown |= {field_of(r, "name") for r in rows if field_of(r, "state") != "stopped"}
            return [r for r in rows if field_of(r, "name") in self._shown]
        by_name = {field_of(r, "name"): r for r in rows}
        return [by_name[n] for n in names if n in by_name]

    def _label(self, row: object) -> str:
        state = str(field_of(row, "state"))
        return self.labels.get(state, state)

    def _all_done(self, rows: Sequence[object]) -> bool:
        return all(field_of(r, "state") in DONE_STATES for r in rows)

    def _note(self, rows: Sequence[object]) -> None:
        """Start or stop each provider's clock as it works or is done."""
        now = time.monotonic()
        for row in rows:
            track = self._track(field_of(row, "name"))
            if field_of(row, "state") not in DONE_STATES:
                track.active, track.ended = True, None
            elif track.active and track.ended is None:
                track.ended = now

    def _step(self, row: object) -> str:
        state, track = field_of(row, "state"), self._track(field_of(row, "name"))
        if state in ("failed", "backoff", "unhealthy"):
            return str(field_of(row, "last_error") or "").strip().split("\n", 1)[0]
        if state == "ready":
            return f"port {field_of(row, 'port')}"
        if state == "starting":
            return "probing" if field_of(row, "pid") else "starting"
        if state == "stopping":
            return "stopping"
        return f"{track.step}: {track.detail}" if track.step and track.detail else track.step

    # -- drawing -----------------------------------------------------------------------------

    def _table(self, rows: Sequence[object]) -> Table:
        table = Table(box=None, pad_edge=False, header_style="bold")
        table.add_column("PROVIDER", no_wrap=True)
        table.add_column("STATE", no_wrap=True)
        table.add_column("TIME", no_wrap=True, justify="right")
        table.add_column("STEP")  # the one that gives way when the terminal is narrow
        now = time.monotonic()
        for row in rows:
            name, state = field_of(row, "name"), str(field_of(row, "state"))
            track = self._track(name)
            label = self._label(row)
            style = _STYLES.get(label) or _STYLES.get(state, "")
            seconds = (track.ended or now) - track.started
            step = Text(self._step(row), style="red" if state == "failed" else "",
                        no_wrap=True, overflow="ellipsis")
            table.add_row(name, Text(label, style=style), f"{seconds:.0f}s", step)
        return table

    @contextlib.contextmanager
    def _showing(self, names: Sequence[str]) -> Iterator[Live | None]:
        """The live region on stderr, with the log handlers printing above it; or nothing."""
        if not self.live:
            yield None
            return
        original = sys.stderr
        console = Console(file=original, highlight=False)
        quiet = _QuietFor(frozenset(names))
        with Live(console=console, auto_refresh=False, transient=False,
                  redirect_stdout=False, redirect_stderr=True) as live:
            handlers = [h for h in logging.getLogger().handlers
                        if isinstance(h, logging.StreamHandler) and h.stream is original]
            for h in handlers:
                h.setStream(sys.stderr)  # rich's proxy: lines go above the live region
                h.addFilter(quiet)
            try:
                yield live
            finally:
                for h in handlers:
                    h.removeFilter(quiet)
                    h.setStream(original)

    def _say(self, line: str) -> None:
        if self.live:
            Console(file=sys.stderr, highlight=False).print(line, markup=False)
        else:
            click.echo(line, err=True)


class _QuietFor(logging.Filter):
    """Drops the supervisor's lines about the board's providers below ERROR while it shows
    them (their transitions: three a provider, which the board replaces)."""

    def __init__(self, names: frozenset[str]) -> None:
        super().__init__()
        self.names = names

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "unigw.supervisor" or record.levelno >= logging.ERROR:
            return True
        return record.getMessage().split(":", 1)[0] not in self.names


def print_status(header: Sequence[str], rows: Sequence[Sequence[str]], state_col: int,
                 serving_col: int | None = None) -> None:
    """``unigw status`` on a terminal: the same columns as a table, the state (and serving)
    coloured."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for h in header:
        table.add_column(h, no_wrap=True, overflow="ellipsis")
    for r in rows:
        cells: list[str | Text] = list(r)
        cells[state_col] = Text(r[state_col], style=_BY_VALUE.get(r[state_col], ""))
        if serving_col is not None:
            cells[serving_col] = Text(r[serving_col],
                                      style=SERVING_COLOURS.get(r[serving_col], ""))
        table.add_row(*cells)
    Console(highlight=False).print(table)
