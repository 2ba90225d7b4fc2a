"""What of unigw's own environment a child process may see: providers, their installers, and
the toolchain bootstrap's pip and npm alike.

A child's environment is built, not inherited. The providers are 14 third-party programs;
unigw's own environment holds every provider's secrets (the README lets them be exported
instead of written to ``.env``) and the gateway's keys (``UNIGW_API_KEY``). Measured before
this rule: a marker exported for one provider was in the environment of 13 others. So a child
gets, from unigw's environment, only the variables named in :data:`ORDINARY` (and those
starting with an :data:`ORDINARY_PREFIXES` prefix), chosen because programs and their
installers need them and they carry no one's secret:

- ``PATH``, ``HOME``, ``USER``, ``LOGNAME``, ``SHELL``, ``TERM``, ``TMPDIR``, ``XDG_*`` folders,
  ``LD_LIBRARY_PATH``: where things are (an interpreter built against a library elsewhere);
- ``LANG``, ``LANGUAGE``, ``LC_*``, ``TZ``, ``NO_COLOR``: how text and time are shown;
- ``http_proxy``, ``https_proxy``, ``no_proxy``, ``all_proxy`` in both cases: on a network that
  needs a proxy nothing works without it;
- ``SSL_CERT_FILE``, ``SSL_CERT_DIR``, ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``,
  ``NODE_EXTRA_CA_CERTS``, ``DENO_CERT``: a company's TLS root, for the same reason.

Install steps (and ``deno run``, which downloads a program's modules when it first runs) also get
the package registries' configuration, :data:`REGISTRY` and ``PIP_*``/``npm_config_*``, since
installs go through the registries the user configured; a running Python, Node or Go program
does not need it. Then come the toolchain's variables (Go's private ``HOME``, caches and
``GOPROXY``), the provider's own ``env:`` with its ``${SECRET}`` references resolved, its port
and the leftover markers. Nothing else: never another provider's secret, never unigw's keys.

``PYTHONPATH`` is passed only to a *local* Python provider (no ``repo``), which runs where unigw
runs, on unigw's interpreter (``{python} -m supervisor.demo.echo`` must import the same
``supervisor`` unigw imports, also from a checkout on ``PYTHONPATH``). A cloned provider has its
own virtual environment, which unigw's path would only pollute; one that needs a path sets
``PYTHONPATH`` in its ``env:``.
"""

from __future__ import annotations

import os

_PROXIES = ("http_proxy", "https_proxy", "no_proxy", "all_proxy")
ORDINARY = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TMPDIR", "LD_LIBRARY_PATH",
    "LANG", "LANGUAGE", "TZ", "NO_COLOR",
    *_PROXIES, *(v.upper() for v in _PROXIES),
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS", "DENO_CERT",
})
ORDINARY_PREFIXES = ("LC_", "XDG_")
REGISTRY = frozenset({
    "GOPROXY", "GOPRIVATE", "GONOPROXY", "GONOSUMDB", "GOSUMDB", "GOINSECURE",
    "DENO_AUTH_TOKENS", "NPM_CONFIG_REGISTRY",
})
REGISTRY_PREFIXES = ("PIP_", "npm_config_")


def ordinary_env(*, registries: bool) -> dict[str, str]:
    """The part of unigw's environment any child may see (with registries: an installer)."""
    names: frozenset[str] = ORDINARY
    prefixes: tuple[str, ...] = ORDINARY_PREFIXES
    if registries:
        names, prefixes = names | REGISTRY, prefixes + REGISTRY_PREFIXES
    return {k: v for k, v in os.environ.items() if k in names or k.startswith(prefixes)}
