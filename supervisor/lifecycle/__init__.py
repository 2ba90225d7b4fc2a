"""Running the providers: the Supervisor, one provider's state machine, probes and restarts.

    manager.py   :class:`Supervisor`, the live :class:`~supervisor.view.ProviderView`
    states.py    the transition table, the one ``transition()``, the one status-row builder
    runtime.py   one provider: install, spawn, probe, restart
    external.py  :class:`ExternalView`: providers something else runs, only probed
    probe.py     startup, readiness and liveness probes
    backoff.py   the restart and crash-loop policy (pure, no I/O)
    watch.py     a running child: exit, liveness, the ports it listens on
"""
