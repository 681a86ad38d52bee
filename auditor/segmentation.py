"""Segmentation zones across both clouds, from the `network.zones` baseline.

A zone (pci, prod, dev, ...) lists the networks that belong to it: vSphere port groups by
name pattern, Azure subnets by id pattern, and address ranges (a subnet whose prefix lies
inside one belongs to the zone). A VM belongs to the zone named by its `zone` tag (the
tag name is `network.zone_tag`), or else to the first zone whose `vm_names` patterns match
its name. This stage writes, on VMs of both clouds:

- `facts.zone`: the VM's own zone;
- `facts.networks[].zone`: the zone of each attached network (absent when no zone claims it);
- `facts.networks[].foreign`: true when that network belongs to a zone other than the VM's.

So one rule reads `facts.networks[].foreign` on vSphere and Azure VMs alike.

NSGs are zoned too: `facts.zones` lists the zones of the subnets an NSG is attached to,
and `facts.cross_zone` the inbound Allow rules whose source address range belongs to
another zone ({name, rule, source, zone}), the traffic between zones that segmentation
is meant to stop at a firewall.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from .baselines import Baselines
from .errors import BaselineError
from .patterns import Pattern, fullmatch, glob_pattern, linear

VM_TYPES = {("vsphere", "VirtualMachine"), ("azure", "microsoft.compute/virtualmachines")}


@dataclass
class Zone:
    """The networks and VM names one zone claims."""

    name: str
    port_groups: list[str] = field(default_factory=list)
    subnets: list[str] = field(default_factory=list)
    cidrs: list[Any] = field(default_factory=list)  # ip_network objects
    vm_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # one compiled pattern per kind of glob: tested once per VM or network of the estate,
        # in linear time whatever the names (they come from the estate)
        self.vm_name_pattern = _any_glob(self.vm_names)
        self.port_group_pattern = _any_glob(self.port_groups)
        self.subnet_pattern = _any_glob(self.subnets, ignore_case=True)  # ARM ids are case-insensitive

    def claims(self, network: dict[str, Any], cloud: str) -> bool:
        """Whether the attached network (an entry of facts.networks) belongs to this zone."""
        if cloud == "vsphere":
            name = network.get("name")
            return isinstance(name, str) and self.port_group_pattern is not None and \
                fullmatch(self.port_group_pattern, name)
        subnet_id = str(network.get("id", ""))
        if self.subnet_pattern is not None and fullmatch(self.subnet_pattern, subnet_id):
            return True
        prefix = network.get("prefix")
        if isinstance(prefix, str) and self.cidrs:
            try:
                subnet = ipaddress.ip_network(prefix, strict=False)
            except ValueError:
                return False
            return any(subnet.version == c.version and subnet.subnet_of(c) for c in self.cidrs)
        return False


def _any_glob(globs: list[str], ignore_case: bool = False) -> Pattern | None:
    """One pattern matching what any of `globs` matches, or None for no globs."""
    if not globs:
        return None
    return linear("|".join(glob_pattern(pattern) for pattern in globs), ignore_case=ignore_case)


def load_zones(baselines: Baselines) -> tuple[list[Zone], str]:
    """Zones from `network.zones` (empty when the table is not loaded) and the zone tag."""
    table = baselines.tables.get("network.zones")
    tag_table = baselines.tables.get("network.zone_tag")
    tag = tag_table.value if tag_table is not None and isinstance(tag_table.value, str) else "zone"
    if table is None:
        return [], tag
    if not isinstance(table.value, dict):
        raise BaselineError("network.zones must map zone names to their networks", where=table.file,
                            line=table.line)
    zones = []
    for name, spec in table.value.items():
        if not isinstance(spec, dict):
            raise BaselineError(f"network.zones.{name} must be a mapping (port_groups, subnets, cidrs, vm_names)",
                                where=table.file, line=table.line)
        unknown = set(spec) - {"port_groups", "subnets", "cidrs", "vm_names", "description"}
        if unknown:
            raise BaselineError(f"network.zones.{name}: unknown key {sorted(unknown)[0]!r}", where=table.file,
                                line=table.line)
        try:
            cidrs = [ipaddress.ip_network(str(c), strict=False) for c in _listed(spec.get("cidrs"))]
        except ValueError as exc:
            raise BaselineError(f"network.zones.{name}: {exc}", where=table.file, line=table.line) from None
        try:  # the globs compile here, for RE2: a bad one is the table's error, not a crash
            zones.append(Zone(str(name), [str(p) for p in _listed(spec.get("port_groups"))],
                              [str(p) for p in _listed(spec.get("subnets"))], cidrs,
                              [str(p) for p in _listed(spec.get("vm_names"))]))
        except ValueError as exc:
            raise BaselineError(f"network.zones.{name}: a pattern cannot be used: {exc}", where=table.file,
                                line=table.line) from None
    return zones, tag


def zone_of(network: dict[str, Any], cloud: str, zones: list[Zone]) -> str | None:
    """The first zone that claims the network, or None."""
    return next((zone.name for zone in zones if zone.claims(network, cloud)), None)


def _listed(value: Any) -> list[Any]:
    """A baseline field that takes a list, also written as one value."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def assign_zones(resources: list[dict[str, Any]], baselines: Baselines) -> None:
    """Write facts.zone and facts.networks[].zone / .foreign on VMs of both clouds."""
    zones, tag = load_zones(baselines)
    if not zones:
        return
    assign_nsg_zones(resources, zones)
    known = {zone.name.lower(): zone.name for zone in zones}
    # an estate has few networks and many VMs on each: decide each network once
    claimed_by: dict[tuple[str, Any, Any, Any], str | None] = {}
    for resource in resources:
        if (resource["cloud"], resource["type"]) not in VM_TYPES:
            continue
        facts = resource.setdefault("facts", {})
        own = _own_zone(resource, zones, known, tag)
        if own is None:
            facts.pop("zone", None)
        else:
            facts["zone"] = own
        cloud = resource["cloud"]
        for network in facts.get("networks") or ():
            if not isinstance(network, dict):
                continue
            key = (cloud, network.get("name"), network.get("id"), network.get("prefix"))
            try:
                claimed = claimed_by[key]
            except KeyError:
                claimed = claimed_by[key] = zone_of(network, cloud, zones)
            except TypeError:  # an unhashable field: decide without the cache
                claimed = zone_of(network, cloud, zones)
            network["zone"] = claimed
            network["foreign"] = bool(own and claimed and claimed != own)


def assign_nsg_zones(resources: list[dict[str, Any]], zones: list[Zone]) -> None:
    """Write facts.zones and facts.cross_zone on NSGs attached to zoned subnets."""
    nsg_zones: dict[str, set[str]] = {}
    for vnet in resources:
        if vnet["cloud"] != "azure" or vnet["type"] != "microsoft.network/virtualnetworks":
            continue
        properties = vnet.get("properties")
        for subnet in _listed(properties.get("subnets") if isinstance(properties, dict) else None):
            if not isinstance(subnet, dict) or not isinstance(subnet.get("properties"), dict):
                continue
            nsg = subnet["properties"].get("networkSecurityGroup")
            nsg_id = nsg.get("id") if isinstance(nsg, dict) else None
            network = {"id": subnet.get("id"), "prefix": subnet["properties"].get("addressPrefix")}
            zone = zone_of(network, "azure", zones)
            if isinstance(nsg_id, str) and zone:
                nsg_zones.setdefault(nsg_id.lower(), set()).add(zone)
    for nsg in resources:
        if nsg["cloud"] != "azure" or nsg["type"] != "microsoft.network/networksecuritygroups":
            continue
        own = nsg_zones.get(nsg["id"].lower())
        if not own:
            continue
        facts = nsg.setdefault("facts", {})
        facts["zones"] = sorted(own)
        facts["cross_zone"] = _cross_zone_rules(nsg, own, zones)


def _cross_zone_rules(nsg: dict[str, Any], own: set[str], zones: list[Zone]) -> list[dict[str, Any]]:
    crossing = []
    properties = nsg.get("properties")
    for rule in _listed(properties.get("securityRules") if isinstance(properties, dict) else None):
        spec = rule.get("properties") if isinstance(rule, dict) else None
        if not isinstance(spec, dict) or spec.get("direction") != "Inbound" or spec.get("access") != "Allow":
            continue
        sources = _listed(spec.get("sourceAddressPrefixes")) or _listed(spec.get("sourceAddressPrefix"))
        for source in sources:
            try:
                prefix = ipaddress.ip_network(str(source), strict=False)
            except ValueError:
                continue  # service tags and '*': the Internet rules judge those
            for zone in zones:
                if zone.name in own:
                    continue
                if any(prefix.version == c.version and prefix.overlaps(c) for c in zone.cidrs):
                    crossing.append({"name": f"{rule.get('name')}:{source}", "rule": rule.get("name"),
                                     "source": str(source), "zone": zone.name, "nsg_zones": sorted(own)})
    return crossing


def _own_zone(resource: dict[str, Any], zones: list[Zone], known: dict[str, str], tag: str) -> str | None:
    tags = resource.get("tags") or {}
    value = tags.get(tag)
    if value is None and tags:
        value = next((v for k, v in tags.items() if str(k).lower() == tag.lower()), None)
    if isinstance(value, str) and value.strip().lower() in known:
        return known[value.strip().lower()]
    name = resource.get("name")
    if isinstance(name, str):
        for zone in zones:
            if zone.vm_name_pattern is not None and fullmatch(zone.vm_name_pattern, name):
                return zone.name
    return None
