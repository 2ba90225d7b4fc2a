"""What the proxy hands back: the job it was given, a provider's whole answer, a committed
stream, and the parsed forms the translated APIs use (:meth:`gateway.proxy.Proxy.forward_chat`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.routing import Backend, Plan
from gateway.stats import Failure, Outcome, Stats
from gateway.upstream import UpstreamResponse

if TYPE_CHECKING:
    from gateway.calls import Trace


@dataclass
class Job:
    """One request to proxy: the parsed body, its original bytes, and where it may go."""

    path: str
    body: dict[str, Any]
    raw: bytes | None
    stream: bool
    plan: Plan
    trace: Trace | None = None  # told the attempts when the loop ends (the request log)

    def key(self) -> int:
        """Which request this is, for the poison-request rule: the same bytes, the same key."""
        raw = self.raw if self.raw is not None else json.dumps(self.body, sort_keys=True).encode()
        return hash((self.path, raw))


@dataclass
class Answer:
    """A provider's whole (non-streaming) answer."""

    backend: Backend
    status: int
    content_type: bytes
    body: bytes
    model: str
    data: dict[str, Any] | None = field(default=None, repr=False)  # a 2xx body, parsed
    seconds: float = 0.0  # from the request sent to this answer read and checked
    inner: str | None = None  # a unigw node's answer: the inner provider its header named

    @property
    def served(self) -> str:
        """Who answered, as the client and the log see it (``node-2/ZtoApi`` via a node)."""
        return served(self.backend, self.inner)


@dataclass(eq=False)
class Opened:
    """A provider's stream, committed (its first content is in ``first``); in flight until
    :meth:`finish`."""

    backend: Backend
    response: UpstreamResponse
    first: bytes
    ttfb: float
    model: str
    stats: Stats
    outcome: Outcome | None = None  # set by finish
    failure: Failure | None = None
    inner: str | None = None  # a unigw node's stream: the inner provider its header named

    @property
    def served(self) -> str:
        """Who answered, as the client and the log see it (``node-2/ZtoApi`` via a node)."""
        return served(self.backend, self.inner)

    def finished(self) -> bool:
        """Whether :meth:`finish` was called (the stream is over: nothing more will come)."""
        return self.outcome is not None

    def finish(self, outcome: Outcome, failure: Failure | None = None) -> None:
        """Close the upstream response and record the outcome (once; later calls do nothing)."""
        if self.outcome is None:
            self.outcome, self.failure = outcome, failure
            self.response.close()
            self.stats.observe(self.backend.stats, outcome, self.ttfb, failure=failure)


def served(backend: Backend, inner: str | None) -> str:
    """``backend``'s name, or ``name/inner`` for the inner provider of a unigw node."""
    return backend.name if inner is None else f"{backend.name}/{inner}"


@dataclass
class ChatResult:
    """``forward_chat`` without streaming: the provider's chat.completion as a dict."""

    provider: str
    model: str
    body: dict[str, Any]


@dataclass
class ChatStream:
    """``forward_chat`` with streaming: chat.completion.chunk dicts as they arrive.

    Iterating ``chunks`` ends after the provider's ``[DONE]``; it raises a
    :class:`~gateway.errors.ProviderFailed` (``status_code`` 502, or 504 on a stall) if the
    provider breaks the stream. Close it (``await chunks.aclose()``) if you stop early.
    """

    provider: str
    model: str
    chunks: AsyncIterator[dict[str, Any]] = field(repr=False)



class Chunks:
    """An opened stream's chunk iterator whose ``aclose`` releases the provider even if
    iteration never started (an async generator's ``finally`` would not run then)."""

    def __init__(self, chunks: AsyncGenerator[dict[str, Any], None], opened: Opened) -> None:
        self._chunks, self._opened = chunks, opened

    def __aiter__(self) -> Chunks:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        await self._chunks.aclose()
        self._opened.finish(Outcome.CANCELLED)  # a no-op if it was finished already


