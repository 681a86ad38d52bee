"""Facts that join resources or read baselines: releases, tools versions, VM sizes, flow
logs, licence counting, Hybrid Benefit accounting and segmentation zones."""

from __future__ import annotations

import pytest

from auditor.accounting import account_hybrid_benefit, account_vsphere_licences
from auditor.baselines import load_baselines
from auditor.bundled import bundled_baselines_dir
from auditor.errors import EXIT_INPUT_ERROR, BaselineError
from auditor.facts import SizeTables, derive_facts, tools_version
from auditor.scan import load_rule_context
from auditor.segmentation import assign_zones
from auditor.snapshot import make_resource
from tests.conftest import AS_OF, run_rule, write

SUB = "00000000-0000-0000-0000-000000000001"


def arm(kind: str, name: str, **properties) -> dict:
    provider, _, resource_type = kind.partition("/")
    return make_resource(id=f"/subscriptions/{SUB}/resourceGroups/rg/providers/{provider}/{resource_type}/{name}",
                         name=name, cloud="azure", type=kind, source=SUB,
                         native={"location": "westeurope", "properties": properties})


def azure_vm(name: str, size: str = "Standard_D4s_v5", licence: str | None = None, os_name: str = "Windows Server 2022 Datacenter",
             subnet: str | None = None, tags: dict | None = None) -> list[dict]:
    vm = arm("microsoft.compute/virtualMachines", name, hardwareProfile={"vmSize": size},
             extended={"instanceView": {"osName": os_name}},
             networkProfile={"networkInterfaces": [{"id": f"/subscriptions/{SUB}/nic/{name}"}]})
    if licence:
        vm["properties"]["licenseType"] = licence
    vm["tags"] = tags or {}
    nic = make_resource(id=f"/subscriptions/{SUB}/nic/{name}", name=f"{name}-nic", cloud="azure",
                        type="microsoft.network/networkinterfaces", source=SUB,
                        native={"properties": {"ipConfigurations": [{"properties": {"subnet": {"id": subnet}}}]}})
    return [vm, nic] if subnet else [vm]


def host(name: str, packages: int, cores: int, moref: str, licence: str = "AAAAA") -> dict:
    return make_resource(id=f"vc/{moref}", name=name, cloud="vsphere", type="HostSystem", source="vc", native={
        "moref": moref, "summary": {"config": {"product": {"version": "8.0.3", "build": "24674464"}},
                                    "hardware": {"numCpuPkgs": packages, "numCpuCores": packages * cores}},
        "assignedLicense": {"editionKey": "esxEnterprisePlus", "name": "x", "licenseKey": f"*****-{licence}"}})


def guest(name: str, host_moref: str, full_name: str = "Microsoft Windows Server 2019 (64-bit)") -> dict:
    return make_resource(id=f"vc/{name}", name=name, cloud="vsphere", type="VirtualMachine", source="vc",
                         native={"config": {"guestFullName": full_name}, "runtime": {"host": host_moref}})


def baselines(tmp_path, text: str):
    return load_baselines([bundled_baselines_dir(), write(tmp_path, "mine.yaml", text)])


def test_decoded_versions_and_sizes():
    assert tools_version("12449") == "12.5.1" and tools_version(10346) == "10.3.10"
    assert tools_version("0") is None and tools_version("x") is None
    # vCPUs are the size's real count, never the digits of its name
    resources = [*azure_vm("d5", size="Standard_D5_v2"), *azure_vm("d12", size="Standard_D12_v2"),
                 *azure_vm("g5", size="Standard_G5"), *azure_vm("custom", size="Standard_Custom9")]
    derive_facts(resources)
    assert [r["facts"].get("vcpus") for r in resources] == [16, 4, 32, None]
    assert resources[0]["facts"]["vcpus_basis"] == "bundled" and resources[3]["facts"]["vcpus_basis"] == "unknown"
    derive_facts(resources, SizeTables(active={"standard_d5_v2": 8}))  # what the source read wins
    assert resources[0]["facts"]["vcpus"] == 8 and resources[0]["facts"]["vcpus_total"] == 16


def test_release_cpu_and_licence_facts(tmp_path):
    licence = make_resource(id="vc/license/AAAAA", name="per core", cloud="vsphere", type="License", source="vc",
                            native={"licenseKey": "*****-AAAAA", "costUnit": "cpuCore", "total": 64, "used": 1})
    small, large = host("esx1", 2, 8, "host-1"), host("esx2", 2, 24, "host-2")
    resources = [licence, small, large]
    for _ in range(2):  # idempotent: the licence's sum is not counted twice
        derive_facts(resources)
        account_vsphere_licences(resources, baselines(tmp_path, "baselines: {}\n"))
    assert small["facts"]["release"] == {"line": "8.0", "version": "8.0.3", "build": 24674464,
                                         "full": "8.0.3.24674464"}
    assert small["facts"]["cpu"] == {"packages": 2, "cores_per_package": 8, "licensed_cores": 32}
    assert licence["facts"] == {"cores_required": 32 + 48, "hosts": 2, "minimum_per_cpu": 16}


def test_flow_log_of_the_virtual_network_covers_the_nsgs_of_its_subnets(tmp_path):
    nsg_on_subnet, nsg_alone = arm("microsoft.network/networkSecurityGroups", "on-subnet"), \
        arm("microsoft.network/networkSecurityGroups", "alone")
    vnet = arm("microsoft.network/virtualNetworks", "vnet", subnets=[
        {"id": "s1", "properties": {"networkSecurityGroup": {"id": nsg_on_subnet["id"]}}}])
    watcher = arm("microsoft.network/networkWatchers", "NetworkWatcher_westeurope")
    flow_log = arm("microsoft.network/networkWatchers/flowLogs", "fl", targetResourceId=vnet["id"], enabled=False,
                   retentionPolicy={"days": 0, "enabled": False})
    resources = [nsg_on_subnet, nsg_alone, vnet, watcher, flow_log]
    derive_facts(resources)
    assert nsg_on_subnet["facts"]["flow_log"] == {"id": flow_log["id"], "enabled": False, "retention_days": None,
                                                  "via": "virtual network"}
    assert "flow_log" not in nsg_alone.get("facts", {})
    assert vnet["facts"]["network_watcher"] is True
    # AZ-NET-011's condition: a disabled flow log covers nothing
    findings = run_rule(tmp_path, """
        match:
          any:
            - {path: facts.flow_log, op: absent}
            - {path: facts.flow_log.enabled, op: eq, value: false}
        message: "{name}"
        """, resources, resource="azure:microsoft.network/networksecuritygroups")
    assert sorted(f.resource_name for f in findings) == ["alone", "on-subnet"]
    flow_log["properties"]["enabled"] = True
    derive_facts(resources)
    assert nsg_on_subnet["facts"]["flow_log"]["enabled"] is True


@pytest.mark.parametrize("target", ["subnet", "nic"])
def test_vnet_flow_logs_on_a_subnet_or_a_nic_cover_their_nsgs(target):
    subnet_nsg, nic_nsg, elsewhere = (arm("microsoft.network/networkSecurityGroups", name)
                                      for name in ("subnet-nsg", "nic-nsg", "elsewhere"))
    subnet_id = f"/subscriptions/{SUB}/resourceGroups/rg/providers/microsoft.network/virtualNetworks/vnet/subnets/s1"
    vnet = arm("microsoft.network/virtualNetworks", "vnet", subnets=[
        {"id": subnet_id, "properties": {"networkSecurityGroup": {"id": subnet_nsg["id"]}}},
        {"id": subnet_id.replace("s1", "s2"), "properties": {"networkSecurityGroup": {"id": elsewhere["id"]}}}])
    nic = arm("microsoft.network/networkInterfaces", "nic1", networkSecurityGroup={"id": nic_nsg["id"]},
              ipConfigurations=[{"properties": {"subnet": {"id": subnet_id}}}])
    flow_log = arm("microsoft.network/networkWatchers/flowLogs", "fl",
                   targetResourceId=subnet_id if target == "subnet" else nic["id"])
    derive_facts([subnet_nsg, nic_nsg, elsewhere, vnet, nic, flow_log])
    covered = {nsg["name"] for nsg in (subnet_nsg, nic_nsg, elsewhere) if "flow_log" in nsg.get("facts", {})}
    # a subnet's flow log records its NSG and its NICs' NSGs; a NIC's, the NIC's NSG
    assert covered == ({"subnet-nsg", "nic-nsg"} if target == "subnet" else {"nic-nsg"})


@pytest.mark.parametrize("flag, listed, expected", [(True, False, True), (False, True, False), (None, True, True),
                                                    (None, False, None)])
def test_an_uplink_port_group_by_its_own_flag_or_its_switch(flag, listed, expected):
    switch = make_resource(id="vc/dvs-1", name="dvs", cloud="vsphere", type="VmwareDistributedVirtualSwitch",
                           source="vc", native={"moref": "dvs-1", "config": {
                               "uplinkPortgroup": ["dvportgroup-9"] if listed else []}})
    config = {"distributedVirtualSwitch": "dvs-1", "defaultPortConfig": {"vlan": {"vlanId": 0}}}
    if flag is not None:
        config["uplink"] = flag
    port_group = make_resource(id="vc/pg", name="pg", cloud="vsphere", type="DistributedVirtualPortgroup", source="vc",
                               native={"moref": "dvportgroup-9" if listed and flag is None else "dvportgroup-1",
                                       "config": config})
    derive_facts([switch, port_group])
    # neither its flag nor its switch's list known: not a guess (VS-NET-004 needs it)
    assert port_group["facts"]["uplink"] is expected


@pytest.mark.parametrize("edition, covered", [("datacenter", [True, True, True]), ("standard", [True, True, False])])
def test_standard_edition_has_no_dual_use(tmp_path, edition, covered):
    # on premises: one host with 2 x 8 cores and three Windows guests -> 16 x 2 = 32 cores
    resources = [host("esx1", 2, 8, "host-1"), *(guest(f"g{n}", "host-1") for n in range(3)),
                 *(vm for n in range(3) for vm in azure_vm(f"vm{n}", licence="Windows_Server", size="Standard_D4s_v3"))]
    derive_facts(resources)
    account_hybrid_benefit(resources, baselines(tmp_path, f"""
        baselines:
          licensing.entitlements:
            Windows_Server: {{edition: {edition}, cores: 48}}
        """))
    claims = [r["facts"]["hybrid_benefit"] for r in resources if r["type"] == "microsoft.compute/virtualmachines"]
    assert [c["covered"] for c in claims] == covered
    # every owned core is usable; Standard leaves 48 - 32 = 16 for Azure: two 8-core claims
    assert claims[0]["usable"] == (48 if edition == "datacenter" else 16)


def test_pay_as_you_go_windows_vm_is_eligible_only_for_unused_cores(tmp_path):
    resources = [*azure_vm("a-claim", licence="Windows_Server", size="Standard_D4s_v3"),
                 *azure_vm("b-payg", size="Standard_D8s_v3"),
                 *azure_vm("c-payg", size="Standard_D16s_v3"), *azure_vm("d-linux", os_name="Ubuntu 22.04")]
    derive_facts(resources)
    account_hybrid_benefit(resources, baselines(tmp_path, """
        baselines:
          licensing.entitlements:
            Windows_Server: {edition: datacenter, cores: 32}
        """))
    facts = {r["name"]: r["facts"].get("hybrid_benefit") for r in resources}
    assert facts["b-payg"] == {"licence": "Windows_Server", "payg": True, "counted": 8, "unused": 24, "eligible": True}
    assert facts["c-payg"]["eligible"] is True and facts["c-payg"]["counted"] == 16
    assert facts["d-linux"] is None


def test_entitlements_are_checked_before_the_scan(tmp_path):
    bad = write(tmp_path, "bad.yaml", """
        baselines:
          licensing.entitlements:
            Windows_Datacenter: {cores: 16}
        """)
    with pytest.raises(BaselineError) as error:
        load_rule_context(None, [bad], AS_OF)
    assert error.value.exit_code == EXIT_INPUT_ERROR
    assert "unknown licence type 'Windows_Datacenter'" in error.value.one_line() and "bad.yaml" in error.value.one_line()


ZONES = """
baselines:
  network.zones:
    pci: {port_groups: ["pg-pci-*"], cidrs: ["10.20.3.0/24"], vm_names: ["*-pci-*"]}
    dev: {port_groups: ["pg-dev"], subnets: ["*/virtualnetworks/vnet-dev/subnets/*"]}
"""


def test_zones_of_both_clouds(tmp_path):
    subnets = {"db": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet-prod/subnets/db",
               "dev": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet-dev/subnets/a"}
    vnet = make_resource(id="/subscriptions/s/vnet-prod", name="vnet-prod", cloud="azure",
                         type="microsoft.network/virtualnetworks", source="s",
                         native={"properties": {"subnets": [{"id": subnets["db"], "properties": {"addressPrefix": "10.20.3.0/25"}}]}})
    azure = [vnet, *azure_vm("vm-pay", subnet=subnets["dev"], tags={"Zone": "PCI"}),
             *azure_vm("vm-db", subnet=subnets["db"], tags={"zone": "pci"}),
             *azure_vm("vm-free", subnet=subnets["dev"])]
    pg_dev = make_resource(id="vc/pg1", name="pg-dev", cloud="vsphere", type="DistributedVirtualPortgroup", source="vc",
                           native={"moref": "pg1", "config": {"defaultPortConfig": {"vlan": {"vlanId": 30}}}})
    vsphere = [pg_dev, make_resource(id="vc/vm1", name="app-pci-01", cloud="vsphere", type="VirtualMachine",
                                     source="vc", native={"network": ["pg1"]})]
    resources = azure + vsphere
    derive_facts(resources)
    assign_zones(resources, baselines(tmp_path, ZONES))
    by_name = {r["name"]: r["facts"] for r in resources if "facts" in r}
    assert by_name["vm-pay"]["zone"] == "pci"  # the tag, case-insensitively
    assert by_name["vm-pay"]["networks"][0] | {"id": None} == {"id": None, "name": "vnet-dev/a", "prefix": None,
                                                               "zone": "dev", "foreign": True}
    assert by_name["vm-db"]["networks"][0]["zone"] == "pci"  # 10.20.3.0/25 lies in the pci range
    assert by_name["vm-db"]["networks"][0]["foreign"] is False
    assert "zone" not in by_name["vm-free"] and by_name["vm-free"]["networks"][0]["foreign"] is False
    assert by_name["app-pci-01"]["zone"] == "pci"  # by name
    assert by_name["app-pci-01"]["networks"][0]["foreign"] is True


def test_a_bad_zones_table_names_its_file(tmp_path):
    bad = write(tmp_path, "zones.yaml", """
        baselines:
          network.zones:
            pci: {cidrs: ["10.0.0.0/33"]}
        """)
    with pytest.raises(BaselineError) as error:
        load_rule_context(None, [bad], AS_OF)
    assert "network.zones.pci" in error.value.one_line() and "zones.yaml" in error.value.one_line()


def test_eol_warning_rule_needs_its_horizon(tmp_path):
    from auditor.errors import RuleError
    with pytest.raises(RuleError, match="needs days"):
        run_rule(tmp_path, """
            match: {path: v, op: eol_within_days, value: {baseline: lifecycle.esxi}}
            message: m
            """, [])
    findings = run_rule(tmp_path, """
        match: {path: v, op: eol_within_days, value: {baseline: lifecycle.esxi, days: {baseline: support.eol_warning_days}}}
        message: m
        """, [make_resource(id="a", name="a", cloud="azure", type="microsoft.network/routetables", source="s", native={"v": "8.0.3"}),
              make_resource(id="b", name="b", cloud="azure", type="microsoft.network/routetables", source="s", native={"v": "7.0.3"})])
    assert [f.resource_name for f in findings] == ["a"]


def test_nsg_of_a_zone_and_the_rules_that_admit_another_zone(tmp_path):
    nsg = arm("microsoft.network/networkSecurityGroups", "nsg-pci", securityRules=[
        {"name": "from-dev", "properties": {"direction": "Inbound", "access": "Allow",
                                            "sourceAddressPrefixes": ["10.30.4.0/24", "VirtualNetwork"]}},
        {"name": "deny-dev", "properties": {"direction": "Inbound", "access": "Deny", "sourceAddressPrefix": "10.30.0.0/16"}},
        {"name": "from-internet", "properties": {"direction": "Inbound", "access": "Allow", "sourceAddressPrefix": "*"}},
        {"name": "within", "properties": {"direction": "Inbound", "access": "Allow", "sourceAddressPrefix": "10.20.3.0/26"}}])
    unzoned = arm("microsoft.network/networkSecurityGroups", "nsg-other", securityRules=[
        {"name": "from-dev", "properties": {"direction": "Inbound", "access": "Allow", "sourceAddressPrefix": "10.30.4.0/24"}}])
    vnet = arm("microsoft.network/virtualNetworks", "vnet", subnets=[
        {"id": "/subscriptions/s/vnet/subnets/db", "properties": {"addressPrefix": "10.20.3.0/24",
                                                                 "networkSecurityGroup": {"id": nsg["id"]}}},
        {"id": "/subscriptions/s/vnet/subnets/x", "properties": {"addressPrefix": "192.168.0.0/24",
                                                                "networkSecurityGroup": {"id": unzoned["id"]}}}])
    resources = [nsg, unzoned, vnet]
    derive_facts(resources)
    assign_zones(resources, baselines(tmp_path, ZONES.replace('subnets: ["*/virtualnetworks/vnet-dev/subnets/*"]',
                                                              'cidrs: ["10.30.0.0/16"]')))
    assert nsg["facts"]["zones"] == ["pci"]
    assert nsg["facts"]["cross_zone"] == [{"name": "from-dev:10.30.4.0/24", "rule": "from-dev", "source": "10.30.4.0/24",
                                           "zone": "dev", "nsg_zones": ["pci"]}]
    assert "zones" not in unzoned.get("facts", {})  # its subnet belongs to no zone


def test_zone_and_entitlement_rules_stay_silent_until_the_organisation_declares_them(tmp_path, capsys):
    import json
    import shutil

    from auditor.cli import main
    from auditor.sample import SAMPLE_BASELINE, SAMPLE_SNAPSHOT

    copy = tmp_path / "estate.json"  # the sample's resources, but not the bundled file
    shutil.copy(SAMPLE_SNAPSHOT, copy)
    silent = {"HY-NET-001", "AZ-NET-014", "AZ-LIC-004", "AZ-LIC-005", "AZ-LIC-006", "AZ-LIC-007"}

    def rules_found(*extra: str) -> set[str]:
        assert main(["scan", "--snapshot", str(copy), "--out", str(tmp_path / "reports"), "-q",
                     "--as-of", "2026-11-25", "--no-history", *extra]) == 0
        findings = json.loads((tmp_path / "reports" / "latest" / "findings.json").read_text())["findings"]
        return {f["rule_id"] for f in findings}

    assert not rules_found() & silent
    assert rules_found("--baseline", str(SAMPLE_BASELINE)) >= silent


def test_the_waf_in_front_of_an_application_gateway():
    policy = arm("microsoft.network/applicationGatewayWebApplicationFirewallPolicies", "waf",
                 policySettings={"state": "Enabled", "mode": "Prevention"})
    linked = arm("microsoft.network/applicationGateways", "linked", firewallPolicy={"id": policy["id"]},
                 webApplicationFirewallConfiguration={"enabled": True, "firewallMode": "Detection"})
    missing = arm("microsoft.network/applicationGateways", "missing", firewallPolicy={"id": policy["id"] + "-gone"})
    standard = arm("microsoft.network/applicationGateways", "standard", sku={"tier": "Standard_v2"})
    nsg = arm("microsoft.network/networkSecurityGroups", "n")
    derive_facts([policy, linked, missing, standard, nsg])
    # the linked policy wins over the gateway's own configuration, as Azure applies it
    assert linked["facts"]["waf"] == {"enabled": True, "mode": "Prevention", "via": "WAF policy waf"}
    assert "waf" not in missing.get("facts", {})  # a policy not collected: not evaluated, not passed
    assert standard["facts"]["waf"]["enabled"] is False


def test_public_ips_per_virtual_network_and_bastion_per_subscription():
    vnet = arm("microsoft.network/virtualNetworks", "vnet", subnets=[])
    subnet = vnet["id"] + "/subnets/AzureBastionSubnet"
    pip = arm("microsoft.network/publicIPAddresses", "bastion-pip")
    bastion = arm("microsoft.network/bastionHosts", "bastion", ipConfigurations=[
        {"properties": {"subnet": {"id": subnet}, "publicIPAddress": {"id": pip["id"]}}}])
    subscription = make_resource(id=f"/subscriptions/{SUB}", name="sub", cloud="azure",
                                 type="microsoft.resources/subscriptions", source=SUB)
    other = make_resource(id="/subscriptions/other", name="other", cloud="azure",
                          type="microsoft.resources/subscriptions", source="other")
    vm = arm("microsoft.compute/virtualMachines", "vm1")
    derive_facts([vnet, pip, bastion, subscription, other, vm, arm("microsoft.network/networkInterfaces", "n")])
    assert vnet["facts"]["public_ips"] == ["bastion-pip"]
    assert subscription["facts"] == {"bastion_hosts": ["bastion"], "virtual_machines": 1}
    assert other["facts"] == {"bastion_hosts": [], "virtual_machines": 0}


def test_subscription_facts_count_what_sits_under_its_id():
    subscription = make_resource(id=f"/subscriptions/{SUB}", name="sub", cloud="azure",
                                 type="microsoft.resources/subscriptions", source=SUB)
    odd = make_resource(id="/", name="slash", cloud="azure", type="microsoft.resources/subscriptions", source=SUB)
    longer = make_resource(id=f"/subscriptions/{SUB}/resourceGroups/empty", name="longer", cloud="azure",
                           type="microsoft.resources/subscriptions", source=SUB)
    vm = arm("microsoft.compute/virtualMachines", "vm1")
    stray = make_resource(id="vm-odd-id", name="stray", cloud="azure", type="microsoft.compute/virtualMachines",
                          source=SUB)
    derive_facts([subscription, odd, longer, vm, stray, arm("microsoft.network/networkInterfaces", "n")])
    assert subscription["facts"]["virtual_machines"] == 1  # not the VM whose id sits elsewhere
    assert odd["facts"]["virtual_machines"] == 1 and longer["facts"]["virtual_machines"] == 0
