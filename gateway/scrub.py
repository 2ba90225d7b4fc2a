"""Secrets out of what a provider says, before the gateway shows it to anyone.

A provider's own error text reaches the client (the 502 naming each provider tried, a 400
passed back, an ``error`` event), the status views (``serving_error``) and the request log.
Providers echo what they were sent: their token ("bad key sk-…"), the request's headers (the
client's gateway key). So every failed attempt's texts, and a provider's refusal passed back
as it is, go through :class:`Secrets` first: each value of a provider's secrets (its ``key``,
the environment, arguments and files its config marks secret, :meth:`ProviderConfig.
secret_values`) and each gateway key is written ``***``, as in the providers' logs.

Only failures are scrubbed: an answer is passed through untouched (scanning each one would
cost every call, and an answer that quotes a secret is the provider's to give).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from supervisor.config import Config

MASK = "***"
MIN_LENGTH = 4  # a shorter value would be masked wherever its letters happen to appear


class Secrets:
    """The values to mask; :meth:`text` and :meth:`data` mask them (longest first)."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        kept = sorted({v for v in values if len(v) >= MIN_LENGTH}, key=len, reverse=True)
        self._text = re.compile("|".join(map(re.escape, kept))) if kept else None
        self._data = (re.compile(b"|".join(re.escape(v.encode()) for v in kept))
                      if kept else None)

    @classmethod
    def of(cls, config: Config) -> Secrets:
        """Every provider's secret values and key, and the gateway's own keys."""
        gw = config.gateway
        values = [*gw.api_keys, gw.admin_key]
        for p in config.providers:
            values += [*p.secret_values(), p.key or ""]
        return cls(values)

    def text(self, text: str) -> str:
        return text if self._text is None else self._text.sub(MASK, text)

    def data(self, data: bytes) -> bytes:
        return data if self._data is None else self._data.sub(MASK.encode(), data)
