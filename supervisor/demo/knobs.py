"""The echo provider's knobs: flags, ``UNIGW_ECHO_*`` variables, run-time changes, counters."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from supervisor.demo.failures import SHAPES
from supervisor.demo.replies import EchoError

ENV_PREFIX = "UNIGW_ECHO_"
HEALTH_SHAPES = ("ok", "k2think2api3")


# -- parsing one knob from a string (a flag, an env var, or str() of a JSON value) --------------

def _checked(convert: Callable[[str], Any], ok: Callable[[Any], bool],
             why: str) -> Callable[[str], Any]:
    """A parser: ``convert`` the text, then refuse a value that is not ``ok`` (``why``)."""
    def parse(raw: str) -> Any:
        value = convert(raw)
        if not ok(value):
            raise ValueError(f"{raw!r} {why}")
        return value
    return parse


_seconds = _checked(float, lambda v: v >= 0, "is not a number of seconds >= 0")
_fraction = _checked(float, lambda v: 0 <= v <= 1, "is not between 0 and 1")
_count = _checked(int, lambda v: v >= 0, "is negative")
_status = _checked(int, lambda v: 200 <= v <= 599, "is not an HTTP status between 200 and 599")
_failure = _checked(lambda raw: raw.strip(), lambda v: v in SHAPES,
                    f"is not a failure shape; known: {', '.join(SHAPES)}")
_health = _checked(lambda raw: raw.strip(), lambda v: v in HEALTH_SHAPES,
                   f"is not a health shape; known: {', '.join(HEALTH_SHAPES)}")


def _retry_after(raw: str) -> str:
    return f"{_seconds(raw):g}"


def _models(raw: str) -> tuple[str, ...]:
    models = tuple(m.strip() for m in raw.split(",") if m.strip())
    if not models:
        raise ValueError("needs at least one model id")
    return models


def _flag(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{raw!r} is not a boolean")


def _opt(default: Any, parse: Callable[[str], Any], help: str) -> Any:
    """A config field: its default, how to parse it from text, and its --help line."""
    return dataclasses.field(default=default, metadata={"parse": parse, "help": help})


@dataclasses.dataclass(frozen=True)
class EchoConfig:
    """The echo provider's start-up settings; each field is a flag and an env var."""

    host: str = _opt("127.0.0.1", str, "interface to bind")
    port: int = _opt(8000, int, "TCP port (PORT works too)")
    models: tuple[str, ...] = _opt(("echo-1", "echo-2"), _models, "comma-separated model ids")
    api_key: str | None = _opt(None, str, "require 'Authorization: Bearer KEY' on /v1/*")
    key_file: str | None = _opt(None, str, "like --api-key, the key read at start from this "
                                "file, a path relative to HOME (as copilot-api reads its token); "
                                "exit(2) if it is missing or empty")
    latency: float = _opt(0.0, _seconds, "seconds before answering / before the first chunk")
    chunk_delay: float = _opt(0.0, _seconds, "seconds between stream chunks")
    error_rate: float = _opt(0.0, _fraction, "fraction of /v1/* requests answered 500")
    status: int | None = _opt(None, _status, "answer every /v1/* request with this status")
    retry_after: str | None = _opt(None, _retry_after, "Retry-After seconds with --status")
    crash_after: int | None = _opt(None, _count, "exit(3) after N /v1/* answers")
    crash_mid_stream: int | None = _opt(None, _count, "exit(3) after K content chunks")
    hang_after: int | None = _opt(None, _count, "after N /v1/* requests, never answer again")
    startup_delay: float = _opt(0.0, _seconds, "sleep S seconds before binding the port")
    exit_at_start: int | None = _opt(None, int, "exit with this code before binding")
    ignore_sigterm: bool = _opt(False, _flag, "ignore SIGTERM")
    strict_models: bool = _opt(False, _flag, "404 model_not_found for unknown models")
    spawn_child: bool = _opt(False, _flag, "spawn a grandchild that sleeps forever")
    seed: int = _opt(0, int, "seed of the error-rate random generator")
    failure: str | None = _opt(None, _failure, "answer chat calls like a failing real provider: "
                               + "|".join(SHAPES) + " (see supervisor/demo/failures.py)")
    fail_first: int | None = _opt(None, _count, "only the first N chat calls fail (default all)")
    failure_delay: float | None = _opt(None, _seconds, "seconds replacing the shape's own delay")
    health: str = _opt("ok", _health, "GET /health shape: ok, or k2think2api3 (always "
                       "'healthy', tokens.active 0 after --health-fail-after failed chats)")
    health_fail_after: int = _opt(3, _count, "failed chats after which the token is inactive")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m supervisor.demo.echo",
        description="unigw echo provider: an OpenAI-compatible server that echoes the prompt.",
        epilog=f"Every flag is also an environment variable {ENV_PREFIX}<NAME>; the flag wins.",
    )
    for f in dataclasses.fields(EchoConfig):
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata['help']} (env {ENV_PREFIX}{f.name.upper()})"
        if f.metadata["parse"] is _flag:
            parser.add_argument(flag, action="store_const", const="1", help=help_text)
        else:
            parser.add_argument(flag, metavar=f.name.upper(), help=help_text)
    return parser


def parse_config(argv: list[str] | None, environ: Mapping[str, str]) -> EchoConfig:
    """Build the config from flags, then ``UNIGW_ECHO_*`` (and ``PORT``), then defaults."""
    parser = _build_parser()
    args = vars(parser.parse_args(argv))
    values: dict[str, Any] = {}
    for f in dataclasses.fields(EchoConfig):
        env_name = ENV_PREFIX + f.name.upper()
        raw, source = args[f.name], "--" + f.name.replace("_", "-")
        if raw is None and environ.get(env_name):
            raw, source = environ[env_name], env_name
        if raw is None and f.name == "port" and environ.get("PORT"):
            raw, source = environ["PORT"], "PORT"
        if raw is None:
            continue
        try:
            values[f.name] = f.metadata["parse"](raw)
        except ValueError as exc:
            parser.error(f"{source}: {exc}")
    return EchoConfig(**values)


def read_key_file(config: EchoConfig) -> EchoConfig:
    """``--key-file``: the key from a file under HOME, exactly as written (never printed)."""
    if config.key_file is None:
        return config
    path = os.path.join(os.path.expanduser("~"), config.key_file)
    try:
        with open(path, encoding="utf-8") as f:
            key = f.read()
    except OSError as exc:
        key, why = "", exc.strerror
    else:
        why = "empty"
    if not key:
        print(f"echo: key file {path}: {why}", file=sys.stderr)
        sys.exit(2)
    return dataclasses.replace(config, api_key=key)


# -- run-time state ---------------------------------------------------------------------------

_KNOB_PARSERS: dict[str, Callable[[str], Any]] = {
    "latency": _seconds, "chunk_delay": _seconds, "error_rate": _fraction,
    "status": _status, "retry_after": _retry_after, "hang": _flag,
    "failure": _failure, "fail_first": _count, "failure_delay": _seconds,
    "health": _health, "health_fail_after": _count,
}
_NULLABLE = {"status", "retry_after", "failure", "fail_first", "failure_delay"}


@dataclasses.dataclass
class Knobs:
    """The behaviour knobs that ``POST /_echo/config`` may change while running."""

    latency: float
    chunk_delay: float
    error_rate: float
    status: int | None
    retry_after: str | None
    failure: str | None = None
    fail_first: int | None = None
    failure_delay: float | None = None
    health: str = "ok"
    health_fail_after: int = 3
    hang: bool = False

    @classmethod
    def from_config(cls, config: EchoConfig) -> Knobs:
        """The start-up values of every run-time knob."""
        names = [f.name for f in dataclasses.fields(cls) if f.name != "hang"]
        return cls(**{name: getattr(config, name) for name in names})

    def update(self, changes: dict[str, Any]) -> None:
        """Validate every change first, then apply them all (raise ``EchoError`` 400)."""
        parsed: dict[str, Any] = {}
        for name, value in changes.items():
            parse = _KNOB_PARSERS.get(name)
            if parse is None:
                raise EchoError(400, f"unknown knob {name!r}; known: {sorted(_KNOB_PARSERS)}")
            if value is None and name in _NULLABLE:
                parsed[name] = None
                continue
            try:
                parsed[name] = parse(str(value))
            except ValueError as exc:
                raise EchoError(400, f"knob {name!r}: {exc}") from None
        for name, value in parsed.items():
            setattr(self, name, value)


@dataclasses.dataclass
class Stats:
    """Counters shown by ``GET /_echo/stats``."""

    requests: int = 0
    answered: int = 0
    in_flight: int = 0
    streams_started: int = 0
    streams_completed: int = 0
    streams_cancelled: int = 0
    chats_failed: int = 0  # chat calls answered with a --failure shape
    by_path: Counter[str] = dataclasses.field(default_factory=Counter)


