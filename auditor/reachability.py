"""Effective reachability from the Internet, evaluated the way Azure evaluates it.

Microsoft, "How network security groups filter network traffic": the rules of an NSG are
processed in priority order (lowest number first), per direction, and the first rule whose
protocol, source, source port, destination and destination port match the packet decides,
Allow or Deny; the default rules (65000 and up) come last and deny inbound traffic from
the Internet. Inbound traffic to a VM passes the subnet's NSG, then the NIC's: both must
allow it. Service tags, `*` and protocols compare case-insensitively; protocol `*` (Any)
covers TCP, UDP and ICMP.

So a rule cannot be judged on its own. This module models the traffic an NSG admits as a
set of boxes (protocol x destination ports x public source addresses) and runs the rules
as Azure does, first match wins, with set algebra: a Deny of 0.0.0.0/1 in front of an
Allow of `*` still leaves 128.0.0.0/1 admitted; `0.0.0.0/1` + `128.0.0.0/1` is the whole
Internet; `1-1000` + `1001-65535` is every port.

Only public source addresses are modelled (the "Internet"): private and shared ranges
(RFC 1918, 100.64/10, link-local, ...), `VirtualNetwork`, `AzureLoadBalancer` and other
service tags name no Internet source. IPv6 is modelled beside IPv4 on one number line.

A VM is reachable from the Internet only through a path: a public IP on its NIC, a load
balancer's inbound NAT or load-balancing rule whose frontend is public and whose backend
is the NIC, or an Azure Firewall DNAT rule that translates to its private address. What a
path carries (all ports for a public IP; the backend port of a NAT rule) is intersected
with what the subnet NSG AND the NIC NSG admit.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

PROTOCOLS = ("tcp", "udp", "icmp")
ALL_PORTS = (0, 65535)
V6_OFFSET = 1 << 32  # IPv6 addresses sit after IPv4's on one number line
# sources that mean "any address": Internet is a service tag, `*` and Any are wildcards
_ANYWHERE = {"*", "any", "internet"}
_ANY_V4 = {"0.0.0.0/0", "0.0.0.0"}  # `0.0.0.0` alone is taken as IPv4's any, as earlier auditor versions did
_ANY_V6 = {"::/0", "::"}
# not the public Internet (RFC 6890 special-purpose ranges that cannot source Internet traffic)
_NOT_PUBLIC = ["0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
               "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
               "203.0.113.0/24", "224.0.0.0/3", "::/8", "fc00::/7", "fe80::/10", "ff00::/8", "2001:db8::/32"]

Interval = tuple[int, int]  # inclusive
# box comparisons one NSG evaluation may make (about a second): real NSGs need a few
# thousand; one with thousands of /32 sources and scattered ports would need billions
MAX_WORK = 2_000_000
MAX_PIECES = 5_000  # pieces of traffic still undecided; a real NSG leaves a few hundred


def _span(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Interval:
    offset = 0 if network.version == 4 else V6_OFFSET
    return (int(network.network_address) + offset, int(network.broadcast_address) + offset)


def _subtract_intervals(intervals: list[Interval], cut: Interval) -> list[Interval]:
    result = []
    for low, high in intervals:
        if high < cut[0] or low > cut[1]:
            result.append((low, high))
            continue
        if low < cut[0]:
            result.append((low, cut[0] - 1))
        if high > cut[1]:
            result.append((cut[1] + 1, high))
    return result


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for low, high in sorted(intervals):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def _public_space() -> list[Interval]:
    space = [_span(ipaddress.ip_network("0.0.0.0/0")), _span(ipaddress.ip_network("::/0"))]
    for text in _NOT_PUBLIC:
        space = _subtract_intervals(space, _span(ipaddress.ip_network(text)))
    return space


PUBLIC = _public_space()


def intersect_intervals(left: list[Interval], right: list[Interval]) -> list[Interval]:
    """What two sets of intervals (addresses, ports) have in common, merged."""
    result = []
    for a_low, a_high in left:
        for b_low, b_high in right:
            low, high = max(a_low, b_low), min(a_high, b_high)
            if low <= high:
                result.append((low, high))
    return _merge(result)


def internet_sources(prefix: Any) -> list[Interval] | None:
    """The public addresses a source prefix or service tag names (empty when it names no
    Internet source); None when it cannot be read."""
    return sources_in(prefix, PUBLIC)


def sources_in(prefix: Any, universe: list[Interval]) -> list[Interval] | None:
    """The addresses of `universe` that a source prefix or service tag names; None when it
    cannot be read. The universe is the public Internet, or the private address a relay
    (Azure Firewall's DNAT, which also rewrites the source) presents to the NSGs behind it."""
    if universe is not PUBLIC:
        text = prefix.strip().lower() if isinstance(prefix, str) else None
        if text in _ANYWHERE - {"internet"}:
            return list(universe)
        if text == "virtualnetwork":  # the VNet's own (private) addresses
            outside = list(universe)
            for interval in PUBLIC:
                outside = _subtract_intervals(outside, interval)
            return outside
        public = internet_sources(prefix)
        if public is None:
            return None
        spans = _spans(prefix)
        return intersect_intervals(spans if spans is not None else public, universe)
    if not isinstance(prefix, str):
        return None
    text = prefix.strip().lower()
    if text in _ANYWHERE:
        return list(PUBLIC)
    if text in _ANY_V4:
        return [i for i in PUBLIC if i[0] < V6_OFFSET]
    if text in _ANY_V6:
        return [i for i in PUBLIC if i[0] >= V6_OFFSET]
    if "/" in text or text[:1].isdigit() or ":" in text:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            if "-" in text:  # Azure Firewall accepts `a.b.c.d-e.f.g.h` ranges
                first, _, last = text.partition("-")
                try:
                    low, high = ipaddress.ip_address(first.strip()), ipaddress.ip_address(last.strip())
                except ValueError:
                    return None
                offset = 0 if low.version == 4 else V6_OFFSET
                return intersect_intervals([(int(low) + offset, int(high) + offset)], PUBLIC)
            return None
        return intersect_intervals([_span(network)], PUBLIC)
    # another service tag (VirtualNetwork, AzureLoadBalancer, Storage, AzureCloud, ...):
    # Microsoft's or the VNet's own ranges, not the Internet
    return []


def port_ranges(value: Any) -> list[Interval] | None:
    """Destination ports of `*`, `22`, `"1000-2000"` or a list of them; None if unreadable."""
    values = value if isinstance(value, list) else [value]
    result: list[Interval] = []
    for item in values:
        if isinstance(item, int) and not isinstance(item, bool):
            text = str(item)
        elif isinstance(item, str):
            text = item.strip()
        else:
            return None
        if text.lower() in ("*", "any"):
            result.append(ALL_PORTS)
            continue
        low, dash, high = text.partition("-")
        low, high = low.strip(), high.strip()
        if not (low.isascii() and low.isdigit() and len(low) <= 5) or (
                dash and not (high.isascii() and high.isdigit() and len(high) <= 5)):
            return None
        start, end = int(low), int(high) if dash else int(low)
        if start > end or end > 65535:
            return None
        result.append((start, end))
    return _merge(result)


def protocols_of(value: Any) -> set[str] | None:
    """The protocols an NSG rule's protocol names (Any/`*` covers TCP, UDP and ICMP)."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if text in ("*", "any"):
        return set(PROTOCOLS)
    if text in PROTOCOLS:
        return {text}
    return set() if text in ("esp", "ah") else None


def ports_text(ranges: Iterable[Interval]) -> str:
    """`22,80-90` for port ranges; `*` for every port."""
    merged = _merge(ranges)
    if merged == [ALL_PORTS]:
        return "*"
    return ",".join(str(low) if low == high else f"{low}-{high}" for low, high in merged)


# --- traffic as boxes ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Box:
    """Traffic of one protocol, to a range of destination ports, from a range of sources."""

    protocol: str
    ports: Interval
    sources: Interval

    def intersect(self, other: Box) -> Box | None:
        if self.protocol != other.protocol:
            return None
        ports = (max(self.ports[0], other.ports[0]), min(self.ports[1], other.ports[1]))
        sources = (max(self.sources[0], other.sources[0]), min(self.sources[1], other.sources[1]))
        if ports[0] > ports[1] or sources[0] > sources[1]:
            return None
        return Box(self.protocol, ports, sources)

    def minus(self, other: Box) -> list[Box]:
        """This box without `other`: up to four boxes."""
        common = self.intersect(other)
        if common is None:
            return [self]
        pieces = []
        if self.ports[0] < common.ports[0]:
            pieces.append(Box(self.protocol, (self.ports[0], common.ports[0] - 1), self.sources))
        if self.ports[1] > common.ports[1]:
            pieces.append(Box(self.protocol, (common.ports[1] + 1, self.ports[1]), self.sources))
        if self.sources[0] < common.sources[0]:
            pieces.append(Box(self.protocol, common.ports, (self.sources[0], common.sources[0] - 1)))
        if self.sources[1] > common.sources[1]:
            pieces.append(Box(self.protocol, common.ports, (common.sources[1] + 1, self.sources[1])))
        return pieces


def _spans(prefix: Any) -> list[Interval] | None:
    """The addresses an address prefix names, public or not; None for a tag."""
    text = str(prefix).strip().lower()
    if not ("/" in text or text[:1].isdigit() or ":" in text):
        return None
    try:
        return [_span(ipaddress.ip_network(text, strict=False))]
    except ValueError:
        return None


def everything(universe: list[Interval] | None = None) -> list[Box]:
    """All traffic from `universe` (default: the public Internet): every protocol and port."""
    return [Box(protocol, ALL_PORTS if protocol != "icmp" else (0, 0), sources)
            for protocol in PROTOCOLS for sources in (PUBLIC if universe is None else universe)]


def subtract(boxes: list[Box], cut: list[Box], limit: int | None = None) -> list[Box] | None:
    """`boxes` without any of `cut`; None once more than `limit` pieces would be followed, or
    more than MAX_WORK comparisons made."""
    work = 0
    for piece in cut:
        boxes = [rest for box in boxes for rest in box.minus(piece)]
        work += len(boxes)
        if limit is not None and (len(boxes) > limit or work > MAX_WORK):
            return None
    return boxes


# --- NSG rules ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Decision:
    """The NSG rule that decided some traffic."""

    nsg: str  # name of the NSG, or "" where no NSG guards that level
    rule: str
    priority: int | None
    level: str  # "subnet", "nic" or "nsg" (the NSG on its own)
    default: bool = False
    nsg_id: str = ""  # lower-case ARM id: two NSGs may share a name

    def describe(self) -> str:
        if not self.nsg:
            return f"no NSG on the {self.level}"
        where = f"{self.nsg} rule {self.rule}" + (f" (priority {self.priority})" if self.priority is not None else "")
        return where + (" [default rule]" if self.default else "")


@dataclass
class Admitted:
    """Traffic admitted from the Internet, with what decided it at each level."""

    boxes: list[tuple[Box, tuple[Decision, ...]]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # rules that could not be read

    def ports(self, protocol: str) -> list[Interval]:
        return _merge(box.ports for box, _ in self.boxes if box.protocol == protocol)


# Azure's default inbound rules, as every NSG has them even where a collector left them out
_DEFAULT_INBOUND = [
    {"name": "AllowVnetInBound", "properties": {"priority": 65000, "direction": "Inbound", "access": "Allow",
                                                "protocol": "*", "sourceAddressPrefix": "VirtualNetwork",
                                                "destinationAddressPrefix": "VirtualNetwork",
                                                "destinationPortRange": "*"}},
    {"name": "AllowAzureLoadBalancerInBound", "properties": {"priority": 65001, "direction": "Inbound",
                                                             "access": "Allow", "protocol": "*",
                                                             "sourceAddressPrefix": "AzureLoadBalancer",
                                                             "destinationAddressPrefix": "*",
                                                             "destinationPortRange": "*"}},
    {"name": "DenyAllInBound", "properties": {"priority": 65500, "direction": "Inbound", "access": "Deny",
                                              "protocol": "*", "sourceAddressPrefix": "*",
                                              "destinationAddressPrefix": "*", "destinationPortRange": "*"}},
]


@dataclass(frozen=True)
class Target:
    """What the traffic is addressed to, as NSG destinations are matched: the NIC's private
    address and its application security groups. None of them known: any destination."""

    address: str | None = None
    security_groups: frozenset[str] = frozenset()
    subnet_prefix: str | None = None  # scale sets: instances take addresses from the subnet


def _field(properties: dict[str, Any], singular: str, plural: str) -> list[Any]:
    values: list[Any] = []
    one = properties.get(singular)
    if one not in (None, ""):
        values.append(one)
    many = properties.get(plural)
    if isinstance(many, list):
        values.extend(many)
    return values


def targets_matter(nsg: dict[str, Any] | None) -> bool:
    """Whether any inbound rule of the NSG names a destination narrower than any address in
    the VNet: only then does what it admits depend on the NIC (its address, its ASGs), and
    only then must it be evaluated per NIC rather than once."""
    properties = nsg.get("properties") if isinstance(nsg, dict) and isinstance(nsg.get("properties"), dict) else {}
    for rule in as_list(properties.get("securityRules")):
        rule_properties = rule.get("properties") if isinstance(rule, dict) else None
        if not isinstance(rule_properties, dict) or str(rule_properties.get("direction", "")).lower() != "inbound":
            continue
        if rule_properties.get("destinationApplicationSecurityGroups"):
            return True
        for prefix in _field(rule_properties, "destinationAddressPrefix", "destinationAddressPrefixes"):
            if not isinstance(prefix, str) or prefix.strip().lower() not in ("*", "any", "virtualnetwork"):
                return True
    return False


def as_list(value: Any) -> list[Any]:
    """The elements of a list field; anything else (absent, or another shape) has none."""
    return value if isinstance(value, list) else []


def _destination_matches(properties: dict[str, Any], target: Target | None) -> bool | None:
    """Whether the rule's destination covers the target; None when it cannot be read."""
    prefixes = _field(properties, "destinationAddressPrefix", "destinationAddressPrefixes")
    groups = properties.get("destinationApplicationSecurityGroups")
    group_ids = {str(g.get("id", "")).lower() for g in groups if isinstance(g, dict)} \
        if isinstance(groups, list) else set()
    if not prefixes and not group_ids:
        return True  # Azure requires a destination; none collected means any
    if target is None:
        return True
    if group_ids and target.security_groups & group_ids:
        return True
    for prefix in prefixes:
        if not isinstance(prefix, str):
            return None
        text = prefix.strip().lower()
        if text in ("*", "any", "virtualnetwork"):
            return True
        if text == "internet" or not (text[:1].isdigit() or ":" in text):
            continue  # another tag: not a VM's private address
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            return None
        if target.address:
            try:
                if ipaddress.ip_address(target.address) in network:
                    return True
            except ValueError:
                return True
        elif target.subnet_prefix:
            try:
                if network.overlaps(ipaddress.ip_network(target.subnet_prefix, strict=False)):
                    return True
            except (ValueError, TypeError):
                return True
        else:
            return True
    return False


def _any_source_port(properties: dict[str, Any]) -> bool:
    ports = _field(properties, "sourcePortRange", "sourcePortRanges")
    return not ports or any(str(port).strip().lower() in ("*", "any", "0-65535") for port in ports)


def _any_destination(properties: dict[str, Any]) -> bool:
    if properties.get("destinationApplicationSecurityGroups"):
        return False
    prefixes = _field(properties, "destinationAddressPrefix", "destinationAddressPrefixes")
    return not prefixes or any(str(p).strip().lower() in ("*", "any", "virtualnetwork", "0.0.0.0/0")
                               for p in prefixes)


def _rule_boxes(properties: dict[str, Any], universe: list[Interval] = PUBLIC) -> list[Box] | None:
    """The Internet traffic a rule's protocol, source and destination ports cover; None when
    any of them cannot be read."""
    protocols = protocols_of(properties.get("protocol"))
    if protocols is None:
        return None
    sources: list[Interval] = []
    for prefix in _field(properties, "sourceAddressPrefix", "sourceAddressPrefixes"):
        covered = sources_in(prefix, universe)
        if covered is None:
            return None
        sources.extend(covered)
    # application security groups group NICs of the VNet: never Internet sources
    sources = _merge(sources)
    ports = port_ranges(_field(properties, "destinationPortRange", "destinationPortRanges") or "*")
    if ports is None:
        return None
    boxes = []
    for protocol in sorted(protocols):
        for source in sources:
            if protocol == "icmp":  # ICMP has no ports: a rule's port ranges do not narrow it
                boxes.append(Box("icmp", (0, 0), source))
            else:
                boxes.extend(Box(protocol, port, source) for port in ports)
    return boxes


def nsg_admits(nsg: dict[str, Any] | None, level: str, target: Target | None = None,
               universe: list[Interval] | None = None) -> Admitted:
    """The traffic one NSG admits inbound to `target` (any destination when None) from
    `universe` (default: the public Internet), first match wins in priority order, Azure's
    default rules last. No NSG admits all."""
    universe = PUBLIC if universe is None else universe
    if nsg is None:
        return Admitted([(box, (Decision("", "", None, level),)) for box in everything(universe)])
    properties = nsg.get("properties") if isinstance(nsg.get("properties"), dict) else {}
    name = str(nsg.get("name", ""))
    rules: list[tuple[int, bool, dict[str, Any]]] = []
    unreadable: list[str] = []
    defaults = properties.get("defaultSecurityRules")
    for default, entries in ((False, properties.get("securityRules")),
                             (True, defaults if isinstance(defaults, list) and defaults else _DEFAULT_INBOUND)):
        for rule in entries if isinstance(entries, list) else []:
            rule_properties = rule.get("properties") if isinstance(rule, dict) else None
            if not isinstance(rule_properties, dict):
                continue
            if str(rule_properties.get("direction", "")).lower() != "inbound":
                continue
            priority = rule_properties.get("priority")
            if not isinstance(priority, int) or isinstance(priority, bool):
                unreadable.append(str(rule.get("name")))
                continue
            rules.append((priority, default, rule))
    remaining = everything(universe)
    admitted: list[tuple[Box, tuple[Decision, ...]]] = []
    for priority, default, rule in sorted(rules, key=lambda entry: entry[0]):
        rule_properties = rule["properties"]
        boxes = _rule_boxes(rule_properties, universe)
        destination = _destination_matches(rule_properties, target)
        if boxes is None or destination is None:
            unreadable.append(str(rule.get("name")))
            continue
        if not destination or not boxes:
            continue
        allow = str(rule_properties.get("access", "")).lower() == "allow"
        if not allow and not _any_source_port(rule_properties):
            # a Deny of some source ports only: the attacker chooses the source port, so the
            # traffic it names still reaches the later rules
            continue
        if not allow and target is None and not _any_destination(rule_properties):
            # the NSG on its own: a Deny of one destination leaves the others to later rules
            continue
        too_complex = Admitted([], [*unreadable, f"{name}: too many distinct sources and ports to evaluate "
                                                 f"(rule {rule.get('name')})"])
        if len(remaining) * len(boxes) > MAX_WORK:
            # thousands of distinct sources and ports split the traffic into more pieces than
            # can be followed in seconds: say so rather than stall the scan or guess
            return too_complex
        decided = [common for box in remaining for cut in boxes if (common := box.intersect(cut)) is not None]
        if not decided:
            continue
        if allow:
            decision = Decision(name, str(rule.get("name", "")), priority, level, default,
                                str(nsg.get("id", "")).lower())
            admitted.extend((box, (decision,)) for box in decided)
        left = subtract(remaining, boxes, MAX_PIECES)
        if left is None:
            return too_complex
        remaining = left
    return Admitted(admitted, unreadable)


def at_level(admitted: Admitted, level: str) -> Admitted:
    """The same admitted traffic, its decisions labelled as made at `level` (one NSG on a
    subnet and on a NIC decides alike: only where it sits differs)."""
    if all(decision.level == level for _, decisions in admitted.boxes for decision in decisions):
        return admitted
    return Admitted([(box, tuple(replace(decision, level=level) for decision in decisions))
                     for box, decisions in admitted.boxes], admitted.unreadable)


def both_admit(subnet: Admitted, nic: Admitted) -> Admitted:
    """Traffic that the subnet's NSG and then the NIC's NSG both admit."""
    if len(subnet.boxes) * len(nic.boxes) > MAX_WORK:
        return Admitted([], [*subnet.unreadable, *nic.unreadable,
                             "the subnet's and the NIC's NSG: too many distinct sources and ports to combine"])
    boxes = []
    for subnet_box, subnet_decisions in subnet.boxes:
        for nic_box, nic_decisions in nic.boxes:
            common = subnet_box.intersect(nic_box)
            if common is not None:
                boxes.append((common, subnet_decisions + nic_decisions))
    return Admitted(boxes, subnet.unreadable + nic.unreadable)


# --- paths from the Internet --------------------------------------------------------------------

@dataclass(frozen=True)
class Path:
    """A way in from the Internet: what it is, and the traffic it can carry to the VM."""

    kind: str  # public-ip, load-balancer, firewall-dnat
    name: str  # the public IP, "lb rule", "firewall rule"
    protocols: frozenset[str]
    ports: tuple[Interval, ...]  # destination ports at the VM (after translation)
    sources: tuple[Interval, ...] = tuple(PUBLIC)
    # Standard SKU public IPs and load balancers are closed to inbound traffic unless an NSG
    # on the subnet or NIC allows it; Basic ones are open
    closed_without_nsg: bool = False
    # Azure Firewall's DNAT also rewrites the source to the firewall's private address: the
    # NSGs behind it judge that address, not the Internet's (empty: the source is kept)
    relay: tuple[Interval, ...] = ()

    def describe(self) -> str:
        return {"public-ip": "public IP", "load-balancer": "load balancer", "firewall-dnat": "firewall DNAT"}[
            self.kind] + f" {self.name}"


def through(admitted: Admitted, path: Path) -> list[tuple[Box, tuple[Decision, ...]]]:
    """The part of the admitted traffic that the path carries. Through a relay, `admitted`
    is what the NSGs admit from the relay's address: what passes there reaches from every
    source the path accepts."""
    if path.relay:
        relayed = []
        for box, decisions in admitted.boxes:
            if box.protocol not in path.protocols:
                continue
            for low, high in (path.ports if box.protocol != "icmp" else ((0, 0),)):
                ports = (max(box.ports[0], low), min(box.ports[1], high))
                if ports[0] <= ports[1]:
                    relayed += [(Box(box.protocol, ports, source), decisions) for source in path.sources]
        return relayed
    carried = [Box(protocol, ports, sources) for protocol in path.protocols
               for ports in (path.ports if protocol != "icmp" else ((0, 0),)) for sources in path.sources]
    return [(common, decisions) for box, decisions in admitted.boxes for cut in carried
            if (common := box.intersect(cut)) is not None]


def summarise(entries: list[tuple[Box, tuple[Decision, ...]]], path: Path | None = None) -> list[dict[str, Any]]:
    """Facts for rules and reports: one entry per protocol and deciding rules, with the
    ports (`22,3389` or `*`), whether every Internet source gets in or only some, and who decided.

    Each call builds new mappings: callers may add to them."""
    grouped: dict[tuple[str, tuple[Decision, ...]], list[Box]] = {}
    for box, decisions in entries:
        grouped.setdefault((box.protocol, decisions), []).append(box)
    facts = []
    for (protocol, decisions), boxes in sorted(grouped.items(), key=lambda item: (item[0][0], str(item[0][1]))):
        sources = _merge(box.sources for box in boxes)
        ports = ports_text(box.ports for box in boxes) if protocol != "icmp" else "*"
        entry: dict[str, Any] = {
            "protocol": protocol, "ports": ports,
            # every source that could use the path (an IPv4 public IP: every public IPv4 address)
            "from": _reach_of(sources, list(path.sources) if path else PUBLIC),
            "decided_by": " and ".join(decision.describe() for decision in decisions),
            "rules": [{"nsg": d.nsg, "rule": d.rule, "priority": d.priority, "level": d.level, "default": d.default,
                       "nsg_id": d.nsg_id} for d in decisions if d.nsg],
        }
        if path is not None:
            entry["path"] = path.describe()
        # stable across scans: the protocol, the path and the deciding rules by name (a
        # changed priority or port list is an update of the finding, not a new one)
        entry["key"] = ":".join([protocol, entry.get("path", ""),
                                 "+".join(f"{d.nsg}/{d.rule}" if d.nsg else f"no NSG on the {d.level}"
                                          for d in decisions)])
        facts.append(entry)
    return facts


def _reach_of(sources: list[Interval], possible: list[Interval]) -> str:
    """`the Internet` when every source that could come in does; else whether it is all of
    IPv4's or IPv6's Internet and none of the other's (`0.0.0.0/0` alone), or only part."""
    if _covers(sources, possible):
        return "the Internet"
    for family, label in ((4, "the IPv4 Internet"), (6, "the IPv6 Internet")):
        wanted = [i for i in possible if (i[0] >= V6_OFFSET) == (family == 6)]
        other = [i for i in possible if (i[0] >= V6_OFFSET) != (family == 6)]
        if wanted and _covers(sources, wanted) and not intersect_intervals(sources, other):
            return label
    return "part of the Internet"


def _covers(have: list[Interval], want: list[Interval]) -> bool:
    remaining = want
    for interval in have:
        remaining = _subtract_intervals(remaining, interval)
    return not remaining
