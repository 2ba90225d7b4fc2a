"""``unigw test [NAME…]``: one canary now to each (or each named) ready provider.

Each provider gets one ``POST /v1/test {"provider": NAME}`` of the running instance (the
gateway's canary: a tiny real chat, ``max_tokens: 1``, recorded like any call), all at once.
A provider that cannot be checked (unknown, not ready) is a failing line with the gateway's
reason. One line each: NAME, serving or failing, latency, the error text.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from supervisor.cli.client import ControlError, InstanceClient

WORKERS = 8  # providers checked at once


@dataclass(frozen=True)
class Checked:
    """One provider's canary as ``POST /v1/test`` answered it (or why it could not run)."""

    name: str
    ok: bool
    serving: str
    latency_ms: float | None
    status: int | None
    error: str | None
    answer: dict[str, Any]

    @classmethod
    def of(cls, name: str, answer: dict[str, Any]) -> Checked:
        return cls(name, answer.get("ok") is True, str(answer.get("serving") or "unknown"),
                   answer.get("latency_ms"), answer.get("status"), answer.get("error"), answer)

    @classmethod
    def refused(cls, name: str, why: str) -> Checked:
        """The gateway would not send it (unknown provider, not ready): failing, with why."""
        answer = {"provider": name, "model": None, "ok": False, "serving": "unknown",
                  "latency_ms": None, "status": None, "error": why, "reply": None}
        return cls.of(name, answer)

    def cells(self) -> list[str]:
        latency = "-" if self.latency_ms is None else f"{self.latency_ms:.0f}ms"
        error = self.error or ""
        if self.status is not None and error:
            error = f"HTTP {self.status}: {error}"
        if self.serving in ("rate_limited", "auth_failed"):
            error = f"{self.serving}: {error}"
        return [self.name, "serving" if self.ok else "failing", latency,
                " ".join(error.split())]


def ready_names(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The ready providers of ``GET /providers``'s rows."""
    return [r["name"] for r in rows if r.get("state") == "ready"]


def check_all(client: InstanceClient, names: Sequence[str]) -> list[Checked]:
    """One canary per provider, at once; in the order given."""
    def one(name: str) -> Checked:
        try:
            return Checked.of(name, client.post("/v1/test", json={"provider": name}))
        except ControlError as exc:
            return Checked.refused(name, str(exc))

    with ThreadPoolExecutor(max_workers=min(WORKERS, max(1, len(names)))) as pool:
        return list(pool.map(one, names))


def lines(results: Sequence[Checked]) -> list[str]:
    """One aligned line per provider: NAME  serving|failing  LATENCY  ERROR."""
    cells = [r.cells() for r in results]
    widths = [max(len(c[i]) for c in cells) for i in range(3)] if cells else []
    return ["  ".join([*(c[i].ljust(w) for i, w in enumerate(widths)), c[3]]).rstrip()
            for c in cells]
