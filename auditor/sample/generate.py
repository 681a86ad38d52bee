"""Builds the sample hybrid estate (and, scaled up, the benchmark estate).

Two on-premises vCenters (one on 7.0, past support; one on 8.0), and an Azure tenant with
two subscriptions holding VMs, NICs, NSGs, VNets, SQL VMs, Arc-enabled servers and two
Azure VMware Solution private clouds. Shapes are what the collectors store: vSphere
property paths as nested mappings, raw ARM JSON for Azure. Every shipped rule has
resources here that must match it and resources that must not; tests/test_rule_packs.py
names them.

Run `python -m auditor.sample.generate` to rewrite auditor/sample/estate.json.
"""

from __future__ import annotations

import json
import random
import sys
import uuid
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic
from ..snapshot import Snapshot, Source, make_resource

COLLECTED_AT = "2026-11-20T06:00:00Z"
TENANT = "7c1d3a52-5b0e-4c43-9f0d-2b7e8a4f1c90"
SUBSCRIPTIONS = {
    "0b1f6471-1bf0-4dda-aec3-111122223333": "prod-workloads",
    "5c9e2a44-7d3b-4e6f-8a1b-444455556666": "shared-services",
}
HOSTILE_NAME = "<img src=x onerror=alert(1)>"


class _Ids:
    """Deterministic UUIDs and managed object ids, so regenerating changes nothing."""

    def __init__(self, seed: int):
        self.random = random.Random(seed)
        self.counters: dict[str, int] = {}

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.random.getrandbits(128), version=4))

    def moref(self, prefix: str) -> str:
        self.counters[prefix] = self.counters.get(prefix, 100) + 1
        return f"{prefix}-{self.counters[prefix]}"


# --- vSphere ------------------------------------------------------------------------------

ESXI_BUILDS = {"6.7.0": "17700523", "7.0.3": "21313628", "8.0.2": "22380479",
               "8.0.3": "24784735", "9.2.0": "25110412"}
VCENTER_BUILDS = {"7.0.3": "21477706", "8.0.3": "24322831", "9.2.0": "25110399"}

# (guestId, tools-reported full name, weight)
GUESTS = [
    ("windows8Server64Guest", "Microsoft Windows Server 2012 R2 (64-bit)", 3),
    ("windows9Server64Guest", "Microsoft Windows Server 2016 or later (64-bit)", 3),
    ("windows2019srv_64Guest", "Microsoft Windows Server 2019 (64-bit)", 6),
    ("windows2019srvNext_64Guest", "Microsoft Windows Server 2022 (64-bit)", 6),
    ("ubuntu64Guest", "Ubuntu 18.04.6 LTS", 2),
    ("ubuntu64Guest", "Ubuntu 22.04.4 LTS", 6),
    ("centos7_64Guest", "CentOS 7 (64-bit)", 2),
    ("rhel8_64Guest", "Red Hat Enterprise Linux 8 (64-bit)", 5),
    ("sles12_64Guest", "SUSE Linux Enterprise 12 (64-bit)", 1),
]
TOOLS = [("guestToolsCurrent", 12), ("guestToolsSupportedOld", 3), ("guestToolsNeedUpgrade", 2),
         ("guestToolsTooOld", 1), ("guestToolsNotInstalled", 1)]
# guest.toolsVersion per tools status: major << 10 | minor << 5 | patch (12452 is 12.5.4)
TOOLS_VERSIONS = {"guestToolsCurrent": "12452", "guestToolsSupportedOld": "12352",
                  "guestToolsNeedUpgrade": "11365", "guestToolsTooOld": "10346", "guestToolsNotInstalled": "0"}
# The hardened and neglected value of every setting the hardening rules read, written by
# tools/scg_rules.py beside the rules: a hardened host or VM has the first, a neglected one
# the second (a VM's None: the setting is left undefined).
HARDENING_VALUES = json.loads((Path(__file__).parent / "hardening_values.json").read_text(encoding="utf-8"))


def hardened_host_options() -> list[dict[str, Any]]:
    """The advanced settings of a host hardened to every shipped hardening rule."""
    return [{"key": key, "value": values["compliant"]} for key, values in sorted(HARDENING_VALUES["esxi"].items())] + [
        {"key": "Config.HostAgent.plugins.hostsvc.esxAdminsGroup", "value": "esx-host-admins-7f3"},
        {"key": "Config.HostAgent.plugins.hostsvc.esxAdminsGroupAutoAdd", "value": False}]


# settings some sample hosts set on purpose, for the cases that name them
EXPLICIT_OPTIONS = {"UserVars.ESXiShellTimeOut", "Security.AccountLockFailures", "Syslog.global.logHost",
                    "Config.HostAgent.plugins.solo.enableMob"}
HARDWARE = [("vmx-19", 8), ("vmx-21", 4), ("vmx-14", 4), ("vmx-13", 3), ("vmx-10", 1),
            ("vmx-08", 1)]


FEATURES = {"vmotion": "vSphere vMotion", "das": "vSphere HA", "drs": "vSphere DRS",
            "dvs": "vSphere Distributed Switch"}


def _pick(rng: random.Random, weighted: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    return rng.choices(weighted, weights=[entry[-1] for entry in weighted])[0]


def _vcenter(vc: str, version: str, ids: _Ids, hardened: bool = True) -> dict[str, Any]:
    build = VCENTER_BUILDS[version]
    setting = [{"key": key, "value": values["compliant" if hardened else "violating"]}
               for key, values in sorted(HARDENING_VALUES["vcenter"].items())]
    return make_resource(
        id=f"{vc}/vcenter", name=vc, cloud="vsphere", type="vCenter", source=vc,
        native={"moref": "ServiceInstance", "setting": setting, "about": {
            "name": "VMware vCenter Server", "fullName": f"VMware vCenter Server {version} build-{build}",
            "vendor": "VMware, Inc.", "version": version, "build": build,
            "apiType": "VirtualCenter", "apiVersion": version.rsplit(".", 1)[0] + ".3.0",
            "instanceUuid": ids.uuid(), "osType": "linux-x64", "productLineId": "vpx"}})


def _host(vc: str, name: str, version: str, cluster: str, port_groups: list[dict[str, Any]],
          ids: _Ids, *, ssh: bool = False, lockdown: str = "lockdownNormal", ntp: bool = True,
          syslog: bool = True, license_edition: str = "esx.enterprisePlus.cpuPackage", cpu_packages: int = 2,
          cores: int = 24, connected: bool = True, shell_timeout: int = 600, lock_failures: int = 5,
          log_host: str = "ssl://syslog.corp.example:6514", ntp_servers: list[str] | None = None,
          license_key: str = "4K2M1", license_name: str = "VMware vSphere 8 Enterprise Plus",
          hardened: bool = False, mob: bool = False, ad_joined: bool = False,
          open_firewall: bool = False) -> dict[str, Any]:
    moref = ids.moref("host")
    options = [{"key": "UserVars.ESXiShellTimeOut", "value": shell_timeout},
               {"key": "Security.AccountLockFailures", "value": lock_failures},
               {"key": "Syslog.global.logHost", "value": log_host if syslog else ""},
               {"key": "Config.HostAgent.plugins.solo.enableMob", "value": mob}]
    options += [{"key": key, "value": values["compliant" if hardened else "violating"]}
                for key, values in sorted(HARDENING_VALUES["esxi"].items()) if key not in EXPLICIT_OPTIONS]
    # CVE-2024-37085: the defaults that let a domain group named "ESX Admins" take over a joined host
    options += [{"key": "Config.HostAgent.plugins.hostsvc.esxAdminsGroup", "value": "ESX Admins" if not hardened
                 else "esx-host-admins-7f3"},
                {"key": "Config.HostAgent.plugins.hostsvc.esxAdminsGroupAutoAdd", "value": not hardened}]
    services = [
        {"key": "TSM-SSH", "label": "SSH", "running": ssh, "policy": "on" if ssh else "off", "required": False},
        {"key": "TSM", "label": "ESXi Shell", "running": False, "policy": "off", "required": False},
        {"key": "ntpd", "label": "NTP Daemon", "running": ntp, "policy": "on" if ntp else "off", "required": False},
        {"key": "vpxa", "label": "VMware vCenter Agent", "running": True, "policy": "on", "required": False},
        *({"key": key, "label": label, "running": not hardened, "policy": "off" if hardened else "on",
           "required": False} for key, label in (("sfcbd-watchdog", "CIM Server"), ("slpd", "slpd"),
                                                   ("snmpd", "SNMP Server"))),
    ]
    rulesets = [{"key": key, "label": key, "enabled": True, "required": key == "vpxHeartbeats",
                 "allowedHosts": {"allIp": not hardened and key == "sshServer",
                                  "ipNetwork": [{"network": "10.1.0.0", "prefixLength": 16}]}}
                for key in ("sshServer", "vpxHeartbeats", "webAccess")]
    auth = [{"_type": "HostLocalAuthenticationInfo", "enabled": True}]
    if ad_joined:
        auth.append({"_type": "HostActiveDirectoryInfo", "enabled": True, "joinedDomain": "corp.example",
                     "domainMembershipStatus": "ok"})
    return make_resource(
        id=f"{vc}/{moref}", name=name, cloud="vsphere", type="HostSystem", source=vc,
        native={
            "moref": moref, "parent": cluster,
            "summary": {
                "config": {"name": name, "product": {
                    "name": "VMware ESXi", "fullName": f"VMware ESXi {version} build-{ESXI_BUILDS[version]}",
                    "version": version, "build": ESXI_BUILDS[version], "apiVersion": version}},
                "hardware": {"vendor": "Dell Inc.", "model": "PowerEdge R750",
                             "cpuModel": "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
                             "numCpuPkgs": cpu_packages, "numCpuCores": cpu_packages * cores,
                             "numCpuThreads": cpu_packages * cores * 2,
                             "memorySize": 1024 * 1024 ** 3, "uuid": ids.uuid()},
                "runtime": {"connectionState": "connected" if connected else "disconnected",
                            "inMaintenanceMode": False, "powerState": "poweredOn"}},
            "config": {
                "lockdownMode": lockdown,
                "service": {"service": services},
                "dateTimeInfo": {"timeZone": {"key": "UTC"},
                                 "ntpConfig": {"server": (ntp_servers or ["ntp1.corp.example", "ntp2.corp.example"])
                                               if ntp else []}},
                "option": options,
                "network": {"portgroup": port_groups},
                "firewall": {"defaultPolicy": {"incomingBlocked": not open_firewall, "outgoingBlocked": True},
                             "ruleset": rulesets},
                "storageDevice": {"hostBusAdapter": [{
                    "_type": "HostInternetScsiHba", "device": "vmhba64", "authenticationProperties": {
                        "chapAuthEnabled": True, "chapAuthenticationType": "chapRequired",
                        "mutualChapAuthenticationType": "chapRequired" if hardened else "chapProhibited"}}]},
                "authenticationManagerInfo": {"authConfig": auth},
            },
            "capability": {"uefiSecureBoot": hardened},
            "assignedLicense": {"editionKey": license_edition, "name": license_name
                                if license_edition != "eval" else "Evaluation Mode",
                                "licenseKey": "*****-*****-*****-*****-" + ("00000" if license_edition == "eval" else license_key)},
        })


def _standard_port_group(name: str, vlan: int, *, promiscuous: bool = False) -> dict[str, Any]:
    security = {"allowPromiscuous": promiscuous, "macChanges": False, "forgedTransmits": False}
    return {"key": f"key-vim.host.PortGroup-{name}", "spec": {"name": name, "vlanId": vlan,
            "vswitchName": "vSwitch0", "policy": {"security": {}}},
            "computedPolicy": {"security": security}}


def _dv_port_group(vc: str, name: str, vlan: Any, ids: _Ids, *, promiscuous: bool = False,
                   forged: bool = False, mac_changes: bool = False, uplink: bool = False,
                   hardened: bool = True, mac_learning: bool = False) -> dict[str, Any]:
    moref = ids.moref("dvportgroup")
    if isinstance(vlan, list):
        vlan_spec = {"_type": "VmwareDistributedVirtualSwitchTrunkVlanSpec",
                     "inherited": False, "vlanId": [{"start": s, "end": e} for s, e in vlan]}
    else:
        vlan_spec = {"_type": "VmwareDistributedVirtualSwitchVlanIdSpec", "inherited": False,
                     "vlanId": vlan}
    return make_resource(
        id=f"{vc}/{moref}", name=name, cloud="vsphere", type="DistributedVirtualPortgroup",
        source=vc, native={"moref": moref, "config": {
            "name": name, "key": moref, "type": "earlyBinding", "numPorts": 128, "uplink": uplink,
            "defaultPortConfig": {"vlan": vlan_spec, "securityPolicy": {
                "inherited": False,
                "allowPromiscuous": {"inherited": False, "value": promiscuous},
                "macChanges": {"inherited": False, "value": mac_changes},
                "forgedTransmits": {"inherited": False, "value": forged}},
                "macManagementPolicy": {"inherited": False, "allowPromiscuous": promiscuous,
                                        "macLearningPolicy": {"inherited": False, "enabled": mac_learning}}},
            # a neglected switch lets ports override the group's policy and keeps a VM's
            # port settings after it disconnects
            "policy": {"blockOverrideAllowed": True, "shapingOverrideAllowed": False,
                       "vendorConfigOverrideAllowed": False, "livePortMovingAllowed": False,
                       "portConfigResetAtDisconnect": hardened, "vlanOverrideAllowed": not hardened,
                       "securityPolicyOverrideAllowed": not hardened, "macManagementOverrideAllowed": False,
                       "uplinkTeamingOverrideAllowed": False, "ipfixOverrideAllowed": False,
                       "trafficFilterOverrideAllowed": False, "networkResourcePoolOverrideAllowed": False}}})


# what every VM of the sample's template sets (the guide's values it must set explicitly)
TEMPLATE_SETTINGS = {key: values["compliant"] for key, values in HARDENING_VALUES["vm"].items()
                     if key in ("RemoteDisplay.maxConnections", "tools.guest.desktop.autolock", "bios.bootDeviceClasses")}


def _vm_settings(hardening: str | None) -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
    """extraConfig, the config fields and the extra devices of a VM: the template's
    (hardening None), or every setting "compliant" or "violating"."""
    if hardening is None:
        values = dict(TEMPLATE_SETTINGS)
    else:
        values = {key: entry[hardening] for key, entry in HARDENING_VALUES["vm"].items()}
    extra = [{"key": key, "value": value} for key, value in sorted(values.items()) if value is not None]
    neglected = hardening == "violating"
    if neglected:
        extra.append({"key": "ethernet0.filter0.name", "value": "dvfilter-generic-vmware"})
    fields = {"ftEncryptionMode": "ftEncryptionOpportunistic" if neglected else "ftEncryptionRequired",
              "migrateEncryption": "opportunistic" if neglected else "required",
              "flags": {"enableLogging": not neglected},
              "firmware": "bios" if neglected else "efi",
              "bootOptions": {"efiSecureBootEnabled": not neglected}}
    devices = [{"_type": kind, "key": key, "deviceInfo": {"label": label}}
               for kind, key, label in (("VirtualCdrom", 3002, "CD/DVD drive 1"), ("VirtualFloppy", 8000, "Floppy drive 1"),
                                        ("VirtualUSBController", 7000, "USB controller"),
                                        ("VirtualPCIPassthrough", 13000, "PCI device 0"))] if neglected else []
    return extra, fields, devices


def _vm(vc: str, name: str, host: dict[str, Any], networks: list[dict[str, Any]], ids: _Ids,
        rng: random.Random, *, guest: tuple[Any, ...] | None = None, tools: str | None = None,
        hardware: str | None = None, power: str = "poweredOn", tags: dict[str, str] | None = None,
        hardening: str | None = None) -> dict[str, Any]:
    moref = ids.moref("vm")
    guest_id, full_name, _ = guest or _pick(rng, GUESTS)
    tools = tools or _pick(rng, TOOLS)[0]
    hardware = hardware or _pick(rng, HARDWARE)[0]
    nics = []
    for index, network in enumerate(networks):
        nics.append({"_type": "VirtualVmxnet3", "key": 4000 + index,
                     "deviceInfo": {"label": f"Network adapter {index + 1}", "summary": network["name"]},
                     "macAddress": f"00:50:56:{rng.randrange(0x80):02x}:{rng.randrange(256):02x}:{rng.randrange(256):02x}",
                     "connectable": {"connected": power == "poweredOn", "startConnected": True},
                     "backing": {"_type": "VirtualEthernetCardDistributedVirtualPortBackingInfo",
                                 "port": {"portgroupKey": network["moref"]}}})
    cpus = rng.choice([2, 2, 4, 4, 8, 16])
    extra, fields, devices = _vm_settings(hardening)
    return make_resource(
        id=f"{vc}/{moref}", name=name, cloud="vsphere", type="VirtualMachine", source=vc,
        tags={"owner": rng.choice(["app-team", "dba", "platform", "finance-it"]), **(tags or {})},
        native={
            "moref": moref,
            "config": {"name": name, "guestId": guest_id, "guestFullName": full_name,
                       "version": hardware, "uuid": ids.uuid(), "instanceUuid": ids.uuid(),
                       "template": False, **fields, "extraConfig": extra,
                       "hardware": {"numCPU": cpus, "memoryMB": cpus * 4096, "device": nics + devices}},
            "guest": {"guestFullName": full_name if tools != "guestToolsNotInstalled" else None,
                      "toolsStatus": "toolsOk" if tools == "guestToolsCurrent" else "toolsOld",
                      "toolsVersionStatus2": tools, "toolsVersion": TOOLS_VERSIONS[tools],
                      "toolsRunningStatus": "guestToolsRunning" if power == "poweredOn" else "guestToolsNotRunning",
                      "hostName": name.lower() if name != HOSTILE_NAME else None},
            "runtime": {"powerState": power, "host": host["moref"]},
            "network": [network["moref"] for network in networks],
            "customValue": [],
        })


def _license(vc: str, key_tail: str, name: str, edition: str, cost_unit: str, total: int,
             used: int, expires: str | None = None, features: tuple[str, ...] = ()) -> dict[str, Any]:
    properties: list[dict[str, Any]] = [{"key": "ProductName", "value": name}]
    # what the edition includes, as vCenter lists it (an `addon` is bought separately)
    properties += [{"key": "feature", "value": {"key": key, "value": FEATURES[key]}} for key in features]
    if expires:
        properties.append({"key": "expirationDate", "value": expires})
    return make_resource(
        id=f"{vc}/license/{key_tail}", name=name, cloud="vsphere", type="License", source=vc,
        # the full key is a secret: only its last group is kept
        native={"licenseKey": f"*****-*****-*****-*****-{key_tail}", "editionKey": edition,
                "costUnit": cost_unit, "total": total, "used": used, "properties": properties})


def _switch(vc: str, name: str, hardened: bool) -> dict[str, Any]:
    """A distributed switch: a neglected one advertises itself by CDP, sends NetFlow and
    mirrors a port."""
    moref = "dvs-" + str(21 + sum(map(ord, vc)) % 50)
    return make_resource(
        id=f"{vc}/{moref}", name=name, cloud="vsphere", type="VmwareDistributedVirtualSwitch", source=vc,
        native={"moref": moref, "summary": {"productInfo": {"name": "DVS", "version": "8.0.0"}},
                "config": {"maxMtu": 9000, "uplinkPortgroup": [],
                           "linkDiscoveryProtocolConfig": {"protocol": "cdp",
                                                           "operation": "none" if hardened else "both"},
                           "ipfixConfig": {"collectorIpAddress": "" if hardened else "10.1.1.60",
                                           "collectorPort": 0 if hardened else 2055, "activeFlowTimeout": 60},
                           "vspanSession": [] if hardened else [{"key": "vspan-1", "name": "ids-mirror",
                                                                 "enabled": True}]}})


def _cluster(vc: str, name: str, hosts: int, ids: _Ids) -> dict[str, Any]:
    moref = ids.moref("domain-c")
    return make_resource(
        id=f"{vc}/{moref}", name=name, cloud="vsphere", type="ClusterComputeResource", source=vc,
        native={"moref": moref, "summary": {"numHosts": hosts, "numEffectiveHosts": hosts},
                "configuration": {"dasConfig": {"enabled": True, "admissionControlEnabled": True},
                                  "drsConfig": {"enabled": True, "defaultVmBehavior": "fullyAutomated"}}})


def _datastore(vc: str, name: str, ids: _Ids, rng: random.Random) -> dict[str, Any]:
    moref = ids.moref("datastore")
    capacity = rng.choice([4, 8, 16]) * 1024 ** 4
    return make_resource(
        id=f"{vc}/{moref}", name=name, cloud="vsphere", type="Datastore", source=vc,
        native={"moref": moref, "summary": {"name": name, "type": rng.choice(["VMFS", "vsan", "NFS41"]),
                "capacity": capacity, "freeSpace": capacity // rng.randint(2, 6),
                "accessible": True, "url": f"ds:///vmfs/volumes/{ids.uuid()}/"}})


def vsphere_estate(ids: _Ids, rng: random.Random, vms_per_vcenter: tuple[int, int] = (120, 80)
                   ) -> tuple[list[Source], list[dict[str, Any]]]:
    """Two vCenters: dc1 (7.0, mixed and neglected) and dc2 (8.0, mostly hardened)."""
    resources: list[dict[str, Any]] = []
    sources = []
    for vc, vc_version, vm_count in (("vc-dc1.corp.example", "7.0.3", vms_per_vcenter[0]),
                                     ("vc-dc2.corp.example", "8.0.3", vms_per_vcenter[1])):
        start = len(resources)
        dc1 = vc.startswith("vc-dc1")
        resources.append(_vcenter(vc, vc_version, ids, hardened=not dc1))
        port_groups = [
            _dv_port_group(vc, "pg-prod-web", 110, ids, hardened=not dc1),
            _dv_port_group(vc, "pg-pci-db", 220, ids, hardened=not dc1),
            _dv_port_group(vc, "pg-dev", 300, ids, hardened=not dc1),
            _dv_port_group(vc, "pg-mgmt", 10, ids, hardened=not dc1),
            _dv_port_group(vc, "pg-backup", 400, ids, hardened=not dc1),
            _dv_port_group(vc, f"{vc.split('.')[0]}-DVUplinks", [(0, 4094)], ids, uplink=True, hardened=not dc1),
        ]
        if dc1:
            port_groups += [
                _dv_port_group(vc, "pg-ids-tap", 500, ids, promiscuous=True, hardened=False, mac_learning=True),
                _dv_port_group(vc, "pg-legacy-nlb", 120, ids, forged=True, mac_changes=True, hardened=False),
                _dv_port_group(vc, "pg-vgt-appliance", 4095, ids, hardened=False),
                _dv_port_group(vc, "pg-trunk-fw", [(100, 199), (300, 399)], ids, hardened=False),
            ]
        resources.extend(port_groups)
        clusters = [_cluster(vc, f"{vc.split('.')[0]}-cl{n}", 4, ids) for n in (1, 2)]
        resources.extend(clusters)
        hosts = []
        versions = (["6.7.0"] * 2 + ["7.0.3"] * 4 + ["8.0.2"] * 2) if dc1 else (["8.0.2"] * 3 + ["8.0.3"] * 3)
        for n, version in enumerate(versions, start=1):
            site = vc.split(".")[0].split("-")[1]
            standard = [_standard_port_group("Management Network", 0),
                        _standard_port_group("vMotion", 20)]
            if dc1 and n == 3:
                standard.append(_standard_port_group("sniffer", 4095, promiscuous=True))
            if dc1:
                licence = ("ST8D2", "VMware vSphere 8 Standard", "esx.standard.cpuPackage") if n == 7 else \
                    ("7R4H9", "VMware vSphere 7 Enterprise Plus", "esx.enterprisePlus.cpuPackage")
            else:
                licence = ("8C0R3", "VMware Cloud Foundation (per core)", "esx.vcf.entitlement.cpuCoreMin") \
                    if n <= 3 else ("VCF02", "VMware Cloud Foundation (per core, expansion)",
                                    "esx.vcf.entitlement.cpuCoreMin")
            hosts.append(_host(
                vc, f"esx{n:02d}.{site}.corp.example", version, clusters[n % 2]["moref"], standard,
                ids, license_key=licence[0], license_name=licence[1], hardened=not dc1, mob=dc1 and n == 2,
                cores=12 if not dc1 and n == 6 else 24,
                ssh=dc1 and n in (1, 5), lockdown="lockdownDisabled" if dc1 and n <= 4 else "lockdownNormal",
                ad_joined=dc1 and n == 1, open_firewall=dc1 and n == 1,
                ntp=not (dc1 and n == 2), syslog=not (dc1 and n in (2, 6)),
                license_edition="eval" if dc1 and n == 8 else licence[2],
                # hosts that drifted from the desired state
                shell_timeout=0 if dc1 and n == 4 else 600, lock_failures=10 if dc1 and n == 7 else 5,
                log_host="udp://10.1.1.50:514" if dc1 and n == 3 else "ssl://syslog.corp.example:6514",
                ntp_servers=["pool.ntp.org"] if not dc1 and n == 2 else None))
        resources.extend(hosts)
        resources.append(make_resource(
            id=f"{vc}/network-11", name="VM Network", cloud="vsphere", type="Network", source=vc,
            native={"moref": "network-11", "summary": {"name": "VM Network", "accessible": True}}))
        resources.extend(_datastore(vc, f"{vc.split('.')[0]}-ds{n:02d}", ids, rng) for n in range(1, 5))
        attachable = [pg for pg in port_groups if not pg["config"]["uplink"]]
        for n in range(vm_count):
            name = f"{vc.split('.')[0].split('-')[1]}-app{n:03d}"
            vm_networks = rng.sample(attachable, k=rng.choice([1, 1, 1, 2]))
            resources.append(_vm(vc, name, rng.choice(hosts), vm_networks, ids, rng,
                                 power=rng.choice(["poweredOn"] * 9 + ["poweredOff"])))
        if dc1:
            # fixed cases the rule tests name
            # a hostile name on a VM with findings, so that every report must show it as text
            resources.append(_vm(vc, HOSTILE_NAME, hosts[0], [attachable[0]], ids, rng,
                                 guest=GUESTS[6], tools="guestToolsCurrent", hardware="vmx-19"))
            resources.append(_vm(vc, "dc1-legacy-erp", hosts[2], [attachable[1]], ids, rng,
                                 guest=GUESTS[0], tools="guestToolsTooOld", hardware="vmx-08",
                                 hardening="violating"))
            resources.append(_vm(vc, "dc1-build01", hosts[2], [attachable[2]], ids, rng,
                                 guest=GUESTS[5], tools="guestToolsCurrent", hardware="vmx-19"))
            # segmentation: a PCI VM on the dev port group, and one where it belongs
            by_name = {pg["name"]: pg for pg in port_groups}
            resources.append(_vm(vc, "dc1-pci-pay01", hosts[3], [by_name["pg-dev"]], ids, rng,
                                 guest=GUESTS[3], tools="guestToolsCurrent", hardware="vmx-19"))
            resources.append(_vm(vc, "dc1-pci-db01", hosts[3], [by_name["pg-pci-db"]], ids, rng,
                                 guest=GUESTS[3], tools="guestToolsCurrent", hardware="vmx-19",
                                 tags={"zone": "pci"}))
            resources.extend([
                _license(vc, "7R4H9", "VMware vSphere 7 Enterprise Plus", "esx.enterprisePlus.cpuPackage",
                         "cpuPackage", 12, 14, features=("vmotion", "das", "drs", "dvs")),
                _license(vc, "00000", "Evaluation Mode", "eval", "cpuPackage", 0, 2, "2026-12-30T00:00:00Z"),
                _license(vc, "K81P2", "VMware vSphere 7 Standard (term)", "esx.standard.cpuPackage", "cpuPackage", 8, 0,
                         "2026-06-30T00:00:00Z"),
                _license(vc, "VC7ST", "VMware vCenter Server 7 Standard", "vc.standard.instance", "server", 1, 1),
                _license(vc, "ST8D2", "VMware vSphere 8 Standard", "esx.standard.cpuPackage", "cpuPackage", 2, 2,
                         "2027-06-30T00:00:00Z", features=("vmotion", "das")),
            ])
        else:
            resources.append(_vm(vc, "dc2-web01", hosts[0], [attachable[0]], ids, rng,
                                 guest=GUESTS[3], tools="guestToolsCurrent", hardware="vmx-21",
                                 hardening="compliant"))
            flat = _dv_port_group(vc, "pg-flat", 0, ids)
            resources.append(flat)
            resources.append(_vm(vc, "dc2-flat-01", hosts[1], [flat], ids, rng,
                                 guest=GUESTS[5], tools="guestToolsCurrent", hardware="vmx-21"))
            resources.append(_vm(vc, "dc2-appliance-01", hosts[2], [attachable[3]], ids, rng,
                                 guest=("other4xLinux64Guest", "Other 4.x or later Linux (64-bit)", 1),
                                 tools="guestToolsCurrent", hardware="vmx-19"))
            resources.extend([
                # a VCF subscription states its per-CPU minimum in its cost unit
                _license(vc, "8C0R3", "VMware Cloud Foundation (per core)", "esx.vcf.entitlement.cpuCoreMin",
                         "cpuCore:16core", 640, 576, "2027-01-10T00:00:00Z"),
                _license(vc, "VC8ST", "VMware vCenter Server 8 Standard", "vc.standard.instance", "server", 1, 1,
                         "2028-03-31T00:00:00Z"),
                # vCenter counts raw cores (120); with 16 per CPU the hosts need 128
                _license(vc, "VCF02", "VMware Cloud Foundation (per core, expansion)",
                         "esx.vcf.entitlement.cpuCoreMin", "cpuCore", 120, 120, "2027-09-30T00:00:00Z"),
            ])
        resources.append(_switch(vc, f"{vc.split('.')[0]}-dvs", hardened=not dc1))
        sources.append(Source(id=vc, cloud="vsphere", kind="vcenter",
                              resource_count=len(resources) - start,
                              details={"version": vc_version, "build": VCENTER_BUILDS[vc_version]}))
    lab_sources, lab_resources = _lab_vcenter()
    avs_sources, avs_resources = _avs_vcenter()
    return sources + lab_sources + avs_sources, resources + lab_resources + avs_resources


def _lab_vcenter() -> tuple[list[Source], list[dict[str, Any]]]:
    """A lab vCenter on a release newer than the lifecycle tables know, with one host on
    the evaluation licence: their support status is not evaluated, never passed. Its own
    ids, so that adding it left every other resource of the sample as it was."""
    vc, version = "vc-lab.corp.example", "9.2.0"
    ids = _Ids(9)
    resources = [_vcenter(vc, version, ids),
                 _host(vc, "esx01.lab.corp.example", version, "domain-c9", [_standard_port_group("Management Network", 0)],
                       ids, license_edition="eval", hardened=True, lockdown="lockdownNormal")]
    return [Source(id=vc, cloud="vsphere", kind="vcenter", resource_count=len(resources),
                   details={"version": version, "build": VCENTER_BUILDS[version]})], resources


def _avs_vcenter() -> tuple[list[Source], list[dict[str, Any]]]:
    """The vCenter of the Azure VMware Solution private cloud avs-weu-01: Microsoft runs its
    hosts (their findings are the provider's), the customer its VMs. Its own ids."""
    vc, version = AVS_VCENTER, "8.0.3"
    ids = _Ids(11)
    host = _host(vc, "esx01-r07.p01.westeurope.avs.azure.com", version, "domain-c8",
                 [_standard_port_group("Management Network", 0)], ids, hardened=False,
                 license_key="AVS01", license_name="Azure VMware Solution")
    network = _dv_port_group(vc, "TNT-workload-segment", 0, ids)
    rng = random.Random("avs")
    resources = [_vcenter(vc, version, ids), host, network,
                 _vm(vc, "avs-app-01", host, [network], ids, rng, guest=GUESTS[3], tools="guestToolsCurrent",
                     hardware="vmx-21", hardening="compliant")]
    return [Source(id=vc, cloud="vsphere", kind="vcenter", resource_count=len(resources),
                   details={"version": version, "build": VCENTER_BUILDS[version]})], resources


# --- Azure --------------------------------------------------------------------------------

def _arm_id(sub: str, rg: str, provider: str, kind: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{provider}/{kind}/{name}"


def _azure(arm: dict[str, Any], sub: str) -> dict[str, Any]:
    """Wrap raw ARM JSON in the envelope, the way the Azure source does."""
    return make_resource(id=arm["id"], name=arm["name"], cloud="azure", type=arm["type"],
                         source=sub, tags=arm.get("tags") or {}, native=arm)


def _security_rule(nsg_id: str, name: str, priority: int, *, access: str = "Allow",
                   direction: str = "Inbound", protocol: str = "Tcp", source: Any = "*",
                   ports: Any = "443") -> dict[str, Any]:
    properties: dict[str, Any] = {"provisioningState": "Succeeded", "protocol": protocol,
                                  "sourcePortRange": "*", "destinationAddressPrefix": "*",
                                  "access": access, "priority": priority, "direction": direction}
    if isinstance(source, list):
        properties["sourceAddressPrefixes"] = source
    else:
        properties["sourceAddressPrefix"] = source
    if isinstance(ports, list):
        properties["destinationPortRanges"] = ports
    else:
        properties["destinationPortRange"] = ports
    return {"name": name, "id": f"{nsg_id}/securityRules/{name}",
            "etag": 'W/"00000000-0000-0000-0000-000000000000"',
            "type": "Microsoft.Network/networkSecurityGroups/securityRules",
            "properties": properties}


def _nsg(sub: str, rg: str, name: str, rules: list[tuple[Any, ...]], location: str) -> dict[str, Any]:
    nsg_id = _arm_id(sub, rg, "Microsoft.Network", "networkSecurityGroups", name)
    security_rules = [_security_rule(nsg_id, rule_name, priority, **options)
                      for rule_name, priority, options in rules]
    return _azure({"id": nsg_id, "name": name, "type": "Microsoft.Network/networkSecurityGroups",
                   "location": location, "tags": {"environment": rg.split("-")[1]},
                   "etag": 'W/"00000000-0000-0000-0000-000000000000"',
                   "properties": {"provisioningState": "Succeeded", "resourceGuid": str(uuid.uuid5(uuid.NAMESPACE_URL, nsg_id)),
                                  "securityRules": security_rules, "defaultSecurityRules": []}}, sub)


def _vnet(sub: str, rg: str, name: str, space: str, subnets: list[tuple[str, str, str | None]],
          location: str, ddos_protection: bool = False) -> dict[str, Any]:
    vnet_id = _arm_id(sub, rg, "Microsoft.Network", "virtualNetworks", name)
    subnet_list = []
    for subnet_name, prefix, nsg in subnets:
        properties: dict[str, Any] = {"addressPrefix": prefix, "provisioningState": "Succeeded",
                                      "privateEndpointNetworkPolicies": "Disabled"}
        if nsg:
            properties["networkSecurityGroup"] = {"id": _arm_id(sub, rg, "Microsoft.Network", "networkSecurityGroups", nsg)}
        subnet_list.append({"id": f"{vnet_id}/subnets/{subnet_name}", "name": subnet_name,
                            "type": "Microsoft.Network/virtualNetworks/subnets", "properties": properties})
    return _azure({"id": vnet_id, "name": name, "type": "Microsoft.Network/virtualNetworks",
                   "location": location, "tags": {},
                   "properties": {"provisioningState": "Succeeded", "addressSpace": {"addressPrefixes": [space]},
                                  "subnets": subnet_list, "virtualNetworkPeerings": [],
                                  **({"enableDdosProtection": True, "ddosProtectionPlan": {"id": _arm_id(
                                      sub, rg, "Microsoft.Network", "ddosProtectionPlans", "ddos-plan")}}
                                     if ddos_protection else {})}}, sub)


IMAGES = {
    "win2012r2": ({"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer", "sku": "2012-R2-Datacenter", "version": "latest"},
                  "Windows", "Windows Server 2012 R2 Datacenter", "6.3.9600"),
    "win2019": ({"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer", "sku": "2019-datacenter-gensecond", "version": "latest"},
                "Windows", "Windows Server 2019 Datacenter", "10.0.17763"),
    "win2022": ({"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer", "sku": "2022-datacenter-azure-edition", "version": "latest"},
                "Windows", "Windows Server 2022 Datacenter Azure Edition", "10.0.20348"),
    "ubuntu1804": ({"publisher": "Canonical", "offer": "UbuntuServer", "sku": "18.04-LTS", "version": "latest"},
                   "Linux", "ubuntu", "18.04"),
    "centos7": ({"publisher": "OpenLogic", "offer": "CentOS", "sku": "7_9-gen2", "version": "latest"},
                "Linux", "CentOS Linux 7", "7.9"),
    "ubuntu2204": ({"publisher": "Canonical", "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts-gen2", "version": "latest"},
                   "Linux", "ubuntu", "22.04"),
    "rhel8": ({"publisher": "RedHat", "offer": "RHEL", "sku": "8-lvm-gen2", "version": "latest"},
              "Linux", "redhat", "8.9"),
    "win2016": ({"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer", "sku": "2016-Datacenter", "version": "latest"},
                "Windows", "Windows Server 2016 Datacenter", "10.0.14393"),
    "sles15": ({"publisher": "SUSE", "offer": "sles-15-sp5", "sku": "gen2", "version": "latest"},
               "Linux", "SUSE Linux Enterprise Server 15 SP5", "15.5"),
}


def _vm_set(sub: str, rg: str, name: str, image: str, location: str, rng: random.Random, *,
            license_type: str | None = None, public_ip: bool = False, subnet_id: str = "",
            size: str = "Standard_D4s_v5", tags: dict[str, str] | None = None,
            nic_nsg: str | None = None) -> list[dict[str, Any]]:
    """An Azure VM with its NIC (and public IP), as Resource Graph returns them."""
    reference, os_type, os_name, os_version = IMAGES[image]
    vm_id = _arm_id(sub, rg, "Microsoft.Compute", "virtualMachines", name)
    nic_id = _arm_id(sub, rg, "Microsoft.Network", "networkInterfaces", f"{name}-nic")
    properties: dict[str, Any] = {
        "vmId": str(uuid.uuid5(uuid.NAMESPACE_URL, vm_id)),
        "hardwareProfile": {"vmSize": size},
        "storageProfile": {"imageReference": dict(reference),
                           "osDisk": {"osType": os_type, "name": f"{name}-osdisk", "createOption": "FromImage",
                                      "caching": "ReadWrite", "managedDisk": {"storageAccountType": "Premium_LRS"},
                                      "diskSizeGB": 128}, "dataDisks": []},
        "osProfile": {"computerName": name[:15], "adminUsername": "azureadmin",
                      "secrets": [], "allowExtensionOperations": True},
        "networkProfile": {"networkInterfaces": [{"id": nic_id}]},
        "provisioningState": "Succeeded",
        "extended": {"instanceView": {"osName": os_name, "osVersion": os_version,
                                      "computerName": name[:15],
                                      "powerState": {"code": "PowerState/running", "level": "Info", "displayStatus": "VM running"}}},
    }
    if license_type:
        properties["licenseType"] = license_type
    resources = [_azure({"id": vm_id, "name": name, "type": "Microsoft.Compute/virtualMachines",
                         "location": location, "tags": {"environment": rg.split("-")[1], "owner": rng.choice(["web", "data", "erp"]),
                                                         **(tags or {})},
                         "properties": properties}, sub)]
    ip_config: dict[str, Any] = {"privateIPAddress": f"10.{rng.randrange(10, 30)}.{rng.randrange(256)}.{rng.randrange(4, 250)}",
                                 "privateIPAllocationMethod": "Dynamic", "primary": True,
                                 "subnet": {"id": subnet_id}}
    if public_ip:
        pip_id = _arm_id(sub, rg, "Microsoft.Network", "publicIPAddresses", f"{name}-pip")
        ip_config["publicIPAddress"] = {"id": pip_id}
        resources.append(_azure({"id": pip_id, "name": f"{name}-pip", "type": "Microsoft.Network/publicIPAddresses",
                                 "location": location, "sku": {"name": "Standard", "tier": "Regional"},
                                 "properties": {"ipAddress": f"20.{rng.randrange(30, 200)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                                                "publicIPAllocationMethod": "Static", "publicIPAddressVersion": "IPv4",
                                                "ipConfiguration": {"id": f"{nic_id}/ipConfigurations/ipconfig1"}}}, sub))
    resources.append(_azure({"id": nic_id, "name": f"{name}-nic", "type": "Microsoft.Network/networkInterfaces",
                             "location": location, "tags": {},
                             "properties": {"provisioningState": "Succeeded",
                                            "ipConfigurations": [{"id": f"{nic_id}/ipConfigurations/ipconfig1",
                                                                  "name": "ipconfig1", "properties": ip_config}],
                                            **({"networkSecurityGroup": {"id": nic_nsg}} if nic_nsg else {}),
                                            "virtualMachine": {"id": vm_id}, "enableAcceleratedNetworking": True,
                                            "macAddress": f"00-0D-3A-{rng.randrange(256):02X}-{rng.randrange(256):02X}-{rng.randrange(256):02X}"}}, sub))
    return resources


def _sql_vm(sub: str, rg: str, name: str, offer: str | None, sku: str, license_type: str,
            location: str) -> dict[str, Any]:
    vm_id = _arm_id(sub, rg, "Microsoft.Compute", "virtualMachines", name)
    properties = {"virtualMachineResourceId": vm_id, "provisioningState": "Succeeded",
                  "sqlServerLicenseType": license_type, "sqlManagement": "Full", "sqlImageSku": sku}
    if offer is not None:
        properties["sqlImageOffer"] = offer
    return _azure({"id": _arm_id(sub, rg, "Microsoft.SqlVirtualMachine", "sqlVirtualMachines", name),
                   "name": name, "type": "Microsoft.SqlVirtualMachine/sqlVirtualMachines", "location": location,
                   "properties": properties}, sub)


def _arc(sub: str, rg: str, name: str, os_sku: str, os_type: str, os_version: str, agent: str,
         location: str) -> dict[str, Any]:
    return _azure({"id": _arm_id(sub, rg, "Microsoft.HybridCompute", "machines", name), "name": name,
                   "type": "Microsoft.HybridCompute/machines", "location": location,
                   "tags": {"datacenter": "dc1"},
                   "properties": {"provisioningState": "Succeeded", "status": "Connected",
                                  "agentVersion": agent, "osName": os_type, "osSku": os_sku,
                                  "osVersion": os_version, "osType": os_type,
                                  "machineFqdn": f"{name}.corp.example",
                                  "detectedProperties": {"manufacturer": "VMware, Inc.", "model": "VMware7,1"}}}, sub)


def _vmss(sub: str, rg: str, name: str, image: str, location: str, subnet_id: str) -> dict[str, Any]:
    reference, os_type, _, _ = IMAGES[image]
    return _azure({"id": _arm_id(sub, rg, "Microsoft.Compute", "virtualMachineScaleSets", name), "name": name,
                   "type": "Microsoft.Compute/virtualMachineScaleSets", "location": location,
                   "sku": {"name": "Standard_D2s_v5", "tier": "Standard", "capacity": 4}, "tags": {},
                   "properties": {"provisioningState": "Succeeded", "orchestrationMode": "Uniform",
                                  "upgradePolicy": {"mode": "Rolling"},
                                  "virtualMachineProfile": {
                                      "storageProfile": {"imageReference": dict(reference),
                                                         "osDisk": {"osType": os_type, "createOption": "FromImage"}},
                                      "networkProfile": {"networkInterfaceConfigurations": [
                                          {"name": f"{name}-nic", "properties": {"primary": True, "ipConfigurations": [
                                              {"name": "ipconfig1", "properties": {"subnet": {"id": subnet_id}}}]}}]}}}},
                  sub)


def _network_watcher(sub: str, location: str, flow_logs: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
    """The region's Network Watcher and its flow logs: (name, target resource id, retention days)."""
    watcher_id = _arm_id(sub, "NetworkWatcherRG", "Microsoft.Network", "networkWatchers", f"NetworkWatcher_{location}")
    resources = [_azure({"id": watcher_id, "name": f"NetworkWatcher_{location}",
                         "type": "Microsoft.Network/networkWatchers", "location": location, "tags": {},
                         "properties": {"provisioningState": "Succeeded"}}, sub)]
    for name, target, days in flow_logs:
        resources.append(_azure({"id": f"{watcher_id}/flowLogs/{name}", "name": name,
                                 "type": "Microsoft.Network/networkWatchers/flowLogs", "location": location,
                                 "properties": {"provisioningState": "Succeeded", "targetResourceId": target,
                                                "enabled": True, "retentionPolicy": {"days": days, "enabled": True},
                                                "format": {"type": "JSON", "version": 2},
                                                "storageId": _arm_id(sub, "rg-shared-logs", "Microsoft.Storage",
                                                                     "storageAccounts", "stflowlogsweu")}}, sub))
    return resources


def _policy(sub: str, name: str, display: str, definition: str, enforcement: str,
            states: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """A policy assignment at subscription scope and its states: (resource id, compliance)."""
    assignment_id = f"/subscriptions/{sub}/providers/Microsoft.Authorization/policyAssignments/{name}"
    definition_id = f"/providers/Microsoft.Authorization/policyDefinitions/{definition}"
    resources = [_azure({"id": assignment_id, "name": name, "type": "Microsoft.Authorization/policyAssignments",
                         "location": "westeurope", "tags": {},
                         "properties": {"displayName": display, "policyDefinitionId": definition_id,
                                        "scope": f"/subscriptions/{sub}", "notScopes": [],
                                        "enforcementMode": enforcement, "parameters": {}}}, sub)]
    for resource_id, state in states:
        digest = uuid.uuid5(uuid.NAMESPACE_URL, resource_id + assignment_id).hex[:20]
        resources.append(_azure({
            "id": f"/subscriptions/{sub}/providers/Microsoft.PolicyInsights/policyStates/{digest}", "name": digest,
            "type": "Microsoft.PolicyInsights/policyStates", "tags": {},
            "properties": {"complianceState": state, "resourceId": resource_id, "policyAssignmentId": assignment_id,
                           "policyAssignmentName": name, "policyDefinitionId": definition_id,
                           "policyDefinitionName": definition, "timestamp": "2026-11-19T22:14:05Z"}}, sub))
    return resources


def _public_ip(sub: str, rg: str, name: str, address: str, location: str) -> dict[str, Any]:
    return _azure({"id": _arm_id(sub, rg, "Microsoft.Network", "publicIPAddresses", name), "name": name,
                   "type": "Microsoft.Network/publicIPAddresses", "location": location,
                   "sku": {"name": "Standard", "tier": "Regional"},
                   "properties": {"ipAddress": address, "publicIPAllocationMethod": "Static",
                                  "publicIPAddressVersion": "IPv4"}}, sub)


def _bastion(sub: str, rg: str, name: str, subnet_id: str, location: str) -> list[dict[str, Any]]:
    pip = _public_ip(sub, rg, f"{name}-pip", "20.50.60.70", location)
    return [pip, _azure({"id": _arm_id(sub, rg, "Microsoft.Network", "bastionHosts", name), "name": name,
                         "type": "Microsoft.Network/bastionHosts", "location": location, "sku": {"name": "Standard"},
                         "properties": {"provisioningState": "Succeeded", "ipConfigurations": [
                             {"name": "IpConf", "properties": {"subnet": {"id": subnet_id},
                                                               "publicIPAddress": {"id": pip["id"]}}}]}}, sub)]


def _application_gateway(sub: str, rg: str, name: str, subnet_id: str, location: str, *,
                         policy_mode: str | None = None, own_mode: str | None = None) -> list[dict[str, Any]]:
    """An Application Gateway (WAF_v2) with a public frontend; its WAF from a linked WAF
    policy (`policy_mode`) or from its own configuration (`own_mode`)."""
    gateway_id = _arm_id(sub, rg, "Microsoft.Network", "applicationGateways", name)
    pip = _public_ip(sub, rg, f"{name}-pip", f"20.60.{len(name)}.{sum(map(ord, name)) % 250}", location)
    properties: dict[str, Any] = {
        "provisioningState": "Succeeded", "sku": {"name": "WAF_v2", "tier": "WAF_v2", "capacity": 2},
        "gatewayIPConfigurations": [{"name": "gw", "properties": {"subnet": {"id": subnet_id}}}],
        "frontendIPConfigurations": [{"id": f"{gateway_id}/frontendIPConfigurations/public", "name": "public",
                                      "properties": {"publicIPAddress": {"id": pip["id"]}}}]}
    resources = [pip]
    if policy_mode:
        policy = _azure({"id": _arm_id(sub, rg, "Microsoft.Network", "ApplicationGatewayWebApplicationFirewallPolicies",
                                       f"{name}-waf"), "name": f"{name}-waf",
                         "type": "Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies",
                         "location": location,
                         "properties": {"policySettings": {"state": "Enabled", "mode": policy_mode,
                                                           "requestBodyCheck": True},
                                        "managedRules": {"managedRuleSets": [{"ruleSetType": "OWASP",
                                                                              "ruleSetVersion": "3.2"}]}}}, sub)
        properties["firewallPolicy"] = {"id": policy["id"]}
        resources.append(policy)
    if own_mode:
        properties["webApplicationFirewallConfiguration"] = {"enabled": True, "firewallMode": own_mode,
                                                             "ruleSetType": "OWASP", "ruleSetVersion": "3.2"}
    resources.append(_azure({"id": gateway_id, "name": name, "type": "Microsoft.Network/applicationGateways",
                             "location": location, "properties": properties}, sub))
    return resources


AVS_VCENTER = "vc.4f2a9c1e.westeurope.avs.azure.com"  # the vCenter of avs-weu-01, collected too


def _avs(sub: str, rg: str, name: str, internet: str, location: str, neglected: bool = False) -> dict[str, Any]:
    vcsa = AVS_VCENTER if neglected else "vc.77b0e5d2.westeurope.avs.azure.com"
    block = "10.100.0.0/22" if neglected else "10.101.0.0/22"
    identity = {"alias": "corp", "domain": "corp.example", "name": "corp-ad", "baseUserDN": "ou=users,dc=corp",
                "baseGroupDN": "ou=groups,dc=corp", "ssl": "Disabled" if neglected else "Enabled",
                "primaryServer": ("ldap://10.1.1.10:389" if neglected else "ldaps://10.1.1.10:636")}
    return _azure({"id": _arm_id(sub, rg, "Microsoft.AVS", "privateClouds", name), "name": name,
                   "type": "Microsoft.AVS/privateClouds", "location": location,
                   "sku": {"name": "AV36P"}, "tags": {},
                   "properties": {"provisioningState": "Succeeded", "internet": internet,
                                  "networkBlock": block,
                                  "managementCluster": {"clusterSize": 3, "clusterId": 1, "provisioningState": "Succeeded"},
                                  "endpoints": {"vcsa": f"https://{vcsa}/", "nsxtManager": "https://10.100.0.3/",
                                                "hcxCloudManager": "https://10.100.0.9/",
                                                "vcenterIp": block.replace("0/22", "2")},
                                  "identitySources": [identity],
                                  # the customer's own VCF subscription (bring your own licence)
                                  "vcfLicense": {"kind": "vcf5", "cores": 288, "broadcomSiteId": "1000123456",
                                                 # one ends within the warning period, one has ended
                                                 "endDate": "2026-12-31T00:00:00Z" if neglected else
                                                 "2026-09-30T00:00:00Z"},
                                  "circuit": {"primarySubnet": "10.100.4.0/30", "secondarySubnet": "10.100.4.4/30",
                                              "expressRouteID": f"/subscriptions/{sub}/resourceGroups/tnt-{name}/providers/Microsoft.Network/expressRouteCircuits/{name}-er"},
                                  "availability": {"strategy": "SingleZone", "zone": 1},
                                  "encryption": {"status": "Disabled" if neglected else "Enabled"}}}, sub)


def azure_estate(rng: random.Random, vm_scale: int = 1) -> tuple[list[Source], list[dict[str, Any]]]:
    """A tenant with a workload subscription and a shared-services subscription."""
    prod, shared = list(SUBSCRIPTIONS)
    location = "westeurope"
    resources: list[dict[str, Any]] = []
    web, app, db = (_arm_id(prod, "rg-prod-network", "Microsoft.Network", "virtualNetworks", "vnet-prod") + f"/subnets/{s}"
                    for s in ("snet-web", "snet-app", "snet-db"))
    # production subscription: network
    resources += [
        _nsg(prod, "rg-prod-network", "nsg-web", [
            ("allow-https-internet", 100, {"source": "Internet", "ports": "443"}),
            ("allow-rdp-any", 110, {"source": "*", "ports": "3389"}),
            ("deny-all-inbound", 4096, {"access": "Deny", "protocol": "*", "ports": "*"}),
        ], location),
        _nsg(prod, "rg-prod-network", "nsg-app", [
            ("allow-web-tier", 100, {"source": "10.20.1.0/24", "ports": ["8080", "8443"]}),
            ("allow-rdp-admin", 110, {"source": "203.0.113.0/24", "ports": "3389"}),
            ("deny-rdp-internet", 120, {"access": "Deny", "source": "Internet", "ports": "3389"}),
        ], location),
        _nsg(prod, "rg-prod-network", "nsg-db", [
            ("allow-sql-app", 100, {"source": "10.20.2.0/24", "ports": "1433"}),
            ("allow-ssh-bastion", 110, {"source": "10.0.1.0/26", "ports": "22"}),
        ], location),
        _nsg(prod, "rg-prod-network", "nsg-jump", [
            ("allow-mgmt-internet", 100, {"source": ["0.0.0.0/0"], "ports": ["22", "3380-3390"]}),
        ], location),
        _nsg(prod, "rg-prod-network", "nsg-ops", [
            ("allow-winrm-internet", 100, {"source": ["0.0.0.0/0", "::/0"], "ports": "5985-5986"}),
            ("allow-dns-udp", 110, {"source": "*", "protocol": "Udp", "ports": "53"}),
            # IPv6 sources only: they cannot reach the IPv4 public address of the VM it guards
            ("allow-sql-internet", 120, {"source": "::/0", "ports": "1433"}),
            ("allow-postgres-internet", 130, {"source": "Internet", "ports": "5432"}),
            ("deny-ssh-partners", 140, {"access": "Deny", "source": "0.0.0.0/1", "ports": "22"}),
            ("allow-ssh-internet", 150, {"source": "*", "ports": "22"}),
        ], location),
        _nsg(prod, "rg-prod-network", "nsg-legacy-ftp", [
            ("allow-any-any", 100, {"source": "Internet", "protocol": "*", "ports": "*"}),
            ("allow-udp-syslog", 110, {"source": "10.0.0.0/8", "protocol": "Udp", "ports": "514"}),
        ], location),
        _vnet(prod, "rg-prod-network", "vnet-prod", "10.20.0.0/16", [
            ("snet-web", "10.20.1.0/24", "nsg-web"), ("snet-app", "10.20.2.0/24", None),
            ("snet-db", "10.20.3.0/24", "nsg-db"), ("GatewaySubnet", "10.20.255.0/27", None)], location),
    ]
    vm_plan = [
        ("vm-web-01", "win2022", "Windows_Server", True, web), ("vm-web-02", "win2022", "Windows_Server", False, web),
        ("vm-erp-01", "win2012r2", None, False, app), ("vm-erp-02", "win2012r2", "Windows_Server", False, app),
        ("vm-api-01", "ubuntu2204", None, False, app), ("vm-api-02", "ubuntu1804", "UBUNTU_PRO", True, app),
        ("vm-rhel-01", "rhel8", "RHEL_BYOS", False, db), ("vm-etl-01", "ubuntu2204", "RHEL_BYOS", False, db),
        ("vm-tools-01", "ubuntu2204", "Windows_Server", False, app), ("vm-sql-01", "win2019", "Windows_Server", False, db),
        ("vm-sql-02", "win2012r2", "Windows_Server", False, db), ("vm-sql-03", "win2022", None, False, db),
        ("vm-sql-04", "win2016", None, False, db), ("vm-sap-01", "sles15", "SLES_BYOS", False, app),
    ]
    zones = {"vm-erp-02": "pci", "vm-sql-01": "pci"}  # VMs tagged into a segmentation zone
    nic_nsgs = {"vm-api-02": "nsg-ops"}  # an NSG on the NIC, in front of the subnet's (none here)
    for copy in range(vm_scale):
        for name, image, license_type, public, subnet in vm_plan:
            vm_name = name if copy == 0 else f"{name}-{copy:05d}"
            resources += _vm_set(prod, "rg-prod-app", vm_name, image, location, rng,
                                 license_type=license_type, public_ip=public, subnet_id=subnet,
                                 tags={"zone": zones[name]} if name in zones else None,
                                 nic_nsg=_arm_id(prod, "rg-prod-network", "Microsoft.Network", "networkSecurityGroups",
                                                 nic_nsgs[name]) if name in nic_nsgs else None)
    # a legacy FTP server whose NIC NSG admits everything; its own random stream, so that
    # adding it left every other resource of the sample as it was
    resources += _vm_set(prod, "rg-prod-app", "vm-ftp-01", "ubuntu2204", location, random.Random("vm-ftp-01"),
                         public_ip=True, subnet_id=app,
                         nic_nsg=_arm_id(prod, "rg-prod-network", "Microsoft.Network", "networkSecurityGroups",
                                         "nsg-legacy-ftp"))
    resources += [
        _sql_vm(prod, "rg-prod-app", "vm-sql-01", "SQL2019-WS2019", "Enterprise", "AHUB", location),
        # deployed from SQL Server 2014 SP2, whose support ended before 2014's own
        _sql_vm(prod, "rg-prod-app", "vm-sql-02", "SQL2014SP2-WS2012R2", "Standard", "AHUB", location),
        _sql_vm(prod, "rg-prod-app", "vm-sql-03", "SQL2014SP3-WS2012R2", "Developer", "AHUB", location),
        _sql_vm(prod, "rg-prod-app", "vm-sql-04", "SQL2017-WS2016", "Standard", "PAYG", location),
        # SQL Server installed by hand and registered: no image names its release
        _sql_vm(prod, "rg-prod-app", "vm-sql-05", None, "Standard", "PAYG", location),
        # Azure Policy: flow logs required (enforced), and a tag policy still in audit-only rollout;
        # its states say which resources comply
        *_policy(prod, "require-flow-logs", "Flow logs should be configured for every network security group",
                 "c251913d-7d24-4958-af87-478ed3b9ba41", "Default", [
                     (_arm_id(prod, "rg-prod-network", "Microsoft.Network", "networkSecurityGroups", "nsg-app"), "NonCompliant"),
                     (_arm_id(prod, "rg-prod-network", "Microsoft.Network", "networkSecurityGroups", "nsg-jump"), "Compliant")]),
        *_policy(prod, "require-owner-tag", "Require an owner tag on resources",
                 "871b6d14-10aa-478d-b590-94f262ecfa99", "DoNotEnforce", []),
        _vmss(prod, "rg-prod-app", "vmss-batch", "centos7", location, app),
        _vmss(prod, "rg-prod-app", "vmss-web", "ubuntu2204", location, web),
        # flow logs: the production network's own (30 days: too short) and the jump NSG's
        *_network_watcher(prod, location, [
            ("fl-vnet-prod", _arm_id(prod, "rg-prod-network", "Microsoft.Network", "virtualNetworks", "vnet-prod"), 30),
            ("fl-nsg-jump", _arm_id(prod, "rg-prod-network", "Microsoft.Network", "networkSecurityGroups", "nsg-jump"),
             90)]),
    ]
    # shared services: hub network, Arc-enabled on-premises servers, AVS
    hub = _arm_id(shared, "rg-shared-network", "Microsoft.Network", "virtualNetworks", "vnet-hub")
    resources += [
        _nsg(shared, "rg-shared-network", "nsg-shared", [
            ("allow-dns-vnet", 100, {"source": "VirtualNetwork", "protocol": "*", "ports": "53"}),
            ("allow-https-proxy", 110, {"source": ["10.0.0.0/8", "172.16.0.0/12"], "ports": ["443", "8443"]}),
        ], location),
        _vnet(shared, "rg-shared-network", "vnet-hub", "10.0.0.0/16", [
            ("GatewaySubnet", "10.0.0.0/27", None), ("AzureBastionSubnet", "10.0.1.0/26", None),
            ("AzureFirewallSubnet", "10.0.2.0/26", None), ("snet-shared", "10.0.3.0/24", "nsg-shared"),
            ("snet-dns", "10.0.4.0/28", None)], location, ddos_protection=True),
        *_vm_set(shared, "rg-shared-infra", "vm-dc-01", "win2022", location, rng, license_type="Windows_Server",
                 subnet_id=f"{hub}/subnets/snet-shared", size="Standard_D32s_v5"),
        _arc(shared, "rg-shared-arc", "srv-file-01", "Windows Server 2012 R2 Datacenter", "windows", "6.3.9600", "1.30.02201.1000", location),
        _arc(shared, "rg-shared-arc", "srv-print-01", "Windows Server 2022 Datacenter", "windows", "10.0.20348", "1.48.02881.1941", location),
        _arc(shared, "rg-shared-arc", "srv-mon-01", "Ubuntu 20.04.6 LTS", "linux", "20.04", "1.47.02807.1790", location),
        _arc(shared, "rg-shared-arc", "srv-app-07", "Red Hat Enterprise Linux 8.9", "linux", "8.9", "1.46.02776.1798", location),
        _avs(shared, "rg-shared-avs", "avs-weu-01", "Enabled", location, neglected=True),
        _avs(shared, "rg-shared-avs", "avs-weu-02", "Disabled", location),
        # management access without public IPs on VMs: a Bastion host in the hub only
        *_bastion(shared, "rg-shared-network", "bas-hub", f"{hub}/subnets/AzureBastionSubnet", location),
    ]
    # Application Gateways of the web tier: one whose WAF policy only detects, one that prevents
    web_tier = _arm_id(prod, "rg-prod-network", "Microsoft.Network", "virtualNetworks", "vnet-prod") + "/subnets/snet-web"
    resources += [*_application_gateway(prod, "rg-prod-app", "agw-web", web_tier, location, policy_mode="Detection"),
                  *_application_gateway(prod, "rg-prod-app", "agw-api", web_tier, location, own_mode="Prevention")]
    # the subscriptions themselves, as Resource Graph's ResourceContainers has them
    resources += [_azure({"id": f"/subscriptions/{sub}", "name": display, "type": "Microsoft.Resources/subscriptions",
                          "properties": {"state": "Enabled", "subscriptionId": sub, "tenantId": TENANT}}, sub)
                  for sub, display in SUBSCRIPTIONS.items()]
    # the Resource SKUs of the sizes in use, as the Azure source stores them
    vm_sizes = {"standard_d2s_v5": {"vcpus": 2}, "standard_d32s_v5": {"vcpus": 32}, "standard_d4s_v5": {"vcpus": 4}}
    sources = [Source(id=sub, cloud="azure", kind="subscription",
                      resource_count=sum(1 for r in resources if r["source"] == sub),
                      details={"tenant_id": TENANT, "display_name": display, "vm_sizes": vm_sizes})
               for sub, display in SUBSCRIPTIONS.items()]
    return sources, resources


def build_sample_estate(*, vms_per_vcenter: tuple[int, int] = (120, 80), azure_vm_scale: int = 1,
                        seed: int = 2026) -> Snapshot:
    """The sample estate; larger sizes give the benchmark's estate of the same shapes."""
    ids = _Ids(seed)
    rng = random.Random(seed + 1)
    vsphere_sources, vsphere_resources = vsphere_estate(ids, rng, vms_per_vcenter)
    azure_sources, azure_resources = azure_estate(rng, azure_vm_scale)
    return Snapshot(collected_at=COLLECTED_AT, sources=vsphere_sources + azure_sources,
                    resources=vsphere_resources + azure_resources)


def main(argv: list[str]) -> int:
    """Write the sample estate to the path given, or to auditor/sample/estate.json."""
    from . import SAMPLE_SNAPSHOT
    target = Path(argv[0]) if argv else SAMPLE_SNAPSHOT
    snapshot = build_sample_estate()
    # indented, unlike collected snapshots, so that changes to the sample read as diffs
    write_text_atomic(target, json.dumps(snapshot.as_dict(), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(snapshot.resources)} resources to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
