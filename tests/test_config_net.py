"""``supervisor.config.is_loopback``: the one loopback check of the gateway and the supervisor."""

from __future__ import annotations

import pytest

from supervisor.config import is_loopback


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]",
                                  "::1%lo", "::ffff:127.0.0.1"])
def test_loopback_addresses_are_loopback(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.10", "[2001:db8::1]",
                                  "::ffff:10.0.0.1", "example.com", "localhost.evil"])
def test_other_addresses_and_names_are_not(host: str) -> None:
    assert not is_loopback(host)
