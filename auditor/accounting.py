"""Licence accounting: vSphere capacity and Azure Hybrid Benefit against what is owned.

vSphere (Broadcom KB 313548): a per-core licence (costUnit `cpuCore`, or `cpuCore:16core`
which carries its own minimum) is counted per host as every CPU package at least
`licensing.vsphere.minimum_cores_per_cpu` cores (16). Hosts on a per-core licence get
`facts.cpu.licensed_cores`, per-core licences `facts.cores_required` and `facts.hosts`. A cluster gets
`facts.drs_licensing`: the hosts whose licence lacks DRS, read from the licence's own
`feature` properties where vCenter reports them, else from its edition key
(`licensing.editions_without_drs`); hosts neither tells about are `unknown`.

Azure Hybrid Benefit against `licensing.entitlements`, what the organisation owns:

    licensing.entitlements:
      Windows_Server: {edition: datacenter, cores: 64}   # core licences with Software Assurance
      SQL_Server_Enterprise: {cores: 16}
      SQL_Server_Standard: {cores: 24}
      RHEL_BYOS: {instances: 10}                         # Red Hat Cloud Access subscriptions
      SLES_BYOS: {instances: 4}

Counting follows Microsoft's Azure Hybrid Benefit terms:
- Windows Server: a VM needs one core licence per vCPU, at least 8 (a 12-vCPU VM needs
  12); licences come in 2-core packs, so an odd count takes the next pack. A uniform scale
  set claims that for every instance of its model. Standard edition has no dual use: the
  cores licensing Windows guests on vSphere hosts (every physical core, at least 8 per CPU
  and 16 per host, again for every two Windows VMs on the host) are not usable in Azure;
  Datacenter may be used in both.
- SQL Server (`sqlServerLicenseType: AHUB` on a SQL VM): one core licence of the edition per
  vCPU, at least 4 per VM. Standard claims draw on Standard licences first, then on
  Enterprise licences at one Enterprise core per four Standard vCPUs; `DR` (the free
  passive replica) and PAYG claim nothing.
- RHEL_BYOS / SLES_BYOS: one subscription per VM.

vCPUs are the size's real count (auditor/vm_sizes.py); a claim whose count cannot be known
is `verifiable: false`, and every claim after it in the same pool is judged only if it is
uncovered even when the unknown ones take the least they can. Claims are covered in order
of resource id, so findings are stable. Results go to `facts.hybrid_benefit` (Windows and
Linux claims on VMs and scale sets, pay-as-you-go Windows VMs) and `facts.sql_benefit`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from .baselines import Baselines
from .errors import BaselineError
from .facts import nested

WINDOWS_MINIMUM = 8    # core licences per Windows Server VM
WINDOWS_PACK = 2       # Windows Server core licences are sold in 2-core packs
HOST_MINIMUM = 16      # ... and on premises at least 16 per host, 8 per CPU
SQL_MINIMUM = 4        # core licences per SQL Server VM
ENTERPRISE_FOR_STANDARD = 4  # Standard vCPUs one Enterprise core licence covers
UNITS = {"Windows_Server": "cores", "SQL_Server_Enterprise": "cores", "SQL_Server_Standard": "cores",
         "RHEL_BYOS": "instances", "SLES_BYOS": "instances"}


def windows_cores(vcpus: int) -> int:
    """Windows Server core licences one VM needs in Azure: one per vCPU, at least 8, in
    whole 2-core packs."""
    return max(WINDOWS_MINIMUM, math.ceil(vcpus / WINDOWS_PACK) * WINDOWS_PACK)


def sql_cores(vcpus: int) -> int:
    """SQL Server core licences one VM needs in Azure: one per vCPU, at least 4."""
    return max(SQL_MINIMUM, vcpus)


HostKey = tuple[str, str]  # (vCenter, host moref)


def host_standard_cores(packages: int, cores_per_package: int, windows_vms: int) -> int:
    """Windows Server Standard core licences a host needs for its Windows guests."""
    if windows_vms <= 0:
        return 0
    host_cores = max(HOST_MINIMUM, packages * max(WINDOWS_MINIMUM, cores_per_package))
    return host_cores * math.ceil(windows_vms / 2)


def load_entitlements(baselines: Baselines) -> dict[str, dict[str, Any]]:
    """The declared entitlements, checked; empty when the table is not loaded."""
    table = baselines.tables.get("licensing.entitlements")
    if table is None:
        return {}
    if not isinstance(table.value, dict):
        raise BaselineError("licensing.entitlements must map licence types to what is owned",
                            where=table.file, line=table.line)
    entitlements = {}
    for licence, spec in table.value.items():
        unit = UNITS.get(licence)
        if unit is None:
            raise BaselineError(f"licensing.entitlements: unknown licence type {licence!r} "
                                f"(known: {', '.join(UNITS)})", where=table.file, line=table.line)
        amount = spec.get(unit) if isinstance(spec, dict) else None
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise BaselineError(f"licensing.entitlements.{licence} needs a whole number of {unit}",
                                where=table.file, line=table.line)
        edition = str(spec.get("edition", "datacenter")).lower()
        if licence == "Windows_Server" and edition not in ("datacenter", "standard"):
            raise BaselineError("licensing.entitlements.Windows_Server.edition must be datacenter or standard",
                                where=table.file, line=table.line)
        if licence == "Windows_Server" and amount % WINDOWS_PACK:
            raise BaselineError(f"licensing.entitlements.Windows_Server: {amount} cores is not a whole number "
                                "of 2-core packs", where=table.file, line=table.line)
        entitlements[licence] = {"amount": amount, "edition": edition}
    return entitlements


# --- vSphere --------------------------------------------------------------------------------

@dataclass(frozen=True)
class VsphereLicensing:
    """The vSphere licensing tables, checked."""

    minimum_per_cpu: int
    minimum_per_licence: int
    with_drs: frozenset[str]
    without_drs: frozenset[str]


def load_vsphere_licensing(baselines: Baselines) -> VsphereLicensing:
    """licensing.vsphere and the DRS edition lists, checked when the rules load: a bad
    value is a BaselineError naming its file, before anything is collected or written."""
    table = baselines.tables.get("licensing.vsphere")
    values: dict[str, int] = {"minimum_cores_per_cpu": 16, "minimum_cores_per_licence": 0}
    if table is not None:
        if not isinstance(table.value, dict):
            raise BaselineError("licensing.vsphere must be a mapping (minimum_cores_per_cpu, "
                                "minimum_cores_per_licence, source)", where=table.file, line=table.line)
        for key, value in table.value.items():
            if key == "source":
                continue
            if key not in values:
                raise BaselineError(f"licensing.vsphere: unknown key {key!r} (known: {', '.join(values)}, source)",
                                    where=table.file, line=table.line)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 4096:
                raise BaselineError(f"licensing.vsphere.{key} must be a whole number of cores",
                                    where=table.file, line=table.line)
            values[key] = value
    return VsphereLicensing(values["minimum_cores_per_cpu"], values["minimum_cores_per_licence"],
                            _editions(baselines, "licensing.editions_with_drs"),
                            _editions(baselines, "licensing.editions_without_drs"))


def per_core_minimum(cost_unit: Any, default: int) -> int | None:
    """The per-CPU core minimum of a per-core licence (`cpuCore` -> default,
    `cpuCore:16core` -> 16); None when the licence is not counted per core."""
    if not isinstance(cost_unit, str) or not cost_unit.startswith("cpuCore"):
        return None
    stated = re.fullmatch(r"cpuCore:(\d{1,4})core", cost_unit)
    # a stated minimum outside what any CPU has is not believed
    return int(stated.group(1)) if stated and 1 <= int(stated.group(1)) <= 512 else default


def account_vsphere_licences(resources: list[dict[str, Any]], baselines: Baselines) -> None:
    """Write the per-core counts on hosts and licences and the DRS licensing of clusters."""
    tables = load_vsphere_licensing(baselines)
    minimum, per_licence = tables.minimum_per_cpu, tables.minimum_per_licence
    with_drs, without_drs = tables.with_drs, tables.without_drs
    licences = {(r["source"], str(r.get("licenseKey"))): r for r in resources
                if r["cloud"] == "vsphere" and r["type"] == "License"}
    for licence in licences.values():  # re-derived from the hosts on every scan
        facts = licence.setdefault("facts", {})
        for key in ("cores_required", "hosts", "minimum_per_cpu"):
            facts.pop(key, None)
        if (floor := per_core_minimum(licence.get("costUnit"), minimum)) is not None:
            facts.update(cores_required=per_licence if licence.get("used") else 0, hosts=0,
                         minimum_per_cpu=floor)
    drs_by_host: dict[tuple[str, str], bool | None] = {}
    sums: dict[tuple[str, str], int] = {}  # licensed cores of each per-core licence's hosts
    hosts_by_parent: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for host in resources:
        if host["cloud"] != "vsphere" or host["type"] != "HostSystem":
            continue
        facts = host.get("facts") or {}
        cpu = facts.get("cpu")
        assigned = host.get("assignedLicense") if isinstance(host.get("assignedLicense"), dict) else None
        licence = licences.get((host["source"], str(assigned.get("licenseKey")))) if assigned else None
        floor = per_core_minimum((licence or assigned or {}).get("costUnit"), minimum)
        if cpu:
            cpu.pop("licensed_cores", None)
        if cpu and floor is not None:  # a per-core licence: every CPU counts at least `floor` cores
            cpu["licensed_cores"] = cpu["packages"] * max(cpu["cores_per_package"], floor)
            if licence is not None and "cores_required" in licence["facts"]:
                key = (licence["source"], str(licence.get("licenseKey")))
                sums[key] = sums.get(key, 0) + cpu["licensed_cores"]
                licence["facts"]["hosts"] += 1
                licence["facts"]["cores_required"] = max(sums[key], per_licence)
        if isinstance(host.get("moref"), str):
            drs_by_host[(host["source"], host["moref"])] = _licence_has_drs(
                assigned, licence, with_drs, without_drs)
        if isinstance(host.get("parent"), str):
            hosts_by_parent.setdefault((host["source"], host["parent"]), []).append(host)
    for cluster in resources:
        if cluster["cloud"] == "vsphere" and cluster["type"] == "ClusterComputeResource":
            _cluster_drs(cluster, hosts_by_parent.get((cluster["source"], str(cluster.get("moref"))), []),
                         drs_by_host)


def _editions(baselines: Baselines, name: str) -> frozenset[str]:
    table = baselines.tables.get(name)
    if table is None:
        return frozenset()
    if not isinstance(table.value, list) or not all(isinstance(edition, str) for edition in table.value):
        raise BaselineError(f"{name} must be a list of licence edition keys", where=table.file, line=table.line)
    return frozenset(table.value)


def _licence_has_drs(assigned: dict[str, Any] | None, licence: dict[str, Any] | None,
                     with_drs: frozenset[str], without_drs: frozenset[str]) -> bool | None:
    """Whether a host's licence includes DRS: its `feature` properties decide when vCenter
    reports them (an `addon` is bought separately and is not the edition's); else its
    edition key, by the two baseline lists; None when neither tells."""
    for info in (assigned, licence):
        if not isinstance(info, dict):
            continue
        properties = info.get("properties")
        features = [p.get("value") for p in properties if isinstance(p, dict) and p.get("key") == "feature"] \
            if isinstance(properties, list) else []
        feature_keys = {f.get("key") for f in features if isinstance(f, dict) and isinstance(f.get("key"), str)}
        if feature_keys:
            return "drs" in feature_keys
    edition = (assigned or licence or {}).get("editionKey")
    if not isinstance(edition, str):
        return None
    if edition in without_drs:
        return False
    return True if edition in with_drs else None


def _cluster_drs(cluster: dict[str, Any], hosts: list[dict[str, Any]],
                 drs_by_host: dict[tuple[str, str], bool | None]) -> None:
    without, unknown = [], []
    for host in hosts:
        has = drs_by_host.get((host["source"], str(host.get("moref"))))
        if has is False:
            without.append(host["name"])
        elif has is None:
            unknown.append(host["name"])
    licensing: dict[str, Any] = {"unknown": sorted(unknown)}
    # "no host lacks DRS" is a verdict only when every host's licence is known
    if without or not unknown:
        licensing["hosts_without_drs"] = sorted(without)
    cluster.setdefault("facts", {})["drs_licensing"] = licensing


# --- Azure Hybrid Benefit ------------------------------------------------------------------

def account_hybrid_benefit(resources: list[dict[str, Any]], baselines: Baselines,
                           on_premises: int | None = None, guests: dict[HostKey, int] | None = None) -> None:
    """Write facts.hybrid_benefit and facts.sql_benefit (and facts.windows_server on vSphere
    hosts). Nothing is counted until the organisation declares licensing.entitlements:
    without it every claim would look unlicensed. `on_premises` is the Windows Server
    Standard cores vSphere hosts take, when the vSphere resources are not among `resources`
    (a sharded scan); by default they are counted here. `guests`: each host's Windows guests
    (see `windows_guests`), when its VMs are not among `resources` (a vCenter in parts)."""
    for resource in resources:
        facts = resource.get("facts")
        if isinstance(facts, dict):
            facts.pop("hybrid_benefit", None)
            facts.pop("sql_benefit", None)
    if "licensing.entitlements" not in baselines.tables:
        return
    entitlements = load_entitlements(baselines)
    counted_here = _standard_on_premises(resources, guests)
    on_premises = counted_here if on_premises is None else on_premises
    claimants = sorted((r for r in resources if r["cloud"] == "azure" and r["type"] in (
        "microsoft.compute/virtualmachines", "microsoft.compute/virtualmachinescalesets")),
        key=lambda r: r["id"].lower())
    claims: dict[str, list[tuple[dict[str, Any], int | None, int]]] = {}
    payg: list[dict[str, Any]] = []
    for resource in claimants:
        facts = resource.setdefault("facts", {})
        scale_set = resource["type"] == "microsoft.compute/virtualmachinescalesets"
        licence = nested(resource, "properties", "virtualMachineProfile", "licenseType") if scale_set \
            else nested(resource, "properties", "licenseType")
        if licence is not None and not isinstance(licence, str):
            continue  # not a licence type Azure would accept
        instances = _instances(resource) if scale_set else 1
        if instances == 0:
            continue  # a flexible scale set's instances are VMs of their own, counted as such
        # Windows Server is priced on all the size's vCPUs, constrained or not
        vcpus = facts.get("vcpus_total")
        if licence in ("Windows_Server", "RHEL_BYOS", "SLES_BYOS"):
            if _mismatched(resource, licence):
                # a claim for another OS (AZ-LIC-002/003) licenses nothing: it takes no entitlement
                facts["hybrid_benefit"] = {"licence": licence, "declared": licence in entitlements,
                                           "mismatched": True}
                continue
            each = (windows_cores(vcpus) if vcpus else None) if licence == "Windows_Server" else 1
            claims.setdefault(licence, []).append((resource, None if each is None or instances is None
                                                   else each * instances, instances or 0))
        elif not scale_set and _os_family(facts) == "windows" and licence in (None, "", "None"):
            payg.append(resource)
    unused: dict[str, int] = {}
    for licence, pool in claims.items():
        declared = entitlements.get(licence)
        usable = _usable(licence, declared, on_premises)
        unused[licence] = _cover(pool, licence, declared, usable, on_premises, "hybrid_benefit")
    windows = entitlements.get("Windows_Server")
    if windows is not None and "Windows_Server" not in unused:
        unused["Windows_Server"] = _usable("Windows_Server", windows, on_premises)
    # pay-as-you-go VMs in id order, each taking from what is left, so that two VMs are never
    # both told that the same unused cores would cover them
    left = unused.get("Windows_Server", 0)
    unknown_before = False
    for vm in payg:
        vcpus = vm["facts"].get("vcpus_total")
        count = windows_cores(vcpus) if vcpus else None
        benefit: dict[str, Any] = {"licence": "Windows_Server", "payg": True, "counted": count, "unused": left}
        if count is None:
            unknown_before = True
        elif windows is not None and count <= left:
            benefit["eligible"] = True
            left -= count
        elif not unknown_before or windows is None:
            benefit["eligible"] = False
        vm["facts"]["hybrid_benefit"] = benefit
    _account_sql(resources, entitlements)


def _os_family(facts: dict[str, Any]) -> Any:
    os_fact = facts.get("os")
    return os_fact.get("family") if isinstance(os_fact, dict) else None


def _mismatched(resource: dict[str, Any], licence: str) -> bool:
    """Whether a claim is for an OS the machine does not run, where the OS is known."""
    if licence == "Windows_Server":
        os_type = nested(resource, "properties", "storageProfile", "osDisk", "osType") or nested(
            resource, "properties", "virtualMachineProfile", "storageProfile", "osDisk", "osType")
        return (isinstance(os_type, str) and os_type.lower() == "linux") or _os_family(resource["facts"]) == "linux"
    os_fact = resource["facts"].get("os")
    product = os_fact.get("product") if isinstance(os_fact, dict) else None
    prefix = "rhel-" if licence == "RHEL_BYOS" else "sles-"
    return isinstance(product, str) and not product.startswith(prefix)


def _instances(scale_set: dict[str, Any]) -> int | None:
    """Instances a scale set's model claims for: its capacity in uniform orchestration, 0 in
    flexible (each instance is a VM resource); None when the capacity is not a count."""
    if str(nested(scale_set, "properties", "orchestrationMode") or "Uniform").lower() == "flexible":
        return 0
    capacity = nested(scale_set, "sku", "capacity")
    # Azure caps a scale set at 1,000 instances; anything beyond is not a count
    return capacity if isinstance(capacity, int) and not isinstance(capacity, bool) and 0 <= capacity <= 1000 \
        else None


def _usable(licence: str, declared: dict[str, Any] | None, on_premises: int) -> int:
    """What of an entitlement Azure claims may use: all of it, less, for Windows Server
    Standard (no dual use), the cores that license Windows guests on vSphere."""
    if declared is None:
        return 0
    if licence == "Windows_Server" and declared["edition"] == "standard":
        return max(0, declared["amount"] - on_premises)
    return declared["amount"]


def _cover(pool: list[tuple[dict[str, Any], int | None, int]], licence: str, declared: dict[str, Any] | None,
           usable: int, on_premises: int, fact: str) -> int:
    """Cover the claims of one pool in order; returns what is left unused. A claim of
    unknown size is not judged, and for the claims after it `covered` is set only when the
    verdict holds whatever the unknown claims take (at least the per-VM minimum)."""
    units = UNITS[licence]
    floor = WINDOWS_MINIMUM if licence == "Windows_Server" else 1
    known_total = sum(count for _, count, _ in pool if count is not None)
    unknown = sum(1 for _, count, _ in pool if count is None)
    used = 0  # by the covered claims, and by the unknown ones at their least
    unbounded = False  # an unknown claim came before: "covered" is no longer certain
    for resource, count, instances in pool:
        benefit: dict[str, Any] = {
            "licence": licence, "unit": units[:-1] if count == 1 else units, "counted": count,
            "declared": declared is not None,
            "entitled": declared["amount"] if declared else 0, "usable": usable,
            "claimed_total": known_total, "unknown_claims": unknown, "verifiable": count is not None,
            "on_premises": on_premises if licence == "Windows_Server" and declared
            and declared["edition"] == "standard" else 0}
        if resource["type"] == "microsoft.compute/virtualmachinescalesets":
            benefit["instances"] = instances
        if count is None:
            used += floor
            unbounded = True
        elif declared is None:
            benefit["covered"] = False
        elif used + count > usable:
            benefit["covered"] = False  # uncovered even if the unknown claims before took their least
        elif not unbounded:
            benefit["covered"] = True
            used += count
        else:
            used += count  # covered only if the unknown claims before it are small: not judged
        resource["facts"][fact] = benefit
    return max(0, usable - used)


def _account_sql(resources: list[dict[str, Any]], entitlements: dict[str, dict[str, Any]]) -> None:
    """SQL Server Hybrid Benefit: AHUB claims of SQL VMs against the edition's core licences."""
    vms = {r["id"].lower(): r for r in resources if r["cloud"] == "azure"
           and r["type"] == "microsoft.compute/virtualmachines"}
    claims: dict[str, list[tuple[dict[str, Any], int | None]]] = {"Enterprise": [], "Standard": []}
    for sql_vm in sorted((r for r in resources if r["cloud"] == "azure"
                          and r["type"] == "microsoft.sqlvirtualmachine/sqlvirtualmachines"),
                         key=lambda r: r["id"].lower()):
        if nested(sql_vm, "properties", "sqlServerLicenseType") != "AHUB":
            continue
        edition = str(nested(sql_vm, "properties", "sqlImageSku") or "").capitalize()
        if edition not in claims:
            continue  # free editions (AZ-LIC-001) and Web cannot use the benefit
        vm = vms.get(str(nested(sql_vm, "properties", "virtualMachineResourceId") or "").lower())
        vcpus = (vm or {}).get("facts", {}).get("vcpus") if vm else None
        claims[edition].append((sql_vm, sql_cores(vcpus) if vcpus else None))
    enterprise = entitlements.get("SQL_Server_Enterprise", {}).get("amount", 0)
    standard = entitlements.get("SQL_Server_Standard", {}).get("amount", 0)
    declared = {"Enterprise": "SQL_Server_Enterprise" in entitlements,
                "Standard": "SQL_Server_Standard" in entitlements or "SQL_Server_Enterprise" in entitlements}
    left = {"Enterprise": enterprise, "Standard": standard}
    for edition in ("Enterprise", "Standard"):
        unbounded = False
        for sql_vm, count in claims[edition]:
            benefit: dict[str, Any] = {"edition": edition, "counted": count, "unit": "cores",
                                       "declared": declared[edition], "verifiable": count is not None,
                                       "enterprise_cores": enterprise, "standard_cores": standard,
                                       # what the claims before this one left
                                       "enterprise_left": left["Enterprise"], "standard_left": left["Standard"]}
            if count is None:
                unbounded = True
                left[edition] = max(0, left[edition] - SQL_MINIMUM)
            else:
                covered = _take(left, edition, count)
                if not covered or not unbounded:
                    benefit["covered"] = covered
            sql_vm.setdefault("facts", {})["sql_benefit"] = benefit


def _take(left: dict[str, int], edition: str, count: int) -> bool:
    """Take `count` core licences for a claim of `edition` from what is left: its own
    edition first, then Enterprise for Standard at four Standard vCPUs per Enterprise core."""
    own = min(left[edition], count)
    rest = count - own
    if edition == "Standard" and rest:
        needed = math.ceil(rest / ENTERPRISE_FOR_STANDARD)
        if needed > left["Enterprise"]:
            return False
        left["Enterprise"] -= needed
    elif rest:
        return False
    left[edition] -= own
    return True


def needs_on_premises(baselines: Baselines) -> bool:
    """Whether Azure's Windows Server claims depend on vSphere's guests: a Standard
    entitlement has no dual use, so cores licensing guests on premises are not usable."""
    if "licensing.entitlements" not in baselines.tables:
        return False
    windows = load_entitlements(baselines).get("Windows_Server")
    return windows is not None and windows["edition"] == "standard"


def windows_guests(resources: list[dict[str, Any]]) -> dict[HostKey, int]:
    """How many Windows guests these resources' vSphere VMs put on each host."""
    guests: dict[HostKey, int] = {}
    for vm in resources:
        if vm["cloud"] == "vsphere" and vm["type"] == "VirtualMachine" and \
                _os_family(vm.get("facts") or {}) == "windows":
            runtime = vm.get("runtime")
            host = runtime.get("host") if isinstance(runtime, dict) else None
            if isinstance(host, str):
                key = (vm["source"], host)
                guests[key] = guests.get(key, 0) + 1
    return guests


def host_cpus(resources: list[dict[str, Any]]) -> dict[HostKey, tuple[int, int]]:
    """(sockets, cores per socket) of these resources' vSphere hosts whose CPUs are known."""
    cpus: dict[HostKey, tuple[int, int]] = {}
    for host in resources:
        if host["cloud"] == "vsphere" and host["type"] == "HostSystem":
            cpu = (host.get("facts") or {}).get("cpu")
            if cpu:
                cpus[(host["source"], str(host.get("moref")))] = (cpu["packages"], cpu["cores_per_package"])
    return cpus


def standard_cores(cpus: dict[HostKey, tuple[int, int]], guests: dict[HostKey, int]) -> int:
    """The Windows Server Standard core licences vSphere hosts need for their Windows guests:
    a sharded scan sums `windows_guests` over the parts of a vCenter before it counts."""
    return sum(host_standard_cores(packages, per_package, guests[key])
               for key, (packages, per_package) in cpus.items() if guests.get(key))


def _standard_on_premises(resources: list[dict[str, Any]], guests: dict[HostKey, int] | None = None) -> int:
    """Core licences that Windows Server guests (of these resources' VMs, or `guests`) take
    on vSphere hosts (Standard counting), each host's written to its facts.windows_server."""
    guests = windows_guests(resources) if guests is None else guests
    cpus = host_cpus(resources)
    for host in resources:
        if host["cloud"] != "vsphere" or host["type"] != "HostSystem":
            continue
        (host.get("facts") or {}).pop("windows_server", None)
        key = (host["source"], str(host.get("moref")))
        if key in cpus and guests.get(key):
            host["facts"]["windows_server"] = {"vms": guests[key],
                                               "standard_cores": host_standard_cores(*cpus[key], guests[key])}
    return standard_cores(cpus, guests)

