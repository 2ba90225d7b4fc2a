"""``url:``: a provider something else runs, on this machine or another (a container, a
Kubernetes Service, another unigw). unigw never clones, installs or starts it: it only probes
it (the same probes and ``ready_when`` as a local one) and routes to it with its ``key``.

    - name: node-2
      url: http://10.0.0.12:7999     # http or https, a host, a port (default 80 / 443), no path
      kind: unigw                    # another unigw instance: see below
      key: ${NODE2_KEY}

A ``url`` provider takes no ``port``, ``runtime``, ``start`` or any other field about running a
program (a config error names each one given); its ``port`` is the URL's and its ``runtime``
is ``remote``. ``kind: unigw`` says the provider is another unigw: its health path defaults to
``/health`` (200 while one of its providers is ready), its models are read from its
``/v1/models`` at every probe, its answers' ``X-Unigw-Provider`` names the inner provider
(``node-2/ZtoApi``) and a pin ``node-2/ZtoApi`` is passed on to it as ``ZtoApi``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

KINDS = ("provider", "unigw")
UNIGW = "unigw"
REMOTE_RUNTIME = "remote"
UNIGW_HEALTH = "/health"
# what only a provider unigw runs has: with a url, each of these is a config error
NOT_WITH_URL = ("port", "runtime", "start", "repo", "ref", "cwd", "install", "env", "python",
                "toolchain", "files")


@dataclass(frozen=True)
class Address:
    """Where a ``url`` points: host, port and whether it is https."""

    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> Address:
        """A url :func:`url_problem` accepted (anything else raises ValueError)."""
        parts = urlsplit(url)
        if parts.hostname is None:
            raise ValueError(f"no host in {url!r}")
        tls = parts.scheme == "https"
        return cls(parts.hostname, parts.port or (443 if tls else 80), tls)

    @property
    def netloc(self) -> str:
        """``host:port`` as a Host header writes it (an IPv6 address bracketed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def url_problem(url: str) -> str | None:
    """Why ``url`` is not ``http(s)://host[:port]``, or None."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number in 0-65535
    except ValueError as exc:
        return f"not a valid URL ({exc}), got {url!r}"
    if parts.scheme not in ("http", "https"):
        return f"must start with http:// or https://, got {url!r}"
    if not parts.hostname:
        return f"must name a host (http://HOST:PORT), got {url!r}"
    if port == 0:
        return f"port must be in 1-65535, got {url!r}"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return f"must be scheme://host:port with no path (unigw adds /v1/...), got {url!r}"
    if parts.username or parts.password:
        return f"must not carry a user or password (give the key as `key:`), got {url!r}"
    return None


def remote_fields(raw: dict[str, Any], where: str, problems: list[str]) -> None:
    """Check ``url`` and ``kind`` in one provider's raw fields and fill in what a ``url``
    provider derives (``port``, ``runtime``, ``start``, a unigw's health path)."""
    url, kind = raw.get("url"), raw.get("kind")
    if kind is not None and kind not in KINDS:
        problems.append(f"{where}: kind: must be one of {', '.join(KINDS)}, got {kind!r}")
    if url is None:
        if kind == UNIGW:
            problems.append(f"{where}: kind: unigw needs url (another unigw is reached at "
                            "its address, never started)")
        return
    if not isinstance(url, str):
        return  # the type check names it
    problem = url_problem(url)
    if problem is not None:
        problems.append(f"{where}: url: {problem}")
    for name in NOT_WITH_URL:
        if name in raw:
            problems.append(f"{where}: {name}: not used with url (unigw does not run a remote "
                            "provider; its port is the url's)")
    raw.update(runtime=REMOTE_RUNTIME, start=[],
               port=Address.parse(url).port if problem is None else 1)
    if kind == UNIGW:
        raw.setdefault("health", UNIGW_HEALTH)
