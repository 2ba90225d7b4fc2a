"""providers.yaml, parsed and validated once into frozen dataclasses.

    model.py    the dataclasses (Config, GatewayConfig, SupervisorConfig, ProviderConfig)
    load.py     load/loads: the file to a Config, every problem at once (file, provider, field)
    schema.py   the fields each section takes and their types
    checks.py   cross-field checks (ports, references between sections)
    secrets.py  ``${NAME}`` references, read from the environment and ``.env``
    net.py      ``is_loopback(host)``: whether an address is this machine only
    ready.py    ``ready_when``: a status class and an optional condition on the probe's JSON
    remote.py   ``url:`` providers something else runs (``kind: unigw``: another unigw)

Everything outside this package imports from ``supervisor.config`` itself.
"""

from supervisor.config.load import load, loads
from supervisor.config.model import (
    REDACTED,
    Config,
    ConfigError,
    GatewayConfig,
    ProviderConfig,
    SupervisorConfig,
)
from supervisor.config.net import is_loopback
from supervisor.config.ready import JsonCondition, ReadyWhen
from supervisor.config.remote import Address

__all__ = ["REDACTED", "Address", "Config", "ConfigError", "GatewayConfig", "JsonCondition",
           "ProviderConfig", "ReadyWhen", "SupervisorConfig", "is_loopback", "load", "loads"]
