"""Per-provider log files under ``<state_dir>/logs/<name>.log``, rotated by size.

Everything a provider prints (stdout and stderr, merged), and the output of its clone and
install steps, is appended to its log. The supervisor's own notes about it ("started pid 123",
"exited with code 1") are written in the same file as lines starting with ``[unigw``. When the
file would grow past ``max_bytes`` it is renamed to ``<name>.log.1`` (older backups shift up,
the oldest beyond ``backups`` is deleted), so a crash-looping or flooding provider uses at most
``(backups + 1) * max_bytes`` of disk.

Readers: :func:`tail` (``unigw logs NAME -n 50``) and :func:`follow` (``unigw logs NAME -f``)
read the files, so they work from another process while unigw runs.

Secrets are taken out before anything is kept: output goes through a
:class:`~supervisor.proc.scrub.Scrubber`, which works on lines, not on pipe reads, so the file,
the tail in memory (:meth:`ProviderLog.last_lines`, which ``last_error`` quotes) and everything
that reads them see a token as ``***`` however the pipe cut it. An unfinished line is held until
its newline arrives (bounded), so it reaches the file a little later than it was printed.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TextIO

from supervisor.proc.scrub import Scrubber

NOTE_PREFIX = "[unigw"
_PARTIAL_MAX = 4096  # bytes of an unfinished line kept for last_lines()


def log_path(state_dir: Path, name: str) -> Path:
    """Where a provider's current log file lives."""
    return state_dir / "logs" / f"{name}.log"


class ProviderLog:
    """An append-only, size-rotated log file plus the last few lines in memory.

    Opening is lazy (the constructor touches nothing). Writes are small appends to a local file,
    flushed at once so ``unigw logs -f`` sees them.
    """

    def __init__(
        self, path: Path, max_bytes: int, backups: int, keep_lines: int = 30,
        line_max: int = 16384,
    ) -> None:
        self.path = path
        self.max_bytes = max(1024, max_bytes)
        self.backups = max(0, backups)
        self._file: BinaryIO | None = None
        self._size = 0
        self._midline = False
        self._lines: deque[str] = deque(maxlen=keep_lines)
        self._partial = b""
        self._scrubber = Scrubber(line_max=line_max)  # a longer unfinished line is passed on
        self.on_line: Callable[[str], None] | None = None  # sees each output line (progress)

    @property
    def secrets(self) -> tuple[bytes, ...]:
        """Values written as *** (some providers print their tokens)."""
        return self._scrubber.secrets

    @secrets.setter
    def secrets(self, values: tuple[bytes, ...]) -> None:
        self._scrubber.secrets = values

    def write(self, data: bytes) -> None:
        """Take a chunk of the provider's output; keep its finished lines, secrets as ***."""
        self._keep(self._scrubber.feed(data))

    def end_output(self) -> None:
        """The output stream ended (the pipe closed): keep its unfinished last line."""
        self._keep(self._scrubber.finish())

    def _keep(self, data: bytes) -> None:
        if data:
            self._remember(data)
            self._append(data)

    def note(self, message: str) -> None:
        """Append one line from the supervisor itself, with a time stamp."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        start = "\n" if self._midline else ""  # the output's unfinished line stays its own
        self._append(f"{start}{NOTE_PREFIX} {stamp}] {message}\n".encode())

    def last_lines(self, n: int) -> list[str]:
        """The last ``n`` lines the provider printed (not the supervisor's notes)."""
        lines = list(self._lines)
        partial = self._partial + self._scrubber.peek()
        if partial:
            lines.append(partial[-_PARTIAL_MAX:].decode("utf-8", "replace"))
        return lines[-n:] if n > 0 else []

    def forget_output(self) -> None:
        """Start collecting last_lines afresh (a new process is about to run)."""
        self.end_output()  # normally done when the last one's pipe closed
        self._lines.clear()
        self._partial = b""

    def close(self) -> None:
        """Close the file; a later write opens it again."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _remember(self, data: bytes) -> None:
        limit = _PARTIAL_MAX * (self._lines.maxlen or 1)
        if len(data) > limit:  # a flood: only its end can matter
            data, self._partial = data[-limit:], b""
        parts = (self._partial + data).split(b"\n")
        self._partial = parts.pop()[-_PARTIAL_MAX:]
        for raw in parts[-(self._lines.maxlen or 1):]:
            line = raw.rstrip(b"\r").decode("utf-8", "replace")
            self._lines.append(line)
            if self.on_line is not None and line.strip():
                self.on_line(line)

    def _append(self, data: bytes) -> None:
        if len(data) > self.max_bytes:
            data = data[-self.max_bytes:]
        if self._file is None:
            self._open()
        if self._size and self._size + len(data) > self.max_bytes:
            self._rotate()
        assert self._file is not None
        self._midline = not data.endswith(b"\n")
        self._file.write(data)
        self._file.flush()
        self._size += len(data)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab")  # noqa: SIM115 (kept open across writes)
        self._size = self._file.tell()

    def _rotate(self) -> None:
        self.close()
        for i in range(self.backups, 0, -1):
            older = _backup(self.path, i - 1)
            if older.exists():
                os.replace(older, _backup(self.path, i))
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        self._open()


def _backup(path: Path, i: int) -> Path:
    return path if i == 0 else path.with_name(f"{path.name}.{i}")


def tail(path: Path, n: int, backups: int = 5) -> list[str]:
    """The last ``n`` lines of a log, reaching into rotated backups when the file is short."""
    if n <= 0:
        return []
    chunks: list[bytes] = []
    newlines = 0
    for i in range(backups + 1):
        data = _read_tail(_backup(path, i), n + 1)
        if data is None:
            break
        chunks.insert(0, data)
        newlines += data.count(b"\n")
        if newlines > n:
            break
    text = b"".join(chunks).decode("utf-8", "replace")
    return text.splitlines()[-n:]


def _read_tail(path: Path, n: int, block: int = 65536) -> bytes | None:
    """At least the last ``n`` lines of one file (or all of it), None if it does not exist."""
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            pos, data = end, b""
            while pos > 0 and data.count(b"\n") <= n:
                pos = max(0, pos - block)
                f.seek(pos)
                data = f.read(end - pos)
            return data
    except FileNotFoundError:
        return None


def follow(
    path: Path, poll: float = 0.25, stop: Callable[[], bool] = lambda: False
) -> Iterator[str]:
    """Yield each line appended to a log from now on (no newline), across rotations."""
    pending = ""
    for text in _follow_text(path, poll, stop):
        *lines, pending = (pending + text).split("\n")
        yield from (line.rstrip("\r") for line in lines)


def _follow_text(path: Path, poll: float, stop: Callable[[], bool]) -> Iterator[str]:
    """Text appended to ``path``; reopens it when it is rotated (replaced or truncated)."""
    f, ino = _open_at_end(path)
    try:
        while not stop():
            data = f.read() if f else ""
            if data:
                yield data
                continue
            try:
                st: os.stat_result | None = path.stat()
            except FileNotFoundError:
                st = None
            if st is not None and (f is None or st.st_ino != ino or st.st_size < f.tell()):
                if f:
                    yield f.read()  # what was written just before the rename
                    f.close()
                f, ino = open(path, encoding="utf-8", errors="replace"), st.st_ino  # noqa: SIM115
                continue
            time.sleep(poll)
    finally:
        if f:
            f.close()


def _open_at_end(path: Path) -> tuple[TextIO | None, int]:
    try:
        f = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
    except FileNotFoundError:
        return None, 0
    f.seek(0, os.SEEK_END)
    return f, os.fstat(f.fileno()).st_ino
