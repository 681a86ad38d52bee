"""The vSphere source against govmomi's vCenter simulator (a real SOAP peer, not a mock)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import date

import pytest

from auditor.cli import main
from auditor.facts import derive_facts
from auditor.scan import load_rule_context, scan_snapshot
from auditor.snapshot import Snapshot, load_snapshot
from auditor.sources import Progress, collect_all
from auditor.sources.vsphere import VSphereConnection, VSphereSource, parse_server
from tests import vcsim

pytestmark = pytest.mark.peer
HOSTILE = "<img src=x onerror=alert(1)>"


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


def connection(simulator, **overrides) -> VSphereConnection:
    values = dict(host="127.0.0.1", port=simulator.port, user="auditor", password=vcsim.PASSWORD,
                  ca_bundle=str(simulator.cert), timeout=20)
    values.update(overrides)
    return VSphereConnection(**values)


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
    nics = vm["config"]["hardware"]["device"]
    assert nics and all("macAddress" in nic for nic in nics)
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
    from auditor.snapshot import save_snapshot
    save_snapshot(Snapshot(collected_at="x", sources=collected.sources, resources=collected.resources), path)
    text = path.read_text()
    assert vcsim.PASSWORD not in text
    assert "AAAAA-BBBBB-CCCCC-DDDDD" not in text and "*****-*****-*****-*****-7R4H9" in text
    assert "not-for-snapshots" not in text  # an advanced option outside the hardening list
    host = next(h for h in by_type(collected.resources, "HostSystem") if h["config"].get("option"))
    assert {o["key"] for o in host["config"]["option"]} == {
        "Syslog.global.logHost", "UserVars.ESXiShellTimeOut", "Security.AccountLockFailures"}
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


def test_collect_all_runs_sources_in_parallel(simulator):
    sources = [VSphereSource(connection(simulator)), VSphereSource(connection(simulator, port=1))]
    snapshot = collect_all(sources, Progress(enabled=False))
    assert [s.status for s in snapshot.sources] == ["ok", "failed"] and snapshot.incomplete


def test_gate_and_drift_across_two_collections_of_the_simulator(simulator_binary, tmp_path, credentials, capsys):
    """Two collections of the same estate give no new finding; one port group changed in the
    simulator through the vSphere API gives exactly that drift and exactly one new finding."""
    import ssl

    from pyVim.connect import Disconnect, SmartConnect
    from pyVmomi import vim

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

        service = SmartConnect(host="127.0.0.1", port=estate.port, user="auditor", pwd=vcsim.PASSWORD,
                               sslContext=ssl.create_default_context(cafile=str(estate.cert)))
        try:
            content = service.RetrieveContent()
            view = content.viewManager.CreateContainerView(content.rootFolder,
                                                           [vim.dvs.DistributedVirtualPortgroup], True)
            group = next(pg for pg in view.view if pg.name == "DC0_DVPG2")
            config = group.config
            setting = config.defaultPortConfig
            setting.securityPolicy.forgedTransmits = vim.BoolPolicy(inherited=False, value=True)
            # the simulator replaces every field with the spec's, so the spec carries them all
            spec = vim.dvs.DistributedVirtualPortgroup.ConfigSpec(
                configVersion=config.configVersion, name=config.name, numPorts=config.numPorts,
                type=config.type, policy=config.policy, description=config.description,
                autoExpand=config.autoExpand, defaultPortConfig=setting)
            task = group.ReconfigureDVPortgroup_Task(spec)
            while task.info.state not in ("success", "error"):
                time.sleep(0.05)
            assert task.info.state == "success"
            moref = group._moId
        finally:
            Disconnect(service)

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
