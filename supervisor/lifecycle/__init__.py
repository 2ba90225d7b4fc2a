"""Running the providers: the Supervisor, one provider's state machine, probes and restarts.

    manager.py   :class:`Supervisor`, the live :class:`~supervisor.view.ProviderView`
    runtime.py   one provider: install, spawn, probe, the transition table
    probe.py     startup, readiness and liveness probes
    backoff.py   the restart and crash-loop policy (pure, no I/O)
    watch.py     a running child: exit, liveness, the ports it listens on
"""
