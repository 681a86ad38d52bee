"""Azure source: subscriptions, resources and policy through the Azure SDK.

Inventory comes from Azure Resource Graph: one KQL query over every requested subscription
(in batches of 1,000), paged by `$skipToken` at 1,000 rows a page, covers the resource
types the rules read, the resource groups and subscriptions themselves (ResourceContainers)
and policy assignments and non-compliant policy states (PolicyResources). Requests then grow
with pages, not with subscriptions or resource types. Around it:

- `SubscriptionClient` (the resource SDK) lists the subscriptions the identity can see,
  with display name and tenant; a requested subscription that is not among them is asked
  about through `ResourceManagementClient`, whose answer (403 AuthorizationFailed, 404
  SubscriptionNotFound) becomes that subscription's one-line failure;
- `PolicyClient` (azure-mgmt-resource-policy) reads the custom policy definitions and
  initiatives the assignments name; built-in ones are the same everywhere and rules name
  them by their well-known ids;
- `ComputeManagementClient` (azure-mgmt-compute) lists the Resource SKUs of each region that
  holds VMs or scale sets, once per region through one subscription with VMs there, and keeps
  the vCPUs of the sizes in use in that subscription's `details["vm_sizes"]` (licences count
  real vCPUs, not a size name's digits: auditor/vm_sizes.py). The look-up is optional: when it
  fails, `details["vm_sizes_error"]` says why in one line and the bundled table stands in.

Rows are kept as Resource Graph returns them (ARM JSON plus `subscriptionId`,
`resourceGroup`, `tenantId`), unknown fields included. azure-core retries 429 (honouring
a `Retry-After` of at most QUOTA_WAIT_LIMIT), 408 and 5xx a bounded number of times, and
follows REDIRECTS redirects at most; when Resource Graph says the
caller's quota is used up (`x-ms-user-quota-remaining: 0`) the next query waits for
`x-ms-user-quota-resets-after`. A token the service rejects (expired, revoked) is replaced
once by a new credential before the subscription is given up.

`--timeout` bounds every request whole, from its connection to the last byte of its
answer (deadline_session: a peer that trickles bytes, each within a read timeout, is cut
off too), and a request that timed out is not tried again, so a stalled Resource Manager
or token endpoint fails the scope after one timeout rather than after one per retry. The
credentials DefaultAzureCredential tries make their own connections, bounded per wait.
"""

from __future__ import annotations

import functools
import os
import re
import time
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..inventory import AZURE_CONTAINER_TYPES, AZURE_POLICY_TYPES, AZURE_RESOURCE_TYPES
from ..snapshot import Source, make_resource
from ..vm_sizes import count as vcpu_count
from ..vm_sizes import size_key
from . import Collected, InventorySource, Progress
from .deadline import deadline_session

PAGE_SIZE = 1000
SUBSCRIPTION_BATCH = 1000
RETRIES = 4
QUOTA_WAIT_LIMIT = 60.0  # seconds; Resource Graph's quota window is 5 s, this is a guard
REDIRECTS = 3  # for Resource Manager clients: it answers where it is asked; a chain is no service of it

# Resource types the rules and facts read (auditor/inventory.py, which the rule loader also checks)
RESOURCE_TYPES = AZURE_RESOURCE_TYPES
RULE_COLLECTION_GROUP_API = "2024-05-01"  # Microsoft.Network's firewallPolicies/ruleCollectionGroups
CONTAINER_TYPES = AZURE_CONTAINER_TYPES
POLICY_TYPES = AZURE_POLICY_TYPES


def inventory_query() -> str:
    """The one KQL query; `order by id` keeps `$skipToken` paging stable."""
    def listed(types: Iterable[str]) -> str:
        return ", ".join(f"'{t}'" for t in types)
    return (f"Resources | where type in~ ({listed(RESOURCE_TYPES)})\n"
            f"| union (ResourceContainers | where type in~ ({listed(CONTAINER_TYPES)}))\n"
            f"| union (PolicyResources | where type in~ ({listed(POLICY_TYPES)}) or "
            "(type =~ 'microsoft.policyinsights/policystates' and properties.complianceState =~ 'NonCompliant'))\n"
            "| order by id asc")


@dataclass(frozen=True)
class AzureCloud:
    """Where one Azure cloud's Resource Manager and Entra ID live."""

    arm_endpoint: str
    authority: str
    audience: str


CLOUDS = {
    "AzureCloud": AzureCloud("https://management.azure.com", "https://login.microsoftonline.com",
                             "https://management.azure.com"),
    "AzureUSGovernment": AzureCloud("https://management.usgovcloudapi.net", "https://login.microsoftonline.us",
                                    "https://management.core.usgovcloudapi.net"),
    "AzureChinaCloud": AzureCloud("https://management.chinacloudapi.cn", "https://login.chinacloudapi.cn",
                                  "https://management.chinacloudapi.cn"),
}
_KNOWN_AUTHORITIES = {cloud.authority for cloud in CLOUDS.values()}


@dataclass
class AzureConnection:
    """Which cloud to reach and how to verify it; credentials come from the environment."""

    cloud: str = "AzureCloud"
    arm_endpoint: str | None = None  # Azure Stack Hub or a private endpoint; overrides the cloud's
    authority: str | None = None
    audience: str | None = None
    tenant_id: str | None = None
    ca_bundle: str | None = None
    timeout: float = 60.0

    @property
    def endpoints(self) -> AzureCloud:
        """The cloud's endpoints with explicit overrides applied."""
        base = CLOUDS[self.cloud]
        arm = (self.arm_endpoint or base.arm_endpoint).rstrip("/")
        return AzureCloud(arm_endpoint=arm, authority=(self.authority or base.authority).rstrip("/"),
                          audience=(self.audience or (arm if self.arm_endpoint else base.audience)).rstrip("/"))

    @property
    def scope(self) -> str:
        """The OAuth scope of Resource Manager in this cloud."""
        return f"{self.endpoints.audience}/.default"

    @property
    def connect_timeout(self) -> float:
        """Seconds to wait for a TCP connection (a live endpoint connects in far less than 30 s)."""
        return min(self.timeout, 30.0)

    def transport(self) -> dict[str, Any]:
        """Keyword arguments for every SDK client and credential: CA, timeouts, retries."""
        options: dict[str, Any] = {"connection_timeout": self.connect_timeout, "read_timeout": self.timeout,
                                   "retry_total": RETRIES, "retry_status": RETRIES, "retry_connect": 2,
                                   "retry_backoff_factor": 0.8, "retry_backoff_max": 60}
        if self.ca_bundle:
            options["connection_verify"] = self.ca_bundle
        return options

    def bounded_transport(self) -> Any:
        """A transport of its own for one client or credential, whose every request takes at
        most the timeout, whole (deadline_session), with the CA and the timeouts of each wait."""
        from azure.core.pipeline.transport import RequestsTransport

        return RequestsTransport(session=deadline_session(self.timeout), session_owner=True,
                                 connection_timeout=self.connect_timeout, read_timeout=self.timeout,
                                 connection_verify=self.ca_bundle or True)

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for the Resource Manager clients: the transport's, on a bounded
        transport, with a retry policy that does not try a timed-out request again."""
        options = self.transport()
        retries = {key: value for key, value in options.items() if key.startswith("retry_")}
        # each redirect is a request of its own: azure-core follows 30, which would be 30 timeouts
        return {**options, "transport": self.bounded_transport(),
                "retry_policy": timeout_final_retry_policy()(**retries), "redirect_max": REDIRECTS}

    def credential(self) -> Any:
        """A service principal from AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET when
        all three are set, else DefaultAzureCredential (managed identity, Azure CLI, ...)."""
        from azure.identity import ClientSecretCredential, DefaultAzureCredential

        authority = self.endpoints.authority
        options = {"authority": authority, **self.transport()}
        if authority not in _KNOWN_AUTHORITIES:
            # Azure Stack Hub (ADFS) and private authorities are not in Entra's instance list
            options["disable_instance_discovery"] = True
        tenant = self.tenant_id or os.environ.get("AZURE_TENANT_ID")
        client, secret = os.environ.get("AZURE_CLIENT_ID"), os.environ.get("AZURE_CLIENT_SECRET")
        if tenant and client and secret:
            # azure-identity builds its pipeline's retry policy from this class (a token request
            # that timed out is not repeated either); DefaultAzureCredential cannot take it: its
            # managed identity credential brings a retry policy class of its own
            return ClientSecretCredential(tenant, client, secret, retry_policy_class=timeout_final_retry_policy(),
                                          transport=self.bounded_transport(), **options)
        # no bounded transport here: the credentials it tries in turn would share, and close, one;
        # each makes its own, whose timeouts bound each wait rather than each request whole
        return DefaultAzureCredential(exclude_interactive_browser_credential=True, **options)


@functools.cache
def timeout_final_retry_policy() -> type:
    """azure-core's RetryPolicy, except that a request that timed out (no connection, no
    answer, or not all of it within --timeout) is not tried again: each try of a stalled
    endpoint would wait the whole timeout again (four tries and their back-off: about 4x
    the timeout). A timeout while the body is read reaches azure-core from requests as a
    connection error (ServiceRequestError), with the timeout behind it. Nor is a request
    whose answer asks for a wait (Retry-After) longer than QUOTA_WAIT_LIMIT: azure-core
    would sleep whatever it is told, an hour or a year, each time."""
    from azure.core.pipeline.policies import RetryPolicy

    class TimeoutFinalRetryPolicy(RetryPolicy):
        def get_retry_after(self, response: Any) -> float | None:
            """The wait asked for, or None where the header is no wait azure-core can read
            (it would raise ValueError, and the answer's status be lost)."""
            try:
                return super().get_retry_after(response)
            except (ValueError, TypeError, OverflowError):
                return None

        def increment(self, settings: dict[str, Any], response: Any = None, error: Exception | None = None) -> bool:
            if error is not None and _timeout_of(error) is not None:
                return False
            # (on an error, azure-core passes the request as `response`)
            if error is None and response is not None and (self.get_retry_after(response) or 0) > QUOTA_WAIT_LIMIT:
                return False  # an endpoint asking for an hour's wait gets its answer reported instead
            return super().increment(settings, response=response, error=error)

    return TimeoutFinalRetryPolicy


@dataclass
class AzureScope:
    """What to collect: given subscriptions, a management group, or all visible ones."""

    subscriptions: list[str] = field(default_factory=list)
    management_group: str | None = None

    @property
    def label(self) -> str:
        """How failures and progress name this scope."""
        if self.management_group:
            return f"management group {self.management_group}"
        if len(self.subscriptions) > 3:
            return f"{len(self.subscriptions)} subscriptions"
        return ", ".join(self.subscriptions) or "azure"


class IncompleteInventory(Exception):
    """Resource Graph returned part of the result and no way to fetch the rest."""


class NoSubscriptions(Exception):
    """The scope holds no subscription the identity can read: nothing to audit."""


class SkusNotAsked(Exception):
    """A region's Resource SKUs were not asked for, after another region's request timed out."""


class AzureSource(InventorySource):
    """One Azure scope (tenant, management group or list of subscriptions)."""

    def __init__(self, connection: AzureConnection, scope: AzureScope, page_size: int = PAGE_SIZE,
                 sleep: Callable[[float], None] = time.sleep):
        self.connection = connection
        self.scope = scope
        self.page_size = page_size
        self.sleep = sleep
        self.id = scope.label
        self._clients: dict[str, Any] = {}
        self._credential: Any = None
        self._renewed = False
        self.quota_waits: list[float] = []  # seconds waited for Resource Graph's quota, per wait

    # -- clients -----------------------------------------------------------------------

    def _client(self, kind: str, subscription: str | None = None) -> Any:
        key = f"{kind}:{subscription or ''}"
        if key not in self._clients:
            if self._credential is None:
                self._credential = self.connection.credential()
            options = {"base_url": self.connection.endpoints.arm_endpoint,
                       "credential_scopes": [self.connection.scope], **self.connection.client_options()}
            if kind == "subscriptions":
                from azure.mgmt.resource.subscriptions import SubscriptionClient
                client = SubscriptionClient(self._credential, **options)
            elif kind == "resources":
                from azure.mgmt.resource.resources import ResourceManagementClient
                client = ResourceManagementClient(self._credential, subscription, **options)
            elif kind == "policy":
                from azure.mgmt.resource.policy import PolicyClient
                client = PolicyClient(self._credential, subscription, **options)
            elif kind == "compute":
                from azure.mgmt.compute import ComputeManagementClient
                client = ComputeManagementClient(self._credential, subscription, **options)
            else:
                from azure.mgmt.resourcegraph import ResourceGraphClient
                client = ResourceGraphClient(self._credential, **options)
            self._clients[key] = client
        return self._clients[key]

    def _call(self, action: Callable[[], Any]) -> Any:
        """Run one SDK call; a 401 (token expired or revoked) renews the credential once."""
        from azure.core.exceptions import ClientAuthenticationError

        try:
            return action()
        except ClientAuthenticationError as exc:
            if exc.status_code != 401 or self._renewed:
                raise
            # the cached token is refused before its stated expiry (clock skew, revocation,
            # continuous access evaluation): a new credential asks Entra ID for a new one
            self._renewed = True
            self._close()
            self._credential = None
            return action()

    def _close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        if self._credential is not None and hasattr(self._credential, "close"):
            self._credential.close()

    # -- collection --------------------------------------------------------------------

    def collect(self, progress: Progress) -> Collected:
        try:
            return self._collect(progress)
        except Exception as exc:  # every way the far end can fail becomes the status of the scope
            reason = describe_failure(exc, self.connection, self.scope.label)
            requested = self.scope.subscriptions or [self.scope.management_group or "azure"]
            kind = "subscription" if self.scope.subscriptions else (
                "management_group" if self.scope.management_group else "tenant")
            return Collected(sources=[Source(id=s, cloud="azure", kind=kind, status="failed", error=reason)
                                      for s in requested])
        finally:
            self._close()

    def _collect(self, progress: Progress) -> Collected:
        visible = {s["subscriptionId"]: s for s in self._call(
            lambda: [item.as_dict() for item in self._client("subscriptions").subscriptions.list()])}
        failed: list[Source] = []
        if self.scope.management_group:
            targets: dict[str, dict[str, Any]] = {}
        elif self.scope.subscriptions:
            targets = {}
            for subscription in dict.fromkeys(self.scope.subscriptions):
                if subscription in visible:
                    targets[subscription] = visible[subscription]
                elif (refused := self._unreadable(subscription)) is not None:
                    failed.append(refused)
                else:  # readable, though not listed (a guest of another tenant, say)
                    targets[subscription] = {"subscriptionId": subscription}
        else:
            targets = dict(visible)
        rows = self._graph_rows(list(targets), progress)
        for row in rows:  # a management group's subscriptions arrive as rows of its own
            if row.get("type") == "microsoft.resources/subscriptions":
                sid = row.get("subscriptionId")
                targets.setdefault(sid, visible.get(sid) or {"subscriptionId": sid, "displayName": row.get("name"),
                                                             "tenantId": row.get("tenantId")})
        resources = _unique_ids(self.scope.label, (make_resource(
            id=row["id"], name=str(row.get("name") or row["id"].rsplit("/", 1)[-1]), cloud="azure",
            type=row["type"], source=_subscription_of(row), tags=_tags(row), native=row)
            # a row without an id or type cannot be addressed by rules nor found again next scan
            for row in rows if isinstance(row, dict) and isinstance(row.get("id"), str) and row["id"]
            and isinstance(row.get("type"), str) and row["type"]))
        if not targets and not failed:
            scope = f"management group {self.scope.management_group}" if self.scope.management_group \
                else "the tenant"
            raise NoSubscriptions(f"{self.scope.label}: the identity can read no subscription in {scope} "
                                  "(it needs Reader on the subscriptions to audit)")
        resources += self._definitions(resources, set(targets))
        resources += self._rule_collection_groups(resources)
        counts: dict[str, int] = {}
        for resource in resources:
            counts[resource["source"]] = counts.get(resource["source"], 0) + 1
        sources = [Source(id=sid, cloud="azure", kind="subscription", resource_count=counts.get(sid, 0),
                          details={"tenant_id": info.get("tenantId"), "display_name": info.get("displayName"),
                                   "state": info.get("state")})
                   for sid, info in sorted(targets.items())]
        self._vm_sizes(resources, {source.id: source for source in sources})
        return Collected(sources=sources + failed, resources=resources)

    def _vm_sizes(self, resources: list[dict[str, Any]], sources: dict[str, Source]) -> None:
        """The vCPUs of the VM sizes in use, from the Resource SKUs of each region that has VMs
        or scale sets, asked once per region of one subscription with VMs there. Optional: a
        region whose SKUs cannot be read (403, timeout, 5xx) leaves a one-line reason in that
        subscription's details["vm_sizes_error"], and the inventory stands as collected. After
        a timeout the other regions are not asked: a stalled endpoint costs one --timeout, not
        one per region."""
        timed_out = None
        for region, (subscriptions, sizes) in sorted(sizes_in_use(resources).items()):
            candidates = subscriptions & sources.keys()
            if not candidates:
                continue
            subscription = min(candidates)
            details = sources[subscription].details
            try:
                if timed_out is not None:
                    raise SkusNotAsked(f"Resource SKUs of {region}: not asked, as those of {timed_out} timed out")
                found = self._call(lambda r=region, s=subscription, w=sizes: self._resource_skus(s, r, w))
            except Exception as exc:  # never fails the source: the bundled table is the fallback
                if timed_out is None and _timeout_of(exc) is not None:
                    timed_out = region
                reason = describe_failure(exc, self.connection, f"Resource SKUs of {region}")
                earlier = details.get("vm_sizes_error")
                details["vm_sizes_error"] = f"{earlier}; {reason}" if earlier else reason
                continue
            if found:
                known = details.setdefault("vm_sizes", {})
                known.update(found)
                details["vm_sizes"] = dict(sorted(known.items()))

    def _resource_skus(self, subscription: str, region: str, wanted: set[str]) -> dict[str, dict[str, int]]:
        """`{size: {"vcpus": n, "vcpus_available": m}}` for the wanted sizes of one region's
        virtualMachines SKUs (every page of the answer is read)."""
        found: dict[str, dict[str, int]] = {}
        client = self._client("compute", subscription)
        for sku in client.resource_skus.list(filter=f"location eq '{region}'"):
            name = size_key(getattr(sku, "name", None))
            if str(getattr(sku, "resource_type", "")).lower() != "virtualmachines" or name not in wanted:
                continue
            capabilities = {getattr(c, "name", None): getattr(c, "value", None) for c in sku.capabilities or []}
            total = vcpu_count(capabilities.get("vCPUs"))
            if total is None or name in found:
                continue
            entry = {"vcpus": total}
            active = vcpu_count(capabilities.get("vCPUsAvailable"))
            if active is not None and active <= total:
                entry["vcpus_available"] = active
            found[name] = entry
        return found

    def _unreadable(self, subscription: str) -> Source | None:
        """A failed source saying why a requested subscription that is not listed cannot be
        read, asked of the subscription itself; None when it can be read after all."""
        from azure.core.exceptions import HttpResponseError

        try:
            self._call(lambda: next(iter(self._client("resources", subscription).resource_groups.list().by_page()),
                                    None))
        except HttpResponseError as exc:
            return Source(id=subscription, cloud="azure", kind="subscription", status="failed",
                          error=f"subscription {subscription}: {_arm_error(exc)}")
        return None

    def _graph_rows(self, subscriptions: list[str], progress: Progress) -> list[dict[str, Any]]:
        from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions

        rows: list[dict[str, Any]] = []
        if self.scope.management_group:
            batches: list[dict[str, Any]] = [{"management_groups": [self.scope.management_group]}]
        else:
            batches = [{"subscriptions": subscriptions[i:i + SUBSCRIPTION_BATCH]}
                       for i in range(0, len(subscriptions), SUBSCRIPTION_BATCH)]
        query = inventory_query()
        for batch in batches:
            skip_token = None
            batch_rows = 0
            while True:
                # a management group with more subscriptions than one query may cover answers for
                # those it can, rather than failing the whole query
                request = QueryRequest(query=query, **batch, options=QueryRequestOptions(
                    top=self.page_size, skip_token=skip_token, result_format="objectArray",
                    allow_partial_scopes=bool(self.scope.management_group)))
                response, headers = self._call(lambda request=request: self._client("graph").resources(
                    request, cls=lambda pipeline, body, _: (body, pipeline.http_response.headers)))
                page = response.data
                skip_token = response.skip_token
                total = response.total_records
                # every page must add up: rows that never arrive would read as resources
                # removed, and their findings as fixed
                if not isinstance(page, list) or not all(isinstance(row, dict) for row in page):
                    raise IncompleteInventory(f"{self.scope.label}: Resource Graph answered a page whose data is "
                                              "not a list of rows")
                if not page and (skip_token or not isinstance(total, int) or total > batch_rows):
                    counted = f"{total:,}" if isinstance(total, int) else "an unknown number of"
                    raise IncompleteInventory(f"{self.scope.label}: Resource Graph answered an empty page after "
                                              f"{batch_rows:,} of {counted} rows")
                rows.extend(page)
                batch_rows += len(page)
                progress.update(self.id, len(rows))
                self._respect_quota(headers)
                if not skip_token:
                    if str(response.result_truncated).lower() == "true":
                        # rows are missing and no token fetches them: a partial inventory
                        # must not pass for the whole estate
                        raise IncompleteInventory(
                            f"{self.scope.label}: Resource Graph truncated the result at {batch_rows:,} of "
                            f"{total or 'more'} rows without a page token")
                    if isinstance(total, int) and total != batch_rows:
                        raise IncompleteInventory(
                            f"{self.scope.label}: Resource Graph's pages add up to {batch_rows:,} rows where it "
                            f"counted {total:,} (totalRecords)")
                    break
        return rows

    def _respect_quota(self, headers: Any) -> None:
        """Wait out Resource Graph's per-user quota when the last answer used it up."""
        if str(headers.get("x-ms-user-quota-remaining", "")).strip() != "0":
            return
        wait = min(_duration(headers.get("x-ms-user-quota-resets-after")) or 5.0, QUOTA_WAIT_LIMIT)
        self.quota_waits.append(wait)
        self.sleep(wait)

    def _definitions(self, resources: list[dict[str, Any]], readable: set[str]) -> list[dict[str, Any]]:
        """The custom policy definitions and initiatives that assignments name."""
        from azure.core.exceptions import HttpResponseError

        wanted: dict[str, str] = {}  # lower-case definition id -> subscription that assigns it
        for resource in resources:
            if resource["type"] == "microsoft.authorization/policyassignments":
                definition = (resource.get("properties") or {}).get("policyDefinitionId")
                if isinstance(definition, str) and _custom_definition(definition):
                    wanted.setdefault(definition.lower(), resource["source"])
        found = []
        for definition_id, subscription in sorted(wanted.items()):
            scope_sub = _subscription_of({"id": definition_id})
            client_sub = scope_sub if scope_sub in readable else subscription
            try:
                item = self._call(lambda d=definition_id, c=client_sub: self._read_definition(d, c))
            except HttpResponseError:
                continue  # an assignment may outlive its definition; the assignment stays in the snapshot
            arm = item.as_dict()
            found.append(make_resource(id=arm.get("id") or definition_id,
                                       name=arm.get("name") or definition_id.rsplit("/", 1)[-1],
                                       cloud="azure", type=arm.get("type") or "", source=subscription,
                                       native=arm))
        return found


    def _rule_collection_groups(self, resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rule collection groups of the firewall policies (their DNAT rules decide what
        reaches VMs through Azure Firewall), read by id: Resource Graph does not index them.
        One that cannot be read is left out; the exposure stage then says that firewall's
        DNAT rules were not evaluated."""
        from azure.core.exceptions import HttpResponseError

        found = []
        for policy in resources:
            if policy["type"] != "microsoft.network/firewallpolicies":
                continue
            for reference in (policy.get("properties") or {}).get("ruleCollectionGroups") or []:
                group_id = reference.get("id") if isinstance(reference, dict) else None
                if not isinstance(group_id, str):
                    continue
                try:
                    item = self._call(lambda g=group_id, s=policy["source"]: self._client("resources", s)
                                      .resources.get_by_id(g, api_version=RULE_COLLECTION_GROUP_API))
                except HttpResponseError:
                    continue
                arm = item.as_dict()
                found.append(make_resource(id=arm.get("id") or group_id,
                                           name=arm.get("name") or group_id.rsplit("/", 1)[-1], cloud="azure",
                                           type=arm.get("type") or "microsoft.network/firewallpolicies/"
                                                                   "rulecollectiongroups",
                                           source=policy["source"], native=arm))
        return found

    def _read_definition(self, definition_id: str, subscription: str) -> Any:
        """GET one custom policy definition or initiative, at its subscription or management group."""
        client = self._client("policy", subscription)
        name = definition_id.rsplit("/", 1)[-1]
        operations = client.policy_set_definitions if "/policysetdefinitions/" in definition_id \
            else client.policy_definitions
        group = re.search(r"/managementgroups/([^/]+)/", definition_id)
        return operations.get_at_management_group(group.group(1), name) if group else operations.get(name)


VM_TYPES = ("microsoft.compute/virtualmachines", "microsoft.compute/virtualmachinescalesets")
_REGION = re.compile(r"[a-z0-9]{1,64}")


def sizes_in_use(resources: Iterable[dict[str, Any]]) -> dict[str, tuple[set[str], set[str]]]:
    """Region -> (subscriptions with VMs or scale sets there, lower-case sizes they use): a VM's
    properties.hardwareProfile.vmSize, a scale set's sku.name. A location that is not a region
    name is skipped (it goes into an OData filter)."""
    regions: dict[str, tuple[set[str], set[str]]] = {}
    for resource in resources:
        if resource.get("type") not in VM_TYPES:
            continue
        location = resource.get("location")
        region = location.replace(" ", "").lower() if isinstance(location, str) else ""
        if not _REGION.fullmatch(region):
            continue
        if resource["type"] == "microsoft.compute/virtualmachines":
            properties = resource.get("properties")
            hardware = properties.get("hardwareProfile") if isinstance(properties, dict) else None
            size = hardware.get("vmSize") if isinstance(hardware, dict) else None
        else:
            sku = resource.get("sku")
            size = sku.get("name") if isinstance(sku, dict) else None
        name = size_key(size)
        if name is None:
            continue
        subscriptions, sizes = regions.setdefault(region, (set(), set()))
        subscriptions.add(resource["source"])
        sizes.add(name)
    return regions


def _subscription_of(row: dict[str, Any]) -> str:
    sid = row.get("subscriptionId")
    if isinstance(sid, str) and sid:
        return sid
    match = re.match(r"/subscriptions/([^/]+)", str(row.get("id", "")), re.I)
    return match.group(1) if match else "tenant"


def _tags(row: dict[str, Any]) -> dict[str, Any]:
    tags = row.get("tags")
    return tags if isinstance(tags, dict) else {}


def _unique_ids(label: str, resources: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The resources, each id once. An id twice means pages overlapped while the estate
    changed, so another row may be missing though the count adds up: fail the scope."""
    seen: set[str] = set()
    unique = []
    for resource in resources:
        key = resource["id"].lower()
        if key in seen:
            raise IncompleteInventory(f"{label}: Resource Graph returned {resource['id']} twice (ids compare "
                                      "case-insensitively): its pages overlapped; collect again")
        seen.add(key)
        unique.append(resource)
    return unique


def _custom_definition(definition_id: str) -> bool:
    # built-ins live at /providers/Microsoft.Authorization/...; custom ones under a scope
    return definition_id.lower().startswith(("/subscriptions/", "/providers/microsoft.management/"))


def _duration(text: Any) -> float | None:
    """Seconds in Resource Graph's `hh:mm:ss` reset time."""
    match = re.fullmatch(r"(\d+):(\d{2}):(\d{2}(?:\.\d+)?)", str(text or "").strip())
    if not match:
        return None
    return int(match.group(1)) * 3600 + int(match.group(2)) * 60 + float(match.group(3))


def _arm_error(exc: Any) -> str:
    """`HTTP 403 AuthorizationFailed: <first sentence>` from an SDK error."""
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    message = getattr(error, "message", None) or str(getattr(exc, "message", None) or exc)
    first = message.strip().splitlines()[0] if message.strip() else ""
    status = getattr(exc, "status_code", None)
    return " ".join(part for part in (f"HTTP {status}" if status else "", f"{code}:" if code else "", first) if part)


def describe_failure(exc: BaseException, connection: AzureConnection, label: str) -> str:
    """One line saying what failed and what to do, for any error of the SDK or the credential."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceRequestTimeoutError,
        TooManyRedirectsError,
    )

    endpoints = connection.endpoints
    text = " ".join(str(exc).split())
    if isinstance(exc, (NoSubscriptions, IncompleteInventory, SkusNotAsked)):
        return text
    if (timeout := _timeout_of(exc)) is not None:
        # azure-identity wraps the transport's timeout of a token request in its own error
        seconds = connection.connect_timeout if isinstance(timeout, ServiceRequestTimeoutError) else connection.timeout
        token = isinstance(exc, ClientAuthenticationError) or type(exc).__name__ == "CredentialUnavailableError"
        peer = (f"no Azure token from {endpoints.authority}:" if token
                else f"Resource Manager at {endpoints.arm_endpoint}")
        return f"{label}: {peer} timed out after {seconds:g} s"
    if (refusal := _TUNNEL_REFUSED.search(text)) is not None:  # the proxy's answer, not Azure's
        return (f"{label}: the proxy refused the tunnel to {endpoints.arm_endpoint} or {endpoints.authority} "
                f"({_shorten(refusal.group(1), 120)}): check HTTPS_PROXY and what the proxy wants")
    if "CERTIFICATE_VERIFY_FAILED" in text:  # from the token request or from Resource Manager
        peer = endpoints.authority if isinstance(exc, ClientAuthenticationError) else endpoints.arm_endpoint
        return f"{label}: TLS certificate of {peer} not trusted (pass --ca-bundle with its CA)"
    if isinstance(exc, ClientAuthenticationError) and exc.status_code == 401:
        return (f"{label}: Resource Manager at {endpoints.arm_endpoint} rejected the access token "
                f"({_arm_error(exc)}); a new token was refused too: check the credential and the tenant")
    if isinstance(exc, ClientAuthenticationError) or type(exc).__name__ == "CredentialUnavailableError":
        return (f"{label}: no Azure token from {endpoints.authority}: {_shorten(text)} (set AZURE_TENANT_ID, "
                "AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, or sign in with `az login`)")
    if isinstance(exc, UnicodeDecodeError):  # requests reading a redirect's Location
        return (f"{label}: Resource Manager at {endpoints.arm_endpoint} answered with a header that is not UTF-8 "
                "(a redirect's Location): no Resource Manager sends one; check what is in between")
    if isinstance(exc, TooManyRedirectsError):
        return (f"{label}: Resource Manager at {endpoints.arm_endpoint} redirected the request more than "
                f"{REDIRECTS} times{_redirected_to(exc)}: it answers where it is asked, so something in between "
                "(a proxy, a captive portal) or a wrong --arm-endpoint is sending it elsewhere")
    if isinstance(exc, HttpResponseError):
        waited = _retry_after(exc) if _retried(getattr(exc, "status_code", None)) else None
        wait = (f" (it asks for a wait of {waited:.10g} s; auditor waits {QUOTA_WAIT_LIMIT:g} s at most: collect "
                "again later)") if waited is not None and waited > QUOTA_WAIT_LIMIT else ""
        return f"{label}: Resource Manager at {endpoints.arm_endpoint} answered {_arm_error(exc)}{wait}"
    if isinstance(exc, ServiceRequestError):
        return f"{label}: cannot reach {endpoints.arm_endpoint}: {_shorten(text)}"
    return f"{label}: collection failed: {type(exc).__name__}: {_shorten(text)}"


def _retry_after(exc: Any) -> float | None:
    """The wait in seconds an error's answer asks for (Retry-After and Microsoft's
    millisecond forms), as azure-core's retry policy reads it; None for none."""
    response = getattr(exc, "response", None)
    if response is None:
        return None
    try:  # the policy reads a pipeline's response; an error keeps the HTTP response alone
        return timeout_final_retry_policy()().get_retry_after(types.SimpleNamespace(http_response=response))
    except AttributeError:  # no headers: no wait
        return None


# how urllib3 says a proxy answered CONNECT with other than 200
_TUNNEL_REFUSED = re.compile(r"Tunnel connection failed: ([^'\")]*)")


def _retried(status: Any) -> bool:
    """Whether azure-core's retry policy tries an answer of `status` again (after the wait
    it asks for): 408, 429 and server errors but 501 and 505; a 403 that asks for a wait
    is not told to come back later."""
    return isinstance(status, int) and (status in (408, 429) or (500 <= status < 1000 and status not in (501, 505)))


def _redirected_to(exc: Any) -> str:
    """` (last to URL)` from a TooManyRedirectsError's history, shortened and made printable."""
    history = getattr(exc, "history", None) or []
    response = getattr(history[-1], "http_response", None) if history else None
    location = response.headers.get("Location") if response is not None else None
    if not isinstance(location, str) or not location:
        return ""
    return f" (last to {_shorten(location, 200)!r})"  # repr: what is no printable character shows escaped


def _timeout_of(exc: BaseException) -> BaseException | None:
    """The timeout (the transport's, or the socket's) behind an error, if one is."""
    from azure.core.exceptions import ServiceRequestTimeoutError, ServiceResponseTimeoutError

    # azure-core keeps what it wraps in inner_exception, requests in args[0] (a timeout while
    # the body is read: ServiceRequestError, requests' ConnectionError, urllib3's
    # ReadTimeoutError, the socket's TimeoutError)
    seen: set[int] = set()
    waiting: list[BaseException] = [exc]
    while waiting:
        current = waiting.pop()
        if id(current) in seen:
            continue
        if isinstance(current, (ServiceRequestTimeoutError, ServiceResponseTimeoutError, TimeoutError)):
            return current
        seen.add(id(current))
        waiting += [inner for inner in (current.__cause__, current.__context__,
                                        getattr(current, "inner_exception", None), *current.args[:1])
                    if isinstance(inner, BaseException)]
    return None


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."
