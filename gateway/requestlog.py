"""The request log: one row per call through the gateway, in SQLite, written off the hot path.

What a row holds (:class:`RequestRecord`): when, which route and API, the model asked and the
model sent, the provider that answered, every provider tried with its failure class and message,
the status, stream or not, time to first byte, total time, the tokens the provider reported,
and the gateway's own added time. Never the prompt or the answer, unless ``log_bodies``.

:meth:`RequestLog.add` only appends to an in-memory list (a few hundred nanoseconds on the
request path); a writer thread takes the list every ``flush_interval`` seconds and inserts it in
one transaction. The database is in WAL mode, so readers (``GET /requests``, ``unigw
requests``, the dashboard's history) never wait for the writer. After each batch the log is
trimmed to ``max_rows`` rows and ``max_age`` seconds. A write that fails (disk full, a locked
file) is logged and the batch dropped: the log must never stop a call.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any, NamedTuple

log = logging.getLogger("unigw.gateway")

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    route TEXT NOT NULL,
    api TEXT NOT NULL,
    model_asked TEXT,
    model_sent TEXT,
    provider TEXT,
    tried TEXT NOT NULL,
    status INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    stream INTEGER NOT NULL,
    ttfb_ms REAL,
    total_ms REAL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    overhead_ms REAL,
    request_body TEXT,
    response_body TEXT
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
"""
COLUMNS = ("ts", "route", "api", "model_asked", "model_sent", "provider", "tried", "status",
           "ok", "stream", "ttfb_ms", "total_ms", "prompt_tokens", "completion_tokens",
           "overhead_ms", "request_body", "response_body")
INSERT = f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES "
ROW_PARAMS = f"({', '.join('?' * len(COLUMNS))})"
# Rows per INSERT statement: one statement for many rows, because sqlite3 lets go of the GIL
# at every step of a statement, and a step per row (executemany) has the writer and the event
# loop trade the GIL at every row of a batch. The writer costs about 10 µs of CPU a row.
# SQLite before 3.32 allows 999 parameters in a statement, later ones 32766.
ROWS_PER_INSERT = 500 if sqlite3.sqlite_version_info >= (3, 32) else 999 // len(COLUMNS)


class Attempt(NamedTuple):
    """One provider tried for a call, how it failed (``failure`` None: it answered), and the
    model it was asked for. (A named tuple: one is made for every call, and a frozen
    dataclass costs several times as much to build.)"""

    provider: str
    failure: str | None = None  # a failure class: unreachable, timeout, upstream_error, …
    message: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class RequestRecord:
    """One call, as the log keeps it."""

    ts: float
    route: str
    api: str  # openai | anthropic | gemini
    status: int
    stream: bool
    model_asked: str | None = None
    model_sent: str | None = None
    provider: str | None = None  # the provider that answered; None if none did
    tried: tuple[Attempt, ...] = ()
    ttfb_ms: float | None = None
    total_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    overhead_ms: float | None = None
    request_body: str | None = field(default=None, repr=False)
    response_body: str | None = field(default=None, repr=False)

    def row(self) -> Row:
        return row(self.ts, self.route, self.api, self.status, self.stream, self.model_asked,
                   self.model_sent, self.provider, self.tried, self.ttfb_ms, self.total_ms,
                   self.prompt_tokens, self.completion_tokens, self.overhead_ms,
                   self.request_body, self.response_body)


Row = tuple[Any, ...]  # one row's values, in COLUMNS order


def row(ts: float, route: str, api: str, status: int, stream: bool, model_asked: str | None,
        model_sent: str | None, provider: str | None, tried: Sequence[Attempt],
        ttfb_ms: float | None, total_ms: float | None, prompt_tokens: int | None,
        completion_tokens: int | None, overhead_ms: float | None,
        request_body: str | None = None, response_body: str | None = None) -> Row:
    """One call's row, what :meth:`RequestLog.add_row` takes: the fields of a
    :class:`RequestRecord`, without building one (the gateway makes a row for every call)."""
    return (ts, route, api, model_asked, model_sent, provider, _tried_json(tried), status,
            1 if 200 <= status < 400 else 0, 1 if stream else 0, ttfb_ms, total_ms,
            prompt_tokens, completion_tokens, overhead_ms, request_body, response_body)


@dataclass(frozen=True)
class LogSettings:
    """Where and how much: ``max_age`` in seconds; bodies only with ``log_bodies``."""

    path: Path
    max_rows: int = 100_000
    max_age: float = 30 * 86400.0
    log_bodies: bool = False
    flush_interval: float = 0.5


class RequestLog:
    """The log; :meth:`open` starts its writer thread, :meth:`close` flushes and stops it."""

    def __init__(self, settings: LogSettings) -> None:
        self.settings = settings
        self._pending: list[Row] = []
        self._queued = 0  # records ever added (under the lock): flush waits for these
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0  # rows inserted so far (for tests and metrics)
        self.writer_cpu_s = 0.0  # CPU time the writer thread has used (its cost, for metrics)

    @property
    def log_bodies(self) -> bool:
        return self.settings.log_bodies

    def open(self) -> None:
        """Create the database (WAL mode) and start the writer. Its folder is made if missing,
        but not the folders above it (OSError then: a config folder that does not exist)."""
        self.settings.path.parent.mkdir(exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
        self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
        self._thread.start()

    def add(self, record: RequestRecord) -> None:
        """Queue one record (no I/O here)."""
        self.add_row(record.row())

    def add_row(self, values: Row) -> None:
        """Queue one row made by :func:`row` (the hot path: no I/O here)."""
        if not self.settings.log_bodies and (values[-1] is not None or values[-2] is not None):
            values = (*values[:-2], None, None)
        with self._lock:
            self._pending.append(values)
            self._queued += 1

    def flush(self) -> None:
        """Ask the writer to write what is queued now, and wait until it has (tests, close)."""
        with self._lock:
            done = self._queued  # not written + pending: a batch in flight is in neither
        self._wake.set()
        deadline = time.monotonic() + 10
        while self.written < done and time.monotonic() < deadline and self._alive():
            time.sleep(0.01)

    def close(self) -> None:
        """Write what is queued, then stop the writer."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.settings.path, timeout=5, isolation_level=None)

    def _run(self) -> None:
        db = self._connect()
        db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable enough for a log, much faster
        try:
            while not self._stop.is_set():
                self._wake.wait(self.settings.flush_interval)
                self._wake.clear()
                self._write(db)
                self.writer_cpu_s = time.thread_time()  # this thread's, since it began
            self._write(db)
        finally:
            db.close()

    def _write(self, db: sqlite3.Connection) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            with db:
                db.execute("BEGIN")
                start = 0
                for size in _chunks(len(batch)):
                    _insert(db, batch[start:start + size])
                    start += size
                self._trim(db)
        except sqlite3.Error as exc:
            log.error("request log: could not write %d rows to %s: %s", len(batch),
                      self.settings.path, exc)
        self.written += len(batch)

    def _trim(self, db: sqlite3.Connection) -> None:
        s = self.settings
        db.execute("DELETE FROM requests WHERE ts < ?", (time.time() - s.max_age,))
        db.execute("DELETE FROM requests WHERE id <= (SELECT max(id) FROM requests) - ?",
                   (s.max_rows,))

    # -- reading -----------------------------------------------------------------------------
    def query(self, *, limit: int = 100, provider: str | None = None,
              failed: bool | None = None, since: float | None = None) -> list[dict[str, Any]]:
        """Rows newest first, as JSON-able dicts; ``provider`` matches the answering provider
        or any provider tried; ``failed`` True keeps the calls that did not succeed, False
        those that did; ``since`` (unix seconds) the calls that began then or later."""
        where, args = _filters(provider, failed, since)
        sql = (f"SELECT id, {', '.join(COLUMNS)} FROM requests {where} "
               f"ORDER BY id DESC LIMIT ?")
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(sql, (*args, max(0, limit))).fetchall()
        return [_row_json(r) for r in rows]

    def count(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT count(*) FROM requests").fetchone()[0])


def _chunks(count: int) -> list[int]:
    """The sizes to insert ``count`` rows in: :data:`ROWS_PER_INSERT` at a time, the rest in
    powers of two. So a batch uses at most a dozen statement texts, each compiled once and then
    reused from the connection's statement cache; a last chunk of any size made a new
    statement of thousands of parameters to compile for nearly every batch (6.4 against 4.5 µs
    a row)."""
    sizes = [ROWS_PER_INSERT] * (count // ROWS_PER_INSERT)
    rest, power = count % ROWS_PER_INSERT, 1 << (ROWS_PER_INSERT.bit_length() - 1)
    while rest:
        if rest >= power:
            sizes.append(power)
            rest -= power
        power >>= 1
    return sizes


def _insert(db: sqlite3.Connection, rows: Sequence[Row]) -> None:
    """``rows`` in one statement."""
    db.execute(INSERT + ", ".join([ROW_PARAMS] * len(rows)), list(chain.from_iterable(rows)))


def _tried_json(tried: Sequence[Attempt]) -> str:
    """``[{"provider": …, "failure": …, "message": …, "model": …}, …]``, what ``json.dumps``
    of the dicts would write, in a fifth of its time. The common one, a single attempt that
    answered, is kept once per provider and model (:data:`_ANSWERED`)."""
    if len(tried) == 1 and tried[0].failure is None:
        text = _ANSWERED.get(tried[0])
        if text is None:
            if len(_ANSWERED) >= _ANSWERED_MAX:
                _ANSWERED.clear()
            text = _ANSWERED[tried[0]] = _attempts_json(tried)
        return text
    return _attempts_json(tried)


def _attempts_json(tried: Sequence[Attempt]) -> str:
    return "[" + ", ".join(_ATTEMPT % (_text(a.provider), _text(a.failure), _text(a.message),
                                       _text(a.model)) for a in tried) + "]"


_ATTEMPT = '{"provider": %s, "failure": %s, "message": %s, "model": %s}'
_ANSWERED: dict[Attempt, str] = {}  # a single answered attempt's JSON, by the attempt
_ANSWERED_MAX = 4096  # providers × models; past it the cache starts again


def _text(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def _filters(provider: str | None, failed: bool | None, since: float | None,
             ) -> tuple[str, Sequence[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if provider:
        # tried is JSON text; a provider tried but not answering still matches, and a unigw
        # node's name matches its inner providers' answers too (node-2 finds node-2/ZtoApi)
        name, bare = json.dumps(provider, ensure_ascii=False), provider
        for special in ("\\", "%", "_"):
            name = name.replace(special, "\\" + special)
            bare = bare.replace(special, "\\" + special)
        clauses.append("(provider = ? OR provider LIKE ? ESCAPE '\\' OR tried LIKE ? ESCAPE '\\')")
        args += [provider, f"{bare}/%", f'%"provider": {name}%']
    if failed is not None:
        clauses.append("ok = 0" if failed else "ok = 1")
    if since is not None:
        clauses.append("ts >= ?")
        args.append(since)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), args


def _row_json(row: sqlite3.Row) -> dict[str, Any]:
    data = dict(row)
    data["tried"] = json.loads(data["tried"])
    data["ok"] = bool(data["ok"])
    data["stream"] = bool(data["stream"])
    if data["request_body"] is None and data["response_body"] is None:
        del data["request_body"], data["response_body"]
    return data
