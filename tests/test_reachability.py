"""Effective reachability from the Internet, case by case, with the verdict Azure gives.

Each case builds a small estate (a VM, its NIC, the subnet's and the NIC's NSGs, and the
paths in: public IP, load balancer, firewall DNAT) and asks whether a protocol and port
reach the VM from the Internet. The expected verdicts follow Microsoft's "How network
security groups filter network traffic": priority order per direction, first match wins,
default rules last, subnet NSG AND NIC NSG, protocol Any covers TCP, UDP and ICMP, tags
and protocols case-insensitive; and "Azure Load Balancer" / "Azure Firewall DNAT" for the
paths. Cases marked near-miss must NOT be reachable."""

from __future__ import annotations

from typing import Any

import pytest

from auditor.exposure import assess_exposure
from auditor.reachability import internet_sources, nsg_admits, port_ranges, ports_text

NET = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network"
SUBNET = f"{NET}/virtualNetworks/vnet/subnets/snet"
VM_ID = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm1"
CONFIG = f"{NET}/networkInterfaces/nic1/ipConfigurations/ipconfig1"
ADDRESS = "10.0.1.4"


def rule(name: str, priority: int, access: str = "Allow", protocol: str = "Tcp", source: Any = "*",
         ports: Any = "3389", direction: str = "Inbound", destination: Any = "*", **extra: Any) -> dict[str, Any]:
    properties: dict[str, Any] = {"priority": priority, "access": access, "protocol": protocol, "direction": direction,
                                  "sourcePortRange": "*"}
    if isinstance(source, list):
        properties["sourceAddressPrefixes"] = source
    else:
        properties["sourceAddressPrefix"] = source
    if isinstance(ports, list):
        properties["destinationPortRanges"] = ports
    else:
        properties["destinationPortRange"] = ports
    if destination is not None:
        properties["destinationAddressPrefix"] = destination
    properties.update(extra)
    return {"name": name, "properties": properties}


def nsg(name: str, *rules: dict[str, Any], defaults: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    properties: dict[str, Any] = {"securityRules": list(rules)}
    if defaults is not None:
        properties["defaultSecurityRules"] = defaults
    return {"id": f"{NET}/networkSecurityGroups/{name}", "name": name, "cloud": "azure",
            "type": "microsoft.network/networksecuritygroups", "source": "s", "tags": {}, "properties": properties}


def estate(subnet_nsg: dict | None = None, nic_nsg: dict | None = None, public_ip: bool = True,
           groups: tuple[str, ...] = (), extra: tuple[dict, ...] = (), pools: tuple[str, ...] = ()) -> list[dict]:
    """A VM with one NIC in one subnet; the NSGs and paths a case names."""
    config: dict[str, Any] = {"privateIPAddress": ADDRESS, "subnet": {"id": SUBNET}}
    resources: list[dict[str, Any]] = []
    if public_ip:
        config["publicIPAddress"] = {"id": f"{NET}/publicIPAddresses/pip1"}
        resources.append({"id": f"{NET}/publicIPAddresses/pip1", "name": "pip1", "cloud": "azure", "source": "s",
                          "type": "microsoft.network/publicipaddresses", "tags": {},
                          "properties": {"ipAddress": "20.1.2.3"}})
    if groups:
        config["applicationSecurityGroups"] = [{"id": f"{NET}/applicationSecurityGroups/{g}"} for g in groups]
    if pools:
        config["loadBalancerBackendAddressPools"] = [{"id": pool} for pool in pools]
    nic = {"id": f"{NET}/networkInterfaces/nic1", "name": "nic1", "cloud": "azure", "source": "s", "tags": {},
           "type": "microsoft.network/networkinterfaces",
           "properties": {"ipConfigurations": [{"id": CONFIG, "name": "ipconfig1", "properties": config}],
                          "virtualMachine": {"id": VM_ID}}}
    if nic_nsg is not None:
        nic["properties"]["networkSecurityGroup"] = {"id": nic_nsg["id"]}
        resources.append(nic_nsg)
    subnet: dict[str, Any] = {"id": SUBNET, "name": "snet", "properties": {"addressPrefix": "10.0.1.0/24"}}
    if subnet_nsg is not None:
        subnet["properties"]["networkSecurityGroup"] = {"id": subnet_nsg["id"]}
        resources.append(subnet_nsg)
    vnet = {"id": f"{NET}/virtualNetworks/vnet", "name": "vnet", "cloud": "azure", "source": "s", "tags": {},
            "type": "microsoft.network/virtualnetworks", "properties": {"subnets": [subnet]}}
    vm = {"id": VM_ID, "name": "vm1", "cloud": "azure", "source": "s", "tags": {},
          "type": "microsoft.compute/virtualmachines", "properties": {}}
    return [*resources, nic, vnet, vm, *extra]


def load_balancer(frontend_public: bool = True, nat: dict | None = None, rule_: dict | None = None) -> dict:
    frontend = {"id": f"{NET}/loadBalancers/lb1/frontendIPConfigurations/fe", "name": "fe",
                "properties": {"publicIPAddress": {"id": f"{NET}/publicIPAddresses/lb-pip"}} if frontend_public
                else {"privateIPAddress": "10.0.9.9"}}
    properties: dict[str, Any] = {"frontendIPConfigurations": [frontend]}
    if nat is not None:
        properties["inboundNatRules"] = [{"name": "nat-rdp", "properties": {
            "frontendIPConfiguration": {"id": frontend["id"]}, "backendIPConfiguration": {"id": CONFIG}, **nat}}]
    if rule_ is not None:
        properties["loadBalancingRules"] = [{"name": "lb-https", "properties": {
            "frontendIPConfiguration": {"id": frontend["id"]},
            "backendAddressPool": {"id": f"{NET}/loadBalancers/lb1/backendAddressPools/pool"}, **rule_}}]
    return {"id": f"{NET}/loadBalancers/lb1", "name": "lb1", "cloud": "azure", "source": "s", "tags": {},
            "type": "microsoft.network/loadbalancers", "properties": properties}


POOL = f"{NET}/loadBalancers/lb1/backendAddressPools/pool"


def firewall(translated: str = ADDRESS, sources: list[str] | None = None, port: str = "3389") -> dict:
    return {"id": f"{NET}/azureFirewalls/fw1", "name": "fw1", "cloud": "azure", "source": "s", "tags": {},
            "type": "microsoft.network/azurefirewalls", "properties": {
                "ipConfigurations": [{"name": "c", "properties": {"publicIPAddress": {"id": f"{NET}/publicIPAddresses/fw"}}}],
                "natRuleCollections": [{"name": "dnat", "properties": {"priority": 100, "action": {"type": "Dnat"}, "rules": [
                    {"name": "rdp-in", "protocols": ["TCP"], "sourceAddresses": sources or ["*"],
                     "destinationAddresses": ["20.9.9.9"], "destinationPorts": ["50001"],
                     "translatedAddress": translated, "translatedPort": port}]}}]}}


ALLOW_RDP = nsg("sub", rule("allow-rdp", 200))
ALLOW_ALL = nsg("sub", rule("allow-all", 100, protocol="*", ports="*"))

# (case, resources, protocol, port, reachable, deciding rule that must be named or None)
CASES: list[tuple[str, list[dict], str, int, bool, str | None]] = [
    ("public IP, no NSG at any level", estate(), "tcp", 3389, True, "no NSG on the subnet"),
    ("near-miss: NSG admits all but no path in", estate(ALLOW_ALL, public_ip=False), "tcp", 3389, False, None),
    ("subnet NSG allows RDP from *", estate(ALLOW_RDP), "tcp", 3389, True, "allow-rdp"),
    ("source tag Internet", estate(nsg("sub", rule("r", 200, source="Internet"))), "tcp", 3389, True, "r"),
    ("source tag written internet", estate(nsg("sub", rule("r", 200, source="internet"))), "tcp", 3389, True, "r"),
    ("source Any", estate(nsg("sub", rule("r", 200, source="Any"))), "tcp", 3389, True, "r"),
    ("source 0.0.0.0/0", estate(nsg("sub", rule("r", 200, source="0.0.0.0/0"))), "tcp", 3389, True, "r"),
    ("near-miss: IPv6 sources cannot reach an IPv4 public IP", estate(nsg("sub", rule("r", 200, source="::/0"))),
     "tcp", 3389, False, None),
    ("near-miss: source 10.0.0.0/8", estate(nsg("sub", rule("r", 200, source="10.0.0.0/8"))), "tcp", 3389, False, None),
    ("near-miss: source VirtualNetwork", estate(nsg("sub", rule("r", 200, source="VirtualNetwork"))), "tcp", 3389,
     False, None),
    ("near-miss: source AzureLoadBalancer", estate(nsg("sub", rule("r", 200, source="AzureLoadBalancer"))), "tcp", 3389,
     False, None),
    ("the Internet as two halves", estate(nsg("sub", rule("r", 200, source=["0.0.0.0/1", "128.0.0.0/1"]))), "tcp",
     3389, True, "r"),
    ("a public range is part of the Internet", estate(nsg("sub", rule("r", 200, source="52.0.0.0/8"))), "tcp", 3389,
     True, "r"),
    ("near-miss: earlier Deny of RDP", estate(nsg("sub", rule("deny", 100, "Deny"), rule("allow", 200))), "tcp", 3389,
     False, None),
    ("Allow before a later Deny", estate(nsg("sub", rule("allow", 100), rule("deny", 200, "Deny"))), "tcp", 3389, True,
     "allow"),
    ("Deny of half the Internet leaves the other half", estate(nsg("sub", rule("deny", 100, "Deny", source="0.0.0.0/1"),
                                                                  rule("allow", 200))), "tcp", 3389, True, "allow"),
    ("near-miss: Deny Internet all ports first", estate(nsg("sub", rule("deny", 100, "Deny", protocol="*",
                                                                        source="Internet", ports="*"),
                                                            rule("allow", 200))), "tcp", 3389, False, None),
    ("a UDP Deny does not stop TCP", estate(nsg("sub", rule("deny", 100, "Deny", protocol="Udp"), rule("allow", 200))),
     "tcp", 3389, True, "allow"),
    ("near-miss: a Deny of protocol * stops TCP", estate(nsg("sub", rule("deny", 100, "Deny", protocol="*"),
                                                             rule("allow", 200))), "tcp", 3389, False, None),
    ("protocol written tcp", estate(nsg("sub", rule("r", 200, protocol="tcp"))), "tcp", 3389, True, "r"),
    ("protocol * covers UDP", estate(nsg("sub", rule("dns", 200, protocol="*", ports="53"))), "udp", 53, True, "dns"),
    ("ICMP rule admits ICMP", estate(nsg("sub", rule("ping", 200, protocol="Icmp", ports="*"))), "icmp", 0, True,
     "ping"),
    ("near-miss: ICMP with ports * opens no TCP port", estate(nsg("sub", rule("ping", 200, protocol="Icmp", ports="*"))),
     "tcp", 22, False, None),
    ("every port as two ranges", estate(nsg("sub", rule("r", 200, ports=["1-1000", "1001-65535"]))), "tcp", 65535,
     True, "r"),
    ("a range covers the port", estate(nsg("sub", rule("r", 200, ports="3380-3390"))), "tcp", 3389, True, "r"),
    ("near-miss: just past the range", estate(nsg("sub", rule("r", 200, ports="3380-3390"))), "tcp", 3391, False, None),
    ("plural port field", estate(nsg("sub", rule("r", 200, ports=["22", "3389"]))), "tcp", 22, True, "r"),
    ("near-miss: subnet allows, NIC denies", estate(ALLOW_RDP, nsg("nic", rule("deny", 100, "Deny"))), "tcp", 3389,
     False, None),
    ("near-miss: subnet denies, NIC allows", estate(nsg("sub", rule("deny", 100, "Deny")), nsg("nic", rule("a", 100))),
     "tcp", 3389, False, None),
    ("subnet and NIC both allow", estate(ALLOW_RDP, nsg("nic", rule("nic-rdp", 300))), "tcp", 3389, True, "nic-rdp"),
    ("near-miss: NIC NSG's default rule denies", estate(ALLOW_RDP, nsg("nic", rule("ssh", 100, ports="22"))), "tcp",
     3389, False, None),
    ("NIC NSG alone allows", estate(None, nsg("nic", rule("nic-rdp", 100))), "tcp", 3389, True, "nic-rdp"),
    ("near-miss: destination is another subnet", estate(nsg("sub", rule("r", 200, destination="10.0.2.0/24"))), "tcp",
     3389, False, None),
    ("destination holds the NIC's address", estate(nsg("sub", rule("r", 200, destination="10.0.1.0/24"))), "tcp", 3389,
     True, "r"),
    ("destination ASG the NIC belongs to",
     estate(nsg("sub", rule("r", 200, destination=None,
                            destinationApplicationSecurityGroups=[{"id": f"{NET}/applicationSecurityGroups/web"}])),
            groups=("web",)), "tcp", 3389, True, "r"),
    ("near-miss: destination ASG of other NICs",
     estate(nsg("sub", rule("r", 200, destination=None,
                            destinationApplicationSecurityGroups=[{"id": f"{NET}/applicationSecurityGroups/db"}])),
            groups=("web",)), "tcp", 3389, False, None),
    ("near-miss: an Outbound Allow", estate(nsg("sub", rule("r", 200, direction="Outbound"))), "tcp", 3389, False, None),
    ("direction written inbound", estate(nsg("sub", rule("r", 200, direction="inbound"))), "tcp", 3389, True, "r"),
    ("near-miss: default rules only", estate(nsg("sub")), "tcp", 3389, False, None),
    ("near-miss: collected default rules only",
     estate(nsg("sub", defaults=[rule("AllowVnetInBound", 65000, protocol="*", source="VirtualNetwork", ports="*",
                                      destination="VirtualNetwork"),
                                 rule("DenyAllInBound", 65500, "Deny", protocol="*", ports="*")])),
     "tcp", 3389, False, None),
    ("load balancer NAT to the NIC",
     estate(ALLOW_RDP, public_ip=False, extra=(load_balancer(nat={"protocol": "Tcp", "frontendPort": 50001,
                                                                  "backendPort": 3389}),)), "tcp", 3389, True, "allow-rdp"),
    ("near-miss: NAT in, but the NSG denies",
     estate(nsg("sub", rule("deny", 100, "Deny")), public_ip=False,
            extra=(load_balancer(nat={"protocol": "Tcp", "frontendPort": 50001, "backendPort": 3389}),)),
     "tcp", 3389, False, None),
    ("near-miss: NAT on a private frontend",
     estate(ALLOW_RDP, public_ip=False, extra=(load_balancer(False, nat={"protocol": "Tcp", "frontendPort": 50001,
                                                                         "backendPort": 3389}),)), "tcp", 3389, False, None),
    ("load-balancing rule to the NIC's pool",
     estate(ALLOW_ALL, public_ip=False, pools=(POOL,),
            extra=(load_balancer(rule_={"protocol": "Tcp", "frontendPort": 443, "backendPort": 443}),)),
     "tcp", 443, True, "allow-all"),
    ("near-miss: the load balancer carries 443, not RDP",
     estate(ALLOW_ALL, public_ip=False, pools=(POOL,),
            extra=(load_balancer(rule_={"protocol": "Tcp", "frontendPort": 443, "backendPort": 443}),)),
     "tcp", 3389, False, None),
    ("firewall DNAT to the NIC", estate(ALLOW_RDP, public_ip=False, extra=(firewall(),)), "tcp", 3389, True,
     "allow-rdp"),
    ("near-miss: DNAT only from private sources", estate(ALLOW_RDP, public_ip=False,
                                                         extra=(firewall(sources=["10.0.0.0/8"]),)), "tcp", 3389,
     False, None),
    ("near-miss: DNAT to another address", estate(ALLOW_RDP, public_ip=False, extra=(firewall("10.0.1.99"),)),
     "tcp", 3389, False, None),
    ("near-miss: an ESP rule opens no TCP port", estate(nsg("sub", rule("esp", 100, protocol="Esp", ports="*"))),
     "tcp", 3389, False, None),
    ("near-miss: an NSG that was not collected claims nothing",
     [r for r in estate(ALLOW_RDP) if r["type"] != "microsoft.network/networksecuritygroups"], "tcp", 3389, False,
     None),
]


def exposure_of(resources: list[dict], name: str = "vm1") -> dict[str, Any]:
    assess_exposure(resources)
    return next(r for r in resources if r["name"] == name)["facts"]["exposure"]


def reaches(entries: list[dict], protocol: str, port: int) -> list[dict]:
    return [e for e in entries if e["protocol"] == protocol and any(
        low <= port <= high for low, high in port_ranges(e["ports"].split(",")) or [])]


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40
    assert sum(1 for case in CASES if not case[4]) >= 15  # near-misses that must not be reported


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_the_verdict_azure_gives(case):
    _, resources, protocol, port, reachable, decided_by = case
    found = reaches(exposure_of(resources)["internet"], protocol, port)
    assert bool(found) == reachable, found
    if reachable:
        assert any(decided_by in entry["decided_by"] for entry in found), found


def test_an_nsg_that_guards_nothing_reachable_still_says_what_it_admits():
    resources = estate(ALLOW_RDP, public_ip=False)
    assess_exposure(resources)
    admits = next(r for r in resources if r["name"] == "sub")["facts"]["exposure"]["admits"]
    assert [(e["protocol"], e["ports"], e["reaches"]) for e in admits] == [("tcp", "3389", [])]
    with_path = estate(nsg("sub", rule("allow-rdp", 200)))
    assess_exposure(with_path)
    admits = next(r for r in with_path if r["name"] == "sub")["facts"]["exposure"]["admits"]
    assert admits[0]["reaches"] == ["vm1"]


def test_the_deciding_rule_is_named_with_its_priority_and_level():
    entry = exposure_of(estate(ALLOW_RDP, nsg("nic", rule("nic-rdp", 300))))["internet"][0]
    assert entry["decided_by"] == "sub rule allow-rdp (priority 200) and nic rule nic-rdp (priority 300)"
    assert [(r["level"], r["priority"]) for r in entry["rules"]] == [("subnet", 200), ("nic", 300)]
    assert entry["path"] == "public IP pip1" and entry["from"] == "the Internet"


def test_part_of_the_internet_is_said_so():
    entry = exposure_of(estate(nsg("sub", rule("r", 200, source="52.0.0.0/8"))))["internet"][0]
    assert entry["from"] == "part of the Internet"


def test_unreadable_rules_are_not_evaluated_rather_than_passed():
    resources = estate(nsg("sub", rule("odd", 100, protocol="Gre"), rule("allow", 200)))
    exposure = exposure_of(resources)
    assert "odd" in exposure["not_evaluated"]


def test_scale_set_instances_with_public_addresses():
    subnet_nsg = nsg("sub", rule("ssh", 100, ports="22"))
    resources = estate(subnet_nsg, public_ip=False)
    scale_set = {"id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachineScaleSets/ss",
                 "name": "ss", "cloud": "azure", "source": "s", "tags": {},
                 "type": "microsoft.compute/virtualmachinescalesets", "properties": {"virtualMachineProfile": {
                     "networkProfile": {"networkInterfaceConfigurations": [{"name": "nic", "properties": {
                         "ipConfigurations": [{"name": "ip", "properties": {
                             "subnet": {"id": SUBNET}, "publicIPAddressConfiguration": {"name": "pub"}}}]}}]}}}}
    resources.append(scale_set)
    assert reaches(exposure_of(resources, "ss")["internet"], "tcp", 22)
    scale_set["properties"]["virtualMachineProfile"]["networkProfile"]["networkInterfaceConfigurations"][0][
        "properties"]["ipConfigurations"][0]["properties"].pop("publicIPAddressConfiguration")
    assert not reaches(exposure_of(resources, "ss")["internet"], "tcp", 22)


@pytest.mark.parametrize("prefix, public", [("*", True), ("Internet", True), ("INTERNET", True), ("10.1.0.0/16", False),
                                            ("192.168.1.1", False), ("Storage", False), ("2001:db8::/32", False),
                                            ("::/0", True), ("8.8.8.8", True)])
def test_internet_sources(prefix, public):
    assert bool(internet_sources(prefix)) == public


def test_port_sets_merge_and_print():
    assert ports_text(port_ranges(["1-1000", "1001-65535", "0"])) == "*"
    assert ports_text(port_ranges(["22", "3380-3390", "3389"])) == "22,3380-3390"
    assert port_ranges("²") is None and port_ranges("70000") is None


def test_nsg_alone_with_any_destination():
    admitted = nsg_admits(nsg("n", rule("deny-half", 100, "Deny", source="0.0.0.0/1"), rule("allow", 200)), "nsg")
    assert admitted.ports("tcp") == [(3389, 3389)]


def test_scale_set_instances_behind_a_load_balancer_nat_pool():
    pool_id = f"{NET}/loadBalancers/lb1/inboundNatPools/rdp-pool"
    balancer = load_balancer()
    balancer["properties"]["inboundNatPools"] = [{"id": pool_id, "name": "rdp-pool", "properties": {
        "frontendIPConfiguration": {"id": f"{NET}/loadBalancers/lb1/frontendIPConfigurations/fe"}, "protocol": "Tcp",
        "frontendPortRangeStart": 50000, "frontendPortRangeEnd": 50099, "backendPort": 3389}}]
    resources = estate(ALLOW_ALL, public_ip=False, extra=(balancer,))
    scale_set = {"id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachineScaleSets/ss",
                 "name": "ss", "cloud": "azure", "source": "s", "tags": {},
                 "type": "microsoft.compute/virtualmachinescalesets", "properties": {"virtualMachineProfile": {
                     "networkProfile": {"networkInterfaceConfigurations": [{"name": "nic", "properties": {
                         "ipConfigurations": [{"name": "ip", "properties": {
                             "subnet": {"id": SUBNET}, "loadBalancerInboundNatPools": [{"id": pool_id}]}}]}}]}}}}
    resources.append(scale_set)
    exposure = exposure_of(resources, "ss")
    # the pool carries RDP to every instance, and nothing else, though the NSG admits all
    assert reaches(exposure["internet"], "tcp", 3389) and not reaches(exposure["internet"], "tcp", 22)
    assert "NAT pool rdp-pool" in reaches(exposure["internet"], "tcp", 3389)[0]["path"]


def policy_firewall(groups: list[dict], base: dict | None = None) -> list[dict]:
    """An Azure Firewall whose DNAT rules live in a firewall policy's rule collection groups."""
    policy = {"id": f"{NET}/firewallPolicies/fwp", "name": "fwp", "cloud": "azure", "source": "s", "tags": {},
              "type": "microsoft.network/firewallpolicies",
              "properties": {"ruleCollectionGroups": [{"id": g["id"]} for g in groups]
                             + [{"id": f"{NET}/firewallPolicies/fwp/ruleCollectionGroups/gone"}] * (not groups)}}
    if base is not None:
        policy["properties"]["basePolicy"] = {"id": base["id"]}
    wall = firewall()
    wall["properties"].pop("natRuleCollections")
    wall["properties"]["firewallPolicy"] = {"id": policy["id"]}
    return [wall, policy, *groups, *([base] if base else [])]


def rule_group(policy: str, name: str, translated: str = ADDRESS, port: str = "3389",
               sources: list[str] | None = None) -> dict:
    return {"id": f"{NET}/firewallPolicies/{policy}/ruleCollectionGroups/{name}", "name": name, "cloud": "azure",
            "source": "s", "tags": {}, "type": "microsoft.network/firewallpolicies/rulecollectiongroups",
            "properties": {"priority": 100, "ruleCollections": [
                {"ruleCollectionType": "FirewallPolicyNatRuleCollection", "name": "dnat", "priority": 100,
                 "action": {"type": "DNAT"}, "rules": [
                     {"ruleType": "NatRule", "name": f"{name}-rdp", "ipProtocols": ["TCP"],
                      "sourceAddresses": sources or ["*"], "destinationAddresses": ["20.9.9.9"],
                      "destinationPorts": ["50001"], "translatedAddress": translated, "translatedPort": port}]},
                {"ruleCollectionType": "FirewallPolicyFilterRuleCollection", "name": "allow", "priority": 200,
                 "action": {"type": "Allow"}, "rules": []}]}}


def test_a_firewall_policy_dnat_reaches_the_vm():
    resources = estate(ALLOW_RDP, public_ip=False, extra=tuple(policy_firewall([rule_group("fwp", "g1")])))
    found = reaches(exposure_of(resources)["internet"], "tcp", 3389)
    assert found and found[0]["path"] == "firewall DNAT fw1 rule g1-rdp"


def test_a_base_policy_dnat_is_inherited():
    base_group = rule_group("base", "inherited")
    base = {"id": f"{NET}/firewallPolicies/base", "name": "base", "cloud": "azure", "source": "s", "tags": {},
            "type": "microsoft.network/firewallpolicies",
            "properties": {"ruleCollectionGroups": [{"id": base_group["id"]}]}}
    own = rule_group("fwp", "own", translated="10.0.1.99")  # another address: no path to vm1
    resources = estate(ALLOW_RDP, public_ip=False, extra=(*policy_firewall([own], base), base_group))
    assert [e["path"] for e in reaches(exposure_of(resources)["internet"], "tcp", 3389)] == [
        "firewall DNAT fw1 rule inherited-rdp"]


def test_dnat_rules_that_were_not_collected_are_not_evaluated():
    resources = estate(ALLOW_RDP, public_ip=False, extra=tuple(policy_firewall([])))
    assert not reaches(exposure_of(resources)["internet"], "tcp", 3389)
    wall = next(r for r in resources if r["name"] == "fw1")
    assert wall["facts"]["exposure"]["not_evaluated"] == [
        "rule collection group gone of firewall policy fwp was not collected"]


def test_a_policy_dnat_from_private_sources_or_ip_groups_only():
    private = rule_group("fwp", "private", sources=["10.0.0.0/8"])
    groups = rule_group("fwp", "groups")
    groups["properties"]["ruleCollections"][0]["rules"][0].pop("sourceAddresses")
    groups["properties"]["ruleCollections"][0]["rules"][0]["sourceIpGroups"] = [f"{NET}/ipGroups/partners"]
    resources = estate(ALLOW_RDP, public_ip=False, extra=tuple(policy_firewall([private, groups])))
    assert not reaches(exposure_of(resources)["internet"], "tcp", 3389)
    wall = next(r for r in resources if r["name"] == "fw1")
    assert wall["facts"]["exposure"]["not_evaluated"] == ["DNAT rule groups-rdp admits IP groups, which are not resolved"]


# --- what a domain auditor found next -------------------------------------------------------

def nsg_entries(resources: list[dict], name: str) -> list[dict]:
    assess_exposure(resources)
    return next(r for r in resources if r["name"] == name and r["type"].endswith("networksecuritygroups"))[
        "facts"]["exposure"]["admits"]


def test_an_admission_reaches_only_the_ports_the_other_level_lets_through():
    # the subnet admits 22 and 3389; the NIC's NSG only 22: RDP reaches nothing
    resources = estate(nsg("sub", rule("mgmt", 100, ports=["22", "3389"])), nsg("nic", rule("ssh", 100, ports="22")))
    [entry] = nsg_entries(resources, "sub")
    assert entry["reaches"] == ["vm1"] and entry["reached_ports"] == "22" and entry["ports"] == "22,3389"


def test_two_nsgs_of_one_name_keep_their_own_reach():
    attached = nsg("twin", rule("rdp", 100))
    elsewhere = nsg("twin", rule("rdp", 100))
    elsewhere["id"] = elsewhere["id"].replace("/g/", "/sandbox/")
    resources = [*estate(attached), elsewhere]
    assess_exposure(resources)
    assert attached["facts"]["exposure"]["admits"][0]["reaches"] == ["vm1"]
    assert elsewhere["facts"]["exposure"]["admits"][0]["reaches"] == []


@pytest.mark.parametrize("sku, reachable", [("Standard", False), ("Basic", True)])
def test_a_standard_public_ip_is_closed_without_an_nsg(sku, reachable):
    resources = estate()
    next(r for r in resources if r["name"] == "pip1")["sku"] = {"name": sku}
    assert bool(reaches(exposure_of(resources)["internet"], "tcp", 3389)) == reachable
    # with an NSG that allows it, a Standard address is open to what the NSG admits
    resources = estate(ALLOW_RDP)
    next(r for r in resources if r["name"] == "pip1")["sku"] = {"name": sku}
    assert reaches(exposure_of(resources)["internet"], "tcp", 3389)


def test_a_deny_of_some_source_ports_does_not_stop_an_attacker():
    deny = rule("deny-high-ports", 100, "Deny")
    deny["properties"]["sourcePortRange"] = "1024-65535"
    assert reaches(exposure_of(estate(nsg("sub", deny, rule("allow", 200))))["internet"], "tcp", 3389)


def test_a_deny_of_one_destination_leaves_the_nsg_admitting_the_rest():
    entries = nsg_entries(estate(nsg("sub", rule("deny-one", 100, "Deny", destination="10.9.9.9"),
                                      rule("allow", 200))), "sub")
    assert [e["ports"] for e in entries] == ["3389"]


def test_a_nat_rule_that_targets_a_backend_pool():
    balancer = load_balancer(nat={"protocol": "Tcp", "frontendPortRangeStart": 50000, "frontendPortRangeEnd": 50010,
                                  "backendPort": 22})
    nat = balancer["properties"]["inboundNatRules"][0]["properties"]
    nat.pop("backendIPConfiguration")
    nat["backendAddressPool"] = {"id": POOL}
    resources = estate(ALLOW_ALL, public_ip=False, pools=(POOL,), extra=(balancer,))
    assert reaches(exposure_of(resources)["internet"], "tcp", 22)
    assert not reaches(exposure_of(resources)["internet"], "tcp", 3389)


def test_ipv4_only_sources_are_named_so():
    [entry] = nsg_entries(estate(nsg("sub", rule("v4", 100, source="0.0.0.0/0"))), "sub")
    assert entry["from"] == "the IPv4 Internet"
    # all of IPv6 but half of IPv4 is neither "the IPv6 Internet" nor the whole of it
    [entry] = nsg_entries(estate(nsg("sub", rule("deny-half", 100, "Deny", source="0.0.0.0/1"),
                                     rule("allow", 200))), "sub")
    assert entry["from"] == "part of the Internet"


def test_dnat_traffic_reaches_the_vm_from_the_firewalls_own_address():
    # Azure Firewall also rewrites the source of DNAT traffic to its private address, so the
    # NSG behind it sees a VNet source: the default AllowVnetInBound lets RDP in
    wall = firewall()
    wall["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"] = "10.0.2.4"
    resources = estate(nsg("sub"), public_ip=False, extra=(wall,))
    found = reaches(exposure_of(resources)["internet"], "tcp", 3389)
    assert found and "AllowVnetInBound" in found[0]["decided_by"] and found[0]["from"] == "the Internet"
    # and an NSG that admits the Internet but denies the VNet stops it
    guarded = estate(nsg("sub", rule("deny-vnet", 100, "Deny", source="VirtualNetwork", ports="*", protocol="*"),
                         rule("allow-internet", 200, source="Internet")), public_ip=False, extra=(wall,))
    assert not reaches(exposure_of(guarded)["internet"], "tcp", 3389)
