"""The vSphere source against govmomi's vCenter simulator (a real SOAP peer, not a mock)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from datetime import date

import pytest

from auditor.cli import main
from auditor.facts import derive_facts
from auditor.inventory import ESXI_SETTINGS, VCENTER_SETTINGS, VM_DEVICE_TYPES
from auditor.scan import load_rule_context, scan_snapshot
from auditor.snapshot import Snapshot, Source, load_snapshot, save_snapshot
from auditor.sources import Progress, collect_all
from auditor.sources.vsphere import (
    PROPERTIES,
    VSphereConnection,
    VSphereSource,
    _optional,
    _resource,
    describe_failure,
    endpoint,
    keep_host_options,
    keep_vm_settings,
    parse_server,
    path_known,
    reduce_firewall,
    reduce_host_bus_adapters,
    reduce_switch_config,
    reduce_vm_devices,
    supported_properties,
)
from tests import vcsim

pytestmark = pytest.mark.peer
HOSTILE = vcsim.HOSTILE


@pytest.fixture(scope="session")
def simulator_binary(tmp_path_factory):
    return vcsim.build(tmp_path_factory.mktemp("vcsim-bin"))


@pytest.fixture(scope="module")
def simulator(simulator_binary, tmp_path_factory):
    instance = vcsim.start(simulator_binary, tmp_path_factory.mktemp("vcsim"))
    yield instance
    instance.stop()


@pytest.fixture
def credentials(monkeypatch):
    monkeypatch.setenv("VSPHERE_USER", "auditor")
    monkeypatch.setenv("VSPHERE_PASSWORD", vcsim.PASSWORD)


connection = vcsim.connection


def collect(simulator, page_size=1000, **overrides):
    return VSphereSource(connection(simulator, **overrides), page_size=page_size).collect(Progress(enabled=False))


@pytest.fixture(scope="module")
def collected(simulator):
    return collect(simulator)


def by_type(resources, kind):
    return [r for r in resources if r["type"] == kind]


def test_collects_every_object_type_with_vsphere_property_paths(collected, simulator):
    assert collected.sources[0].status == "ok", collected.sources[0].error
    counts = Counter(r["type"] for r in collected.resources)
    assert counts["HostSystem"] == 4 and counts["VirtualMachine"] == 8
    assert counts["DistributedVirtualPortgroup"] == 5 and counts["vCenter"] == 1
    assert counts["License"] == 4 and counts["ClusterComputeResource"] == 1 and counts["Datastore"] >= 1
    (vcenter,) = by_type(collected.resources, "vCenter")
    assert vcenter["about"]["version"] == "7.0.3" and vcenter["about"]["apiType"] == "VirtualCenter"
    assert collected.sources[0].details["version"] == "7.0.3"
    versions = sorted(h["summary"]["config"]["product"]["version"] for h in by_type(collected.resources, "HostSystem"))
    assert versions == ["6.7.0", "7.0.3", "8.0.2", "8.0.3"]
    host = by_type(collected.resources, "HostSystem")[0]
    assert host["id"] == f"{simulator.server}/{host['moref']}" and host["source"] == simulator.server
    assert {s["key"] for s in host["config"]["service"]["service"]} >= {"TSM-SSH", "ntpd"}
    assert host["summary"]["hardware"]["numCpuPkgs"] >= 1
    vm = next(v for v in by_type(collected.resources, "VirtualMachine") if v["name"] == HOSTILE)
    assert vm["config"]["guestId"] == "centos7_64Guest" and vm["config"]["version"] == "vmx-13"
    assert vm["guest"]["toolsVersionStatus2"] == "guestToolsNeedUpgrade"
    assert vm["guest"]["toolsVersion"] == "11365"  # VS-SUP-009 reads it as 11.3.5
    assert vm["network"] and vm["network"][0].startswith("dvportgroup-")
    nics = [device for device in vm["config"]["hardware"]["device"] if "macAddress" in device]
    assert nics and "_type" not in nics[0]  # network adapters as before the other devices were kept
    assert nics[0]["backing"]["_type"] == "VirtualEthernetCardDistributedVirtualPortBackingInfo"


def test_port_group_policy_vlans_and_uplinks(collected):
    groups = {g["name"]: g for g in by_type(collected.resources, "DistributedVirtualPortgroup")}
    policy = groups["DC0_DVPG0"]["config"]["defaultPortConfig"]["securityPolicy"]
    assert policy["allowPromiscuous"]["value"] is True
    assert groups["DC0_DVPG1"]["config"]["defaultPortConfig"]["vlan"]["vlanId"] == 4095
    resources = json.loads(json.dumps(collected.resources))
    derive_facts(resources)
    facts = {r["name"]: r["facts"] for r in resources if r["type"] == "DistributedVirtualPortgroup"}
    uplink = next(name for name in facts if "DVUplinks" in name)
    assert facts[uplink]["uplink"] is True and facts["DC0_DVPG1"] == {"vlan": 4095, "uplink": False}


def test_secrets_never_reach_the_snapshot(collected, tmp_path):
    path = tmp_path / "snap.json"
    save_snapshot(Snapshot(collected_at="x", sources=collected.sources, resources=collected.resources), path)
    text = path.read_text()
    assert vcsim.PASSWORD not in text
    assert "AAAAA-BBBBB-CCCCC-DDDDD" not in text and "*****-*****-*****-*****-7R4H9" in text
    # advanced options outside the allow-lists, iSCSI CHAP secrets, a VM's guestinfo password,
    # the vCenter's SSO private key (a vcsim setting), backing file paths of removable devices
    assert "not-for-snapshots" not in text
    assert "privateKey" not in text and "solutionUser" not in text
    assert "floppy/keys.flp" not in text and "serial.log" not in text
    hosts = {h["summary"]["config"]["product"]["version"]: h for h in by_type(collected.resources, "HostSystem")}
    assert [o["key"] for o in hosts["7.0.3"]["config"]["option"]] == [
        "Syslog.global.logHost", "UserVars.ESXiShellTimeOut", "Security.AccountLockFailures"]
    assert all(o["key"] in ESXI_SETTINGS for h in hosts.values() for o in h["config"]["option"])
    assert vcsim.PASSWORD not in repr(connection_for_repr := VSphereConnection(host="h", password=vcsim.PASSWORD))
    assert "h" in repr(connection_for_repr)


def test_shipped_rules_find_what_the_simulator_was_shaped_with(collected):
    snapshot = Snapshot(collected_at="2026-11-25T00:00:00Z", sources=collected.sources,
                        resources=json.loads(json.dumps(collected.resources)))
    as_of = date.today()
    report = scan_snapshot(snapshot, load_rule_context(None, None, as_of), as_of)
    found = {(f.rule_id, f.resource_name) for f in report.findings}
    hosts = {h["summary"]["config"]["product"]["version"]: h["name"] for h in by_type(snapshot.resources, "HostSystem")}
    assert ("VS-SUP-001", hosts["6.7.0"]) in found and ("VS-SUP-001", hosts["7.0.3"]) in found
    assert ("VS-SUP-001", hosts["8.0.2"]) not in found
    assert any(rule == "VS-SUP-002" for rule, _ in found)
    assert ("VS-NET-001", "DC0_DVPG0") in found and ("VS-NET-001", "DC0_DVPG1") not in found
    assert ("VS-NET-004", "DC0_DVPG1") in found
    assert not any(rule == "VS-NET-004" and "DVUplinks" in name for rule, name in found)
    assert ("HY-SUP-001", HOSTILE) in found and ("VS-SUP-004", HOSTILE) in found
    assert ("VS-SUP-009", HOSTILE) in found  # VMware Tools 11.3.5, below the 12.5.1 minimum
    assert ("VS-SUP-007", hosts["7.0.3"]) in found  # build below the 7.0 minimum patch level
    assert any(rule == "VS-SUP-003" for rule, _ in found)  # vmx-08 guests
    assert ("VS-LIC-001", "VMware vSphere 7 Enterprise Plus") in found
    assert ("VS-LIC-003", "VMware vSphere 7 Standard (term)") in found
    assert ("VS-LIC-004", "VMware vSphere 8 Enterprise Plus (per core)") in found
    host_rules = {rule for rule, name in found if name == hosts["6.7.0"]}
    assert {"VS-NET-005", "VS-NET-006", "VS-NET-007"} <= host_rules  # first host: promiscuous std pg, SSH, lockdown off
    assert {"VS-NET-008", "VS-NET-009"} <= {rule for rule, name in found if name == hosts["7.0.3"]}


def test_paging_round_trips_grow_with_pages_not_objects(simulator, monkeypatch):
    from pyVmomi import SoapAdapter
    calls: Counter = Counter()
    original = SoapAdapter.SoapStubAdapter.InvokeMethod

    def counting(self, mo, info, args, *rest, **kwargs):
        calls[info.wsdlName] += 1
        return original(self, mo, info, args, *rest, **kwargs)

    monkeypatch.setattr(SoapAdapter.SoapStubAdapter, "InvokeMethod", counting)
    whole = collect(simulator, page_size=1000)
    one_page = (calls["RetrievePropertiesEx"], calls["ContinueRetrievePropertiesEx"])
    calls.clear()
    paged = collect(simulator, page_size=4)
    objects = sum(1 for r in paged.resources if r["type"] not in ("vCenter", "License"))
    assert one_page == (1, 0)
    assert calls["RetrievePropertiesEx"] == 1
    assert calls["ContinueRetrievePropertiesEx"] == -(-objects // 4) - 1
    strip = lambda rs: sorted(json.dumps(r, sort_keys=True) for r in rs)  # noqa: E731
    assert strip(whole.resources) == strip(paged.resources)


def test_fingerprints_are_stable_across_collections(simulator):
    as_of = date(2026, 11, 25)
    context = load_rule_context(None, None, as_of)

    def fingerprints(result):
        snapshot = Snapshot(collected_at="x", sources=result.sources, resources=result.resources)
        return sorted(f.fingerprint for f in scan_snapshot(snapshot, context, as_of).findings)

    first, second = fingerprints(collect(simulator)), fingerprints(collect(simulator, page_size=3))
    assert first and first == second


@pytest.mark.parametrize("overrides, expected", [
    ({"password": "wrong"}, "login failed for user 'auditor'"),
    ({"ca_bundle": None}, "TLS certificate does not verify"),
    ({"port": 1}, "connection refused"),
])
def test_failures_are_one_line_source_errors(simulator, overrides, expected):
    result = collect(simulator, **overrides)
    assert result.sources[0].status == "failed" and result.resources == []
    assert expected in result.sources[0].error and "\n" not in result.sources[0].error
    assert vcsim.PASSWORD not in result.sources[0].error


def test_insecure_connects_without_a_ca(simulator):
    assert collect(simulator, ca_bundle=None, insecure=True).sources[0].status == "ok"


def test_collect_cli_several_vcenters_one_down(simulator, simulator_binary, tmp_path, credentials, capsys):
    second = vcsim.start(simulator_binary, tmp_path, "-vms", "2")
    try:
        bundle = tmp_path / "ca.pem"
        bundle.write_text(simulator.cert.read_text() + second.cert.read_text())
        out = tmp_path / "estate.json.gz"
        code = main(["collect", "vsphere", "--server", simulator.server, "--server", second.server,
                     "--server", "127.0.0.1:1", "--ca-bundle", str(bundle), "--out", str(out), "-q"])
        err = capsys.readouterr().err
        assert code == 3 and "127.0.0.1:1 (connecting): connection refused" in err
        snapshot = load_snapshot(out)
        assert [s.status for s in snapshot.sources] == ["ok", "ok", "failed"], [s.error for s in snapshot.sources]
        assert {r["source"] for r in snapshot.resources} == {simulator.server, second.server}
        # the scan of that snapshot is incomplete: exit 3, whatever --fail-on says
        assert main(["scan", "--snapshot", str(out), "--out", str(tmp_path / "r"), "-q"]) == 3
    finally:
        second.stop()


def test_scan_live_and_password_never_on_the_command_line(simulator, tmp_path, credentials, capsys):
    code = main(["scan", "--vsphere", simulator.server, "--vsphere-ca-bundle", str(simulator.cert),
                 "--out", str(tmp_path / "r"), "--save-snapshot", str(tmp_path / "live.json"), "-q",
                 "--fail-on", "high"])
    assert code == 1  # the simulator's estate has high findings
    findings = json.loads((tmp_path / "r" / "latest" / "findings.json").read_text())
    assert any(f["rule_id"] == "VS-SUP-001" for f in findings["findings"])
    assert load_snapshot(tmp_path / "live.json").sources[0].id == simulator.server
    with pytest.raises(SystemExit):
        main(["collect", "vsphere", "--server", simulator.server, "--password", "x", "--out", "x.json"])


def test_missing_password_is_an_input_error(simulator, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("VSPHERE_PASSWORD", raising=False)
    code = main(["collect", "vsphere", "--server", simulator.server, "--user", "auditor",
                 "--out", str(tmp_path / "s.json")])
    assert code == 2 and "no vSphere password" in capsys.readouterr().err
    (tmp_path / "pw").write_text(vcsim.PASSWORD + "\n")
    code = main(["collect", "vsphere", "--server", simulator.server, "--user", "auditor", "--password-file",
                 str(tmp_path / "pw"), "--ca-bundle", str(simulator.cert), "--out", str(tmp_path / "s.json"), "-q"])
    assert code == 0 and load_snapshot(tmp_path / "s.json").sources[0].status == "ok"


def test_collect_verbose_logs_each_source_with_its_count_and_time(simulator, tmp_path, credentials, capsys):
    """`-v` says what the collection did, source by source, and what it wrote."""
    out = tmp_path / "s.json"
    assert main(["collect", "vsphere", "--server", simulator.server, "--ca-bundle", str(simulator.cert),
                 "--out", str(out), "-q", "-v"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if " auditor INFO: " in line]
    count = len(load_snapshot(out).resources)
    assert any(re.search(rf"INFO: {re.escape(simulator.server)}: {count} resources in \d+\.\d\d s$", line)
               for line in lines), lines
    assert any(line.endswith(f"INFO: wrote {out} ({count} resources)") for line in lines), lines
    # the near miss: without -v, nothing is logged
    assert main(["collect", "vsphere", "--server", simulator.server, "--ca-bundle", str(simulator.cert),
                 "--out", str(out), "-q"]) == 0
    assert " auditor INFO: " not in capsys.readouterr().err


def test_simulator_killed_mid_collection(simulator_binary, tmp_path, credentials, capsys):
    slow = vcsim.start(simulator_binary, tmp_path, "-delay-ms", "400")
    out = tmp_path / "estate.json"
    out.write_text("previous snapshot")
    result = {}
    try:
        thread = threading.Thread(target=lambda: result.setdefault("code", main(
            ["collect", "vsphere", "--server", slow.server, "--ca-bundle", str(slow.cert), "--page-size", "3",
             "--timeout", "10", "--out", str(out), "-q"])))
        thread.start()
        time.sleep(1.5)  # connected, a few pages in
        slow.process.kill()
        thread.join(timeout=60)
    finally:
        slow.stop()
    assert result["code"] == 3
    err = capsys.readouterr().err
    assert f"{slow.server} (collecting)" in err and "Traceback" not in err
    assert out.read_text() == "previous snapshot"


def test_parse_server():
    assert parse_server("vc.corp.example") == ("vc.corp.example", 443)
    assert parse_server("vc.corp.example:8443") == ("vc.corp.example", 8443)
    assert parse_server("https://vc.corp.example/sdk") == ("vc.corp.example", 443)
    assert parse_server("[::1]:9443") == ("::1", 9443)
    assert parse_server("[fe80::1]") == ("fe80::1", 443)
    assert parse_server("vc.corp.example:65535") == ("vc.corp.example", 65535)  # the near misses
    assert parse_server("::1") == ("::1", 443) and parse_server("fe80::10") == ("fe80::10", 443)  # bare IPv6
    assert parse_server("https://[fe80::1%eth0]:9443/sdk") == ("fe80::1%eth0", 9443)
    for server, why in [("vc\x1b[31m.example", "not a host name"), ("vc .example", "not a host name"),
                        ("vc\u202e.example", "not a host name"), ("", "not a host name"),
                        ("vc..example", "a label is empty"), ("a" * 64 + ".example", "longer than 63"),
                        ("vc.corp.example:65536", "port"), ("vc.corp.example:0", "port"), ("[::1]:x", "port"),
                        ("vc.corp.example:", "port"), (":443", "not a host name"), ("a:b", "port"),
                        ("[zz]:443", "not an IPv6 address"), ("fe80::zz", "not an IPv6 address"),
                        ("https://admin:S3cret@vc.corp.example/sdk", "a user and password"),
                        ("https://admin:Pa/ss@vc.corp.example", "a user and password"),
                        ("http://vc.corp.example", "https:// only"), ("ftp://vc.corp.example", "https:// only"),
                        ("[::1", "not closed"), ("[::1:9443", "not closed"),
                        # what inet_aton reads as another address than the one written
                        ("010.0.0.1", "reads it as 8.0.0.1, a leading 0 making a number octal: write 10.0.0.1 or "
                                      "8.0.0.1, whichever is meant"),
                        ("127.000.000.001", "reads it as 127.0.0.1, a leading 0 making a number octal: write "
                                            "127.0.0.1 or 127.0.0.1"),
                        ("0x7f.1:443", "reads it as the IPv4 address 127.0.0.1: write 127.0.0.1$"),
                        ("2130706433", "reads it as the IPv4 address 127.0.0.1"),
                        ("\uff11\uff12\uff17.0.0.1", "reads it as the IPv4 address 127.0.0.1"),
                        # a path other than the API's, a query or a fragment: not what would be collected
                        ("https://vc.corp.example/foo/bar", "no other path"), ("vc.corp.example/ui", "no other path"),
                        ("https://vc.corp.example/sdk?x=1", "no other path"),
                        ("https://vc.corp.example?x=1", "not a host name"), ("vc.corp.example#1", "not a host name"),
                        ("vc%2e.corp.example", "not a host name"), ("vc\uff0fx.corp.example", "not a host name"),
                        ("[fe80::1%?x]", "zone is not an interface"), ("[fe80::1%\u00e9]", "zone is not an interface")]:
        with pytest.raises(ValueError, match=why):
            parse_server(server)
    # near misses: an address as written, names that only look numeric
    for server in ("10.0.0.1", "127.0.0.1:9443", "deadbeef", "1.2.3.4.5", "0x7f.example", "vc-010.corp.example",
                   "vc_1.corp.example"):
        assert parse_server(server)[0] == server.partition(":")[0]
    assert parse_server("https://vc.corp.example/sdk/") == parse_server("vc.corp.example/sdk") == ("vc.corp.example", 443)
    # a zone: "%25" in a URL (RFC 6874); kept only where it picks a link, which ::1 needs not
    assert parse_server("https://[fe80::1%25lo]/sdk") == parse_server("[fe80::1%lo]") == ("fe80::1%lo", 443)
    assert parse_server("[::1%lo]:9443") == ("::1", 9443) and parse_server("::1%lo") == ("::1", 443)


@pytest.mark.parametrize(("first", "second"), [
    ("vc.corp.example", "VC.Corp.Example."),
    ("vc.corp.example", "\uff56\uff43.corp.example"),  # full-width letters: IDNA folds them
    ("vc.corp.example", "vc\u3002corp.example"),  # an ideographic full stop separates labels too
    ("[::1]:443", "[0:0::1]"),
    ("::ffff:127.0.0.1", "127.0.0.1"),
    ("[fe80::1%eth0]", "[FE80:0::1%eth0]:443"),
    ("[::1]", "[::1%1]"),  # a zone picks a link for link-local addresses alone
    ("[fe80::1%lo]", "[fe80::1%1]"),  # an interface by its name or by its index (1: lo)
    ("localhost", "localhost\u3002"),  # a full-width full stop at the end is a trailing dot too
    ("127.0.0.1", "127.0.0.1\uff0e"),
])
def test_two_spellings_of_one_vcenter_reach_one_endpoint(first, second):
    assert endpoint(*parse_server(first)) == endpoint(*parse_server(second))


@pytest.mark.parametrize(("first", "second"), [
    ("vc.corp.example", "vc.corp.example:9443"), ("vc.corp.example", "vc2.corp.example"),
    ("[::1]", "[::2]"), ("[fe80::1%eth0]", "[fe80::1%eth1]"), ("127.0.0.1", "127.0.0.2"),
])
def test_two_vcenters_are_two_endpoints(first, second):
    assert endpoint(*parse_server(first)) != endpoint(*parse_server(second))


def test_a_server_that_names_no_host_is_refused_before_collecting(tmp_path, monkeypatch, capsys):
    """One line, exit 2, the value escaped: not "unexpected InvalidURL" once collecting."""
    monkeypatch.setenv("VSPHERE_USER", "auditor")
    monkeypatch.setenv("VSPHERE_PASSWORD", "secret")
    code = main(["collect", "vsphere", "--server", "vc\x1b]0;owned\x07.example", "--out", str(tmp_path / "o.json")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "\x1b" not in err, err
    assert "--server 'vc\\x1b]0;owned\\x07.example': not a host name" in err, err
    assert not (tmp_path / "o.json").exists()


@pytest.mark.parametrize("password", ["S3cret", "Pa/ss", "p@ss/w:rd", "a://b", "Qz7,Kx9"])
@pytest.mark.parametrize("given", ["flag", "environment"])
def test_a_password_in_the_server_address_is_refused_and_never_shown(tmp_path, monkeypatch, capsys, password,
                                                                     given):
    """Whatever the password holds: a comma (a list separator elsewhere) included."""
    monkeypatch.setenv("VSPHERE_USER", "auditor")
    monkeypatch.setenv("VSPHERE_PASSWORD", "secret")
    server = f"https://admin:{password}@vc.corp.example/sdk"
    if given == "flag":
        code = main(["scan", "--vsphere", server, "--out", str(tmp_path / "r")])
    else:
        monkeypatch.setenv("AUDITOR_VSPHERE", server)
        code = main(["scan", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "admin" not in err and not any(part in err for part in password.split(",")), err
    assert "'***@vc.corp.example/sdk': a user and password do not go in the server's address" in err, err


def test_an_ipv6_source_id_keeps_its_brackets():
    """::1:9443 would read as an address on port 443: with a port, as in a URL."""
    assert VSphereConnection(host="::1", port=9443).label == "[::1]:9443"
    assert VSphereConnection(host="::1").label == "::1"
    assert VSphereConnection(host="vc.corp.example", port=9443).label == "vc.corp.example:9443"


@pytest.mark.parametrize("typed", ["VC1.Corp.Example", "vc1.corp.example.", "\uff56\uff431.corp.example"])
def test_a_source_id_is_one_spelling_of_its_vcenter(typed):
    """Typed in capitals one day and not the next, one vCenter would get other ids, and its
    findings would all be new to --compare: ids take `endpoint`'s spelling."""
    assert VSphereConnection(host=typed).label == "vc1.corp.example"
    assert VSphereConnection(host=typed, port=9443).label == "vc1.corp.example:9443"
    assert VSphereConnection(host="0:0::1", port=9443).label == "[::1]:9443"


@pytest.mark.parametrize("spelling", ["https://{server}/sdk", "[::ffff:{host}]:{port}", "{host}.:{port}"])
def test_one_vcenter_named_twice_is_collected_once(simulator, credentials, tmp_path, capsys, spelling):
    """Two spellings of one vCenter would put its resources in the snapshot twice, under one id
    each (a snapshot that scan then refuses); the second is warned about and skipped."""
    out = tmp_path / "estate.json"
    host, port = simulator.server.rsplit(":", 1)
    second = spelling.format(server=simulator.server, host=host, port=port)
    code = main(["collect", "vsphere", "--server", simulator.server, "--server", second,
                 "--ca-bundle", str(simulator.cert), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"'{second}' is the same vCenter as '{simulator.server}': collected once" in err
    snapshot = load_snapshot(out)
    assert len(snapshot.sources) == 1
    assert len({r["id"] for r in snapshot.resources}) == len(snapshot.resources)


def test_one_vcenter_under_two_names_is_kept_once(simulator, credentials, tmp_path, capsys):
    """Its address and its DNS name pass as two vCenters until they answer: from one
    address, with one instance UUID. Kept twice, its licences and guests would count twice."""
    out = tmp_path / "estate.json"
    named = f"localhost:{simulator.port}"
    code = main(["collect", "vsphere", "--server", simulator.server, "--server", named,
                 "--ca-bundle", str(simulator.cert), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert re.search(rf"{named} is the same vCenter as {simulator.server} \(instance UUID [0-9a-f-]{{36}}, both "
                     rf"answered from {simulator.server}\): its resources are kept once, under the first name", err), err
    snapshot = load_snapshot(out)
    assert [source.id for source in snapshot.sources] == [simulator.server]
    assert snapshot.sources[0].details["address"] == simulator.server
    assert {r["source"] for r in snapshot.resources} == {simulator.server}


@pytest.mark.parametrize("shared_uuid", [False, True])
def test_two_vcenters_are_both_kept(simulator_binary, credentials, tmp_path, capsys, shared_uuid):
    """The near miss: two simulators of one inventory's shape, with instance UUIDs of their
    own, or sharing one (a cloned appliance): both kept, the shared UUID warned about."""
    uuid = ["-instance-uuid", "5f0c4e7a-0000-4000-8000-000000000001"] if shared_uuid else []
    first = vcsim.start(simulator_binary, tmp_path, *uuid)
    second = vcsim.start(simulator_binary, tmp_path, *uuid)
    bundle = tmp_path / "ca.pem"
    bundle.write_text(first.cert.read_text() + second.cert.read_text())
    try:
        out = tmp_path / "estate.json"
        code = main(["collect", "vsphere", "--server", first.server, "--server", second.server,
                     "--ca-bundle", str(bundle), "--out", str(out)])
    finally:
        first.stop()
        second.stop()
    err = capsys.readouterr().err
    assert code == 0, err
    assert [source.id for source in load_snapshot(out).sources] == [first.server, second.server]
    assert ("share the instance UUID 5f0c4e7a-0000-4000-8000-000000000001 but answered from other addresses"
            in err) is shared_uuid
    assert "is the same vCenter as" not in err


def test_a_vcenter_claiming_anothers_uuid_and_inventory_is_kept():
    """A server echoing another's instance UUID and inventory (a hostile one, or a restored
    copy) must not make the other's findings disappear: only one address is one vCenter."""
    from auditor.live import collected_once
    from auditor.snapshot import Snapshot, Source

    def source(name, address):
        return Source(name, "vsphere", "vcenter", details={"instance_uuid": "u-1", "address": address})

    def inventory(name):
        return [{"id": f"{name}/host-1", "name": "esx01", "type": "HostSystem", "cloud": "vsphere", "source": name,
                 "moref": "host-1"}]

    warned = []
    twins = Snapshot("2026-12-07T00:00:00Z", [source("vc-shadow", "10.0.0.9:443"), source("vc-dr", "10.0.0.7:443")],
                     inventory("vc-shadow") + inventory("vc-dr"))
    collected_once(twins, warned.append)
    assert [s.id for s in twins.sources] == ["vc-shadow", "vc-dr"] and len(twins.resources) == 2
    assert warned == ["vc-dr and vc-shadow share the instance UUID u-1 but answered from other addresses (a cloned "
                      "or restored vCenter?): both are kept"]
    one = Snapshot("2026-12-07T00:00:00Z", [source("vc1", "10.0.0.7:443"), source("vc1.corp", "10.0.0.7:443")],
                   inventory("vc1") + inventory("vc1.corp"))
    collected_once(one, warned.append)
    assert [s.id for s in one.sources] == ["vc1"] and [r["source"] for r in one.resources] == ["vc1"]


@pytest.mark.parametrize("name", ["vc.json", "the live collection"])  # a file named as the live collection too
def test_a_vcenter_named_live_and_in_a_snapshot_is_refused_before_collecting(credentials, tmp_path, capsys, name,
                                                                                monkeypatch):
    """Its snapshot's age and its live collection would belong to neither; said before minutes
    of collecting (no vCenter listens on port 1: a collection would fail, exit 3)."""
    monkeypatch.chdir(tmp_path)  # the file named as given, relative: a name the live collection has too
    save_snapshot(Snapshot("2026-12-01T00:00:00Z", [Source("127.0.0.1:1", "vsphere", "vcenter")], []), tmp_path / name)
    code = main(["scan", "--snapshot", name, "--vsphere", "127.0.0.1:1", "--out", str(tmp_path / "r"), "-q",
                 "--no-history"])
    err = capsys.readouterr().err
    assert code == 2 and f"the live collection: source 127.0.0.1:1 is also in {name}; pass each source's snapshot " \
                         "once (its newest)" in err, err
    assert "refused" not in err  # nothing was connected to


def test_collect_all_runs_sources_in_parallel(simulator):
    sources = [VSphereSource(connection(simulator)), VSphereSource(connection(simulator, port=1))]
    snapshot = collect_all(sources, Progress(enabled=False))
    assert [s.status for s in snapshot.sources] == ["ok", "failed"] and snapshot.incomplete


def test_gate_and_drift_across_two_collections_of_the_simulator(simulator_binary, tmp_path, credentials, capsys):
    """Two collections of the same estate give no new finding; one port group changed in the
    simulator through the vSphere API gives exactly that drift and exactly one new finding."""
    from auditor.drift import diff_snapshots

    estate = vcsim.start(simulator_binary, tmp_path)
    try:
        common = ["--vsphere", estate.server, "--vsphere-ca-bundle", str(estate.cert), "-q",
                  "--out", str(tmp_path / "reports")]
        assert main(["scan", *common, "--save-snapshot", str(tmp_path / "one.json")]) == 0
        first = tmp_path / "first.json"
        first.write_bytes((tmp_path / "reports" / "latest" / "findings.json").read_bytes())
        assert main(["scan", *common, "--compare", str(first), "--save-snapshot", str(tmp_path / "two.json")]) == 0
        states = Counter(f["state"] for f in json.loads((tmp_path / "reports" / "latest" / "findings.json")
                                                        .read_text())["findings"])
        assert states["new"] == 0 and states["absent"] == 0 and states["unchanged"] > 0

        with vcsim.api(estate) as content:
            moref = vcsim.allow_forged_transmits(content, "DC0_DVPG2")

        capsys.readouterr()
        assert main(["scan", *common, "--compare", str(first), "--save-snapshot", str(tmp_path / "three.json")]) == 1
        findings = json.loads((tmp_path / "reports" / "latest" / "findings.json").read_text())["findings"]
        new = [(f["rule_id"], f["resource_name"]) for f in findings if f["state"] == "new"]
        assert new == [("VS-NET-002", "DC0_DVPG2")]
        assert "gate failed: 1 new finding at or above" in capsys.readouterr().err

        drift = diff_snapshots(load_snapshot(tmp_path / "two.json"), load_snapshot(tmp_path / "three.json"))
        assert not drift.added and not drift.removed
        assert [(r.id, [(c.path, c.old, c.new) for c in r.changes]) for r in drift.changed] == [
            (f"{estate.server}/{moref}",
             [("config.defaultPortConfig.securityPolicy.forgedTransmits.value", False, True)])]
        assert diff_snapshots(load_snapshot(tmp_path / "one.json"), load_snapshot(tmp_path / "two.json")).empty
    finally:
        estate.stop()


# -- what the Security Configuration Guide's controls read ----------------------------------


def host_by_version(resources, version):
    return next(h for h in by_type(resources, "HostSystem") if h["summary"]["config"]["product"]["version"] == version)


def test_host_hardening_paths(collected):
    host = host_by_version(collected.resources, "6.7.0")  # the simulator hardens its first host
    firewall = host["config"]["firewall"]
    assert firewall["defaultPolicy"] == {"incomingBlocked": False, "outgoingBlocked": True}
    rulesets = {r["key"]: r for r in firewall["ruleset"]}
    assert rulesets["sshServer"] == {"key": "sshServer", "enabled": True, "required": True, "allowedHosts": {
        "allIp": False, "ipAddress": ["192.0.2.10"], "ipNetwork": [{"network": "10.20.0.0", "prefixLength": 16}]}}
    assert all(set(r) == {"key", "enabled", "required", "allowedHosts"} for r in firewall["ruleset"])  # no ports
    # the rulesets ESXi needs open are kept as required, so the firewall rule does not flag them
    assert any(r["required"] for r in firewall["ruleset"]) and not all(r["required"] for r in firewall["ruleset"])
    # only iSCSI adapters, only how they authenticate: no CHAP names or secrets
    assert host["config"]["storageDevice"]["hostBusAdapter"] == [{
        "_type": "HostInternetScsiHba", "device": "vmhba65", "authenticationProperties": {
            "chapAuthEnabled": True, "chapAuthenticationType": "chapPreferred", "chapInherited": False,
            "mutualChapAuthenticationType": "chapProhibited", "mutualChapInherited": False}}]
    directory = next(a for a in host["config"]["authenticationManagerInfo"]["authConfig"]
                     if a["_type"] == "HostActiveDirectoryInfo")
    assert directory["joinedDomain"] == "corp.example" and directory["domainMembershipStatus"] == "ok"
    options = {o["key"]: o["value"] for o in host["config"]["option"]}
    assert options["Config.HostAgent.plugins.hostsvc.esxAdminsGroupAutoAdd"] is True  # CVE-2024-37085
    assert options["Config.HostAgent.plugins.hostsvc.esxAdminsGroup"] == "ESX Admins"
    # capability.uefiSecureBoot came with API 8.0.3; vcsim 0.24 speaks 6.5 and its Go types have no
    # such field, so the path is not asked for (see test_paths_the_api_version_does_not_know)
    assert "capability" not in host and "_missing" not in host


def test_vm_hardening_paths(collected):
    vms = by_type(collected.resources, "VirtualMachine")
    weak = next(v for v in vms if v["name"] == HOSTILE)  # the simulator gives its first VM the weak settings
    config = weak["config"]
    # allow-listed keys and dvfilter names as they come; vcsim's own `govcsim` and a guestinfo password are not
    assert config["extraConfig"] == [{"key": "isolation.tools.copy.disable", "value": "FALSE"},
                                     {"key": "ethernet0.filter0.name", "value": "dvfilter-maclearn"}]
    assert config["firmware"] == "bios" and config["migrateEncryption"] == "disabled"
    assert config["flags"] == {"enableLogging": False}
    assert config["bootOptions"]["efiSecureBootEnabled"] is False
    assert config["bootOptions"]["bootOrder"] == [{"_type": "VirtualMachineBootOptionsBootableCdromDevice"}]
    devices = [d for d in config["hardware"]["device"] if "macAddress" not in d]
    assert {d["_type"] for d in devices} == {"VirtualCdrom", "VirtualFloppy", "VirtualSerialPort",
                                             "VirtualUSBController"}
    assert all(d["_type"] in VM_DEVICE_TYPES and set(d) <= {"_type", "key", "deviceInfo", "connectable"}
               for d in devices)
    serial = next(d for d in devices if d["_type"] == "VirtualSerialPort")
    assert serial == {"_type": "VirtualSerialPort", "key": 9000, "deviceInfo": {"label": "Serial port 1"},
                      "connectable": {"startConnected": True, "allowGuestControl": False, "connected": True,
                                      "status": "ok"}}
    usb = next(d for d in devices if d["_type"] == "VirtualUSBController")
    assert usb == {"_type": "VirtualUSBController", "key": 7000, "deviceInfo": {"label": "USB controller"}}
    # no other device type (disks, controllers, video card, ...) is kept
    assert not any(d.get("_type", "").endswith(("Disk", "IDEController", "VideoCard"))
                   for v in vms for d in v["config"]["hardware"]["device"])
    strong = next(v for v in vms if v["config"].get("firmware") == "efi"
                  and v["config"].get("migrateEncryption") == "required")
    assert strong["config"]["bootOptions"]["efiSecureBootEnabled"] is True
    assert strong["config"]["flags"] == {"enableLogging": True}
    assert {s["key"] for s in strong["config"]["extraConfig"]} == {
        "isolation.tools.copy.disable", "isolation.tools.paste.disable", "tools.setInfo.sizeLimit"}
    # config.ftEncryptionMode came with API 7.0.2 (vcsim speaks 6.5): not asked for, absent
    assert all("ftEncryptionMode" not in v["config"] for v in vms)


def test_switch_policies_and_vcenter_settings(collected):
    (switch,) = by_type(collected.resources, "VmwareDistributedVirtualSwitch")  # as a vCenter types them
    config = switch["config"]
    assert set(config) == {"uplinkPortgroup", "maxMtu", "defaultPortConfig", "linkDiscoveryProtocolConfig",
                           "ipfixConfig", "vspanSession"}
    assert config["maxMtu"] == 9000 and config["uplinkPortgroup"]
    assert config["linkDiscoveryProtocolConfig"] == {"protocol": "lldp", "operation": "both"}
    assert config["ipfixConfig"]["collectorIpAddress"] == "192.0.2.50"
    assert config["ipfixConfig"]["collectorPort"] == 4739
    (session,) = config["vspanSession"]
    assert session["enabled"] is True and session["destinationPort"]["ipAddress"] == ["192.0.2.60"]
    assert session["sessionType"] == "encapsulatedRemoteMirrorSource"
    assert config["defaultPortConfig"]["_type"] == "VMwareDVSPortSetting"
    assert config["defaultPortConfig"]["securityPolicy"]["forgedTransmits"]["value"] is True
    (vcenter,) = by_type(collected.resources, "vCenter")
    # one QueryOptions per allow-listed key; vpxd.event.syslog.enabled is not set on this vCenter
    assert vcenter["setting"] == [{"key": "VirtualCenter.VimPasswordExpirationInDays", "value": 30},
                                  {"key": "config.log.level", "value": "info"},
                                  {"key": "etc.issue", "value": "Authorised use only."}]
    assert {s["key"] for s in vcenter["setting"]} < VCENTER_SETTINGS
    assert "not_collected" not in collected.sources[0].details


def test_vm_settings_set_through_the_api_are_filtered(simulator_binary, tmp_path):
    """Advanced settings written with ReconfigVM: the allow-listed ones (in whatever case the VMX
    has them) and dvfilter names reach the snapshot, a secret-looking one and near misses do not."""
    from auditor.snapshot import save_snapshot

    estate = vcsim.start(simulator_binary, tmp_path, "-vms", "1")
    try:
        before = {r.get("moref"): r for r in collect(estate).resources}
        with vcsim.api(estate) as content:
            moref = vcsim.set_vm_settings(content, {
                "tools.setInfo.sizeLimit": "1048576", "RemoteDisplay.MaxConnections": "1",
                "ethernet1.filter3.name": "dvfilter-fw", "guestinfo.db.password": "reconfig-secret-1",
                "ethernet1.filter3.name.bak": "reconfig-secret-2", "xisolation.tools.copy.disable": "reconfig-secret-3"})
        result = collect(estate)
    finally:
        estate.stop()
    assert result.sources[0].status == "ok", result.sources[0].error
    vm = next(r for r in result.resources if r.get("moref") == moref)
    assert vm["config"]["extraConfig"] == [
        *before[moref]["config"].get("extraConfig", []), {"key": "tools.setInfo.sizeLimit", "value": "1048576"},
        {"key": "RemoteDisplay.MaxConnections", "value": "1"}, {"key": "ethernet1.filter3.name", "value": "dvfilter-fw"}]
    path = tmp_path / "snap.json"
    save_snapshot(Snapshot(collected_at="x", sources=result.sources, resources=result.resources), path)
    assert "reconfig-secret" not in path.read_text()


# -- a standalone ESXi host ------------------------------------------------------------------


@pytest.fixture(scope="module")
def esxi(simulator_binary, tmp_path_factory):
    instance = vcsim.start(simulator_binary, tmp_path_factory.mktemp("esxi"), "-esx")
    yield instance
    instance.stop()


def test_standalone_esxi_host_with_a_failing_licence_lookup(esxi, tmp_path, credentials):
    """govmomi's ESX model (apiType HostAgent) fails the read of licenseAssignmentManager (the
    request is dropped, the server lives on): the host, its VMs and licences are collected,
    the source is an "esxi" source that names the lookup it could not make, and there is no
    vCenter resource for vCenter rules to judge."""
    result = collect(esxi)
    (source,) = result.sources
    assert source.status == "ok" and source.error is None
    assert source.kind == "esxi"
    assert source.details["api_type"] == "HostAgent"
    assert (source.details["version"], source.details["build"]) == ("6.7.0", "17700523")
    assert source.details["not_collected"] == {
        "licence assignments": "the server dropped the request without an answer (RemoteDisconnected)"}
    counts = Counter(r["type"] for r in result.resources)
    assert counts["vCenter"] == 0
    assert counts["HostSystem"] == 1 and counts["VirtualMachine"] == 4 and counts["License"] == 4
    (host,) = by_type(result.resources, "HostSystem")
    assert host["moref"] == "ha-host" and "assignedLicense" not in host
    assert host["config"]["firewall"]["ruleset"] and host["config"]["option"]
    assert host["config"]["storageDevice"]["hostBusAdapter"][0]["device"] == "vmhba65"
    assert all(v["runtime"]["host"] == "ha-host" for v in by_type(result.resources, "VirtualMachine"))

    # through the command line: a whole snapshot (exit 0), the ESXi source as collected
    out = tmp_path / "esxi.json"
    assert main(["collect", "vsphere", "--server", esxi.server, "--ca-bundle", str(esxi.cert),
                 "--out", str(out), "-q"]) == 0
    snapshot = load_snapshot(out)
    assert [(s.kind, s.status) for s in snapshot.sources] == [("esxi", "ok")]
    assert "licence assignments" in snapshot.sources[0].details["not_collected"]
    as_of = date.today()
    report = scan_snapshot(snapshot, load_rule_context(None, None, as_of), as_of)
    assert report.findings and not any(f.resource_type == "vCenter" for f in report.findings)
    assert any(f.resource_name == host["name"] for f in report.findings)  # a 6.7 host is out of support
    # what was not collected is said, and the rule that needs it did not judge the host
    from auditor.formats.sarif import SarifReport
    notes = [n["message"]["text"] for run in json.loads(SarifReport().render(report))["runs"]
             for invocation in run["invocations"] for n in invocation.get("toolExecutionNotifications", [])]
    assert any("licence assignments not collected" in note for note in notes)
    assert next(r for r in report.rules if r.id == "VS-LIC-005").status == "not_evaluated"


def test_an_optional_lookup_that_hangs_fails_the_source(simulator_binary, tmp_path):
    """A vCenter that stops answering during an optional lookup (here its first QueryOptions) is
    not an optional failure: the source fails after one timeout, as anywhere else."""
    hung = vcsim.start(simulator_binary, tmp_path, "-stop-on", "QueryOptions", "-vms", "1")
    try:
        started = time.monotonic()
        result = collect(hung, timeout=2)
        elapsed = time.monotonic() - started
        assert hung.stopped
    finally:
        hung.resume()
        hung.stop()
    (source,) = result.sources
    assert source.status == "failed" and result.resources == []
    assert source.error == f"{hung.server} (collecting): timed out after 2 s"
    assert elapsed < 10  # one timeout: no later request waited it out again


def test_optional_lookup_failures_are_noted_and_timeouts_are_not():
    from pyVmomi import vim

    not_collected: dict[str, str] = {}

    def refused():
        raise vim.fault.NoPermission(privilegeId="Global.Licenses", msg="Permission to perform this operation was denied.")

    assert _optional(not_collected, "licences", refused, []) == []
    assert not_collected == {"licences": "NoPermission: privilege Global.Licenses missing"}

    def stalled():
        raise TimeoutError("timed out")

    with pytest.raises(TimeoutError):
        _optional(not_collected, "custom field names", stalled, {})
    assert "custom field names" not in not_collected


# -- reductions of what vcsim does not model, and the API version --------------------------


def test_paths_the_api_version_does_not_know():
    from pyVmomi import VmomiSupport, vim

    newest = VmomiSupport.GetServiceVersions("vim25")[0]
    # every path is valid by declared types: a server refuses the whole request otherwise
    assert supported_properties(PROPERTIES, newest) == PROPERTIES
    old = supported_properties(PROPERTIES, "vim.version.version11")  # vSphere 6.5, what vcsim speaks
    assert "capability.uefiSecureBoot" not in old[vim.HostSystem]
    assert "config.ftEncryptionMode" not in old[vim.VirtualMachine]
    assert "config.migrateEncryption" in old[vim.VirtualMachine] and "config.firewall" in old[vim.HostSystem]
    assert path_known(vim.HostSystem, "capability.uefiSecureBoot", "vim.version.v8_0_3_0")
    assert not path_known(vim.HostSystem, "capability.uefiSecureBoot", "vim.version.v8_0_2_0")
    # config is declared DistributedVirtualSwitch.ConfigInfo: VMware switch fields have no path
    assert not path_known(vim.dvs.VmwareDistributedVirtualSwitch, "config.maxMtu", newest)


def test_properties_vcsim_does_not_model_are_nested_as_collected():
    from pyVmomi import vim, vmodl

    def content(obj, **props):
        return vmodl.query.PropertyCollector.ObjectContent(obj=obj, propSet=[
            vmodl.DynamicProperty(name=name.replace("__", "."), val=value) for name, value in props.items()])

    host = _resource(content(vim.HostSystem("host-9"), name="esx9", capability__uefiSecureBoot=True), "vc", {}, {})
    assert host["capability"] == {"uefiSecureBoot": True}
    vm = _resource(content(vim.VirtualMachine("vm-9"), name="vm9", config__ftEncryptionMode="ftEncryptionRequired"),
                   "vc", {}, {})
    assert vm["config"] == {"ftEncryptionMode": "ftEncryptionRequired"}


def test_reductions_keep_only_what_controls_read():
    from pyVmomi import vim

    hba = vim.host.InternetScsiHba(device="vmhba64", key="k", model="m", iScsiName="iqn.x", authenticationProperties=(
        vim.host.InternetScsiHba.AuthenticationProperties(chapAuthEnabled=True, chapName="user", chapSecret="s3cret",
                                                          chapAuthenticationType="chapRequired",
                                                          mutualChapSecret="s3cret2",
                                                          mutualChapAuthenticationType="chapRequired")))
    adapters = reduce_host_bus_adapters([vim.host.ParallelScsiHba(device="vmhba0", key="p", model="m"), hba])
    assert adapters == [{"_type": "HostInternetScsiHba", "device": "vmhba64", "authenticationProperties": {
        "chapAuthEnabled": True, "chapAuthenticationType": "chapRequired",
        "mutualChapAuthenticationType": "chapRequired"}}]

    firewall = vim.host.FirewallInfo(
        defaultPolicy=vim.host.FirewallInfo.DefaultPolicy(incomingBlocked=True, outgoingBlocked=True),
        ruleset=[vim.host.Ruleset(key="sshServer", label="SSH Server", enabled=True, required=False, rule=[
            vim.host.Ruleset.Rule(port=22, direction="inbound", protocol="tcp")],
            allowedHosts=vim.host.Ruleset.IpList(allIp=False, ipNetwork=[
                vim.host.Ruleset.IpNetwork(network="10.0.0.0", prefixLength=8)]))])
    assert reduce_firewall(firewall) == {"defaultPolicy": {"incomingBlocked": True, "outgoingBlocked": True},
                                         "ruleset": [{"key": "sshServer", "enabled": True, "required": False, "allowedHosts": {
                                             "allIp": False, "ipAddress": [],
                                             "ipNetwork": [{"network": "10.0.0.0", "prefixLength": 8}]}}]}

    options = [vim.option.OptionValue(key=k, value=v) for k, v in [
        ("Security.AccountLockFailures", 5), ("Config.HostAgent.plugins.solo.webServices.secret", "x"),
        ("security.accountlockfailures", 3)]]  # ESXi names options exactly: no case folding for hosts
    assert keep_host_options(options) == [{"key": "Security.AccountLockFailures", "value": 5}]
    settings = [vim.option.OptionValue(key=k, value="v") for k in [
        "ISOLATION.tools.copy.disable", "ethernet12.filter0.name", "ethernet.filter0.name", "ethernet1.filter0.named",
        "guestinfo.password", "mks.enable3d"]]
    assert [s["key"] for s in keep_vm_settings(settings)] == [
        "ISOLATION.tools.copy.disable", "ethernet12.filter0.name", "mks.enable3d"]

    device = vim.vm.device
    file_backing = {"fileName": "[ds] secret/image.flp"}
    devices = reduce_vm_devices([
        device.VirtualDisk(key=2000, deviceInfo=vim.Description(label="Hard disk 1", summary="s")),
        device.VirtualPCIPassthrough(key=13000, deviceInfo=vim.Description(label="PCI device 0", summary="s")),
        device.VirtualUSBXHCIController(key=14000, deviceInfo=vim.Description(label="USB xHCI controller", summary="s")),
        device.VirtualSoundBlaster16(key=5000, deviceInfo=vim.Description(label="Sound card", summary="s"),
                                     backing=device.VirtualSoundCard.DeviceBackingInfo(deviceName="/dev/dsp"),
                                     connectable=device.VirtualDevice.ConnectInfo(startConnected=True,
                                                                                  allowGuestControl=False,
                                                                                  connected=False)),
        device.VirtualFloppy(key=8000, backing=device.VirtualFloppy.ImageBackingInfo(**file_backing)),
        device.VirtualVmxnet3(key=4000, macAddress="00:50:56:00:00:01"),
    ])
    assert devices == [
        {"_type": "VirtualPCIPassthrough", "key": 13000, "deviceInfo": {"label": "PCI device 0"}},
        {"_type": "VirtualUSBXHCIController", "key": 14000, "deviceInfo": {"label": "USB xHCI controller"}},
        {"_type": "VirtualSoundBlaster16", "key": 5000, "deviceInfo": {"label": "Sound card"},
         "connectable": {"startConnected": True, "allowGuestControl": False, "connected": False}},
        {"_type": "VirtualFloppy", "key": 8000},
        {"key": 4000, "macAddress": "00:50:56:00:00:01"},
    ]

    # a switch of another vendor has no VMware fields; what it has is kept, the rest is not
    base = vim.DistributedVirtualSwitch.ConfigInfo(name="other", uuid="u", numPorts=8, maxPorts=64,
                                                   uplinkPortgroup=[vim.dvs.DistributedVirtualPortgroup("pg-1")])
    assert reduce_switch_config(base) == {"uplinkPortgroup": ["pg-1"]}


# -- TLS errors name their cause --------------------------------------------------------------


def test_a_too_weak_certificate_key_is_named_as_such(simulator_binary, tmp_path):
    weak = vcsim.start(simulator_binary, tmp_path, "-rsa-bits", "1024", "-vms", "1")
    try:
        errors = [collect(weak).sources[0].error, collect(weak, ca_bundle=None).sources[0].error]
        insecure = collect(weak, ca_bundle=None, insecure=True).sources[0]
    finally:
        weak.stop()
    for error in errors:  # with its own certificate as the CA, or with the system's CAs
        assert f"{weak.server} (connecting): TLS certificate does not verify (EE certificate key too weak)" in error
        assert "key is too weak" in error and "--ca-bundle cannot help" in error
        assert "pass --ca-bundle" not in error and "\n" not in error
    assert insecure.status == "ok"


def test_certificate_failures_map_to_their_cause():
    import ssl

    connection = VSphereConnection(host="vc.corp.example")

    def failure(code, message):
        exc = ssl.SSLCertVerificationError(1, f"certificate verify failed: {message}")
        exc.verify_code, exc.verify_message, exc.reason = code, message, "CERTIFICATE_VERIFY_FAILED"
        return describe_failure(exc, connection, "connecting")

    assert "pass --ca-bundle" in failure(20, "unable to get local issuer certificate")
    assert "pass --ca-bundle" in failure(18, "self-signed certificate")
    assert "has expired: renew" in failure(10, "certificate has expired")
    assert "does not name 'vc.corp.example'" in failure(62, "Hostname mismatch, certificate is not valid")
    weak_digest = failure(68, "CA signature digest algorithm too weak")
    assert "SHA-256" in weak_digest and "pass --ca-bundle" not in weak_digest
    handshake = ssl.SSLError(1, "[SSL: EE_KEY_TOO_SMALL] ee key too small")
    handshake.reason = "EE_KEY_TOO_SMALL"
    assert "key is too weak" in describe_failure(handshake, connection, "connecting")


def test_a_fault_message_of_any_length_makes_a_line_of_at_most_the_limit():
    """A fault's message is the server's to make up: 10 MB of it would be one 10 MB error line
    and snapshot field. Shortened, it still names the fault; a short one is kept whole."""
    from pyVmomi import vmodl

    from auditor.sources.vsphere import FAILURE_LIMIT

    connection = VSphereConnection(host="vc.corp.example")
    line = describe_failure(vmodl.fault.SystemError(msg="x" * 100_000), connection, "collecting")
    assert len(line) == FAILURE_LIMIT and line.startswith("vc.corp.example (collecting): vmodl.fault.SystemError: xxx")
    assert line.endswith("...")
    short = describe_failure(vmodl.fault.SystemError(msg="disk full"), connection, "collecting")
    assert short == "vc.corp.example (collecting): vmodl.fault.SystemError: disk full"


@pytest.mark.parametrize("flags, named", [
    (["--user", "auditor"], "the user from --user and the password from --password-file"),
    (["--vsphere-user", "auditor"], "the user from --vsphere-user and the password from --password-file"),
    ([], "the user from VSPHERE_USER and the password from --password-file"),
])
def test_a_failed_login_names_what_the_user_gave(simulator, tmp_path, monkeypatch, capsys, flags, named):
    """The message says to check the flag the user typed, not VSPHERE_USER when --user was given."""
    monkeypatch.setenv("VSPHERE_USER", "auditor")
    monkeypatch.delenv("VSPHERE_PASSWORD", raising=False)
    wrong = tmp_path / "password"
    wrong.write_text("not-the-password\n")
    code = main(["collect", "vsphere", "--server", simulator.server, *flags, "--password-file", str(wrong),
                 "--ca-bundle", str(simulator.cert), "--out", str(tmp_path / "x.json"), "-q"])
    err = capsys.readouterr().err
    assert code == 3 and f"check {named}" in err, err
