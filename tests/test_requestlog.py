"""gateway.requestlog: rows in a real SQLite file, written by the writer thread, trimmed,
filtered, and kept across a restart; no bodies unless asked."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.requestlog import (
    ROWS_PER_INSERT,
    Attempt,
    LogSettings,
    RequestLog,
    RequestRecord,
    _chunks,
)


def record(i: int, provider: str | None = "a", status: int = 200, ts: float | None = None,
           **kw: Any) -> RequestRecord:
    return RequestRecord(ts=time.time() if ts is None else ts, route="/v1/chat/completions",
                         api="openai", status=status, stream=False, model_asked=f"m{i}",
                         model_sent=f"m{i}", provider=provider, **kw)


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[RequestLog]:
    rlog = RequestLog(LogSettings(tmp_path / "requests.db", flush_interval=0.05))
    rlog.open()
    yield rlog
    rlog.close()


def test_every_record_becomes_one_row_newest_first(opened: RequestLog) -> None:
    for i in range(5):
        opened.add(record(i, tried=(Attempt("a"),), ttfb_ms=1.5, total_ms=2.5))
    opened.flush()
    rows = opened.query(limit=10)
    assert [r["model_asked"] for r in rows] == ["m4", "m3", "m2", "m1", "m0"]
    assert rows[0]["tried"] == [{"provider": "a", "failure": None, "message": None, "model": None}]
    assert rows[0]["ok"] is True and rows[0]["stream"] is False and rows[0]["total_ms"] == 2.5


def test_filters_by_provider_tried_or_answering_and_by_failure(opened: RequestLog) -> None:
    opened.add(record(0, provider="b", tried=(Attempt("a", "upstream_error", "boom"),
                                               Attempt("b"))))
    opened.add(record(1, provider=None, status=502,
                      tried=(Attempt("c", "timeout", "no first byte"),)))
    opened.add(record(2, provider="b"))
    opened.flush()
    assert [r["model_asked"] for r in opened.query(provider="a")] == ["m0"]
    assert [r["model_asked"] for r in opened.query(provider="b")] == ["m2", "m0"]
    failed = opened.query(failed=True)
    assert [r["model_asked"] for r in failed] == ["m1"]
    assert failed[0]["tried"][0]["failure"] == "timeout"


def test_the_log_keeps_at_most_max_rows_the_newest(tmp_path: Path) -> None:
    rlog = RequestLog(LogSettings(tmp_path / "r.db", max_rows=10, flush_interval=0.05))
    rlog.open()
    try:
        for i in range(25):
            rlog.add(record(i))
        rlog.flush()
        assert rlog.count() == 10
        assert rlog.query(limit=1)[0]["model_asked"] == "m24"
    finally:
        rlog.close()


def test_rows_older_than_max_age_are_dropped(tmp_path: Path) -> None:
    rlog = RequestLog(LogSettings(tmp_path / "r.db", max_age=60, flush_interval=0.05))
    rlog.open()
    try:
        rlog.add(record(0, ts=time.time() - 3600))
        rlog.add(record(1))
        rlog.flush()
        assert [r["model_asked"] for r in rlog.query()] == ["m1"]
    finally:
        rlog.close()


def test_bodies_are_not_stored_unless_log_bodies(tmp_path: Path) -> None:
    for log_bodies in (False, True):
        path = tmp_path / f"bodies-{log_bodies}.db"
        rlog = RequestLog(LogSettings(path, log_bodies=log_bodies, flush_interval=0.05))
        rlog.open()
        rlog.add(record(0, request_body="a secret prompt", response_body="the answer"))
        rlog.close()
        raw = path.read_bytes() + (path.with_name(path.name + "-wal").read_bytes()
                                   if path.with_name(path.name + "-wal").exists() else b"")
        assert (b"a secret prompt" in raw) is log_bodies


def test_rows_survive_a_restart_and_the_database_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    first = RequestLog(LogSettings(path, flush_interval=0.05))
    first.open()
    first.add(record(0))
    first.close()  # close writes what is queued
    second = RequestLog(LogSettings(path, flush_interval=0.05))
    second.open()
    try:
        assert [r["model_asked"] for r in second.query()] == ["m0"]
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        second.close()


def test_a_write_that_fails_is_logged_and_dropped_not_raised(opened: RequestLog,
                                                             caplog: pytest.LogCaptureFixture,
                                                             ) -> None:
    with sqlite3.connect(opened.settings.path) as db:
        db.execute("DROP TABLE requests")
    opened.add(record(0))
    opened.flush()
    assert "could not write 1 rows" in caplog.text
    assert opened.written == 1  # counted as handled, the writer is still alive


def test_a_batch_larger_than_one_insert_statement_is_written_whole(opened: RequestLog) -> None:
    for i in range(1234):  # more rows than ROWS_PER_INSERT, queued before the writer wakes
        opened.add(record(i, tried=(Attempt("a", "timeout", 'said "no"\n', "m"), Attempt("b"))))
    opened.flush()
    assert opened.count() == 1234
    newest = opened.query(limit=1)[0]
    assert newest["model_asked"] == "m1233"
    assert newest["tried"][0] == {"provider": "a", "failure": "timeout", "message": 'said "no"\n',
                                  "model": "m"}


def test_a_batch_is_inserted_in_a_few_statement_sizes_only() -> None:
    """Any batch is cut in chunks of a dozen sizes at most, so their statements are compiled
    once and reused; every row is in exactly one chunk."""
    sizes = set()
    for count in range(3 * ROWS_PER_INSERT + 2):
        chunks = _chunks(count)
        assert sum(chunks) == count and all(0 < size <= ROWS_PER_INSERT for size in chunks)
        sizes.update(chunks)
    assert len(sizes) <= 12
