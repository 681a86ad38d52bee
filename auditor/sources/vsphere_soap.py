"""The PropertyCollector's SOAP answers read with lxml, straight into the snapshot's plain data.

pyVmomi builds a Python object for every element of an answer, in expat callbacks: the pages
of a vCenter of 2,000 VMs (19 MB of XML) cost it some three seconds of one core, all of it
under the GIL. Here libxml2 parses an answer in C and Python walks only what reaches the
snapshot: a VM's devices are told apart by their xsi:type, and those not kept are never read.

pyVmomi still logs in, builds and sends every request and keeps the session: `AnswerTap`
stands in the HTTP connection pyVmomi reads the answer from (see `TappedConnection`) and hands
pyVmomi's deserialiser a two-line stand-in instead of the page.

The data that comes out is what `vsphere.to_plain` makes of pyVmomi's objects, because the
types are pyVmomi's own: an element's type is its xsi:type looked up as pyVmomi looks it up
(else its property's declared type), narrowed to what the session's API version knows
(`GetCompatibleType`); a data object lists its properties in pyVmomi's order, absent ones
with the defaults pyVmomi's constructors give them ([] for arrays; False, "" and 0 for
required primitives); `_type` names the actual type where it is not the declared one;
references become their moref ids, times ISO 8601 in UTC, binary values None.

A value is read one of two ways:
- `Decoder.plain`: straight into JSON-ready data, as `to_plain` renders it (the bulk);
- `Decoder.shallow`: primitives as `plain` reads them, references as pyVmomi's objects, data
  objects as `ElementView`, which reads its properties on access as a pyVmomi object does, so
  the reductions of `vsphere` (devices, firewall, iSCSI, switch config) run on it unchanged.

What pyVmomi would refuse is refused (MalformedAnswer, and the source fails): a property its
types do not have, a value that does not parse as its type (a number, a boolean, a date, an
enum value), a value of anyType without an xsi:type. Parts of an answer that are not read
(devices not kept, the faults of missing properties) are not checked. Beyond that an answer
is refused when it is not well-formed, is no SOAP envelope or not the answer to the request,
declares a DTD (SOAP forbids one, and it is where entity bombs live), or is larger than
ANSWER_LIMIT bytes after decompression. The parser loads no DTD, expands no entity and
fetches nothing. A SOAP fault goes, after the same checks, to pyVmomi's deserialiser, which
raises it as the same exception as ever.

Two departures from pyVmomi, both for answers no vCenter sends: namespace prefixes in
xsi:type values are resolved once per answer (an answer that binds one prefix to two
namespaces is read with the first), and a MethodName value is kept as its text (pyVmomi's
object of it would print as a memory address).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import http.client
import io
import re
import socket
import threading
import zlib
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, NamedTuple

from lxml import etree
from pyVmomi import Iso8601, SoapAdapter, VmomiSupport

from ..files import GZIP_MAGIC
from .deadline import deadline_check, underlying_socket

XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
SOAP_NS = "{http://schemas.xmlsoap.org/soap/envelope/}"
ENVELOPE, BODY, FAULT = SOAP_NS + "Envelope", SOAP_NS + "Body", SOAP_NS + "Fault"
# bytes of one answer, after decompression: a page of 1,000 VMs is about 10 MB; a peer that
# sends this much more is not a vCenter, or not one to hold in memory
ANSWER_LIMIT = 512 << 20
READ_SIZE = 1 << 20  # bytes read (and decompressed) at a time
# An answer larger than this (a page of 250 VMs is about 2.5 MB) does not get the next page
# asked for before it is parsed: with pages read side by side, ANSWER_LIMIT would hold for
# each of them, not for them all.
EARLY_LIMIT = 32 << 20

# properties every data object has and `to_plain` leaves out
_SKIPPED = frozenset(("dynamicType", "dynamicProperty"))
# types whose xsi:type pyVmomi ignores (SoapAdapter.isDynamicType)
_DYNAMIC = (VmomiSupport.ManagedMethod, VmomiSupport.PropertyPath, type)
# pyVmomi's lookup of an xsi:type name, with its fallbacks (other namespaces, ...Reference)
_lookup_wsdl_type = SoapAdapter.SoapDeserializer().LookupWsdlType


class MalformedAnswer(ValueError):
    """A vCenter's answer that is not a well-formed vim25 SOAP answer of what was asked."""


class _Marker:
    """A sentinel with a name, for readable reprs."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


_ABSENT = _Marker("ABSENT")  # no default: the property is left out when absent
_EMPTY = _Marker("EMPTY")  # an array's default: a new empty list
_NULL = _Marker("NULL")  # a value pyVmomi reads as None (an empty TypeName): left out of objects
_UNSET = _Marker("UNSET")  # no fault message to put in place of a fault's own


# -- reading an answer -------------------------------------------------------------------------


def xml_parser() -> etree.XMLParser:
    """A parser that loads no DTD, expands no entity and fetches nothing (a new one per
    document: lxml's parsers are not to be shared between threads)."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_comments=True, remove_pis=True, collect_ids=False)


# gzip members an answer may hold: a writer that appends some sends a few; each begun copies
# what is left of a read, so a flood of empty ones (20 bytes each) would cost CPU per byte
GZIP_MEMBERS = 1024


def _decompressor(encoding: str) -> Any:
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if encoding == "deflate":
        return _Deflate()
    return None  # identity, or an encoding pyVmomi too reads as identity


class _Deflate:
    """HTTP's deflate: zlib-wrapped as the RFC says, or raw as some servers send it."""

    def __init__(self) -> None:
        self._inner: Any = None
        self._first = b""  # the first byte, when it came alone: two tell which deflate it is
        self.unconsumed_tail = b""

    @property
    def eof(self) -> bool:
        """Whether the compressed stream ended, as it must."""
        return self._inner is not None and self._inner.eof

    @property
    def unused_data(self) -> bytes:
        """Bytes after the end of the compressed stream."""
        return self._inner.unused_data if self._inner is not None else b""

    def decompress(self, data: bytes, max_length: int) -> bytes:
        """At most `max_length` bytes of `data` decompressed (the rest in unconsumed_tail)."""
        if self._inner is None:
            data, self._first = self._first + data, b""
            if len(data) < 2:  # its first two bytes tell which deflate it is
                self._first, self.unconsumed_tail = data, b""
                return b""
            wrapped = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._inner = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        out = self._inner.decompress(data, max_length)
        self.unconsumed_tail = self._inner.unconsumed_tail
        return out


def read_document(response: Any, limit: int = ANSWER_LIMIT) -> Any:
    """The root element of an HTTP answer's XML body (decompressed as its Content-Encoding
    says), parsed with a hardened parser; MalformedAnswer when it is not well-formed, declares
    a DTD or exceeds `limit` bytes (read_body, then parse_document)."""
    return parse_document(read_body(response, limit))


def read_body(response: Any, limit: int = ANSWER_LIMIT, check: Callable[[], None] = lambda: None) -> bytes:
    """An HTTP answer's whole body, decompressed as its Content-Encoding says, each piece
    read while `check` passes; MalformedAnswer when it exceeds `limit` bytes or its
    compression is corrupt, IncompleteRead when the peer left before the end (DecodedBody)."""
    return DecodedBody(response, limit, check).read()


class DecodedBody:
    """An HTTP answer's body as it is read: decompressed as its Content-Encoding says, no
    more at a time than a read asks for (a few KB of gzip inflate to megabytes), at most
    `limit` bytes in all, and no read once `check` fails (the request's deadline: the socket
    checks it only when it receives, and inflating or parsing what one receive brought can
    take far longer).

    MalformedAnswer past the limit or when the compression is corrupt or cut short;
    IncompleteRead when the peer left before the end (http.client's read(n) does not say)."""

    def __init__(self, response: Any, limit: int = ANSWER_LIMIT, check: Callable[[], None] = lambda: None):
        self._response = response
        self._limit = limit
        self._check = check
        self._decompressor = _decompressor((response.getheader("Content-Encoding") or "identity").strip().lower())
        self._tail = b""  # compressed bytes received and not yet inflated
        self._members = 1  # gzip members begun
        self._total = 0
        self._ended = False

    def read(self, size: int | None = -1) -> bytes:
        """At most `size` bytes of the body (all that is left, for -1 or None); b"" at its end."""
        if size is None or size < 0:
            return b"".join(iter(partial(self.read, READ_SIZE), b""))
        self._check()
        if self._ended or size == 0:
            return b""
        try:
            piece = self._read(size)
        except zlib.error as exc:
            raise MalformedAnswer(f"the compressed answer is corrupt ({exc})") from None
        self._total += len(piece)
        if self._total > self._limit:
            raise MalformedAnswer(f"the answer is larger than {self._limit >> 20} MiB")
        return piece

    def _read(self, size: int) -> bytes:
        decompressor = self._decompressor
        if decompressor is None:
            piece = self._response.read(size)
            if not piece:
                self._end()
            return piece
        while True:
            if self._tail:
                if decompressor.eof:  # zlib would keep these bytes aside, and the loop go round
                    decompressor = self._next_member()
                piece = decompressor.decompress(self._tail, size)
                self._tail = decompressor.unconsumed_tail or getattr(decompressor, "unused_data", b"")
                if piece:
                    return piece
                continue
            chunk = self._response.read(min(READ_SIZE, max(size, io.DEFAULT_BUFFER_SIZE)))
            if chunk:
                self._tail = chunk
                self._check()
                continue
            piece = decompressor.decompress(b"", size)  # what zlib may still hold back
            if piece:
                return piece
            self._end()
            if not decompressor.eof:
                raise MalformedAnswer("the compressed answer is corrupt or cut short")
            return b""

    def _next_member(self) -> Any:
        """A decompressor for the gzip member that follows the one that ended (RFC 1952 lets
        a gzip body hold several, one after another); MalformedAnswer for anything else."""
        if isinstance(self._decompressor, _Deflate) or not GZIP_MAGIC.startswith(self._tail[:2]):
            raise MalformedAnswer("the compressed answer goes on past its end")
        if len(self._tail) < 2:  # one byte of what may be a member's header: the next tells
            chunk = self._response.read(READ_SIZE)
            self._check()
            if not chunk:
                raise MalformedAnswer("the compressed answer goes on past its end")
            self._tail += chunk
            return self._next_member()
        self._members += 1
        if self._members > GZIP_MEMBERS:
            raise MalformedAnswer(f"the compressed answer has more than {GZIP_MEMBERS} gzip members")
        self._decompressor = _decompressor("gzip")
        return self._decompressor

    def _end(self) -> None:
        self._ended = True
        missing = getattr(self._response, "length", None)
        if missing:
            raise http.client.IncompleteRead(b"", missing)


def parse_document(document: bytes) -> Any:
    """The root element of an answer's XML, parsed with a hardened parser (xml_parser);
    MalformedAnswer when it is not well-formed or declares a DTD. The document is parsed in
    one call: lxml lets go of the GIL while it parses a document in memory (not while it is
    fed one piece by piece), so a page parsed on one thread does not hold up the decoding of
    another on the next."""
    if _declares_dtd(document[:4096]):  # said plainly, before libxml2 reads the DTD
        raise MalformedAnswer(_DTD)
    try:
        root = etree.fromstring(document, xml_parser())
    except etree.XMLSyntaxError as exc:
        raise MalformedAnswer(f"not well-formed XML ({first_line(exc)})") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:  # a DTD the first look missed (UTF-16, ...)
        raise MalformedAnswer(_DTD)
    return root


# A page's token as vCenter (and the simulator) write it, before the page's objects:
# <returnval><token>...</token><objects>... Only a token of printable ASCII without markup or
# references is taken, and only from an answer in UTF-8 (declared so, or by default) or ASCII:
# its bytes then read as what the parser will read (in Shift_JIS a backslash is a yen sign).
_LEADING_TOKEN = re.compile(
    rb"<(?:[A-Za-z_][\w.-]*:)?returnval(?:\s[^<>]*)?>\s*<(?:[A-Za-z_][\w.-]*:)?token(?:\s[^<>]*)?>"
    rb"([\x21-\x25\x27-\x3b\x3d\x3f-\x7e]{1,4096})</")
LEADING_BYTES = 16 << 10  # where the token is looked for
_DECLARED_ENCODING = re.compile(rb"\s*<\?xml[^>]{0,200}?\bencoding\s*=\s*[\"']([^\"']{0,40})[\"']")
_PLAIN_ENCODINGS = frozenset(("utf-8", "utf8", "us-ascii", "ascii"))


def leading_token(document: bytes) -> str | None:
    """The token of a RetrievePropertiesEx / ContinueRetrievePropertiesEx answer as its first
    bytes give it, before the page is parsed; None when they do not give it plainly. A guess
    to ask for the next page early with: page_token of the parsed answer is the word, and a
    guess that differs from it fails the page (Pages)."""
    declared = _DECLARED_ENCODING.match(document, 0, 1024)
    if declared is not None and declared.group(1).decode("ascii", "replace").lower() not in _PLAIN_ENCODINGS:
        return None
    found = _LEADING_TOKEN.search(document, 0, LEADING_BYTES)
    return None if found is None else found.group(1).decode("ascii")


_DTD = "the answer declares a DTD, which SOAP forbids"
_ELEMENT_START = re.compile(rb"<[A-Za-z_:]")


def _declares_dtd(head: bytes) -> bool:
    """Whether the prolog (what comes before the first element) in `head` has a DOCTYPE."""
    start = _ELEMENT_START.search(head)
    return b"<!DOCTYPE" in (head if start is None else head[:start.start()])


# bytes before an answer's first element that are read to check it (a vCenter writes the XML
# declaration and nothing else there; expat's entity expansion is bounded by what it has read,
# so padding there is what lets a small answer expand to gigabytes)
PROLOG_LIMIT = 64 << 10
_ENCODING = re.compile(rb"""encoding\s*=\s*["']([^"']*)["']""")
_UTF8 = frozenset((b"utf-8", b"utf8", b"us-ascii", b"ascii"))


def prolog_end(head: bytes) -> int | None:
    """Where the first element starts in `head`, the first bytes of an answer: after the
    XML declaration, comments, processing instructions and white space, nothing else. None
    while `head` is too short to tell. MalformedAnswer for a DOCTYPE (SOAP forbids one;
    pyVmomi's expat would expand its entities), an encoding other than UTF-8 (in which such
    a look could be blind) or anything that is no XML."""
    at = 3 if head.startswith(b"\xef\xbb\xbf") else 0
    while True:
        while at < len(head) and head[at] in b" \t\r\n":
            at += 1
        if at + 1 >= len(head):
            return None
        if head[at] != 0x3C:  # "<"
            raise MalformedAnswer("not XML: the answer does not start with an element")
        if head.startswith(b"<?", at):
            end = head.find(b"?>", at + 2)
            if end < 0:
                return None
            declared = _ENCODING.search(head, at, end) if head.startswith(b"<?xml", at) else None
            if declared is not None and declared.group(1).lower() not in _UTF8:
                raise MalformedAnswer(f"the answer is declared {declared.group(1)[:40].decode('ascii', 'replace')!r}"
                                      ", not UTF-8")
            at = end + 2
        elif head.startswith(b"<!--", at):
            end = head.find(b"-->", at + 4)
            if end < 0:
                return None
            at = end + 3
        elif head.startswith(b"<!", at):
            started = head[at:at + 9]
            if len(started) < 9 and (b"<!DOCTYPE".startswith(started) or b"<!--".startswith(started)):
                return None
            raise MalformedAnswer(_DTD if started == b"<!DOCTYPE" else "not well-formed XML (before its first "
                                  "element)")
        elif head[at + 1] >= 0x80 or chr(head[at + 1]).isalpha() or head[at + 1] in b"_:":
            return at
        else:
            raise MalformedAnswer("not well-formed XML (before its first element)")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def answer_element(root: Any, method: str) -> tuple[Any, bool]:
    """(element, is_fault): the <methodResponse> in a SOAP envelope's body, or its Fault."""
    if root.tag != ENVELOPE:
        raise MalformedAnswer(f"not a SOAP envelope but <{_local_name(root.tag)}>")
    body = next((child for child in root if child.tag == BODY), None)
    if body is None:
        raise MalformedAnswer("a SOAP envelope without a body")
    content = next((child for child in body if isinstance(child.tag, str)), None)
    if content is None:
        raise MalformedAnswer("an empty SOAP body")
    if content.tag == FAULT:
        return content, True
    if _local_name(content.tag) != f"{method}Response":
        raise MalformedAnswer(f"<{_local_name(content.tag)}> answers no {method}")
    return content, False


def _local_name(tag: Any) -> str:
    if not isinstance(tag, str):
        raise MalformedAnswer("an entity reference where an element was expected")
    return tag.rpartition("}")[2]


def page_token(answer: Any) -> str | None:
    """The token of a RetrievePropertiesEx / ContinueRetrievePropertiesEx answer element (None
    on the last page), found without reading the page."""
    if answer is None:
        return None
    for returnval in answer:
        for child in returnval:
            if _local_name(child.tag) == "token":
                return child.text or None
    return None


class AnswerTap:
    """Takes one SOAP answer from pyVmomi's stub: reads and checks it, keeps the answer
    element for the caller, and gives pyVmomi's deserialiser what it is to read instead: an
    empty answer, or the fault as sent, so that pyVmomi raises it as usual."""

    def __init__(self, method: str, limit: int = ANSWER_LIMIT,
                 on_token: Callable[[str], None] | None = None):
        self.method = method
        self.limit = limit
        self.answer: Any = None
        # a page's token as its first bytes give it (leading_token), told to `on_token` as soon
        # as the answer is in and before it is parsed; not for an answer past EARLY_LIMIT bytes
        self.on_token = on_token
        self.early_token: str | None = None
        self.connection: Any = None  # the HTTP connection the request went out on, once it has
        self.fault_text: str | None = None  # a fault's faultstring, for a message pyVmomi cannot give
        self.aborted = False
        self._lock = threading.Lock()

    def abort(self) -> None:
        """Cut the request off: not sent if it has not gone yet, else its connection shut, so
        that the thread waiting for its answer gets an error at once (not after the timeout)."""
        with self._lock:
            self.aborted = True
            _shut(self.connection)

    def sending(self, connection: Any) -> None:
        """The request goes out on `connection` (TappedConnection); refused once aborted."""
        with self._lock:
            if self.aborted:
                raise ConnectionAbortedError("the answer is no longer wanted")
            self.connection = connection

    def sent(self) -> None:
        """The request went out: an abort that came while it did cuts it off now."""
        with self._lock:
            if self.aborted:
                _shut(self.connection)

    def take(self, response: Any) -> bytes:
        """Read `response` (an http.client answer); what pyVmomi is to deserialise."""
        document = read_body(response, self.limit, deadline_check(self.connection))
        if self.on_token is not None and response.status == 200 and len(document) <= EARLY_LIMIT:
            self.early_token = leading_token(document)
            if self.early_token is not None:
                self.on_token(self.early_token)
        root = parse_document(document)
        del document
        element, is_fault = answer_element(root, self.method)
        if is_fault:
            text = next((child.text for child in element if child.tag == "faultstring"), None)
            # one line of printable text at most 200 characters long: it goes into a message
            self.fault_text = "".join(c if c.isprintable() else "?" for c in " ".join(text.split())[:200]) \
                if text else None
            return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        if response.status != 200:  # pyVmomi reads HTTP 500 too, and only a fault may come with it
            raise MalformedAnswer(f"HTTP {response.status} without a SOAP fault")
        self.answer = element
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<soapenv:Envelope xmlns:soapenv="{SOAP_NS[1:-1]}">'
                f'<soapenv:Body><{self.method}Response xmlns="urn:vim25"/></soapenv:Body>'
                '</soapenv:Envelope>').encode()


def _shut(connection: Any) -> None:
    """Shut an HTTP connection's socket down for both ways, if it has one: a read waiting on
    it in another thread ends at once. The socket's own shutdown, not the TLS layer's, which
    the reading thread is using."""
    sock = underlying_socket(getattr(connection, "sock", None))
    if sock is not None:
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Answer:
    """An http.client answer as pyVmomi reads it, its body read here: pyVmomi is told there
    is nothing to decompress (its own GzipReader inflates whatever a chunk holds, unbounded)."""

    def __init__(self, response: Any):
        self.response = response

    @property
    def status(self) -> int:
        return self.response.status

    @property
    def reason(self) -> str:
        return self.response.reason

    def getheader(self, name: str, default: str | None = None) -> str | None:
        """The answer's header; the body is decompressed here, so pyVmomi is told it is not."""
        if name.lower() == "content-encoding":
            return "identity"
        return self.response.getheader(name, default)

    def close(self) -> None:
        """Close the underlying answer."""
        self.response.close()


class TappedResponse(_Answer):
    """An http.client answer whose body goes through a tap before pyVmomi reads it."""

    def __init__(self, response: Any, tap: AnswerTap):
        super().__init__(response)
        self.tap = tap
        self._served: io.BytesIO | None = None

    def read(self, amount: int | None = -1) -> bytes:
        """What the tap lets pyVmomi read (the whole answer is taken at the first read); each
        read within the request's deadline, as pyVmomi's expat parser may crawl on a fault."""
        deadline_check(self.tap.connection)()
        if self._served is None:
            self._served = io.BytesIO(self.tap.take(self.response))
        return self._served.read(-1 if amount is None else amount)


class TappedConnection:
    """A connection of pyVmomi's pool whose next answer goes through a tap."""

    def __init__(self, connection: Any, tap: AnswerTap):
        self.connection = connection
        self.tap = tap

    def request(self, *args: Any, **kwargs: Any) -> None:
        """Send the request, as the connection does (unless the tap was aborted)."""
        self.tap.sending(self.connection)
        self.connection.request(*args, **kwargs)
        self.tap.sent()

    def getresponse(self) -> TappedResponse:
        """The answer, tapped."""
        return TappedResponse(self.connection.getresponse(), self.tap)

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connection, name)


class BoundedResponse(_Answer):
    """An answer pyVmomi reads itself (the login, the lookups, faults, and every answer with
    --vsphere-parser pyvmomi), its body read through DecodedBody: decompressed no more than
    pyVmomi's parser asks for at a time, up to ANSWER_LIMIT, and each read within the
    request's deadline. Read by pyVmomi's GzipReader and expat, a 7 KB gzip fault kept a
    collection busy for 12 s past a 1 s timeout. Its prolog is checked first (prolog_end,
    within PROLOG_LIMIT bytes): a DTD whose one entity expat expands to 61 MB inside one
    read, which pyVmomi then gathers quadratically, took 3 minutes of a 1 s timeout."""

    def __init__(self, response: Any, connection: Any):
        super().__init__(response)
        self._body = DecodedBody(response, ANSWER_LIMIT, deadline_check(connection))
        self._head: bytes | None = None  # the prolog and what came with it, once checked

    def read(self, amount: int | None = -1) -> bytes:
        """The next `amount` bytes of the body (all that is left, for -1 or None)."""
        if self._head is None:
            self._head = self._checked_head()
        if amount is None or amount < 0:
            head, self._head = self._head, b""
            return head + self._body.read()
        if self._head:
            piece, self._head = self._head[:amount], self._head[amount:]
            return piece
        return self._body.read(amount)

    def _checked_head(self) -> bytes:
        head = b""
        while prolog_end(head) is None:
            if len(head) > PROLOG_LIMIT:
                raise MalformedAnswer(f"more than {PROLOG_LIMIT >> 10} KiB before the answer's first element")
            piece = self._body.read(4096)
            if not piece:
                break  # the parser says what is missing
            head += piece
        return head


class BoundedConnection:
    """A connection of pyVmomi's pool whose next answer pyVmomi reads as a BoundedResponse."""

    def __init__(self, connection: Any):
        self.connection = connection

    def getresponse(self) -> BoundedResponse:
        """The answer, bounded."""
        return BoundedResponse(self.connection.getresponse(), self.connection)

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connection, name)


# -- the PropertyCollector's answer ------------------------------------------------------------


class PlainContent(NamedTuple):
    """One object of a page read with lxml: its reference (pyVmomi's object), its properties
    as (path, value) with the values as the snapshot keeps them, the paths the server could
    not read."""

    obj: Any
    properties: list[tuple[str, Any]]
    missing: list[str]


class RetrievePage(NamedTuple):
    """One page of RetrievePropertiesEx / ContinueRetrievePropertiesEx (objects, token)."""

    objects: list[PlainContent]
    token: str | None


# (type, property path) -> a reduction, which gets the value as pyVmomi's (data objects as
# ElementViews) and returns what is kept of it; other properties are kept whole, as plain data
Reductions = Mapping[tuple[str, str], Callable[[Any], Any]]


class KeptItems(NamedTuple):
    """The reduction of an array property that keeps only items of the types `keeps` accepts
    (`reduce` drops the others itself): called, it is `reduce`; the decoder hands it only the
    items `keeps` accepts and never reads the others (a VM's dozen devices, of which one or
    two are kept, are most of a page)."""

    keeps: Callable[[type], bool]
    reduce: Callable[[Any], Any]

    def __call__(self, value: Any) -> Any:
        """What `reduce` keeps of the whole value (pyVmomi's, or an answer's read whole)."""
        return self.reduce(value)


# -- types ---------------------------------------------------------------------------------------

_PRIMITIVE, _DATA, _FAULT, _LIST, _REFERENCE = range(5)
_KINDS: dict[type, int] = {}
_COMPATIBLE: dict[tuple[type, str], type] = {}
_TYPES: dict[tuple[str, str, bool], type] = {}
_PLANS: dict[type, _Plan] = {}
_READERS: dict[type, Any] = {}


def _kind(cls: type) -> int:
    kind = _KINDS.get(cls)
    if kind is None:
        if issubclass(cls, list):
            kind = _LIST
        elif issubclass(cls, VmomiSupport.DataObject):
            # pyVmomi reads a fault property as a LocalizedMethodFault around the fault
            kind = _FAULT if issubclass(cls, Exception) else _DATA
        elif issubclass(cls, VmomiSupport.ManagedObject):
            kind = _REFERENCE
        else:
            kind = _PRIMITIVE
        _KINDS[cls] = kind
    return kind


def compatible(cls: type, version: str) -> type:
    """The type pyVmomi gives a value of `cls` in a session of API `version`."""
    key = (cls, version)
    found = _COMPATIBLE.get(key)
    if found is None:
        found = _COMPATIBLE[key] = VmomiSupport.GetCompatibleType(cls, version)
    return found


class _Plan(NamedTuple):
    """How to read a data object type: its properties by name (type, is an array, and for a
    primitive type the reader of its text), and in pyVmomi's order the ones `to_plain`
    shows, with the default of each (or _ABSENT)."""

    slots: dict[str, tuple[type, bool, Any]]
    fields: tuple[tuple[str, Any], ...]
    defaults: dict[str, Any]


def _plan(cls: type) -> _Plan:
    plan = _PLANS.get(cls)
    if plan is None:
        slots: dict[str, tuple[type, bool, Any]] = {}
        fields = []
        for info in cls._GetPropertyList():
            if info.name in _SKIPPED:
                continue
            is_array = issubclass(info.type, list)
            item = info.type.Item if is_array else info.type
            reader = _reader(item) if _kind(item) == _PRIMITIVE and item not in (type, object) else None
            slots[info.name] = (info.type, is_array, reader)
            fields.append((info.name, _default(info)))
        plan = _PLANS[cls] = _Plan(slots, tuple(fields), dict(fields))
    return plan


def _default(info: Any) -> Any:
    """What an absent property reads as: DataObject.__init__'s default, through to_plain."""
    kind = info.type
    if issubclass(kind, list):
        return _EMPTY
    if info.flags & VmomiSupport.F_OPTIONAL:
        return _ABSENT
    if kind is bool:
        return False
    if issubclass(kind, VmomiSupport.Enum):
        return _ABSENT
    if issubclass(kind, str):
        return ""
    if issubclass(kind, int):
        return 0
    if issubclass(kind, float):
        return 0.0
    return _ABSENT  # references, data objects, times, binary: None


def _shallow_default(default: Any) -> Any:
    """A default of _default as pyVmomi's attribute holds it."""
    if default is _EMPTY:
        return []
    return None if default is _ABSENT else default


# -- primitive values: text -> what to_plain makes of pyVmomi's value --------------------------


def _read_text(text: str) -> str:
    return text


def _read_bool(text: str) -> bool:
    if text == "0" or text.lower() == "false":
        return False
    if text == "1" or text.lower() == "true":
        return True
    raise MalformedAnswer(f"{text[:40]!r} is not a boolean")


def _read_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise MalformedAnswer(f"{text[:40]!r} is not a whole number") from None


def _read_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise MalformedAnswer(f"{text[:40]!r} is not a number") from None


def iso_utc(value: datetime.datetime) -> str:
    """A time as the snapshot writes it: ISO 8601 in UTC to the second, with a Z."""
    if value.tzinfo is not None:
        value = value.astimezone(datetime.UTC)
    return value.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def _read_datetime(text: str) -> str:
    value = Iso8601.ParseISO8601(text)  # pyVmomi's own parser: the same times, the same refusals
    if not value:
        raise MalformedAnswer(f"{text[:40]!r} is not an ISO 8601 time")
    try:
        return iso_utc(value)
    except OverflowError:  # year 1 east of UTC: no time Python can hold
        raise MalformedAnswer(f"{text[:40]!r} is out of range") from None


def _read_binary(text: str) -> None:
    try:
        base64.b64decode(text)
    except (binascii.Error, ValueError):
        raise MalformedAnswer("a binary value that is not base64") from None
    return None  # binary blobs (certificates, thumbprints) are no rule's business


def _read_enum(kind: type, values: frozenset[str], text: str) -> str:
    if text not in values:
        raise MalformedAnswer(f"{text[:40]!r} is no value of {kind._wsdlName}")
    return text


def _read_untyped(text: str) -> str:
    raise MalformedAnswer("a value of anyType without an xsi:type")


def _reader(cls: type) -> Any:
    reader = _READERS.get(cls)
    if reader is None:
        if cls is bool:
            reader = _read_bool
        elif issubclass(cls, VmomiSupport.Enum):
            reader = partial(_read_enum, cls, frozenset(getattr(cls, "values", ())))
        elif issubclass(cls, str) or cls is VmomiSupport.ManagedMethod:
            # a MethodName is kept as its text (pyVmomi's object would print an address)
            reader = _read_text
        elif issubclass(cls, int):
            reader = _read_int
        elif issubclass(cls, float):
            reader = _read_float
        elif issubclass(cls, datetime.datetime):
            reader = _read_datetime
        elif issubclass(cls, bytes):
            reader = _read_binary
        elif cls is object:
            reader = _read_untyped
        else:
            raise MalformedAnswer(f"a value of type {getattr(cls, '__name__', cls)} this reader does not know")
        _READERS[cls] = reader
    return reader


# -- the decoder ------------------------------------------------------------------------------


class Decoder:
    """Reads the elements of one answer as values of pyVmomi's types, in a session of API
    `version` (one decoder per answer: namespace prefixes are resolved once per answer)."""

    def __init__(self, version: str):
        self.version = version
        self._names: dict[Any, str] = {}
        self._xsi: dict[str, type] = {}
        self._resolved: dict[tuple[str | None, type], type] = {}
        self._references: dict[str, type] = {}
        self._top: dict[str | None, type] = {}  # xsi:type of a property value -> its type
        self._by_kind: tuple[Reductions, dict[str, dict[str, Callable[[Any], Any]]]] | None = None
        self._kept: dict[Callable[[type], bool], dict[type, bool]] = {}  # KeptItems' verdicts by type

    # -- names and types

    def _local(self, tag: Any) -> str:
        name = self._names.get(tag)
        if name is None:
            name = self._names[tag] = _local_name(tag)
        return name

    def _qualified(self, element: Any, text: str) -> tuple[str, str]:
        prefix, colon, name = text.partition(":")
        if not colon:
            prefix, name = None, text
        return element.nsmap.get(prefix, ""), name

    def _wsdl_type(self, element: Any, text: str, allow_reference: bool) -> type:
        namespace, name = self._qualified(element, text)
        key = (namespace, name, allow_reference)
        found = _TYPES.get(key)
        if found is None:
            try:
                found = _lookup_wsdl_type(namespace, name, allowManagedObjectReference=allow_reference)
            except KeyError:
                raise MalformedAnswer(f"unknown type {text[:80]!r}") from None
            _TYPES[key] = found
        return found

    def _resolve(self, element: Any, expected: type) -> type:
        """The type pyVmomi gives `element` where a value of `expected` is due (its
        StartElementHandler): the xsi:type, an array's item type, narrowed to the version."""
        xsi = element.get(XSI_TYPE) or None
        key = (xsi, expected)
        found = self._resolved.get(key)
        if found is None:
            cls = expected
            if xsi is not None and expected not in _DYNAMIC:
                named = self._xsi.get(xsi)
                if named is None:
                    named = self._xsi[xsi] = self._wsdl_type(element, xsi, allow_reference=True)
                if not (issubclass(named, list) and issubclass(expected, list)):
                    cls = named
            elif xsi is None and issubclass(expected, list):
                cls = expected.Item
            found = self._resolved[key] = compatible(cls, self.version)
        return found

    def _primitive(self, element: Any, cls: type) -> Any:
        if len(element):
            raise MalformedAnswer(f"<{self._local(element.tag)}> holds elements where a value is due")
        text = element.text or ""
        reader = _READERS.get(cls)
        if reader is not None:
            return reader(text)
        if cls is type:  # a TypeName: the type's WSDL name, None when empty
            if not text:
                return _NULL
            named = self._wsdl_type(element, text, allow_reference=False)
            return getattr(named, "_wsdlName", named.__name__)
        return _reader(cls)(text)

    def _reference_type(self, element: Any) -> type:
        text = element.get("type")
        if text is None:
            raise MalformedAnswer(f"a reference <{self._local(element.tag)}> without its type")
        found = self._references.get(text)
        if found is None:
            found = self._wsdl_type(element, text, allow_reference=False)
            if not (isinstance(found, type) and issubclass(found, VmomiSupport.ManagedObject)):
                raise MalformedAnswer(f"{text[:80]!r} is no managed object type")
            self._references[text] = found
        return found

    def _fault(self, element: Any) -> tuple[Any, type, Any]:
        """A LocalizedMethodFault: (the fault's element, its type, the localized message)."""
        inner, message = None, None
        for child in element:
            name = self._local(child.tag)
            if name == "fault":
                inner = child
            elif name == "localizedMessage":
                message = self._primitive(child, str)
        if inner is None:
            raise MalformedAnswer("a fault without its <fault>")
        # the inner fault is read as itself, not as another LocalizedMethodFault
        return inner, self._resolve(inner, VmomiSupport.GetVmodlType("vmodl.MethodFault")), message

    # -- plain data

    def plain(self, element: Any, expected: type = object, declared: type | None = None) -> Any:
        """`element` as `to_plain(value, declared)` renders pyVmomi's value of it."""
        value = self._plain(element, self._resolve(element, expected), declared)
        return None if value is _NULL else value

    def _plain(self, element: Any, cls: type, declared: Any) -> Any:
        kind = _KINDS.get(cls)
        if kind is None:
            kind = _kind(cls)
        if kind == _PRIMITIVE:
            return self._primitive(element, cls)
        if kind == _DATA:
            return self.data(element, cls, declared)
        if kind == _LIST:
            item, item_declared = cls.Item, getattr(declared, "Item", None)
            values = [self._plain(child, self._resolve(child, item), item_declared) for child in element]
            return [None if value is _NULL else value for value in values]
        if kind == _REFERENCE:
            self._reference_type(element)
            return self._primitive(element, str)
        inner, inner_cls, message = self._fault(element)
        return self.data(inner, inner_cls, declared, message)

    def data(self, element: Any, cls: type, declared: Any, message: Any = _UNSET) -> dict[str, Any]:
        """A data object element of type `cls` as `to_plain(value, declared)` renders it."""
        slots, fields, _ = _PLANS.get(cls) or _plan(cls)
        values: dict[str, Any] = {}
        names, local = self._names, self._local
        for child in element:
            name = names.get(child.tag) or local(child.tag)
            slot = slots.get(name)
            if slot is None:
                if name in _SKIPPED:
                    continue
                raise MalformedAnswer(f"{cls._wsdlName} has no property {name[:80]!r}")
            kind, is_array, reader = slot
            if reader is not None and not len(child) and child.get(XSI_TYPE) is None:
                # most properties: a primitive of its declared type (_resolve and _plain in short)
                if is_array:
                    values.setdefault(name, []).append(reader(child.text or ""))
                else:
                    values[name] = reader(child.text or "")
                continue
            child_cls = self._resolve(child, kind)
            if not is_array or _kind(child_cls) == _LIST:  # a value, or a whole array (xsi:type ArrayOf...)
                values[name] = self._plain(child, child_cls, kind)
            else:  # one item of an array
                value = self._plain(child, child_cls, kind.Item)
                values.setdefault(name, []).append(None if value is _NULL else value)
        if message is not _UNSET:  # pyVmomi puts a LocalizedMethodFault's message in its fault
            values["msg"] = _NULL if message is None else message
        out: dict[str, Any] = {"_type": cls._wsdlName} if declared is not None and cls is not declared else {}
        for name, default in fields:
            value = values.get(name, _ABSENT)
            if value is _ABSENT:
                if default is not _ABSENT:
                    out[name] = [] if default is _EMPTY else default
            elif value is not _NULL:
                out[name] = value
        return out

    # -- pyVmomi-like values, for the reductions

    def shallow(self, element: Any, expected: type = object) -> Any:
        """`element` as pyVmomi's value for reading attributes of: primitives as `plain`
        gives them, references as pyVmomi's objects, arrays as lists, data objects as views."""
        return self._shallow(element, self._resolve(element, expected))

    def _shallow(self, element: Any, cls: type) -> Any:
        kind = _kind(cls)
        if kind == _PRIMITIVE:
            value = self._primitive(element, cls)
            return None if value is _NULL else value
        if kind == _DATA:
            return ElementView(self, element, cls)
        if kind == _LIST:
            return [self._shallow(child, self._resolve(child, cls.Item)) for child in element]
        if kind == _REFERENCE:
            reference = self._reference_type(element)
            return reference(self._primitive(element, str))
        inner, inner_cls, message = self._fault(element)
        return ElementView(self, inner, inner_cls, message)

    def attribute(self, matches: Any, kind: type, default: Any) -> Any:
        """A property of type `kind` of a data object, from the elements of it (`matches`),
        as pyVmomi's attribute reads (`default`, as _default gives it, when there are none)."""
        if issubclass(kind, list):
            values: list[Any] = []
            for child in matches:
                child_cls = self._resolve(child, kind)
                if _kind(child_cls) == _LIST:
                    values = self._shallow(child, child_cls)
                else:
                    values.append(self._shallow(child, child_cls))
            return values
        if not matches:
            return _shallow_default(default)
        return self._shallow(matches[-1], self._resolve(matches[-1], kind))

    def _kept_items(self, element: Any, keeps: Callable[[type], bool]) -> Any:
        """An array value as `shallow` reads it, but only the items whose type `keeps`
        accepts; the others are typed (an unknown type is refused as ever) and left unread."""
        cls = self._resolve(element, object)
        if _kind(cls) != _LIST:
            return self._shallow(element, cls)
        item, kept = cls.Item, []
        verdicts = self._kept.get(keeps)
        if verdicts is None:
            verdicts = self._kept[keeps] = {}
        for child in element:
            child_cls = self._resolve(child, item)
            keep = verdicts.get(child_cls)
            if keep is None:
                keep = verdicts[child_cls] = bool(keeps(child_cls))
            if keep:
                kept.append(self._shallow(child, child_cls))
        return kept

    # -- pages

    def retrieve_result(self, answer: Any, reductions: Reductions) -> RetrievePage | None:
        """A RetrievePropertiesEx / ContinueRetrievePropertiesEx answer element as its page
        (None: RetrievePropertiesEx found nothing), each property reduced as `reductions` says
        or else made plain."""
        returnval = None
        for child in answer:
            if self._local(child.tag) != "returnval":
                raise MalformedAnswer(f"<{self._local(child.tag)[:80]}> in a PropertyCollector answer")
            returnval = child
        if returnval is None:
            return None
        token, objects = None, []
        for child in returnval:
            name = self._local(child.tag)
            if name == "objects":
                objects.append(self._object_content(child, reductions))
            elif name == "token":
                token = self._primitive(child, str)
            elif name not in _SKIPPED:
                raise MalformedAnswer(f"RetrieveResult has no property {name[:80]!r}")
        return RetrievePage(objects, token or None)

    def _object_content(self, element: Any, reductions: Reductions) -> PlainContent:
        reference, values, missing = None, [], []
        reduced: dict[str, Callable[[Any], Any]] | None = None  # known with the reference
        early: list[tuple[str, Any]] = []  # properties before the reference (no server sends them so)
        names, local, top = self._names, self._local, self._top
        for child in element:
            name = names.get(child.tag) or local(child.tag)
            if name == "propSet":
                path, value = None, None
                if len(child) == 2:  # <name/><val/>, as every server sends it: _property in short
                    first = child[0]  # indexed: unpacking would make an iterator per property
                    value = child[1]
                    if (not len(first) and (names.get(first.tag) or local(first.tag)) == "name"
                            and (names.get(value.tag) or local(value.tag)) == "val"):
                        path = first.text or ""
                if path is None:
                    path, value = self._property(child)
                if reduced is None:
                    early.append((path, value))
                    continue
                reduce = reduced.get(path)
                if reduce is None and value is not None and not len(value):
                    # most values: a string, a number, a boolean of a type seen before (_value in short)
                    reader = _READERS.get(top.get(value.get(XSI_TYPE)))
                    if reader is not None:
                        values.append((path, reader(value.text or "")))
                        continue
                values.append((path, self._value(reduce, value)))
            elif name == "obj":
                reference = self._shallow(child, VmomiSupport.ManagedObject)
                reduced = self._reductions(reductions).get(type(reference)._wsdlName, {})
                values.extend((path, self._value(reduced.get(path), value)) for path, value in early)
            elif name == "missingSet":
                # only the path is kept: the fault says why, which the snapshot does not
                missing.append(next((self._primitive(item, str) for item in child if local(item.tag) == "path"), ""))
            elif name not in _SKIPPED:
                raise MalformedAnswer(f"ObjectContent has no property {name[:80]!r}")
        if reference is None:
            raise MalformedAnswer("an object without its reference")
        return PlainContent(reference, values, missing)

    def _reductions(self, reductions: Reductions) -> dict[str, dict[str, Callable[[Any], Any]]]:
        """`reductions` by type, then path (made once per answer)."""
        if self._by_kind is None or self._by_kind[0] is not reductions:
            by_kind: dict[str, dict[str, Callable[[Any], Any]]] = {}
            for (kind, path), reduce in reductions.items():
                by_kind.setdefault(kind, {})[path] = reduce
            self._by_kind = (reductions, by_kind)
        return self._by_kind[1]

    def _property(self, element: Any) -> tuple[str, Any]:
        """A DynamicProperty: (name, the element of its value or None)."""
        local = self._local
        if len(element) == 2:  # <name/><val/>, as every server sends it
            first, second = element
            if local(first.tag) == "name" and local(second.tag) == "val":
                return self._primitive(first, str), second
        name, value = "", None
        for child in element:
            part = local(child.tag)
            if part == "name":
                name = self._primitive(child, str)
            elif part == "val":
                value = child
            elif part not in _SKIPPED:
                raise MalformedAnswer(f"DynamicProperty has no property {part[:80]!r}")
        return name, value

    def _value(self, reduce: Callable[[Any], Any] | None, element: Any) -> Any:
        """A property value as the snapshot keeps it: reduced, else plain."""
        if reduce is not None:
            if element is None:
                return reduce(None)
            if isinstance(reduce, KeptItems):
                return reduce.reduce(self._kept_items(element, reduce.keeps))
            return reduce(self.shallow(element))
        if element is None:
            return None
        xsi = element.get(XSI_TYPE)
        cls = self._top.get(xsi)
        if cls is None:
            cls = self._top[xsi] = self._resolve(element, object)
        reader = _READERS.get(cls)
        if reader is not None and not len(element):  # most values: a string, a number, a boolean
            return reader(element.text or "")
        value = self._plain(element, cls, None)
        return None if value is _NULL else value


class ElementView:
    """A data object of an answer, read like pyVmomi's object of it: `view.name` decodes that
    property when asked for (`vim_type` is its type); `plain(declared)` is what `to_plain`
    makes of the whole object."""

    __slots__ = ("_children", "_decoder", "_element", "_message", "vim_type")

    def __init__(self, decoder: Decoder, element: Any, vim_type: type, message: Any = _UNSET):
        self._decoder = decoder
        self._element = element
        self._message = message
        self._children: dict[str, list[Any]] | None = None
        self.vim_type = vim_type

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # copy, pickle and the like probe for dunders
            raise AttributeError(name)
        slot = (_PLANS.get(self.vim_type) or _plan(self.vim_type)).slots.get(name)
        if slot is None:  # dynamicType, dynamicProperty, or AttributeError: a property the type lacks
            info = self.vim_type._GetPropertyInfo(name)
            return self._decoder.attribute(self._matches(name), info.type, _default(info))
        if name == "msg" and self._message is not _UNSET:
            return self._message
        kind, is_array, reader = slot
        matches = self._matches(name)
        if reader is not None and not is_array and matches:
            last = matches[-1]
            if not len(last) and last.get(XSI_TYPE) is None:  # a primitive of its declared type
                return reader(last.text or "")
        return self._decoder.attribute(matches, kind, _PLANS[self.vim_type].defaults[name])

    def _matches(self, name: str) -> Any:
        """The elements of property `name` (the children are sorted by name once)."""
        children = self._children
        if children is None:
            children = self._children = {}
            names, local = self._decoder._names, self._decoder._local
            for child in self._element:
                children.setdefault(names.get(child.tag) or local(child.tag), []).append(child)
        return children.get(name, ())

    def _GetPropertyInfo(self, name: str) -> Any:
        """The type's property info, as pyVmomi's objects have it."""
        return self.vim_type._GetPropertyInfo(name)

    def plain(self, declared: Any = None) -> dict[str, Any]:
        """The whole object as `to_plain(obj, declared)` renders it."""
        return self._decoder.data(self._element, self.vim_type, declared, self._message)

    def __repr__(self) -> str:
        return f"ElementView({self.vim_type._wsdlName})"
