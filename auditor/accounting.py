"""Azure Hybrid Benefit accounting against `licensing.entitlements`.

The baseline declares what the organisation owns, per licence type Azure knows:

    licensing.entitlements:
      Windows_Server: {edition: datacenter, cores: 64}   # core licences with Software Assurance
      RHEL_BYOS: {instances: 10}                         # Red Hat Cloud Access subscriptions
      SLES_BYOS: {instances: 4}

Counting follows Microsoft's rules for the benefit: a Windows Server VM counts its vCPUs
rounded up to 8-core steps, at least 8; core licences are usable in whole sets of 16.
Standard edition has no dual-use right: cores that license vSphere hosts running Windows
Server guests (every physical core, at least 8 per CPU and 16 per host, again for every
two Windows VMs on the host) are not available in Azure. Datacenter may be used in both.
BYOS types count one instance per VM.

Claims are covered in order of resource id (deterministic, so findings are stable), and
every Azure VM involved gets `facts.hybrid_benefit`:

- a claim: {licence, counted, unit, declared, entitled, usable, claimed_total, covered};
- a pay-as-you-go Windows VM: {licence, payg: true, counted, unused, eligible}, where
  `eligible` says the entitlement left unused by the claims would cover it.
"""

from __future__ import annotations

import math
from typing import Any

from .baselines import Baselines
from .errors import BaselineError

CORE_STEP = 8  # a Windows Server VM is licensed in 8-core steps, at least one
CORE_SET = 16  # core licences count in sets of 16
UNITS = {"Windows_Server": "cores", "RHEL_BYOS": "instances", "SLES_BYOS": "instances"}


def windows_cores(vcpus: int | None) -> int:
    """Core licences one Windows Server VM needs in Azure."""
    return max(CORE_STEP, math.ceil((vcpus or 0) / CORE_STEP) * CORE_STEP)


def host_standard_cores(packages: int, cores_per_package: int, windows_vms: int) -> int:
    """Windows Server Standard core licences a host needs for its Windows guests."""
    if windows_vms <= 0:
        return 0
    host_cores = max(CORE_SET, packages * max(CORE_STEP, cores_per_package))
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
        entitlements[licence] = {"amount": amount, "edition": edition}
    return entitlements


def account_hybrid_benefit(resources: list[dict[str, Any]], baselines: Baselines) -> None:
    """Write facts.hybrid_benefit on Azure VMs (and facts.windows_server on vSphere hosts).
    Nothing is counted until the organisation declares licensing.entitlements: without it
    every claim would look unlicensed."""
    if "licensing.entitlements" not in baselines.tables:
        return
    entitlements = load_entitlements(baselines)
    on_premises = _standard_on_premises(resources)
    vms = sorted((r for r in resources if r["cloud"] == "azure" and r["type"] == "microsoft.compute/virtualmachines"),
                 key=lambda r: r["id"].lower())
    claims: dict[str, list[dict[str, Any]]] = {}
    payg: list[dict[str, Any]] = []
    for vm in vms:
        facts = vm.setdefault("facts", {})
        facts.pop("hybrid_benefit", None)
        properties = vm.get("properties")
        licence = properties.get("licenseType") if isinstance(properties, dict) else None
        if not isinstance(licence, str) and licence is not None:
            continue  # not a licence type Azure would accept
        if licence in UNITS:
            claims.setdefault(licence, []).append(vm)
        elif (facts.get("os") or {}).get("family") == "windows" and licence in (None, "", "None"):
            payg.append(vm)
    unused: dict[str, int] = {}
    for licence, claimants in claims.items():
        unit = UNITS[licence]
        declared = entitlements.get(licence)
        entitled = declared["amount"] if declared else 0
        usable = _usable_windows_cores(declared, on_premises) if licence == "Windows_Server" and declared \
            else entitled
        counted = [windows_cores(vm["facts"].get("vcpus")) if unit == "cores" else 1 for vm in claimants]
        total = sum(counted)
        used = 0
        for vm, count in zip(claimants, counted, strict=True):
            covered = declared is not None and used + count <= usable
            if covered:
                used += count
            vm["facts"]["hybrid_benefit"] = {
                "licence": licence, "counted": count, "unit": unit, "declared": declared is not None,
                "entitled": entitled, "usable": usable, "claimed_total": total, "covered": covered,
                "on_premises": on_premises if licence == "Windows_Server" and declared
                and declared["edition"] == "standard" else 0}
        unused[licence] = usable - used
    windows = entitlements.get("Windows_Server")
    if windows is not None and "Windows_Server" not in unused:
        unused["Windows_Server"] = _usable_windows_cores(windows, on_premises)
    for vm in payg:
        count = windows_cores(vm["facts"].get("vcpus"))
        left = unused.get("Windows_Server", 0)
        vm["facts"]["hybrid_benefit"] = {"licence": "Windows_Server", "payg": True, "counted": count,
                                         "unused": left, "eligible": windows is not None and count <= left}


def _usable_windows_cores(declared: dict[str, Any], on_premises: int) -> int:
    """Windows Server cores usable in Azure: whole 16-core sets, less what Standard edition
    already licenses on premises (it has no dual use)."""
    usable = declared["amount"] // CORE_SET * CORE_SET
    return max(0, usable - on_premises) if declared["edition"] == "standard" else usable


def _standard_on_premises(resources: list[dict[str, Any]]) -> int:
    """Core licences that Windows Server guests take on vSphere hosts (Standard counting)."""
    windows_per_host: dict[tuple[str, str], int] = {}
    for vm in resources:
        windows = ((vm.get("facts") or {}).get("os") or {}).get("family") == "windows"
        if vm["cloud"] == "vsphere" and vm["type"] == "VirtualMachine" and windows:
            runtime = vm.get("runtime")
            host = runtime.get("host") if isinstance(runtime, dict) else None
            if isinstance(host, str):
                key = (vm["source"], host)
                windows_per_host[key] = windows_per_host.get(key, 0) + 1
    total = 0
    for host in resources:
        if host["cloud"] != "vsphere" or host["type"] != "HostSystem":
            continue
        cpu = (host.get("facts") or {}).get("cpu")
        count = windows_per_host.get((host["source"], str(host.get("moref"))), 0)
        if cpu and count:
            cores = host_standard_cores(cpu["packages"], cpu["cores_per_package"], count)
            host["facts"]["windows_server"] = {"vms": count, "standard_cores": cores}
            total += cores
    return total
