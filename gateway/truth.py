"""Whether a provider's 2xx answer is really an answer: the judge behind failover.

Free "web chat → API" providers fail in ways that look like success (measured, PROVIDERS.md
"Failure shapes"): a 200 stream that sends an ``error`` object and ``[DONE]``, a 200 stream
with one role-only chunk that then closes, a chunk with ``finish_reason: "error"``, a 200 JSON
with an ``error`` member, a 2xx HTML page, the site's error page as the assistant's text.

* :func:`check_answer` judges a whole non-streaming 2xx body: it is a failure if it is not
  JSON, has an ``error`` member, has no ``choices``, or all its choices finished with
  ``"error"`` or carry neither content nor tool calls, or its text matches the provider's
  ``error_patterns``.
* :class:`Held` judges a stream's first events as they arrive, until one commits it: an event
  with content (non-empty ``content``, ``reasoning_content``, ``tool_calls``,
  ``function_call``, ``refusal``, or a completion's ``text``) or a normal finish
  (``stop``/``length``/``tool_calls``/``content_filter``/``function_call``). Role-only and
  empty deltas, usage-only chunks and SSE comments are held. An ``error`` object or
  ``event: error``, ``finish_reason: "error"``, ``[DONE]``, a non-JSON event, or first
  content matching ``error_patterns`` before that point fail the attempt, and so does holding
  more than ``hold_max_bytes``. For a provider with ``error_patterns`` the first content
  commits only once :data:`PATTERN_WINDOW` characters of text have come (or the stream
  finishes, sends ``[DONE]`` or ends), because providers stream an error text in pieces like
  any other (``🔄 `` then ``tokens…``) and a pattern must see its start whole.

Every failure is a :class:`~gateway.errors.BadAnswer` carrying the provider's own message.

``error_patterns`` (per provider in providers.yaml): each entry is a substring, matched
case-insensitively, or a regular expression written between slashes (``/^<!DOCTYPE/``),
searched with Python's :func:`re.search` as written (add ``(?i)`` for case-insensitivity). Only
the text of a non-streaming answer and the first :data:`PATTERN_WINDOW` characters of a
stream's content are checked, so anchor patterns to how an error page starts rather than to
words a real answer could contain.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway import jsonio
from gateway.errors import BadAnswer

DETAIL_LIMIT = 300  # characters of a provider's message kept
NORMAL_FINISH = frozenset(("stop", "length", "tool_calls", "content_filter", "function_call"))
CONTENT_FIELDS = ("content", "reasoning_content", "tool_calls", "function_call", "refusal")
_EVENT_SPLIT = re.compile(rb"\r?\n\r?\n")
PATTERN_WINDOW = 64  # characters of a stream's first text held for error_patterns to judge


@dataclass(frozen=True)
class ErrorPatterns:
    """A provider's ``error_patterns``, compiled; see the module docstring."""

    substrings: tuple[str, ...] = ()
    regexes: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def of(cls, patterns: Sequence[str]) -> ErrorPatterns:
        subs, regexes = [], []
        for p in patterns:
            if len(p) >= 2 and p.startswith("/") and p.endswith("/"):
                regexes.append(re.compile(p[1:-1]))
            else:
                subs.append(p.casefold())
        return cls(tuple(subs), tuple(regexes))

    def match(self, text: str) -> str | None:
        """The first pattern ``text`` matches, as written in the config, or None."""
        if self.substrings:
            folded = text.casefold()
            for sub in self.substrings:
                if sub in folded:
                    return sub
        for rx in self.regexes:
            if rx.search(text):
                return f"/{rx.pattern}/"
        return None


NO_PATTERNS = ErrorPatterns()


def provider_message(body: bytes) -> str:
    """The message of a provider's error answer (``error``/``detail``/``message``), shortened."""
    try:
        data = json.loads(body)
    except ValueError:
        return _short(body.decode("utf-8", "replace"))
    if isinstance(data, dict):
        for key in ("error", "detail", "message"):
            if data.get(key):
                return error_text(data[key])
    return _short(json.dumps(data, ensure_ascii=False))


def error_text(err: Any) -> str:
    """An ``error`` member as text: its ``message`` if it has one, found through nested
    ``error``/``detail`` objects (k2think2api3 sends ``{"detail": {"error": {"message"}}}``)."""
    while isinstance(err, dict):
        inner = err.get("message") or err.get("error") or err.get("detail")
        if not inner:
            break
        err = inner
    return _short(err if isinstance(err, str) else json.dumps(err, ensure_ascii=False))


def _short(text: str) -> str:
    return " ".join(text.split())[:DETAIL_LIMIT]


def _object(raw: bytes | str, what: str = "") -> dict[str, Any]:
    """``raw`` as a JSON object that is no error member, else :class:`BadAnswer` saying why
    (``what`` names the thing: "" for an answer, "an event that is " for a stream's event)."""
    try:
        data = jsonio.loads(raw)
    except ValueError:
        raise BadAnswer(f"{what}not JSON: {_shown(raw)}") from None
    if not isinstance(data, dict):
        raise BadAnswer(f"{what}not a JSON object: {_shown(raw)}")
    if data.get("error"):
        raise BadAnswer(f"error: {error_text(data['error'])}", said_error=True)
    return data


def _shown(raw: bytes | str) -> str:
    return _short(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw)


def check_answer(body: bytes, patterns: ErrorPatterns) -> dict[str, Any]:
    """A non-streaming 2xx body as a dict, or :class:`BadAnswer` if it is really an error."""
    data = _object(body)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise BadAnswer(f"no choices: {_shown(body)}")
    texts, real = [], False
    for choice in choices:
        if not isinstance(choice, dict) or choice.get("finish_reason") == "error":
            continue
        message = choice.get("message")
        part = message if isinstance(message, dict) else {}
        if _has_content(part) or choice.get("text"):
            real = True
            texts.append(_text(part, choice))
    if not real:
        errored = any(isinstance(c, dict) and c.get("finish_reason") == "error" for c in choices)
        why = 'finish_reason "error"' if errored else "no content and no tool calls"
        raise BadAnswer(f"{why}: {_short(body.decode('utf-8', 'replace'))}",
                        said_error=errored)
    _check_patterns("".join(texts), patterns)
    return data


def _has_content(part: dict[str, Any]) -> bool:
    for name in CONTENT_FIELDS:  # a loop, not any() of a generator: this runs for every chunk
        if part.get(name):
            return True
    return False


def _text(part: dict[str, Any], choice: dict[str, Any]) -> str:
    content = part.get("content") if part else choice.get("text")
    return content if isinstance(content, str) else ""


def _check_patterns(text: str, patterns: ErrorPatterns) -> None:
    if text and patterns is not NO_PATTERNS:
        hit = patterns.match(text)
        if hit is not None:
            raise BadAnswer(f"its text matches error pattern {hit!r}: {_short(text)}")


class Held:
    """A stream's bytes until its commit point; see the module docstring.

    :meth:`feed` each piece as it arrives: it returns True once an event committed the
    stream (then :attr:`data` is every byte so far, to send unchanged) and raises
    :class:`BadAnswer` if the stream failed before that.
    """

    def __init__(self, patterns: ErrorPatterns, max_bytes: int) -> None:
        self.patterns = patterns
        self.max_bytes = max_bytes
        self.data = b""
        self._scanned = 0  # bytes of ``data`` already judged (whole events)
        self._text = ""  # the content so far, held while error_patterns may still match
        self._content = False  # content came, but not yet PATTERN_WINDOW characters of it
        self._cr = False  # a CR came: events may end in CRLFs (else only LFs: bytes.find)

    def feed(self, piece: bytes) -> bool:
        data = self.data = self.data + piece if self.data else piece
        self._cr = self._cr or b"\r" in piece
        pos = self._scanned
        while True:  # the whole events not yet judged, one by one, until one commits
            if self._cr:
                found = _EVENT_SPLIT.search(data, pos)
                if found is None:
                    break
                end, after = found.span()
            else:
                end = data.find(b"\n\n", pos)
                if end < 0:
                    break
                after = end + 2
            event, pos = data[pos:end], after
            self._scanned = pos
            if event and self._judge(event):
                return True
        if len(data) > self.max_bytes:
            if self._content:
                return True  # content came, and all of it passed error_patterns
            raise BadAnswer(f"held {len(data)} bytes with no content (over hold_max_bytes "
                            f"{self.max_bytes})")
        return False

    def end(self) -> bool:
        """The stream ended: True if what was held had content (send it all), else False."""
        return self._content

    def _judge(self, event: bytes) -> bool:
        """True if ``event`` commits the stream, False to hold it; raises if it failed."""
        name, payload = _parse_event(event)
        if name == "error":
            raise BadAnswer(f"error event: {_event_error(payload)}", said_error=True)
        if payload is None:
            return False  # comments, or fields without data
        if payload == "[DONE]":
            if self._content:
                return True
            raise BadAnswer("the stream ended ([DONE]) before any content")
        chunk = _object(payload, "an event that is ")
        return self._judge_choices(chunk.get("choices"), payload)

    def _judge_choices(self, choices: Any, payload: str) -> bool:
        if not isinstance(choices, list):
            return False
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            finish = choice.get("finish_reason")
            if finish == "error":
                raise BadAnswer(f'finish_reason "error": {_short(payload)}', said_error=True)
            delta = choice.get("delta")
            part = delta if isinstance(delta, dict) else {}
            if _has_content(part) or choice.get("text"):
                if self.patterns is NO_PATTERNS:
                    return True
                self._text += _text(part, choice)
                _check_patterns(self._text, self.patterns)
                self._content = True
                if len(self._text) >= PATTERN_WINDOW or finish in NORMAL_FINISH:
                    return True
            elif finish in NORMAL_FINISH:
                return True
        return False


def _parse_event(event: bytes) -> tuple[str | None, str | None]:
    """(``event:`` name, the ``data:`` lines joined) of one SSE event.

    Its lines end at CR, LF or CRLF only, as SSE says (``bytes.splitlines``): a text's
    splitlines would also cut at U+2028 and other characters that a JSON string may hold raw.
    The common event, one ``data:`` line, is read without splitting it into lines.
    """
    if event[:5] == b"data:" and b"\n" not in event and b"\r" not in event:
        return None, event[6 if event[5:6] == b" " else 5:].decode("utf-8", "replace")
    name, data = None, []
    for line in event.splitlines():
        field, _, value = line.partition(b":")
        if value[:1] == b" ":
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.strip().decode("utf-8", "replace")
    return name, (b"\n".join(data).decode("utf-8", "replace") if data else None)


def _event_error(payload: str | None) -> str:
    if not payload:
        return "(no message)"
    try:
        data = json.loads(payload)
    except ValueError:
        return _short(payload)
    if isinstance(data, dict) and data.get("error"):
        return error_text(data["error"])
    return error_text(data)


def events_of(data: bytes) -> list[tuple[str | None, str]]:
    """(``event:`` name, data) of each event of ``data`` that has data (its ``data:`` lines
    joined with newlines, as SSE says: a chunk's JSON may be spread over several)."""
    out = []
    for event in _EVENT_SPLIT.split(data):
        name, payload = _parse_event(event) if event else (None, None)
        if payload is not None:
            out.append((name, payload.strip()))
    return out


def late_error(piece: bytes) -> str | None:
    """What a committed stream's events in ``piece`` say went wrong, if one declares an error
    (:func:`declared_error`), else None. The events still go to the client as they are; this
    is the stream's verdict."""
    for name, payload in events_of(piece):
        said = declared_error(name, payload)
        if said is not None:
            return said
    return None


def declared_error(name: str | None, payload: str) -> str | None:
    """The error one event (its ``event:`` name and data) declares: an ``error`` event, or a
    chunk with an ``error`` object or ``finish_reason: "error"``; else None. Only data that
    holds the word ``error`` is parsed."""
    if name == "error":
        return f"error event: {_event_error(payload)}"
    if "error" not in payload:
        return None
    try:
        chunk = jsonio.loads(payload)
    except ValueError:
        return None
    if not isinstance(chunk, dict):
        return None
    if chunk.get("error"):
        return f"error: {error_text(chunk['error'])}"
    choices = chunk.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        if isinstance(choice, dict) and choice.get("finish_reason") == "error":
            return f'finish_reason "error": {_short(payload)}'
    return None


def event_end(buf: bytes) -> int:
    """The index just past the last complete SSE event in ``buf`` (0 if none)."""
    lf = buf.rfind(b"\n\n")
    crlf = buf.rfind(b"\r\n\r\n")
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)
