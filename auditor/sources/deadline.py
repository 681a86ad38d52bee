"""HTTPS connections on which a request, whole, takes at most the timeout.

A socket's timeout bounds each wait for bytes, so a peer that answers one byte at a time,
each within the timeout, keeps a client reading for as long as it likes (a 1 MiB answer at a
byte a second: twelve days). Here each request gets a deadline when it starts: connecting
(when the connection is new), the TLS handshake, sending the request and every read of its
answer wait at most for what is left of it, and once it has passed the read fails as a
timeout does. (CPython bounds a whole connect or handshake call, not each of its waits, by
the socket's timeout.)
"""

from __future__ import annotations

import http.client
import io
import socket
import time
from typing import Any


class _AnswerReader(io.RawIOBase):
    """The reading side of a DeadlineSocket, as `socket.makefile("rb")` gives it."""

    def __init__(self, owner: DeadlineSocket):
        super().__init__()
        self._owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        """At most one receive, waiting no longer than the request's deadline allows."""
        sock = self._owner.sock
        sock.settimeout(self._owner.remaining())
        return sock.recv_into(buffer)


class DeadlineSocket:
    """A connected socket whose sends and reads wait no longer than `deadline` (a
    time.monotonic() value, set per request) allows; anything else is the socket's own."""

    def __init__(self, sock: socket.socket, timeout: float, deadline: float):
        self.sock = sock
        self.timeout = timeout
        self.deadline = deadline

    def remaining(self) -> float:
        """Seconds left before the deadline; TimeoutError once it has passed."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the answer took longer than {self.timeout:g} s")
        return left

    def sendall(self, data: Any) -> None:
        """Send `data` (a socket's sendall is bounded, whole, by its timeout)."""
        self.sock.settimeout(self.remaining())
        self.sock.sendall(data)

    def makefile(self, mode: str = "r", buffering: int | None = None, **_: Any) -> Any:
        """A buffered reader of answers (http.client reads answers through one)."""
        if mode not in ("r", "rb"):
            raise ValueError(f"a deadline socket is read, not opened as {mode!r}")
        return io.BufferedReader(_AnswerReader(self), buffering if buffering and buffering > 0
                                 else io.DEFAULT_BUFFER_SIZE)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def underlying_socket(sock: Any) -> Any:
    """The socket itself, under a DeadlineSocket if it is one."""
    return sock.sock if isinstance(sock, DeadlineSocket) else sock


class DeadlineHTTPSConnection(http.client.HTTPSConnection):
    """http.client's HTTPS connection, each request of which (connecting if it must, sending
    the request and reading all of its answer) takes at most `timeout` seconds; with no
    timeout, as http.client's."""

    _deadline: float | None = None

    def putrequest(self, method: str, url: str, *args: Any, **kwargs: Any) -> None:
        """Start a request: its deadline runs from here (on a kept-alive connection too)."""
        if isinstance(self.timeout, (int, float)):
            self._deadline = time.monotonic() + self.timeout
            if isinstance(self.sock, DeadlineSocket):
                self.sock.deadline = self._deadline
        super().putrequest(method, url, *args, **kwargs)

    def connect(self) -> None:
        """Connect and shake hands within what is left of the request's time."""
        timeout = self.timeout
        if not isinstance(timeout, (int, float)):
            super().connect()
            return
        deadline = self._deadline if self._deadline is not None else time.monotonic() + timeout
        self.timeout = max(deadline - time.monotonic(), 1e-3)  # create_connection's, and so the handshake's
        try:
            super().connect()
        finally:
            self.timeout = timeout
        self.sock = DeadlineSocket(self.sock, timeout, deadline)  # type: ignore[assignment]
