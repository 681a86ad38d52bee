"""Derived facts: the fields that let one rule read both clouds.

Sources store what the APIs return and nothing else; this stage, run on every scan (so
old snapshots gain new facts too), adds `facts.` to resources:

- `facts.os`: {family, product, name} of a vSphere VM, Azure VM or Arc machine, where
  `product` is a lifecycle key such as `windows-server-2012-r2` or `ubuntu-18.04`;
- `facts.image`: `publisher:offer:sku` of an Azure VM's marketplace image;
- `facts.hardware_version`: the number in a vSphere VM's `vmx-NN`;
- `facts.networks`: the networks a VM is attached to, with VLAN where known;
- `facts.vlan`: a distributed port group's VLAN id, or `trunk`;
- `facts.uplink`: whether a distributed port group is its switch's uplink port group;
- `facts.sql_version`: the SQL Server release (`2014`) of an Azure SQL VM.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

# Ordered: the first pattern that matches the OS text wins.
_OS_PATTERNS: list[tuple[re.Pattern[str], str, Any]] = [
    (re.compile(r"windows\s+server\s+(\d{4})(\s*r2)?", re.I), "windows",
     lambda m: f"windows-server-{m.group(1)}{'-r2' if m.group(2) else ''}"),
    (re.compile(r"windowsserver[^:]*:(\d{4})(-r2)?", re.I), "windows",
     lambda m: f"windows-server-{m.group(1)}{'-r2' if m.group(2) else ''}"),
    (re.compile(r"ubuntu\D*?(\d{2})[._-](\d{2})", re.I), "linux",
     lambda m: f"ubuntu-{m.group(1)}.{m.group(2)}"),
    (re.compile(r"(?:ubuntu.*?|com-ubuntu-server-)(bionic|focal|jammy|noble)", re.I), "linux",
     lambda m: {"bionic": "ubuntu-18.04", "focal": "ubuntu-20.04", "jammy": "ubuntu-22.04",
                "noble": "ubuntu-24.04"}[m.group(1).lower()]),
    (re.compile(r"centos\D*(\d+)", re.I), "linux", lambda m: f"centos-{m.group(1)}"),
    (re.compile(r"(?:red\s*hat\s+enterprise\s+linux|rhel)\D*(\d+)", re.I), "linux",
     lambda m: f"rhel-{m.group(1)}"),
    (re.compile(r"(?:suse\s+linux\s+enterprise(?:\s+server)?|sles)\D*(\d+)(?:\D*sp(\d+))?", re.I),
     "linux", lambda m: f"sles-{m.group(1)}" + (f"-sp{m.group(2)}" if m.group(2) else "")),
    (re.compile(r"debian\D*(\d+)", re.I), "linux", lambda m: f"debian-{m.group(1)}"),
]

# vSphere guest ids that name one product; generic ids (ubuntu64Guest) say no version.
_GUEST_IDS = {
    "windows8Server64Guest": "windows-server-2012",
    "windows9Server64Guest": "windows-server-2016",
    "windows2019srv_64Guest": "windows-server-2019",
    "windows2019srvNext_64Guest": "windows-server-2022",
    "windows2022srvNext_64Guest": "windows-server-2025",
    "windows7Server64Guest": "windows-server-2008-r2",
    "centos7_64Guest": "centos-7", "centos8_64Guest": "centos-8",
    "rhel6_64Guest": "rhel-6", "rhel7_64Guest": "rhel-7", "rhel8_64Guest": "rhel-8",
    "rhel9_64Guest": "rhel-9", "sles12_64Guest": "sles-12", "sles15_64Guest": "sles-15",
}


@lru_cache(maxsize=4096)
def os_product(text: str) -> tuple[str, str] | None:
    """(family, product key) named by an OS description, or None if none is recognised."""
    for pattern, family, key in _OS_PATTERNS:
        match = pattern.search(text)
        if match:
            return family, key(match)
    return None


def _os_fact(*texts: Any, guest_id: Any = None) -> dict[str, Any] | None:
    key = (*texts, guest_id)
    try:
        cached = _OS_FACTS.get(key)
    except TypeError:  # an unhashable value where text was expected
        return None
    if cached is None and key not in _OS_FACTS:
        cached = _OS_FACTS[key] = _os_fact_uncached(*texts, guest_id=guest_id)
    # each resource gets its own copy: facts are per resource, callers may add to them
    return dict(cached) if cached is not None else None


_OS_FACTS: dict[tuple[Any, ...], dict[str, Any] | None] = {}


def _os_fact_uncached(*texts: Any, guest_id: Any = None) -> dict[str, Any] | None:
    for text in texts:
        if isinstance(text, str) and text.strip():
            found = os_product(text)
            if found:
                return {"family": found[0], "product": found[1], "name": text.strip()}
    if isinstance(guest_id, str) and guest_id in _GUEST_IDS:
        product = _GUEST_IDS[guest_id]
        return {"family": "windows" if product.startswith("windows") else "linux",
                "product": product, "name": guest_id}
    named = next((t for t in texts if isinstance(t, str) and t.strip()), None)
    if named:
        family = "windows" if "windows" in named.lower() else "linux" if re.search(
            r"linux|ubuntu|centos|debian|suse|rhel", named, re.I) else "other"
        return {"family": family, "product": None, "name": named.strip()}
    return None


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _vsphere_vm(vm: dict[str, Any], networks: dict[tuple[str, str], dict[str, Any]]) -> None:
    facts = vm.setdefault("facts", {})
    config = vm.get("config")
    if not isinstance(config, dict):
        config = {}
    guest = vm.get("guest")
    os_fact = _os_fact(guest.get("guestFullName") if isinstance(guest, dict) else None,
                       config.get("guestFullName"), guest_id=config.get("guestId"))
    if os_fact:
        facts["os"] = os_fact
    version = config.get("version")
    if isinstance(version, str):
        facts["hardware_version"] = _hardware_version(version)
    attached = []
    source = vm["source"]
    for moref in vm.get("network") or ():
        network = networks.get((source, moref)) if isinstance(moref, str) else None
        if network is None:
            attached.append({"id": moref, "name": None, "vlan": None})
        else:
            attached.append({"id": moref, "name": network["name"],
                             "vlan": network.get("facts", {}).get("vlan"),
                             "type": network["type"]})
    facts["networks"] = attached


@lru_cache(maxsize=256)
def _hardware_version(version: str) -> int | None:
    digits = re.search(r"(\d+)", version)
    return int(digits.group(1)) if digits else None


def _port_group_vlan(port_group: dict[str, Any]) -> Any:
    """VLAN of a distributed port group: an id, 'trunk' for ranges, or None for none."""
    vlan = _get(port_group, "config", "defaultPortConfig", "vlan", "vlanId")
    if isinstance(vlan, list):
        return "trunk"
    return vlan


def _azure_vm(vm: dict[str, Any]) -> None:
    facts = vm.setdefault("facts", {})
    image = _get(vm, "properties", "storageProfile", "imageReference") or {}
    image_key = None
    if isinstance(image, dict) and image.get("publisher"):
        image_key = f"{image.get('publisher')}:{image.get('offer')}:{image.get('sku')}"
        facts["image"] = image_key
    view = _get(vm, "properties", "extended", "instanceView") or {}
    os_text = " ".join(str(v) for v in (view.get("osName"), view.get("osVersion")) if v) \
        if isinstance(view, dict) else ""
    os_fact = _os_fact(os_text, image_key)
    if os_fact:
        facts["os"] = os_fact
    elif _get(vm, "properties", "storageProfile", "osDisk", "osType"):
        facts["os"] = {"family": str(vm["properties"]["storageProfile"]["osDisk"]["osType"]).lower(),
                       "product": None, "name": None}


def _arc_machine(machine: dict[str, Any]) -> None:
    properties = machine.get("properties") or {}
    os_fact = _os_fact(properties.get("osSku"),
                       " ".join(str(v) for v in (properties.get("osName"),
                                                 properties.get("osVersion")) if v))
    if os_fact:
        machine.setdefault("facts", {})["os"] = os_fact


def _sql_vm(sql_vm: dict[str, Any]) -> None:
    # sqlImageOffer looks like "SQL2014SP3-WS2012R2" or "sql2019-ws2022"
    offer = _get(sql_vm, "properties", "sqlImageOffer")
    match = re.match(r"sql(\d{4})", offer, re.I) if isinstance(offer, str) else None
    if match:
        sql_vm.setdefault("facts", {})["sql_version"] = match.group(1)


def derive_facts(resources: list[dict[str, Any]]) -> None:
    """Add `facts.` to resources in place; idempotent, so re-deriving changes nothing."""
    networks: dict[tuple[str, str], dict[str, Any]] = {}
    uplinks: set[tuple[str, str]] = set()
    for resource in resources:
        if resource["cloud"] != "vsphere":
            continue
        kind = resource["type"]
        if kind in ("DistributedVirtualSwitch", "VmwareDistributedVirtualSwitch"):
            for moref in _get(resource, "config", "uplinkPortgroup") or ():
                uplinks.add((resource["source"], moref))
        elif kind in ("DistributedVirtualPortgroup", "Network"):
            moref = resource.get("moref")
            if isinstance(moref, str):
                networks[(resource["source"], moref)] = resource
    for key, network in networks.items():
        if network["type"] == "DistributedVirtualPortgroup":
            facts = network.setdefault("facts", {})
            facts["vlan"] = _port_group_vlan(network)
            # vCenter 6.5 has no config.uplink; the switch's uplinkPortgroup list says it
            facts["uplink"] = key in uplinks or _get(network, "config", "uplink") is True
    for resource in resources:
        cloud, kind = resource["cloud"], resource["type"]
        if cloud == "vsphere" and kind == "VirtualMachine":
            _vsphere_vm(resource, networks)
        elif cloud == "azure" and kind == "microsoft.compute/virtualmachines":
            _azure_vm(resource)
        elif cloud == "azure" and kind == "microsoft.hybridcompute/machines":
            _arc_machine(resource)
        elif cloud == "azure" and kind == "microsoft.sqlvirtualmachine/sqlvirtualmachines":
            _sql_vm(resource)
