"""A hostile provider: a raw TCP server that answers chat requests with scripted bytes.

    with RawServer(lambda conn, req: [b"HTTP/1.1 200 OK\\r\\nContent-Length: 100\\r\\n\\r\\n",
                                      0.2, RESET]) as raw:
        ...  # point a client at raw.port

A script is a list of steps run after a chat request (any POST) was read: ``bytes`` are sent,
a ``float`` is a pause in seconds, :data:`CLOSE` closes the socket, :data:`RESET` resets it
(SO_LINGER 0, so the peer gets an RST), an :class:`Endless` sends one piece again and again.
After the script the server reads on: the next request, or the end of the connection, which it
records, so a test can tell whether the client closed a connection or left it open. Any GET
(health probe, model list) gets a small JSON answer and ``Connection: close``.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

CLOSE = "close"
RESET = "reset"
MODELS = b'{"object":"list","data":[{"id":"echo-1","object":"model"}]}'


@dataclass(frozen=True)
class Endless:
    """Send ``piece`` every ``pause`` seconds until the peer goes away (or ``limit`` bytes)."""

    piece: bytes
    pause: float = 0.0
    limit: int | None = None


Step = bytes | float | str | Endless
Script = Callable[[int, int], list[Step]]  # (connection index, request index on it) -> steps


@dataclass
class Conn:
    """One accepted connection: chat requests read on it, and how it ended."""

    chat_requests: int = 0
    ended: threading.Event = field(default_factory=threading.Event)
    ended_by: str = ""  # "peer" (the client closed or reset it) or "server"


def answer(status: int, body: bytes, *, content_type: str = "application/json",
           close: bool = False) -> bytes:
    """A well-formed HTTP/1.1 answer with a Content-Length."""
    head = (f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n" + ("Connection: close\r\n" if close else ""))
    return head.encode() + b"\r\n" + body


class RawServer:
    """See the module docstring; ``script`` may be replaced between calls."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.conns: list[Conn] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def chat_conns(self) -> list[Conn]:
        return [c for c in self.conns if c.chat_requests]

    def wait_all_ended(self, timeout: float = 10.0) -> bool:
        """True once every connection that carried a chat request has ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(c.ended.is_set() for c in self.chat_conns()):
                return True
            time.sleep(0.02)
        return False

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self._socks.append(sock)
            conn = Conn()
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(sock, conn, len(self.conns) - 1),
                             daemon=True).start()

    def _serve(self, sock: socket.socket, conn: Conn, index: int) -> None:
        buf = b""
        try:
            while True:
                request, buf = _read_request(sock, buf)
                if request is None:
                    conn.ended_by = "peer"
                    return
                if request.startswith(b"GET "):
                    sock.sendall(answer(200, MODELS, close=True))
                    conn.ended_by = "server"
                    return
                conn.chat_requests += 1
                if self._run(sock, self.script(index, conn.chat_requests - 1)):
                    conn.ended_by = "server"
                    return
        except OSError:
            conn.ended_by = conn.ended_by or "peer"
        finally:
            conn.ended.set()
            sock.close()

    @staticmethod
    def _run(sock: socket.socket, steps: list[Step]) -> bool:
        """Run a script; True if it ended the connection."""
        for step in steps:
            if isinstance(step, bytes):
                sock.sendall(step)
            elif isinstance(step, float):
                time.sleep(step)
            elif isinstance(step, Endless):
                sent = 0
                while step.limit is None or sent < step.limit:
                    sock.sendall(step.piece)
                    sent += len(step.piece)
                    if step.pause:
                        time.sleep(step.pause)
            elif step == RESET:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return True
            elif step == CLOSE:
                sock.shutdown(socket.SHUT_RDWR)
                return True
        return False

    def close(self) -> None:
        self._listener.close()
        for sock in self._socks:
            try:
                sock.close()
            except OSError:
                pass

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_request(sock: socket.socket, buf: bytes) -> tuple[bytes | None, bytes]:
    """One request (head and Content-Length body) and what followed it; None at EOF."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return None, b""
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        data = sock.recv(65536)
        if not data:
            return None, b""
        rest += data
    return head + b"\r\n\r\n" + rest[:length], rest[length:]
