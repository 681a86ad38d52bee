"""Derived facts: the fields that let one rule read both clouds.

Sources store what the APIs return and nothing else; this stage, run on every scan (so
old snapshots gain new facts too), adds `facts.` to resources:

- `facts.os`: {family, product, name} of a vSphere VM, Azure VM or Arc machine, where
  `product` is a lifecycle key such as `windows-server-2012-r2` or `ubuntu-18.04`;
- `facts.image`: `publisher:offer:sku` of an Azure VM's marketplace image;
- `facts.hardware_version`: the number in a vSphere VM's `vmx-NN`, and `facts.host_version`:
  the ESXi version of the host it runs on;
- `facts.networks`: the networks a VM is attached to, with VLAN where known;
- `facts.vlan`: a distributed port group's VLAN id, or `trunk`;
- `facts.uplink`: whether a distributed port group is its switch's uplink port group;
- `facts.sql_version`: the SQL Server release (`2014`) of an Azure SQL VM;
- `facts.release`: {line, version, build, full} of an ESXi host or vCenter, where `full`
  (`7.0.3.21477706`) compares as one dotted version against a minimum patch level;
- `facts.tools_version`: VMware Tools as `12.5.1`, decoded from `guest.toolsVersion`;
- `facts.cpu`: {packages, cores_per_package} of a host;
- `facts.esxi_settings`, `facts.vm_settings`, `facts.vcenter_settings`: the advanced settings
  the collector read (through its allow-lists) as one mapping, and `facts.dvfilters`: a
  VM's network filter settings;
- `facts.license`: {edition, name, key} of the licence assigned to a host;
- `facts.host_editions`: the licence editions of a cluster's hosts;
- `facts.os` on scale sets (from the image their model deploys) and `facts.sql_release`
  (`2014-sp3`) on SQL VMs;
- `facts.vcpus`: the vCPUs of an Azure VM's or scale set model's size, from
  `vmSizeProperties.vCPUsAvailable`, the Resource SKUs the source read, or the bundled
  table generated from that API (constrained sizes: the active ones), never from the
  digits of its name; `facts.vcpus_basis` says which;
- on Azure VMs, `facts.networks`: the subnets of their NICs, with address prefix;
- `facts.flow_log`: {id, enabled, retention_days, via} of the flow log that covers an NSG
  (its own, or its virtual network's), and `facts.network_watcher` on a virtual network:
  whether its subscription has a Network Watcher in the network's region.

Facts that need baselines (support status, segmentation zones, licence counts) are added
after these by auditor/lifecycle.py, auditor/segmentation.py and auditor/accounting.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .exposure import assess_exposure
from .inventory import VM_SETTINGS
from .patterns import Pattern, linear, search
from .vm_sizes import vcpus

# Ordered: the first pattern that matches the OS text wins. RE2, not `re`: the text is a
# guest's own description, and `ubuntu\D*?` over "ubuntu" * 10000 backtracks quadratically.
_OS_PATTERNS: list[tuple[Pattern, str, Any]] = [
    (linear(r"windows\s+server\s+(\d{4})(\s*r2)?", ignore_case=True), "windows",
     lambda m: f"windows-server-{m.group(1)}{'-r2' if m.group(2) else ''}"),
    (linear(r"windowsserver[^:]*:(\d{4})(-r2)?", ignore_case=True), "windows",
     lambda m: f"windows-server-{m.group(1)}{'-r2' if m.group(2) else ''}"),
    (linear(r"ubuntu\D*?(\d{2})[._-](\d{2})", ignore_case=True), "linux",
     lambda m: f"ubuntu-{m.group(1)}.{m.group(2)}"),
    (linear(r"(?:ubuntu.*?|com-ubuntu-server-)(bionic|focal|jammy|noble)", ignore_case=True), "linux",
     lambda m: {"bionic": "ubuntu-18.04", "focal": "ubuntu-20.04", "jammy": "ubuntu-22.04",
                "noble": "ubuntu-24.04"}[m.group(1).lower()]),
    (linear(r"centos\W*stream\D*(\d+)", ignore_case=True), "linux", lambda m: f"centos-stream-{m.group(1)}"),
    (linear(r"centos\D*(\d+)", ignore_case=True), "linux", lambda m: f"centos-{m.group(1)}"),
    (linear(r"oracle\W*linux\D*(\d+)", ignore_case=True), "linux", lambda m: f"oracle-linux-{m.group(1)}"),
    (linear(r"rocky\D*(\d+)", ignore_case=True), "linux", lambda m: f"rocky-{m.group(1)}"),
    (linear(r"alma\D*(\d+)", ignore_case=True), "linux", lambda m: f"almalinux-{m.group(1)}"),
    (linear(r"(?:red\s*hat\s+enterprise\s+linux|rhel)\D*(\d+)", ignore_case=True), "linux",
     lambda m: f"rhel-{m.group(1)}"),
    (linear(r"(?:suse\s+linux\s+enterprise(?:\s+server)?|sles)\D*(\d+)(?:\D*sp(\d+))?", ignore_case=True),
     "linux", lambda m: f"sles-{m.group(1)}" + (f"-sp{m.group(2)}" if m.group(2) else "")),
    (linear(r"debian\D*(\d+)", ignore_case=True), "linux", lambda m: f"debian-{m.group(1)}"),
]

# vSphere guest ids that name one product; generic ids (ubuntu64Guest) say no version.
_GUEST_IDS = {
    "winNetStandardGuest": "windows-server-2003", "winNetEnterpriseGuest": "windows-server-2003",
    "winNetDatacenterGuest": "windows-server-2003", "winNetWebGuest": "windows-server-2003",
    "winNetStandard64Guest": "windows-server-2003", "winNetEnterprise64Guest": "windows-server-2003",
    "winNetDatacenter64Guest": "windows-server-2003",
    "winLonghornGuest": "windows-server-2008", "winLonghorn64Guest": "windows-server-2008",
    "windows8Server64Guest": "windows-server-2012",
    # windows9Server64Guest is left out: vSphere 6.7 labels it "Windows Server 2016 or later"
    "windows2019srv_64Guest": "windows-server-2019",
    "windows2019srvNext_64Guest": "windows-server-2022",
    "windows2022srvNext_64Guest": "windows-server-2025",
    "windows7Server64Guest": "windows-server-2008-r2",
    "centos7_64Guest": "centos-7", "centos8_64Guest": "centos-8",
    "rhel6_64Guest": "rhel-6", "rhel7_64Guest": "rhel-7", "rhel8_64Guest": "rhel-8",
    "rhel9_64Guest": "rhel-9", "sles12_64Guest": "sles-12", "sles15_64Guest": "sles-15",
    "centos6_64Guest": "centos-6", "centos6Guest": "centos-6", "rhel6Guest": "rhel-6",
    "debian9_64Guest": "debian-9", "debian10_64Guest": "debian-10", "debian11_64Guest": "debian-11",
    "debian12_64Guest": "debian-12", "rhel10_64Guest": "rhel-10",
}
# vSphere's guest settings that name a floor, not a release ("Microsoft Windows Server 2016 or
# later", "CentOS 4/5 or later"): the release is unknown until VMware Tools report it.
_FLOOR = linear(r"\bor\s+later\b", ignore_case=True)


@lru_cache(maxsize=4096)
def os_product(text: str) -> tuple[str, str] | None:
    """(family, product key) named by an OS description, or None if none is recognised
    (also when it names only a floor such as "Windows Server 2016 or later")."""
    if search(_FLOOR, text):
        return None
    for pattern, family, key in _OS_PATTERNS:
        match = search(pattern, text)
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


def _items(value: Any) -> list[Any]:
    """The elements of a list field; anything else (absent, or a shape a future API might
    send) has none."""
    return value if isinstance(value, list) else []


def nested(obj: Any, *keys: str) -> Any:
    """The value under `keys` in nested dicts, or None where any step is missing or not a
    dict (snapshots hold what the APIs sent, whatever its shape)."""
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _vsphere_vm(vm: dict[str, Any], networks: dict[tuple[str, str], dict[str, Any]],
                host_versions: dict[tuple[str, str], Any]) -> None:
    facts = vm.setdefault("facts", {})
    extra = nested(vm, "config", "extraConfig")
    if isinstance(extra, list):  # read through the collector's allow-list
        facts["vm_settings"] = settings(extra, VM_SETTINGS)
        facts["dvfilters"] = sorted(key for key in facts["vm_settings"] if search(_DVFILTER, key))
    host = nested(vm, "runtime", "host")
    version = host_versions.get((vm["source"], host)) if isinstance(host, str) else None
    if isinstance(version, str):
        facts["host_version"] = version  # what the VM's hardware can be upgraded to depends on it
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
    tools = tools_version(guest.get("toolsVersion")) if isinstance(guest, dict) else None
    if tools:
        facts["tools_version"] = tools
    attached = []
    source = vm["source"]
    for moref in _items(vm.get("network")):
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
    digits = re.search(r"([0-9]{1,6})", version)
    return int(digits.group(1)) if digits else None


def _is_uplink(port_group: dict[str, Any], listed: bool, switch_listed: bool) -> bool | None:
    """Whether a distributed port group is its switch's uplink port group: by its own
    `config.uplink` flag where the vCenter sets it, else by the switch's uplinkPortgroup list
    (vCenter 6.5 has no flag). Neither known (an empty or unread list): None, not a guess."""
    flag = nested(port_group, "config", "uplink")
    if isinstance(flag, bool):
        return flag
    if listed:
        return True
    return False if switch_listed else None


def _port_group_vlan(port_group: dict[str, Any]) -> Any:
    """VLAN of a distributed port group: an id, 'trunk' for ranges, or None for none."""
    vlan = nested(port_group, "config", "defaultPortConfig", "vlan", "vlanId")
    if isinstance(vlan, list):
        return "trunk"
    return vlan


def _vcpus(facts: dict[str, Any], size: Any, hardware: Any, sizes: SizeTables) -> None:
    """`facts.vcpus` (and its basis) of a VM or scale set model: the size's real count, the
    active ones of a constrained or customised size (what SQL Server licences count), and
    `facts.vcpus_total`, all the size's vCPUs (what Azure prices Windows Server on)."""
    name = size if isinstance(size, str) else None
    available = nested(hardware, "vmSizeProperties", "vCPUsAvailable")
    count, basis = vcpus(name, sizes.active, available)
    if count is not None:
        facts["vcpus"] = count
    facts["vcpus_basis"] = basis
    total, _ = vcpus(name, sizes.total, active_only=False)
    if total is not None:
        facts["vcpus_total"] = total


@dataclass(frozen=True)
class SizeTables:
    """What the Azure source read of the Resource SKUs: size -> active vCPUs, and size ->
    all its vCPUs."""

    active: Mapping[str, int] | None = None
    total: Mapping[str, int] | None = None


def _azure_vm(vm: dict[str, Any], collected: SizeTables) -> None:
    facts = vm.setdefault("facts", {})
    hardware = nested(vm, "properties", "hardwareProfile")
    _vcpus(facts, nested(hardware, "vmSize"), hardware, collected)
    image = nested(vm, "properties", "storageProfile", "imageReference") or {}
    image_key = None
    if isinstance(image, dict) and image.get("publisher"):
        image_key = f"{image.get('publisher')}:{image.get('offer')}:{image.get('sku')}"
        facts["image"] = image_key
    view = nested(vm, "properties", "extended", "instanceView") or {}
    os_text = " ".join(str(v) for v in (view.get("osName"), view.get("osVersion")) if v) \
        if isinstance(view, dict) else ""
    os_fact = _os_fact(os_text, image_key)
    if os_fact:
        facts["os"] = os_fact
    elif nested(vm, "properties", "storageProfile", "osDisk", "osType"):
        facts["os"] = {"family": str(vm["properties"]["storageProfile"]["osDisk"]["osType"]).lower(),
                       "product": None, "name": None}


# Windows kernel versions (osVersion on Arc machines) of the server releases built on them;
# the same builds ship as client Windows, so they name a server release only on a server.
_WINDOWS_SERVER_BUILDS = {
    (6, 0, 6002): "windows-server-2008", (6, 1, 7601): "windows-server-2008-r2",
    (6, 2, 9200): "windows-server-2012", (6, 3, 9600): "windows-server-2012-r2",
    (10, 0, 14393): "windows-server-2016", (10, 0, 17763): "windows-server-2019",
    (10, 0, 20348): "windows-server-2022", (10, 0, 26100): "windows-server-2025",
}


def _scale_set(scale_set: dict[str, Any], collected: SizeTables) -> None:
    """Image, OS and vCPUs of what a scale set's model deploys."""
    storage = nested(scale_set, "properties", "virtualMachineProfile", "storageProfile")
    image = nested(storage, "imageReference")
    facts = scale_set.setdefault("facts", {})
    _vcpus(facts, nested(scale_set, "sku", "name"),
           nested(scale_set, "properties", "virtualMachineProfile", "hardwareProfile"), collected)
    image_key = None
    if isinstance(image, dict) and image.get("publisher"):
        image_key = facts["image"] = f"{image.get('publisher')}:{image.get('offer')}:{image.get('sku')}"
    os_fact = _os_fact(image_key)
    os_type = nested(storage, "osDisk", "osType")
    if os_fact is None and isinstance(os_type, str) and os_type:
        os_fact = {"family": os_type.lower(), "product": None, "name": image_key}
    if os_fact:
        facts["os"] = os_fact


def _arc_machine(machine: dict[str, Any]) -> None:
    """OS of an Arc-enabled server from whatever the agent reported: osSku names the product
    ("Windows Server 2019 Datacenter"); without it, osName and osVersion (`ubuntu` `20.04`,
    or a Windows kernel build on a machine that says it is a server), then osType alone,
    which gives the family but no product: a blind spot the support rules report."""
    properties = machine.get("properties")
    if not isinstance(properties, dict):
        return
    texts = [properties.get(k) for k in ("osSku", "osName", "osVersion", "osType", "osEdition")]
    sku, name, version, kind, edition = (t if isinstance(t, str) and t.strip() else None for t in texts)
    os_fact = _os_fact(sku, " ".join(v for v in (name, version) if v))
    family = (os_fact or {}).get("family")
    if (os_fact is None or os_fact.get("product") is None) and version:
        windows = family == "windows" or "windows" in f"{name} {kind}".lower()
        server = _arc_windows_server(properties, sku, edition)
        build = _windows_build(version)
        if windows and server and build in _WINDOWS_SERVER_BUILDS:
            os_fact = {"family": "windows", "product": _WINDOWS_SERVER_BUILDS[build],
                       "name": sku or f"Windows Server {version}"}
    if os_fact is None:
        hint = " ".join(v for v in (name, kind, edition) if v)
        if _arc_windows_server(properties, sku, edition) and "windows" not in hint.lower():
            hint = f"Windows Server {hint}".strip()  # the ESU or product profile says so
        if hint:
            lowered = hint.lower()
            os_fact = {"family": "windows" if "windows" in lowered else "linux" if (kind and kind.lower() == "linux")
                       or re.search(r"linux|ubuntu|centos|debian|suse|rhel|red hat", lowered) else "other",
                       "product": None, "name": hint}
    if os_fact:
        machine.setdefault("facts", {})["os"] = os_fact


def _arc_windows_server(properties: dict[str, Any], sku: str | None, edition: str | None) -> bool:
    """Whether an Arc machine says it runs a server edition of Windows."""
    if sku and "server" in sku.lower():
        return True
    if edition and (edition.lower().startswith("server") or edition.lower() in ("standard", "datacenter")):
        return True
    esu = nested(properties, "licenseProfile", "esuProfile", "serverType")
    product_type = nested(properties, "licenseProfile", "productProfile", "productType")
    return (isinstance(esu, str) and esu.lower() in ("standard", "datacenter")) or \
        (isinstance(product_type, str) and product_type.lower() == "windowsserver")


def _windows_build(version: str) -> tuple[int, ...] | None:
    parts = re.match(r"(\d{1,3})\.(\d{1,3})\.(\d{1,6})", version.strip())
    return tuple(int(p) for p in parts.groups()) if parts else None


def _sql_vm(sql_vm: dict[str, Any]) -> None:
    """SQL Server release of an Azure SQL VM from the image it was deployed from
    ("SQL2014SP3-WS2012R2", "sql2019-ws2022"): `sql_version` 2014 and, with its service
    pack, `sql_release` 2014-sp3 (service packs lose support before the release does)."""
    offer = nested(sql_vm, "properties", "sqlImageOffer")
    match = re.match(r"sql(\d{4})(r2)?(?:[ _-]?sp(\d{1,2}))?", offer, re.I) if isinstance(offer, str) else None
    if match:
        facts = sql_vm.setdefault("facts", {})
        release = match.group(1) + ("-r2" if match.group(2) else "")
        facts["sql_version"] = release
        facts["sql_release"] = f"{release}-sp{int(match.group(3))}" if match.group(3) else release


_RELEASE = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")


def _release(resource: dict[str, Any], product: Any) -> None:
    if not isinstance(product, dict):
        return
    version, build = product.get("version"), product.get("build")
    if not isinstance(version, str):
        return
    parts = version.split(".")
    release: dict[str, Any] = {"line": ".".join(parts[:2]), "version": version}
    # version.build compares as one dotted version only when the version is major.minor.update
    # as ESXi and vCenter report it; "8.0.3.0" or "8.0.3-u3" would hide the build
    if isinstance(build, (str, int)) and not isinstance(build, bool) and str(build).isascii() \
            and str(build).isdigit() and len(str(build)) < 19 and _RELEASE.fullmatch(version):
        release["build"] = int(build)
        release["full"] = f"{version}.{build}"
    resource.setdefault("facts", {})["release"] = release


def tools_version(encoded: Any) -> str | None:
    """VMware Tools' `guest.toolsVersion` (major << 10 | minor << 5 | patch) as `12.5.1`."""
    if isinstance(encoded, bool) or not isinstance(encoded, (int, str)):
        return None  # a float (1e400 reads as infinity) or a structure is no encoded version
    try:
        number = int(encoded)
    except ValueError:
        return None
    if number <= 0 or number >= 1 << 20:
        return None
    return f"{number >> 10}.{(number >> 5) & 0x1F}.{number & 0x1F}"


def _count(value: Any, most: int) -> bool:
    """Whether a value is a whole count from 1 to `most` (bools and absurd sizes are not)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= most


def settings(options: Any, names: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A list of {key, value} (ESXi advanced options, VM extraConfig, vCenter settings) as
    one mapping, so that a rule reads `facts.esxi_settings["UserVars.DcuiTimeOut"]`; a key
    listed twice keeps its first value, as vSphere applies it. VMX keys are case-insensitive
    (`RemoteDisplay.MaxConnections` is `RemoteDisplay.maxConnections`): a key that differs
    from one of `names` only in case is filed under that name."""
    canonical = {name.lower(): name for name in names}
    found: dict[str, Any] = {}
    for option in _items(options):
        key = option.get("key") if isinstance(option, dict) else None
        if isinstance(key, str):
            key = canonical.get(key.lower(), key)
            if key not in found:
                found[key] = option.get("value")
    return found


_DVFILTER = linear(r"ethernet[0-9]+\.filter[0-9]+\.name", ignore_case=True)


def _host(host: dict[str, Any]) -> None:
    facts = host.setdefault("facts", {})
    if isinstance(nested(host, "config", "option"), list):
        facts["esxi_settings"] = settings(nested(host, "config", "option"))
    _release(host, nested(host, "summary", "config", "product"))
    hardware = nested(host, "summary", "hardware")
    packages, cores = nested(hardware, "numCpuPkgs"), nested(hardware, "numCpuCores")
    if _count(packages, 1024) and _count(cores, 1 << 20) and cores >= packages:
        # licensed_cores is added by the licence accounting, which knows the per-CPU minimum
        facts["cpu"] = {"packages": packages, "cores_per_package": cores // packages}
    assigned = host.get("assignedLicense")
    if isinstance(assigned, dict):
        facts["license"] = {"edition": assigned.get("editionKey"), "name": assigned.get("name"),
                            "key": assigned.get("licenseKey")}


def _azure_networks(vm: dict[str, Any], nics: dict[str, dict[str, Any]],
                    subnets: dict[str, dict[str, Any]]) -> None:
    attached = []
    for reference in _items(nested(vm, "properties", "networkProfile", "networkInterfaces")):
        nic = nics.get(str(nested(reference, "id")).lower()) if isinstance(reference, dict) else None
        for config in _items(nested(nic, "properties", "ipConfigurations")) if nic else ():
            subnet_id = nested(config, "properties", "subnet", "id")
            if not isinstance(subnet_id, str):
                continue
            subnet = subnets.get(subnet_id.lower()) or {}
            parts = subnet_id.split("/")
            attached.append({"id": subnet_id, "name": "/".join(parts[-3::2]) if len(parts) >= 3 else subnet_id,
                             "prefix": nested(subnet, "properties", "addressPrefix")})
    vm.setdefault("facts", {})["networks"] = attached


def _azure_network_joins(resources: list[dict[str, Any]]) -> None:
    """Facts that join Azure resources: VM -> NIC -> subnet, NSG <- flow log, VNet <- watcher."""
    nics: dict[str, dict[str, Any]] = {}
    subnets: dict[str, dict[str, Any]] = {}
    vnets: dict[str, dict[str, Any]] = {}  # by lower-case id
    nsgs: dict[str, dict[str, Any]] = {}
    vms, flow_logs = [], []
    watchers: set[tuple[str, str]] = set()
    for resource in resources:
        if resource["cloud"] != "azure":
            continue
        kind = resource["type"]
        if kind == "microsoft.network/networkinterfaces":
            nics[resource["id"].lower()] = resource
        elif kind == "microsoft.network/virtualnetworks":
            vnets[resource["id"].lower()] = resource
            for subnet in _items(nested(resource, "properties", "subnets")):
                if isinstance(subnet, dict) and isinstance(subnet.get("id"), str):
                    subnets[subnet["id"].lower()] = subnet
        elif kind == "microsoft.network/networksecuritygroups":
            nsgs[resource["id"].lower()] = resource
        elif kind == "microsoft.compute/virtualmachines":
            vms.append(resource)
        elif kind == "microsoft.network/networkwatchers/flowlogs":
            flow_logs.append(resource)
        elif kind == "microsoft.network/networkwatchers":
            watchers.add((resource["source"], str(resource.get("location", "")).lower()))
    for vm in vms:
        _azure_networks(vm, nics, subnets)
    for vnet in vnets.values():
        vnet.setdefault("facts", {})["network_watcher"] = (
            vnet["source"], str(vnet.get("location", "")).lower()) in watchers
    covered: dict[str, dict[str, Any]] = {}
    nic_nsgs = _nic_nsgs_by_subnet(nics) if flow_logs else {}
    for flow_log in flow_logs:
        target = str(nested(flow_log, "properties", "targetResourceId") or "").lower()
        retention = nested(flow_log, "properties", "retentionPolicy") or {}
        # retention disabled means logs are kept for ever
        days = retention.get("days") if isinstance(retention, dict) and retention.get("enabled") else None
        entry = {"id": flow_log["id"], "enabled": nested(flow_log, "properties", "enabled") is not False,
                 "retention_days": days}
        # VNet flow logs may target a VNet, a subnet or a NIC, and record the traffic of every
        # NSG on the way: the subnets' and their NICs' own
        if "/subnets/" in target:
            for nsg_id in _nsgs_of_subnet(target, subnets, nic_nsgs):
                covered.setdefault(nsg_id, {**entry, "via": "subnet"})
        elif "/virtualnetworks/" in target:
            vnet = vnets.get(target)
            for subnet in _items(nested(vnet, "properties", "subnets")) if vnet else ():
                subnet_id = str(subnet.get("id", "")).lower() if isinstance(subnet, dict) else ""
                for nsg_id in _nsgs_of_subnet(subnet_id, subnets, nic_nsgs):
                    covered.setdefault(nsg_id, {**entry, "via": "virtual network"})
        elif "/networkinterfaces/" in target:
            nsg_id = str(nested(nics.get(target), "properties", "networkSecurityGroup", "id") or "").lower()
            if nsg_id:
                covered.setdefault(nsg_id, {**entry, "via": "network interface"})
        elif target:
            covered[target] = {**entry, "via": "network security group"}
    for nsg_id, nsg in nsgs.items():
        if nsg_id in covered:
            nsg.setdefault("facts", {})["flow_log"] = covered[nsg_id]


def _nsgs_of_subnet(subnet_id: str, subnets: dict[str, dict[str, Any]],
                    nic_nsgs: dict[str, list[str]]) -> list[str]:
    """The NSG on a subnet and those on the NICs in it (lower-case ids)."""
    found = [str(nested(subnets.get(subnet_id), "properties", "networkSecurityGroup", "id") or "").lower(),
             *nic_nsgs.get(subnet_id, [])]
    return [nsg_id for nsg_id in dict.fromkeys(found) if nsg_id]


def _nic_nsgs_by_subnet(nics: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Subnet id -> the NSGs on NICs in it (lower-case ids)."""
    found: dict[str, list[str]] = {}
    for nic in nics.values():
        nsg_id = str(nested(nic, "properties", "networkSecurityGroup", "id") or "").lower()
        if nsg_id:
            for config in _items(nested(nic, "properties", "ipConfigurations")):
                subnet_id = str(nested(config, "properties", "subnet", "id") or "").lower()
                found.setdefault(subnet_id, []).append(nsg_id)
    return found


def derive_facts(resources: list[dict[str, Any]], vm_sizes: SizeTables | None = None) -> None:
    """Add `facts.` to resources in place; idempotent, so re-deriving changes nothing.
    `vm_sizes` is what the Azure source read of the Resource SKUs."""
    vm_sizes = vm_sizes or SizeTables()
    for resource in resources:
        # facts are derived here and nowhere else: whatever a snapshot carries under `facts`
        # (an older auditor's, or a forged verdict) is not evidence
        resource["facts"] = {}
    networks: dict[tuple[str, str], dict[str, Any]] = {}
    uplinks: set[tuple[str, str]] = set()
    switches_listing_uplinks: set[tuple[str, str]] = set()  # (vCenter, switch) whose uplink list was read
    host_versions: dict[tuple[str, str], Any] = {}  # (vCenter, host moref) -> ESXi version
    for resource in resources:
        if resource["cloud"] != "vsphere":
            continue
        kind = resource["type"]
        if kind in ("DistributedVirtualSwitch", "VmwareDistributedVirtualSwitch"):
            listed = _items(nested(resource, "config", "uplinkPortgroup"))
            if listed:
                switches_listing_uplinks.add((resource["source"], str(resource.get("moref"))))
            for moref in listed:
                uplinks.add((resource["source"], moref))
        elif kind in ("DistributedVirtualPortgroup", "Network"):
            moref = resource.get("moref")
            if isinstance(moref, str):
                networks[(resource["source"], moref)] = resource
        elif kind == "HostSystem" and isinstance(resource.get("moref"), str):
            host_versions[(resource["source"], resource["moref"])] = nested(
                resource, "summary", "config", "product", "version")
    for key, network in networks.items():
        if network["type"] == "DistributedVirtualPortgroup":
            facts = network.setdefault("facts", {})
            facts["vlan"] = _port_group_vlan(network)
            facts["uplink"] = _is_uplink(network, key in uplinks, (network["source"], str(
                nested(network, "config", "distributedVirtualSwitch"))) in switches_listing_uplinks)
    hosts_by_cluster: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for resource in resources:
        cloud, kind = resource["cloud"], resource["type"]
        if cloud == "vsphere" and kind == "VirtualMachine":
            _vsphere_vm(resource, networks, host_versions)
        elif cloud == "vsphere" and kind == "HostSystem":
            _host(resource)
            if isinstance(resource.get("parent"), str):
                hosts_by_cluster.setdefault((resource["source"], resource["parent"]), []).append(resource)
        elif cloud == "vsphere" and kind == "vCenter":
            _release(resource, resource.get("about"))
            if isinstance(resource.get("setting"), list):
                resource.setdefault("facts", {})["vcenter_settings"] = settings(resource["setting"])
        elif cloud == "azure" and kind == "microsoft.compute/virtualmachinescalesets":
            _scale_set(resource, vm_sizes)
        elif cloud == "azure" and kind == "microsoft.compute/virtualmachines":
            _azure_vm(resource, vm_sizes)
        elif cloud == "azure" and kind == "microsoft.hybridcompute/machines":
            _arc_machine(resource)
        elif cloud == "azure" and kind == "microsoft.sqlvirtualmachine/sqlvirtualmachines":
            _sql_vm(resource)
    for resource in resources:
        if resource["cloud"] == "vsphere" and resource["type"] == "ClusterComputeResource":
            members = hosts_by_cluster.get((resource["source"], str(resource.get("moref"))), [])
            resource.setdefault("facts", {})["host_editions"] = sorted(
                {str(h["facts"]["license"]["edition"]) for h in members if h.get("facts", {}).get("license")})
    _azure_network_joins(resources)
    # last: it reads the NIC, subnet and VM joins above
    assess_exposure(resources)
