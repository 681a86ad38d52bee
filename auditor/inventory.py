"""The resource types the collectors produce: one catalogue that the sources collect by and
the rule loader checks `resource:` selectors against, so a typo such as
`vsphere:VirtualMachines` is refused at load time instead of matching nothing for ever.

Kept apart from the sources so that the engine need not import pyvmomi or the Azure SDK.
"""

from __future__ import annotations

# Managed object types, as vSphere names them (`_wsdlName`); `vCenter` is the service
# instance's about info, `License` a licence of the licence manager.
VSPHERE_TYPES = (
    "vCenter", "HostSystem", "VirtualMachine", "Network", "DistributedVirtualPortgroup",
    "DistributedVirtualSwitch", "VmwareDistributedVirtualSwitch", "ClusterComputeResource", "Datastore",
    "License",
)

# ARM types, lower case as Resource Graph returns them, that the inventory query asks for.
AZURE_RESOURCE_TYPES = (
    "microsoft.compute/virtualmachines", "microsoft.compute/virtualmachinescalesets",
    "microsoft.network/networkinterfaces", "microsoft.network/publicipaddresses",
    "microsoft.network/networksecuritygroups", "microsoft.network/virtualnetworks",
    "microsoft.network/routetables", "microsoft.network/networkwatchers",
    "microsoft.network/networkwatchers/flowlogs", "microsoft.network/loadbalancers",
    "microsoft.network/azurefirewalls", "microsoft.network/bastionhosts",
    "microsoft.network/applicationgateways", "microsoft.network/applicationgatewaywebapplicationfirewallpolicies",
    "microsoft.network/firewallpolicies",
    "microsoft.sqlvirtualmachine/sqlvirtualmachines", "microsoft.hybridcompute/machines",
    "microsoft.avs/privateclouds", "microsoft.avs/privateclouds/clusters",
)
AZURE_CONTAINER_TYPES = ("microsoft.resources/subscriptions", "microsoft.resources/subscriptions/resourcegroups")
AZURE_POLICY_TYPES = ("microsoft.authorization/policyassignments",)
# not asked for by type, but in every snapshot that has them: non-compliant policy states
# (PolicyResources), the custom definitions that assignments name (policy SDK), and the
# rule collection groups of firewall policies (resource SDK, by id)
AZURE_OTHER_TYPES = ("microsoft.policyinsights/policystates", "microsoft.authorization/policydefinitions",
                     "microsoft.authorization/policysetdefinitions",
                     # child resources Resource Graph does not index: read by id from their policy
                     "microsoft.network/firewallpolicies/rulecollectiongroups")
AZURE_TYPES = AZURE_RESOURCE_TYPES + AZURE_CONTAINER_TYPES + AZURE_POLICY_TYPES + AZURE_OTHER_TYPES

KNOWN_TYPES = {"vsphere": VSPHERE_TYPES, "azure": AZURE_TYPES}


def known(cloud: str, kind: str) -> bool:
    """Whether a collector produces resources of `kind` in `cloud` (`*`: in either)."""
    if cloud == "*":
        return kind in VSPHERE_TYPES or kind.lower() in AZURE_TYPES
    return kind in KNOWN_TYPES.get(cloud, ())


def nearest(cloud: str, kind: str) -> str | None:
    """The known selector closest to a mistyped one, for 'did you mean'."""
    import difflib

    choices = {f"{c}:{t}": t for c, types in KNOWN_TYPES.items() for t in types if cloud in (c, "*")}
    by_type = difflib.get_close_matches(kind.lower(), [t.lower() for t in choices.values()], n=1, cutoff=0.6)
    if not by_type:
        return None
    return next(selector for selector, t in choices.items() if t.lower() == by_type[0])


# What the vSphere source reads of settings, named by the Security Configuration Guide
# (vSphere 8, VCF 9). Allow-lists, never everything: advanced settings can hold credentials
# and tokens. The hardening rules read no setting that is not listed here.
ESXI_SETTINGS = frozenset({
    "Security.AccountUnlockTime", "Security.AccountLockFailures", "Security.PasswordHistory",
    "Security.PasswordMaxDays", "Security.PasswordQualityControl", "Annotations.WelcomeMessage",
    "Config.HostAgent.vmacore.soap.sessionTimeout", "UserVars.SuppressHyperthreadWarning", "UserVars.DcuiTimeOut",
    "Config.HostAgent.plugins.solo.enableMob", "Config.Etc.issue", "UserVars.HostClientSessionTimeout",
    "Net.BMCNetworkEnable", "DCUI.Access", "Syslog.global.auditRecord.storageEnable",
    "Syslog.global.auditRecord.storageCapacity", "Syslog.global.auditRecord.remoteEnable",
    "Config.HostAgent.log.level", "Syslog.global.logLevel", "Syslog.global.logHost", "Syslog.global.logDir",
    "Syslog.global.logDirUnique", "Syslog.global.certificate.checkSSLCerts",
    "Syslog.global.certificate.strictX509Compliance", "Mem.MemEagerZero", "Net.BlockGuestBPDU",
    "Net.DVFilterBindIpAddress", "UserVars.ESXiShellInteractiveTimeOut", "UserVars.ESXiShellTimeOut",
    "UserVars.SuppressShellWarning", "UserVars.ESXiVPsDisabledProtocols", "Mem.ShareForceSalting",
    "VMkernel.Boot.execInstalledOnly", "Config.HostAgent.plugins.hostsvc.esxAdminsGroup",
    "Config.HostAgent.plugins.hostsvc.esxAdminsGroupAutoAdd", "ScratchConfig.CurrentScratchLocation",
})
# VM advanced settings (extraConfig); keys matching VM_SETTING_PATTERNS are read as well.
VM_SETTINGS = frozenset({
    "isolation.tools.copy.disable", "isolation.tools.paste.disable", "isolation.tools.diskShrink.disable",
    "isolation.tools.diskWiper.disable", "mks.enable3d", "bios.bootDeviceClasses",
    "isolation.device.connectable.disable", "isolation.tools.dnd.disable", "RemoteDisplay.maxConnections",
    "tools.setInfo.sizeLimit", "log.keepOld", "log.rotateSize", "tools.guestlib.enableHostInfo",
    "sched.mem.pshare.salt", "tools.guest.desktop.autolock",
})
VM_SETTING_PATTERNS = (r"ethernet[0-9]+\.filter[0-9]+\.name",)  # dvfilter network filters (vm-8.dvfilter)
# vCenter advanced settings (the service instance's OptionManager).
VCENTER_SETTINGS = frozenset({
    "etc.issue", "vpxd.event.syslog.enabled", "config.log.level", "VirtualCenter.VimPasswordExpirationInDays",
})
# Virtual devices the guide wants gone (vm-8.remove-unnecessary-devices, vm-8.pci-passthrough),
# kept beside the network adapters by their type name.
VM_DEVICE_TYPES = frozenset({
    "VirtualUSBController", "VirtualUSBXHCIController", "VirtualParallelPort", "VirtualFloppy",
    "VirtualSerialPort", "VirtualHdAudioCard", "VirtualEnsoniq1371", "VirtualSoundBlaster16", "VirtualCdrom",
    "VirtualPCIPassthrough", "VirtualAHCIController",
})
