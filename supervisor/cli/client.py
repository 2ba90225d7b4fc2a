"""The control commands' way to the running instance: its gateway's HTTP control routes."""

from __future__ import annotations

from typing import Any

import httpx

from supervisor.config import Config
from supervisor.proc.instance import running

#: A header a cross-site form cannot send; the gateway requires it on control routes.
CLIENT_HEADER = {"X-Unigw-Client": "cli"}


class NotRunning(Exception):
    """No unigw instance answers; the message says where it looked."""


class ControlError(Exception):
    """The instance answered with an error; the message is the gateway's."""


class InstanceClient:
    """Talks to the gateway of the instance recorded in the config's state folder."""

    def __init__(self, config: Config, timeout: float = 10.0) -> None:
        inst = running(config.state_dir)
        gw = config.gateway
        host = "127.0.0.1" if gw.host in ("0.0.0.0", "::") else gw.host
        self.url = inst.url if inst else f"http://{host}:{gw.port}"
        # with no instance recorded, a providers.yaml still says where its gateway listens (one
        # that something else runs); the built-in demo's fallback says nothing of which demo
        # is meant, so it only finds one recorded here (as `unigw down` does)
        self._nowhere = None if inst or config.path.exists() else (
            f"unigw is not running (no live instance recorded in {config.state_dir}; run this "
            "in the folder unigw was started from, or pass -c its providers.yaml)")
        headers = dict(CLIENT_HEADER)
        if gw.admin_key:
            headers["Authorization"] = f"Bearer {gw.admin_key}"
        # the API routes (/v1/…: `unigw test`'s canary) take a gateway key, not the admin key
        self._api_auth = {"Authorization": f"Bearer {gw.api_keys[0]}"} if gw.api_keys else None
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def request(self, method: str, path: str, **kw: Any) -> Any:
        """One call; returns the JSON answer or raises NotRunning / ControlError."""
        if self._nowhere is not None:
            raise NotRunning(self._nowhere)
        if self._api_auth is not None and path.startswith("/v1/"):
            kw["headers"] = {**self._api_auth, **kw.get("headers", {})}
        try:
            resp = self._http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise NotRunning(
                f"unigw is not running (no gateway answers at {self.url}: {exc})"
            ) from None
        try:
            data = resp.json()
        except ValueError:  # every answer of unigw's is JSON: this is something else
            kind = resp.headers.get("content-type", "no content type").split(";")[0]
            raise ControlError(f"something that is not unigw answers at {self.url} "
                               f"(HTTP {resp.status_code}, {kind})") from None
        if resp.status_code >= 400:
            err = data.get("error") if isinstance(data, dict) else None
            msg = err.get("message") if isinstance(err, dict) else str(data)
            raise ControlError(f"{msg} (HTTP {resp.status_code})")
        return data

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Any:
        return self.request("PUT", path, **kw)

    def close(self) -> None:
        self._http.close()
