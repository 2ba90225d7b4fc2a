"""``unigw secret set NAME`` and ``unigw secret list``: secrets without a text editor.

``set`` stores one value in the ``.env`` beside providers.yaml (mode 0600, written atomically;
see :func:`supervisor.config.secrets.store`). The value is read from a prompt that does not
echo, from ``--from-file``, or from standard input when it is not a terminal; it is never
printed, logged or sent anywhere. A name ending in ``_FILE`` (k2think2api3's tokens file) stores
the content as a private file and puts its path in ``.env``. A running ``unigw up`` watches
``.env`` and starts the providers that were waiting for the secret.

``list`` shows each secret providers.yaml references, which providers need it, and whether it
is set (in ``.env`` or the environment) or missing: names only, never values.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass
from typing import IO

import click

from supervisor.cli.app import ExitCode, cli, config_option, fail, load_config
from supervisor.config import Config
from supervisor.config.secrets import SecretError, is_file_secret, read_dotenv, store


@cli.group()
def secret() -> None:
    """Store the secrets providers need (in .env beside providers.yaml), or list them."""


@secret.command("set")
@config_option
@click.argument("name")
@click.option("--from-file", "source", type=click.File("r", encoding="utf-8"),
              help="Read the value (or, for NAME_FILE, the file's content) from this file.")
def set_secret(config_path: str, name: str, source: IO[str] | None) -> None:
    """Store secret NAME for the providers that reference ${NAME}.

    The value comes from a hidden prompt, from --from-file, or from standard input when it is
    not a terminal (`echo "$TOKEN" | unigw secret set QWEN_BEARER_TOKEN`). A running unigw
    picks it up at once and starts the providers that were waiting for it.
    """
    config = load_config(config_path)
    needing = config.needing(name)
    if not needing:
        known = ", ".join(sorted({n for p in config.providers for n in p.secret_names}))
        fail(f"no provider in {config.path.name} references ${{{name}}} (secrets it uses: "
             f"{known or 'none'})", ExitCode.USAGE)
    value = _read_value(name, source)
    try:
        written = store(config.dotenv_path, name, value, config.secrets_dir)
    except SecretError as exc:
        fail(str(exc), ExitCode.USAGE)
    where = f"{config.dotenv_path}" + (f" (content in {written})" if written else "")
    click.echo(f"stored {name} in {where}, mode 0600; needed by {', '.join(needing)}")


def _read_value(name: str, source: IO[str] | None) -> str:
    if source is not None:
        text = source.read()
    elif not sys.stdin.isatty():
        text = sys.stdin.read()
    elif is_file_secret(name):
        fail(f"{name} holds a file's content: pass --from-file PATH or pipe it in",
             ExitCode.USAGE)
    else:
        text = click.prompt(f"{name}", hide_input=True, err=True)
    return text if is_file_secret(name) else text.strip("\r\n")


@secret.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def list_secrets(config_path: str, as_json: bool) -> None:
    """Every secret providers.yaml references: who needs it, and whether it is set."""
    config = load_config(config_path)
    rows = _rows(config)
    if as_json:
        click.echo(json.dumps({"secrets": [asdict(r) for r in rows]}, indent=2))
        return
    if not rows:
        click.echo(f"{config.path.name} references no secrets")
        return
    width = max(len(r.name) for r in rows)
    click.echo(f"{'NAME':<{width}}  {'STATUS':<14}  NEEDED BY")
    for r in rows:
        click.echo(f"{r.name:<{width}}  {r.status:<14}  {', '.join(r.providers)}")


@dataclass(frozen=True)
class SecretRow:
    """One referenced secret: never its value."""

    name: str
    status: str  # "set in .env", "set in env" or "missing"
    providers: tuple[str, ...]


def _rows(config: Config) -> list[SecretRow]:
    dotenv = read_dotenv(config.dotenv_path)
    names = dict.fromkeys(n for p in config.providers for n in p.secret_names)
    rows = []
    for name in names:
        status = ("set in .env" if dotenv.get(name) else
                  "set in env" if os.environ.get(name) else "missing")
        rows.append(SecretRow(name, status, tuple(config.needing(name))))
    return rows
