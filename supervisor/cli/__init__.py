"""The ``unigw`` command line (the only package that knows click).

    commands.py  the click commands: parse flags, build the config, call one function, map
                 errors to exit codes
    output.py    status tables and other human-readable output
    live.py      progress on a terminal: one live line per provider, then a summary (rich)
    progress.py  the words of that view: a progress line's step, the summary line
    client.py    the HTTP client of a running instance's control routes
    instance.py  the record of the running instance (pid, URL) in the state folder
    checks.py    ``unigw check``: toolchains, ports, secrets
    request_log.py  ``unigw requests``: the request log (registers itself on the group)
"""

from supervisor.cli import request_log  # noqa: F401  (registers `unigw requests`)
from supervisor.cli.commands import cli, main

__all__ = ["cli", "main"]
