"""HTTPS connections on which a request, whole, takes at most the timeout.

A socket's timeout bounds each wait for bytes, so a peer that answers one byte at a time,
each within the timeout, keeps a client reading for as long as it likes (a 1 MiB answer at a
byte a second: twelve days). Here each request gets a deadline when it starts: sending it
and every read of its answer wait at most for what is left of it, and once it has passed
they fail as a timeout does. A new connection connects to each of the host's addresses
within the timeout, as http.client does (an address that drops packets, a broken IPv6
route, must not leave no time for the next); the deadline then runs from the connection,
and covers the TLS handshake (CPython bounds a whole handshake call by the socket's
timeout) and the first request. Resolving the host name is not bounded.
"""

from __future__ import annotations

import http.client
import io
import socket
import time
from functools import partial
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

    def close(self) -> None:
        if not self.closed:
            self._owner.reader_closed()
        super().close()


class DeadlineSocket:
    """A connected socket whose sends and reads wait no longer than `deadline` (a
    time.monotonic() value, set per request) allows; anything else is the socket's own."""

    def __init__(self, sock: socket.socket, timeout: float, deadline: float):
        self.sock = sock
        self.timeout = timeout
        self.deadline = deadline
        # as a socket does for its makefile() readers: closed only once the last reader is,
        # since http.client closes the connection before the answer of a `Connection:
        # close` is read
        self._readers = 0
        self._closing = False

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
        self._readers += 1
        return io.BufferedReader(_AnswerReader(self), buffering if buffering and buffering > 0
                                 else io.DEFAULT_BUFFER_SIZE)

    def reader_closed(self) -> None:
        """A reader of answers is done: the socket closes if it was closed meanwhile."""
        self._readers -= 1
        if self._closing and not self._readers:
            self.sock.close()

    def close(self) -> None:
        """Close the socket, or once its last reader of answers is closed."""
        if self._readers:
            self._closing = True
        else:
            self.sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def underlying_socket(sock: Any) -> Any:
    """The socket itself, under a DeadlineSocket if it is one."""
    return sock.sock if isinstance(sock, DeadlineSocket) else sock


class DeadlineHTTPSConnection(http.client.HTTPSConnection):
    """http.client's HTTPS connection, each request of which (sending it and reading all of
    its answer; with the TLS handshake, for the first on a new connection) takes at most
    `timeout` seconds; with no timeout, as http.client's."""

    _deadline: float | None = None
    _requesting = False  # from putrequest to getresponse
    _opened_idle = False  # connected outside a request (pyVmomi connects first): keep its deadline

    def putrequest(self, method: str, url: str, *args: Any, **kwargs: Any) -> None:
        """Start a request: its deadline runs from here (on a kept-alive connection too), or
        from the connection made for it."""
        self._requesting = True
        if isinstance(self.timeout, (int, float)):
            if self._opened_idle:
                self._opened_idle = False
            else:
                self._deadline = time.monotonic() + self.timeout
                if isinstance(self.sock, DeadlineSocket):
                    self.sock.deadline = self._deadline
        super().putrequest(method, url, *args, **kwargs)

    def connect(self) -> None:
        """Connect (each address within the timeout), then shake hands within the timeout."""
        timeout = self.timeout
        if not isinstance(timeout, (int, float)):
            super().connect()
            return
        idle = not self._requesting
        self._create_connection = partial(_connect, self)
        super().connect()
        assert self._deadline is not None  # set by _connect
        self.sock = DeadlineSocket(self.sock, timeout, self._deadline)  # type: ignore[assignment]
        self._opened_idle = idle

    def close(self) -> None:
        """Close the connection; a request cut short leaves nothing behind."""
        self._requesting = self._opened_idle = False
        super().close()

    def getresponse(self) -> http.client.HTTPResponse:
        """The answer to the request sent (read within its deadline)."""
        self._requesting = False
        return super().getresponse()

    def check_deadline(self) -> None:
        """TimeoutError once the last request's deadline has passed. The socket checks it at
        each receive; a reader that does more with each receive (inflating, parsing) checks
        it between its own reads too."""
        if self._deadline is not None and time.monotonic() >= self._deadline:
            raise TimeoutError(f"the answer took longer than {self.timeout:g} s")


def deadline_check(connection: Any) -> Any:
    """`connection`'s check_deadline; for a connection without a deadline, a check that
    never fails."""
    check = getattr(connection, "check_deadline", None)
    return check if check is not None else _no_deadline


def _no_deadline() -> None:
    pass


def _connect(connection: DeadlineHTTPSConnection, address: tuple[str, int], timeout: float,
             source_address: Any = None) -> socket.socket:
    """http.client's connect; the connection's deadline then runs from here."""
    sock = socket.create_connection(address, timeout, source_address)
    connection._deadline = time.monotonic() + timeout
    return sock
