"""scripts/test, README.md's test command, run from a fresh virtual environment.

The venv starts with pip alone (no ``--system-site-packages``), so a missing install step cannot
hide behind what this environment already has. About 90 s on 2 cores, nearly all of it pip.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "test"
SUBSET = ["tests/test_config.py", "tests/test_strategies.py", "-q", "-p", "no:cacheprovider"]


def venv_env(venv: Path) -> dict[str, str]:
    """This environment with the venv first on PATH and nothing pointing back at the outer run."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME") and not key.startswith("PYTEST_")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_script(venv: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """``scripts/test SUBSET`` as README.md runs it: by its shebang, from the checkout."""
    return subprocess.run([str(SCRIPT), *SUBSET], cwd=ROOT, env=venv_env(venv), text=True,
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=timeout)


def passed(stdout: str) -> int:
    """How many tests pytest's closing line says passed (0 when none or any failed)."""
    closing = re.fullmatch(r"(\d+) passed in [\d.]+s", stdout.splitlines()[-1])
    return int(closing.group(1)) if closing else 0


def venv_python(venv: Path, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / "python"), "-c", code], env=venv_env(venv),
                          text=True, capture_output=True, timeout=60)


@pytest.mark.timeout(900)
def test_scripts_test_installs_into_a_fresh_venv_then_installs_nothing(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    assert venv_python(venv, "import pytest").returncode != 0  # nothing of the test extra yet

    first = run_script(venv, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"installing unigw[test] editable from {ROOT}" in first.stderr
    assert passed(first.stdout) > 0
    where = venv_python(venv, "import supervisor, sys; print(supervisor.__file__, sys.prefix)")
    module, prefix = where.stdout.split()
    assert Path(module).is_relative_to(ROOT) and Path(prefix) == venv

    second = run_script(venv, timeout=120)
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stderr.splitlines() == [
        f"scripts/test: everything is installed (unigw[test] editable from {ROOT}, chromium, git, node, npm); running pytest"
    ]
    assert passed(second.stdout) == passed(first.stdout) > 0
