"""Secret values taken out of a child's output stream, whatever way the pipe cut it.

A provider that prints its token does so in pieces the supervisor does not choose: a pipe read
may end in the middle of the token (measured: a chatty provider printing its token 5,000 times
through 4 KiB writes leaked 8-13 copies when each read was scrubbed on its own). So
:class:`Scrubber` works on the stream, not on reads:

- complete lines are scrubbed and passed on as soon as their newline arrives;
- an unfinished line waits for the rest of it, up to ``line_max`` bytes; past that it is
  scrubbed and passed on except for its end when that end could be the start of a secret
  (the longest suffix that is a prefix of a secret), which waits for the next read;
- when the stream ends, an unfinished line is passed on, with such an end written as ``***``
  when it is 4 bytes or more (the child died in the middle of printing a secret).

Because nothing that could be part of a secret is ever passed on before the bytes after it are
known, a secret split across reads is found like any other. A secret that spans lines (a PEM
key) is scrubbed whole and also line by line, so each of its lines is found on its own.
"""

from __future__ import annotations

from collections.abc import Iterable

MASK = b"***"
_SHOWN_PREFIX = 4  # a secret's start shorter than this at the very end is just text


class Scrubber:
    """Turns a child's raw output into the same output with every secret value as ``***``."""

    def __init__(self, secrets: Iterable[bytes] = (), line_max: int = 16384) -> None:
        self.line_max = max(1, line_max)
        self._pending = b""
        self._needles: tuple[bytes, ...] = ()
        self.secrets = tuple(secrets)

    @property
    def secrets(self) -> tuple[bytes, ...]:
        return self._secrets

    @secrets.setter
    def secrets(self, values: Iterable[bytes]) -> None:
        """The values to scrub; a multi-line value also by each of its lines."""
        self._secrets = tuple(v for v in values if v)
        pieces = {line for v in self._secrets for line in v.splitlines() if len(line) >= 4}
        needles = set(self._secrets) | pieces
        self._needles = tuple(sorted(needles, key=len, reverse=True))  # longest first

    def feed(self, data: bytes) -> bytes:
        """Take a chunk of raw output; return what is now safe to show, scrubbed."""
        buf = self._pending + data
        cut = buf.rfind(b"\n") + 1
        done = self.scrub(buf[:cut]) if cut else b""
        rest = buf[cut:]
        if len(rest) > self.line_max:  # an endless line: pass on all that cannot be a secret
            rest = self.scrub(rest)
            keep = len(rest) - self._secret_start(rest)
            done, rest = done + rest[:keep], rest[keep:]
        self._pending = rest
        return done

    def finish(self) -> bytes:
        """The stream ended: the unfinished line, scrubbed, with a cut-off secret as ``***``."""
        rest, self._pending = self.scrub(self._pending), b""
        start = self._secret_start(rest)
        if start >= _SHOWN_PREFIX:
            rest = rest[:-start] + MASK
        return rest

    def peek(self) -> bytes:
        """The unfinished line as it may be shown now (without an end that could be a secret)."""
        rest = self.scrub(self._pending)
        return rest[: len(rest) - self._secret_start(rest)]

    def scrub(self, data: bytes) -> bytes:
        """``data`` with every whole occurrence of a secret (or a secret's line) as ``***``."""
        for needle in self._needles:
            data = data.replace(needle, MASK)
        return data

    def _secret_start(self, data: bytes) -> int:
        """The length of the longest end of ``data`` that is the start of a secret."""
        best = 0
        for needle in self._needles:
            for n in range(min(len(needle) - 1, len(data)), best, -1):
                if data.endswith(needle[:n]):
                    best = n
                    break
        return best
