"""The dependency direction, pinned by reading every module's imports (``ast``, lazy ones too).

The gateway sees the supervisor only through the seam (``supervisor.view``) and the config
dataclasses; only the composition root (``supervisor.run``) imports the gateway; the demo
provider stands alone; inside the supervisor, a layer imports only the layers before it:
config ← proc ← install ← lifecycle ← run ← cli (the CLI calls the composition root); the record
of the running instance, which ``run`` writes and the CLI reads, is ``proc.instance``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["config", "proc", "install", "lifecycle", "run", "cli"]
EXCEPTIONS: set[tuple[str, str]] = set()  # none: keep it that way


def imports() -> list[tuple[str, str]]:
    """(importing module, imported module or name) for every import in supervisor/ and gateway/."""
    found = []
    for path in [*ROOT.glob("supervisor/**/*.py"), *ROOT.glob("gateway/**/*.py")]:
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found += [(module, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found += [(module, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "supervisor" or len(parts) < 2 or parts[1] not in LAYERS:
        return None  # supervisor.view (everyone's) and the demo are checked on their own
    return LAYERS.index(parts[1])


def wrong_way(src: str, dst: str) -> bool:
    top = dst.split(".")[0]
    if src.startswith("gateway"):
        return top == "supervisor" and dst.split(".")[1:2] not in (["view"], ["config"])
    if top == "gateway":
        return src != "supervisor.run"
    if src.startswith("supervisor.demo"):
        return top == "supervisor" and not dst.startswith("supervisor.demo")
    low, high = layer(dst), layer(src)
    return low is not None and high is not None and low > high and (src, dst) not in EXCEPTIONS


@pytest.mark.parametrize(("src", "dst"), [
    ("gateway.proxy", "supervisor.lifecycle.probe"), ("supervisor.lifecycle.manager", "gateway"),
    ("supervisor.demo.echo", "supervisor.config"), ("supervisor.proc.process", "supervisor.install"),
    ("supervisor.lifecycle.runtime", "supervisor.run"), ("supervisor.run", "supervisor.cli.output"),
])
def test_an_arrow_the_wrong_way_is_caught(src: str, dst: str) -> None:
    assert wrong_way(src, dst)


def test_every_import_points_down_the_layers() -> None:
    assert len(imports()) > 100  # the walk really read the tree
    assert [f"{src} -> {dst}" for src, dst in imports() if wrong_way(src, dst)] == []
