"""The fast vSphere path (lxml, auditor/sources/vsphere_soap.py) against pyVmomi's own reading,
and vCenters collected in processes of their own.

- Every estate of govmomi's simulator the suite collects gives the same snapshot (resources,
  in order and with their JSON types, and source details) read either way.
- Objects vcsim does not model (times, binary, faults, typed option values, subtypes, newer
  types than the session knows) are serialised by pyVmomi itself into an answer, which both
  readers then read; Hypothesis varies the typed values.
- A vCenter whose answers come back truncated, cut off, garbled, as entity bombs or with
  values pyVmomi would refuse fails its source with one line, with no resource of it kept,
  promptly, and without a traceback (a relay in front of the simulator mangles them).
- Sources collected together run in processes: results and progress come back, a process
  that dies fails its source alone, a bug is raised in the parent, Ctrl-C and SIGTERM leave
  no process behind, and no password is on any process's command line.
"""

from __future__ import annotations

import datetime
import gzip
import http.client
import http.server
import io
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.cli import main
from auditor.inventory import ESXI_SETTINGS
from auditor.snapshot import Source, load_snapshot
from auditor.sources import Collected, InventorySource, Progress, collect_all
from auditor.sources.vsphere import REDUCTIONS, VSphereConnection, VSphereSource, _resource
from auditor.sources.vsphere_soap import (
    GZIP_MEMBERS,
    DecodedBody,
    MalformedAnswer,
    answer_element,
    page_token,
    prolog_end,
    read_body,
    read_document,
)
from tests import vcsim
from tests.arm_replay import make_certificate
from tests.conftest import ROOT

HOSTILE = vcsim.HOSTILE
GUARD = 90  # seconds: a command still running then hangs


@pytest.fixture(scope="module")
def simulator_binary(tmp_path_factory):
    return vcsim.build(tmp_path_factory.mktemp("vcsim-bin"))


connection = vcsim.connection


def collect(simulator, parser="fast", page_size=1000, **overrides) -> Collected:
    source = VSphereSource(connection(simulator, **overrides), page_size=page_size, parser=parser)
    return source.collect(Progress(enabled=False))


def as_json(resources) -> str:
    """Resources as text: order, and the JSON types of the values (1, 1.0, true), count."""
    return json.dumps(resources, ensure_ascii=False)


def assert_same(reference: Collected, fast: Collected) -> None:
    assert [s.status for s in reference.sources] == ["ok"], reference.sources[0].error
    assert fast.sources == reference.sources  # status, kind, counts, details (about, not collected)
    assert as_json(fast.resources) == as_json(reference.resources)


# -- the same snapshot, read either way -------------------------------------------------------


def reconfigure(simulator) -> None:
    """The changes test_vsphere.py makes through the API: VM advanced settings (ReconfigVM)
    and a port group's security policy (ReconfigureDVPortgroup)."""
    with vcsim.api(simulator) as content:
        vcsim.set_vm_settings(content, {
            "tools.setInfo.sizeLimit": "1048576", "RemoteDisplay.MaxConnections": "1",
            "ethernet1.filter3.name": "dvfilter-fw", "guestinfo.db.password": "reconfig-secret"})
        vcsim.allow_forged_transmits(content, "DC0_DVPG2")


# every estate the suite collects: tests/test_vsphere.py, test_stalled_peers.py (the estates
# that hang or stall are failures, not snapshots), test_examples.py and test_fanout.py (-user)
ESTATES = {
    "vCenter": ([], {}),
    "standalone ESXi host": (["-esx"], {}),
    "two VMs per pool": (["-vms", "2"], {}),
    "one VM per pool": (["-vms", "1"], {}),
    "SSO user": (["-user", "auditor@vsphere.local"], {"user": "auditor@vsphere.local"}),
    "1024-bit certificate, --insecure": (["-rsa-bits", "1024", "-vms", "1"], {"ca_bundle": None, "insecure": True}),
    "changed through the API": ([], {}),
}


@pytest.mark.peer
@pytest.mark.parametrize("estate", list(ESTATES))
def test_every_estate_reads_the_same_either_way(simulator_binary, tmp_path, estate):
    flags, overrides = ESTATES[estate]
    simulator = vcsim.start(simulator_binary, tmp_path, *flags)
    try:
        if estate == "changed through the API":
            reconfigure(simulator)
        reference = collect(simulator, "pyvmomi", **overrides)
        fast = collect(simulator, "fast", **overrides)
        paged = collect(simulator, "fast", page_size=3, **overrides)  # ContinueRetrievePropertiesEx read ahead
    finally:
        simulator.stop()
    assert_same(reference, fast)
    assert_same(reference, paged)
    counts = Counter(r["type"] for r in fast.resources)
    assert counts["VirtualMachine"] >= 2 and counts["HostSystem"] >= 1 and counts["License"] == 4
    if estate == "standalone ESXi host":
        assert fast.sources[0].kind == "esxi" and "licence assignments" in fast.sources[0].details["not_collected"]
    if estate == "changed through the API":
        assert "reconfig-secret" not in as_json(fast.resources)
        assert any(s.get("key") == "RemoteDisplay.MaxConnections" for r in fast.resources
                   for s in r.get("config", {}).get("extraConfig", []))


@pytest.mark.peer
def test_the_command_line_chooses_the_reader(simulator_binary, tmp_path, monkeypatch, capsys):
    """--parser and AUDITOR_VSPHERE_PARSER pick the reader; either writes the same snapshot."""
    simulator = vcsim.start(simulator_binary, tmp_path, "-vms", "1")
    monkeypatch.setenv("VSPHERE_USER", "auditor")
    monkeypatch.setenv("VSPHERE_PASSWORD", vcsim.PASSWORD)
    common = ["collect", "vsphere", "--server", simulator.server, "--ca-bundle", str(simulator.cert), "-q"]
    try:
        assert main([*common, "--out", str(tmp_path / "fast.json")]) == 0
        assert main([*common, "--parser", "pyvmomi", "--out", str(tmp_path / "flag.json")]) == 0
        monkeypatch.setenv("AUDITOR_VSPHERE_PARSER", "pyvmomi")
        assert main([*common, "--out", str(tmp_path / "env.json")]) == 0
        with pytest.raises(SystemExit) as refused:
            main([*common, "--parser", "xml", "--out", str(tmp_path / "x.json")])
        assert refused.value.code == 2
    finally:
        simulator.stop()
    assert "invalid choice 'xml'" in capsys.readouterr().err
    fast, *others = (load_snapshot(tmp_path / name) for name in ("fast.json", "flag.json", "env.json"))
    for other in others:
        assert other.sources == fast.sources and as_json(other.resources) == as_json(fast.resources)
    with pytest.raises(ValueError, match="parser 'lxml'"):
        VSphereSource(VSphereConnection(host="h"), parser="lxml")


# -- objects vcsim does not model, serialised by pyVmomi ----------------------------------------


def soap_answer(objects: list, version: str, token: str | None = None,
                method: str = "RetrievePropertiesEx") -> bytes:
    """A PropertyCollector answer as a vCenter sends it, serialised by pyVmomi."""
    from pyVmomi import SoapAdapter, VmomiSupport, vmodl

    result = vmodl.query.PropertyCollector.RetrieveResult(objects=objects, token=token)
    info = VmomiSupport.Object(name="returnval", type=type(result), version=version, flags=0)
    inner = SoapAdapter.SerializeToStr(result, info, version)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<soapenv:Envelope '
            'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            f'<soapenv:Body><{method}Response xmlns="urn:vim25">{inner}</{method}Response></soapenv:Body>'
            '</soapenv:Envelope>').encode()


class Answer:
    """An HTTP answer's body, as read_document reads http.client's."""

    status = 200

    def __init__(self, body: bytes, encoding: str | None = None):
        self.body = io.BytesIO(body)
        self.encoding = encoding

    def getheader(self, name, default=None):
        return self.encoding if name.lower() == "content-encoding" and self.encoding else default

    def read(self, amount=-1):
        return self.body.read(amount)


FIELDS = {1: "owner", 2: "cost-centre"}
ASSIGNED = {"host-1": {"licenseKey": "*****-*****-*****-*****-7R4H9", "name": "ESXi"}}


def read_both(body: bytes, version: str) -> tuple[list, list]:
    """The resources pyVmomi's reading gives, and those the fast reading gives."""
    from pyVmomi import SoapAdapter, vmodl

    stub = SoapAdapter.SoapStubAdapter(host="localhost", version=version)
    result = SoapAdapter.SoapResponseDeserializer(stub).Deserialize(body, vmodl.query.PropertyCollector.RetrieveResult)
    reference = [_resource(content, "vc", FIELDS, ASSIGNED) for content in result.objects]
    from auditor.sources.vsphere_soap import Decoder

    answer, is_fault = answer_element(read_document(Answer(body)), "RetrievePropertiesEx")
    assert not is_fault
    page = Decoder(version).retrieve_result(answer, REDUCTIONS)
    assert page.token == result.token == page_token(answer)
    return reference, [_resource(content, "vc", FIELDS, ASSIGNED) for content in page.objects]


def complete(value):
    """`value` with every required property of its data objects set, as a server sends them
    (pyVmomi's serialiser refuses objects that lack one)."""
    import datetime as dt

    from pyVmomi import VmomiSupport

    if isinstance(value, list):
        for item in value:
            complete(item)
        return value
    if not isinstance(value, VmomiSupport.DataObject):
        return value
    for info in value._GetPropertyList():
        if info.name in ("dynamicType", "dynamicProperty"):
            continue
        current = getattr(value, info.name)
        kind = info.type.Item if issubclass(info.type, list) else info.type
        missing = current is None or (isinstance(current, list) and not current)
        if missing and not info.flags & VmomiSupport.F_OPTIONAL:
            if issubclass(kind, VmomiSupport.DataObject):
                sample = kind()
            elif issubclass(kind, VmomiSupport.Enum):
                sample = kind.values[0]
            elif issubclass(kind, VmomiSupport.ManagedObject):
                sample = kind(f"{kind._wsdlName.lower()}-1")
            elif kind is dt.datetime:
                sample = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
            elif kind is type:
                sample = VmomiSupport.GetVmodlType("vim.HostSystem")
            else:
                sample = kind() if kind is not object else "x"
            if sample is None:
                continue
            setattr(value, info.name, info.type([sample]) if issubclass(info.type, list) else sample)
        complete(getattr(value, info.name))
    return value


def unmodelled_objects() -> list:
    """Hosts, VMs, switches, datastores and clusters with what vcsim leaves out."""
    from pyVmomi import VmomiSupport, vim, vmodl

    pc = vmodl.query.PropertyCollector

    def content(obj, missing=(), **props):
        return pc.ObjectContent(obj=obj, missingSet=[pc.MissingProperty(path=path, fault=vim.fault.NoPermission(
            privilegeId="System.Read", msg="denied")) for path in missing], propSet=[
            vmodl.DynamicProperty(name=name.replace("__", "."), val=value) for name, value in props.items()])

    strings = VmomiSupport.GetVmodlType("string[]")
    ints = VmomiSupport.GetVmodlType("int[]")
    option = vim.option.OptionValue
    when = datetime.datetime(2026, 3, 1, 12, 30, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    device = vim.vm.device
    connect = device.VirtualDevice.ConnectInfo(startConnected=True, allowGuestControl=False, connected=True)
    devices = device.VirtualDevice.Array([
        device.VirtualDisk(key=2000, capacityInKB=1 << 34, deviceInfo=vim.Description(label="Hard disk 1", summary="s"),
                           backing=device.VirtualDisk.FlatVer2BackingInfo(fileName="[ds] vm/vm.vmdk",
                                                                          diskMode="persistent")),
        device.VirtualVmxnet3(key=4000, macAddress="00:50:56:00:00:01", addressType="assigned",
                              wakeOnLanEnabled=True, connectable=connect, deviceInfo=vim.Description(label="NIC 1",
                                                                                                   summary="s"),
                              backing=device.VirtualEthernetCard.NetworkBackingInfo(deviceName="VM Network")),
        device.VirtualE1000e(key=4001, macAddress="00:50:56:00:00:02", backing=(
            device.VirtualEthernetCard.DistributedVirtualPortBackingInfo(port=vim.dvs.PortConnection(
                switchUuid="50 2a", portgroupKey="dvportgroup-9", portKey="12")))),
        device.VirtualCdrom(key=3000, connectable=connect, backing=device.VirtualCdrom.IsoBackingInfo(
            fileName="[ds] iso/secret.iso")),
        device.VirtualFloppy(key=8000),  # no deviceInfo, no connectable
        device.VirtualUSBXHCIController(key=14000, deviceInfo=vim.Description(label="USB xHCI", summary="s")),
        device.VirtualSoundBlaster16(key=5000, deviceInfo=vim.Description(label="Sound", summary="s")),
        device.VirtualSerialPort(key=9000, yieldOnPoll=True, backing=device.VirtualSerialPort.FileBackingInfo(
            fileName="[ds] serial.log")),
    ])
    vm = content(
        vim.VirtualMachine("vm-1"), missing=["guest.ipAddress"],
        name="vm <one> & 'two' \u00e9\u4e2d", config__guestId="rhel8_64Guest", config__template=False,
        config__hardware__numCPU=4, config__hardware__memoryMB=8192, config__hardware__device=devices,
        config__extraConfig=option.Array([option(key="isolation.tools.copy.disable", value="TRUE"),
                                          option(key="guestinfo.password", value="not-kept"),
                                          option(key="RemoteDisplay.maxConnections", value=1)]),
        config__bootOptions=vim.vm.BootOptions(efiSecureBootEnabled=True, bootDelay=5000, bootOrder=[
            vim.vm.BootOptions.BootableCdromDevice(), vim.vm.BootOptions.BootableDiskDevice(deviceKey=2000)]),
        config__flags__enableLogging=True, runtime__powerState=vim.VirtualMachine.PowerState.poweredOn,
        runtime__host=vim.HostSystem("host-1"), guest__toolsStatus=vim.vm.GuestInfo.ToolsStatus.toolsOk,
        network=vim.Network.Array([vim.Network("network-1"), vim.dvs.DistributedVirtualPortgroup("dvportgroup-9")]),
        customValue=vim.CustomFieldsManager.Value.Array([vim.CustomFieldsManager.StringValue(key=1, value="team-a"),
                                                         vim.CustomFieldsManager.StringValue(key=7, value="x")]),
        resourcePool=vim.ResourcePool("resgroup-1"))
    ruleset = vim.host.Ruleset
    hba = vim.host.InternetScsiHba
    host = content(
        vim.HostSystem("host-1"), missing=["config.dateTimeInfo", "capability.uefiSecureBoot"], name="esx-1",
        config__option=option.Array([
            option(key="UserVars.ESXiShellTimeOut", value=900), option(key="Syslog.global.logHost", value=strings(
                ["ssl://a:6514", "udp://b:514"])), option(key="Security.AccountLockFailures", value=VmomiSupport.GetVmodlType(
                    "long")(5)), option(key="Config.HostAgent.plugins.hostsvc.esxAdminsGroupAutoAdd", value=False),
            option(key="Mem.ShareForceSalting", value=ints([2])), option(key="UserVars.HostClientSessionTimeout",
                                                                      value=when),
            option(key="Config.HostAgent.plugins.solo.webServices.secret", value="not-kept")]),
        config__firewall=vim.host.FirewallInfo(
            defaultPolicy=vim.host.FirewallInfo.DefaultPolicy(incomingBlocked=True, outgoingBlocked=False),
            ruleset=[ruleset(key="sshServer", label="SSH", enabled=True, required=False, rule=[
                ruleset.Rule(port=22, direction="inbound", protocol="tcp")], allowedHosts=ruleset.IpList(
                allIp=False, ipAddress=["192.0.2.1"], ipNetwork=[ruleset.IpNetwork(network="10.0.0.0", prefixLength=8)])),
                     ruleset(key="ntpClient", label="NTP", enabled=False, required=True, rule=[
                ruleset.Rule(port=123, direction="outbound", protocol="udp")])]),
        config__storageDevice__hostBusAdapter=vim.host.HostBusAdapter.Array([
            vim.host.ParallelScsiHba(device="vmhba0", key="p", model="m", status="online"),
            hba(device="vmhba64", key="k", model="m", status="online", iScsiName="iqn.x", isSoftwareBased=True,
                authenticationProperties=hba.AuthenticationProperties(
                    chapAuthEnabled=True, chapName="user", chapSecret="s3cret", chapAuthenticationType="chapRequired",
                    chapInherited=False, mutualChapSecret="s3cret2", mutualChapAuthenticationType="chapProhibited"))]),
        summary__hardware=vim.host.Summary.HardwareSummary(vendor="Dell", model="R750", uuid="u", memorySize=1 << 40,
                                                           cpuModel="Xeon", cpuMhz=2900, numCpuPkgs=2, numCpuCores=64,
                                                           numCpuThreads=128, numNics=4, numHBAs=2),
        summary__config__product=vim.AboutInfo(name="VMware ESXi", fullName="VMware ESXi 8.0.3", vendor="VMware, Inc.",
                                               version="8.0.3", build="24022510", apiType="HostAgent",
                                               apiVersion="8.0.3.0", osType="vmnix-x86", productLineId="embeddedEsx"),
        summary__runtime__connectionState=vim.HostSystem.ConnectionState.connected,
        summary__runtime__inMaintenanceMode=False,
        config__lockdownMode=vim.host.HostAccessManager.LockdownMode.lockdownStrict,
        config__service=vim.host.ServiceInfo(service=[vim.host.Service(key="TSM-SSH", label="SSH", required=False,
                                                                       uninstallable=False, running=True, policy="on",
                                                                       ruleset=["sshServer"])]),
        config__network__portgroup=vim.host.PortGroup.Array([vim.host.PortGroup(
            key="key-vim.host.PortGroup-VM Network", vswitch="key-vim.host.VirtualSwitch-vSwitch0",
            spec=vim.host.PortGroup.Specification(name="VM Network", vlanId=4095, vswitchName="vSwitch0",
                                                  policy=vim.host.NetworkPolicy()))]),
        config__authenticationManagerInfo=vim.host.AuthenticationManagerInfo(authConfig=[
            vim.host.LocalAuthenticationInfo(enabled=True),
            vim.host.ActiveDirectoryInfo(enabled=True, joinedDomain="corp.example", domainMembershipStatus="ok")]),
        parent=vim.ClusterComputeResource("domain-c1"))
    vmware = vim.dvs.VmwareDistributedVirtualSwitch
    switch = content(
        vmware("dvs-1"), name="DSwitch", summary__productInfo=vim.dvs.ProductSpec(name="DVS", vendor="VMware, Inc.",
                                                                                 version="8.0.0"),
        config=vmware.ConfigInfo(
            name="DSwitch", uuid="50 2a", numPorts=8, maxPorts=64, configVersion="3", createTime=when,
            uplinkPortgroup=[vim.dvs.DistributedVirtualPortgroup("dvportgroup-1")], maxMtu=9000,
            linkDiscoveryProtocolConfig=vim.host.LinkDiscoveryProtocolConfig(protocol="cdp", operation="listen"),
            defaultPortConfig=vmware.VmwarePortConfigPolicy(vlan=vmware.VlanIdSpec(inherited=False, vlanId=10),
                                                            securityPolicy=vmware.SecurityPolicy(
                                                                allowPromiscuous=vim.BoolPolicy(value=False))),
            vspanSession=[vmware.VspanSession(key="s1", name="mirror", enabled=True, normalTrafficAllowed=False,
                                              destinationPort=vmware.VspanPorts(ipAddress=["192.0.2.60"]))]))
    datastore = content(vim.Datastore("datastore-1"), name="ds-1", summary=vim.Datastore.Summary(
        name="ds-1", url="ds:///vmfs/volumes/1/", capacity=1 << 45, freeSpace=1 << 44, type="VMFS", accessible=True,
        multipleHostAccess=True, maintenanceMode="normal", datastore=vim.Datastore("datastore-1")))
    cluster = content(vim.ClusterComputeResource("domain-c1"), name="cluster",
                      configuration__drsConfig=vim.cluster.DrsConfigInfo(
                          enabled=True, defaultVmBehavior=vim.cluster.DrsConfigInfo.DrsBehavior.fullyAutomated,
                          vmotionRate=3),
                      configuration__dasConfig=vim.cluster.DasConfigInfo(enabled=True, admissionControlEnabled=True))
    return complete([vm, host, switch, datastore, cluster])


@pytest.mark.parametrize("version", ["vim.version.version11", "newest"])
def test_objects_vcsim_does_not_model_read_the_same(version):
    from pyVmomi import VmomiSupport

    if version == "newest":
        version = VmomiSupport.GetServiceVersions("vim25")[0]
    reference, fast = read_both(soap_answer(unmodelled_objects(), version, token="page-2"), version)
    assert as_json(fast) == as_json(reference)
    vm, host, switch, *_ = fast
    assert vm["tags"] == {"owner": "team-a", "7": "x"} and vm["_missing"] == ["guest.ipAddress"]
    assert [d.get("_type", "nic") for d in vm["config"]["hardware"]["device"]] == [
        "nic", "nic", "VirtualCdrom", "VirtualFloppy", "VirtualUSBXHCIController", "VirtualSoundBlaster16",
        "VirtualSerialPort"]
    assert "secret" not in as_json(fast) and "not-kept" not in as_json(fast)
    options = {o["key"]: o["value"] for o in host["config"]["option"]}
    assert options["UserVars.HostClientSessionTimeout"] == "2026-03-01T10:30:05Z"
    assert options["Security.AccountLockFailures"] == 5 and options["Syslog.global.logHost"][1] == "udp://b:514"
    assert host["assignedLicense"]["name"] == "ESXi" and host["config"]["lockdownMode"] == "lockdownStrict"
    assert switch["config"]["maxMtu"] == 9000 and "createTime" not in switch["config"]


def test_required_values_a_server_leaves_out_read_as_pyvmomi_defaults_them():
    """pyVmomi's data objects give absent required values a default (False, "", 0, 0.0, []),
    and `to_plain` keeps them; absent optional ones, enums and objects are left out."""
    version = "vim.version.version11"
    body = soap_answer(unmodelled_objects(), version)
    left_out = [b"numCpuPkgs", b"model", b"accessible", b"multipleHostAccess", b"enabled", b"required",
                b"macAddress", b"wakeOnLanEnabled", b"key", b"rule", b"port", b"vmotionRate", b"capacity",
                b"defaultPolicy", b"uplinkPortgroup", b"deviceInfo"]
    for name in left_out:
        body, count = re.subn(rb"<%s(?: [^>]*)?>(?:(?!<%s[ >]).)*?</%s>" % (name, name, name), b"", body, flags=re.S)
        assert count, name
    reference, fast = read_both(body, version)
    assert as_json(fast) == as_json(reference)
    host = fast[1]
    assert host["summary"]["hardware"]["numCpuPkgs"] == 0 and host["summary"]["hardware"]["model"] == ""
    assert host["config"]["firewall"]["ruleset"][0]["enabled"] is False


def test_empty_answers_faults_and_types_newer_than_the_session():
    from pyVmomi import vim, vmodl

    from auditor.sources.vsphere_soap import Decoder

    version = "vim.version.version11"  # vSphere 6.5, what vcsim speaks
    # nothing found: RetrievePropertiesEx answers without a returnval
    empty = (b'<?xml version="1.0" encoding="UTF-8"?>\n<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/'
             b'soap/envelope/"><soapenv:Body><RetrievePropertiesExResponse xmlns="urn:vim25"/></soapenv:Body>'
             b"</soapenv:Envelope>")
    answer, _ = answer_element(read_document(Answer(empty)), "RetrievePropertiesEx")
    assert Decoder(version).retrieve_result(answer, REDUCTIONS) is None and page_token(answer) is None
    # a fault as a value (sent as a LocalizedMethodFault), and a device of vSphere 7 in a
    # vSphere 6.5 session, which pyVmomi widens to the type the session knows
    option = vim.option.OptionValue
    host = vmodl.query.PropertyCollector.ObjectContent(obj=vim.HostSystem("host-1"), propSet=[vmodl.DynamicProperty(
        name="config.option", val=option.Array([
            option(key="UserVars.ESXiShellTimeOut", value=vim.fault.NotFound(msg="no such option")),
            option(key="Syslog.global.logHost", value=vim.vm.device.VirtualDevice(
                key=50, deviceInfo=vim.Description(label="WDT", summary="s")))]))])
    body = soap_answer([host], version)
    assert b'xsi:type="VirtualDevice"' in body
    reference, fast = read_both(body.replace(b'xsi:type="VirtualDevice"', b'xsi:type="VirtualWDT"'), version)
    assert as_json(fast) == as_json(reference)
    fault, device = (o["value"] for o in fast[0]["config"]["option"])
    assert fault["_type"] == "NotFound" and fault["msg"] == "no such option"
    assert device["_type"] == "VirtualDevice" and device["deviceInfo"] == {"label": "WDT", "summary": "s"}


XML_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xD7FF) | st.sampled_from("\t\n"), max_size=40)
OPTION_VALUES = st.one_of(
    XML_TEXT, st.booleans(), st.integers(-(1 << 63), (1 << 63) - 1),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.datetimes(min_value=datetime.datetime(1900, 1, 1), max_value=datetime.datetime(2200, 1, 1),
                 timezones=st.sampled_from([datetime.UTC, datetime.timezone(datetime.timedelta(hours=-7, minutes=-30))])),
    st.binary(max_size=20), st.lists(XML_TEXT, max_size=3), st.lists(st.integers(-(1 << 31), (1 << 31) - 1),
                                                                     max_size=3))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(sorted(ESXI_SETTINGS)), OPTION_VALUES), max_size=6), XML_TEXT)
def test_typed_values_read_the_same(options, name):
    """Host advanced settings of every type an anyType value takes, and names of any text."""
    from pyVmomi import VmomiSupport, vim, vmodl

    def typed(value):
        if isinstance(value, bytes):
            return VmomiSupport.binary(value)
        if isinstance(value, list):
            kind = "int[]" if value and isinstance(value[0], int) else "string[]"
            return VmomiSupport.GetVmodlType(kind)(value)
        if isinstance(value, int) and not isinstance(value, bool) and not -(1 << 31) <= value < (1 << 31):
            return VmomiSupport.GetVmodlType("long")(value)
        return value

    option = vim.option.OptionValue
    host = vmodl.query.PropertyCollector.ObjectContent(obj=vim.HostSystem("host-7"), propSet=[
        vmodl.DynamicProperty(name="name", val=name),
        vmodl.DynamicProperty(name="config.option", val=option.Array([option(key=k, value=typed(v)) for k, v in options]))])
    version = "vim.version.version11"
    reference, fast = read_both(soap_answer([host], version), version)
    assert as_json(fast) == as_json(reference)


# -- answers that are not what they should be ------------------------------------------------


BOMB = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">' + b"".join(
    b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10) for i in range(1, 10))
    + b']><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
    b'<RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><token>&lol9;</token></returnval>'
    b"</RetrievePropertiesExResponse></soapenv:Body></soapenv:Envelope>")
EXTERNAL = (b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
            b'<RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><token>&x;</token></returnval>'
            b"</RetrievePropertiesExResponse></soapenv:Body></soapenv:Envelope>")
FAULT = (b'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/'
         b'envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault>'
         b'<faultcode>ServerFaultCode</faultcode><faultstring>config.bogus is not a property</faultstring><detail>'
         b'<InvalidPropertyFault xmlns="urn:vim25" xsi:type="InvalidProperty"><name>config.bogus</name>'
         b"</InvalidPropertyFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>")

UNKNOWN_FAULT = FAULT.replace(b"config.bogus is not a property", b"a fault from a newer vCenter").replace(
    b'<InvalidPropertyFault xmlns="urn:vim25" xsi:type="InvalidProperty"><name>config.bogus</name>'
    b"</InvalidPropertyFault>", b'<BrandNewFault xmlns="urn:vim25" xsi:type="BrandNewFault"/>')


def mangled(mode: str, body: bytes) -> tuple[int, bytes, bool]:
    """(HTTP status, body, whether to cut the connection after half of it) for `mode`."""
    if mode in ("truncated", "truncated, stalled"):
        return 200, body[: len(body) // 2], False
    if mode == "cut off":
        return 200, body, True
    if mode == "garbage":
        return 200, bytes(range(256)) * 40, False
    if mode == "html":
        return 200, b"<html><body>502 Bad Gateway</body></html>", False
    if mode == "entity bomb":
        return 200, BOMB, False
    if mode == "external entity":
        return 200, EXTERNAL, False
    if mode == "deep":
        return 200, b"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'>" + b"<a>" * 100_000, False
    if mode == "fault":
        return 500, FAULT, False
    if mode == "unknown fault":
        return 500, UNKNOWN_FAULT, False
    if mode == "empty pages":  # the first page as it is: the relay answers the following ones itself
        return 200, body, False
    if mode == "unknown property":
        return 200, body.replace(b"<timeZone>", b"<bogusProperty>1</bogusProperty><timeZone>", 1), False
    if mode == "bad number":
        return 200, re.sub(rb"<gmtOffset>0</gmtOffset>", b"<gmtOffset>zero</gmtOffset>", body, count=1), False
    if mode == "other answer":
        return 200, body.replace(b"RetrievePropertiesExResponse", b"RetrievePropertiesResponse"), False
    if mode in ("decoy token", "decoy token, stalled"):  # a comment ahead of the page that looks like its token
        return 200, re.sub(rb"(<(Continue)?RetrievePropertiesExResponse[^>]*>)",
                           rb"\1<!--<returnval><token>decoy</token>-->", body, count=1), False
    if mode == "cdata token":  # the token as CDATA: well-formed, but not plainly in the bytes
        return 200, re.sub(rb"<token>([^<]*)</token>", rb"<token><![CDATA[\1]]></token>", body, count=1), False
    raise AssertionError(mode)


class Relay(http.server.ThreadingHTTPServer):
    """An HTTPS relay in front of the simulator that mangles the answer to the `nth`
    PropertyCollector page request (RetrievePropertiesEx or ContinueRetrievePropertiesEx),
    or to the first one after it that has what the mode changes."""

    daemon_threads = True

    def __init__(self, simulator, workdir: Path, mode: str, nth: int = 1):
        super().__init__(("127.0.0.1", 0), RelayHandler)
        self.simulator, self.mode, self.nth, self.pages, self.done = simulator, mode, nth, 0, False
        self.lock = threading.Lock()
        self.released = threading.Event()  # lets go of the requests a stalling mode holds
        cert, key = make_certificate(workdir)
        self.cert = workdir / "relay-ca.pem"
        self.cert.write_bytes(cert.read_bytes())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.upstream = ssl.create_default_context(cafile=str(simulator.cert))
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.released.set()
        self.shutdown()
        self.server_close()


class RelayHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # pyVmomi keeps its connections

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.relay(b"")

    def do_POST(self) -> None:
        self.relay(self.rfile.read(int(self.headers.get("Content-Length", 0))))

    def relay(self, request: bytes) -> None:
        relay: Relay = self.server
        continuing = b"<ContinueRetrievePropertiesEx" in request
        if continuing and (relay.mode == "truncated, stalled" or (
                relay.mode == "decoy token, stalled" and b">decoy</token>" in request)):
            relay.released.wait(60)  # a request held until the test ends: the client must not wait for it
            return
        if continuing and relay.mode == "empty pages":  # a page without objects that names another, for ever
            body = (b'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.'
                    b'org/soap/envelope/"><soapenv:Body><ContinueRetrievePropertiesExResponse xmlns="urn:vim25">'
                    b'<returnval><token>page-loop</token></returnval></ContinueRetrievePropertiesExResponse>'
                    b'</soapenv:Body></soapenv:Envelope>')
            with relay.lock:
                relay.pages += 1
                relay.done = True
            self.send_response(200)
            self.send_header("Content-Type", "text/xml; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        upstream = http.client.HTTPSConnection("127.0.0.1", relay.simulator.port, context=relay.upstream, timeout=30)
        headers = {name: self.headers[name] for name in ("Cookie", "SOAPAction", "Content-Type") if self.headers[name]}
        upstream.request(self.command, self.path, request or None, headers)
        answer = upstream.getresponse()
        status, body, cut = answer.status, answer.read(), False
        upstream.close()
        if re.search(rb"<(Continue)?RetrievePropertiesEx[\s>]", request):
            with relay.lock:
                relay.pages += 1
                if relay.pages >= relay.nth and not relay.done:
                    # the nth page, or the first after it with what the mode changes
                    status, changed, cut = mangled(relay.mode, body)
                    relay.done, body = changed != body or cut, changed
        self.send_response(status)
        for name in ("Set-Cookie", "Content-Type"):
            if answer.getheader(name):
                self.send_header(name, answer.getheader(name))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if cut else body)
        if cut:
            self.wfile.flush()
            self.close_connection = True


@pytest.fixture(scope="module")
def upstream(simulator_binary, tmp_path_factory):
    instance = vcsim.start(simulator_binary, tmp_path_factory.mktemp("upstream"))
    yield instance
    instance.stop()


@pytest.mark.peer
@pytest.mark.parametrize("mode, nth, message", [
    ("truncated", 1, "not valid vSphere SOAP (not well-formed XML"),
    ("truncated", 3, "not valid vSphere SOAP (not well-formed XML"),  # a later page, read ahead
    ("cut off", 2, "connection lost (IncompleteRead)"),
    ("garbage", 1, "not valid vSphere SOAP (not well-formed XML"),
    ("html", 1, "not valid vSphere SOAP (not a SOAP envelope but <html>)"),
    ("entity bomb", 1, "not valid vSphere SOAP (the answer declares a DTD, which SOAP forbids)"),
    ("external entity", 1, "not valid vSphere SOAP (the answer declares a DTD, which SOAP forbids)"),
    ("deep", 1, "not valid vSphere SOAP (not well-formed XML"),
    ("unknown property", 1, "not valid vSphere SOAP (HostDateTimeInfo has no property 'bogusProperty')"),
    ("bad number", 1, "not valid vSphere SOAP ('zero' is not a whole number)"),
    ("other answer", 1, "not valid vSphere SOAP (<RetrievePropertiesResponse> answers no RetrievePropertiesEx)"),
    ("fault", 2, "InvalidProperty: config.bogus is not a property"),
    ("decoy token", 1, "not valid vSphere SOAP (a page's token differs from what its first bytes said)"),
    ("decoy token", 2, "not valid vSphere SOAP (a page's token differs from what its first bytes said)"),
])
def test_a_bad_answer_fails_the_source_and_keeps_nothing(upstream, tmp_path, mode, nth, message):
    relay = Relay(upstream, tmp_path, mode, nth)
    try:
        started = time.monotonic()
        result = VSphereSource(connection(upstream, port=relay.server_address[1], ca_bundle=str(relay.cert)),
                               page_size=5).collect(Progress(enabled=False))
        elapsed = time.monotonic() - started
    finally:
        relay.stop()
    (source,) = result.sources
    assert relay.done, "the relay never mangled an answer"
    assert source.status == "failed" and result.resources == [], source
    assert source.error.startswith(f"{relay.server} (collecting): ") and message in source.error, source.error
    assert "\n" not in source.error and "root:" not in source.error and "lol" not in source.error
    assert elapsed < 15


@pytest.mark.peer
@pytest.mark.parametrize("mode, message", [
    ("decoy token, stalled", "not valid vSphere SOAP (a page's token differs from what its first bytes said)"),
    ("truncated, stalled", "not valid vSphere SOAP (not well-formed XML"),
])
def test_a_bad_page_fails_at_once_whatever_became_of_the_next(upstream, tmp_path, mode, message):
    """The next page was asked for early (from a forged token, or from the first bytes of a page
    that then proves broken) and that request is held: the source fails at once with the bad
    page's reason, not after the timeout as a timeout, and the held request is cut off."""
    relay = Relay(upstream, tmp_path, mode, nth=1)
    try:
        started = time.monotonic()
        result = VSphereSource(connection(upstream, port=relay.server_address[1], ca_bundle=str(relay.cert),
                                          timeout=20), page_size=5).collect(Progress(enabled=False))
        elapsed = time.monotonic() - started
    finally:
        relay.stop()
    (source,) = result.sources
    assert source.status == "failed" and result.resources == [] and message in source.error, source.error
    assert elapsed < 10, elapsed
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("vsphere-pages")]


@pytest.mark.peer
@pytest.mark.parametrize("parser", ["fast", "pyvmomi"])
def test_pages_without_objects_for_ever_fail_the_source(upstream, tmp_path, parser):
    """A server that answers every ContinueRetrievePropertiesEx with an empty page naming
    another is followed for MAX_EMPTY_PAGES pages, then the source fails."""
    from auditor.sources.vsphere import MAX_EMPTY_PAGES, PAGES_AHEAD

    relay = Relay(upstream, tmp_path, "empty pages")
    try:
        result = VSphereSource(connection(upstream, port=relay.server_address[1], ca_bundle=str(relay.cert)),
                               page_size=5, parser=parser).collect(Progress(enabled=False))
    finally:
        relay.stop()
    (source,) = result.sources
    assert source.status == "failed" and result.resources == []
    assert f"{MAX_EMPTY_PAGES + 1} pages in a row without an object" in source.error, source.error
    empty = relay.pages - 1  # after the first, real page; a few more may have been asked for early
    assert MAX_EMPTY_PAGES + 1 <= empty <= MAX_EMPTY_PAGES + 1 + PAGES_AHEAD, empty


@pytest.mark.peer
def test_more_objects_than_a_vcenter_holds_fail_the_source(upstream, monkeypatch):
    """Past MAX_OBJECTS objects (a million: twenty times what vSphere 8 lets a vCenter hold)
    the pages are not followed further; here the cap is lowered to the simulator's size."""
    import auditor.sources.vsphere as vsphere

    monkeypatch.setattr(vsphere, "MAX_OBJECTS", 5)
    result = collect(upstream, page_size=3)
    assert result.sources[0].status == "failed" and result.resources == []
    assert "more than 5 objects in the PropertyCollector's pages" in result.sources[0].error
    monkeypatch.setattr(vsphere, "MAX_OBJECTS", 1_000)
    assert collect(upstream, page_size=3).sources[0].status == "ok"


def test_a_large_answer_is_parsed_before_the_next_page_is_asked_for(monkeypatch):
    """Past EARLY_LIMIT bytes an answer's token is not read from its first bytes: pages read
    side by side would each have ANSWER_LIMIT, not all of them together."""
    import auditor.sources.vsphere_soap as vsphere_soap

    monkeypatch.setattr(vsphere_soap, "EARLY_LIMIT", 4096)
    head = (b'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/'
            b'soap/envelope/"><soapenv:Body><RetrievePropertiesExResponse xmlns="urn:vim25"><returnval>'
            b'<token>page-1</token>')
    tail = b"</returnval></RetrievePropertiesExResponse></soapenv:Body></soapenv:Envelope>"
    for padding, told in ((0, ["page-1"]), (8192, [])):
        heard: list[str] = []
        tap = vsphere_soap.AnswerTap("RetrievePropertiesEx", on_token=heard.append)
        tap.take(Answer(head + b"<!--" + b" " * padding + b"-->" + tail))
        assert heard == told and page_token(tap.answer) == "page-1"


@pytest.mark.peer
def test_a_token_the_first_bytes_do_not_give_plainly_is_read_from_the_parsed_page(upstream, tmp_path):
    """A page whose token is CDATA: nothing is asked for early, the next page is asked for
    with the parsed token, and the collection is whole."""
    relay = Relay(upstream, tmp_path, "cdata token", nth=2)
    try:
        mangled_run = VSphereSource(connection(upstream, port=relay.server_address[1], ca_bundle=str(relay.cert)),
                                    page_size=5).collect(Progress(enabled=False))
    finally:
        relay.stop()
    assert relay.done
    plain = collect(upstream, page_size=5)
    assert mangled_run.sources[0].status == "ok", mangled_run.sources[0].error
    assert as_json(mangled_run.resources).replace(relay.server, upstream.server) == as_json(plain.resources)


@pytest.mark.peer
def test_the_next_page_is_asked_for_before_this_one_is_parsed(upstream, monkeypatch):
    """The vCenter makes the next page while this one is parsed and decoded: the request for
    page 2 leaves before page 1 is parsed (its token is read from the first bytes)."""
    import auditor.sources.vsphere as vsphere
    import auditor.sources.vsphere_soap as vsphere_soap

    asked, order = threading.Event(), []
    send, parse = vsphere.send_tapped, vsphere_soap.parse_document

    def sending(collector, method, args, tap=None):
        if method == "ContinueRetrievePropertiesEx":
            order.append(f"asked {args[0]}")
            asked.set()
        return send(collector, method, args, tap)

    def parsing(document):
        if b"<RetrievePropertiesExResponse" in document[:1000]:  # page 1 (later pages: <Continue...)
            asked.wait(10)  # the first page's parse waits (a while at most) for the next request
            order.append("page 1 parsed")
        return parse(document)

    monkeypatch.setattr(vsphere, "send_tapped", sending)
    monkeypatch.setattr(vsphere_soap, "parse_document", parsing)
    result = collect(upstream, page_size=5)
    assert result.sources[0].status == "ok", result.sources[0].error
    assert order[0].startswith("asked ") and order[1] == "page 1 parsed", order
    assert as_json(result.resources) == as_json(collect(upstream, "pyvmomi", page_size=5).resources)


def test_the_leading_token_is_taken_only_when_plain():
    """leading_token: the token of a page as vCenter writes it; anything else is left to the
    parser (None), never guessed."""
    from auditor.sources.vsphere_soap import leading_token

    response = b'<?xml version="1.0"?><soapenv:Envelope><soapenv:Body><RetrievePropertiesExResponse xmlns="urn:vim25">'
    assert leading_token(response + b"<returnval><token>session[52ab]1</token><objects>") == "session[52ab]1"
    assert leading_token(response + b'<v:returnval>\n  <v:token a="1">7</v:token>') == "7"
    for near_miss in (b"<returnval><token>a&amp;b</token>",  # a reference
                      b"<returnval><token><![CDATA[x]]></token>",  # CDATA
                      b"<returnval><token>caf\xc3\xa9</token>",  # not ASCII: depends on the encoding
                      b"<returnval><token>a b</token>",  # white space
                      b"<returnval><objects/><token>1</token>",  # not before the objects
                      b"<returnval><token></token>",  # empty
                      b"<returnvalue><token>1</token>"):  # another element
        assert leading_token(response + near_miss) is None, near_miss
    assert leading_token(b" " * (16 << 10) + b"<returnval><token>1</token>") is None  # past the first bytes
    page = b"<returnval><token>a\\b</token>"
    for encoding in ("UTF-8", "utf8", "US-ASCII"):
        assert leading_token(b'<?xml version="1.0" encoding="%s"?>' % encoding.encode() + page) == "a\\b"
    for encoding in ("Shift_JIS", "UTF-7", "ISO-2022-JP"):  # a backslash is a yen sign in Shift_JIS
        assert leading_token(b"<?xml version='1.0' encoding='%s'?>" % encoding.encode() + page) is None


@pytest.mark.peer
@pytest.mark.parametrize("parser", ["fast", "pyvmomi"])
def test_a_fault_of_a_type_pyvmomi_does_not_know_is_named(upstream, tmp_path, parser):
    """A fault type newer than this pyVmomi: one line naming the type (and, read with lxml,
    the fault's own message) and what to do, not "unexpected KeyError"."""
    relay = Relay(upstream, tmp_path, "unknown fault", nth=2)
    try:
        result = VSphereSource(connection(upstream, port=relay.server_address[1], ca_bundle=str(relay.cert)),
                               page_size=5, parser=parser).collect(Progress(enabled=False))
    finally:
        relay.stop()
    error = result.sources[0].error
    assert result.sources[0].status == "failed" and result.resources == []
    assert "names a type this pyVmomi does not know ('BrandNew')" in error and "Upgrade pyvmomi" in error, error
    assert "KeyError" not in error and "\n" not in error
    if parser == "fast":
        assert "its message: a fault from a newer vCenter" in error, error


@pytest.mark.peer
def test_a_fault_reads_as_pyvmomi_reads_it(upstream, tmp_path):
    errors = []
    for parser in ("fast", "pyvmomi"):
        (tmp_path / parser).mkdir()
        relay = Relay(upstream, tmp_path / parser, "fault")
        try:
            error = VSphereSource(connection(upstream, port=relay.server_address[1], ca_bundle=str(relay.cert)),
                                  parser=parser).collect(Progress(enabled=False)).sources[0].error
        finally:
            relay.stop()
        errors.append(error.replace(relay.server, "VC"))
    assert errors == ["VC (collecting): vmodl.query.InvalidProperty: config.bogus is not a property"] * 2


def test_size_limit_gzip_bomb_and_depth_are_refused_at_once():
    from pyVmomi import vim, vmodl

    host = vmodl.query.PropertyCollector.ObjectContent(obj=vim.HostSystem("host-1"), propSet=[
        vmodl.DynamicProperty(name="name", val="esx")])
    body = soap_answer([host], "vim.version.version11")
    for encoding in ("gzip", "deflate"):
        compressed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
        assert answer_element(read_document(Answer(compressed, encoding)), "RetrievePropertiesEx")[0] is not None
    started = time.monotonic()
    bomb = gzip.compress(b" " * (64 << 20), compresslevel=9)  # 64 kB that inflate to 64 MB
    with pytest.raises(MalformedAnswer, match="larger than 1 MiB"):
        read_document(Answer(bomb, "gzip"), limit=1 << 20)
    with pytest.raises(MalformedAnswer, match="larger than 1 MiB"):
        read_document(Answer(b"<a>" + b" " * (2 << 20) + b"</a>"), limit=1 << 20)
    with pytest.raises(MalformedAnswer, match="compressed answer is corrupt"):
        read_document(Answer(b"\x1f\x8b\x08\x00garbage", "gzip"))
    with pytest.raises(MalformedAnswer, match="compressed answer is corrupt"):
        read_document(Answer(gzip.compress(body)[:-30], "gzip"))
    with pytest.raises(MalformedAnswer, match="not well-formed"):
        read_document(Answer(b"<a>" * 100_000))
    with pytest.raises(MalformedAnswer, match="not well-formed"):
        read_document(Answer(b""))
    with pytest.raises(MalformedAnswer, match="declares a DTD"):
        read_document(Answer(BOMB))
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_answer_that_goes_on_past_its_end_is_refused_not_looped_on(encoding):
    """zlib keeps bytes after the end of a stream aside and decompresses none of them: a
    reader that waits for them to be used up goes round for ever."""
    body = b"<a>" + b" " * 5000 + b"</a>"
    compressed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
    outcome: list[object] = []
    reader = threading.Thread(target=lambda: outcome.append(_raised(read_body, Answer(compressed + b"junk", encoding))),
                              daemon=True)
    reader.start()
    reader.join(10)
    assert outcome, "still reading after 10 s"
    assert isinstance(outcome[0], MalformedAnswer) and "past its end" in str(outcome[0])
    assert read_body(Answer(compressed, encoding)) == body  # the near miss: the same stream, ended where it ends


class Trickled(Answer):
    """An answer whose body comes `step` bytes a read."""

    def __init__(self, body: bytes, encoding: str, step: int):
        super().__init__(body, encoding)
        self.step = step

    def read(self, amount=-1):
        return self.body.read(self.step)


@pytest.mark.parametrize("step", [1, 7, 1 << 16])
def test_a_gzip_body_of_several_members_is_read_whole(step):
    """RFC 1952 lets a gzip file hold members one after another (an empty one too), and
    Python's gzip and urllib3 read them all: so is an answer, whatever its reads split."""
    body = b"<a>" + b"x" * 5000 + b"</a>"
    members = gzip.compress(body[:100]) + gzip.compress(b"") + gzip.compress(body[100:4000]) + gzip.compress(body[4000:])
    assert read_body(Trickled(members, "gzip", step)) == body
    # the near misses: what follows a member and is no member's start is refused, and a
    # deflate stream has no members
    for after in (b"\x1f", b"\x1f\x8c", b"\x8b"):
        with pytest.raises(MalformedAnswer, match=r"past its end|corrupt"):
            read_body(Trickled(members + after, "gzip", step))
    with pytest.raises(MalformedAnswer, match="past its end"):
        read_body(Answer(zlib.compress(body) + zlib.compress(body), "deflate"))


def test_a_flood_of_empty_gzip_members_is_refused():
    """Each empty member inflates to nothing (no size limit applies) and costs a copy of what
    is left of the read: past GZIP_MEMBERS the answer is refused, up to it read whole."""
    empty = gzip.compress(b"")
    whole = gzip.compress(b"<a>") + empty * (GZIP_MEMBERS - 2) + gzip.compress(b"</a>")
    assert read_body(Answer(whole, "gzip")) == b"<a></a>"
    assert read_body(Trickled(whole, "gzip", 1)) == b"<a></a>"  # each member counted once, however it comes
    started = time.process_time()
    with pytest.raises(MalformedAnswer, match=f"more than {GZIP_MEMBERS} gzip members"):
        read_body(Answer(whole + empty * 50_000, "gzip"))
    assert time.process_time() - started < 1


def _raised(function, *args):
    try:
        function(*args)
    except Exception as exc:
        return exc
    return None


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_decoded_body_inflates_no_more_than_each_read_asks_for_and_checks_at_each(encoding):
    """What pyVmomi's expat parser reads (2 KB at a time) is inflated 2 KB at a time, and the
    request's deadline is checked at every read: a few KB of gzip are megabytes of XML."""
    document = b"<a>" + b" " * (8 << 20) + b"</a>"
    compressed = gzip.compress(document, 9) if encoding == "gzip" else zlib.compress(document, 9)
    checks = []
    body = DecodedBody(Answer(compressed, encoding), check=lambda: checks.append(1))
    pieces = []
    while piece := body.read(2048):
        assert len(piece) <= 2048
        pieces.append(piece)
    assert b"".join(pieces) == document
    assert len(checks) >= len(pieces)

    def passed():
        raise TimeoutError("the answer took longer than 1 s")

    late = DecodedBody(Answer(compressed, encoding), check=passed)
    with pytest.raises(TimeoutError):
        late.read(2048)
    with pytest.raises(MalformedAnswer, match="larger than 1 MiB"):
        DecodedBody(Answer(compressed, encoding), limit=1 << 20).read()


def test_the_prolog_of_an_answer_is_checked_before_pyvmomi_reads_it():
    """What may come before an answer's first element: the XML declaration in UTF-8,
    comments, processing instructions and white space; never a DOCTYPE, however deep."""
    declaration = b'<?xml version="1.0" encoding="UTF-8"?>\n'
    assert prolog_end(declaration + b"<soapenv:Envelope/>") == len(declaration)
    assert prolog_end(b"\xef\xbb\xbf<a/>") == 3
    assert prolog_end(b"<?xml version='1.0' encoding='us-ascii'?><!-- a <!DOCTYPE in a comment --><?pi x?> <a/>") > 0
    assert prolog_end(b"<\xc3\xa9l\xc3\xa9ment/>") == 0  # a name that starts beyond ASCII
    for partial in (b"", b"<", b"<?xml version", b"<!", b"<!-", b"<!DOC", b"<!-- still a comment", b"  "):
        assert prolog_end(partial) is None
    for refused, why in [(declaration + b"<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>", "declares a DTD"),
                         (b"<!--" + b"p" * 70000 + b"--><!DOCTYPE a><a/>", "declares a DTD"),
                         (b"<?xml version='1.0' encoding='UTF-16'?><a/>", "not UTF-8"),
                         (b"\xff\xfe<\x00a\x00/\x00>\x00", "does not start with an element"),
                         (b"<!ELEMENT a ANY><a/>", "not well-formed"), (b"<1a/>", "not well-formed"),
                         (b"text<a/>", "does not start with an element")]:
        with pytest.raises(MalformedAnswer, match=why):
            prolog_end(refused)


def test_a_decoded_body_that_ends_early_says_so():
    """http.client's read(n) returns short when the peer leaves early: the reader must look."""
    class CutShort(Answer):
        length = 120

    with pytest.raises(http.client.IncompleteRead):
        DecodedBody(CutShort(b"<a>partial")).read()
    assert DecodedBody(Answer(b"<a>whole</a>")).read() == b"<a>whole</a>"


@pytest.mark.peer
def test_a_bad_answer_on_the_command_line_is_one_line_and_the_others_stand(upstream, simulator_binary, tmp_path):
    """Two vCenters in one command (each in its own process): one answers an entity bomb on
    its second page. Exit 3, one error line, no traceback, and only the sound one's resources."""
    relay = Relay(upstream, tmp_path, "entity bomb", nth=2)
    sound = vcsim.start(simulator_binary, tmp_path, "-vms", "1")
    bundle = tmp_path / "ca.pem"
    bundle.write_text(relay.cert.read_text() + sound.cert.read_text())
    out = tmp_path / "estate.json"
    env = {**os.environ, "VSPHERE_USER": "auditor", "VSPHERE_PASSWORD": vcsim.PASSWORD}
    try:
        result = subprocess.run([sys.executable, "-m", "auditor", "collect", "vsphere", "--server", relay.server,
                                 "--server", sound.server, "--ca-bundle", str(bundle), "--page-size", "5",
                                 "--out", str(out), "-q"], capture_output=True, text=True, cwd=ROOT, env=env,
                                timeout=GUARD)
    finally:
        relay.stop()
        sound.stop()
    assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("auditor: error")]
    assert len(errors) == 1 and f"{relay.server} (collecting): the server's answer is not valid vSphere SOAP" in errors[0]
    snapshot = load_snapshot(out)
    assert [(s.id, s.status) for s in snapshot.sources] == [(relay.server, "failed"), (sound.server, "ok")]
    assert {r["source"] for r in snapshot.resources} == {sound.server}


# -- sources in processes of their own ----------------------------------------------------------


class Probe(InventorySource):
    """A source that says which process collected it (`how` picks a misbehaviour)."""

    own_process = True
    cloud, kind = "test", "probe"

    def __init__(self, name: str, how: str = "well"):
        self.id = name
        self.how = how

    def collect(self, progress: Progress) -> Collected:
        progress.update(self.id, 7)
        if self.how == "dies":
            os._exit(9)
        if self.how == "bug":
            raise KeyError("a bug of ours")
        source = Source(id=self.id, cloud=self.cloud, kind=self.kind, details={"pid": os.getpid()})
        return Collected([source], [{"id": f"{self.id}/x", "pid": os.getpid()}])


class ThreadProbe(Probe):
    """A source collected on a thread of the parent, as Azure's are."""

    own_process = False


class Recorder(Progress):
    def __init__(self):
        super().__init__(enabled=False)
        self.seen = []

    def update(self, source, count):
        self.seen.append((source, count))


def test_sources_collected_together_run_in_processes_and_one_dying_fails_alone():
    progress = Recorder()
    snapshot = collect_all([Probe("a"), Probe("b", "dies"), Probe("c"), ThreadProbe("t")], progress)
    assert [(s.id, s.status) for s in snapshot.sources] == [("a", "ok"), ("b", "failed"), ("c", "ok"), ("t", "ok")]
    pids = {snapshot.sources[0].details["pid"], snapshot.sources[2].details["pid"]}
    assert len(pids) == 2 and os.getpid() not in pids
    assert snapshot.sources[3].details["pid"] == os.getpid()  # on a thread here, as Azure's sources
    assert [r["id"] for r in snapshot.resources] == ["a/x", "c/x", "t/x"]
    assert snapshot.sources[1].error == ("b (collecting): the collecting process ended without a result (exit status "
                                         "9): it was killed, ran out of memory, or hit a bug of auditor")
    assert sorted(progress.seen) == [("a", 7), ("b", 7), ("c", 7), ("t", 7)]
    # a lone source is collected here, where a process would only add its start
    assert collect_all([Probe("d")], Recorder()).sources[0].details["pid"] == os.getpid()


def test_a_bug_in_a_collecting_process_is_raised_in_the_parent():
    with pytest.raises(KeyError, match="a bug of ours") as raised:
        collect_all([Probe("a"), Probe("b", "bug")], Recorder())
    assert any("in the process collecting b" in note for note in raised.value.__notes__)


def statuses_of_script(script: Path, text: str) -> list[str]:
    """Run `text` as a main script (from the repository, as a program using auditor would):
    the statuses its collection printed."""
    script.write_text(textwrap.dedent(text), encoding="utf-8")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_a_collecting_process_does_not_run_the_main_script_again(tmp_path):
    """A child needs the sources' modules, which the fork server imports, not the program
    that started it: run again in every child, a command line's imports cost each 0.05 s."""
    runs = tmp_path / "runs"
    assert statuses_of_script(tmp_path / "main.py", f"""
        with open({str(runs)!r}, "a") as runs:
            runs.write("ran\\n")
        if __name__ == "__main__":
            from auditor.sources import collect_all
            from tests.test_vsphere_fast import Probe, Recorder
            snapshot = collect_all([Probe("a"), Probe("b")], Recorder())
            print(" ".join(s.status for s in snapshot.sources))
        """) == ["ok", "ok"]
    assert runs.read_text() == "ran\n"  # in this process only, not once more in each child


def test_a_source_the_main_script_defines_is_still_collected_in_a_process(tmp_path):
    """auditor used from a script with a source class of its own: that class exists only
    where the script runs, so its processes do run the script (as they always did)."""
    assert statuses_of_script(tmp_path / "embedding.py", """
        from tests.test_vsphere_fast import Probe, Recorder

        class Tagged(Probe):
            pass

        if __name__ == "__main__":
            from auditor.sources import collect_all
            snapshot = collect_all([Tagged("a"), Tagged("b")], Recorder())
            print(" ".join(s.status for s in snapshot.sources))
        """) == ["ok", "ok"]


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    living = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            living.add(pid)
    return living


@pytest.mark.peer
@pytest.mark.parametrize("how", ["SIGTERM to the command", "Ctrl-C in the terminal"])
def test_stopping_the_command_stops_every_collecting_process(simulator_binary, tmp_path, how):
    # slow pages (0.4 s each, three objects a page): both collections take several seconds
    simulators = [vcsim.start(simulator_binary, tmp_path, "-delay-ms", "400") for _ in range(2)]
    bundle = tmp_path / "ca.pem"
    bundle.write_text("".join(s.cert.read_text() for s in simulators))
    env = {**os.environ, "VSPHERE_USER": "auditor", "VSPHERE_PASSWORD": vcsim.PASSWORD}
    command = subprocess.Popen(
        [sys.executable, "-m", "auditor", "collect", "vsphere", *[a for s in simulators for a in ("--server", s.server)],
         "--ca-bundle", str(bundle), "--page-size", "3", "--out", str(tmp_path / "estate.json"), "-q"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:  # the fork server and, below it, a collecting process per vCenter
            below = descendants(command.pid)
            collecting = {pid for pid in below if parent_of(pid) != command.pid}
            if len(collecting) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(collecting) >= 2, "no collecting processes"
        for pid in below:  # the password goes through pipes, never on a command line
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                assert vcsim.PASSWORD.encode() not in cmdline.read()
        if how == "SIGTERM to the command":
            os.kill(command.pid, signal.SIGTERM)
        else:
            os.killpg(command.pid, signal.SIGINT)
        _, err = command.communicate(timeout=GUARD)
        deadline = time.monotonic() + 10
        while alive(below) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(below), f"left running: {alive(below)}"
    finally:
        if command.poll() is None:
            command.kill()
            command.wait()
        for simulator in simulators:
            simulator.stop()
    assert "Traceback" not in err, err
    if how == "SIGTERM to the command":
        assert command.returncode == -signal.SIGTERM
    else:
        assert command.returncode == 130 and "auditor: interrupted; no output was written" in err, err
    assert not (tmp_path / "estate.json").exists()


def parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


@pytest.mark.peer
def test_a_vcenter_that_stops_answering_mid_read_ahead(simulator_binary, tmp_path):
    """The read-ahead page request meets a vCenter that has stopped: one timeout, as ever."""
    hung = vcsim.start(simulator_binary, tmp_path, "-stop-on", "ContinueRetrievePropertiesEx:2")
    try:
        started = time.monotonic()
        result = collect(hung, page_size=3, timeout=2)
        elapsed = time.monotonic() - started
        assert hung.stopped
    finally:
        hung.resume()
        hung.stop()
    assert result.resources == [] and result.sources[0].error == f"{hung.server} (collecting): timed out after 2 s"
    assert elapsed < 10


@pytest.mark.peer
@pytest.mark.parametrize("parser", ["fast", "pyvmomi"])
def test_an_object_paged_twice_fails_the_source(upstream, monkeypatch, parser):
    """A server (or a relay) that answers a page again: two resources under one id would
    make a snapshot every scan refuses; the source fails instead, keeping nothing."""
    import auditor.sources.vsphere as vsphere

    name = "retrieve_read_ahead" if parser == "fast" else "retrieve_paged"
    original = getattr(vsphere, name)

    def twice(*args, **kwargs):
        first = None
        for obj in original(*args, **kwargs):
            first = first or obj
            yield obj
        yield first  # the first object once more, as a replayed page would bring it

    monkeypatch.setattr(vsphere, name, twice)
    result = VSphereSource(connection(upstream), parser=parser).collect(Progress(enabled=False))
    (source,) = result.sources
    assert source.status == "failed" and result.resources == [], source
    assert "came twice in the PropertyCollector's pages" in source.error
