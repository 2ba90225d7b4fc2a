"""``files:`` in providers.yaml: secret files for a provider's private HOME, checked at load,
resolved like ``env``, redacted on display, and a home of its own per instance."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from supervisor.config import ConfigError, load
from supervisor.install import runspec

TOKEN_PATH = ".local/share/copilot-api/github_token"


def write(tmp_path: Path, **fields: Any) -> Path:
    entry = {"name": "cp", "port": 9001, "runtime": "python", "start": ["x"], **fields}
    path = tmp_path / "providers.yaml"
    path.write_text(yaml.safe_dump({"providers": [entry]}))
    return path


def problems(tmp_path: Path, **fields: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, **fields), environ={})
    return info.value.problems


@pytest.mark.parametrize(("files", "expected"), [
    ([TOKEN_PATH], "providers.yaml: providers[0] (cp): files: must be a mapping, got a list"),
    ("token", "providers.yaml: providers[0] (cp): files: must be a mapping, got a string"),
    ({"/etc/passwd": "x"}, "providers.yaml: providers[0] (cp): files: '/etc/passwd': must be a "
                           "file path inside the provider's private home (relative, no '..')"),
    ({".local/../../escape": "x"}, "providers.yaml: providers[0] (cp): files: "
                                   "'.local/../../escape': must be a file path inside"),
    ({"..": "x"}, "providers.yaml: providers[0] (cp): files: '..': must be a file path inside"),
    ({".": "x"}, "providers.yaml: providers[0] (cp): files: '.': must be a file path inside"),
    ({TOKEN_PATH: ["a"]}, f"providers.yaml: providers[0] (cp): files: '{TOKEN_PATH}': must be a "
                          "string, got a list"),
])
def test_a_bad_files_field_is_refused_naming_file_provider_and_field(
        tmp_path: Path, files: Any, expected: str) -> None:
    found = problems(tmp_path, files=files)
    assert any(p.startswith(expected) for p in found), found


def test_files_are_not_used_with_url(tmp_path: Path) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text(yaml.safe_dump({"providers": [
        {"name": "far", "url": "http://10.0.0.9:8000", "files": {"t": "x"}}]}))
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    assert "providers.yaml: providers[0] (far): files: not used with url" in str(info.value)


def test_a_file_secret_resolves_like_env_and_is_redacted_and_scrubbed(tmp_path: Path) -> None:
    path = write(tmp_path, files={TOKEN_PATH: "${CP_TOKEN}", "settings.json": '{"a": 1}'})
    (tmp_path / ".env").write_text("CP_TOKEN=ghu_0123456789abcdef\n")
    config = load(path, environ={})
    p = config.providers[0]
    assert p.files == {TOKEN_PATH: "ghu_0123456789abcdef", "settings.json": '{"a": 1}'}
    assert p.secret_names == ("CP_TOKEN",) and config.needing("CP_TOKEN") == ["cp"]
    assert "ghu_0123456789abcdef" in p.secret_values()  # what the log scrubber takes out
    shown = config.redacted()["providers"][0]
    assert shown["files"] == {TOKEN_PATH: "***", "settings.json": '{"a": 1}'}
    assert "ghu_0123456789abcdef" not in repr(config.redacted())


def test_a_missing_file_secret_is_a_missing_secret_and_an_optional_one_is_empty(
        tmp_path: Path) -> None:
    config = load(write(tmp_path, files={TOKEN_PATH: "${CP_TOKEN}"}), environ={})
    assert config.providers[0].missing_secrets == ("CP_TOKEN",)
    config = load(write(tmp_path, files={TOKEN_PATH: "${CP_TOKEN:-}"}), environ={})
    p = config.providers[0]
    assert p.missing_secrets == () and p.files == {TOKEN_PATH: ""}
    assert p.secret_names == ("CP_TOKEN",)  # secret list still names it


def test_each_instance_gets_its_own_home_and_its_own_secret(tmp_path: Path) -> None:
    path = write(tmp_path, files={TOKEN_PATH: "${CP_TOKEN}"},
                 instances=[{}, {"secrets": {"CP_TOKEN": "CP_TOKEN_2"}}])
    config = load(path, environ={"CP_TOKEN": "first-account", "CP_TOKEN_2": "second-account"})
    one, two = config.providers
    assert (one.files[TOKEN_PATH], two.files[TOKEN_PATH]) == ("first-account", "second-account")
    homes = [runspec.build(p, config, None, config.state_dir, config.apis_dir).home
             for p in config.providers]
    assert homes == [config.state_dir / "homes" / "cp#1", config.state_dir / "homes" / "cp#2"]


def test_the_private_home_is_for_running_not_for_install_steps(tmp_path: Path) -> None:
    config = load(write(tmp_path, files={TOKEN_PATH: "x"}, repo="file:///nowhere", ref="abc"),
                  environ={})
    spec = runspec.build(config.providers[0], config, None, config.state_dir, config.apis_dir)
    home = config.state_dir / "homes" / "cp"
    run = spec.env(run=True)
    assert run["HOME"] == str(home)
    assert run["XDG_DATA_HOME"] == str(home / ".local" / "share")
    assert run["XDG_CONFIG_HOME"] == str(home / ".config")
    assert spec.env(run=False).get("HOME") == os.environ.get("HOME")  # npm keeps its caches


def test_a_provider_without_files_keeps_the_users_home(tmp_path: Path) -> None:
    config = load(write(tmp_path), environ={})
    spec = runspec.build(config.providers[0], config, None, config.state_dir, config.apis_dir)
    assert spec.home is None
    assert spec.env(run=True).get("HOME") == os.environ.get("HOME")
