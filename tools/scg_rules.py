"""Write rules/hardening.yaml from the vSphere Security Configuration Guide's controls.

    python tools/scg_rules.py            # rewrites rules/hardening.yaml

One rule per control of the guide whose assessment reads the vSphere API, citing the
guide's exact control id (vSphere 8, and VCF 9 where the same control exists there), with
the guide's suggested value and the comparison the guide's text gives ("5 or fewer",
"TRUE or Undefined"). Titles and discussions come from the guide's controls file
(tests/fixtures/vsphere-scg/, copied from vmware/vcf-security-and-compliance-guidelines
with its notice). The sample estate's hardened and neglected values for each setting are
written beside, to auditor/sample/hardening_values.json, so that every rule has a case that
must match and one that must not.

Settings a host or VM may leave undefined follow the guide: a VM setting whose suggested
value is "X or Undefined" passes when it is not set; an ESXi or vCenter setting that was not
read leaves the rule "not evaluated" for that resource.
"""

from __future__ import annotations

import csv
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's auditor, whatever else is installed

from auditor.inventory import VM_DEVICE_TYPES  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "vsphere-scg"
GUIDE_URL = "https://github.com/vmware/vcf-security-and-compliance-guidelines/tree/main/security-configuration-hardening-guide"
SEVERITY = {"P0": "high", "P1": "medium", "P2": "low", "Advanced": "low"}


def esxi(control: str, key: str, op: str, value: Any, want: str, compliant: Any, violating: Any,
         rule_id: str | None = None) -> dict[str, Any]:
    """An ESXi advanced setting the guide sets; not read (older release) is not evaluated."""
    path = f'facts.esxi_settings["{key}"]'
    return {"control": control, "id": rule_id, "resource": "vsphere:HostSystem", "needs": [path],
            "match": _compare(path, op, value), "key": key, "kind": "esxi", "want": want,
            "compliant": compliant, "violating": violating,
            "message": (f"{{name}}: {key} is not set; the guide asks for {want}" if op == "empty" else
                        f"{{name}}: {key} is {{{path}}}; the guide asks for {want}"),
            "remediation": f"Set the host's advanced setting {key} to {want} (vSphere Client: host > Configure > "
                           "System > Advanced System Settings; or Get-AdvancedSetting | Set-AdvancedSetting)."}


def vm(control: str, key: str, op: str, value: Any, want: str, compliant: Any, violating: Any) -> dict[str, Any]:
    """A VM advanced setting (extraConfig); the guide's "or Undefined": not set passes."""
    path = f'facts.vm_settings["{key}"]'
    return {"control": control, "resource": "vsphere:VirtualMachine", "needs": ["facts.vm_settings"],
            "match": _compare(path, op, value, undefined_passes=True), "key": key, "kind": "vm", "want": want,
            "compliant": compliant, "violating": violating,
            # an unset parameter reads "(absent)": the guide says what undefined means
            "message": f"{{name}}: {key} is {{{path}}}; the guide asks for {want}",
            "remediation": f"Set the VM's advanced parameter {key} to {want}, or remove it where the guide "
                           "accepts undefined (VM > Edit Settings > Advanced Parameters; takes effect at power-on)."}


def vcenter(control: str, key: str, op: str, value: Any, want: str, compliant: Any, violating: Any) -> dict[str, Any]:
    path = f'facts.vcenter_settings["{key}"]'
    return {"control": control, "resource": "vsphere:vCenter", "needs": [path],
            "match": _compare(path, op, value), "key": key, "kind": "vcenter", "want": want,
            "compliant": compliant, "violating": violating,
            "message": (f"vCenter {{name}}: {key} is not set; the guide asks for {want}" if op == "empty" else
                        f"vCenter {{name}}: {key} is {{{path}}}; the guide asks for {want}"),
            "remediation": f"Set the vCenter advanced setting {key} to {want} (vCenter > Configure > Settings > "
                           "Advanced Settings)."}


def custom(control: str, resource: str | list[str], needs: list[str], match: dict[str, Any], message: str,
           remediation: str, rule_id: str | None = None) -> dict[str, Any]:
    return {"control": control, "id": rule_id, "resource": resource, "needs": needs, "match": match,
            "message": message, "remediation": remediation, "kind": "custom"}


def _numeric(path: str, condition: dict[str, Any], undefined_passes: bool) -> dict[str, Any]:
    """A numeric comparison that a value which is no whole number (NaN, "abc", true) fails
    too, instead of slipping past both `lt` and `gt`; an unset VM parameter still passes."""
    not_a_number = {"not": {"path": path, "op": "regex", "value": "^\\s*-?[0-9]{1,18}\\s*$"}}
    guarded = {"any": [not_a_number, condition]}
    return {"all": [{"path": path, "op": "present"}, guarded]} if undefined_passes else guarded


def _compare(path: str, op: str, value: Any, undefined_passes: bool = False) -> dict[str, Any]:
    """The condition under which the setting is NOT what the guide asks."""
    if op == "range":  # (low, high): compliant inside, 0 (never) is not compliant
        low, high = value
        return _numeric(path, {"any": [{"path": path, "op": "lt", "value": low},
                                       {"path": path, "op": "gt", "value": high}]}, undefined_passes)
    if op in ("lt", "gt"):
        return _numeric(path, {"path": path, "op": op, "value": value}, undefined_passes)
    # settings arrive typed (ESXi: booleans, numbers) or as text (VM parameters: "TRUE", "1");
    # every form counts the same
    truthy = {"any": [{"path": path, "op": "eq", "value": True}, {"path": path, "op": "regex",
                                                                  "value": "(?i)^(true|1)$"}]}
    falsy = {"any": [{"path": path, "op": "eq", "value": False}, {"path": path, "op": "regex",
                                                                   "value": "(?i)^(false|0)$"}]}
    if op == "not_true":
        return {"not": truthy}
    if op == "not_false":
        return truthy
    if op == "ne" and isinstance(value, int) and not isinstance(value, bool):
        # numbers as numbers: "1" and 1 are the same setting
        return _numeric(path, {"any": [{"path": path, "op": "lt", "value": value},
                                       {"path": path, "op": "gt", "value": value}]}, undefined_passes)
    if op == "ne_or_unset":  # the guide wants it set: undefined means the insecure default
        return {"any": [{"path": path, "op": "absent"}, _compare(path, "ne", value)]}
    if op == "not_true_or_unset":
        return {"not": truthy}
    if op == "all_of":  # a comma list that must hold each of `value`, in any order
        return {"any": [{"not": {"path": path, "op": "regex", "value": f"(?i)(^|,)\\s*{item}\\s*(,|$)"}}
                        for item in value]}
    if op == "matches":  # a pattern the value must match
        return {"not": {"path": path, "op": "regex", "value": value}}
    if op == "is_true_text":  # VM settings: set to anything but TRUE (undefined passes)
        return {"all": [{"path": path, "op": "present"}, {"not": truthy}]}
    if op == "is_false_text":
        return {"all": [{"path": path, "op": "present"}, {"not": falsy}]}
    if op == "empty":
        return {"path": path, "op": "empty"}
    if op == "not_empty_text":
        return {"path": path, "op": "not_empty"}
    if op == "present":
        return {"path": path, "op": "present"}
    return {"path": path, "op": op, "value": value}


SWITCHES = ["vsphere:DistributedVirtualSwitch", "vsphere:VmwareDistributedVirtualSwitch"]
SERVICE_STOPPED = "{name}: service {item.label} ({item.key}) is running or starts with the host"


def service(control: str, keys: list[str], rule_id: str | None = None) -> dict[str, Any]:
    return custom(control, "vsphere:HostSystem", ["config.service.service"], {"any_item": {
        "path": "config.service.service", "match": {"all": [
            {"path": "key", "op": "in", "value": keys},
            {"any": [{"path": "running", "op": "eq", "value": True}, {"path": "policy", "op": "ne", "value": "off"}]},
        ]}}}, SERVICE_STOPPED,
        f"Stop the service ({', '.join(keys)}) and set its startup policy to start and stop manually.", rule_id)


CONTROLS: list[dict[str, Any]] = [
    # --- ESXi advanced settings ---------------------------------------------------------------
    esxi("esxi-8.account-auto-unlock-time", "Security.AccountUnlockTime", "lt", 900, "900 or more", 900, 120),
    esxi("esxi-8.account-lockout", "Security.AccountLockFailures", "range", (1, 5), "5 or fewer (not 0)", 5, 10),
    esxi("esxi-8.account-password-history", "Security.PasswordHistory", "lt", 5, "5 or more", 5, 0),
    esxi("esxi-8.account-password-max-days", "Security.PasswordMaxDays", "ne", 9999, "9999", 9999, 90),
    # the guide's policy or a stricter one: similar passwords refused, 15 characters at least
    esxi("esxi-8.account-password-policies", "Security.PasswordQualityControl", "matches",
         "similar=deny.*min=(?:[^, ]+,){4}(?:1[5-9]|[2-9][0-9]|[1-9][0-9]{2,})\\b|min=(?:[^, ]+,){4}"
         "(?:1[5-9]|[2-9][0-9]|[1-9][0-9]{2,})\\b.*similar=deny",
         "similar=deny, and passphrases of 15 characters at least (the guide's "
         "\"similar=deny retry=3 min=disabled,disabled,disabled,disabled,15 max=64\", or stricter)",
         "similar=deny retry=3 min=disabled,disabled,disabled,disabled,15 max=64",
         "retry=3 min=disabled,disabled,disabled,7,7"),
    esxi("esxi-8.annotations-welcomemessage", "Annotations.WelcomeMessage", "empty", None,
         "a login banner your legal advisers approve", "Authorised use only.", ""),
    esxi("esxi-8.api-soap-timeout", "Config.HostAgent.vmacore.soap.sessionTimeout", "range", (1, 10),
         "10 minutes or less", 10, 30),
    esxi("esxi-8.cpu-hyperthread-warning", "UserVars.SuppressHyperthreadWarning", "ne", 0, "0", 0, 1),
    esxi("esxi-8.dcui-timeout", "UserVars.DcuiTimeOut", "range", (1, 600), "600 seconds or less (not 0)", 600, 0,
         rule_id="VS-NET-012"),
    esxi("esxi-8.deactivate-mob", "Config.HostAgent.plugins.solo.enableMob", "not_false", False, "false", False, True,
         rule_id="VS-NET-017"),
    esxi("esxi-8.etc-issue", "Config.Etc.issue", "empty", None, "a login banner your legal advisers approve",
         "Authorised use only.", ""),
    esxi("esxi-8.host-client-session-timeout", "UserVars.HostClientSessionTimeout", "range", (1, 900),
         "900 seconds or less (not 0)", 900, 0, rule_id="VS-NET-013"),
    esxi("esxi-8.hw-virtual-nic", "Net.BMCNetworkEnable", "ne", 0, "0", 0, 1),
    esxi("esxi-8.lockdown-dcui-access", "DCUI.Access", "ne", "root", "root only", "root", "root,admin"),
    esxi("esxi-8.logs-audit-local", "Syslog.global.auditRecord.storageEnable", "not_true", True, "true", True, False),
    esxi("esxi-8.logs-audit-local-capacity", "Syslog.global.auditRecord.storageCapacity", "lt", 100,
         "100 MiB or more", 100, 4),
    esxi("esxi-8.logs-audit-remote", "Syslog.global.auditRecord.remoteEnable", "not_true", True, "true", True, False),
    esxi("esxi-8.logs-level", "Config.HostAgent.log.level", "ne", "info", "info", "info", "verbose"),
    esxi("esxi-8.logs-level-global", "Syslog.global.logLevel", "ne", "error", "error", "error", "debug"),
    esxi("esxi-8.logs-remote-tls", "Syslog.global.certificate.checkSSLCerts", "not_true", True, "true", True, False),
    esxi("esxi-8.logs-remote-tls-x509", "Syslog.global.certificate.strictX509Compliance", "not_true", True, "true",
         True, False),
    esxi("esxi-8.memeagerzero", "Mem.MemEagerZero", "ne", 1, "1", 1, 0),
    esxi("esxi-8.network-bpdu", "Net.BlockGuestBPDU", "ne", 1, "1", 1, 0, rule_id="VS-NET-014"),
    esxi("esxi-8.network-dvfilter", "Net.DVFilterBindIpAddress", "not_empty_text", None,
         "empty (no dvfilter appliance)", "", "10.0.0.5"),
    esxi("esxi-8.shell-interactive-timeout", "UserVars.ESXiShellInteractiveTimeOut", "range", (1, 900),
         "900 seconds or less (not 0)", 900, 0, rule_id="VS-NET-011"),
    esxi("esxi-8.shell-timeout", "UserVars.ESXiShellTimeOut", "range", (1, 600), "600 seconds or less (not 0)",
         600, 3600),
    esxi("esxi-8.shell-warning", "UserVars.SuppressShellWarning", "ne", 0, "0", 0, 1),
    esxi("esxi-8.tls-protocols", "UserVars.ESXiVPsDisabledProtocols", "all_of", ["sslv3", "tlsv1", "tlsv1\\.1"],
         "sslv3,tlsv1,tlsv1.1 (only TLS 1.2 and later enabled)", "sslv3,tlsv1,tlsv1.1", "sslv3"),
    esxi("esxi-8.transparent-page-sharing", "Mem.ShareForceSalting", "ne", 2, "2", 2, 0, rule_id="VS-NET-015"),
    esxi("esxi-8.vib-trusted-binaries", "VMkernel.Boot.execInstalledOnly", "not_true", True, "true", True, False,
         rule_id="VS-NET-016"),
    # --- ESXi services, security profile, firewall, boot ------------------------------------------
    service("esxi-8.deactivate-cim", ["sfcbd-watchdog"]),
    service("esxi-8.deactivate-slp", ["slpd"]),
    service("esxi-8.deactivate-snmp", ["snmpd"]),
    custom("esxi-8.timekeeping-services", "vsphere:HostSystem", ["config.service.service"], {"no_item": {
        "path": "config.service.service", "match": {"all": [
            {"path": "key", "op": "in", "value": ["ntpd", "ptpd"]}, {"path": "running", "op": "eq", "value": True},
            {"path": "policy", "op": "eq", "value": "on"}]}}},
        "{name}: neither the NTP (ntpd) nor the PTP (ptpd) service runs with the host",
        "Start the NTP (or PTP) service and set its startup policy to start and stop with the host."),
    custom("esxi-8.firewall-incoming-default", "vsphere:HostSystem", ["config.firewall.defaultPolicy"],
           {"path": "config.firewall.defaultPolicy.incomingBlocked", "op": "ne", "value": True},
           "{name}: the host firewall admits incoming connections no ruleset allows",
           "Set the host firewall's default incoming policy to blocked "
           "(esxcli network firewall set --default-action false)."),
    custom("esxi-8.firewall-restrict-access", "vsphere:HostSystem", ["config.firewall.ruleset"], {"any_item": {
        "path": "config.firewall.ruleset", "match": {"all": [
            {"path": "enabled", "op": "eq", "value": True}, {"path": "required", "op": "ne", "value": True},
            {"path": "allowedHosts.allIp", "op": "eq", "value": True}]}}},
        "{name}: firewall ruleset {item.key} is open to every address",
        "Limit each enabled firewall ruleset to the management networks that need it (Configure > Firewall > Edit)."),
    custom("esxi-8.secureboot", "vsphere:HostSystem", ["capability.uefiSecureBoot"],
           {"path": "capability.uefiSecureBoot", "op": "ne", "value": True},
           "{name}: UEFI Secure Boot is not enabled on the host",
           "Enable UEFI Secure Boot in the server firmware (check the host with secureBoot.py -c first)."),
    custom("esxi-8.iscsi-mutual-chap", "vsphere:HostSystem", ["config.storageDevice.hostBusAdapter"], {"any_item": {
        "path": "config.storageDevice.hostBusAdapter", "match": {"all": [
            {"path": "_type", "op": "eq", "value": "HostInternetScsiHba"},
            {"path": "authenticationProperties.mutualChapAuthenticationType", "op": "ne", "value": "chapRequired"}]}}},
        "{name}: iSCSI adapter {item.device} does not require mutual CHAP",
        "Set the iSCSI adapter's authentication to bidirectional CHAP with a unique secret."),
    # numbered, not checked: the API shows the domain join, not whether the proxy made it
    {"control": "esxi-8.ad-auth-proxy", "retired": "the vSphere API cannot tell whether the Authentication Proxy "
                                                   "joined the host"},
    # --- vCenter advanced settings, distributed switches -----------------------------------------
    vcenter("vcenter-8.etc-issue", "etc.issue", "empty", None, "a login banner your legal advisers approve",
            "Authorised use only.", ""),
    vcenter("vcenter-8.events-remote-logging", "vpxd.event.syslog.enabled", "not_true", True, "true", True, False),
    vcenter("vcenter-8.logs-level-global", "config.log.level", "ne", "info", "info", "info", "verbose"),
    vcenter("vcenter-8.vpxuser-rotation", "VirtualCenter.VimPasswordExpirationInDays", "range", (1, 30),
            "30 days or fewer", 30, 90),
    custom("vcenter-8.network-mac-learning", "vsphere:DistributedVirtualPortgroup", ["config.defaultPortConfig"],
           {"path": "config.defaultPortConfig.macManagementPolicy.macLearningPolicy.enabled", "op": "eq",
            "value": True},
           "{name}: MAC learning is enabled on the port group",
           "Turn MAC learning off on the port group unless a nested hypervisor or appliance needs it."),
    custom("vcenter-8.network-reset-port", "vsphere:DistributedVirtualPortgroup", ["config.policy"],
           {"path": "config.policy.portConfigResetAtDisconnect", "op": "ne", "value": True},
           "{name}: port configuration is not reset when a VM disconnects",
           "Enable 'Configure reset at disconnect' in the port group's advanced policy."),
    custom("vcenter-8.network-restrict-port-level-overrides", "vsphere:DistributedVirtualPortgroup", ["config.policy"],
           {"any": [{"path": f"config.policy.{key}", "op": "eq", "value": True} for key in (
               "vlanOverrideAllowed", "securityPolicyOverrideAllowed", "macManagementOverrideAllowed",
               "uplinkTeamingOverrideAllowed", "trafficFilterOverrideAllowed", "networkResourcePoolOverrideAllowed",
               "ipfixOverrideAllowed", "livePortMovingAllowed")]},
           "{name}: port-level overrides are allowed on the port group",
           "Clear every override allowed on the port group's advanced policy except 'block ports'."),
    custom("vcenter-8.network-restrict-discovery-protocol", SWITCHES,
           ["config.linkDiscoveryProtocolConfig"],
           {"path": "config.linkDiscoveryProtocolConfig.operation", "op": "ne", "value": "none"},
           "{name}: the switch advertises through {config.linkDiscoveryProtocolConfig.protocol} "
           "({config.linkDiscoveryProtocolConfig.operation})",
           "Set the switch's discovery protocol operation to none, or listen only where a network team needs it."),
    custom("vcenter-8.network-restrict-netflow-usage", SWITCHES, ["config"],
           {"path": "config.ipfixConfig.collectorIpAddress", "op": "not_empty"},
           "{name}: NetFlow sends traffic records to {config.ipfixConfig.collectorIpAddress}",
           "Remove the NetFlow collector unless it is an authorised monitoring system."),
    custom("vcenter-8.network-restrict-port-mirroring", SWITCHES, ["config"],
           {"path": "config.vspanSession", "op": "not_empty"},
           "{name}: port mirroring sessions copy traffic: {config.vspanSession}",
           "Remove port mirroring sessions that are not authorised."),
    # --- VMs ----------------------------------------------------------------------------------
    vm("vm-8.deactivate-console-copy", "isolation.tools.copy.disable", "is_true_text", None, "TRUE or undefined",
       None, "FALSE"),
    vm("vm-8.deactivate-console-paste", "isolation.tools.paste.disable", "is_true_text", None, "TRUE or undefined",
       None, "FALSE"),
    vm("vm-8.deactivate-disk-shrinking-shrink", "isolation.tools.diskShrink.disable", "is_true_text", None,
       "TRUE or undefined", None, "FALSE"),
    vm("vm-8.deactivate-disk-shrinking-wiper", "isolation.tools.diskWiper.disable", "is_true_text", None,
       "TRUE or undefined", None, "FALSE"),
    vm("vm-8.deactivate-non-essential-3d-features", "mks.enable3d", "is_false_text", None, "FALSE or undefined",
       "FALSE", "TRUE"),
    vm("vm-8.isolation-device-connectable-deactivate", "isolation.device.connectable.disable", "is_true_text", None,
       "TRUE or undefined", None, "FALSE"),
    vm("vm-8.isolation-tools-dnd-deactivate", "isolation.tools.dnd.disable", "is_true_text", None,
       "TRUE or undefined", None, "FALSE"),
    vm("vm-8.limit-console-connections", "RemoteDisplay.maxConnections", "ne_or_unset", 1, "1", "1", "-1") | {
        "note": "undefined means unlimited: the VM must set it"},
    vm("vm-8.limit-setinfo-size", "tools.setInfo.sizeLimit", "gt", 1048576, "1048576 or less, or undefined",
       None, "4194304"),
    vm("vm-8.log-retention", "log.keepOld", "gt", 10, "10 or fewer, or undefined", None, "100"),
    # 0 turns rotation off: the log grows without limit
    vm("vm-8.log-rotation-size", "log.rotateSize", "range", (1, 2048000), "2048000 or less (not 0), or undefined",
       None, "0"),
    vm("vm-8.restrict-host-info", "tools.guestlib.enableHostInfo", "is_false_text", None, "FALSE or undefined",
       None, "TRUE"),
    vm("vm-8.transparentpagesharing-inter-vm-enabled", "sched.mem.pshare.salt", "present", None, "not present",
       None, "shared-salt"),
    vm("vm-8.vmrc-lock", "tools.guest.desktop.autolock", "not_true_or_unset", None, "TRUE", "TRUE", "FALSE") | {
        "note": "undefined means FALSE: the VM must set it"},
    vm("vm-8.efi-boot-types", "bios.bootDeviceClasses", "ne_or_unset", "allow:hd",
       "allow:hd once the guest OS is installed", "allow:hd", "allow:all") | {
        "note": "undefined means allow:all: the VM must set it"},
    custom("vm-8.dvfilter", "vsphere:VirtualMachine", ["facts.vm_settings"],
           {"path": "facts.dvfilters", "op": "not_empty"},
           "{name}: network filters are attached: {facts.dvfilters}",
           "Remove ethernetN.filterM.name parameters that no authorised security appliance needs."),
    custom("vm-8.ft-encrypted", "vsphere:VirtualMachine", ["config.ftEncryptionMode"],
           {"path": "config.ftEncryptionMode", "op": "ne", "value": "ftEncryptionRequired"},
           "{name}: Fault Tolerance logging is {config.ftEncryptionMode}",
           "Set the VM's FT encryption to required (VM Options > Encryption)."),
    custom("vm-8.log-enable", "vsphere:VirtualMachine", ["config.flags"],
           {"path": "config.flags.enableLogging", "op": "ne", "value": True},
           "{name}: VM logging is off", "Enable logging in the VM's options (Advanced > Enable logging)."),
    custom("vm-8.pci-passthrough", "vsphere:VirtualMachine", ["config.hardware.device"], {"any_item": {
        "path": "config.hardware.device", "match": {"path": "_type", "op": "eq", "value": "VirtualPCIPassthrough"}}},
        "{name}: a PCI device is passed through ({item.deviceInfo.label})",
        "Remove PCI and DirectPath I/O passthrough devices unless the workload requires them."),
    # the devices the collector keeps (auditor/inventory.py), passthrough having its own control
    custom("vm-8.remove-unnecessary-devices", "vsphere:VirtualMachine", ["config.hardware.device"], {"any_item": {
        "path": "config.hardware.device", "match": {"path": "_type", "op": "in",
                                                    "value": sorted(VM_DEVICE_TYPES - {"VirtualPCIPassthrough"})}}},
        "{name}: has {item.deviceInfo.label} ({item._type})",
        "Remove virtual devices the VM does not use (USB, serial, parallel, floppy, sound, CD/DVD)."),
    custom("vm-8.vmotion-encrypted", "vsphere:VirtualMachine", ["config.migrateEncryption"],
           {"path": "config.migrateEncryption", "op": "ne", "value": "required"},
           "{name}: vMotion encryption is {config.migrateEncryption}",
           "Set the VM's encrypted vMotion to required (VM Options > Encryption)."),
    custom("guest-8.secure-boot", "vsphere:VirtualMachine", ["config.bootOptions"],
           {"path": "config.bootOptions.efiSecureBootEnabled", "op": "ne", "value": True},
           "{name}: UEFI Secure Boot is off in the VM",
           "Use EFI firmware and enable Secure Boot in the VM's boot options (the guest OS must support it)."),
]


# Rules beyond the guide's controls, appended as written (CVE-2024-37085).
EXTRA_RULES = Path(__file__).with_name("scg_rules_extra.yaml")


def guide() -> tuple[dict[str, dict[str, str]], set[str]]:
    """The vSphere 8 controls (id -> row) and the VCF 9 ids, from the fixture copies."""
    with open(FIXTURES / "vsphere-8-controls.csv", encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(FIXTURES / "vcf-9-controls.csv", encoding="utf-8-sig", newline="") as handle:
        nine = {row["SCG ID"] for row in csv.DictReader(handle)}
    return {row["SCG ID"]: row for row in rows if row["SCG ID"]}, nine


# VCF 9 ids of the same control under another name
VCF9_RENAMED = {"esxi-8.account-password-policies": "esx-9.password-complexity",
                "esxi-8.logs-audit-local": "esx-9.log-audit-local",
                "esxi-8.annotations-welcomemessage": "esx-9.login-message",
                "guest-8.secure-boot": "vm-9.secure-boot"}


def vcf9(control: str, nine: set[str]) -> str | None:
    if VCF9_RENAMED.get(control) in nine:
        return VCF9_RENAMED[control]
    component, _, rest = control.partition(".")
    mapped = {"esxi-8": "esx-9", "vcenter-8": "vcenter-9", "vm-8": "vm-9", "guest-8": "guest-9"}.get(component)
    return f"{mapped}.{rest}" if mapped and f"{mapped}.{rest}" in nine else None


def render() -> tuple[str, dict[str, Any]]:
    controls, nine = guide()
    lines = ["# Generated by tools/scg_rules.py from the vSphere Security Configuration Guide; do not edit",
             "# by hand. Titles and discussions are the guide's (Copyright (c) CA, Inc., used under its",
             "# notice in tests/fixtures/vsphere-scg/README.md).",
             "pack:", "  name: hardening", '  version: "1.0"',
             "  description: ESXi, vCenter, distributed switch and VM settings of the vSphere Security "
             "Configuration Guide.",
             "", "rules:"]
    values: dict[str, dict[str, Any]] = {"esxi": {}, "vm": {}, "vcenter": {}}
    number = 0
    for spec in CONTROLS:
        row = controls[spec["control"]]
        if not spec.get("id"):
            number += 1  # retired entries keep their number, so that no later rule's id moves
        if spec.get("retired"):
            continue
        rule_id = spec.get("id") or f"VS-HRD-{number:03d}"
        priority = row["Implementation Priority"].split("\n")[0].strip()
        frameworks: dict[str, list[str]] = {"vsphere-scg-8": [spec["control"]]}
        if (nine_id := vcf9(spec["control"], nine)) is not None:
            frameworks["vcf-scg-9"] = [nine_id]
        discussion = " ".join(row["Discussion"].split())
        description = f"{row['Description/Title']} {discussion}"
        if spec.get("note"):
            description += f" ({spec['note']}.)"
        rule = {"id": rule_id, "title": row["Description/Title"].rstrip("."), "severity": SEVERITY.get(priority, "low"),
                "category": "hardening", "resource": spec["resource"], "description": description,
                "remediation": spec["remediation"], "references": [GUIDE_URL], "frameworks": frameworks,
                "needs": spec["needs"], "match": spec["match"], "message": spec["message"]}
        lines.append(_yaml_rule(rule))
        if spec["kind"] in values:
            values[spec["kind"]][spec["key"]] = {"compliant": spec["compliant"], "violating": spec["violating"],
                                                 "rule": rule_id}
    extra = EXTRA_RULES.read_text(encoding="utf-8").split("\n", 1)[1]  # without its own comment line
    return "\n".join(lines) + "\n" + extra, values


def _yaml_rule(rule: dict[str, Any]) -> str:
    out = [f"  - id: {rule['id']}"]
    out.append(f"    title: {json.dumps(rule['title'], ensure_ascii=False)}")
    for key in ("severity", "category"):
        out.append(f"    {key}: {rule[key]}")
    resource = rule["resource"]
    out.append(f"    resource: {'[' + ', '.join(resource) + ']' if isinstance(resource, list) else resource}")
    out.append("    description: >-")
    out += ["      " + line for line in textwrap.wrap(rule["description"], 88)]
    out.append(f"    remediation: {json.dumps(rule['remediation'], ensure_ascii=False)}")
    out.append(f"    references: {json.dumps(rule['references'])}")
    out.append("    frameworks:")
    out += [f"      {name}: {json.dumps(ids)}" for name, ids in rule["frameworks"].items()]
    out.append(f"    needs: {json.dumps(rule['needs'])}")
    out.append(f"    match: {json.dumps(rule['match'], ensure_ascii=False)}")
    out.append(f"    message: {json.dumps(rule['message'], ensure_ascii=False)}")
    return "\n".join(out) + "\n"


def control_titles() -> dict[str, str]:
    """The guide's title of every control the shipped rules can cite (vSphere 8 and VCF 9),
    for the compliance view: auditor/data/scg_control_titles.json."""
    titles = {}
    for name in ("vsphere-8-controls.csv", "vcf-9-controls.csv"):
        with open(FIXTURES / name, encoding="utf-8-sig", newline="") as handle:
            for row in csv.DictReader(handle):
                if row["SCG ID"]:
                    titles[row["SCG ID"]] = " ".join(row["Description/Title"].split())
    return dict(sorted(titles.items()))


def main() -> int:
    (ROOT / "auditor" / "data" / "scg_control_titles.json").write_text(
        json.dumps(control_titles(), indent=0, ensure_ascii=False) + "\n", encoding="utf-8")
    text, values = render()
    (ROOT / "rules" / "hardening.yaml").write_text(text, encoding="utf-8")
    (ROOT / "auditor" / "sample" / "hardening_values.json").write_text(
        json.dumps(values, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {sum(1 for spec in CONTROLS if not spec.get('retired'))} rules to rules/hardening.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
