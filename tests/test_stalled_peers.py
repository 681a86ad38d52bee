"""Peers that stall: they accept the connection (and the TLS handshake), take the request,
and never answer. `--timeout` must cut them off: the source fails with one line naming the
peer and the timeout, the command exits 3 soon after the timeout, and the snapshot already
at the output path is kept byte for byte.

The peers are real: a TCP server that holds what it accepts, govmomi's vCenter simulator
that stops itself (SIGSTOP) when a chosen SOAP call arrives, and the ARM replay holding a
route unanswered. The commands run as a user runs them, in a subprocess killed after
GUARD seconds, so a collection that hangs fails its test instead of hanging the suite.
"""

from __future__ import annotations

import gzip
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests import vcsim
from tests.arm_replay import (
    CLIENT_ID,
    CLIENT_SECRET,
    TENANT,
    ArmReplay,
    Estate,
    generated_rows,
    make_certificate,
    standard_estate,
)
from tests.conftest import ROOT

pytestmark = pytest.mark.peer

TIMEOUT = 2
# the timeout, then a Python start-up and a noisy machine's margin; one more timeout would pass
# only on a quick machine, a retry of the stalled request or a hang never
BOUND = 2 * TIMEOUT + 5
GUARD = 60  # seconds: a run still going then hangs on the stalled peer
EARLIER = b'{"an": "earlier snapshot, to be kept"}\n'
PCI = "9f2c4e1a-7b3d-4c5e-8f60-a1b2c3d4e5f6"


def run_auditor(*args: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the command line; the elapsed seconds from start to exit."""
    started = time.monotonic()
    try:
        result = subprocess.run([sys.executable, "-m", "auditor", *args], capture_output=True, text=True,
                                cwd=ROOT, env=env, timeout=GUARD)
    except subprocess.TimeoutExpired:
        pytest.fail(f"auditor {' '.join(args[:2])} still running after {GUARD} s: the stalled peer hangs it",
                    pytrace=False)
    return result, time.monotonic() - started


def assert_timed_out(result: subprocess.CompletedProcess[str], elapsed: float, message: str) -> None:
    """Exit 3 within BOUND, one error line with `message`, no traceback."""
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("auditor: error")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert elapsed < BOUND, f"took {elapsed:.1f} s with --timeout {TIMEOUT}"


# -- vSphere -----------------------------------------------------------------------------


class LocalListener:
    """A TCP server on 127.0.0.1 that hands each connection to `handle` on its own thread
    and, when stopped, closes the listener and every socket it kept."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)  # closing a socket does not wake a thread blocked in accept()
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.done.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.handle(connection)

    def handle(self, connection: socket.socket) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """Close the listener and every socket kept."""
        self.done.set()
        self.thread.join(timeout=10)
        self.listener.close()
        for sock in self.sockets:
            sock.close()


class StalledPeer(LocalListener):
    """A TCP server on 127.0.0.1 that accepts and then never sends a byte; with a
    certificate it first completes the TLS handshake."""

    def __init__(self, context: ssl.SSLContext | None = None):
        self.context = context
        self.accepted = 0
        super().__init__()

    def handle(self, connection: socket.socket) -> None:
        self.accepted += 1
        if self.context is not None:
            connection.settimeout(10)  # a client that never handshakes must not block the others
            try:
                connection = self.context.wrap_socket(connection, server_side=True)
            except OSError:
                connection.close()
                return
        self.sockets.append(connection)


def server_tls(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A TLS context for a local server, and its self-signed certificate (the client's CA)."""
    cert, key = make_certificate(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, cert


@contextmanager
def https_server(tmp_path: Path, handler: type) -> Iterator[tuple[int, Path]]:
    """http.server serving `handler` over TLS on 127.0.0.1: its port and certificate."""
    from http.server import ThreadingHTTPServer

    context, cert = server_tls(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], cert
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(params=["tcp", "tls"])
def stalled_peer(request, tmp_path):
    context, cert = server_tls(tmp_path)
    peer = StalledPeer(context if request.param == "tls" else None)
    peer.cert = cert
    yield peer
    peer.stop()


@pytest.fixture
def vsphere_env() -> dict[str, str]:
    return {**os.environ, "VSPHERE_USER": "auditor", "VSPHERE_PASSWORD": vcsim.PASSWORD}


def test_collect_vsphere_from_a_peer_that_accepts_and_never_answers(stalled_peer, tmp_path, vsphere_env):
    out = tmp_path / "estate.json"
    out.write_bytes(EARLIER)
    result, elapsed = run_auditor("collect", "vsphere", "--server", f"127.0.0.1:{stalled_peer.port}",
                                  "--ca-bundle", str(stalled_peer.cert), "--timeout", str(TIMEOUT),
                                  "--out", str(out), "-q", env=vsphere_env)
    assert stalled_peer.accepted >= 1
    assert_timed_out(result, elapsed, f"127.0.0.1:{stalled_peer.port} (connecting): timed out after {TIMEOUT} s")
    assert out.read_bytes() == EARLIER


def test_scan_vsphere_from_a_peer_that_accepts_and_never_answers(stalled_peer, tmp_path, vsphere_env):
    saved = tmp_path / "live.json"
    saved.write_bytes(EARLIER)
    result, elapsed = run_auditor("scan", "--vsphere", f"127.0.0.1:{stalled_peer.port}", "--vsphere-ca-bundle",
                                  str(stalled_peer.cert), "--vsphere-timeout", str(TIMEOUT), "--save-snapshot",
                                  str(saved), "--out", str(tmp_path / "reports"), "--no-history", "-q",
                                  env=vsphere_env)
    assert_timed_out(result, elapsed, f"127.0.0.1:{stalled_peer.port} (connecting): timed out after {TIMEOUT} s")
    assert saved.read_bytes() == EARLIER


class Relay(LocalListener):
    """A TCP relay in front of the simulator that counts the connections opened while the
    simulator is stopped: each is a request sent to a vCenter that already let one time out,
    and would wait out the timeout again."""

    def __init__(self, simulator: vcsim.Simulator):
        self.simulator = simulator
        self.late = 0
        super().__init__()

    def handle(self, client: socket.socket) -> None:
        if self.simulator.stopped:
            self.late += 1
        upstream = socket.create_connection(("127.0.0.1", self.simulator.port))
        self.sockets += [client, upstream]
        for source, target in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
            target.shutdown(socket.SHUT_WR)
        except OSError:  # either side closed
            pass


def test_a_peer_that_answers_but_is_no_vcenter_is_told_apart(tmp_path, vsphere_env):
    # the ARM replay: HTTPS that answers at once, 404 for the vSphere API versions document
    web = ArmReplay(tmp_path, Estate()).start()
    port = web.server.server_address[1]
    try:
        result, elapsed = run_auditor("collect", "vsphere", "--server", f"127.0.0.1:{port}", "--ca-bundle",
                                      str(web.cert), "--timeout", str(TIMEOUT), "--out", str(tmp_path / "s.json"),
                                      "-q", env=vsphere_env)
    finally:
        web.stop()
    assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr
    assert (f"127.0.0.1:{port} (connecting): not a vCenter or ESXi host: /sdk/vimServiceVersions.xml answered "
            "HTTP 404") in result.stderr
    assert elapsed < BOUND


@pytest.fixture(scope="module")
def simulator_binary(tmp_path_factory):
    return vcsim.build(tmp_path_factory.mktemp("vcsim-bin"))


@pytest.mark.parametrize("call, during", [
    ("Login", "connecting"),
    ("RetrievePropertiesEx", "collecting"),
    ("ContinueRetrievePropertiesEx:2", "collecting"),  # two pages in, with --page-size 3
])
def test_a_vcenter_that_hangs_mid_session(simulator_binary, tmp_path, vsphere_env, call, during):
    simulator = vcsim.start(simulator_binary, tmp_path, "-stop-on", call)
    relay = Relay(simulator)
    server = f"127.0.0.1:{relay.port}"
    out = tmp_path / "estate.json"
    out.write_bytes(EARLIER)
    try:
        result, elapsed = run_auditor("collect", "vsphere", "--server", server, "--ca-bundle",
                                      str(simulator.cert), "--timeout", str(TIMEOUT), "--page-size", "3",
                                      "--out", str(out), "-q", env=vsphere_env)
        assert simulator.stopped, "the simulator never got the call it stops on"
    finally:
        simulator.resume()
        relay.stop()
        simulator.stop()
    assert_timed_out(result, elapsed, f"{server} ({during}): timed out after {TIMEOUT} s")
    # neither DestroyView nor the logout is sent after the timeout: each would wait it out again
    assert relay.late == 0
    assert out.read_bytes() == EARLIER


def test_a_vcenter_that_hangs_at_logout_still_gives_its_snapshot(simulator_binary, tmp_path, vsphere_env):
    simulator = vcsim.start(simulator_binary, tmp_path, "-stop-on", "Logout")
    out = tmp_path / "estate.json"
    try:
        result, elapsed = run_auditor("collect", "vsphere", "--server", simulator.server, "--ca-bundle",
                                      str(simulator.cert), "--timeout", str(TIMEOUT), "--out", str(out), "-q",
                                      env=vsphere_env)
        assert simulator.stopped, "the simulator never got the logout"
    finally:
        simulator.resume()
        simulator.stop()
    # everything was collected before the logout: the snapshot is whole, the logout is given up
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert elapsed < BOUND, f"took {elapsed:.1f} s with --timeout {TIMEOUT}"
    assert b"VirtualMachine" in out.read_bytes()


class VersionedPeer(LocalListener):
    """An HTTPS server on 127.0.0.1 that answers the API versions document at once (or not)
    and every other request as `answer` does."""

    def __init__(self, context: ssl.SSLContext, probe_answered: bool = True):
        from pyVmomi import VmomiSupport

        newest = VmomiSupport.versionIdMap[VmomiSupport.GetServiceVersions("vim25")[0]]
        self.versions = (f'<?xml version="1.0" encoding="UTF-8"?><namespaces version="1.0"><namespace>'
                         f'<name>urn:vim25</name><version>{newest}</version></namespace></namespaces>').encode()
        self.context = context
        self.probe_answered = probe_answered
        self.requests: list[bytes] = []
        super().__init__()

    def handle(self, connection: socket.socket) -> None:
        threading.Thread(target=self._serve_connection, args=(connection,), daemon=True).start()

    def _serve_connection(self, connection: socket.socket) -> None:
        connection.settimeout(30)
        try:
            connection = self.context.wrap_socket(connection, server_side=True)
            self.sockets.append(connection)
            reader = connection.makefile("rb")
            while not self.done.is_set():
                line = reader.readline()
                if not line:
                    return
                self.requests.append(line)
                length = 0
                while (header := reader.readline()) not in (b"\r\n", b""):
                    if header.lower().startswith(b"content-length:"):
                        length = int(header.split(b":")[1])
                reader.read(length)
                if line.startswith(b"GET") and self.probe_answered:
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: "
                                       + str(len(self.versions)).encode() + b"\r\n\r\n" + self.versions)
                    continue
                self.answer(connection)
        except OSError:  # the client gave up, or the test ended
            return

    def answer(self, connection: socket.socket) -> None:
        raise NotImplementedError


class DrippingPeer(VersionedPeer):
    """Answers every request but the probe with a 1 MiB body sent one byte every DRIP
    seconds: each read gets a byte well within the timeout, and the answer would take three
    days."""

    DRIP = 0.25

    def answer(self, connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 1048576\r\n\r\n")
        while not self.done.is_set():
            connection.sendall(b" ")
            time.sleep(self.DRIP)


@pytest.mark.parametrize("probe_answered, dripped", [(False, "GET"), (True, "POST")],
                         ids=["the API versions document", "the first SOAP request"])
def test_a_vcenter_that_answers_a_byte_at_a_time_is_cut_off_at_the_timeout(tmp_path, vsphere_env, probe_answered,
                                                                             dripped):
    """Each byte comes well within the timeout: only a deadline for the whole request ends it."""
    context, cert = server_tls(tmp_path)
    peer = DrippingPeer(context, probe_answered)
    result, elapsed, out = collect_from(peer, cert, tmp_path, vsphere_env)
    assert peer.requests and peer.requests[-1].startswith(dripped.encode())
    assert_timed_out(result, elapsed, f"127.0.0.1:{peer.port} (connecting): timed out after {TIMEOUT} s")
    assert out.read_bytes() == EARLIER


def collect_from(peer: LocalListener, cert: Path, tmp_path: Path,
                 env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float, Path]:
    """`collect vsphere` from `peer` at --timeout TIMEOUT, over an earlier snapshot; the peer
    stopped after. The result, the seconds it took and the snapshot's path."""
    out = tmp_path / "estate.json"
    out.write_bytes(EARLIER)
    try:
        result, elapsed = run_auditor("collect", "vsphere", "--server", f"127.0.0.1:{peer.port}", "--ca-bundle",
                                      str(cert), "--timeout", str(TIMEOUT), "--out", str(out), "-q", env=env)
    finally:
        peer.stop()
    return result, elapsed, out


class InflatingPeer(VersionedPeer):
    """Answers the first SOAP request (RetrieveContent, which pyVmomi reads itself) with a
    gzip body no one asked for: a fault whose start tag holds a 16 MB attribute, in 16 KB
    (expat rescans an unfinished tag each time it is fed more: hours of CPU, fed 2 KB at a
    time), or an endless one."""

    def __init__(self, context: ssl.SSLContext, kind: str):
        self.kind = kind
        super().__init__(context)

    def answer(self, connection: socket.socket) -> None:
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
        if self.kind == "fault":
            fault = (b'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap'
                     b'.org/soap/envelope/"><soapenv:Body><soapenv:Fault><faultcode x="' + b"a" * (16 << 20)
                     + b'">ServerFaultCode</faultcode><faultstring>hostile</faultstring></soapenv:Fault>'
                     b'</soapenv:Body></soapenv:Envelope>')
            body = compressor.compress(fault) + compressor.flush()
            connection.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/xml\r\nContent-Encoding:"
                               b" gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            return
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Encoding: gzip\r\n"
                           b"Connection: close\r\n\r\n")
        connection.sendall(compressor.compress(b'<?xml version="1.0"?><Envelope x="'))
        letters = b"a" * (1 << 20)
        while not self.done.is_set():
            connection.sendall(compressor.compress(letters) + compressor.flush(zlib.Z_SYNC_FLUSH))


@pytest.mark.parametrize("kind", ["fault", "endless"])
def test_a_compressed_answer_pyvmomi_reads_itself_is_cut_off_at_the_timeout(tmp_path, vsphere_env, kind):
    """Inflating and parsing what one receive brought is bounded too, not only the receive."""
    context, cert = server_tls(tmp_path)
    peer = InflatingPeer(context, kind)
    result, elapsed, out = collect_from(peer, cert, tmp_path, vsphere_env)
    assert peer.requests and peer.requests[-1].startswith(b"POST")
    assert_timed_out(result, elapsed, f"127.0.0.1:{peer.port} (connecting): timed out after {TIMEOUT} s")
    assert out.read_bytes() == EARLIER


class BrokenPeer(VersionedPeer):
    """Answers the first SOAP request (RetrieveContent, which pyVmomi reads itself) with
    `reply`, then closes the connection."""

    def __init__(self, context: ssl.SSLContext, reply: bytes):
        self.reply = reply
        super().__init__(context)

    def answer(self, connection: socket.socket) -> None:
        connection.sendall(self.reply)
        socket.socket.shutdown(connection, socket.SHUT_RDWR)  # the reader keeps the socket open


def service_content(returnval: bytes) -> bytes:
    """An HTTP answer to RetrieveServiceContent whose returnval holds `returnval`."""
    body = (b"<?xml version='1.0' encoding='UTF-8'?><soapenv:Envelope "
            b"xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'><soapenv:Body>"
            b"<RetrieveServiceContentResponse xmlns='urn:vim25'><returnval>" + returnval +
            b"</returnval></RetrieveServiceContentResponse></soapenv:Body></soapenv:Envelope>")
    return b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n" % len(body) + body


def entity_crawl() -> bytes:
    """1.3 KB of gzip: a DTD, then a 1 MiB comment, then one entity reference that expat 2.5
    lets expand to 61 MiB (100x what it has read) inside one 2 KB read, which pyVmomi then
    gathers quadratically (3 minutes of CPU), with no read in between to check a deadline."""
    dtd = b'<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE Envelope [<!ENTITY a0 "' + b"x" * 64 + b'">'
    dtd += b"".join(b'<!ENTITY a%d "' % level + b"&a%d;" % (level - 1) * 10 + b'">' for level in range(1, 7))
    document = (dtd + b']><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
                + b"<!--" + b"p" * (1 << 20) + b"-->&a6;</soapenv:Body></soapenv:Envelope>")
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    body = compressor.compress(document) + compressor.flush()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
            % len(body) + body)


@pytest.mark.parametrize("reply, said", [
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 10\r\n\r\n<not xml/", "not valid vSphere SOAP"),
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 4000\r\n\r\n<?xml version='1.0'?><soapenv:",
     "connection lost (IncompleteRead)"),
    (entity_crawl(), "the answer declares a DTD, which SOAP forbids"),
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 100\r\n\r\n"
     b"<?xml version='1.0' encoding='UTF-16'?>" + b" " * 61, "declared 'UTF-16', not UTF-8"),
    (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", "HTTP error from the server: 503"),
    (service_content(b"<rootFolder type='Folder'>group-d1</rootFolder><bogus\xc3\xa9>1</bogus\xc3\xa9>"),
     "the answer to RetrieveServiceContent gives a property this pyVmomi does not know ('bogus\u00e9')"),
    (service_content(b"<rootFolder type='Folder'>group-d1</rootFolder>"),
     "not a vCenter or ESXi host: its service content has no about, sessionManager, propertyCollector, viewManager"),
], ids=["not XML", "cut short", "a DTD", "not UTF-8", "HTTP 503", "an unknown property", "no session manager"])
def test_an_answer_pyvmomi_reads_itself_that_is_broken_is_named_for_what_it_is(tmp_path, vsphere_env, reply, said):
    """Not "unexpected ExpatError" or "AttributeError" (or minutes of expat expanding
    entities): the answer is not XML, is cut short, declares a DTD or another encoding, is an
    HTTP error, or gives a property pyVmomi does not know."""
    context, cert = server_tls(tmp_path)
    peer = BrokenPeer(context, reply)
    result, _, out = collect_from(peer, cert, tmp_path, vsphere_env)
    assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("auditor: error")]
    assert len(errors) == 1 and f"127.0.0.1:{peer.port} (connecting): " in errors[0] and said in errors[0], errors
    assert out.read_bytes() == EARLIER


@contextmanager
def deadline_client(kind: str, port: int, cert: Path, seconds: float) -> Iterator[Callable[[], bytes]]:
    """A GET of https://127.0.0.1:port/ with a deadline of `seconds` a request, through one
    kept-alive connection: http.client's (vSphere) or a requests session's (Azure)."""
    from auditor.sources.deadline import DeadlineHTTPSConnection, deadline_session

    if kind == "http.client":
        connection = DeadlineHTTPSConnection("127.0.0.1", port, timeout=seconds,
                                             context=ssl.create_default_context(cafile=str(cert)))

        def get() -> bytes:
            connection.request("GET", "/")
            return connection.getresponse().read()

        yield get
        connection.close()
        return
    session = deadline_session(seconds)
    yield lambda: session.get(f"https://127.0.0.1:{port}/", verify=str(cert), timeout=(seconds, seconds)).content
    session.close()


@pytest.mark.parametrize("client", ["http.client", "requests"])
def test_the_deadline_is_per_request_and_a_slow_answer_within_it_is_read(tmp_path, client):
    """The near miss: answers that take most of the timeout, one after another on one kept-alive
    connection, are each read whole; the deadline starts again with each request."""
    from http.server import BaseHTTPRequestHandler

    class Slow(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "6")
            self.end_headers()
            for byte in b"answer":  # 6 x 0.1 s: 0.6 s of a 1 s deadline
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.1)

        def log_message(self, *args: object) -> None:
            pass

    with https_server(tmp_path, Slow) as (port, cert), deadline_client(client, port, cert, 1) as get:
        for _ in range(3):  # 1.8 s in all on one connection: more than one deadline, each within its own
            assert get() == b"answer"


def chunked(size: int, declared: bytes | None = None) -> tuple[dict[str, str], bytes, bytes]:
    """A chunked answer of `size` bytes in one chunk, its size written as `declared`."""
    data = b"x" * size
    return {"Transfer-Encoding": "chunked"}, (declared or b"%x" % size) + b"\r\n" + data + b"\r\n0\r\n\r\n", data


def gzipped(size: int) -> tuple[dict[str, str], bytes, bytes]:
    """A gzip answer that inflates to `size` bytes."""
    data = b"\0" * size
    packed = gzip.compress(data)
    return {"Content-Encoding": "gzip", "Content-Length": str(len(packed))}, packed, data


@pytest.mark.parametrize("client, answer, refused", [
    ("http.client", chunked(2 << 20, declared=b"-1"), True),
    ("http.client", chunked(900 << 10), False),
    ("requests", gzipped(2 << 20), True),
    ("requests", gzipped(900 << 10), False),
], ids=["a negative chunk size", "a chunk within the bound", "a gzip bomb", "a gzip answer within the bound"])
def test_an_answer_past_the_bound_is_refused(tmp_path, monkeypatch, client, answer, refused):
    """Given a negative chunk size, http.client reads to the end of the stream in one read, past
    any limit its reader sets: the bound is on the bytes received. requests inflates gzip and
    gathers the whole answer (1 MB of gzip is 1 GiB): there it counts what is decoded. The
    bound is 1 MiB here for the test."""
    from http.server import BaseHTTPRequestHandler

    from auditor.sources import deadline

    monkeypatch.setattr(deadline, "ANSWER_BYTES", 1 << 20)
    headers, payload, data = answer

    class Answering(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
            self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    with https_server(tmp_path, Answering) as (port, cert), deadline_client(client, port, cert, 10) as get:
        if refused:
            with pytest.raises(deadline.AnswerTooLarge, match="larger than 1 MiB"):
                get()
        else:
            assert get() == data


class SlowHandshakeThenTrickle(LocalListener):
    """Accepts, waits HANDSHAKE seconds before the TLS handshake, then answers every request
    with a 100-byte body sent a byte every 0.05 s (5 s in all)."""

    HANDSHAKE = 1.0

    def __init__(self, context: ssl.SSLContext):
        self.context = context
        super().__init__()

    def handle(self, connection: socket.socket) -> None:
        threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        try:
            time.sleep(self.HANDSHAKE)
            connection.settimeout(30)
            connection = self.context.wrap_socket(connection, server_side=True)
            self.sockets.append(connection)
            reader = connection.makefile("rb")
            while reader.readline() not in (b"\r\n", b""):
                pass
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            for _ in range(100):
                connection.sendall(b"x")
                time.sleep(0.05)
        except OSError:  # the client gave up, or the test ended
            return


def test_a_connection_made_before_its_request_shares_the_requests_deadline(tmp_path):
    """pyVmomi connects before it sends: the handshake and the first request on that
    connection share one deadline, not one each (up to twice the timeout)."""
    from auditor.sources.deadline import DeadlineHTTPSConnection

    context, cert = server_tls(tmp_path)
    peer = SlowHandshakeThenTrickle(context)
    client = DeadlineHTTPSConnection("127.0.0.1", peer.port, timeout=1.5,
                                     context=ssl.create_default_context(cafile=str(cert)))
    started = time.monotonic()
    try:
        client.connect()  # as pyVmomi's GetConnection does; the handshake takes 1 s of the 1.5
        client.request("GET", "/")
        with pytest.raises(TimeoutError):
            client.getresponse().read()
    finally:
        elapsed = time.monotonic() - started
        client.close()
        peer.stop()
    assert 1.5 <= elapsed < 2.2, f"took {elapsed:.1f} s with a 1.5 s timeout"  # not 1 s + 1.5 s


def test_a_stalled_tls_handshake_is_bounded_by_the_request_not_the_connect_cap():
    """Through urllib3 the handshake would get the connect timeout (capped at 30 s), which the
    error line does not name: it is the request's, from its connection, as on http.client."""
    import requests

    from auditor.sources.deadline import deadline_session

    peer = StalledPeer()  # accepts, never answers the client's hello
    session = deadline_session(2)
    started = time.monotonic()
    try:
        with pytest.raises(requests.exceptions.Timeout):
            session.get(f"https://127.0.0.1:{peer.port}/", timeout=(0.5, 2))
    finally:
        elapsed = time.monotonic() - started
        session.close()
        peer.stop()
    assert 1.9 <= elapsed < 3, f"took {elapsed:.1f} s with a 2 s request timeout and a 0.5 s connect timeout"


TUNNELLED = b"through the tunnel"


def on_thread(requests_made: Callable[[list[object]], None], wait: float) -> tuple[list[object], float]:
    """Run `requests_made` (which appends each answer it gets) on a thread for at most `wait`
    seconds: the answers, a requests Timeout last if one ended it, and the time taken."""
    import requests

    answers: list[object] = []

    def run() -> None:
        try:
            requests_made(answers)
        except requests.exceptions.Timeout as exc:
            answers.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(wait)
    return answers, time.monotonic() - started


class Tunnelled(BaseHTTPRequestHandler):
    """Answers every GET with TUNNELLED, keeping the connection open."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(TUNNELLED)))
        self.end_headers()
        self.wfile.write(TUNNELLED)

    def log_message(self, *args: object) -> None:
        pass


class TunnellingProxy(LocalListener):
    """An HTTP proxy on 127.0.0.1 that answers CONNECT with 200 (its reply `padding` header
    lines long, a byte every `pace` seconds), then relays bytes both ways."""

    def __init__(self, pace: float = 0.0, padding: int = 0, status: bytes = b"200 Connection established",
                 context: ssl.SSLContext | None = None, relay_pace: float = 0.0):
        self.pace, self.padding, self.status = pace, padding, status
        self.context, self.relay_pace = context, relay_pace  # TLS to the proxy; the endpoint's bytes trickled
        self.tunnels: list[bytes] = []  # the CONNECT lines received
        super().__init__()

    def handle(self, connection: socket.socket) -> None:
        self.sockets.append(connection)
        threading.Thread(target=self._tunnel, args=(connection,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        if self.context is not None:
            try:
                client = self.context.wrap_socket(client, server_side=True)
            except OSError:
                return
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = client.recv(4096)
            if not chunk:
                return
            request += chunk
        target = request.split()[1]
        self.tunnels.append(target)
        reply = b"HTTP/1.1 " + self.status + b"\r\n" + b"X-Pad: a\r\n" * self.padding + b"\r\n"
        try:
            if self.pace:
                for byte in reply:
                    client.sendall(bytes([byte]))
                    time.sleep(self.pace)
            else:
                client.sendall(reply)
            host, port = target.decode().rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
        except OSError:
            return
        self.sockets.append(upstream)
        for source, sink, pace in ((client, upstream, 0.0), (upstream, client, self.relay_pace)):
            threading.Thread(target=self._relay, args=(source, sink, pace), daemon=True).start()

    @staticmethod
    def _relay(source: socket.socket, sink: socket.socket, pace: float) -> None:
        with suppress(OSError):
            while chunk := source.recv(1 if pace else 65536):
                sink.sendall(chunk)
                time.sleep(pace)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@pytest.mark.parametrize("proxy, answered", [
    (TunnellingProxy, True),  # the near miss: a proxy that answers at once
    (lambda: TunnellingProxy(pace=0.05, padding=100_000), False),  # a header line every half second, for ever
])
def test_a_proxy_that_trickles_its_answer_to_connect_is_cut_off_at_the_timeout(tmp_path, monkeypatch, proxy, answered):
    """The CONNECT answer comes before the request's own bytes: read within its deadline too,
    or a proxy sending a header line now and then keeps the request going for ever."""
    import requests

    from auditor.sources.deadline import deadline_session

    for variable in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
    peer = proxy()
    session = deadline_session(2)
    with https_server(tmp_path, Tunnelled) as (port, cert):
        outcome, elapsed = on_thread(lambda answers: answers.append(session.get(
            f"https://127.0.0.1:{port}/", verify=str(cert), timeout=(2, 2),
            proxies={"https": f"http://127.0.0.1:{peer.port}"}).content), 15)
    session.close()
    peer.stop()
    assert outcome, "still waiting for the proxy after 15 s"
    assert peer.tunnels == [f"127.0.0.1:{port}".encode()]  # through the proxy, not around it
    if answered:
        assert outcome == [TUNNELLED]
    else:
        assert isinstance(outcome[0], requests.exceptions.Timeout) and 1.9 <= elapsed < 3.5, (outcome, elapsed)


@pytest.mark.parametrize("client", ["http.client", "requests"])
def test_an_answer_that_closes_the_connection_is_read_whole(tmp_path, client):
    """`Connection: close` (and HTTP/1.0): http.client closes the connection while the answer
    is still to be read; the socket must stay open for it, as a socket does for its readers."""
    from http.server import BaseHTTPRequestHandler

    body = bytes(range(256)) * 800  # 200 KiB: more than one buffered read

    class Closing(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with https_server(tmp_path, Closing) as (port, cert), deadline_client(client, port, cert, 5) as get:
        for _ in range(2):  # the second request opens a new connection
            assert get() == body


# -- Azure -------------------------------------------------------------------------------


@pytest.fixture
def replay(tmp_path):
    estate = standard_estate()
    estate.rows += generated_rows(2500, PCI)  # three pages of Resource Graph
    server = ArmReplay(tmp_path, estate).start()
    yield server
    server.stop()


@pytest.mark.parametrize("relay_pace", [0.0, 0.2])
def test_through_a_tls_proxy_the_endpoints_handshake_is_within_the_deadline(tmp_path, monkeypatch, relay_pace):
    """Through an https:// proxy the endpoint's TLS runs inside the proxy's, a record a
    wait: a proxy relaying the endpoint's bytes one every 0.2 s kept the request going for
    ever. The near miss: one that relays at once answers two requests, the second after the
    first's deadline has passed (each request has its own)."""
    import requests

    from auditor.sources.deadline import deadline_session

    (tmp_path / "proxy").mkdir()
    context, proxy_cert = server_tls(tmp_path / "proxy")
    for variable in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
    peer = TunnellingProxy(context=context, relay_pace=relay_pace)
    session = deadline_session(2)
    bundle = tmp_path / "both.pem"

    def get_twice(answers: list[object]) -> None:
        for _ in range(2):
            answers.append(session.get(f"https://127.0.0.1:{port}/", verify=str(bundle), timeout=(2, 2),
                                       proxies={"https": f"https://127.0.0.1:{peer.port}"}).content)
            time.sleep(2.2)

    with https_server(tmp_path, Tunnelled) as (port, cert):
        bundle.write_text(proxy_cert.read_text() + cert.read_text())
        outcome, elapsed = on_thread(get_twice, 20)
    session.close()
    peer.stop()
    assert outcome, "still waiting for the endpoint through the proxy after 20 s"
    if relay_pace:
        assert isinstance(outcome[0], requests.exceptions.Timeout) and 1.9 <= elapsed < 3.5, (outcome, elapsed)
    else:
        assert outcome == [TUNNELLED, TUNNELLED] and len(peer.tunnels) == 1, outcome  # one kept-alive tunnel


def test_a_proxy_that_refuses_the_tunnel_is_named_not_the_credentials(replay, tmp_path):
    """A 407 from the proxy read "no Azure token ... set AZURE_TENANT_ID ... or az login"."""
    proxy = TunnellingProxy(status=b"407 Proxy Authentication Required")
    out = tmp_path / "azure.json"
    env = {**os.environ, "AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT_ID, "AZURE_CLIENT_SECRET": CLIENT_SECRET,
           "HTTPS_PROXY": f"http://127.0.0.1:{proxy.port}", "NO_PROXY": "", "no_proxy": ""}
    try:
        result, _ = run_auditor("collect", "azure", "--arm-endpoint", replay.url, "--authority", replay.url,
                                "--ca-bundle", str(replay.cert), "--subscription", PCI, "--timeout", str(TIMEOUT),
                                "--out", str(out), "-q", env=env)
    finally:
        proxy.stop()
    assert proxy.tunnels, "the request did not go through the proxy"
    assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr
    assert (f"{PCI}: the proxy refused the tunnel to {replay.url} or {replay.url} (407 Proxy Authentication "
            "Required): check HTTPS_PROXY") in result.stderr, result.stderr
    assert "AZURE_TENANT_ID" not in result.stderr


@pytest.mark.parametrize("route, after, peer", [
    ("resources", 0, "Resource Manager at {url}"),  # Resource Graph's first page
    ("resources", 1, "Resource Manager at {url}"),  # its second page
    ("subscriptions", 0, "Resource Manager at {url}"),  # a GET, which azure-core would retry
    ("token", 0, "no Azure token from {url}:"),  # Entra ID's token endpoint
])
@pytest.mark.parametrize("stall", ["silent", "trickling"])
def test_collect_azure_from_a_stalled_endpoint(replay, tmp_path, route, after, peer, stall):
    """Silent, or answering a byte at a time (each wait ends well within the timeout: only a
    deadline for the whole request ends it, and the request is not tried again)."""
    if stall == "trickling":
        replay.trickle(route, after=after)
    else:
        replay.hold(route, after=after)
    out = tmp_path / "azure.json"
    out.write_bytes(EARLIER)
    env = {**os.environ, "AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT_ID,
           "AZURE_CLIENT_SECRET": CLIENT_SECRET}
    result, elapsed = run_auditor("collect", "azure", "--arm-endpoint", replay.url, "--authority", replay.url,
                                  "--ca-bundle", str(replay.cert), "--subscription", PCI, "--timeout",
                                  str(TIMEOUT), "--out", str(out), "-q", env=env)
    assert replay.requests[route] == after + 1  # the held request was sent once, not retried
    assert_timed_out(result, elapsed, f"{PCI}: {peer.format(url=replay.url)} timed out after {TIMEOUT} s")
    assert out.read_bytes() == EARLIER
