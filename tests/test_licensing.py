"""Licence accounting as the vendors count it: one table of VM / entitlement cases, each
citing the rule of the vendor it checks, run through the facts and accounting stages and
the shipped licensing rules.

Sources cited by the cases:
- [MS-AHB] Microsoft, Azure Hybrid Benefit for Windows Server,
  https://learn.microsoft.com/en-us/windows-server/get-started/azure-hybrid-benefit:
  "a minimum of 8 core licenses (Datacenter or Standard edition) per VM ... 12 core
  licenses are required for a 12-core instance"; Standard "must be used either on-premises
  or in Azure, but not at the same time"; Datacenter allows "simultaneous usage".
- [MS-VMSS] https://learn.microsoft.com/en-us/azure/virtual-machines/windows/hybrid-use-benefit-licensing:
  a scale set claims through `licenseType` in its VirtualMachineProfile.
- [MS-CVCPU] https://learn.microsoft.com/en-us/azure/virtual-machines/constrained-vcpu:
  licences count the constrained (active) vCPUs.
- [MS-SQL] https://learn.microsoft.com/en-us/azure/azure-sql/virtual-machines/windows/licensing-model-azure-hybrid-benefit-ahb-change:
  AHUB / PAYG / DR; only Standard and Enterprise can use the benefit; one free passive
  DR replica. 4-core minimum per VM (Product Terms). [MS-SQL-X]
  https://www.microsoft.com/en-us/licensing/news/expanded-ahb-rights-for-microsoft-sql-server
  and https://learn.microsoft.com/en-us/azure/azure-vmware/sql-server-hybrid-benefit: one
  Enterprise core covers four Standard vCPUs.
- [MS-LINUX] https://learn.microsoft.com/en-us/azure/virtual-machines/linux/azure-hybrid-benefit-linux:
  RHEL_BYOS / SLES_BYOS bring a subscription per VM.
- [BC-313548] Broadcom KB 313548: "license a minimum of 16 physical cores for each CPU".
- [VIM-LIC] vSphere API LicenseManager.LicenseInfo: costUnit cpuCore / cpuPackage,
  properties `feature` (what the edition includes) and `addon` (bought separately).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from auditor.accounting import (
    account_hybrid_benefit,
    account_vsphere_licences,
    host_standard_cores,
    sql_cores,
    windows_cores,
)
from auditor.baselines import load_baselines
from auditor.bundled import bundled_baselines_dir
from auditor.errors import BaselineError
from auditor.facts import derive_facts
from auditor.snapshot import make_resource
from tests.conftest import write

SUB = "00000000-0000-0000-0000-0000000000aa"
TODAY = date(2026, 12, 6)


# real sizes of the bundled Resource SKUs table, by their vCPUs
SIZE_FOR = {2: "Standard_D2s_v3", 4: "Standard_D4s_v3", 8: "Standard_D8s_v3", 12: "Standard_B12ms",
            16: "Standard_D16s_v3", 64: "Standard_D64_v3", None: "Standard_Custom9"}


def vm(name: str, vcpus: int | None, licence: str | None = None, os_name: str = "Windows Server 2022 Datacenter",
       size: str | None = None, available: int | None = None) -> dict[str, Any]:
    hardware: dict[str, Any] = {"vmSize": size or SIZE_FOR[vcpus]}
    if available is not None:
        hardware["vmSizeProperties"] = {"vCPUsAvailable": available}
    properties: dict[str, Any] = {"hardwareProfile": hardware, "extended": {"instanceView": {"osName": os_name}}}
    if licence:
        properties["licenseType"] = licence
    return make_resource(id=f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/{name}",
                         name=name, cloud="azure", type="microsoft.compute/virtualMachines", source=SUB,
                         native={"location": "westeurope", "properties": properties})


def scale_set(name: str, vcpus: int, capacity: int, mode: str = "Uniform") -> dict[str, Any]:
    return make_resource(
        id=f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/{name}",
        name=name, cloud="azure", type="microsoft.compute/virtualMachineScaleSets", source=SUB,
        native={"location": "westeurope", "sku": {"name": SIZE_FOR[vcpus], "capacity": capacity},
                "properties": {"orchestrationMode": mode, "virtualMachineProfile": {
                    "licenseType": "Windows_Server",
                    "storageProfile": {"imageReference": {"publisher": "MicrosoftWindowsServer",
                                                          "offer": "WindowsServer", "sku": "2022-datacenter"}}}}})


def sql_vm(name: str, on: dict[str, Any], edition: str, licence: str = "AHUB") -> dict[str, Any]:
    return make_resource(
        id=f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.SqlVirtualMachine/sqlVirtualMachines/{name}",
        name=name, cloud="azure", type="microsoft.sqlvirtualmachine/sqlvirtualmachines", source=SUB,
        native={"properties": {"virtualMachineResourceId": on["id"], "sqlImageOffer": "SQL2022-WS2022",
                               "sqlImageSku": edition, "sqlServerLicenseType": licence}})


def vsphere_host(name: str, packages: int, cores: int, licence: dict[str, Any], parent: str = "domain-c1") -> dict:
    return make_resource(id=f"vc/{name}", name=name, cloud="vsphere", type="HostSystem", source="vc", native={
        "moref": f"host-{name}", "parent": parent,
        "summary": {"config": {"product": {"version": "8.0.3", "build": "24585383"}},
                    "hardware": {"numCpuPkgs": packages, "numCpuCores": packages * cores}},
        "assignedLicense": licence})


def windows_guest(name: str, host_moref: str) -> dict:
    return make_resource(id=f"vc/{name}", name=name, cloud="vsphere", type="VirtualMachine", source="vc",
                         native={"config": {"guestFullName": "Microsoft Windows Server 2019 (64-bit)"},
                                 "runtime": {"host": host_moref}})


def account(tmp_path, resources: list[dict[str, Any]], entitlements: str | None) -> dict[str, dict]:
    text = "baselines:\n  licensing.entitlements:\n" + "".join(
        f"    {line}\n" for line in (entitlements or "").splitlines() if line.strip()) if entitlements else \
        "baselines: {}\n"
    baselines = load_baselines([bundled_baselines_dir(), write(tmp_path, "entitlements.yaml", text)])
    derive_facts(resources)
    account_vsphere_licences(resources, baselines)
    account_hybrid_benefit(resources, baselines)
    return {r["name"]: r.get("facts", {}) for r in resources}


# (case, citation, resources, entitlements, expected: {resource name: {fact key: value}})
# A value of `None` means the key must be absent: the claim is not judged.
def _cases() -> list[tuple[str, str, list, str | None, dict]]:
    dc = "Windows_Server: {edition: datacenter, cores: %d}"
    std = "Windows_Server: {edition: standard, cores: %d}"
    on_prem_host = vsphere_host("esx-w", 2, 8, {"editionKey": "esx.enterprisePlus.cpuPackage", "licenseKey": "K1"})
    sql_2 = vm("sqlhost-2", 2, os_name="Windows Server 2022 Datacenter")
    sql_8 = vm("sqlhost-8", 8)
    sql_8b = vm("sqlhost-8b", 8)
    cases = [
        ("2 vCPUs need 8 core licences", "MS-AHB: minimum of 8 per VM",
         [vm("a", 2, "Windows_Server")], dc % 16, {"a": {"counted": 8, "covered": True}}),
        ("4 vCPUs need 8", "MS-AHB: 8 still required for a 4-core instance",
         [vm("a", 4, "Windows_Server")], dc % 8, {"a": {"counted": 8, "covered": True}}),
        ("8 vCPUs need 8", "MS-AHB", [vm("a", 8, "Windows_Server")], dc % 8, {"a": {"counted": 8, "covered": True}}),
        ("12 vCPUs need 12, not 16", "MS-AHB: 12 core licenses for a 12-core instance",
         [vm("a", 12, "Windows_Server")], dc % 12, {"a": {"counted": 12, "covered": True}}),
        ("16 vCPUs need 16", "MS-AHB", [vm("a", 16, "Windows_Server")], dc % 16,
         {"a": {"counted": 16, "covered": True}}),
        ("owned cores are usable beyond whole 16-core sets", "MS-AHB: licences equal to the core size",
         [vm("a", 8, "Windows_Server"), vm("b", 12, "Windows_Server")], dc % 20,
         {"a": {"covered": True}, "b": {"covered": True, "usable": 20}}),
        ("a claim beyond the entitlement is not covered", "MS-AHB",
         [vm("a", 12, "Windows_Server"), vm("b", 16, "Windows_Server")], dc % 24,
         {"a": {"covered": True}, "b": {"covered": False, "claimed_total": 28}}),
        ("Standard: cores licensing vSphere guests are not usable in Azure", "MS-AHB: Standard not at the same time",
         [on_prem_host, windows_guest("g1", "host-esx-w"), vm("a", 16, "Windows_Server"), vm("b", 8, "Windows_Server")],
         std % 32, {"a": {"covered": True, "usable": 16, "on_premises": 16}, "b": {"covered": False}}),
        ("Datacenter: dual use leaves every core usable", "MS-AHB: Datacenter simultaneous usage",
         [on_prem_host, windows_guest("g1", "host-esx-w"), vm("a", 16, "Windows_Server"), vm("b", 8, "Windows_Server")],
         dc % 32, {"a": {"covered": True, "usable": 32, "on_premises": 0}, "b": {"covered": True}}),
        ("Standard: three guests on a 2 x 8-core host take 32 cores", "MS-AHB + Windows Server licensing (16/host, per 2 VMs)",
         [on_prem_host, *(windows_guest(f"g{n}", "host-esx-w") for n in range(3)), vm("a", 8, "Windows_Server")],
         std % 32, {"a": {"covered": False, "usable": 0, "on_premises": 32}}),
        ("a uniform scale set claims for every instance", "MS-VMSS: licenseType in VirtualMachineProfile",
         [scale_set("ss", 4, 3)], dc % 24, {"ss": {"counted": 24, "instances": 3, "covered": True}}),
        ("a uniform scale set beyond the entitlement", "MS-VMSS",
         [scale_set("ss", 16, 2)], dc % 24, {"ss": {"counted": 32, "covered": False}}),
        ("a flexible scale set's instances are VMs of their own", "MS-VMSS (flexible orchestration)",
         [scale_set("ss", 16, 4, mode="Flexible")], dc % 8, {"ss": {"hybrid_benefit": None}}),
        ("Windows counts all vCPUs of a constrained size", "MS-CVCPU: the OS is priced on the original size",
         [vm("a", None, "Windows_Server", size="Standard_E16-4s_v3")], dc % 16, {"a": {"counted": 16, "covered": True}}),
        ("Windows counts the size, not a customised vCPU count", "MS-CVCPU: billed as the original size",
         [vm("a", 16, "Windows_Server", available=8)], dc % 16, {"a": {"counted": 16, "covered": True}}),
        ("a claim for another OS takes no entitlement", "MS-AHB: Windows_Server on Linux licenses nothing",
         [vm("l", 8, "Windows_Server", "Ubuntu 22.04"), vm("w", 8, "Windows_Server")], dc % 8,
         {"l": {"mismatched": True, "covered": None}, "w": {"covered": True}}),
        ("a claim of unknown size is not judged", "auditor: missing data is not evaluated",
         [vm("a", None, "Windows_Server")], dc % 8, {"a": {"verifiable": False, "covered": None}}),
        ("after an unknown claim, one uncovered even at the minimum is still uncovered", "MS-AHB minimum 8",
         [vm("a", None, "Windows_Server"), vm("b", 16, "Windows_Server")], dc % 16,
         {"b": {"covered": False}}),
        ("after an unknown claim, a claim that might fit is not judged", "auditor: missing data is not evaluated",
         [vm("a", None, "Windows_Server"), vm("b", 8, "Windows_Server")], dc % 32, {"b": {"covered": None}}),
        ("RHEL_BYOS counts one subscription per VM", "MS-LINUX",
         [vm("r1", 4, "RHEL_BYOS", "Red Hat Enterprise Linux 9"), vm("r2", 64, "RHEL_BYOS", "Red Hat Enterprise Linux 9"),
          vm("r3", 2, "RHEL_BYOS", "Red Hat Enterprise Linux 9")], "RHEL_BYOS: {instances: 2}",
         {"r1": {"counted": 1, "covered": True}, "r2": {"covered": True}, "r3": {"covered": False}}),
        ("a claim for a licence type not declared", "MS-AHB: the benefit needs owned licences",
         [vm("s", 4, "SLES_BYOS", "SUSE Linux Enterprise Server 15 SP6")], dc % 8,
         {"s": {"declared": False, "covered": False}}),
        ("PAYG Windows VM with enough unused cores", "MS-AHB",
         [vm("a", 8, "Windows_Server"), vm("p", 8)], dc % 16, {"p": {"payg": True, "eligible": True, "unused": 8}}),
        ("PAYG Windows VM bigger than the unused cores", "MS-AHB",
         [vm("a", 8, "Windows_Server"), vm("p", 12)], dc % 16, {"p": {"eligible": False}}),
        ("PAYG VMs share what is unused, in id order", "MS-AHB",
         [vm("p1", 8), vm("p2", 8)], dc % 8, {"p1": {"eligible": True, "unused": 8}, "p2": {"eligible": False, "unused": 0}}),
        ("PAYG Windows VM of unknown size is not judged", "auditor: missing data is not evaluated",
         [vm("p", None)], dc % 16, {"p": {"payg": True, "eligible": None}}),
        ("SQL: 2 vCPUs need the 4-core minimum", "MS-SQL: 4-core minimum per VM",
         [sql_2, sql_vm("sql-a", sql_2, "Enterprise")], "SQL_Server_Enterprise: {cores: 4}",
         {"sql-a": {"sql_benefit.counted": 4, "sql_benefit.covered": True}}),
        ("SQL counts the active vCPUs of a constrained size", "MS-CVCPU: SQL Server is licensed on the constrained count",
         [vm("sqlhost-c", None, size="Standard_E16-4s_v3"), sql_vm("sql-c", vm("sqlhost-c", None, size="Standard_E16-4s_v3"),
                                                                 "Enterprise")],
         "SQL_Server_Enterprise: {cores: 4}", {"sql-c": {"sql_benefit.counted": 4, "sql_benefit.covered": True}}),
        ("SQL Standard draws on Enterprise at 4 vCPUs per core", "MS-SQL-X",
         [sql_8, sql_vm("sql-s", sql_8, "Standard")], "SQL_Server_Standard: {cores: 4}\nSQL_Server_Enterprise: {cores: 1}",
         {"sql-s": {"sql_benefit.counted": 8, "sql_benefit.covered": True}}),
        ("SQL Standard without enough licences", "MS-SQL",
         [sql_8, sql_vm("sql-s", sql_8, "Standard")], "SQL_Server_Standard: {cores: 4}",
         {"sql-s": {"sql_benefit.covered": False}}),
        ("SQL Enterprise is not covered by Standard licences", "MS-SQL: licences of the edition",
         [sql_8, sql_vm("sql-e", sql_8, "Enterprise")], "SQL_Server_Standard: {cores: 64}",
         {"sql-e": {"sql_benefit.covered": False}}),
        ("SQL claims are counted in id order", "MS-SQL",
         [sql_8, sql_8b, sql_vm("sql-1", sql_8, "Enterprise"), sql_vm("sql-2", sql_8b, "Enterprise")],
         "SQL_Server_Enterprise: {cores: 12}",
         {"sql-1": {"sql_benefit.covered": True}, "sql-2": {"sql_benefit.covered": False}}),
        ("the free passive DR replica claims nothing", "MS-SQL: DR licence type",
         [sql_8, sql_vm("sql-dr", sql_8, "Enterprise", licence="DR")], "SQL_Server_Enterprise: {cores: 0}",
         {"sql-dr": {"sql_benefit": None}}),
        ("Developer edition cannot use the benefit", "MS-SQL: Standard and Enterprise only",
         [sql_8, sql_vm("sql-dev", sql_8, "Developer")], "SQL_Server_Enterprise: {cores: 0}",
         {"sql-dev": {"sql_benefit": None}}),
    ]
    return cases


CASES = _cases()


def _value(facts: dict, key: str) -> Any:
    if key in ("hybrid_benefit", "sql_benefit"):
        return facts.get(key)
    owner = facts.get("sql_benefit" if key.startswith("sql_benefit.") else "hybrid_benefit") or {}
    return owner.get(key.removeprefix("sql_benefit."))


@pytest.mark.parametrize("case, citation, resources, entitlements, expected", CASES, ids=[c[0] for c in CASES])
def test_licence_case(tmp_path, case, citation, resources, entitlements, expected):
    assert citation
    facts = account(tmp_path, [dict(r) for r in resources], entitlements)
    for name, wanted in expected.items():
        for key, value in wanted.items():
            assert _value(facts[name], key) == value, f"{case} ({citation}): {name} {key}"


def test_the_table_is_large_enough():
    assert len(CASES) >= 25


def test_per_vm_counts():
    # [MS-AHB] at least 8 per VM, one per vCPU, 2-core packs; [MS-SQL] at least 4
    assert [windows_cores(n) for n in (1, 2, 8, 9, 12, 16, 20)] == [8, 8, 8, 10, 12, 16, 20]
    assert [sql_cores(n) for n in (1, 4, 6, 32)] == [4, 4, 6, 32]
    # on premises: at least 8 per CPU and 16 per host, every core again for each pair of VMs
    assert host_standard_cores(2, 8, 1) == 16 and host_standard_cores(1, 4, 1) == 16
    assert host_standard_cores(2, 12, 3) == 48 and host_standard_cores(2, 12, 0) == 0


def test_windows_entitlement_in_whole_packs(tmp_path):
    with pytest.raises(BaselineError) as error:
        account(tmp_path, [vm("a", 8, "Windows_Server")], "Windows_Server: {edition: datacenter, cores: 15}")
    assert "2-core packs" in error.value.one_line() and "entitlements.yaml" in error.value.one_line()


# --- vSphere ------------------------------------------------------------------------------------

def licence(key: str, cost_unit: str, total: int, edition: str = "esx.standard.cpuCoreMin", used: int = 1,
            features: list[str] | None = None) -> dict[str, Any]:
    properties = [{"key": "feature", "value": {"key": f, "value": f}} for f in features or ()]
    return make_resource(id=f"vc/license/{key}", name=f"licence {key}", cloud="vsphere", type="License", source="vc",
                         native={"licenseKey": f"*****-{key}", "editionKey": edition, "costUnit": cost_unit,
                                 "total": total, "used": used, "properties": properties})


def assigned(key: str, edition: str, features: list[str] | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {"licenseKey": f"*****-{key}", "editionKey": edition, "name": edition}
    if features is not None:
        info["properties"] = [{"key": "feature", "value": {"key": f, "value": f}} for f in features]
    return info


def cluster(name: str = "cl1", moref: str = "domain-c1", drs: bool = True) -> dict[str, Any]:
    return make_resource(id=f"vc/{moref}", name=name, cloud="vsphere", type="ClusterComputeResource", source="vc",
                         native={"moref": moref, "configuration": {"drsConfig": {"enabled": drs}}})


VSPHERE_CASES = [
    ("each CPU counts as at least 16 cores", "BC-313548",
     [licence("P1", "cpuCore", 64), vsphere_host("h1", 2, 8, assigned("P1", "esx.standard.cpuCoreMin"))],
     {"h1": ("cpu.licensed_cores", 32), "licence P1": ("cores_required", 32)}),
    ("CPUs of more than 16 cores count their cores", "BC-313548",
     [licence("P1", "cpuCore", 64), vsphere_host("h1", 2, 24, assigned("P1", "esx.standard.cpuCoreMin")),
      vsphere_host("h2", 2, 8, assigned("P1", "esx.standard.cpuCoreMin"))],
     {"h1": ("cpu.licensed_cores", 48), "licence P1": ("cores_required", 80)}),
    ("a costUnit that states its minimum is honoured", "VIM-LIC: cpuCore:Ncore",
     [licence("V9", "cpuCore:16core", 64, "esx.vcf.entitlement.cpuCoreMin"),
      vsphere_host("h1", 1, 12, assigned("V9", "esx.vcf.entitlement.cpuCoreMin"))],
     {"licence V9": ("minimum_per_cpu", 16), "h1": ("cpu.licensed_cores", 16)}),
    ("a per-CPU licence is not counted in cores", "VIM-LIC: cpuPackage",
     [licence("S1", "cpuPackage", 4, "esx.enterprisePlus.cpuPackage"),
      vsphere_host("h1", 2, 8, assigned("S1", "esx.enterprisePlus.cpuPackage"))],
     {"licence S1": ("cores_required", None)}),
    ("DRS on a host licensed Standard", "VIM-LIC: edition without DRS",
     [cluster(), vsphere_host("h1", 2, 16, assigned("A", "esx.standard.cpuPackage")),
      vsphere_host("h2", 2, 16, assigned("B", "esx.enterprisePlus.cpuPackage"))],
     {"cl1": ("drs_licensing.hosts_without_drs", ["h1"])}),
    ("the licence's features decide over its edition", "VIM-LIC: feature properties",
     [cluster(), vsphere_host("h1", 2, 16, assigned("A", "esx.someNewEdition.cpuCoreMin", ["vmotion", "drs"]))],
     {"cl1": ("drs_licensing.hosts_without_drs", [])}),
    ("DRS as an add-on is not the edition's", "VIM-LIC: addon vs feature",
     [cluster(), vsphere_host("h1", 2, 16, assigned("A", "esx.essentialsPlus.cpuPackage", ["vmotion", "das"]))],
     {"cl1": ("drs_licensing.hosts_without_drs", ["h1"])}),
    ("an edition neither list knows leaves the cluster not judged", "auditor: missing data is not evaluated",
     [cluster(), vsphere_host("h1", 2, 16, assigned("A", "esx.someNewEdition.cpuCoreMin"))],
     {"cl1": ("drs_licensing.hosts_without_drs", None)}),
]


@pytest.mark.parametrize("case, citation, resources, expected", VSPHERE_CASES, ids=[c[0] for c in VSPHERE_CASES])
def test_vsphere_licence_case(tmp_path, case, citation, resources, expected):
    facts = account(tmp_path, [dict(r) for r in resources], None)
    for name, (path, value) in expected.items():
        found: Any = facts[name]
        for key in path.split("."):
            found = found.get(key) if isinstance(found, dict) else None
        assert found == value, f"{case} ({citation}): {name} {path}"


def test_vsphere_counts_are_rederived(tmp_path):
    resources = [licence("P1", "cpuCore", 64), vsphere_host("h1", 2, 8, assigned("P1", "esx.standard.cpuCoreMin"))]
    account(tmp_path, resources, None)
    facts = account(tmp_path, resources, None)  # a second pass counts nothing twice
    assert facts["licence P1"]["cores_required"] == 32 and facts["licence P1"]["hosts"] == 1


def test_the_per_cpu_minimum_is_a_baseline_value(tmp_path):
    resources = [licence("P1", "cpuCore", 64), vsphere_host("h1", 2, 8, assigned("P1", "esx.standard.cpuCoreMin"))]
    baselines = load_baselines([bundled_baselines_dir(), write(tmp_path, "mine.yaml", """
        baselines:
          licensing.vsphere: {minimum_cores_per_cpu: 8, minimum_cores_per_licence: 72}
        """)])
    derive_facts(resources)
    account_vsphere_licences(resources, baselines)
    assert resources[1]["facts"]["cpu"]["licensed_cores"] == 16
    assert resources[0]["facts"]["cores_required"] == 72  # the contract's minimum per licence


@pytest.mark.parametrize("text, message", [
    ("licensing.vsphere: {minimum_cores_per_CPU: 8}", "unknown key 'minimum_cores_per_CPU'"),
    ("licensing.vsphere: [minimum_cores_per_cpu, 8]", "must be a mapping"),
    ("licensing.vsphere: {minimum_cores_per_cpu: -1}", "must be a whole number"),
    ("licensing.editions_with_drs: esx.enterprisePlus.cpuPackage", "must be a list"),
])
def test_vsphere_licensing_tables_are_checked_when_the_rules_load(tmp_path, text, message):
    from auditor.scan import load_rule_context
    bad = write(tmp_path, "mine.yaml", f"baselines:\n  {text}\n")
    with pytest.raises(BaselineError) as error:
        load_rule_context(None, [bad], TODAY)
    assert message in error.value.one_line() and "mine.yaml" in error.value.one_line()
