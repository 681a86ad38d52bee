"""vSphere source: a vCenter's inventory through the PropertyCollector (pyvmomi).

One ContainerView over the whole inventory and one RetrievePropertiesEx with every type's
property paths, then ContinueRetrievePropertiesEx while the vCenter hands back a token:
the round trips grow with pages (PAGE_SIZE objects each), not with objects. Per-object
attribute access (`vm.config.version`) would cost one round trip per property per object.

The pages are read by lxml (`--vsphere-parser fast`, the default; vsphere_soap): pyVmomi
sends the requests and keeps the session, but its deserialiser, which makes a Python object
of every element in expat callbacks (over three seconds of CPU for 2,000 VMs), never sees
them; each property goes straight to the plain data the snapshot keeps, reduced by the same
REDUCTIONS. `--vsphere-parser pyvmomi` reads them with pyVmomi into its objects first: the
same snapshot (tests/test_vsphere_fast.py), kept as the reference. While a page is decoded
the next one is already asked for, from the token in its first bytes (Pages). Collected with
other sources, a vCenter is collected in a process of its own (VSphereSource.own_process,
sources.collect_all).

Every request (the API version probe, login, RetrievePropertiesEx,
ContinueRetrievePropertiesEx, logout) runs within `--timeout`: sending it and reading all of
its answer, with the TLS handshake of a new connection (sources.deadline: a peer answering a
byte at a time is cut off too); connecting gets the timeout for each of the host's
addresses. pyVim's SmartConnect is not used: its version probe opens a connection without
one, and its `connectionPoolTimeout` only closes idle pooled connections. A vCenter that
accepts and then says nothing fails the source after one timeout; the cleanup requests after
it (DestroyView, logout) are not sent to it, as each would wait the timeout again.

Resources keep vSphere's property paths as nested mappings (`summary.config.product.version`).
What is read is what the rules and the Security Configuration Guide's controls need, and no
more. Left out on purpose: licence keys (only the last group is kept), host and VM advanced
settings and vCenter settings outside the allow-lists of `auditor.inventory` (they can carry
credentials and tokens), iSCSI CHAP names and secrets, backing file paths of removable
devices, and virtual devices other than network adapters and the types the guide wants gone.

A standalone ESXi host (about.apiType "HostAgent") is collected as a host: Source kind
"esxi", its about info in the source's details, no vCenter resource. Lookups beside the
inventory (licences, licence assignments, custom field names, vCenter settings) are
optional: one that fails is named with its reason in details["not_collected"] and the rest of
the inventory stands. A peer that stops answering still fails the whole source.

Property paths are checked against the API version agreed with the server: a path that
version does not know (capability.uefiSecureBoot before vSphere 8.0 U3) is not asked for, as
the server would refuse the whole request with InvalidProperty. Paths are typed by their
declared types, so the VMware switch fields (maxMtu, linkDiscoveryProtocolConfig, ...) of a
switch's `config` are read with the whole `config` and picked here.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import gc
import http.client
import importlib.metadata
import ipaddress
import re
import socket
import ssl
import threading
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from xml.etree import ElementTree
from xml.parsers.expat import ExpatError

from pyVmomi import SoapStubAdapter, VmomiSupport, vim, vmodl

from ..inventory import ESXI_SETTINGS, VCENTER_SETTINGS, VM_DEVICE_TYPES, VM_SETTING_PATTERNS, VM_SETTINGS
from ..patterns import linear
from ..snapshot import Source, make_resource
from . import Collected, InventorySource, Progress
from .deadline import DeadlineHTTPSConnection
from .vsphere_soap import (
    AnswerTap,
    BoundedConnection,
    Decoder,
    ElementView,
    KeptItems,
    MalformedAnswer,
    PlainContent,
    TappedConnection,
    first_line,
    iso_utc,
    page_token,
    prolog_end,
)

T = TypeVar("T")

# Objects per page. The next page is asked for while this one is read (Pages), so a page
# costs no round trip of waiting; smaller pages let the vCenter and the client work side by
# side sooner and for longer: at 2,000 VMs, best of six, twice, 250 a page took 0.64-0.67 s
# where 500 took 0.72 s (the first page comes after 0.09 s, not 0.17) and 1,000 took more;
# at 10,000 VMs 250 and 500 are alike (3.33 and 3.38 s).
PAGE_SIZE = 250
# how the PropertyCollector's pages are read: with lxml straight into plain data (vsphere_soap),
# or by pyVmomi's deserialiser into its objects first (several times the CPU, under the GIL)
PARSERS = ("fast", "pyvmomi")
VERSIONS_DOCUMENT = "/sdk/vimServiceVersions.xml"
VERSIONS_LIMIT = 1 << 20  # bytes; the document is a few kB, a peer that sends more is not a vCenter

# Property paths per managed object type. The whole `config` of a distributed port group is
# small and entirely relevant (VLAN, security policy); for hosts and VMs only the parts the
# rules, facts and the Security Configuration Guide's controls read are fetched. A switch's
# `config` is read whole and reduced (SWITCH_CONFIG_FIELDS): the VMware switch fields are not
# addressable by path, as `config` is declared DistributedVirtualSwitch.ConfigInfo.
PROPERTIES: dict[type, list[str]] = {
    vim.HostSystem: [
        "name", "parent", "summary.config.product", "summary.hardware", "summary.runtime.connectionState",
        "summary.runtime.inMaintenanceMode", "summary.runtime.powerState", "config.lockdownMode",
        "config.service", "config.dateTimeInfo", "config.option", "config.network.portgroup",
        "config.network.vswitch", "config.firewall", "config.storageDevice.hostBusAdapter",
        "config.authenticationManagerInfo", "capability.uefiSecureBoot",
    ],
    vim.VirtualMachine: [
        "name", "config.guestId", "config.guestFullName", "config.version", "config.uuid",
        "config.instanceUuid", "config.template", "config.hardware.numCPU", "config.hardware.memoryMB",
        "config.hardware.device", "guest.guestFullName", "guest.guestId", "guest.toolsStatus",
        "guest.toolsVersionStatus2", "guest.toolsVersion", "guest.toolsRunningStatus", "guest.hostName",
        "guest.ipAddress", "runtime.powerState", "runtime.host", "network", "customValue", "resourcePool",
        "config.extraConfig", "config.bootOptions", "config.firmware", "config.ftEncryptionMode",
        "config.migrateEncryption", "config.flags.enableLogging",
    ],
    vim.Network: ["name", "summary"],
    vim.dvs.DistributedVirtualPortgroup: ["config"],
    vim.DistributedVirtualSwitch: ["name", "config", "summary.productInfo"],
    vim.ClusterComputeResource: ["name", "summary", "configuration.dasConfig", "configuration.drsConfig"],
    vim.Datastore: ["name", "summary"],
}

# What is kept of a distributed switch's config: uplinks and MTU, the default port policy
# (security, VLAN, ...), and from VMware switches link discovery (CDP/LLDP), NetFlow (IPFIX)
# and port mirroring sessions.
SWITCH_CONFIG_FIELDS = ("uplinkPortgroup", "maxMtu", "defaultPortConfig", "linkDiscoveryProtocolConfig",
                        "ipfixConfig", "vspanSession")

# What is kept of an iSCSI adapter's CHAP settings: whether and how it authenticates, never
# the names and secrets.
CHAP_FIELDS = ("chapAuthEnabled", "chapAuthenticationType", "chapInherited", "mutualChapAuthenticationType",
               "mutualChapInherited")

# VM advanced settings are matched without regard to case, as the VMX file reads them.
_VM_SETTING_KEYS = frozenset(key.lower() for key in VM_SETTINGS)
_VM_SETTING_PATTERNS = tuple(linear(pattern, ignore_case=True) for pattern in VM_SETTING_PATTERNS)


@dataclass
class VSphereConnection:
    """Where and how to log in; the password never leaves this object."""

    host: str
    port: int = 443
    user: str = ""
    password: str = ""
    ca_bundle: str | None = None
    insecure: bool = False
    timeout: float = 60.0
    # where the user and password came from, for the message of a failed login
    credentials_from: str = "VSPHERE_USER and VSPHERE_PASSWORD"

    @property
    def label(self) -> str:
        """The source id: the host as `endpoint` spells it (so that `VC1.` and `vc1` give one
        id, and findings compared across scans stay the same findings), with the port when
        it is not 443 (an IPv6 address then in brackets, as in a URL: ::1:9443 would read as
        an address)."""
        host = endpoint(self.host, self.port)[0]
        return host if self.port == 443 else host_port(host, self.port)

    def __repr__(self) -> str:  # keep the password out of logs and tracebacks
        return f"VSphereConnection(host={self.host!r}, port={self.port}, user={self.user!r})"


def host_port(host: str, port: int) -> str:
    """`host:port`, an IPv6 address in brackets as in a URL (::1:9443 would read as an
    address)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# what a host name holds once IDNA has made it ASCII
_HOST_CHARACTERS = re.compile(r"[A-Za-z0-9._-]+")


def parse_server(text: str) -> tuple[str, int]:
    """`host`, `host:port`, an IPv6 address (bare or `[...]:port`) or `https://host:port/sdk`
    -> (host, port); ValueError, saying why, for what names no host (control characters,
    spaces, an empty or over-long label, a stray colon, a port out of range) or carries a
    user and password, which http.client would otherwise refuse only mid-collection (and
    the password would be shown in its messages)."""
    text = text.strip()
    if "@" in text:  # before anything is split: a password may hold "/" or ":"
        raise ValueError("a user and password do not go in the server's address")
    url = "://" in text
    if url:
        scheme, text = text.split("://", 1)
        if scheme.lower() != "https":
            raise ValueError("vCenter is reached over https:// only")
    text, _, path = text.partition("/")
    if path.rstrip("/") not in ("", "sdk"):  # the API is at /sdk: another path would not be what is collected
        raise ValueError("the vSphere API is at https://HOST/sdk: give no other path, query or fragment")
    if text.startswith("["):  # [::1]:443
        host, closed, rest = text[1:].partition("]")
        if not closed:
            raise ValueError("an IPv6 address opened with [ is not closed with ]")
        port = rest[1:] if rest.startswith(":") else "443" if not rest else "not a number"
        if url:  # RFC 6874: in a URL, the zone's "%" is written "%25"
            host = host.replace("%25", "%", 1)
        host = _ip_v6_host(host)
    elif text.count(":") > 1:  # an IPv6 address alone
        host, port = _ip_v6_host(text), "443"
    else:
        host, _, port = text.partition(":")
        port = port if ":" in text else "443"
    if not host or not all(character.isprintable() and not character.isspace() for character in host):
        raise ValueError("not a host name, host:port or https:// URL")
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError("the port is not a number from 1 to 65535")
    if ":" not in host:  # an IPv6 address is no DNS name
        try:
            resolved = host.encode("idna").decode("ascii")  # what the resolver is given
        except UnicodeError:
            raise ValueError("not a host name: a label is empty or longer than 63 characters") from None
        if not _HOST_CHARACTERS.fullmatch(resolved):  # "?", "#", "%", or what IDNA maps to them
            raise ValueError("not a host name, host:port or https:// URL")
        _check_ip_v4(host, resolved)
    return host, int(port)


def _check_ip_v4(host: str, resolved: str) -> None:
    """Refuse a name the resolver reads as an IPv4 address other than as written: inet_aton
    takes 010.0.0.1 as 8.0.0.1 (octal), 0x7f.1 and 2130706433 as 127.0.0.1, IDNA full-width
    digits as ASCII ones, so the source's id would name one address and its connection reach
    another."""
    try:
        packed = socket.inet_aton(resolved)
    except OSError:
        return  # a DNS name
    address = socket.inet_ntoa(packed)
    if address == host:
        return
    parts = resolved.split(".")
    if len(parts) == 4 and all(part.isdigit() for part in parts) and any(p[:1] == "0" and p != "0" for p in parts):
        decimal = ".".join(str(int(part)) for part in parts)
        raise ValueError(f"the resolver reads it as {address}, a leading 0 making a number octal: write {decimal} "
                         f"or {address}, whichever is meant")
    raise ValueError(f"the resolver reads it as the IPv4 address {address}: write {address}")


def endpoint(host: str, port: int) -> tuple[str, int]:
    """The one spelling of the vCenter that `host` and `port` reach, to tell two names of one
    vCenter apart from two vCenters: a name as IDNA gives it (case, a trailing dot, full-width
    characters folded), an IP address as `ipaddress` writes it (an IPv4-mapped IPv6 address as
    its IPv4 address; a zone only where it picks a link, by the interface's name)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            name = host.encode("idna").decode("ascii")
        except UnicodeError:  # parse_server refuses such a name; said plainly if it comes here
            name = host
        name = name.rstrip(".").lower()  # after IDNA: it makes a full-width full stop one
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return name, port
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped), port
        if address.scope_id is not None:
            return _with_zone(address), port
    return str(address), port


def _with_zone(address: ipaddress.IPv6Address) -> str:
    """An IPv6 address with its zone where the zone chooses the link (a link-local or
    multicast address; elsewhere the resolver ignores it), the interface by its name."""
    bare = str(address).partition("%")[0]
    if not _zone_picks_link(address):
        return bare
    zone = str(address.scope_id)
    if zone.isdigit():
        with contextlib.suppress(OSError, OverflowError, ValueError):
            zone = socket.if_indextoname(int(zone))
    return f"{bare}%{zone}"


def _zone_picks_link(address: ipaddress.IPv6Address) -> bool:
    """Whether an IPv6 address's zone chooses the link it goes out on: for link-local and
    multicast addresses; elsewhere the resolver has no use for it."""
    return address.is_link_local or address.is_multicast


def _ip_v6_host(host: str) -> str:
    """An IPv6 address as the resolver is to be given it: its zone an interface's name or
    index, and kept only where it picks a link (link-local and multicast addresses; glibc
    cannot resolve ::1%lo, and the zone would make it another vCenter's id)."""
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:
        raise ValueError("not an IPv6 address (write one with a port as [address]:port)") from None
    if address.scope_id is None:
        return host
    if not _HOST_CHARACTERS.fullmatch(address.scope_id):
        raise ValueError("the IPv6 zone is not an interface's name or index")
    return host if _zone_picks_link(address) else host.partition("%")[0]


# the members of the ServiceContent a collection uses
SERVICE_CONTENT = ("about", "sessionManager", "propertyCollector", "viewManager", "rootFolder")


class NotVSphere(Exception):
    """The peer answers HTTPS but offers no vSphere API version pyVmomi speaks."""


class UnknownType(Exception):
    """An answer (a fault, most likely) names a type, or gives a property, pyVmomi does not
    know: a vCenter newer than this pyVmomi, or not a vCenter."""


def _raised_in(exc: BaseException, functions: tuple[str, ...]) -> bool:
    """Whether pyVmomi raised `exc` in one of `functions` (looking up what an answer names),
    and not for a bug of ours."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and frames[-1].name in functions


class TimedStub(SoapStubAdapter):
    """pyVmomi's SOAP stub (its connections are DeadlineHTTPSConnections: each request within
    `httpConnectionTimeout`, whole) that stops asking a vCenter which let a request time out:
    later requests of the session fail at once rather than each waiting out the timeout again.

    `InvokeTapped` sends a request as every other (pyVmomi serialises it, keeps the session
    cookie and the connection pool) but reads the answer with lxml (vsphere_soap.AnswerTap)."""

    stalled: TimeoutError | None = None
    peer: tuple[str, int] | None = None  # the address a connection of this session reached

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._taps = threading.local()  # the tap of the request this thread is sending, if any
        if self.scheme is http.client.HTTPSConnection:  # each request within the timeout, whole
            self.scheme = DeadlineHTTPSConnection

    def InvokeMethod(self, mo: Any, info: Any, args: Any, outerStub: Any = None) -> Any:
        """Send one SOAP request, unless an earlier one timed out."""
        if self.stalled is not None:
            raise TimeoutError("not sent: an earlier request to this vCenter timed out") from self.stalled
        try:
            return super().InvokeMethod(mo, info, args, outerStub)
        except TimeoutError as exc:  # socket.timeout, and TLS handshakes that time out
            self.stalled = exc
            raise
        except KeyError as exc:
            if not _raised_in(exc, ("GuessWsdlType", "LookupWsdlType")):
                raise
            tap = getattr(self._taps, "current", None)
            said = f"; its message: {tap.fault_text}" if tap is not None and tap.fault_text else ""
            raise UnknownType(f"the answer to {info.wsdlName} names a type this pyVmomi does not know "
                              f"({str(exc.args[0])[:80]!r}){said}") from None
        except AttributeError as exc:
            if not _raised_in(exc, ("GetPropertyInfo",)):
                raise
            raise UnknownType(f"the answer to {info.wsdlName} gives a property this pyVmomi does not know "
                              f"({str(exc.args[0] if exc.args else '')[:80]!r})") from None

    def InvokeTapped(self, mo: Any, info: Any, args: list[Any], tap: AnswerTap) -> Any:
        """Send one SOAP request through InvokeMethod; the answer element `tap` read. A SOAP
        fault is raised as pyVmomi raises it."""
        self._taps.current = tap
        try:
            returned = self.InvokeMethod(mo, info, args)
        finally:
            self._taps.current = None
        if isinstance(returned, BaseException):  # a fault with HTTP 200, which pyVmomi returns
            raise returned
        if tap.answer is None:  # a pyVmomi that no longer reads answers from GetConnection's connection
            raise RuntimeError(f"{info.wsdlName}: pyVmomi read the answer past the tap; use --vsphere-parser pyvmomi")
        return tap.answer

    def GetConnection(self) -> Any:
        """A pooled connection; tapped while InvokeTapped sends on this thread, else with its
        answer read within bounds (BoundedConnection)."""
        connection = super().GetConnection()
        tap = getattr(self._taps, "current", None)
        return BoundedConnection(connection) if tap is None else TappedConnection(connection, tap)

    def ReturnConnection(self, conn: Any) -> None:
        """Back to the pool, without its tap or bounds."""
        connection = conn.connection if isinstance(conn, (TappedConnection, BoundedConnection)) else conn
        self.peer = getattr(connection, "peer", None) or self.peer
        super().ReturnConnection(connection)


def api_version(host: str, port: int, context: ssl.SSLContext, timeout: float) -> str:
    """The newest vim25 API version both the peer and pyVmomi speak, chosen from the peer's
    vimServiceVersions.xml as SmartConnect chooses it, over a connection with a timeout."""
    connection = DeadlineHTTPSConnection(host, port, timeout=timeout, context=context)
    try:
        connection.request("GET", VERSIONS_DOCUMENT)
        response = connection.getresponse()
        body = response.read(VERSIONS_LIMIT)
    finally:
        connection.close()
    if response.status != 200:
        raise NotVSphere(f"{VERSIONS_DOCUMENT} answered HTTP {response.status}")
    try:
        prolog_end(body)  # no DTD for expat to expand entities of
        root = ElementTree.fromstring(body)
    except MalformedAnswer as exc:
        raise NotVSphere(f"{VERSIONS_DOCUMENT}: {exc}") from None
    except ElementTree.ParseError:
        raise NotVSphere(f"{VERSIONS_DOCUMENT} is not XML") from None
    offered = {element.text for namespace in root.iter("namespace")
               for element in [*namespace.findall("version"), *namespace.findall("priorVersions/version")]}
    for version in VmomiSupport.GetServiceVersions("vim25"):  # newest first
        if VmomiSupport.versionIdMap[version] in offered:
            return version
    raise NotVSphere(f"{VERSIONS_DOCUMENT} offers no vSphere API version pyVmomi speaks")


class VSphereSource(InventorySource):
    """One vCenter (or ESXi host) collected with the PropertyCollector; `parser` says how its
    pages are read (PARSERS)."""

    cloud = "vsphere"
    kind = "vcenter"
    # reading pages is CPU work under the GIL: with other sources, in a process of its own
    own_process = True

    def __init__(self, connection: VSphereConnection, page_size: int = PAGE_SIZE, parser: str = "fast"):
        if parser not in PARSERS:
            raise ValueError(f"parser {parser!r} is not one of {', '.join(PARSERS)}")
        self.connection = connection
        self.page_size = page_size
        self.parser = parser
        self.id = connection.label

    def collect(self, progress: Progress) -> Collected:
        source = Source(id=self.id, cloud=self.cloud, kind=self.kind)
        try:
            service = self._connect()
        except Exception as exc:  # every way a connection can fail becomes the source's status
            return self._failed(source, describe_failure(exc, self.connection, during="connecting"))
        try:
            resources = self._inventory(service, progress, source)
        except Exception as exc:
            return self._failed(source, describe_failure(exc, self.connection, during="collecting"))
        finally:
            _logout(service)
        source.resource_count = len(resources)
        return Collected([source], resources)

    @staticmethod
    def _failed(source: Source, reason: str) -> Collected:
        source.status = "failed"
        source.error = reason
        return Collected([source], [])

    def _ssl_context(self) -> ssl.SSLContext:
        if self.connection.insecure:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        return ssl.create_default_context(cafile=self.connection.ca_bundle)

    def _connect(self) -> Any:
        """Log in; the session's every request has the connection's timeout on its socket."""
        connection = self.connection
        context = self._ssl_context()
        version = api_version(connection.host, connection.port, context, connection.timeout)
        stub = TimedStub(host=connection.host, port=connection.port, version=version, sslContext=context,
                         httpConnectionTimeout=connection.timeout)
        service = vim.ServiceInstance("ServiceInstance", stub)
        try:
            content = service.RetrieveContent()
            # what collecting goes through: a server whose content lacks one is no vSphere API
            missing = [name for name in SERVICE_CONTENT if getattr(content, name, None) is None]
            if missing:
                raise NotVSphere(f"its service content has no {', '.join(missing)}")
            content.sessionManager.Login(connection.user, connection.password, None)
        except BaseException:
            stub.DropConnections()
            raise
        return service

    def _inventory(self, service: Any, progress: Progress, source: Source) -> list[dict[str, Any]]:
        """Everything the server holds, into resources; the source gets its kind and details
        (about info, lookups that could not be made) as soon as they are known."""
        content = service.RetrieveContent()
        label = self.id
        about = to_plain(content.about)
        standalone = content.about.apiType == "HostAgent"
        source.kind = "esxi" if standalone else "vcenter"
        source.details = {"version": about.get("version"), "build": about.get("build"),
                          "api_type": about.get("apiType"), "instance_uuid": about.get("instanceUuid")}
        peer = getattr(service._stub, "peer", None)
        if peer is not None:  # which server answered, whatever name it was reached by
            source.details["address"] = host_port(*peer)
        not_collected: dict[str, str] = {}
        resources = []
        if not standalone:  # an ESXi host is a HostSystem below, not a vCenter for vCenter rules to judge
            native: dict[str, Any] = {"moref": "ServiceInstance", "about": about}
            settings = _optional(not_collected, "vCenter advanced settings", lambda: vcenter_settings(content), None)
            if settings is not None:
                native["setting"] = settings
            resources.append(make_resource(id=f"{label}/vcenter", name=label, cloud="vsphere", type="vCenter",
                                           source=label, native=native))
        field_names = _optional(not_collected, "custom field names", lambda: _custom_field_names(content), {})
        assigned = _optional(not_collected, "licence assignments", lambda: _assigned_licenses(content), {})
        properties = supported_properties(PROPERTIES, service._stub.version)
        collector = content.propertyCollector
        retrieve = retrieve_read_ahead if self.parser == "fast" else retrieve_paged
        view = content.viewManager.CreateContainerView(content.rootFolder, list(properties), True)
        seen: set[str] = set()
        failed = True
        try:
            for count, obj in enumerate(retrieve(collector, view, properties, self.page_size), start=1):
                if count > MAX_OBJECTS:
                    raise MalformedAnswer(f"more than {MAX_OBJECTS:,} objects in the PropertyCollector's pages: "
                                          "no vCenter holds that many")
                resource = _resource(obj, label, field_names, assigned)
                if resource is not None:
                    if resource["id"] in seen:
                        # a page answered twice (a faulty server or relay): the snapshot would hold
                        # two resources under one id, which a scan refuses
                        raise MalformedAnswer(f"{resource['id']} came twice in the PropertyCollector's pages")
                    seen.add(resource["id"])
                    resources.append(resource)
                    if len(resources) % 200 == 0:
                        progress.update(label, len(resources))
                        # the resources so far live to the end and hold no cycles: out of the
                        # cyclic collector's way, which would otherwise go through all of them
                        # again and again (0.7 s of 5 at 10,000 VMs); undone below
                        gc.freeze()
            failed = False
        finally:
            gc.unfreeze()
            if failed:
                # the first failure is the one to report, not a cleanup request's after it (a
                # vCenter, or a relay, that has gone silent would make it a timeout)
                with contextlib.suppress(Exception):
                    view.DestroyView()
            else:
                view.DestroyView()
        resources.extend(_optional(not_collected, "licences", lambda: _licenses(content, label), []))
        if not_collected:
            source.details["not_collected"] = not_collected
        progress.update(label, len(resources))
        return resources


def _optional(not_collected: dict[str, str], what: str, read: Callable[[], T], fallback: T) -> T:
    """`read()`, or `fallback` when the server refuses or drops that one request: the failure is
    noted under `what` and the collection goes on. A timeout is not optional: the peer has
    stopped answering, and every later request would wait it out again."""
    try:
        return read()
    except TimeoutError:
        raise
    except (vmodl.MethodFault, OSError, http.client.HTTPException) as exc:
        not_collected[what] = lookup_failure(exc)
        return fallback


def lookup_failure(exc: BaseException) -> str:
    """One line on why an optional lookup failed."""
    if isinstance(exc, vmodl.MethodFault):
        name = getattr(type(exc), "_wsdlName", type(exc).__name__)
        detail = exc.msg or ""
        if isinstance(exc, vim.fault.NoPermission) and exc.privilegeId:
            detail = f"privilege {exc.privilegeId} missing"
        text = f"{name}: {detail}" if detail else name
    elif isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                          http.client.IncompleteRead)):
        text = f"the server dropped the request without an answer ({type(exc).__name__})"
    elif isinstance(exc, http.client.HTTPException):
        text = f"HTTP error: {exc}"
    else:
        text = str(getattr(exc, "strerror", None) or exc or type(exc).__name__)
    return " ".join(text.split())


def supported_properties(properties: dict[type, list[str]], version: str) -> dict[type, list[str]]:
    """The paths of `properties` that API `version` knows, by the declared type of each step."""
    return {kind: [path for path in paths if path_known(kind, path, version)] for kind, paths in properties.items()}


def path_known(kind: type, path: str, version: str) -> bool:
    """Whether a PropertyCollector speaking `version` accepts `path` on `kind`: each step is a
    property of the previous step's declared type, introduced in `version` or before."""
    current: Any = kind
    for name in path.split("."):
        try:
            info = current._GetPropertyInfo(name)
        except AttributeError:
            return False
        if not VmomiSupport.IsChildVersion(version, info.version):
            return False
        current = info.type
    return True


def _filter_spec(view: Any, properties: dict[type, list[str]]) -> Any:
    """Every object of `view` (a ContainerView), with the paths of its type in `properties`."""
    spec = vmodl.query.PropertyCollector
    return spec.FilterSpec(
        objectSet=[spec.ObjectSpec(obj=view, skip=True, selectSet=[
            spec.TraversalSpec(name="view", path="view", skip=False, type=vim.view.ContainerView)])],
        propSet=[spec.PropertySpec(type=kind, pathSet=paths, all=False) for kind, paths in properties.items()])


def retrieve_paged(collector: Any, view: Any, properties: dict[type, list[str]], page_size: int) -> Iterator[Any]:
    """Yield pyVmomi's ObjectContent for every object in `view`, one RetrievePropertiesEx per page."""
    options = vmodl.query.PropertyCollector.RetrieveOptions(maxObjects=page_size)
    result = collector.RetrievePropertiesEx([_filter_spec(view, properties)], options)
    empty = 0
    try:
        while result is not None:
            yield from result.objects
            if not result.token:
                return
            empty = _count_empty(empty, len(result.objects), result.token)
            result = collector.ContinueRetrievePropertiesEx(result.token)
    except GeneratorExit:
        if result is not None and result.token:
            collector.CancelRetrievePropertiesEx(result.token)
        raise


def send_tapped(collector: Any, method: str, args: list[Any], tap: AnswerTap | None = None) -> Any:
    """Call PropertyCollector `method` through its stub (TimedStub), the answer read with
    lxml: the answer element, parsed and checked (vsphere_soap.AnswerTap)."""
    return collector._stub.InvokeTapped(collector, collector._GetMethodInfo(method), args, tap or AnswerTap(method))


# vSphere 8's configuration maximums are 45,000 VMs and 2,500 hosts a vCenter: a server that
# pages on past this many objects (or hands out page after page without one) is not a
# vCenter to follow for ever.
MAX_OBJECTS = 1_000_000
MAX_EMPTY_PAGES = 10


def _count_empty(empty: int, objects: int, token: Any) -> int:
    """Pages without an object in a row, this one counted (MalformedAnswer past MAX_EMPTY_PAGES)."""
    if objects or not token:
        return 0
    if empty + 1 > MAX_EMPTY_PAGES:
        raise MalformedAnswer(f"{empty + 1} pages in a row without an object, each naming another")
    return empty + 1


# Pages asked for and not yet taken by the decoder, at most (a parsed page of 250 VMs holds
# some 12 MB): with two, a vCenter quicker than the decoding sat idle now and then.
PAGES_AHEAD = 3


class Pages:
    """The answers of one paged retrieval, in order, each asked for as early as it can be.

    A vCenter takes its time to make a page, the client to parse and decode it; done one
    after the other, each waits for the other. Here the next page is asked for as soon as the
    bytes of this one are in, from the token in its first bytes (vsphere_soap.leading_token),
    while this page is parsed on its request's thread (lxml lets go of the GIL) and the one
    before is decoded by the consumer. At most PAGES_AHEAD pages are out or waiting to be
    decoded; a token found while that many are is asked for when the consumer takes the next.

    The early token is a guess from unparsed bytes: the parsed page's own token is compared
    with it, and a page whose two differ fails (MalformedAnswer), as the page asked for with
    the guess may be another's. A page whose first bytes give no token plainly is asked for
    after its page is parsed, as it always was."""

    def __init__(self, collector: Any, executor: ThreadPoolExecutor):
        self._collector = collector
        self._executor = executor
        self._lock = threading.Lock()
        # the pages asked for and not yet taken, in page order
        self._answers: list[tuple[Future[tuple[Any, str | None]], AnswerTap]] = []
        self._waiting: str | None = None  # a token found while PAGES_AHEAD pages were out
        self._closed = False
        # answers decoded and not yet let go: freeing a parsed page costs about as much as
        # parsing it, under the GIL, so it is done while the consumer would wait anyway
        self._done: list[Any] = []

    def ask(self, method: str, args: list[Any]) -> None:
        """Ask for a page (RetrievePropertiesEx, or the first ContinueRetrievePropertiesEx)."""
        with self._lock:
            self._send(method, args)

    def _send(self, method: str, args: list[Any]) -> None:  # with the lock held
        tap = AnswerTap(method, on_token=self._early)
        self._answers.append((self._executor.submit(self._request, method, args, tap), tap))

    def _request(self, method: str, args: list[Any], tap: AnswerTap) -> tuple[Any, str | None]:
        return send_tapped(self._collector, method, args, tap), tap.early_token

    def _early(self, token: str) -> None:
        """On a request's thread: the answer's first bytes name the next page."""
        with self._lock:
            if self._closed:
                return
            if len(self._answers) < PAGES_AHEAD:
                self._send("ContinueRetrievePropertiesEx", [token])
            else:
                self._waiting = token

    def take(self) -> Any:
        """The next answer element (waiting for it), or None after the last page. Taking it
        lets the next page be asked for, if it waited for room."""
        with self._lock:
            if not self._answers:
                return None
            answer, _ = self._answers.pop(0)
        while self._done and not answer.done():
            self._done.pop()
        if len(self._done) >= PAGES_AHEAD:  # no wait came: let go of them now all the same
            self._done.clear()
        answer_element, early = answer.result()
        token = page_token(answer_element)
        with self._lock:
            if early is not None and early != token:
                self._closed = True
                raise MalformedAnswer("a page's token differs from what its first bytes said")
            if early is None and token:  # not found early: asked for now
                self._send("ContinueRetrievePropertiesEx", [token])
            elif self._waiting is not None:
                self._send("ContinueRetrievePropertiesEx", [self._waiting])
                self._waiting = None
        return answer_element

    def release(self, answer: Any) -> None:
        """A taken answer that is decoded: it is let go the next time the consumer waits."""
        self._done.append(answer)

    def close(self) -> list[str]:
        """Ask for no more pages; the tokens of pages left unread (answers that came, or a
        token waiting), for their cursors to be let go. A request still out is cut off, not
        waited for: after a bad page or a stop, its answer is nobody's (and a relay that holds
        it would otherwise turn the bad page into a timeout)."""
        with self._lock:
            self._closed = True
            answers, self._answers = self._answers, []
            self._done.clear()
            tokens = [self._waiting] if self._waiting else []
            self._waiting = None
        for answer, tap in answers:
            if not answer.done():
                tap.abort()
                continue
            with contextlib.suppress(Exception):
                token = page_token(answer.result()[0])
                if token:
                    tokens.append(token)
        return tokens


def retrieve_read_ahead(collector: Any, view: Any, properties: dict[type, list[str]],
                        page_size: int) -> Iterator[PlainContent]:
    """Yield PlainContent for every object in `view`, one RetrievePropertiesEx per page, the
    pages read with lxml (vsphere_soap) and reduced as REDUCTIONS says; the next pages are
    asked for while this one is decoded (Pages)."""
    version = collector._stub.version
    options = vmodl.query.PropertyCollector.RetrieveOptions(maxObjects=page_size)
    with ThreadPoolExecutor(max_workers=PAGES_AHEAD, thread_name_prefix="vsphere-pages") as executor:
        pages = Pages(collector, executor)
        pages.ask("RetrievePropertiesEx", [[_filter_spec(view, properties)], options])
        finished = False
        empty = 0
        try:
            while (answer := pages.take()) is not None:
                page = Decoder(version).retrieve_result(answer, REDUCTIONS)
                pages.release(answer)
                answer = None
                if page is not None:
                    empty = _count_empty(empty, len(page.objects), page.token)
                    yield from page.objects
            finished = True
        finally:
            left = pages.close()
            if not finished:
                # stopped early (a fault, or the consumer): the server's cursors are let go
                # (best effort: the session ends with the logout anyway)
                for token in left:
                    with contextlib.suppress(Exception):
                        collector.CancelRetrievePropertiesEx(token)


def _vim_type(obj: Any) -> type:
    """The vim type of a pyVmomi object, or of a data object of an answer read with lxml."""
    return obj.vim_type if isinstance(obj, ElementView) else type(obj)


def _wsdl_name(obj: Any) -> str:
    return _vim_type(obj)._wsdlName


def _resource(content: Any, label: str, field_names: dict[int, str],
              assigned: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """A resource from one object of a page: pyVmomi's ObjectContent, whose values are made
    plain here, or a PlainContent of the fast path, whose values are plain already."""
    obj = content.obj
    kind = _wsdl_name(obj)
    moref = obj._moId
    if isinstance(content, PlainContent):
        properties, missing = content.properties, content.missing
    else:
        properties = [(prop.name, _property_value(kind, prop.name, prop.val)) for prop in content.propSet]
        missing = [item.path for item in content.missingSet or ()]
    native: dict[str, Any] = {"moref": moref}
    for path, value in properties:
        _nest(native, path, value)
    for path in missing:
        # a property the vCenter could not read (e.g. a disconnected host's config)
        native.setdefault("_missing", []).append(path)
    name = native.pop("name", None)
    if name is None and kind == "DistributedVirtualPortgroup":
        name = native.get("config", {}).get("name")
    tags = {}
    for value in native.pop("customValue", None) or ():
        key = field_names.get(value.get("key"), str(value.get("key")))
        tags[key] = value.get("value")
    if kind == "HostSystem" and moref in assigned:
        native["assignedLicense"] = assigned[moref]
    return make_resource(id=f"{label}/{moref}", name=str(name if name is not None else moref), cloud="vsphere",
                         type=kind, source=label, tags=tags, native=native)


def _property_value(kind: str, path: str, value: Any) -> Any:
    """A pyVmomi property value as the snapshot keeps it: reduced where REDUCTIONS says,
    else whole (the fast path applies REDUCTIONS in vsphere_soap.Decoder)."""
    reduce = REDUCTIONS.get((kind, path))
    return to_plain(value) if reduce is None else reduce(value)


def keep_host_options(options: Any) -> list[dict[str, Any]]:
    """Host advanced settings in ESXI_SETTINGS, as {key, value}; the others are never kept."""
    return [to_plain(option) for option in options or () if option.key in ESXI_SETTINGS]


def vm_setting_allowed(key: Any) -> bool:
    """Whether a VM advanced setting is one the guide checks (VM_SETTINGS, VM_SETTING_PATTERNS)."""
    return isinstance(key, str) and _setting_key_allowed(key)


@functools.lru_cache(maxsize=4096)
def _setting_key_allowed(key: str) -> bool:
    # VMs share most of their keys, and a pattern match costs more than the rest of a setting
    return key.lower() in _VM_SETTING_KEYS or any(pattern.fullmatch(key) for pattern in _VM_SETTING_PATTERNS)


def keep_vm_settings(options: Any) -> list[dict[str, Any]]:
    """VM advanced settings (extraConfig) on the allow-list, as they come ({key, value})."""
    return [to_plain(option) for option in options or () if vm_setting_allowed(option.key)]


def vm_device_kept(kind: type) -> bool:
    """Whether a VM's device of type `kind` is kept: network adapters and VM_DEVICE_TYPES."""
    return issubclass(kind, vim.vm.device.VirtualEthernetCard) or kind._wsdlName in VM_DEVICE_TYPES


def reduce_vm_devices(devices: Any) -> list[dict[str, Any]]:
    """Network adapters whole; devices of VM_DEVICE_TYPES as {_type, key, deviceInfo: {label},
    connectable} (no backing: it names ISO, image and log file paths); no other device."""
    kept = []
    for device in devices or ():
        kind = _vim_type(device)
        if issubclass(kind, vim.vm.device.VirtualEthernetCard):
            kept.append(to_plain(device))
        elif kind._wsdlName in VM_DEVICE_TYPES:
            plain: dict[str, Any] = {"_type": kind._wsdlName, "key": to_plain(device.key)}
            info = device.deviceInfo
            if info is not None:
                plain["deviceInfo"] = {"label": to_plain(info.label)}
            connectable = device.connectable
            if connectable is not None:
                plain["connectable"] = to_plain(connectable)
            kept.append(plain)
    return kept


def reduce_firewall(info: Any) -> dict[str, Any] | None:
    """A host's firewall: the default policy, and per ruleset its key, whether it is on and
    which addresses it lets in ({allIp, ipAddress, ipNetwork})."""
    if info is None:
        return None
    rulesets = []
    for ruleset in info.ruleset or ():
        # `required`: a ruleset ESXi itself needs open, which the guide does not ask to restrict
        plain: dict[str, Any] = {"key": ruleset.key, "enabled": bool(ruleset.enabled),
                                 "required": bool(ruleset.required)}
        if ruleset.allowedHosts is not None:
            allowed = ruleset.allowedHosts
            plain["allowedHosts"] = {"allIp": bool(allowed.allIp), "ipAddress": list(allowed.ipAddress or ()),
                                     "ipNetwork": [{"network": net.network, "prefixLength": int(net.prefixLength)}
                                                   for net in allowed.ipNetwork or ()]}
        rulesets.append(plain)
    return {"defaultPolicy": to_plain(info.defaultPolicy), "ruleset": rulesets}


def reduce_host_bus_adapters(adapters: Any) -> list[dict[str, Any]]:
    """iSCSI adapters only, as {_type, device, authenticationProperties} with the CHAP_FIELDS."""
    kept = []
    for adapter in adapters or ():
        if not issubclass(_vim_type(adapter), vim.host.InternetScsiHba):
            continue
        plain: dict[str, Any] = {"_type": _wsdl_name(adapter), "device": adapter.device}
        auth = adapter.authenticationProperties
        if auth is not None:
            plain["authenticationProperties"] = {field: to_plain(getattr(auth, field)) for field in CHAP_FIELDS
                                                 if getattr(auth, field, None) is not None}
        kept.append(plain)
    return kept


def reduce_switch_config(config: Any) -> dict[str, Any] | None:
    """A distributed switch's config, reduced to SWITCH_CONFIG_FIELDS (those its type has)."""
    if config is None:
        return None
    kept: dict[str, Any] = {}
    for name in SWITCH_CONFIG_FIELDS:
        try:
            info = config._GetPropertyInfo(name)
        except AttributeError:  # a field of VMware switches on another vendor's
            continue
        value = getattr(config, name, None)
        if value is not None:
            kept[name] = to_plain(value, info.type)
    return kept


# (type, property path) -> what of it is kept; every other property is kept whole
REDUCTIONS: dict[tuple[str, str], Callable[[Any], Any]] = {
    ("VirtualMachine", "config.hardware.device"): KeptItems(vm_device_kept, reduce_vm_devices),
    ("VirtualMachine", "config.extraConfig"): keep_vm_settings,
    ("HostSystem", "config.option"): keep_host_options,
    ("HostSystem", "config.firewall"): reduce_firewall,
    ("HostSystem", "config.storageDevice.hostBusAdapter"): reduce_host_bus_adapters,
    ("DistributedVirtualSwitch", "config"): reduce_switch_config,
    ("VmwareDistributedVirtualSwitch", "config"): reduce_switch_config,
}


def vcenter_settings(content: Any) -> list[dict[str, Any]]:
    """The vCenter's advanced settings in VCENTER_SETTINGS, as {key, value}, one QueryOptions per
    key, so that no other setting crosses the wire. A key the vCenter lacks is left out."""
    manager = content.setting
    if manager is None:
        return []
    kept = []
    for key in sorted(VCENTER_SETTINGS):
        try:
            options = manager.QueryOptions(key)
        except vim.fault.InvalidName:
            continue
        kept.extend(to_plain(option) for option in options or () if option.key == key)
    return kept


def _nest(target: dict[str, Any], path: str, value: Any) -> None:
    keys = _PATHS.get(path)
    if keys is None:  # a few dozen paths, each on every object
        keys = _PATHS[path] = tuple(path.split("."))
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value


_PATHS: dict[str, tuple[str, ...]] = {}


def to_plain(value: Any, declared: Any = None) -> Any:
    """A pyvmomi value as JSON-ready data: data objects as mappings (with `_type` where the
    object is of a subtype of the declared type), references as moref ids, times as ISO.
    The fast path (vsphere_soap.Decoder.plain) renders an answer's elements the same way."""
    if value is None:
        return None
    if isinstance(value, VmomiSupport.ManagedObject):
        return value._moId
    if isinstance(value, ElementView):  # a data object of an answer read with lxml
        return value.plain(declared)
    if isinstance(value, VmomiSupport.DataObject):
        out: dict[str, Any] = {}
        if declared is not None and type(value) is not declared:
            out["_type"] = _wsdl_name(value)
        for prop in value._GetPropertyList():
            if prop.name in ("dynamicType", "dynamicProperty"):
                continue
            item = getattr(value, prop.name, None)
            if item is None:
                continue
            out[prop.name] = to_plain(item, prop.type)
        return out
    if isinstance(value, list):
        element = getattr(declared, "Item", None)
        return [to_plain(item, element) for item in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, datetime.datetime):
        return iso_utc(value)
    if isinstance(value, (bytes, bytearray)):
        return None  # binary blobs (certificates, thumbprints) are no rule's business
    if isinstance(value, type):
        return getattr(value, "_wsdlName", value.__name__)
    return str(value)


def _mask_key(key: str | None) -> str | None:
    if not key:
        return key
    return "*****-*****-*****-*****-" + key.rsplit("-", 1)[-1]


def _license_plain(info: Any) -> dict[str, Any]:
    plain = to_plain(info)
    plain["licenseKey"] = _mask_key(plain.get("licenseKey"))
    return plain


def _licenses(content: Any, label: str) -> list[dict[str, Any]]:
    manager = content.licenseManager
    if manager is None:
        return []
    resources = []
    for info in manager.licenses or ():
        plain = _license_plain(info)
        tail = (info.licenseKey or "unknown").rsplit("-", 1)[-1]
        resources.append(make_resource(id=f"{label}/license/{tail}", name=info.name or plain["licenseKey"],
                                       cloud="vsphere", type="License", source=label, native=plain))
    return resources


def _assigned_licenses(content: Any) -> dict[str, dict[str, Any]]:
    """Host moref -> the licence assigned to it, from one query for all entities."""
    manager = content.licenseManager
    assignments_manager = getattr(manager, "licenseAssignmentManager", None) if manager else None
    if assignments_manager is None:
        return {}
    assigned = {}
    for assignment in assignments_manager.QueryAssignedLicenses() or ():
        if assignment.entityId and assignment.assignedLicense is not None:
            assigned[assignment.entityId] = _license_plain(assignment.assignedLicense)
    return assigned


def _custom_field_names(content: Any) -> dict[int, str]:
    manager = content.customFieldsManager
    if manager is None:
        return {}
    return {field.key: field.name for field in manager.field or ()}


def _logout(service: Any) -> None:
    stub = service._stub
    # the session may already be gone with the connection, or the vCenter stalled (the stub
    # then refuses at once): there is nothing left to close
    with contextlib.suppress(Exception):
        service.RetrieveContent().sessionManager.Logout()
    stub.DropConnections()


def pyvmomi_version() -> str:
    """The installed pyVmomi's version, for messages."""
    try:
        return importlib.metadata.version("pyvmomi")
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown)"


FAILURE_LIMIT = 1000  # characters of a failure's line: a fault's message is the server's to make up


def describe_failure(exc: BaseException, connection: VSphereConnection, during: str) -> str:
    """One line (at most FAILURE_LIMIT characters) that says what went wrong with a vCenter
    and what to do about it."""
    line = _describe_failure(exc, connection, during)
    return line if len(line) <= FAILURE_LIMIT else line[:FAILURE_LIMIT - 3] + "..."


def _describe_failure(exc: BaseException, connection: VSphereConnection, during: str) -> str:
    where = f"{connection.label} ({during})"
    if isinstance(exc, vim.fault.InvalidLogin):
        return f"{where}: login failed for user '{connection.user}': check {connection.credentials_from}"
    if isinstance(exc, vim.fault.NoPermission):
        return f"{where}: user '{connection.user}' lacks the privilege to read {exc.object or 'the inventory'}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"{where}: {_certificate_failure(exc, connection)}"
    if isinstance(exc, ssl.SSLError):
        return f"{where}: {_tls_failure(exc)}"
    if isinstance(exc, ConnectionRefusedError):
        return f"{where}: connection refused: is vCenter listening on port {connection.port}?"
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
        return f"{where}: timed out after {connection.timeout:g} s"
    if isinstance(exc, NotVSphere):
        return f"{where}: not a vCenter or ESXi host: {exc}"
    if isinstance(exc, UnknownType):
        return f"{where}: {exc}: a vCenter newer than pyVmomi {pyvmomi_version()}? Upgrade pyvmomi"
    if isinstance(exc, (MalformedAnswer, ExpatError)):  # ExpatError: an answer pyVmomi parses itself
        return (f"{where}: the server's answer is not valid vSphere SOAP ({exc}); nothing of this server was "
                "kept: check that it is a vCenter or ESXi host and nothing between rewrites its answers")
    if isinstance(exc, socket.gaierror):
        return f"{where}: cannot resolve host name ({exc.strerror})"
    if isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                        http.client.IncompleteRead)):
        return f"{where}: connection lost ({type(exc).__name__}); the vCenter went away mid-collection"
    if isinstance(exc, http.client.HTTPException):  # a status pyVmomi does not read, or broken HTTP
        return f"{where}: HTTP error from the server: {first_line(exc)}"
    if isinstance(exc, OSError):
        return f"{where}: {exc.strerror or exc}"
    if isinstance(exc, vmodl.MethodFault):
        return f"{where}: {type(exc).__name__}: {exc.msg or exc}"
    return f"{where}: unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


# OpenSSL's certificate verification results (X509_V_ERR_*) -> what it means and what to do.
_UNTRUSTED = ("its issuer is not trusted here: pass --ca-bundle with the CA certificate that signed it "
              "(the VMCA root of the vCenter), or --insecure to skip verification")
_WEAK_KEY = ("its key is too weak for this system's OpenSSL (at least 2048-bit RSA or 256-bit ECDSA at "
             "security level 2): replace the certificate with a stronger one; --ca-bundle cannot help "
             "(--insecure skips verification)")
_WEAK_DIGEST = ("it is signed with a digest too weak for this system's OpenSSL (SHA-1 or MD5): reissue it with "
                "SHA-256; --ca-bundle cannot help (--insecure skips verification)")
_VERIFY_CODES = {
    2: _UNTRUSTED, 18: _UNTRUSTED, 19: _UNTRUSTED, 20: _UNTRUSTED, 21: _UNTRUSTED, 27: _UNTRUSTED,
    9: "it is not valid yet: check this system's clock and the server's",
    10: "it has expired: renew the certificate (or --insecure to skip verification)",
    23: "it has been revoked: replace the certificate",
    66: _WEAK_KEY, 67: _WEAK_KEY, 68: _WEAK_DIGEST,
    7: "its signature does not verify: the certificate or the --ca-bundle is not the one that signed it",
    26: "it is not meant for a TLS server (key usage / extended key usage): reissue it",
}
# OpenSSL reasons of TLS errors outside certificate verification.
_TLS_REASONS = {
    "EE_KEY_TOO_SMALL": "the server's certificate key is too weak for this system's OpenSSL: replace the "
                        "certificate with a 2048-bit RSA or ECDSA one",
    "CA_KEY_TOO_SMALL": "a CA certificate's key is too weak for this system's OpenSSL: replace it",
    "CA_MD_TOO_WEAK": "a certificate is signed with a digest too weak for this system's OpenSSL (SHA-1 or MD5): "
                      "reissue it with SHA-256",
    "DH_KEY_TOO_SMALL": "the server offers Diffie-Hellman parameters too weak for this system's OpenSSL: "
                        "configure stronger TLS on it",
    "WRONG_VERSION_NUMBER": "the port does not answer TLS (plain HTTP?): check the port",
    "UNSUPPORTED_PROTOCOL": "the server speaks only TLS versions this system refuses (TLS 1.0/1.1): enable TLS "
                            "1.2 or later on it",
    "TLSV1_ALERT_PROTOCOL_VERSION": "the server and this system share no TLS version: enable TLS 1.2 or later "
                                    "on the server",
    "NO_PROTOCOLS_AVAILABLE": "the server and this system share no TLS version: enable TLS 1.2 or later "
                              "on the server",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "the server and this system share no TLS cipher: check the server's TLS "
                                     "configuration",
    "NO_CERTIFICATE_OR_CRL_FOUND": "the --ca-bundle file holds no PEM certificate",
}


def _certificate_failure(exc: ssl.SSLCertVerificationError, connection: VSphereConnection) -> str:
    """What OpenSSL refused in the server's certificate, and what to do about it."""
    message = exc.verify_message or exc.reason or "certificate verify failed"
    if exc.verify_code in (62, 64):  # the certificate names another host or address
        return (f"TLS certificate does not verify ({message}): it does not name '{connection.host}': connect "
                "by a name the certificate lists, or reissue it for this name")
    advice = _VERIFY_CODES.get(exc.verify_code)
    if advice is None:
        return (f"TLS certificate does not verify ({message}); check the server's certificate and --ca-bundle, "
                "or --insecure to skip verification")
    return f"TLS certificate does not verify ({message}): {advice}"


def _tls_failure(exc: ssl.SSLError) -> str:
    """A TLS error outside certificate verification, by OpenSSL's reason."""
    reason = exc.reason or ""
    advice = _TLS_REASONS.get(reason)
    shown = reason or " ".join(str(exc).split())
    return f"TLS error ({shown}): {advice}" if advice else f"TLS error ({shown})"
