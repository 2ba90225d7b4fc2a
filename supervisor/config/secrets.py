"""Secrets in providers.yaml: ``${NAME}`` references resolved from the environment and ``.env``.

A value is never written in the file; ``${NAME}`` is required, ``${NAME:-default}`` optional.

:func:`store` writes one secret into the ``.env`` beside providers.yaml (what ``unigw secret
set`` and the dashboard use): atomically (a temporary file in the same folder, then a rename, so
a crash never leaves half a file), with mode 0600 from the moment it exists, keeping every other
line. A secret whose name ends in ``_FILE`` names a file (k2think2api3's tokens file): its
content goes to ``<state_dir>/secrets/NAME`` (0600, in a 0700 folder) and ``.env`` gets the path.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SecretError(ValueError):
    """A secret that cannot be stored as given; the message says why."""


def is_file_secret(name: str) -> bool:
    """Whether ``name`` holds a path to a file whose content is the secret."""
    return name.endswith("_FILE")


def store(dotenv: Path, name: str, value: str, secrets_dir: Path) -> Path | None:
    """Set ``name`` in ``dotenv``; for a ``_FILE`` secret, write ``value`` to a file under
    ``secrets_dir`` and set the path. Returns that file, or None."""
    if not NAME.fullmatch(name):
        raise SecretError(f"{name!r} is not a variable name (letters, digits, _; not a digit "
                          "first)")
    written = None
    if is_file_secret(name):
        secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        written = secrets_dir / name
        write_private(written, value if value.endswith("\n") else value + "\n")
        value = str(written)
    # one line as the .env reader splits lines (str.splitlines: also U+2028, \x0b, \x85, …), or
    # a value could end its line and set another variable, the gateway's key among them
    if not value or value.splitlines() != [value]:
        raise SecretError(f"{name}: the value must be one non-empty line"
                          + ("" if is_file_secret(name) else
                             " (a name ending in _FILE stores a multi-line file instead)"))
    lines = _other_lines(dotenv, name)
    lines.append(f"{name}={_quote(value)}")
    write_private(dotenv, "\n".join(lines) + "\n")
    return written


def _other_lines(dotenv: Path, name: str) -> list[str]:
    try:
        lines = dotenv.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    keep = []
    for line in lines:
        key = line.strip().removeprefix("export ").partition("=")[0].strip()
        if key != name:
            keep.append(line)
    return keep


def _quote(value: str) -> str:
    """Quote a value that :func:`read_dotenv` would otherwise change (spaces, #, quotes)."""
    if re.fullmatch(r"[A-Za-z0-9_./:@+=,-]*", value) and not value.startswith(("'", '"')):
        return value
    return "'" + value + "'" if "'" not in value else '"' + value + '"'


def write_private(path: Path, text: str) -> None:
    """Write ``path`` atomically, readable by its owner only from the first byte."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    os.chmod(path, 0o600)


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


def rename_refs(value: str, renames: Mapping[str, str]) -> str:
    """``value`` with each ``${OLD}`` / ``${OLD:-default}`` of ``renames`` reading ``${NEW}``."""

    def sub(m: re.Match[str]) -> str:
        name = renames.get(m.group(1))
        return m.group(0) if name is None else m.group(0).replace(m.group(1), name, 1)

    return _REF.sub(sub, value)


def bad_reference(value: str) -> str | None:
    """Why ``value`` would reach a provider as literal text instead of a variable's value:
    a ``${`` that is not a whole ``${NAME}`` / ``${NAME:-default}``, or a value that is just
    ``$NAME`` (a shell habit: only ``${NAME}`` is expanded). None when it is fine."""
    if "${" in _REF.sub("", value):
        return f"{value!r} has a '${{' with no closing '}}' (write ${{NAME}})"
    bare = value.strip()
    if _BARE.fullmatch(bare):
        return f"{value!r} is not expanded: write ${{{bare[1:]}}}"
    return None


_BARE = re.compile(r"\$[A-Za-z_][A-Za-z0-9_]*")


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
