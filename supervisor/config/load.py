"""providers.yaml → a frozen :class:`~supervisor.config.model.Config`, parsed and validated
once, at the edge.

Every problem in the file is collected, not just the first, and each names the file, the
provider and the field: ``providers.yaml: providers[3] (k2think2api2): port: must be an
integer in 1-65535, got 70000``. ``${NAME}`` references are resolved from the process
environment and the ``.env`` beside the file; a provider whose required ones are unset is
loaded with ``missing_secrets`` set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from supervisor.config import instances
from supervisor.config.checks import check_gateway, check_provider
from supervisor.config.model import (
    Config,
    ConfigError,
    GatewayConfig,
    ProviderConfig,
    SupervisorConfig,
)
from supervisor.config.remote import remote_fields
from supervisor.config.schema import fields_of, kind, unknown_fields
from supervisor.config.secrets import bad_reference, expand, expand_tracked, read_dotenv


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
        raw = yaml.load(text, Loader=_UniqueKeys)  # noqa: S506 (a SafeLoader: see below)
    except _DuplicateKey as exc:
        raise ConfigError([f"{label}: {exc}"]) from None
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
    _check_references(raw, label, problems)
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
        raise ConfigError(list(dict.fromkeys(problems)))  # instances repeat their provider's
    gw["routes"] = _routes_to_instances(gw.get("routes", {}), providers)
    return Config(
        path=path,
        gateway=GatewayConfig(**gw),
        supervisor=SupervisorConfig(**sup),
        providers=tuple(ProviderConfig(**p) for p in providers),
    )


class _DuplicateKey(Exception):
    """A mapping of providers.yaml names one key twice (YAML itself keeps the last)."""


class _UniqueKeys(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping: ``port: 8000`` and
    later ``port: 8050`` in one provider is a slip, and the silent last-one-wins hid it."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, str | int | float | bool) and key in seen:
                raise _DuplicateKey(f"line {line}: {key!r} is given twice in one mapping "
                                    f"(first at line {seen[key]}); keep one")
            if isinstance(key, str | int | float | bool):
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _check_references(value: Any, where: str, problems: list[str]) -> None:
    """Each string of providers.yaml with a ``$`` that would reach a provider as literal text
    (:func:`~supervisor.config.secrets.bad_reference`), named by where it is."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_references(v, f"{where}: {k}" if where.endswith(".yaml") else f"{where}.{k}",
                              problems)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_references(v, f"{where}[{i}]", problems)
    elif isinstance(value, str) and "$" in value:
        problem = bad_reference(value)
        if problem:
            problems.append(f"{where}: {problem}")


def _section(raw: dict[str, Any], name: str, label: str, problems: list[str]) -> dict[str, Any]:
    value = raw.get(name) or {}
    if not isinstance(value, dict):
        problems.append(f"{label}: {name}: must be a mapping, got {kind(value)}")
        return {}
    return value


def _routes_to_instances(
    routes: Mapping[str, tuple[str, ...]], providers: list[dict[str, Any]]
) -> dict[str, tuple[str, ...]]:
    """``gateway.routes`` with a provider that has instances standing for all of them."""
    members: dict[str, list[str]] = {}
    for p in providers:
        if p["group"]:
            members.setdefault(p["group"], []).append(p["name"])
    return {model: tuple(n for name in prefs for n in members.get(name, [name]))
            for model, prefs in routes.items()}


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
        field = "ports" if "ports" in item else "port"
        for entry, group in instances.expand(item, where, problems):
            prov = _provider(entry, group, where, env, problems)
            name, port = prov.get("name"), prov.get("port")
            dup = name if name in names else group if names.get(group, i) != i else None
            if dup is not None:
                problems.append(f"{where}: name: duplicate name {dup!r} "
                                f"(also providers[{names[dup]}])")
            if port in ports and not prov.get("url"):  # remote ones are on other hosts
                of = f" of {name}" if group else ""
                problems.append(f"{where}: {field}: duplicate port {port}{of} "
                                f"(also used by {ports[port]})")
            for taken in (name, group):
                if taken:
                    names.setdefault(taken, i)
            if port is not None and not prov.get("url"):
                ports.setdefault(port, str(name))
            out.append(prov)
    return out


def _provider(
    item: dict[str, Any], group: str, where: str, env: Mapping[str, str], problems: list[str]
) -> dict[str, Any]:
    """One provider's (or instance's) fields with ``${NAME}`` references resolved and secrets
    marked."""
    raw = dict(item)
    missing: list[str] = []
    names: list[str] = []
    secret_env = _resolve_values(raw, "env", env, missing, names)
    secret_files = _resolve_values(raw, "files", env, missing, names)
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
    remote_fields(raw, where, problems)
    fields = fields_of(ProviderConfig, raw, where, problems)
    fields["group"] = group
    check_provider(fields, where, problems)
    fields.update(
        secret_env=secret_env,
        secret_args=frozenset(secret_args),
        secret_files=secret_files,
        key_is_secret=key_is_secret,
        missing_secrets=tuple(dict.fromkeys(missing)),
        secret_names=tuple(dict.fromkeys(names)),
    )
    return fields


def _resolve_values(raw: dict[str, Any], field: str, env: Mapping[str, str], missing: list[str],
                    names: list[str]) -> frozenset[str]:
    """Resolve the ``${NAME}`` references in the values of mapping ``raw[field]`` (``env``,
    ``files``; a number becomes its text) in place; return the keys whose value had one."""
    if not isinstance(raw.get(field), dict):
        return frozenset()  # missing, or the type check names it
    resolved: dict[Any, Any] = {}
    secret: set[str] = set()
    for k, v in raw[field].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = str(v)
        if isinstance(v, str):
            v, refs, miss = expand_tracked(v, env)
            secret.update([str(k)] if refs else [])
            missing += miss
            names += refs
        resolved[k] = v
    raw[field] = resolved
    return frozenset(secret)
