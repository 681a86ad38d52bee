"""Internet exposure of Azure NSGs, NICs, VMs and scale sets, joined across the estate.

The evaluation itself is `auditor/reachability.py` (NSG rules as Azure runs them); this
stage finds, for each NIC IP configuration, its subnet's NSG and its own NSG, and the paths
in from the Internet (a public IP, a load balancer's NAT or load-balancing rule with a
public frontend, a firewall DNAT to its private address), and writes facts that rules read
without knowing anything of priorities:

- on NSGs, `facts.exposure.admits`: what the NSG on its own admits from the Internet, one
  entry per protocol and deciding rule ({protocol, ports, from, decided_by, rules, reaches,
  key}), where `reaches` names the VMs that traffic really reaches through a path;
  `facts.exposure.guards`: the NICs and scale sets it guards (directly or by subnet);
- on virtual networks, `facts.public_ips`: the public IPs attached inside them (NICs,
  firewalls, Bastion hosts, Application Gateways), which DDoS protection is for;
- on Application Gateways, `facts.waf`: {enabled, mode, via} of the WAF in front of them
  (its own configuration or its linked WAF policy; absent where a linked policy was not
  collected, so the rule says not evaluated);
- on subscriptions, `facts.bastion_hosts` and `facts.virtual_machines`;
- on NICs, VMs and scale sets, `facts.exposure.internet`: the traffic that reaches them
  from the Internet, per path ({protocol, ports, from, path, decided_by, rules, nic, key}),
  and `facts.exposure.paths`: every path in, even one the NSGs close.

Anything that cannot be read (an NSG rule of an unknown shape, a path to an NSG that was
not collected) is listed in `facts.exposure.not_evaluated`, so a rule can say so.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Any

from .reachability import (
    ALL_PORTS,
    PROTOCOLS,
    PUBLIC,
    V6_OFFSET,
    Admitted,
    Interval,
    Path,
    Target,
    as_list,
    at_level,
    both_admit,
    internet_sources,
    intersect_intervals,
    nsg_admits,
    port_ranges,
    ports_text,
    summarise,
    targets_matter,
    through,
)

NSG = "microsoft.network/networksecuritygroups"
NIC = "microsoft.network/networkinterfaces"
VNET = "microsoft.network/virtualnetworks"
PUBLIC_IP = "microsoft.network/publicipaddresses"
LOAD_BALANCER = "microsoft.network/loadbalancers"
FIREWALL = "microsoft.network/azurefirewalls"
VM = "microsoft.compute/virtualmachines"
SCALE_SET = "microsoft.compute/virtualmachinescalesets"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _id(reference: Any) -> str:
    """The lower-cased ARM id of a `{"id": ...}` reference ("" for none)."""
    value = _dict(reference).get("id")
    return value.lower() if isinstance(value, str) else ""


def _protocols(value: Any) -> frozenset[str]:
    text = str(value or "").strip().lower()
    if text in ("all", "*", "any"):
        return frozenset({"tcp", "udp"})
    return frozenset({text}) & frozenset(PROTOCOLS) if text else frozenset()


def _standard(resource: dict[str, Any] | None) -> bool:
    """Whether a public IP or load balancer is of the Standard SKU, closed to inbound traffic
    until an NSG allows it (Microsoft: "secure by default"); Basic, or no SKU, is open."""
    return str(_dict(_dict(resource).get("sku")).get("name", "")).lower() == "standard"


def _family_sources(public_ip: dict[str, Any] | None) -> tuple[Interval, ...]:
    """The Internet sources that can reach a public IP: IPv4 ones for an IPv4 address (the
    default), IPv6 ones for an IPv6 address."""
    version = str(_dict(_dict(public_ip).get("properties")).get("publicIPAddressVersion") or "IPv4").lower()
    return tuple(i for i in PUBLIC if (i[0] >= V6_OFFSET) == (version == "ipv6"))


class _Estate:
    """The Azure network resources of a snapshot, indexed by lower-case id."""

    def __init__(self, resources: list[dict[str, Any]]):
        self.by_type: dict[str, list[dict[str, Any]]] = {}
        self.by_id: dict[str, dict[str, Any]] = {}
        for resource in resources:
            if resource.get("cloud") != "azure":
                continue
            self.by_type.setdefault(resource["type"], []).append(resource)
            self.by_id[resource["id"].lower()] = resource
        self.subnets: dict[str, dict[str, Any]] = {}
        for vnet in self.by_type.get(VNET, []):
            for subnet in as_list(_dict(vnet.get("properties")).get("subnets")):
                if isinstance(subnet, dict) and isinstance(subnet.get("id"), str):
                    self.subnets[subnet["id"].lower()] = subnet
        self.admitted: dict[tuple[str, str, Target | None, tuple[Interval, ...]], Admitted] = {}
        self.combined: dict[tuple[Any, ...], Admitted] = {}
        self.carried: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        self._targets_matter: dict[str, bool] = {}
        self.missing: set[str] = set()
        self._load_balancer_paths = self._index_load_balancers()
        self._dnat_paths = self._index_firewalls()

    def nsg(self, nsg_id: str) -> dict[str, Any] | None:
        resource = self.by_id.get(nsg_id)
        if nsg_id and resource is None:
            self.missing.add(nsg_id)
        return resource

    def admits(self, nsg_id: str, level: str, target: Target | None,
               relay: tuple[Interval, ...] = ()) -> Admitted:
        """What one NSG admits to `target` from the Internet, or from a relay's address;
        evaluated once per NSG where no rule of it names a particular destination (most
        NSGs), else once per distinct target, and only labelled per level (the NSG on its
        own, on a subnet, on a NIC)."""
        if nsg_id not in self._targets_matter:
            self._targets_matter[nsg_id] = targets_matter(self.by_id.get(nsg_id)) if nsg_id else False
        if not self._targets_matter[nsg_id]:
            target = None
        key = (nsg_id, level, target, relay)
        if key not in self.admitted:
            evaluated = (nsg_id, "nsg", target, relay)
            if evaluated not in self.admitted:
                nsg = self.nsg(nsg_id) if nsg_id else None
                if nsg_id and nsg is None:
                    # an NSG we did not collect: we cannot say what it admits, so nothing is
                    # claimed through it (and the NIC says it was not evaluated)
                    self.admitted[evaluated] = Admitted([], [f"NSG {nsg_id} was not collected"])
                else:
                    self.admitted[evaluated] = nsg_admits(nsg, "nsg", target, list(relay) if relay else None)
            self.admitted[key] = at_level(self.admitted[evaluated], level)
        return self.admitted[key]

    def _public(self, frontend: dict[str, Any]) -> tuple[str, tuple[Interval, ...]] | None:
        """Name of the public IP behind a load balancer or firewall frontend, and the
        Internet sources that can reach it; None for a private frontend."""
        public_id = _id(_dict(frontend.get("properties")).get("publicIPAddress"))
        if not public_id:
            return None
        resource = self.by_id.get(public_id)
        return (str(resource["name"]) if resource else public_id.rsplit("/", 1)[-1]), _family_sources(resource)

    def _index_load_balancers(self) -> dict[str, list[Path]]:
        """NIC IP configuration or backend pool id -> paths in from a public frontend."""
        paths: dict[str, list[Path]] = {}
        for balancer in self.by_type.get(LOAD_BALANCER, []):
            properties = _dict(balancer.get("properties"))
            standard = _standard(balancer)
            public = {str(f.get("id", "")).lower(): self._public(f)
                      for f in as_list(properties.get("frontendIPConfigurations")) if isinstance(f, dict)}
            # scale sets: a NAT pool maps a frontend port range to one backend port on each instance
            for pool in as_list(properties.get("inboundNatPools")):
                pool_properties = _dict(_dict(pool).get("properties"))
                frontend = public.get(_id(pool_properties.get("frontendIPConfiguration")))
                ports = port_ranges(pool_properties.get("backendPort"))
                if frontend and ports and isinstance(_dict(pool).get("id"), str):
                    paths.setdefault(pool["id"].lower(), []).append(Path(
                        "load-balancer", f"{balancer['name']} NAT pool {_dict(pool).get('name')} ({frontend[0]})",
                        _protocols(pool_properties.get("protocol")), tuple(ports), frontend[1], standard))
            for nat in as_list(properties.get("inboundNatRules")):
                nat_properties = _dict(_dict(nat).get("properties"))
                frontend = public.get(_id(nat_properties.get("frontendIPConfiguration")))
                # a NAT rule targets one IP configuration, or (the newer kind, with a frontend
                # port range) a backend pool
                target = _id(nat_properties.get("backendIPConfiguration")) or _id(
                    nat_properties.get("backendAddressPool"))
                ports = port_ranges(nat_properties.get("backendPort"))
                if frontend and target and ports:
                    paths.setdefault(target, []).append(Path(
                        "load-balancer", f"{balancer['name']} NAT rule {_dict(nat).get('name')} ({frontend[0]})",
                        _protocols(nat_properties.get("protocol")), tuple(ports), frontend[1], standard))
            for rule in as_list(properties.get("loadBalancingRules")):
                rule_properties = _dict(_dict(rule).get("properties"))
                frontend = public.get(_id(rule_properties.get("frontendIPConfiguration")))
                ports = port_ranges(rule_properties.get("backendPort"))
                if rule_properties.get("backendPort") == 0:  # HA ports: every port
                    ports = [ALL_PORTS]
                pools = [_id(rule_properties.get("backendAddressPool"))] + [
                    _id(p) for p in as_list(rule_properties.get("backendAddressPools"))]
                if frontend and ports:
                    path = Path("load-balancer", f"{balancer['name']} rule {_dict(rule).get('name')} ({frontend[0]})",
                                _protocols(rule_properties.get("protocol")), tuple(ports), frontend[1], standard)
                    for pool in filter(None, pools):
                        paths.setdefault(pool, []).append(path)
        return paths

    def _index_firewalls(self) -> dict[str, list[Path]]:
        """Private address -> DNAT paths of Azure Firewalls with a public address: their classic
        NAT rule collections, and the NAT rule collections of their firewall policy (and of
        its base policies). Rule collection groups that were not collected leave the
        firewall's `facts.exposure.not_evaluated` saying so: nothing is claimed through them."""
        paths: dict[str, list[Path]] = {}
        for firewall in self.by_type.get(FIREWALL, []):
            properties = _dict(firewall.get("properties"))
            if not any(self._public(c) for c in as_list(properties.get("ipConfigurations")) if isinstance(c, dict)):
                continue
            rules: list[tuple[dict[str, Any], Any]] = []
            for collection in as_list(properties.get("natRuleCollections")):
                collection_properties = _dict(_dict(collection).get("properties"))
                if str(_dict(collection_properties.get("action")).get("type", "Dnat")).lower() == "dnat":
                    rules += [(_dict(rule), _dict(rule).get("protocols")) for rule in
                              as_list(collection_properties.get("rules"))]
            missing: list[str] = []
            rules += [(rule, rule.get("ipProtocols"))
                      for rule in self._policy_nat_rules(_id(properties.get("firewallPolicy")), missing, set())]
            missing += [f"DNAT rule {rule.get('name')} admits IP groups, which are not resolved" for rule, _ in rules
                        if rule.get("sourceIpGroups")]
            firewall.setdefault("facts", {})["exposure"] = {"not_evaluated": missing}
            for rule, protocols in rules:
                path = _dnat_path(firewall["name"], rule, protocols, self._relay_of(properties))
                if path is not None:
                    paths.setdefault(str(rule["translatedAddress"]).strip(), []).append(path)
        return paths

    def _relay_of(self, properties: dict[str, Any]) -> tuple[Interval, ...]:
        """The private addresses Azure Firewall gives DNAT traffic as its source: its own
        private IPs, else (not collected) its subnet's range."""
        found: list[Interval] = []
        for config in as_list(properties.get("ipConfigurations")):
            config_properties = _dict(_dict(config).get("properties"))
            for text in (config_properties.get("privateIPAddress"), _dict(_dict(self.subnets.get(
                    _id(config_properties.get("subnet")))).get("properties")).get("addressPrefix")):
                if isinstance(text, str):
                    try:
                        network = ipaddress.ip_network(text.strip(), strict=False)
                    except ValueError:
                        continue
                    offset = 0 if network.version == 4 else V6_OFFSET
                    found.append((int(network.network_address) + offset, int(network.broadcast_address) + offset))
                    break
        # an address that no service tag but VirtualNetwork and `*` name, where none is known
        return tuple(found) or ((1, 1),)

    def _policy_nat_rules(self, policy_id: str, missing: list[str], seen: set[str]) -> list[dict[str, Any]]:
        """The DNAT rules of a firewall policy and of the base policies it inherits from."""
        if not policy_id or policy_id in seen:
            return []
        seen.add(policy_id)
        policy = self.by_id.get(policy_id)
        if policy is None:
            missing.append(f"firewall policy {policy_id.rsplit('/', 1)[-1]} was not collected")
            return []
        properties = _dict(policy.get("properties"))
        rules = self._policy_nat_rules(_id(properties.get("basePolicy")), missing, seen)
        for reference in as_list(properties.get("ruleCollectionGroups")):
            group = self.by_id.get(_id(reference))
            if group is None:
                missing.append(f"rule collection group {_id(reference).rsplit('/', 1)[-1]} of firewall policy "
                               f"{policy['name']} was not collected")
                continue
            for collection in as_list(_dict(group.get("properties")).get("ruleCollections")):
                collection = _dict(collection)
                if str(collection.get("ruleCollectionType", "")).lower() != "firewallpolicynatrulecollection" or \
                        str(_dict(collection.get("action")).get("type", "")).lower() != "dnat":
                    continue
                rules += [_dict(rule) for rule in as_list(collection.get("rules"))
                          if str(_dict(rule).get("ruleType", "NatRule")).lower() == "natrule"]
        return rules

    def paths_to(self, config: dict[str, Any], config_id: str) -> list[Path]:
        """Every path in from the Internet to one NIC IP configuration."""
        properties = _dict(config.get("properties"))
        paths = []
        public_id = _id(properties.get("publicIPAddress"))
        if public_id:
            resource = self.by_id.get(public_id)
            paths.append(Path("public-ip", str(resource["name"]) if resource else public_id.rsplit("/", 1)[-1],
                              frozenset(PROTOCOLS), (ALL_PORTS,), _family_sources(resource), _standard(resource)))
        for key in [config_id, *(_id(p) for p in as_list(properties.get("loadBalancerBackendAddressPools"))),
                    *(_id(p) for p in as_list(properties.get("loadBalancerInboundNatPools")))]:
            paths.extend(self._load_balancer_paths.get(key, []))
        address = properties.get("privateIPAddress")
        if isinstance(address, str):
            paths.extend(self._dnat_paths.get(address.strip(), []))
        return paths


def _dnat_path(firewall: str, rule: dict[str, Any], protocols: Any,
               relay: tuple[Interval, ...] = ()) -> Path | None:
    """The path one DNAT rule opens to its translated address; None for a rule that cannot
    bring Internet traffic in (private sources only, IP groups, no port)."""
    address = rule.get("translatedAddress")
    ports = port_ranges(rule.get("translatedPort"))
    # IP groups cannot be resolved from the snapshot: such a rule is not taken for the Internet
    prefixes = as_list(rule.get("sourceAddresses")) or ([] if rule.get("sourceIpGroups") else ["*"])
    sources = [interval for prefix in prefixes for interval in internet_sources(prefix) or []]
    wanted = frozenset(p for value in as_list(protocols) for p in _protocols(value))
    if not isinstance(address, str) or not ports or not sources or not wanted:
        return None
    return Path("firewall-dnat", f"{firewall} rule {rule.get('name')}", wanted, tuple(ports), tuple(sources),
                relay=relay)


_UNNAMED = "\x00"  # a path's name while its traffic is summarised; no ARM name holds it


def _exposure_of_config(estate: _Estate, config: dict[str, Any], config_id: str, nic_nsg: str,
                        target: Target, label: str) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    properties = _dict(config.get("properties"))
    subnet = estate.subnets.get(_id(properties.get("subnet")), {})
    subnet_nsg = _id(_dict(subnet.get("properties")).get("networkSecurityGroup"))
    def both(relay: tuple[Interval, ...] = ()) -> tuple[tuple[int, int], Admitted]:
        # thousands of NICs share a few NSG pairs: combine and summarise each pair and path once
        subnet_admits = estate.admits(subnet_nsg, "subnet", target, relay)
        nic_admits = estate.admits(nic_nsg, "nic", target, relay)
        pair = (id(subnet_admits), id(nic_admits))
        if pair not in estate.combined:
            estate.combined[pair] = both_admit(subnet_admits, nic_admits)
        return pair, estate.combined[pair]

    pair, admitted = both()
    entries: list[dict[str, Any]] = []
    paths = estate.paths_to(config, config_id)
    for path in paths:
        if path.closed_without_nsg and not subnet_nsg and not nic_nsg:
            continue  # a Standard SKU front door admits nothing until an NSG allows it
        if path.relay:  # the NSGs see the firewall's address, not the Internet's
            pair, admitted = both(path.relay)
        else:
            pair, admitted = both()
        # the same kind of path (a public IP: every protocol and port) carries the same
        # traffic whatever its name: summarise once per shape, then name it per NIC
        shape = (pair, path.kind, path.protocols, path.ports, path.sources, path.relay)
        if shape not in estate.carried:
            estate.carried[shape] = summarise(through(admitted, path), replace(path, name=_UNNAMED))
        unnamed, named = replace(path, name=_UNNAMED).describe(), path.describe()
        for carried in estate.carried[shape]:
            entries.append(dict(carried, path=named, nic=label,
                                key=f"{label}:{carried['key'].replace(unnamed, named, 1)}"))
    return entries, [path.describe() for path in paths], admitted.unreadable


def assess_exposure(resources: list[dict[str, Any]]) -> None:
    """Write `facts.exposure` on the NSGs, NICs, VMs and scale sets of the snapshot, and the
    facts of the protections in front of the Internet (public IPs per VNet, WAF, Bastion)."""
    estate = _Estate(resources)
    _protections(estate)
    if not estate.by_type.get(NSG) and not estate.by_type.get(NIC) and not estate.by_type.get(SCALE_SET):
        return
    # (NSG id, rule, protocol) -> VM -> the ports the rule lets in to it
    reached: dict[tuple[str, str, str], dict[str, list[Interval]]] = {}
    guards: dict[str, set[str]] = {}

    def record(entries: list[dict[str, Any]], owner: str) -> None:
        for entry in entries:
            ports = port_ranges(entry["ports"].split(",")) or []
            for rule in entry["rules"]:
                reached.setdefault((rule["nsg_id"], rule["rule"], entry["protocol"]), {}).setdefault(
                    owner, []).extend(ports)

    by_vm: dict[str, list[dict[str, Any]]] = {}
    for nic in estate.by_type.get(NIC, []):
        properties = _dict(nic.get("properties"))
        nic_nsg = _id(properties.get("networkSecurityGroup"))
        owner_id = _id(properties.get("virtualMachine"))
        owner = estate.by_id.get(owner_id, {}).get("name") or nic["name"]
        entries, paths, unreadable = [], [], []
        for config in as_list(properties.get("ipConfigurations")):
            if not isinstance(config, dict):
                continue
            config_properties = _dict(config.get("properties"))
            groups = frozenset(_id(g) for g in as_list(config_properties.get("applicationSecurityGroups")))
            address = config_properties.get("privateIPAddress")
            target = Target(address if isinstance(address, str) else None, groups)
            subnet = estate.subnets.get(_id(config_properties.get("subnet")), {})
            for nsg_id in (_id(_dict(subnet.get("properties")).get("networkSecurityGroup")), nic_nsg):
                if nsg_id:
                    guards.setdefault(nsg_id, set()).add(nic["name"])
            found, config_paths, config_unreadable = _exposure_of_config(
                estate, config, str(config.get("id", "")).lower(), nic_nsg, target, nic["name"])
            entries += found
            paths += config_paths
            unreadable += config_unreadable
        record(entries, owner)
        nic.setdefault("facts", {})["exposure"] = {"internet": entries, "paths": paths,
                                                   "not_evaluated": sorted(set(unreadable))}
        if owner_id:
            by_vm.setdefault(owner_id, []).append(nic["facts"]["exposure"])
    for vm in estate.by_type.get(VM, []):
        exposures = by_vm.get(vm["id"].lower(), [])
        vm.setdefault("facts", {})["exposure"] = {
            "internet": [entry for exposure in exposures for entry in exposure["internet"]],
            "paths": [path for exposure in exposures for path in exposure["paths"]],
            "not_evaluated": sorted({item for exposure in exposures for item in exposure["not_evaluated"]})}
    for scale_set in estate.by_type.get(SCALE_SET, []):
        _scale_set(estate, scale_set, guards, record)
    for nsg in estate.by_type.get(NSG, []):
        alone = estate.admits(nsg["id"].lower(), "nsg", None)
        admits = summarise(alone.boxes)
        for entry in admits:
            # what of this admission really reaches a VM, port by port: a rule that admits
            # 22 and 3389 reaches a VM whose NIC NSG lets only 22 through on 22 alone
            admitted_ports = port_ranges(entry["ports"].split(",")) or []
            vms: set[str] = set()
            ports: list[Interval] = []
            for rule in entry["rules"]:
                for vm, vm_ports in reached.get((rule["nsg_id"], rule["rule"], entry["protocol"]), {}).items():
                    common = intersect_intervals(admitted_ports, vm_ports)
                    if common:
                        vms.add(vm)
                        ports += common
            entry["reaches"] = sorted(vms)
            entry["reached_ports"] = ports_text(ports) if ports else ""
        nsg.setdefault("facts", {})["exposure"] = {
            "admits": admits, "guards": sorted(guards.get(nsg["id"].lower(), ())),
            "not_evaluated": sorted(set(alone.unreadable))}


def _scale_set(estate: _Estate, scale_set: dict[str, Any], guards: dict[str, set[str]], record: Any) -> None:
    profile = _dict(_dict(_dict(scale_set.get("properties")).get("virtualMachineProfile")).get("networkProfile"))
    entries, paths, unreadable = [], [], []
    for nic_config in as_list(profile.get("networkInterfaceConfigurations")):
        nic_properties = _dict(_dict(nic_config).get("properties"))
        nic_nsg = _id(nic_properties.get("networkSecurityGroup"))
        for config in as_list(nic_properties.get("ipConfigurations")):
            if not isinstance(config, dict):
                continue
            config_properties = _dict(config.get("properties"))
            subnet = estate.subnets.get(_id(config_properties.get("subnet")), {})
            prefix = _dict(subnet.get("properties")).get("addressPrefix")
            groups = frozenset(_id(g) for g in as_list(config_properties.get("applicationSecurityGroups")))
            target = Target(None, groups, prefix if isinstance(prefix, str) else None)
            for nsg_id in (_id(_dict(subnet.get("properties")).get("networkSecurityGroup")), nic_nsg):
                if nsg_id:
                    guards.setdefault(nsg_id, set()).add(scale_set["name"])
            # a scale set's instances get a public IP each from publicIPAddressConfiguration
            instance_config = {"properties": {
                "subnet": config_properties.get("subnet"),
                "publicIPAddress": {"id": "instance public IP"} if config_properties.get("publicIPAddressConfiguration")
                else None,
                "loadBalancerBackendAddressPools": config_properties.get("loadBalancerBackendAddressPools"),
                "loadBalancerInboundNatPools": config_properties.get("loadBalancerInboundNatPools")}}
            found, config_paths, config_unreadable = _exposure_of_config(
                estate, instance_config, "", nic_nsg, target, f"{scale_set['name']}/{_dict(nic_config).get('name')}")
            entries += found
            paths += config_paths
            unreadable += config_unreadable
    record(entries, scale_set["name"])
    scale_set.setdefault("facts", {})["exposure"] = {"internet": entries, "paths": paths,
                                                     "not_evaluated": sorted(set(unreadable))}


APPLICATION_GATEWAY = "microsoft.network/applicationgateways"
WAF_POLICY = "microsoft.network/applicationgatewaywebapplicationfirewallpolicies"
BASTION = "microsoft.network/bastionhosts"
SUBSCRIPTION = "microsoft.resources/subscriptions"


def _vnet_of(subnet_id: str) -> str:
    return subnet_id.split("/subnets/", 1)[0] if "/subnets/" in subnet_id else ""


def _protections(estate: _Estate) -> None:
    """Public IPs per virtual network (DDoS protection), the WAF of each Application
    Gateway, and the Bastion hosts and VMs of each subscription."""
    public_ips: dict[str, set[str]] = {}

    def attached(configs: Any, subnet_configs: Any = None) -> None:
        subnets = {_id(_dict(_dict(c).get("properties")).get("subnet")) for c in as_list(subnet_configs or configs)}
        for config in as_list(configs):
            public_id = _id(_dict(_dict(config).get("properties")).get("publicIPAddress"))
            if public_id:
                for subnet in subnets:
                    if _vnet_of(subnet):
                        public_ips.setdefault(_vnet_of(subnet), set()).add(
                            str(_dict(estate.by_id.get(public_id)).get("name") or public_id.rsplit("/", 1)[-1]))

    for kind in (NIC, FIREWALL, BASTION):
        for resource in estate.by_type.get(kind, []):
            attached(_dict(resource.get("properties")).get("ipConfigurations"))
    for gateway in estate.by_type.get(APPLICATION_GATEWAY, []):
        properties = _dict(gateway.get("properties"))
        attached(properties.get("frontendIPConfigurations"), properties.get("gatewayIPConfigurations"))
        waf = _waf(estate, properties)
        if waf is not None:
            gateway.setdefault("facts", {})["waf"] = waf
    for vnet in estate.by_type.get(VNET, []):
        vnet.setdefault("facts", {})["public_ips"] = sorted(public_ips.get(vnet["id"].lower(), ()))
    subscriptions = estate.by_type.get(SUBSCRIPTION, [])
    if subscriptions:
        # one pass over the hosts and VMs, not one per subscription
        bastions: dict[str, list[str]] = {}
        for host in estate.by_type.get(BASTION, []):
            bastions.setdefault(_subscription_id(host["id"]), []).append(host["name"])
        machines: dict[str, int] = {}
        for vm in estate.by_type.get(VM, []):
            machines[_subscription_id(vm["id"])] = machines.get(_subscription_id(vm["id"]), 0) + 1
        for subscription in subscriptions:
            # what sits under the subscription's id: for the usual `/subscriptions/<id>`, its
            # bucket; for any other id, a scan of the ids under it
            prefix = subscription["id"].lower().rstrip("/") + "/"
            own = _subscription_id(subscription["id"])
            if own and prefix == f"/subscriptions/{own}/":
                hosts, count = bastions.get(own, []), machines.get(own, 0)
            else:
                hosts = [h["name"] for h in estate.by_type.get(BASTION, []) if h["id"].lower().startswith(prefix)]
                count = sum(1 for vm in estate.by_type.get(VM, []) if vm["id"].lower().startswith(prefix))
            subscription.setdefault("facts", {}).update(bastion_hosts=sorted(hosts), virtual_machines=count)


def _subscription_id(resource_id: str) -> str:
    """The subscription segment of an ARM id, lower-case ("" for none)."""
    parts = resource_id.lower().split("/")
    return parts[2] if len(parts) > 2 and parts[1] == "subscriptions" else ""


def _waf(estate: _Estate, properties: dict[str, Any]) -> dict[str, Any] | None:
    """The WAF in front of an Application Gateway: its linked WAF policy wins over the
    gateway's own configuration, as Azure applies it. None when the linked policy was not
    collected: nothing can be said."""
    policy_id = _id(properties.get("firewallPolicy"))
    if policy_id:
        policy = estate.by_id.get(policy_id)
        if policy is None:
            return None
        settings = _dict(_dict(policy.get("properties")).get("policySettings"))
        return {"enabled": str(settings.get("state", "")).lower() == "enabled",
                "mode": settings.get("mode"), "via": f"WAF policy {policy['name']}"}
    configuration = properties.get("webApplicationFirewallConfiguration")
    if isinstance(configuration, dict):
        return {"enabled": configuration.get("enabled") is True, "mode": configuration.get("firewallMode"),
                "via": "the gateway's WAF configuration"}
    sku = str(_dict(properties.get("sku")).get("tier", "")).lower()
    return {"enabled": False, "mode": None, "via": f"none ({sku or 'unknown'} tier)"}
