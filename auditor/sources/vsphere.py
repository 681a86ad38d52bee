"""vSphere source: a vCenter's inventory through the PropertyCollector (pyvmomi).

One ContainerView over the whole inventory and one RetrievePropertiesEx with every type's
property paths, then ContinueRetrievePropertiesEx while the vCenter hands back a token:
the round trips grow with pages (1,000 objects each), not with objects. Per-object
attribute access (`vm.config.version`) would cost one round trip per property per object.

Every request (the API version probe, login, RetrievePropertiesEx, ContinueRetrievePropertiesEx,
logout) runs on a socket with `--timeout` as its timeout: connecting, the TLS handshake and
each read. pyVim's SmartConnect is not used: its version probe opens a connection without
one, and its `connectionPoolTimeout` only closes idle pooled connections. A vCenter that
accepts and then says nothing fails the source after one timeout; the cleanup requests
after it (DestroyView, logout) are not sent to it, as each would wait the timeout again.

Resources keep vSphere's property paths as nested mappings (`summary.config.product.version`).
What is left out on purpose: licence keys (only the last group is kept), advanced options
other than the hardening settings listed below (options can carry secrets), and virtual
devices other than network adapters.
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

from pyVmomi import SoapStubAdapter, VmomiSupport, vim, vmodl

from ..snapshot import Source, make_resource
from . import Collected, InventorySource, Progress

PAGE_SIZE = 1000
VERSIONS_DOCUMENT = "/sdk/vimServiceVersions.xml"
VERSIONS_LIMIT = 1 << 20  # bytes; the document is a few kB, a peer that sends more is not a vCenter

# Property paths per managed object type. The whole `config` of a distributed port group is
# small and entirely relevant (VLAN, security policy); for hosts and VMs only the parts the
# rules and facts read are fetched.
PROPERTIES: dict[type, list[str]] = {
    vim.HostSystem: [
        "name", "parent", "summary.config.product", "summary.hardware", "summary.runtime.connectionState",
        "summary.runtime.inMaintenanceMode", "summary.runtime.powerState", "config.lockdownMode",
        "config.service", "config.dateTimeInfo", "config.option", "config.network.portgroup",
        "config.network.vswitch",
    ],
    vim.VirtualMachine: [
        "name", "config.guestId", "config.guestFullName", "config.version", "config.uuid",
        "config.instanceUuid", "config.template", "config.hardware.numCPU", "config.hardware.memoryMB",
        "config.hardware.device", "guest.guestFullName", "guest.guestId", "guest.toolsStatus",
        "guest.toolsVersionStatus2", "guest.toolsVersion", "guest.toolsRunningStatus", "guest.hostName",
        "guest.ipAddress", "runtime.powerState", "runtime.host", "network", "customValue", "resourcePool",
    ],
    vim.Network: ["name", "summary"],
    vim.dvs.DistributedVirtualPortgroup: ["config"],
    vim.DistributedVirtualSwitch: ["name", "config.uplinkPortgroup", "config.maxMtu", "summary.productInfo"],
    vim.ClusterComputeResource: ["name", "summary", "configuration.dasConfig", "configuration.drsConfig"],
    vim.Datastore: ["name", "summary"],
}

# Advanced options that hardening guides check (vSphere Security Configuration Guide).
# Other options are not kept: some carry credentials or tokens.
HARDENING_OPTIONS = frozenset({
    "Syslog.global.logHost", "Syslog.global.logDir", "Syslog.global.logDirUnique",
    "UserVars.ESXiShellTimeOut", "UserVars.ESXiShellInteractiveTimeOut", "UserVars.DcuiTimeOut",
    "UserVars.HostClientSessionTimeout", "UserVars.SuppressShellWarning", "UserVars.ESXiVPsDisabledProtocols",
    "Security.AccountLockFailures", "Security.AccountUnlockTime", "Security.PasswordQualityControl",
    "Security.PasswordHistory", "Security.PasswordMaxDays", "Config.HostAgent.log.level",
    "Config.HostAgent.plugins.solo.enableMob", "Config.HostAgent.plugins.hostsvc.esxAdminsGroup",
    "Mem.ShareForceSalting", "Net.BlockGuestBPDU", "Net.DVFilterBindIpAddress", "DCUI.Access",
    "VMkernel.Boot.execInstalledOnly",
})


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
        """The source id: host, with the port when it is not 443."""
        return self.host if self.port == 443 else f"{self.host}:{self.port}"

    def __repr__(self) -> str:  # keep the password out of logs and tracebacks
        return f"VSphereConnection(host={self.host!r}, port={self.port}, user={self.user!r})"


def parse_server(text: str) -> tuple[str, int]:
    """`host`, `host:port` or `https://host:port/sdk` -> (host, port)."""
    text = text.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0]
    if text.startswith("["):  # [::1]:443
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 443
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and host:
        return host, int(port)
    return text, 443


class NotVSphere(Exception):
    """The peer answers HTTPS but offers no vSphere API version pyVmomi speaks."""


class TimedStub(SoapStubAdapter):
    """pyVmomi's SOAP stub (its connections get `httpConnectionTimeout` as their socket
    timeout) that stops asking a vCenter which let a request time out: later requests of the
    session fail at once rather than each waiting out the timeout again."""

    stalled: TimeoutError | None = None

    def InvokeMethod(self, mo: Any, info: Any, args: Any, outerStub: Any = None) -> Any:
        """Send one SOAP request, unless an earlier one timed out."""
        if self.stalled is not None:
            raise TimeoutError("not sent: an earlier request to this vCenter timed out") from self.stalled
        try:
            return super().InvokeMethod(mo, info, args, outerStub)
        except TimeoutError as exc:  # socket.timeout, and TLS handshakes that time out
            self.stalled = exc
            raise


def api_version(host: str, port: int, context: ssl.SSLContext, timeout: float) -> str:
    """The newest vim25 API version both the peer and pyVmomi speak, chosen from the peer's
    vimServiceVersions.xml as SmartConnect chooses it, over a connection with a timeout."""
    connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    try:
        connection.request("GET", VERSIONS_DOCUMENT)
        response = connection.getresponse()
        body = response.read(VERSIONS_LIMIT)
    finally:
        connection.close()
    if response.status != 200:
        raise NotVSphere(f"{VERSIONS_DOCUMENT} answered HTTP {response.status}")
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise NotVSphere(f"{VERSIONS_DOCUMENT} is not XML") from None
    offered = {element.text for namespace in root.iter("namespace")
               for element in [*namespace.findall("version"), *namespace.findall("priorVersions/version")]}
    for version in VmomiSupport.GetServiceVersions("vim25"):  # newest first
        if VmomiSupport.versionIdMap[version] in offered:
            return version
    raise NotVSphere(f"{VERSIONS_DOCUMENT} offers no vSphere API version pyVmomi speaks")


class VSphereSource(InventorySource):
    """One vCenter (or ESXi host) collected with the PropertyCollector."""

    def __init__(self, connection: VSphereConnection, page_size: int = PAGE_SIZE):
        self.connection = connection
        self.page_size = page_size
        self.id = connection.label

    def collect(self, progress: Progress) -> Collected:
        source = Source(id=self.id, cloud="vsphere", kind="vcenter")
        try:
            service = self._connect()
        except Exception as exc:  # every way a connection can fail becomes the source's status
            return self._failed(source, describe_failure(exc, self.connection, during="connecting"))
        try:
            resources = self._inventory(service, progress)
        except Exception as exc:
            return self._failed(source, describe_failure(exc, self.connection, during="collecting"))
        finally:
            _logout(service)
        about = next((r["about"] for r in resources if r["type"] == "vCenter"), {})
        source.details = {"version": about.get("version"), "build": about.get("build"),
                          "api_type": about.get("apiType"), "instance_uuid": about.get("instanceUuid")}
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
            service.RetrieveContent().sessionManager.Login(connection.user, connection.password, None)
        except BaseException:
            stub.DropConnections()
            raise
        return service

    def _inventory(self, service: Any, progress: Progress) -> list[dict[str, Any]]:
        content = service.RetrieveContent()
        label = self.id
        resources = [make_resource(id=f"{label}/vcenter", name=(content.about.name and label) or label,
                                   cloud="vsphere", type="vCenter", source=label,
                                   native={"moref": "ServiceInstance", "about": to_plain(content.about)})]
        field_names = _custom_field_names(content)
        assigned = _assigned_licenses(content)
        view = content.viewManager.CreateContainerView(content.rootFolder, list(PROPERTIES), True)
        try:
            for obj in retrieve_paged(content.propertyCollector, view, PROPERTIES, self.page_size):
                resource = _resource(obj, label, field_names, assigned)
                if resource is not None:
                    resources.append(resource)
                    if len(resources) % 200 == 0:
                        progress.update(label, len(resources))
        finally:
            view.DestroyView()
        resources.extend(_licenses(content, label))
        progress.update(label, len(resources))
        return resources


def retrieve_paged(collector: Any, view: Any, properties: dict[type, list[str]], page_size: int):
    """Yield ObjectContent for every object in `view`, one RetrievePropertiesEx per page."""
    spec = vmodl.query.PropertyCollector
    filter_spec = spec.FilterSpec(
        objectSet=[spec.ObjectSpec(obj=view, skip=True, selectSet=[
            spec.TraversalSpec(name="view", path="view", skip=False, type=vim.view.ContainerView)])],
        propSet=[spec.PropertySpec(type=kind, pathSet=paths, all=False) for kind, paths in properties.items()])
    result = collector.RetrievePropertiesEx([filter_spec], spec.RetrieveOptions(maxObjects=page_size))
    try:
        while result is not None:
            yield from result.objects
            if not result.token:
                return
            result = collector.ContinueRetrievePropertiesEx(result.token)
    except GeneratorExit:
        if result is not None and result.token:
            collector.CancelRetrievePropertiesEx(result.token)
        raise


def _wsdl_name(obj: Any) -> str:
    return type(obj)._wsdlName


def _resource(content: Any, label: str, field_names: dict[int, str],
              assigned: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    obj = content.obj
    kind = _wsdl_name(obj)
    moref = obj._moId
    native: dict[str, Any] = {"moref": moref}
    for prop in content.propSet:
        _nest(native, prop.name, _property_value(kind, prop.name, prop.val))
    for missing in content.missingSet or ():
        # a property the vCenter could not read (e.g. a disconnected host's config)
        native.setdefault("_missing", []).append(missing.path)
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
    if kind == "VirtualMachine" and path == "config.hardware.device":
        value = [device for device in value or () if isinstance(device, vim.vm.device.VirtualEthernetCard)]
    elif kind == "HostSystem" and path == "config.option":
        value = [option for option in value or () if option.key in HARDENING_OPTIONS]
    return to_plain(value)


def _nest(target: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value


def to_plain(value: Any, declared: Any = None) -> Any:
    """A pyvmomi value as JSON-ready data: data objects as mappings (with `_type` where the
    object is of a subtype of the declared type), references as moref ids, times as ISO."""
    if value is None:
        return None
    if isinstance(value, VmomiSupport.ManagedObject):
        return value._moId
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
        if value.tzinfo is not None:
            value = value.astimezone(datetime.UTC)
        return value.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
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


def describe_failure(exc: BaseException, connection: VSphereConnection, during: str) -> str:
    """One line that says what went wrong with a vCenter and what to do about it."""
    where = f"{connection.label} ({during})"
    if isinstance(exc, vim.fault.InvalidLogin):
        return f"{where}: login failed for user '{connection.user}': check {connection.credentials_from}"
    if isinstance(exc, vim.fault.NoPermission):
        return f"{where}: user '{connection.user}' lacks the privilege to read {exc.object or 'the inventory'}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"{where}: TLS certificate does not verify ({exc.verify_message}); pass --ca-bundle with the "
                "vCenter's CA certificate, or --insecure to skip verification")
    if isinstance(exc, ssl.SSLError):
        return f"{where}: TLS error ({exc.reason or exc})"
    if isinstance(exc, ConnectionRefusedError):
        return f"{where}: connection refused: is vCenter listening on port {connection.port}?"
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError
        return f"{where}: timed out after {connection.timeout:g} s"
    if isinstance(exc, NotVSphere):
        return f"{where}: not a vCenter or ESXi host: {exc}"
    if isinstance(exc, socket.gaierror):
        return f"{where}: cannot resolve host name ({exc.strerror})"
    if isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                        http.client.IncompleteRead)):
        return f"{where}: connection lost ({type(exc).__name__}); the vCenter went away mid-collection"
    if isinstance(exc, OSError):
        return f"{where}: {exc.strerror or exc}"
    if isinstance(exc, vmodl.MethodFault):
        return f"{where}: {type(exc).__name__}: {exc.msg or exc}"
    return f"{where}: unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
