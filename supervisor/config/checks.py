"""The checks of providers.yaml beyond each field's type: ranges, names, placeholders, and
references between sections. Each problem names the file, the provider and the field."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

RUNTIMES = ("python", "node", "go", "deno")
UNKNOWN_MODEL_POLICIES = ("default", "reject")
# The gateway's strategy registry (gateway/strategies.py) has exactly these names, in this order;
# tests/test_strategies.py pins the two equal, so the config never needs to import the gateway.
STRATEGY_NAMES = ("round_robin", "least_connections", "response_time", "random",
                  "weighted_round_robin", "health_based", "model_specific")
PLACEHOLDERS = ("port", "python", "venv", "bin", "dir")


def check_provider(p: dict[str, Any], where: str, problems: list[str]) -> None:
    """Add the problems of one provider's type-checked fields to ``problems``."""

    def bad(field: str, message: str) -> None:
        problems.append(f"{where}: {field}: {message}")

    name, port, runtime = p.get("group") or p.get("name"), p.get("port"), p.get("runtime")
    remote = p.get("url") is not None  # runtime and start are derived (config/remote.py)
    if name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        bad("name", f"must be letters, digits, '.', '_' or '-', got {name!r}")
    if port is not None and not 1 <= port <= 65535:
        bad("port", f"must be an integer in 1-65535, got {port}")
    if runtime is not None and runtime not in RUNTIMES and not remote:
        bad("runtime", f"unknown runtime {runtime!r} (known: {', '.join(RUNTIMES)})")
    if p.get("start") == () and not remote:
        bad("start", "must be a non-empty list of strings")
    for arg in p.get("start", ()):
        for ph in re.findall(r"(?<!\$)\{([^{}]*)\}", arg):
            if ph not in PLACEHOLDERS:
                known = ", ".join("{" + x + "}" for x in PLACEHOLDERS)
                bad("start", f"unknown placeholder {{{ph}}} (known: {known})")
    if p.get("repo") is not None and not p.get("ref"):
        bad("ref", "required with repo (pin a commit, never a branch)")
    if not p.get("health", "/").startswith("/"):
        bad("health", f"must be a path starting with '/', got {p['health']!r}")
    if (p.get("canary_interval") or 0) < 0:
        bad("canary_interval", f"must be 0 (off) or more seconds, got {p['canary_interval']}")
    if p.get("weight", 1) < 1:
        bad("weight", f"must be at least 1, got {p['weight']}")
    for i, pattern in enumerate(p.get("error_patterns", ())):
        if not pattern or pattern == "//":
            bad("error_patterns", f"item {i}: must not be empty (it would match every answer)")
        elif len(pattern) >= 2 and pattern.startswith("/") and pattern.endswith("/"):
            try:
                re.compile(pattern[1:-1])
            except re.error as exc:
                bad("error_patterns", f"item {i}: {pattern!r} is not a valid regex: {exc}")
    cwd = Path(p.get("cwd", "."))
    if cwd.is_absolute() or ".." in cwd.parts:
        bad("cwd", f"must be a folder inside the clone, got {str(cwd)!r}")
    for path in p.get("files", {}):
        parts = Path(path).parts
        if not parts or Path(path).is_absolute() or ".." in parts or "\0" in path:
            bad("files", f"{path!r}: must be a file path inside the provider's private home "
                "(relative, no '..'), such as .local/share/copilot-api/github_token")


#: The gateway's numeric fields with a bound: the field, its test, and what it must be.
_GATEWAY_BOUNDS: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("retries", lambda v: v >= 0, "0 or more"),
    ("request_timeout", lambda v: v > 0, "more than 0"),
    ("max_clients", lambda v: v >= 1, "at least 1"),
    ("first_content_timeout", lambda v: v > 0, "more than 0 seconds"),
    ("hold_max_bytes", lambda v: v >= 1, "at least 1"),
)


def check_gateway(
    gw: dict[str, Any], providers: list[dict[str, Any]], where: str, problems: list[str]
) -> None:
    """Add the problems of the gateway section and of its references to providers."""
    strategy, port = gw.get("strategy", "round_robin"), gw.get("port", 7999)
    if strategy not in STRATEGY_NAMES:
        problems.append(
            f"{where}: strategy: unknown strategy {strategy!r} (known: {', '.join(STRATEGY_NAMES)})"
        )
    if not 1 <= port <= 65535:
        problems.append(f"{where}: port: must be an integer in 1-65535, got {port}")
    unknown_model = gw.get("unknown_model", "default")
    if unknown_model not in UNKNOWN_MODEL_POLICIES:
        problems.append(
            f"{where}: unknown_model: must be one of {', '.join(UNKNOWN_MODEL_POLICIES)}, "
            f"got {unknown_model!r}"
        )
    for field, ok, want in _GATEWAY_BOUNDS:
        if field in gw and not ok(gw[field]):
            problems.append(f"{where}: {field}: must be {want}, got {gw[field]}")
    names = {p.get("name") for p in providers} | {p["group"] for p in providers if p.get("group")}
    for model, prefs in gw.get("routes", {}).items():
        for name in prefs:
            if name not in names:
                problems.append(f"{where}: routes: {model}: unknown provider {name!r}")
    check_model_groups(gw, providers, where, problems)
    for p in providers:
        if p.get("port") == port and p.get("url") is None:
            problems.append(f"{where}: port: {port} is also the port of provider {p.get('name')!r}")
    _check_answer_limits(gw, where, problems)
    _check_canary(gw, where, problems)
    _check_allowed_hosts(gw, where, problems)
    _check_request_log(gw, where, problems)


_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?"  # a name or IPv4
                        r"|\[?[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\]?")  # IPv6, bracketed or not


def _check_allowed_hosts(gw: dict[str, Any], where: str, problems: list[str]) -> None:
    """``allowed_hosts``: bare host names or addresses, as a Host header names them (no
    scheme, port or path: any port of an allowed name is accepted)."""
    for i, name in enumerate(gw.get("allowed_hosts", ())):
        if not _HOST_NAME.fullmatch(name):
            problems.append(f"{where}: allowed_hosts: item {i}: must be a host name or address "
                            f"without scheme, port or path (e.g. unigw.lan), got {name!r}")


def _check_answer_limits(gw: dict[str, Any], where: str, problems: list[str]) -> None:
    """A whole answer's deadline covers the wait for its first byte; its size limit is > 0."""
    total, first = gw.get("total_timeout", 180.0), gw.get("first_byte_timeout", 60.0)
    if total < first:
        problems.append(f"{where}: total_timeout: must be at least first_byte_timeout "
                        f"({first:g}), got {total:g}")
    if gw.get("max_response_bytes", 1) < 1:
        problems.append(f"{where}: max_response_bytes: must be at least 1, "
                        f"got {gw['max_response_bytes']}")


def _check_canary(gw: dict[str, Any], where: str, problems: list[str]) -> None:
    """The canary's interval is 0 (off) or positive; its prompt is not empty."""
    if gw.get("canary_interval", 0) < 0:
        problems.append(f"{where}: canary_interval: must be 0 (off) or more seconds, "
                        f"got {gw['canary_interval']}")
    if not gw.get("canary_prompt", "ping"):
        problems.append(f"{where}: canary_prompt: must not be empty")


def _check_request_log(gw: dict[str, Any], where: str, problems: list[str]) -> None:
    """The request log keeps at least one row, for more than no time."""
    if gw.get("request_log_rows", 1) < 1:
        problems.append(f"{where}: request_log_rows: must be at least 1, "
                        f"got {gw['request_log_rows']}")
    if gw.get("request_log_days", 1) <= 0:
        problems.append(f"{where}: request_log_days: must be more than 0, "
                        f"got {gw['request_log_days']}")


def check_model_groups(
    gw: dict[str, Any], providers: list[dict[str, Any]], where: str, problems: list[str]
) -> None:
    """``model_groups``: each name means one thing (a group, a member, or an alias)."""
    groups: dict[str, tuple[str, ...]] = gw.get("model_groups", {})
    aliases: dict[str, str] = gw.get("aliases", {})
    member_of: dict[str, str] = {}
    for group, members in groups.items():
        at = f"{where}: model_groups: {group}"
        if not members:
            problems.append(f"{at}: must list at least one member model")
        if group in aliases:
            problems.append(f"{at}: {group!r} is also an alias (aliases: {group}); "
                            "a name is either a group or an alias")
        for member in members:
            if member in member_of and member_of[member] != group:
                problems.append(f"{at}: member {member!r} is also in group {member_of[member]!r}")
            member_of.setdefault(member, group)
            if member in aliases:
                problems.append(f"{at}: member {member!r} is also an alias (aliases: {member})")
        owners = [p.get("name") for p in providers
                  if group in p.get("models", ()) and group not in members]
        if owners:
            problems.append(f"{at}: {group!r} is also a model served by "
                            f"{', '.join(map(str, owners))}: list it as a member")
    for group in groups:
        if member_of.get(group, group) != group:
            problems.append(f"{where}: model_groups: {group}: {group!r} is also a member of "
                            f"group {member_of[group]!r}")
    for model in gw.get("routes", {}):
        if member_of.get(model, model) != model and model not in groups:
            problems.append(f"{where}: routes: {model}: {model!r} is a member of model group "
                            f"{member_of[model]!r}; key the route by the group name")
