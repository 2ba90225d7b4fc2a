"""What the progress view says about the providers, in plain words (no terminal, no rich).

    step_of(line)       a progress line of the supervisor → its short step (``cloning 43%``)
    reason_kind(error)  a ``last_error`` → the kind the summary groups it under
    summary(...)        ``12 ready, 2 failed: missing secret (2) — 41 s``

The progress lines are the ones the supervisor's runtimes send to ``progress(name, line)``:
git's stages every 25 % (``receiving objects: 50%``), ``cloning URL into DIR``, the toolchain
(``using python 3.11 …``), the install steps (``install: npm ci``) and their output lines.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from supervisor.lifecycle.states import SETTLED

#: When the view stops waiting for a provider. Beside the lifecycle's settled states, backoff:
#: the provider has run and ended, and a crash loop would otherwise hold the view for ever.
DONE_STATES = frozenset({s.value for s in SETTLED} | {"backoff"})

#: The summary's order of states; failed last, since its reasons follow it.
_ORDER = ("ready", "installed", "unhealthy", "backoff", "starting", "installing", "stopping",
          "stopped", "failed")
_GIT_STAGE = re.compile(r"(counting|compressing|receiving|resolving|writing|finding|checking out)"
                        r" (?:objects|deltas|sources|files): (\d+)%")
_CHECKED_OUT = re.compile(r" is at \S+ \([0-9a-f]{7,40}\)$")
_PREFIXES = (
    ("cloning ", "cloning"),
    ("fetching ", "fetching"),
    ("checking out ", "checking out"),
    ("using ", "toolchain"),
    ("bootstrapping ", "bootstrapping toolchain"),
    ("creating virtual environment", "creating venv"),
    ("install is current", "install current"),
    ("installed", "installed"),
)
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]+,?")  # a secret's name: the kind leaves it out
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def plain_text(line: str) -> str:
    """``line`` without terminal escape codes (npm and friends colour their output)."""
    return _ANSI.sub("", line).rstrip()


def step_of(line: str) -> str | None:
    """The step a progress line announces, or None for a line of an install step's output."""
    text = line.strip()
    stage = _GIT_STAGE.match(text)
    if stage:
        verb = "checking out" if stage.group(1) == "checking out" else "cloning"
        return f"{verb} {stage.group(2)}%"
    if text.startswith("install: "):
        return "building" if " build" in text else "installing"
    if _CHECKED_OUT.search(text):
        return "checked out"
    return next((step for prefix, step in _PREFIXES if text.startswith(prefix)), None)


def reason_kind(error: str | None) -> str:
    """What a failure is, without its particulars: ``missing secret QWEN_TOKEN`` and ``missing
    secret K2_TOKEN`` are both ``missing secret``; ``clone failed: fatal: …`` is ``clone
    failed``."""
    first = (error or "").strip().split("\n", 1)[0]
    head = first.split(":", 1)[0]
    words = [w for w in head.split() if not _ENV_NAME.fullmatch(w)]
    kind = " ".join(words)
    return (kind[:47] + "…" if len(kind) > 48 else kind) or "unknown reason"


def elapsed(seconds: float) -> str:
    """``41 s``, ``3 min 05 s``."""
    s = max(0, int(seconds))
    return f"{s} s" if s < 60 else f"{s // 60} min {s % 60:02d} s"


def summary(states: Iterable[tuple[str, str | None]], seconds: float) -> str:
    """One line for (state, last_error) per provider: the counts, failure kinds, the time."""
    states = list(states)
    counts = Counter(state for state, _ in states)
    rank = {s: i for i, s in enumerate(_ORDER)}
    parts = [f"{counts[s]} {s}" for s in sorted(counts, key=lambda s: rank.get(s, len(_ORDER)))]
    kinds = Counter(reason_kind(err) for state, err in states if state == "failed")
    if kinds:
        parts[-1] += ": " + ", ".join(f"{kind} ({n})" for kind, n in kinds.most_common())
    return f"{', '.join(parts) or 'no provider to run'} — {elapsed(seconds)}"
