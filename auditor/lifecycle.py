"""Support status: one verdict per machine, host, vCenter or SQL Server, decided here.

Every support rule reads what this stage writes, so that no two rules can disagree about
the same machine (one saying "out of support", another "covered by ESM"):

- `facts.support` on vSphere VMs, Azure VMs and scale sets, Arc-enabled servers (their
  operating system, `lifecycle.os`), ESXi hosts (`lifecycle.esxi`), vCenters
  (`lifecycle.vcenter`) and SQL Server VMs (`lifecycle.sql_server`):

      {product, table, row, status, end_of_support, supported_until, extended, source, summary}

  `status` is `supported`, `extended` (past general support, still fixed through an
  extended lane this machine is enrolled in), `out_of_support`, or `not_covered` (the
  product is unknown or the table has no row for it: a blind spot, never a pass).
  `supported_until` is the last day this machine receives security fixes.
- `facts.patch` on hosts and vCenters and `facts.tools_patch` on VMs: the minimum build of
  the release line (`support.minimum_builds.*`) with its advisory, and whether the
  observed version is below it.

Extended lanes (Windows Server and SQL Server ESU, Ubuntu Pro ESM, RHEL ELS, SLES LTSS,
Debian LTS) cover a machine only when `support.extended_programmes` says the programme is
`bought` or `free`, or `free-on-azure` and the machine runs in Azure, or when the machine
itself shows enrolment (an Arc ESU licence with an active key, an Ubuntu Pro image or
licence type). Nothing is assumed bought.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from .baselines import (
    EXTENDED_PROGRAMME_STATES,
    Baselines,
    LifecycleRow,
    LifecycleTable,
    MinimumTable,
    compare_versions,
    parse_version,
)
from .errors import BaselineError
from .facts import nested

PROGRAMMES = "support.extended_programmes"
_SERVICE_PACK = re.compile(r"-sp[0-9]+$")

# The display names of the programmes, for summaries a person reads.
PROGRAMME_NAMES = {
    "windows-server-esu": "Windows Server Extended Security Updates",
    "sql-server-esu": "SQL Server Extended Security Updates",
    "ubuntu-esm": "Ubuntu Pro Expanded Security Maintenance",
    "rhel-els": "Red Hat Extended Life Cycle Support",
    "sles-ltss": "SUSE Long Term Service Pack Support",
    "debian-lts": "Debian LTS",
    "oracle-linux-extended": "Oracle Linux Extended Support",
}

# Enrolment the vendors give without a purchase: Microsoft's ESU for machines in Azure (on
# the rows with until_on_azure), Debian LTS for everyone. Every other lane is not bought
# until support.extended_programmes says so.
VENDOR_DEFAULTS = {"windows-server-esu": "free-on-azure", "sql-server-esu": "free-on-azure", "debian-lts": "free"}

_MACHINES = {
    ("vsphere", "VirtualMachine"): False,  # value: whether the machine runs in Azure
    ("azure", "microsoft.compute/virtualmachines"): True,
    ("azure", "microsoft.compute/virtualmachinescalesets"): True,
    ("azure", "microsoft.hybridcompute/machines"): False,
}


_JUDGED = {*_MACHINES, ("vsphere", "HostSystem"), ("vsphere", "vCenter"),
           ("azure", "microsoft.sqlvirtualmachine/sqlvirtualmachines")}


@dataclass
class SupportTables:
    """The tables this stage reads, checked once per scan."""

    lifecycle: dict[str, LifecycleTable]
    programmes: dict[str, str]
    minimums: dict[str, MinimumTable]


def load_support_tables(baselines: Baselines) -> SupportTables:
    """Compile the lifecycle, programme and minimum tables; a malformed one is a
    BaselineError naming its file, raised before any scan starts."""
    lifecycle = {name: LifecycleTable(baselines.tables[name])
                 for name in ("lifecycle.os", "lifecycle.esxi", "lifecycle.vcenter", "lifecycle.sql_server")
                 if name in baselines.tables}
    # what the vendors give without a purchase holds unless a table says otherwise, so a
    # file that names only the programmes it bought does not switch the free ones off
    programmes: dict[str, str] = dict(VENDOR_DEFAULTS)
    known = {row.extended.programme for table in lifecycle.values() for row in table.rows.values()
             if row.extended is not None} | set(PROGRAMME_NAMES)
    table = baselines.tables.get(PROGRAMMES)
    if table is not None:
        if not isinstance(table.value, dict):
            raise BaselineError(f"{PROGRAMMES} must map programme names to "
                                f"{' / '.join(EXTENDED_PROGRAMME_STATES)}", where=table.file, line=table.line)
        for programme, state in table.value.items():
            if state not in EXTENDED_PROGRAMME_STATES:
                raise BaselineError(f"{PROGRAMMES}.{programme}: {state!r} is not one of "
                                    f"{', '.join(EXTENDED_PROGRAMME_STATES)}", where=table.file, line=table.line)
            if programme not in known:  # a typo would leave the real programme "not bought"
                raise BaselineError(f"{PROGRAMMES}: no lifecycle row has the programme {programme!r} "
                                    f"(known: {', '.join(sorted(known))})", where=table.file, line=table.line)
            programmes[str(programme)] = state
    minimums = {name: MinimumTable(baselines.tables[f"support.minimum_builds.{name}"])
                for name in ("esxi", "vcenter", "vmware_tools")
                if f"support.minimum_builds.{name}" in baselines.tables}
    return SupportTables(lifecycle, programmes, minimums)


def assess_support(resources: list[dict[str, Any]], baselines: Baselines, as_of: date) -> None:
    """Write facts.support and the patch-level facts on every resource that has a product
    with a lifecycle; idempotent, and judged at `as_of` (the scan date)."""
    tables = load_support_tables(baselines)
    for resource in resources:
        key = (resource["cloud"], resource["type"])
        if key not in _JUDGED:
            continue
        facts = resource.setdefault("facts", {})
        if not isinstance(facts, dict):
            continue
        facts.pop("support", None)
        facts.pop("patch", None)
        facts.pop("tools_patch", None)
        if key in _MACHINES:
            os_fact = facts.get("os")
            if isinstance(os_fact, dict):
                # a VM of an Azure VMware Solution private cloud runs in Azure (auditor/avs.py)
                in_azure = _MACHINES[key] or isinstance(facts.get("avs"), dict)
                _judge(resource, "lifecycle.os", os_fact.get("product"), tables, as_of, on_azure=in_azure)
            if key == ("vsphere", "VirtualMachine"):
                _patch(facts, "tools_patch", facts.get("tools_version"), tables.minimums.get("vmware_tools"))
        elif key == ("vsphere", "HostSystem"):
            version = _text(nested(resource, "summary", "config", "product", "version"))
            if version is not None:
                _judge(resource, "lifecycle.esxi", version, tables, as_of, on_azure=False)
            _patch(facts, "patch", nested(facts, "release", "full"), tables.minimums.get("esxi"))
        elif key == ("vsphere", "vCenter"):
            version = _text(nested(resource, "about", "version"))
            if version is not None:
                _judge(resource, "lifecycle.vcenter", version, tables, as_of, on_azure=False)
            _patch(facts, "patch", nested(facts, "release", "full"), tables.minimums.get("vcenter"))
        elif key == ("azure", "microsoft.sqlvirtualmachine/sqlvirtualmachines"):
            # a SQL VM without a release it names (installed by hand) is not covered, not passed
            _judge(resource, "lifecycle.sql_server", facts.get("sql_release"), tables, as_of, on_azure=True)


def _judge(resource: dict[str, Any], table_name: str, product: Any, tables: SupportTables,
           as_of: date, on_azure: bool) -> None:
    table = tables.lifecycle.get(table_name)
    row = table.lookup(product) if table is not None and isinstance(product, str) and product else None
    support: dict[str, Any] = {"product": product, "table": table_name}
    if row is None:
        support.update(status="not_covered", summary=(
            f"{table_name} has no row for {product}" if product else "the product or its version is not recognised"))
        resource["facts"]["support"] = support
        return
    lane = row.extended
    until = None
    covers, enrolment = False, None
    if lane is not None:
        until = lane.until_on_azure if on_azure and lane.until_on_azure else lane.until
        enrolment = _enrolment(resource, lane.programme, tables.programmes)
        # free-on-azure covers only where Microsoft gives the lane free: rows with until_on_azure
        covers = enrolment in ("bought", "free", "arc-esu", "ubuntu-pro") or (
            enrolment == "free-on-azure" and on_azure and lane.until_on_azure is not None)
    supported_until = until if covers and until is not None and until > row.end_of_support else row.end_of_support
    if as_of <= row.end_of_support:
        status = "supported"
    elif supported_until >= as_of:
        status = "extended"
    else:
        status = "out_of_support"
    support.update(row=row.key, status=status, end_of_support=row.end_of_support.isoformat(),
                   supported_until=supported_until.isoformat(), source=row.source)
    if row.end_of_technical_guidance is not None:
        support["end_of_technical_guidance"] = row.end_of_technical_guidance.isoformat()
    if lane is not None:
        support["extended"] = {"programme": lane.programme, "until": until.isoformat() if until else None,
                               "enrolment": enrolment, "covers": covers}
    support["summary"] = _summary(row, status, lane, until, enrolment, covers, on_azure, as_of) + (
        " (dates not yet confirmed by the vendor)" if row.unverified else "")
    if row.unverified:
        support["unverified"] = True
    resource["facts"]["support"] = support


def _enrolment(resource: dict[str, Any], programme: str, programmes: dict[str, str]) -> str:
    """How the machine is enrolled in an extended programme: what it shows of itself first,
    then the organisation's switch; a programme the switch does not name is not bought."""
    if programme == "windows-server-esu" and resource["type"] == "microsoft.hybridcompute/machines":
        esu = nested(resource, "properties", "licenseProfile", "esuProfile")
        if isinstance(esu, dict) and esu.get("licenseAssignmentState") == "Assigned" \
                and esu.get("esuKeyState") == "Active":
            return "arc-esu"
    if programme == "ubuntu-esm" and resource["cloud"] == "azure":
        licence = nested(resource, "properties", "licenseType") or nested(
            resource, "properties", "virtualMachineProfile", "licenseType")
        image = str(nested(resource, "facts", "image") or "").lower()
        if str(licence).upper() == "UBUNTU_PRO" or "ubuntu-pro" in image:
            return "ubuntu-pro"
    return programmes.get(programme, "not-bought")


def _summary(row: LifecycleRow, status: str, lane: Any, until: date | None, enrolment: str | None,
             covers: bool, on_azure: bool, as_of: date) -> str:
    ended = row.end_of_support < as_of
    # "vendor support": for Microsoft products the row's date is the end of *extended* support
    text = f"vendor support {'ended' if ended else 'ends'} {row.end_of_support.isoformat()}"
    if row.end_of_technical_guidance is not None:
        text += f" (technical guidance, no fixes, until {row.end_of_technical_guidance.isoformat()})"
    if _SERVICE_PACK.search(row.key) and ended:
        text += "; later service packs of this release are supported longer: install the latest"
    if lane is None or until is None:
        return text + ("; no extended support exists" if ended and not _SERVICE_PACK.search(row.key) else "")
    name = PROGRAMME_NAMES.get(lane.programme, lane.programme)
    if until < as_of:
        return f"{text}; {name} ended {until.isoformat()} too"
    if covers:
        how = {"arc-esu": "an Arc ESU licence is assigned and its key active",
               "ubuntu-pro": "the machine runs Ubuntu Pro",
               "free-on-azure": "free in Azure", "free": "free of charge"}.get(str(enrolment), "bought")
        return f"{text}; {name} runs until {until.isoformat()} ({how})"
    if enrolment == "free-on-azure" and not on_azure:
        why = "free in Azure only, and this machine is not in Azure"
    elif enrolment == "free-on-azure":
        why = "Microsoft has not announced it free in Azure for this release"
    else:
        why = f"not bought ({PROGRAMMES}.{lane.programme})"
    return f"{text}; {name} runs until {until.isoformat()} but covers it only if enrolled: {why}"


def _patch(facts: dict[str, Any], name: str, observed: Any, table: MinimumTable | None) -> None:
    version = parse_version(observed) if isinstance(observed, str) else None
    row = table.lookup(version) if table is not None and version is not None else None
    if row is None or version is None:
        return
    below = compare_versions(version, row.parsed_minimum) < 0  # the row found above: no second look-up
    summary = f"the minimum of its update line {row.line} is {row.minimum} ({row.advisory or 'no advisory named'})"
    if row.note:
        summary += f"; {row.note}"
    facts[name] = {"line": row.line, "minimum": row.minimum, "advisory": row.advisory,
                   "source": row.source, "below": below, "summary": summary}



def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None
