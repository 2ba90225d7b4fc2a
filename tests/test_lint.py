"""ruff and mypy over the whole tree, as part of the one test command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing() -> None:
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_finds_nothing() -> None:
    out = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_no_file_holds_a_merge_conflict_marker() -> None:
    # ruff and mypy see only Python; a README or a script can keep both sides of a merge
    marker = re.compile(r"^(<{7} |>{7} |={7}$)", re.M)
    left = [str(path.relative_to(ROOT)) for path in _tracked()
            if marker.search(path.read_text(encoding="utf-8", errors="replace"))]
    assert left == []


def _tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    names = [n for n in out.stdout.decode().split("\0") if n]
    return [p for p in (ROOT / n for n in names) if p.is_file() and p.stat().st_size < 1 << 20]
