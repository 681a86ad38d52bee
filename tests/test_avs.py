"""Azure VMware Solution as one estate: a private cloud joined with the vCenter its
endpoints name, host findings marked as the provider's (Microsoft runs the hosts), and the
gate counting them only when asked to."""

from __future__ import annotations

import json
from datetime import date

from auditor.avs import link_avs
from auditor.baselines import load_baselines
from auditor.bundled import bundled_baselines_dir
from auditor.cli import main
from auditor.facts import derive_facts
from auditor.lifecycle import assess_support
from auditor.snapshot import Snapshot, Source, make_resource, save_snapshot

SUB = "00000000-0000-0000-0000-0000000000cc"
VCENTER = "vc.1a2b3c.westeurope.avs.azure.com"


def private_cloud(vcsa: str = f"https://{VCENTER}/", ip: str = "10.100.0.2") -> dict:
    return make_resource(id=f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.AVS/privateClouds/pc1",
                         name="pc1", cloud="azure", type="Microsoft.AVS/privateClouds", source=SUB,
                         native={"properties": {"endpoints": {"vcsa": vcsa, "vcenterIp": ip}, "internet": "Disabled",
                                                "networkBlock": "10.100.0.0/22", "encryption": {"status": "Enabled"}}})


def vcenter_pieces(source: str) -> list[dict]:
    vcenter = make_resource(id=f"{source}/vcenter", name=source, cloud="vsphere", type="vCenter", source=source,
                            native={"about": {"version": "8.0.3", "build": "24322831", "apiType": "VirtualCenter"}})
    host = make_resource(id=f"{source}/host-1", name="esx-avs", cloud="vsphere", type="HostSystem", source=source,
                         native={"moref": "host-1", "summary": {"config": {"product": {"version": "7.0.3",
                                                                                       "build": "21313628"}}}})
    vm = make_resource(id=f"{source}/vm-1", name="legacy", cloud="vsphere", type="VirtualMachine", source=source,
                       native={"moref": "vm-1", "runtime": {"host": "host-1"},
                               "config": {"guestFullName": "Microsoft Windows Server 2012 R2 (64-bit)"}})
    return [vcenter, host, vm]


def test_a_private_cloud_and_its_vcenter_are_joined_by_name_or_address():
    for source in (VCENTER, f"{VCENTER.upper()}:443", "10.100.0.2"):
        cloud, (vcenter, host, vm) = private_cloud(), vcenter_pieces(source)
        resources = [cloud, vcenter, host, vm]
        derive_facts(resources)
        linked = link_avs(resources)
        assert linked == {source: {"private_cloud": cloud["id"], "name": "pc1", "subscription": SUB}}, source
        assert cloud["facts"]["vcenter"] == source and host["facts"]["avs"]["name"] == "pc1"
    # another vCenter of the same estate is not joined
    cloud, (vcenter, host, _) = private_cloud(), vcenter_pieces("vc-dc1.corp.example")
    derive_facts([cloud, vcenter, host])
    assert link_avs([cloud, vcenter, host]) == {} and "avs" not in host["facts"] and "vcenter" not in cloud["facts"]


def test_a_private_cloud_cannot_claim_a_vcenter_that_is_not_azure_vmware_solutions():
    # the join hides host findings from the gate: a resource naming an on-premises vCenter,
    # an address outside its own network block, or a vCenter another private cloud names too,
    # joins nothing
    for cloud, source in ((private_cloud(vcsa="https://vc-dc1.corp.example/", ip="10.1.1.5"), "vc-dc1.corp.example"),
                          (private_cloud(vcsa="https://evil@vc-dc1.corp.example/"), "vc-dc1.corp.example"),
                          (private_cloud(ip="10.1.1.5"), "10.1.1.5"), (private_cloud(ip="0.0.0.0"), "0.0.0.0")):
        vcenter, host, vm = vcenter_pieces(source)
        resources = [cloud, vcenter, host, vm]
        derive_facts(resources)
        assert link_avs(resources) == {} and "avs" not in host["facts"], source
    twin = private_cloud()
    twin["id"], twin["name"] = twin["id"] + "-twin", "pc1-twin"
    resources = [private_cloud(), twin, *vcenter_pieces(VCENTER)]
    derive_facts(resources)
    # joined to neither (it stays AVS's by its name alone)
    assert link_avs(resources) == {VCENTER: {"private_cloud": None, "name": None, "subscription": None}}
    assert "vcenter" not in resources[0]["facts"] and "vcenter" not in resources[1]["facts"]


def test_windows_esu_is_free_for_a_vm_on_azure_vmware_solution():
    # Microsoft gives Windows Server 2012 R2 ESU free in Azure, Azure VMware Solution included
    baselines = load_baselines([bundled_baselines_dir()])
    for source, status in ((VCENTER, "extended"), ("vc-dc1.corp.example", "out_of_support")):
        resources = [private_cloud(), *vcenter_pieces(source)]
        derive_facts(resources)
        link_avs(resources)
        assess_support(resources, baselines, date(2025, 1, 1))
        assert resources[3]["facts"]["support"]["status"] == status, source
    # a vCenter under avs.azure.com is AVS's by its name, even when the scan read no private cloud
    alone = vcenter_pieces(VCENTER)
    derive_facts(alone)
    assert link_avs(alone) == {VCENTER: {"private_cloud": None, "name": None, "subscription": None}}
    assert alone[1]["facts"]["avs"]["private_cloud"] is None
    # a standalone ESXi host (no vCenter resource) is never joined
    esxi = [private_cloud(), *vcenter_pieces(VCENTER)[1:]]
    derive_facts(esxi)
    assert link_avs(esxi) == {}


def scan(tmp_path, *extra: str) -> tuple[int, dict]:
    sources = [Source(id=VCENTER, cloud="vsphere", kind="vcenter"), Source(id=SUB, cloud="azure", kind="subscription")]
    path = tmp_path / "avs.json"
    save_snapshot(Snapshot(collected_at="2026-11-20T00:00:00Z", sources=sources,
                           resources=[private_cloud(), *vcenter_pieces(VCENTER)]), path)
    code = main(["scan", "--snapshot", str(path), "--output", str(tmp_path / "out"), "-q", "--no-history",
                 "--as-of", "2026-11-25", "--skip-checks", "HY-*", *extra])
    return code, json.loads((tmp_path / "out" / "latest" / "findings.json").read_text())


def test_host_findings_are_the_providers_and_do_not_fail_the_gate_unless_asked(tmp_path):
    code, document = scan(tmp_path, "--fail-on", "high")
    host = [f for f in document["findings"] if f["resource_name"] == "esx-avs"]
    # ESXi 7.0 is past end of general support: Microsoft's to upgrade on AVS
    assert any(f["rule_id"] == "VS-SUP-001" for f in host)
    assert host and all(f["responsibility"] == "provider" for f in host)
    assert code == 0
    [source] = [s for s in document["snapshot"]["sources"] if s["id"] == VCENTER]
    assert source["azure_vmware_solution"]["name"] == "pc1"
    code, _ = scan(tmp_path, "--fail-on", "high", "--gate-provider-findings")
    assert code == 1


def test_the_sample_shows_the_private_cloud_and_its_vcenter_as_one_system(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["scan", "-q", "--no-history", "--as-of", "2026-11-25"]) == 0
    document = json.loads((tmp_path / "reports" / "latest" / "findings.json").read_text())
    [avs] = [s for s in document["snapshot"]["sources"] if s.get("azure_vmware_solution")]
    assert avs["id"].endswith(".avs.azure.com") and avs["azure_vmware_solution"]["name"] == "avs-weu-01"
    providers = {f["resource_name"] for f in document["findings"] if f["responsibility"] == "provider"}
    # its host and its vCenter are Microsoft's to patch and harden; the VM is the customer's
    assert providers == {"esx01-r07.p01.westeurope.avs.azure.com", avs["id"]}
    assert all(f["responsibility"] == "customer" for f in document["findings"] if f["resource_name"] == "avs-app-01")
    html = (tmp_path / "reports" / "latest" / "report.html").read_text()
    assert "Azure VMware Solution private cloud avs-weu-01" in html


def test_provider_findings_are_said_in_every_output_and_count_again_when_they_become_the_customers(tmp_path, capsys):
    code, _ = scan(tmp_path, "--fail-on", "high", "-f", "json", "-f", "sarif", "-f", "csv")
    assert code == 0
    capsys.readouterr()
    sources = [Source(id=VCENTER, cloud="vsphere", kind="vcenter"), Source(id=SUB, cloud="azure", kind="subscription")]
    loud = tmp_path / "loud.json"
    save_snapshot(Snapshot(collected_at="2026-11-20T00:00:00Z", sources=sources,
                           resources=[private_cloud(), *vcenter_pieces(VCENTER)]), loud)
    assert main(["scan", "--snapshot", str(loud), "--output", str(tmp_path / "loud"), "--no-history",
                 "--as-of", "2026-11-25", "--fail-on", "high", "--skip-checks", "HY-*"]) == 0
    assert "the provider acts on (Azure VMware Solution hosts) were not counted" in capsys.readouterr().err
    sarif = json.loads((tmp_path / "out" / "latest" / "results.sarif").read_text())
    levels = {r["properties"].get("responsibility", "customer"): r["level"] for run in sarif["runs"]
              for r in run["results"]}
    assert levels["provider"] == "note"
    csv_text = (tmp_path / "out" / "latest" / "findings.csv").read_text()
    assert csv_text.splitlines()[0].endswith(",responsibility") and ",provider" in csv_text


def test_a_finding_that_stops_being_the_providers_is_new_to_the_gate(tmp_path):
    # joined by address the first time; the next scan has no private cloud naming it
    source = "10.100.0.2"

    def scan_of(name: str, resources: list[dict]) -> int:
        path = tmp_path / f"{name}.json"
        save_snapshot(Snapshot(collected_at="2026-11-21T00:00:00Z",
                               sources=[Source(id=source, cloud="vsphere", kind="vcenter"),
                                        Source(id=SUB, cloud="azure", kind="subscription")],
                               resources=resources), path)
        extra = ["--compare", str(tmp_path / "first" / "latest" / "findings.json"), "--fail-on", "new",
                 "--min-severity", "high"] if name == "second" else ["--fail-on", "high"]
        return main(["scan", "--snapshot", str(path), "--output", str(tmp_path / name), "-q", "--no-history",
                     "--as-of", "2026-11-25", "--skip-checks", "HY-*", *extra])

    assert scan_of("first", [private_cloud(), *vcenter_pieces(source)]) == 0
    first = json.loads((tmp_path / "first" / "latest" / "findings.json").read_text())
    assert {f["responsibility"] for f in first["findings"] if f["rule_id"] == "VS-SUP-001"} == {"provider"}
    assert scan_of("second", vcenter_pieces(source)) == 1
    second = json.loads((tmp_path / "second" / "latest" / "findings.json").read_text())
    assert any(f["rule_id"] == "VS-SUP-001" and f["state"] == "new" and f["responsibility"] == "customer"
               for f in second["findings"])
