"""Secrets in providers.yaml: ``${NAME}`` references resolved from the environment and ``.env``.

A value is never written in the file; ``${NAME}`` is required, ``${NAME:-default}`` optional.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``export`` and quotes allowed, ``#`` comments) of a .env file."""
    out: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def expand(value: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    out, _, missing = expand_tracked(value, env)
    return out, missing


def expand_tracked(value: str, env: Mapping[str, str]) -> tuple[str, list[str], list[str]]:
    """Replace ``${NAME}`` / ``${NAME:-default}``; return (value, referenced, missing)."""
    refs: list[str] = []
    missing: list[str] = []

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        refs.append(name)
        if env.get(name):
            return env[name]
        if default is None:
            missing.append(name)
            return ""
        return default

    return _REF.sub(sub, value), refs, missing
