"""HTTPS connections on which a request, whole, takes at most the timeout.

A socket's timeout bounds each wait for bytes, so a peer that answers one byte at a time,
each within the timeout, keeps a client reading for as long as it likes (a 1 MiB answer at a
byte a second: twelve days). Here each request gets a deadline when it starts: sending it
and every read of its answer wait at most for what is left of it, and once it has passed
they fail as a timeout does. A new connection connects to each of the host's addresses
within the timeout, as http.client does (an address that drops packets, a broken IPv6
route, must not leave no time for the next); the deadline then runs from the connection,
and covers the TLS handshake (CPython bounds a whole handshake call by the socket's
timeout) and the first request. Resolving the host name is not bounded. An answer is also
bounded in size as received (ANSWER_BYTES).
"""

from __future__ import annotations

import contextlib
import http.client
import io
import socket
import time
from functools import partial
from typing import Any

# bytes of one answer as received, headers and framing included: past this a peer is not
# answering a request. A bound below the readers' own, which may never see the bytes: given a
# negative chunk size, http.client reads to the end of the stream in one read (2 GiB in 4 s
# from a local peer).
ANSWER_BYTES = 640 << 20


class AnswerTooLarge(OSError):
    """An answer past ANSWER_BYTES."""


class _AnswerReader(io.RawIOBase):
    """The reading side of a DeadlineSocket, as `socket.makefile("rb")` gives it."""

    def __init__(self, owner: DeadlineSocket):
        super().__init__()
        self._owner = owner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        """At most one receive, waiting no longer than the request's deadline allows."""
        owner = self._owner
        owner.sock.settimeout(owner.remaining())
        received = owner.sock.recv_into(buffer)
        owner.received += received
        if owner.received > ANSWER_BYTES:
            raise AnswerTooLarge(f"the answer is larger than {ANSWER_BYTES >> 20} MiB")
        return received

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
        self.received = 0  # bytes of the current request's answer so far
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


class _RequestDeadlines:
    """What makes an HTTP connection's every request take at most `_seconds()`, whole: the
    deadline runs from the request's start, or, for a connection made for the request (or
    made just before it, as pyVmomi and urllib3 do), from the TCP connection, so that the
    handshake counts too. Mixed into http.client connections (urllib3's are some)."""

    _deadline: float | None = None
    _requesting = False  # from putrequest to getresponse
    _opened_idle = False  # connected outside a request: the next request keeps its deadline
    sock: Any

    def _seconds(self) -> float | None:
        """The bound of each request, or None for none."""
        raise NotImplementedError

    def putrequest(self, method: str, url: str, *args: Any, **kwargs: Any) -> None:
        """Start a request: its deadline runs from here (on a kept-alive connection too), or
        from the connection made for it."""
        self._requesting = True
        seconds = self._seconds()
        if seconds is not None:
            if self._opened_idle:
                self._opened_idle = False
            else:
                self._deadline = time.monotonic() + seconds
                if isinstance(self.sock, DeadlineSocket):
                    self.sock.deadline = self._deadline
                    self.sock.received = 0
        super().putrequest(method, url, *args, **kwargs)  # type: ignore[misc]

    def _connected(self) -> None:
        """Stamp the deadline (on the TCP connection, before any handshake)."""
        seconds = self._seconds()
        if seconds is not None:
            self._deadline = time.monotonic() + seconds

    def _wrap(self, idle: bool) -> None:
        """Put the connected socket under the deadline."""
        seconds = self._seconds()
        if seconds is not None and self.sock is not None and self._deadline is not None:
            self.sock = DeadlineSocket(self.sock, seconds, self._deadline)
            self._opened_idle = idle

    def close(self) -> None:
        """Close the connection; a request cut short leaves nothing behind."""
        self._requesting = self._opened_idle = False
        super().close()  # type: ignore[misc]

    def getresponse(self) -> Any:
        """The answer to the request sent (read within its deadline)."""
        self._requesting = False
        return super().getresponse()  # type: ignore[misc]

    def check_deadline(self) -> None:
        """TimeoutError once the last request's deadline has passed. The socket checks it at
        each receive; a reader that does more with each receive (inflating, parsing) checks
        it between its own reads too."""
        self.request_time_left()

    def request_time_left(self) -> float | None:
        """Seconds left of the current request (None: no deadline); TimeoutError once it has
        passed."""
        if self._deadline is None:
            return None
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the answer took longer than {self._seconds():g} s")
        return left


class DeadlineHTTPSConnection(_RequestDeadlines, http.client.HTTPSConnection):
    """http.client's HTTPS connection, each request of which (sending it and reading all of
    its answer; with the TLS handshake, for the first on a new connection) takes at most
    `timeout` seconds; with no timeout, as http.client's."""

    def _seconds(self) -> float | None:
        return self.timeout if isinstance(self.timeout, (int, float)) else None

    # the address and port connected to, as the peer gives them: which server answered,
    # whatever name it was reached by
    peer: tuple[str, int] | None = None

    def connect(self) -> None:
        """Connect (each address within the timeout), then shake hands within the timeout."""
        if self._seconds() is None:
            super().connect()
        else:
            idle = not self._requesting
            self._create_connection = partial(_connect, self)
            super().connect()
            self._wrap(idle)
        with contextlib.suppress(OSError, AttributeError):
            self.peer = tuple(underlying_socket(self.sock).getpeername()[:2])  # type: ignore[assignment]


def _connect(connection: DeadlineHTTPSConnection, address: tuple[str, int], timeout: float,
             source_address: Any = None) -> socket.socket:
    """http.client's connect; the connection's deadline then runs from here."""
    sock = socket.create_connection(address, timeout, source_address)
    connection._connected()
    return sock


def deadline_session(seconds: float) -> Any:
    """A requests Session (for azure-core's RequestsTransport, which mounts nothing on a
    session it is given) whose every HTTP(S) request takes at most `seconds`, whole: the
    transport's timeouts bound each wait, so a peer that trickles bytes would otherwise
    keep a request going for as long as it likes. urllib3 retries nothing itself (azure-core
    retries), as the adapter azure-core mounts on a session of its own."""
    import requests
    from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.util.retry import Retry

    def bounded(base: type) -> type:
        class Bounded(_RequestDeadlines, base):  # type: ignore[valid-type, misc]
            def _seconds(self) -> float | None:
                return seconds

            def _new_conn(self) -> socket.socket:
                sock = super()._new_conn()
                self._connected()
                # the TLS handshake is the request's, as on http.client's connections: urllib3
                # would bound it by the connect timeout, a cap the message would not name
                sock.settimeout(seconds)
                return sock

            def connect(self) -> None:
                idle = not self._requesting
                super().connect()
                self._wrap(idle)

            def _connect_tls_proxy(self, hostname: str, sock: Any) -> Any:
                # through an https:// proxy the endpoint's TLS runs inside the proxy's (urllib3's
                # SSLTransport), one record a wait: each wait within the request's deadline
                return _DeadlineTunnel(super()._connect_tls_proxy(hostname, sock), self)

            def _tunnel(self) -> None:
                # a proxy's answer to CONNECT is read within the request's deadline too: a
                # proxy that trickles it (a header line at a time) would otherwise keep the
                # request going for as long as it likes, each wait within the timeout
                tunnelled = self.sock
                if self._deadline is not None:
                    self.sock = DeadlineSocket(tunnelled, seconds, self._deadline)
                try:
                    super()._tunnel()
                finally:
                    if self.sock is not None:  # None: closed on a refusal
                        self.sock = tunnelled

        return Bounded

    pools = {"http": type("BoundedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": bounded(HTTPConnection)}),
             "https": type("BoundedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": bounded(HTTPSConnection)})}

    class BoundedAdapter(requests.adapters.HTTPAdapter):
        """Connection pools of bounded connections, direct or through a proxy; answers
        counted as they are decoded."""

        def build_response(self, req: Any, resp: Any) -> Any:
            response = super().build_response(req, resp)
            response.raw = _DecodedCount(response.raw)
            return response

        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = pools

        def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
            manager = super().proxy_manager_for(proxy, **kwargs)
            if not proxy.lower().startswith("socks"):  # SOCKS has pools of its own
                manager.pool_classes_by_scheme = pools
            return manager

    session = requests.Session()
    adapter = BoundedAdapter(max_retries=Retry(total=False, redirect=False, raise_on_status=False))
    for prefix in ("http://", "https://"):
        session.mount(prefix, adapter)
    return session


class _DeadlineTunnel:
    """The TLS socket to an https:// proxy, inside which the endpoint's TLS runs: each
    receive and send waits no longer than the connection's current request allows (its
    deadline is read at each, so a kept-alive connection's next request has its own)."""

    def __init__(self, sock: Any, connection: Any):
        self._sock = sock
        self._connection = connection

    def _bound(self) -> None:
        left = self._connection.request_time_left()
        if left is not None:
            self._sock.settimeout(left)

    def recv(self, *args: Any) -> bytes:
        """A receive within the deadline."""
        self._bound()
        return self._sock.recv(*args)

    def recv_into(self, *args: Any) -> int:
        """A receive within the deadline."""
        self._bound()
        return self._sock.recv_into(*args)

    def sendall(self, *args: Any) -> None:
        """A send within the deadline."""
        self._bound()
        self._sock.sendall(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _DecodedCount:
    """urllib3's answer as requests reads it, decoded (gzip, deflate, ...), counted: past
    ANSWER_BYTES, AnswerTooLarge. A 1 MB gzip bomb is 1 GiB decoded, which requests would
    gather whole (6 GB of memory within a 60 s timeout)."""

    def __init__(self, raw: Any):
        self._raw = raw
        self._decoded = 0

    def stream(self, amount: int = 1 << 16, decode_content: Any = None) -> Any:
        """urllib3's stream, counted."""
        for piece in self._raw.stream(amount, decode_content=decode_content):
            yield self._counted(piece)

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        """urllib3's read, counted."""
        return self._counted(self._raw.read(*args, **kwargs))

    def _counted(self, piece: bytes) -> bytes:
        self._decoded += len(piece)
        if self._decoded > ANSWER_BYTES:
            raise AnswerTooLarge(f"the answer is larger than {ANSWER_BYTES >> 20} MiB")
        return piece

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:  # azure-core sets enforce_content_length on urllib3's response
            setattr(self._raw, name, value)


def deadline_check(connection: Any) -> Any:
    """`connection`'s check_deadline; for a connection without a deadline, a check that
    never fails."""
    check = getattr(connection, "check_deadline", None)
    return check if check is not None else _no_deadline


def _no_deadline() -> None:
    pass
