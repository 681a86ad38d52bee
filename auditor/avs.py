"""Azure VMware Solution as one estate: a private cloud and its vCenter, and who acts.

The Azure source sees `Microsoft.AVS/privateClouds`; the vSphere source may collect the
vCenter that `endpoints.vcsa` (or `endpoints.vcenterIp`) names. When both are in a scan,
`link_avs` joins them: the private cloud gets `facts.vcenter` (the vSphere source id) and
every resource of that vCenter `facts.avs` = {private_cloud, name, subscription}, so that
reports show them as one system, and the support stage knows those VMs run in Azure
(Microsoft gives Extended Security Updates free on Azure VMware Solution too).

On AVS Microsoft runs the hosts: it patches and upgrades ESXi and vCenter, hardens and
licenses the hosts (Microsoft's responsibility matrix for Azure VMware Solution,
learn.microsoft.com/azure/azure-vmware/introduction).
Findings about those are `responsibility: provider`: shown, and not counted by the gate
unless asked to (`--gate-provider-findings`). What runs on the private cloud (guests, VM
settings, networks the customer builds) stays the customer's.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from .facts import nested
from .findings import Finding

PRIVATE_CLOUD = "microsoft.avs/privateclouds"
# What Microsoft operates on a private cloud, by finding category and resource type.
PROVIDER_SCOPE = {
    "support-status": {"HostSystem", "vCenter"},  # lifecycle and patching of ESXi and vCenter
    "hardening": {"HostSystem", "vCenter", "DistributedVirtualSwitch", "VmwareDistributedVirtualSwitch"},
    "licensing": {"HostSystem", "License", "ClusterComputeResource"},  # host licences come with AVS
    "drift": {"HostSystem"},
}


def _host_of(endpoint: Any) -> str | None:
    if not isinstance(endpoint, str) or not endpoint.strip():
        return None
    text = endpoint.strip()
    try:  # whatever an Azure property holds: a value that is no URL names no endpoint
        host = urlsplit(text if "://" in text else f"https://{text}").hostname
    except ValueError:
        return None
    return host.lower().rstrip(".") if host else None


def _source_host(source: str) -> str:
    """The host part of a vSphere source id (`host`, `host:port`, `[v6]:port`)."""
    if source.startswith("["):
        return source[1:].partition("]")[0].lower()
    host, sep, port = source.rpartition(":")
    if sep and port.isdigit() and host and ":" not in host:
        return host.lower()
    return source.lower()


# The names Azure VMware Solution gives its vCenters (vc.<id>.<region>.avs.azure.com, and
# Microsoft's lab's in its published examples).
AVS_DOMAINS = (".avs.azure.com", ".avslab.azure.com")


def link_avs(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Join each private cloud with its vCenter when both were collected; idempotent.
    Returns vSphere source id -> {private_cloud, name, subscription} of those linked.

    The join hides findings from the gate (they become the provider's), so it is made only
    where it cannot be forged by a resource that merely names a vCenter: the vCenter's name
    is one Azure VMware Solution gives (under avs.azure.com), or its address lies in the
    private cloud's own management network block; a vCenter two private clouds name is not
    joined to either. A vCenter under avs.azure.com is AVS's by its name alone (private_cloud
    None) when no private cloud of this scan claims it: a vSphere-only scan keeps it so."""
    clouds: dict[str, dict[str, Any]] = {}
    ambiguous: set[str] = set()
    for cloud in resources:
        if cloud["cloud"] == "azure" and cloud["type"] == PRIVATE_CLOUD:
            cloud.setdefault("facts", {}).pop("vcenter", None)
            endpoints = nested(cloud, "properties", "endpoints")
            names = {_normal(host) for host in (_host_of(nested(endpoints, "vcsa")),
                                                _host_of(nested(endpoints, "vcenterIp"))) if host}
            for host in names:
                if not _avs_address(host, nested(cloud, "properties", "networkBlock")):
                    continue
                if host in clouds and clouds[host] is not cloud:
                    ambiguous.add(host)
                clouds.setdefault(host, cloud)
    for host in ambiguous:
        del clouds[host]
    # only a vCenter can be a private cloud's: a standalone ESXi source is not joined
    vcenters = {r["source"] for r in resources if r["cloud"] == "vsphere" and r["type"] == "vCenter"}
    linked: dict[str, dict[str, Any] | None] = {}
    for resource in resources:
        if resource["cloud"] != "vsphere" or resource["source"] not in vcenters:
            continue
        facts = resource.setdefault("facts", {})
        facts.pop("avs", None)
        source = resource["source"]
        if source not in linked:
            host = _normal(_source_host(source))
            cloud = clouds.get(host)
            if cloud is not None:
                cloud["facts"]["vcenter"] = source
                linked[source] = {"private_cloud": cloud["id"], "name": cloud["name"], "subscription": cloud["source"]}
            elif host.endswith(AVS_DOMAINS):
                # a vCenter under avs.azure.com is Azure VMware Solution's by its name alone,
                # whether or not this scan also read its private cloud from Azure
                linked[source] = {"private_cloud": None, "name": None, "subscription": None}
            else:
                linked[source] = None
        if linked[source] is not None:
            facts["avs"] = dict(linked[source])
    return {source: link for source, link in linked.items() if link is not None}


def _avs_address(host: str, network_block: Any) -> bool:
    """Whether a vCenter address can only be an Azure VMware Solution one: a name under
    avs.azure.com, or an address inside the private cloud's management block."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host.endswith(AVS_DOMAINS)
    try:
        block = ipaddress.ip_network(network_block, strict=False) if isinstance(network_block, str) else None
    except ValueError:
        return False
    return block is not None and block.prefixlen >= 16 and address in block and not address.is_unspecified


def _normal(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def assign_responsibility(findings: list[Finding], resources: list[dict[str, Any]]) -> None:
    """Mark the findings Microsoft acts on, on a linked private cloud's vCenter."""
    on_avs = {resource["id"] for resource in resources
              if resource["cloud"] == "vsphere" and isinstance(nested(resource, "facts", "avs"), dict)}
    if not on_avs:
        return
    for finding in findings:
        if finding.resource_id in on_avs and finding.resource_type in PROVIDER_SCOPE.get(finding.category, ()):
            finding.responsibility = "provider"
