"""An HTTP request's ASGI scope as uvicorn builds it, for tests that call the gateway app in
process."""

from __future__ import annotations

import urllib.parse
from typing import Any


def http_scope(method: str, path: str, port: int, headers: list[tuple[bytes, bytes]],
               query: bytes = b"") -> dict[str, Any]:
    """The scope of ``method path?query`` to 127.0.0.1:``port`` (the path percent-decoded, as
    uvicorn gives it; ``headers`` as they came, a Host among them or not)."""
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": urllib.parse.unquote(path),
            "raw_path": path.encode(), "query_string": query, "root_path": "",
            "headers": headers, "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", port), "state": {}}
