"""The whole ``unigw`` command line: the group and what it shares are in
:mod:`supervisor.cli.app`; importing each command module registers its commands on the group.
"""

from __future__ import annotations

from supervisor.cli import (
    control_cmds,
    export_cmds,
    requests_cmds,
    run_cmds,
    secret_cmds,
    setup_cmds,
)
from supervisor.cli.app import DEMO_FILE, ExitCode, cli

COMMAND_MODULES = (run_cmds, control_cmds, setup_cmds, secret_cmds, requests_cmds, export_cmds)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="unigw")


__all__ = ["COMMAND_MODULES", "DEMO_FILE", "ExitCode", "cli", "main"]
