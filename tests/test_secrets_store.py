"""supervisor.config.secrets.store: .env written atomically with mode 0600, other lines kept,
values that read back exactly, file secrets stored as files; and the loader sees them."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from supervisor.config import loads
from supervisor.config.secrets import SecretError, read_dotenv, store

CONFIG = """
providers:
  - {name: qwen, port: 9101, runtime: python, start: ['{python}', -m, x],
     env: {QWEN_BEARER_TOKEN: '${QWEN_TOKEN}'}}
  - {name: k2, port: 9102, runtime: python, start: ['{python}', -m, x, '--t', '${QWEN_TOKEN}'],
     env: {TOKENS_FILE: '${K2_TOKENS_FILE}'}}
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_store_writes_a_private_env_and_keeps_the_other_lines(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("# mine\nOTHER=1\nQWEN_TOKEN=old\n")
    store(dotenv, "QWEN_TOKEN", "s3cret value #1", tmp_path / "secrets")
    assert mode(dotenv) == 0o600
    assert dotenv.read_text().startswith("# mine\nOTHER=1\n")
    assert read_dotenv(dotenv) == {"OTHER": "1", "QWEN_TOKEN": "s3cret value #1"}
    assert not list(tmp_path.glob(".env.*"))  # no temporary file left behind


def test_a_new_env_file_is_0600_and_values_read_back_exactly(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    for value in ("plain", "with 'single' quotes", 'with "double"', " spaced ", "a=b;c"):
        store(dotenv, "V", value, tmp_path / "secrets")
        assert read_dotenv(dotenv)["V"] == value
    assert mode(dotenv) == 0o600


def test_a_file_secret_is_stored_as_a_private_file_and_env_names_it(tmp_path: Path) -> None:
    dotenv, secrets = tmp_path / ".env", tmp_path / ".unigw" / "secrets"
    written = store(dotenv, "K2_TOKENS_FILE", "token-1\ntoken-2", secrets)
    assert written == secrets / "K2_TOKENS_FILE"
    assert written.read_text() == "token-1\ntoken-2\n"
    assert mode(written) == 0o600 and mode(secrets) == 0o700
    assert read_dotenv(dotenv) == {"K2_TOKENS_FILE": str(written)}


@pytest.mark.parametrize(("name", "value", "why"), [
    ("1BAD", "x", "not a variable name"),
    ("bad-name", "x", "not a variable name"),
    ("TOKEN", "two\nlines", "one non-empty line"),
    ("TOKEN", "", "one non-empty line"),
    # each would end the line for the .env reader and set another variable
    ("TOKEN", "x\u2028GWKEY=pwned", "one non-empty line"),
    ("TOKEN", "x\x0bGWKEY=pwned", "one non-empty line"),
    ("TOKEN", "x\x85GWKEY=pwned", "one non-empty line"),
    ("TOKEN", "x\x1eGWKEY=pwned", "one non-empty line"),
])
def test_store_refuses_what_it_cannot_write_faithfully(tmp_path: Path, name: str, value: str,
                                                       why: str) -> None:
    with pytest.raises(SecretError, match=why):
        store(tmp_path / ".env", name, value, tmp_path / "secrets")
    assert not (tmp_path / ".env").exists()


def test_the_config_knows_which_providers_need_each_secret(tmp_path: Path) -> None:
    config = loads(CONFIG, tmp_path / "providers.yaml", environ={})
    assert config.needing("QWEN_TOKEN") == ["qwen", "k2"]
    assert config.needing("K2_TOKENS_FILE") == ["k2"]
    assert config.needing("NOPE") == []
    assert set(config.provider("k2").missing_secrets) == {"QWEN_TOKEN", "K2_TOKENS_FILE"}  # type: ignore[union-attr]
    store(config.dotenv_path, "QWEN_TOKEN", "tok", config.secrets_dir)
    again = loads(CONFIG, tmp_path / "providers.yaml", environ={})
    assert again.provider("qwen").missing_secrets == ()  # type: ignore[union-attr]
    assert "tok" not in str(again.redacted())
