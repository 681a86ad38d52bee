"""Support status as the vendors publish it: a table of product / version / date cases,
each citing the vendor's lifecycle statement it checks, run through the support stage with
the shipped baselines. The dates are written here from the vendors' pages, not read from
rules/baselines/lifecycle.yaml, so a wrong row in the baseline fails a case.

Sources cited by the cases:
- [BC] Broadcom Product Lifecycle (support.broadcom.com/web/ecx/productlifecycle) and
  endoflife.date/esxi, /vcenter: end of general support of each ESXi / vCenter release
  (9.x dates are endoflife.date's estimates, not yet confirmed by Broadcom).
- [MS] Microsoft Lifecycle (learn.microsoft.com/lifecycle/products/...): end of extended
  support; Windows Server and SQL Server ESU, free in Azure where Microsoft says so
  (2008/R2: one more year in Azure; 2012/R2: free in Azure, same end; SQL 2016 ESU is
  not free in Azure).
- [CAN] ubuntu.com/about/release-cycle: standard support and Ubuntu Pro ESM ends.
- [RH] access.redhat.com/support/policy/updates/errata: Maintenance Support and ELS.
- [SUSE] suse.com/lifecycle: general support and LTSS per service pack.
- [DEB] debian.org/releases and wiki.debian.org/LTS: security support and (free) LTS.
- [CENTOS] endoflife.date/centos, /centos-stream.
- [VMSA] Broadcom VMSA-2025-0013 (ESXi 7.0 U3w 24784741, 8.0 U2e 24789317, 8.0 U3f
  24784735; it supersedes VMSA-2025-0004's 7.0 U3s, 8.0 U2d 24585300, 8.0 U3d),
  VMSA-2026-0006 / CVE-2026-41709 (ESX 9.0.2.0100 25595025, 9.1.0.0 25370933),
  VMSA-2024-0019 (vCenter 7.0 U3t 24322018, 8.0 U2e 24321653, 8.0 U3d 24322831),
  VMSA-2025-0016 (vCenter 9.0.1.0, 24957454), VMSA-2025-0015 (VMware Tools 12.5.4 and
  13.0.5, CVE-2025-41244).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from auditor.baselines import load_baselines
from auditor.bundled import bundled_baselines_dir
from auditor.errors import BaselineError
from auditor.facts import derive_facts
from auditor.lifecycle import assess_support, load_support_tables
from auditor.snapshot import make_resource
from tests.conftest import write

TODAY = date(2026, 12, 6)
SHIPPED = load_baselines([bundled_baselines_dir()])

# machine kinds and how a case builds one
KINDS = {"vsphere": ("vsphere", "VirtualMachine"), "azure": ("azure", "microsoft.compute/virtualmachines"),
         "arc": ("azure", "microsoft.hybridcompute/machines"), "host": ("vsphere", "HostSystem"),
         "vcenter": ("vsphere", "vCenter"), "sql": ("azure", "microsoft.sqlvirtualmachine/sqlvirtualmachines")}


def machine(kind: str, product: str | None, **native: Any) -> dict[str, Any]:
    cloud, kind_type = KINDS[kind]
    facts: dict[str, Any] = {}
    if kind == "host":
        native = {"summary": {"config": {"product": {"version": product, "build": "1"}}}, **native}
    elif kind == "vcenter":
        native = {"about": {"version": product, "build": "1"}, **native}
    elif kind == "sql":
        facts["sql_release"] = product
    else:
        facts["os"] = {"family": "linux", "product": product, "name": product}
    resource = make_resource(id=f"{kind}/{product}", name=f"{kind}-{product}", cloud=cloud, type=kind_type,
                             source="s", native=native)
    resource["facts"] = facts
    return resource


def judge(resource: dict[str, Any], as_of: date = TODAY, programmes: dict[str, str] | None = None,
          tmp_path=None) -> dict[str, Any]:
    baselines = SHIPPED
    if programmes:
        lines = "".join(f"    {name}: {state}\n" for name, state in programmes.items())
        baselines = load_baselines([bundled_baselines_dir(), write(
            tmp_path, "programmes.yaml", f"baselines:\n  support.extended_programmes:\n{lines}")])
    assess_support([resource], baselines, as_of)
    return resource["facts"]["support"]


BOUGHT = "bought"
ARC_ESU = {"properties": {"licenseProfile": {"esuProfile": {"licenseAssignmentState": "Assigned",
                                                             "esuKeyState": "Active"}}}}
ARC_ESU_INACTIVE = {"properties": {"licenseProfile": {"esuProfile": {"licenseAssignmentState": "Assigned",
                                                                      "esuKeyState": "Inactive"}}}}
D = date.fromisoformat

# (kind, product, as_of, programme bought (or None), extra native fields, status, supported until, citation)
CASES: list[tuple[str, str | None, date, str | None, dict, str, str | None, str]] = [
    # ESXi
    ("host", "5.5.0", TODAY, None, {}, "out_of_support", "2018-09-19", "BC: ESXi 5.5 EoGS 2018-09-19"),
    ("host", "6.0.0", TODAY, None, {}, "out_of_support", "2020-03-12", "BC: ESXi 6.0 EoGS 2020-03-12"),
    ("host", "6.5.0", TODAY, None, {}, "out_of_support", "2022-10-15", "BC: ESXi 6.5 EoGS 2022-10-15"),
    ("host", "6.7.0", TODAY, None, {}, "out_of_support", "2022-10-15", "BC: ESXi 6.7 EoGS 2022-10-15"),
    ("host", "7.0.3", TODAY, None, {}, "out_of_support", "2025-10-02", "BC: ESXi 7.0 EoGS 2025-10-02"),
    ("host", "7.0.3", D("2025-10-02"), None, {}, "supported", "2025-10-02", "BC: the last day is still supported"),
    ("host", "7.0.3", D("2025-10-03"), None, {}, "out_of_support", "2025-10-02", "BC: the day after is not"),
    ("host", "8.0.2", TODAY, None, {}, "supported", "2027-10-11", "BC: ESXi 8.0 EoGS 2027-10-11"),
    ("host", "8.0.3", D("2027-10-12"), None, {}, "out_of_support", "2027-10-11", "BC: ESXi 8.0 EoGS 2027-10-11"),
    ("host", "9.0.0", TODAY, None, {}, "supported", "2027-09-17", "BC: ESX 9.0 EoGS 2027-09-17 (estimate)"),
    ("host", "9.1.0", TODAY, None, {}, "supported", "2028-08-12", "BC: ESX 9.1 EoGS 2028-08-12 (estimate)"),
    ("host", "9.2.0", TODAY, None, {}, "not_covered", None, "a release the table does not know"),
    ("host", "10.0.0", TODAY, None, {}, "not_covered", None, "a release the table does not know"),
    # vCenter
    ("vcenter", "5.5.0", TODAY, None, {}, "out_of_support", "2018-09-19", "BC: vCenter 5.5 EoGS 2018-09-19"),
    ("vcenter", "6.0.0", TODAY, None, {}, "out_of_support", "2020-03-12", "BC: vCenter 6.0 EoGS 2020-03-12"),
    ("vcenter", "6.7.0", TODAY, None, {}, "out_of_support", "2022-10-15", "BC: vCenter 6.7 EoGS 2022-10-15"),
    ("vcenter", "7.0.3", TODAY, None, {}, "out_of_support", "2025-10-02", "BC: vCenter 7.0 EoGS 2025-10-02"),
    ("vcenter", "8.0.3", TODAY, None, {}, "supported", "2027-10-11", "BC: vCenter 8.0 EoGS 2027-10-11"),
    ("vcenter", "9.0.1", TODAY, None, {}, "supported", "2027-09-17", "BC: vCenter 9.0 EoGS 2027-09-17 (estimate)"),
    ("vcenter", "9.1.0", TODAY, None, {}, "supported", "2028-08-12", "BC: vCenter 9.1 EoGS 2028-08-12 (estimate)"),
    ("vcenter", "11.0", TODAY, None, {}, "not_covered", None, "a release the table does not know"),
    # Windows Server
    ("vsphere", "windows-server-2003", TODAY, None, {}, "out_of_support", "2015-07-14", "MS: 2003 ended 2015-07-14, no ESU"),
    ("vsphere", "windows-server-2003-r2", TODAY, None, {}, "out_of_support", "2015-07-14", "MS: 2003 R2 ended 2015-07-14"),
    ("vsphere", "windows-server-2008", TODAY, None, {}, "out_of_support", "2020-01-14", "MS: 2008 ended 2020-01-14"),
    ("azure", "windows-server-2008-r2", D("2023-06-01"), None, {}, "extended", "2024-01-09",
     "MS: 2008 R2 ESU free in Azure until 2024-01-09"),
    ("vsphere", "windows-server-2008-r2", D("2022-06-01"), None, {}, "out_of_support", "2020-01-14",
     "MS: ESU is free in Azure only; on premises it must be bought"),
    ("vsphere", "windows-server-2008-r2", D("2022-06-01"), "windows-server-esu", {}, "extended", "2023-01-10",
     "MS: 2008 R2 ESU bought on premises until 2023-01-10"),
    ("azure", "windows-server-2012", D("2025-01-01"), None, {}, "extended", "2026-10-13",
     "MS: 2012 ESU free in Azure until 2026-10-13"),
    ("azure", "windows-server-2012-r2", TODAY, None, {}, "out_of_support", "2026-10-13", "MS: 2012 R2 ESU ended 2026-10-13"),
    ("arc", "windows-server-2012-r2", D("2025-01-01"), None, ARC_ESU, "extended", "2026-10-13",
     "MS: ESU enabled by Azure Arc: licence assigned, key active"),
    ("arc", "windows-server-2012-r2", D("2025-01-01"), None, ARC_ESU_INACTIVE, "out_of_support", "2023-10-10",
     "MS: an ESU licence whose key is not active on the machine does not patch it"),
    ("azure", "windows-server-2016", TODAY, None, {}, "supported", "2027-01-12", "MS: 2016 ends 2027-01-12"),
    ("azure", "windows-server-2016", D("2027-02-01"), None, {}, "out_of_support", "2027-01-12",
     "MS: 2016 ESU is not known to be free in Azure"),
    ("arc", "windows-server-2016", D("2027-02-01"), "windows-server-esu", {}, "extended", "2030-01-08",
     "MS: 2016 ESU (up to three years) when bought"),
    ("azure", "windows-server-2019", TODAY, None, {}, "supported", "2029-01-09", "MS: 2019 ends 2029-01-09"),
    ("azure", "windows-server-2022", TODAY, None, {}, "supported", "2031-10-14", "MS: 2022 ends 2031-10-14"),
    ("azure", "windows-server-2025", TODAY, None, {}, "supported", "2034-11-14", "MS: 2025 ends 2034-11-14"),
    # Ubuntu
    ("vsphere", "ubuntu-14.04", TODAY, "ubuntu-esm", {}, "out_of_support", "2024-05-31", "CAN: 14.04 ESM ended May 2024"),
    ("vsphere", "ubuntu-16.04", TODAY, "ubuntu-esm", {}, "out_of_support", "2026-05-31", "CAN: 16.04 ESM ended May 2026"),
    ("vsphere", "ubuntu-18.04", TODAY, None, {}, "out_of_support", "2023-05-31", "CAN: 18.04 ESM not bought"),
    ("vsphere", "ubuntu-18.04", TODAY, "ubuntu-esm", {}, "extended", "2028-05-31", "CAN: 18.04 ESM until May 2028"),
    ("azure", "ubuntu-20.04", TODAY, None, {"properties": {"storageProfile": {"imageReference": {
        "publisher": "Canonical", "offer": "0001-com-ubuntu-pro-focal", "sku": "pro-20_04-lts"}}}},
     "extended", "2030-05-31", "CAN: an Ubuntu Pro image includes ESM until May 2030"),
    ("azure", "ubuntu-20.04", TODAY, None, {"properties": {"licenseType": "UBUNTU_PRO"}}, "extended", "2030-05-31",
     "MS: licenseType UBUNTU_PRO makes the VM Ubuntu Pro"),
    ("vsphere", "ubuntu-20.04", TODAY, None, {}, "out_of_support", "2025-05-31", "CAN: 20.04 standard ended May 2025"),
    ("vsphere", "ubuntu-22.04", TODAY, None, {}, "supported", "2027-05-31", "CAN: 22.04 standard until May 2027"),
    ("vsphere", "ubuntu-24.04", TODAY, None, {}, "supported", "2029-05-31", "CAN: 24.04 standard until May 2029"),
    # CentOS
    ("vsphere", "centos-6", TODAY, None, {}, "out_of_support", "2020-11-30", "CENTOS: 6 ended 2020-11-30"),
    ("vsphere", "centos-7", TODAY, None, {}, "out_of_support", "2024-06-30", "CENTOS: 7 ended 2024-06-30"),
    ("azure", "centos-8", TODAY, None, {}, "out_of_support", "2021-12-31", "CENTOS: 8 ended 2021-12-31"),
    ("vsphere", "centos-stream-9", TODAY, None, {}, "supported", "2027-05-31", "CENTOS: Stream 9 until 2027-05-31"),
    # Red Hat
    ("vsphere", "rhel-6", TODAY, "rhel-els", {}, "out_of_support", "2024-06-30", "RH: RHEL 6 ELS ended 2024-06-30"),
    ("vsphere", "rhel-7", TODAY, None, {}, "out_of_support", "2024-06-30", "RH: RHEL 7 maintenance ended 2024-06-30"),
    ("vsphere", "rhel-7", TODAY, "rhel-els", {}, "extended", "2029-05-31", "RH: RHEL 7 ELS until 2029-05-31"),
    ("azure", "rhel-8", TODAY, None, {}, "supported", "2029-05-31", "RH: RHEL 8 maintenance until 2029-05-31"),
    ("azure", "rhel-9", TODAY, None, {}, "supported", "2032-05-31", "RH: RHEL 9 maintenance until 2032-05-31"),
    # SUSE
    ("vsphere", "sles-12-sp5", TODAY, None, {}, "out_of_support", "2024-10-31", "SUSE: 12 SP5 general ended 2024-10-31"),
    ("vsphere", "sles-12-sp5", TODAY, "sles-ltss", {}, "extended", "2027-10-31", "SUSE: 12 SP5 LTSS until 2027-10-31"),
    ("azure", "sles-15-sp4", TODAY, "sles-ltss", {}, "extended", "2026-12-31", "SUSE: 15 SP4 LTSS until 2026-12-31"),
    ("azure", "sles-15-sp5", TODAY, None, {}, "out_of_support", "2024-12-31", "SUSE: 15 SP5 general ended 2024-12-31"),
    ("azure", "sles-15-sp6", D("2025-06-01"), None, {}, "supported", "2025-12-31", "SUSE: 15 SP6 general until 2025-12-31"),
    ("azure", "sles-15-sp7", TODAY, None, {}, "supported", "2031-07-31", "SUSE: 15 SP7 general until 2031-07-31"),
    ("azure", "sles-15", TODAY, None, {}, "not_covered", None, "SUSE: support is per service pack, which is unknown"),
    # Debian
    ("vsphere", "debian-9", TODAY, None, {}, "out_of_support", "2022-07-01", "DEB: 9 LTS ended 2022"),
    ("vsphere", "debian-10", TODAY, None, {}, "out_of_support", "2024-06-30", "DEB: 10 LTS ended 2024-06-30"),
    ("vsphere", "debian-11", D("2026-06-01"), None, {}, "extended", "2026-08-31", "DEB: 11 LTS (free) until 2026-08-31"),
    ("vsphere", "debian-11", TODAY, None, {}, "out_of_support", "2026-08-31", "DEB: 11 LTS ended 2026-08-31"),
    ("vsphere", "debian-12", TODAY, None, {}, "extended", "2028-06-30", "DEB: 12 security ended 2026-07-11, LTS to 2028-06-30"),
    ("vsphere", "debian-13", TODAY, None, {}, "supported", "2030-06-30",
     "DEB: 13 security until 2028-08-09 (planned), then LTS (free) until 2030-06-30"),
    # SQL Server (the SQL VM is in Azure)
    ("sql", "2008-r2", TODAY, None, {}, "out_of_support", "2023-07-11", "MS: SQL 2008 R2 ESU in Azure ended 2023-07-11"),
    ("sql", "2012", D("2024-01-01"), None, {}, "extended", "2025-07-08", "MS: SQL 2012 ESU free in Azure until 2025-07-08"),
    ("sql", "2012", TODAY, None, {}, "out_of_support", "2025-07-08", "MS: SQL 2012 ESU ended 2025-07-08"),
    ("sql", "2014", TODAY, None, {}, "extended", "2027-07-08", "MS: SQL 2014 ESU free in Azure until July 2027"),
    ("sql", "2014-sp2", TODAY, None, {}, "out_of_support", "2020-01-14", "MS: SQL 2014 SP2 support ended 2020-01-14"),
    ("sql", "2014-sp3", TODAY, None, {}, "extended", "2027-07-08", "MS: SP3 is the supported service pack of 2014"),
    ("sql", "2016", TODAY, None, {}, "out_of_support", "2026-07-14", "MS: SQL 2016 ESU is paid, also in Azure"),
    ("sql", "2016", TODAY, "sql-server-esu", {}, "extended", "2029-07-17", "MS: SQL 2016 ESU until 2029-07-17 when bought"),
    ("sql", "2016-sp2", TODAY, None, {}, "out_of_support", "2022-10-11", "MS: SQL 2016 SP2 support ended 2022-10-11"),
    ("sql", "2017", TODAY, None, {}, "supported", "2027-10-12", "MS: SQL 2017 ends 2027-10-12"),
    ("sql", "2022", TODAY, None, {}, "supported", "2033-01-11", "MS: SQL 2022 ends 2033-01-11"),
    ("sql", "2025", TODAY, None, {}, "supported", "2036-01-06", "MS: SQL 2025 ends 2036-01-06"),
    ("sql", "2000", TODAY, None, {}, "not_covered", None, "a release the table does not know"),
    # Oracle Linux, and no product at all
    ("vsphere", "oracle-linux-7", TODAY, None, {}, "out_of_support", "2024-12-31", "Oracle: 7 premier ended 2024-12-31"),
    ("arc", None, TODAY, None, {}, "not_covered", None, "an OS without a release is a blind spot"),
]


@pytest.mark.parametrize("kind, product, as_of, bought, native, status, until, citation", CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}-{c[3] or 'default'}" for c in CASES])
def test_support_case(tmp_path, kind, product, as_of, bought, native, status, until, citation):
    resource = machine(kind, product, **native)
    if kind == "azure" and "storageProfile" in str(native):
        derive_facts([resource])  # the image names the OS (and Ubuntu Pro)
        resource["facts"]["os"]["product"] = product
    support = judge(resource, as_of, {bought: BOUGHT} if bought else None, tmp_path)
    assert support["status"] == status, f"{citation}: {support.get('summary')}"
    assert support.get("supported_until") == until, citation


def test_the_table_is_large_enough():
    assert len(CASES) >= 60


def test_the_summary_says_why_a_machine_is_not_covered():
    summary = judge(machine("vsphere", "ubuntu-20.04"))["summary"]
    assert summary == ("vendor support ended 2025-05-31; Ubuntu Pro Expanded Security Maintenance runs until "
                       "2030-05-31 but covers it only if enrolled: not bought (support.extended_programmes.ubuntu-esm)")
    on_premises = judge(machine("vsphere", "windows-server-2012-r2"), D("2025-01-01"))["summary"]
    assert on_premises.endswith("free in Azure only, and this machine is not in Azure")
    estimate = judge(machine("host", "9.0.0"))
    assert estimate["unverified"] is True and "not yet confirmed by the vendor" in estimate["summary"]


# --- minimum patch levels ----------------------------------------------------------------------------

def patched(kind: str, version: str, build: str | None = None) -> dict[str, Any] | None:
    if kind == "tools":
        vm = make_resource(id="vm", name="vm", cloud="vsphere", type="VirtualMachine", source="s")
        major, minor, patch = (int(p) for p in version.split("."))
        vm["guest"] = {"toolsVersion": str(major << 10 | minor << 5 | patch)}
        resources = [vm]
        name = "tools_patch"
    elif kind == "host":
        resources = [make_resource(id="h", name="h", cloud="vsphere", type="HostSystem", source="s", native={
            "summary": {"config": {"product": {"version": version, "build": build}}}})]
        name = "patch"
    else:
        resources = [make_resource(id="v", name="v", cloud="vsphere", type="vCenter", source="s",
                                   native={"about": {"version": version, "build": build}})]
        name = "patch"
    derive_facts(resources)
    assess_support(resources, SHIPPED, TODAY)
    return resources[0]["facts"].get(name)


PATCH_CASES = [
    # one minimum per update line: 8.0 U2 is compared with 8.0 U2's fix, not 8.0 U3's
    ("host", "8.0.2", "24789317", False, "VMSA-2025-0013", "VMSA: 8.0 U2e 24789317 is fixed"),
    ("host", "8.0.2", "24585300", True, "VMSA-2025-0013",
     "VMSA: 8.0 U2d fixed VMSA-2025-0004, but VMSA-2025-0013 needs 8.0 U2e"),
    ("host", "8.0.3", "24784735", False, "VMSA-2025-0013", "VMSA: 8.0 U3f is fixed"),
    ("host", "8.0.3", "24784734", True, "VMSA-2025-0013", "VMSA: below 8.0 U3f"),
    ("host", "8.0.1", "22088125", True, "VMSA-2025-0013", "VMSA: 8.0 U1 has no fix; update to U2e or later"),
    ("host", "7.0.3", "24784741", False, "VMSA-2025-0013", "VMSA: 7.0 U3w is fixed"),
    ("host", "7.0.3", "21313628", True, "VMSA-2025-0013", "VMSA: below 7.0 U3w"),
    ("host", "7.0.2", "17630552", True, "VMSA-2025-0013", "VMSA: 7.0 U2 has no fix"),
    ("host", "9.0.2", "25595025", False, "VMSA-2026-0006", "VMSA: ESX 9.0.2.0100 is fixed"),
    ("host", "9.0.0", "24813472", True, "VMSA-2026-0006", "VMSA: ESX 9.0.0.0100 is below 9.0.2.0100"),
    ("host", "9.1.0", "25370933", False, "VMSA-2026-0006", "VMSA: ESX 9.1.0.0 is fixed"),
    ("host", "6.7.0", "17700523", None, None, "no minimum for a line out of support: not evaluated"),
    ("host", "8.0.3.0", "99999999", None, None, "a version that is not major.minor.update hides the build"),
    ("vcenter", "8.0.2", "24321653", False, "VMSA-2024-0019", "VMSA: vCenter 8.0 U2e is fixed"),
    ("vcenter", "8.0.3", "24322830", True, "VMSA-2024-0019", "VMSA: below vCenter 8.0 U3d"),
    ("vcenter", "7.0.3", "24322018", False, "VMSA-2024-0019", "VMSA: vCenter 7.0 U3t is fixed"),
    ("vcenter", "9.0.0", "24755230", True, "VMSA-2025-0016", "VMSA: vCenter 9.0 needs 9.0.1.0"),
    ("vcenter", "9.0.1", "24957454", False, "VMSA-2025-0016", "VMSA: vCenter 9.0.1.0 is fixed"),
    ("tools", "12.5.3", None, True, "VMSA-2025-0015", "VMSA: Tools 12.x needs 12.5.4"),
    ("tools", "12.5.4", None, False, "VMSA-2025-0015", "VMSA: Tools 12.5.4 is fixed"),
    ("tools", "13.0.4", None, True, "VMSA-2025-0015", "VMSA: Tools 13.x needs 13.0.5"),
    ("tools", "13.0.5", None, False, "VMSA-2025-0015", "VMSA: Tools 13.0.5 is fixed"),
    ("tools", "11.3.5", None, True, "VMSA-2025-0015", "VMSA: Tools 11.x must move to a fixed line"),
    ("tools", "14.0.0", None, None, None, "a line the table does not know: not evaluated"),
]


@pytest.mark.parametrize("kind, version, build, below, advisory, citation", PATCH_CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in PATCH_CASES])
def test_patch_case(kind, version, build, below, advisory, citation):
    fact = patched(kind, version, build)
    if below is None:
        assert fact is None, citation
    else:
        assert fact["below"] is below and fact["advisory"] == advisory and fact["source"].startswith("https://"), \
            citation


# --- the baseline itself ---------------------------------------------------------------------------

def test_every_lifecycle_row_and_minimum_cites_its_source():
    missing = []
    for name, table in SHIPPED.tables.items():
        if name.startswith("lifecycle.") or name.startswith("support.minimum_builds."):
            for key, row in table.value.items():
                source = row.get("source") if isinstance(row, dict) else None
                if not (isinstance(source, str) and source.startswith("https://")):
                    missing.append(f"{name}.{key}")
    assert not missing, f"rows without a source URL: {missing}"
    assert {"lifecycle.esxi", "lifecycle.vcenter", "lifecycle.os", "lifecycle.sql_server"} <= set(SHIPPED.tables)


def test_summaries_say_what_ended_and_what_to_do():
    assert judge(machine("sql", "2014-sp2"))["summary"] == (
        "vendor support ended 2020-01-14; later service packs of this release are supported longer: install the latest")
    assert judge(machine("azure", "windows-server-2012-r2"))["summary"].endswith(
        "Windows Server Extended Security Updates ended 2026-10-13 too")
    assert "technical guidance, no fixes, until 2027-04-02" in judge(machine("host", "7.0.3"))["summary"]


def test_a_service_pack_without_a_row_falls_to_its_own_release():
    # SQL Server 2008 R2 SP3 has no row: 2008 R2's, never 2008's
    support = judge(machine("sql", "2008-r2-sp3"))
    assert support["row"] == "2008-r2" and "2008-r2" in support["source"]


def test_a_partial_programmes_table_keeps_what_vendors_give_free(tmp_path):
    # naming only what was bought does not switch off ESU in Azure or Debian LTS
    bought = {"ubuntu-esm": "bought"}
    assert judge(machine("azure", "windows-server-2012"), D("2025-01-01"), bought, tmp_path)["status"] == "extended"
    assert judge(machine("vsphere", "debian-12"), TODAY, bought, tmp_path)["status"] == "extended"
    assert judge(machine("vsphere", "ubuntu-20.04"), TODAY, bought, tmp_path)["status"] == "extended"


def test_a_programme_no_row_names_is_refused(tmp_path):
    bad = write(tmp_path, "mine.yaml", "baselines:\n  support.extended_programmes:\n    windows_server_esu: bought\n")
    with pytest.raises(BaselineError) as error:
        load_support_tables(load_baselines([bundled_baselines_dir(), bad]))
    assert "windows_server_esu" in error.value.one_line() and "windows-server-esu" in error.value.one_line()


@pytest.mark.parametrize("table, text, message", [
    ("support.minimum_builds.esxi", '"8.0.3": "7.0.3.1"', "older than the line itself"),
    ("lifecycle.os", '"[z-a]*": {end_of_support: 2030-01-01, source: "https://example.org"}', "not a valid pattern"),
])
def test_baseline_rows_that_would_pass_everything_or_crash_are_refused(tmp_path, table, text, message):
    bad = write(tmp_path, "mine.yaml", f"baselines:\n  {table}:\n    {text}\n")
    with pytest.raises(BaselineError) as error:
        load_support_tables(load_baselines([bundled_baselines_dir(), bad]))
    assert message in error.value.one_line() and "mine.yaml" in error.value.one_line()


def test_facts_in_a_snapshot_are_not_evidence():
    # a forged verdict in the snapshot is replaced by what the native fields say
    sql = make_resource(id="q", name="q", cloud="azure", type="microsoft.sqlvirtualmachine/sqlvirtualmachines",
                        source="s", native={"properties": {"sqlImageOffer": "custom-image"}})
    sql["facts"] = {"sql_release": "2022"}
    derive_facts([sql])
    assess_support([sql], SHIPPED, TODAY)
    assert sql["facts"]["support"]["status"] == "not_covered"


def test_a_programme_switch_outside_the_known_states_names_its_file(tmp_path):
    bad = write(tmp_path, "mine.yaml", "baselines:\n  support.extended_programmes:\n    ubuntu-esm: maybe\n")
    with pytest.raises(BaselineError) as error:
        load_support_tables(load_baselines([bundled_baselines_dir(), bad]))
    assert "ubuntu-esm" in error.value.one_line() and "mine.yaml" in error.value.one_line()


def test_an_extended_lane_without_a_programme_is_refused(tmp_path):
    bad = write(tmp_path, "mine.yaml", "baselines:\n  lifecycle.os:\n    x-1: {end_of_support: 2020-01-01, "
                                        "extended: {until: 2030-01-01}, source: 'https://example.org'}\n")
    with pytest.raises(BaselineError) as error:
        load_support_tables(load_baselines([bundled_baselines_dir(), bad]))
    assert "extended needs {programme" in error.value.one_line()


def test_os_detection_paths_reach_a_verdict():
    # Arc with osSku null: osName + osVersion, or a Windows Server build on a machine that says it is a server
    linux = make_resource(id="a1", name="a1", cloud="azure", type="microsoft.hybridcompute/machines", source="s",
                          native={"properties": {"osSku": None, "osName": "ubuntu", "osVersion": "20.04", "osType": "linux"}})
    server = make_resource(id="a2", name="a2", cloud="azure", type="microsoft.hybridcompute/machines", source="s",
                           native={"properties": {"osSku": None, "osName": "windows", "osVersion": "10.0.17763.5820",
                                                  "osType": "windows", "osEdition": "ServerDatacenter"}})
    client = make_resource(id="a3", name="a3", cloud="azure", type="microsoft.hybridcompute/machines", source="s",
                           native={"properties": {"osSku": None, "osName": "windows", "osVersion": "10.0.17763.5820",
                                                  "osType": "windows"}})
    bare = make_resource(id="a4", name="a4", cloud="azure", type="microsoft.hybridcompute/machines", source="s",
                         native={"properties": {"osSku": None, "osVersion": None, "osType": None, "osEdition": "Standard",
                                                "licenseProfile": {"esuProfile": {"serverType": "Standard"}}}})
    floor = make_resource(id="v1", name="v1", cloud="vsphere", type="VirtualMachine", source="s", native={
        "config": {"guestId": "windows9Server64Guest", "guestFullName": "Microsoft Windows Server 2016 or later (64-bit)"}})
    resources = [linux, server, client, bare, floor]
    derive_facts(resources)
    assess_support(resources, SHIPPED, TODAY)
    assert linux["facts"]["os"]["product"] == "ubuntu-20.04" and linux["facts"]["support"]["status"] == "out_of_support"
    assert server["facts"]["os"]["product"] == "windows-server-2019"
    assert server["facts"]["support"]["status"] == "supported"
    # the same build on a machine that does not say it is a server may be Windows 10: a blind spot
    for unknown in (client, bare, floor):
        assert unknown["facts"]["os"]["family"] == "windows" and unknown["facts"]["os"]["product"] is None
        assert unknown["facts"]["support"]["status"] == "not_covered"


def test_a_scale_set_model_gets_its_support_from_its_image():
    vmss = make_resource(id="ss", name="ss", cloud="azure", type="microsoft.compute/virtualMachineScaleSets",
                         source="s", native={"properties": {"virtualMachineProfile": {"storageProfile": {
                             "imageReference": {"publisher": "OpenLogic", "offer": "CentOS", "sku": "7_9-gen2"}}}}})
    derive_facts([vmss])
    assess_support([vmss], SHIPPED, TODAY)
    assert vmss["facts"]["os"]["product"] == "centos-7"
    assert vmss["facts"]["support"]["status"] == "out_of_support"
