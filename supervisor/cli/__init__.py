"""The ``unigw`` command line (the only package that knows click).

    app.py           the group and what every command shares: ExitCode, the one way to fail,
                     loading the config, the options, calling the running instance
    run_cmds.py      up, demo, gateway, down
    control_cmds.py  status, start/stop/restart, logs, strategy, test
    requests_cmds.py requests: the request log
    setup_cmds.py    install, check
    secret_cmds.py   secret set / secret list
    export_cmds.py   export kubernetes
    commands.py      gathers the command modules; main()
    output.py        status tables and other human-readable output
    live.py          progress on a terminal: one live line per provider, then a summary (rich)
    progress.py      the words of that view: a progress line's step, the summary line
    client.py        the HTTP client of a running instance's control routes
    checks.py        ``unigw check``: toolchains, ports, secrets
    canary.py        ``unigw test``: one canary per provider through ``POST /v1/test``
    k8s_manifests.py ``unigw export kubernetes``: the objects, as dicts, and their YAML
    k8s_configs.py   the providers.yaml each of those pods reads, and its secret references
"""

from supervisor.cli.commands import cli, main

__all__ = ["cli", "main"]
