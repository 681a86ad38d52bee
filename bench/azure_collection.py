"""Azure collection benchmark against the local ARM replay server with 10,000 resources.

Compares, in the same run and against the same server:
- auditor's collector (subscription list, one Resource Graph query paged at 1,000 rows);
- the per-resource approach of tools built on the generic resources API:
  `ResourceManagementClient.resources.list()` for ids, then `resources.get_by_id()` for each
  resource's properties (what rules need).
Prints requests to Resource Manager per 10,000 resources collected (token requests are
counted apart: they go to Entra ID, once per run), wall time, and the ratios.
Target: at most 12 Resource Manager requests per 10,000 resources.

Usage: python bench/azure_collection.py [--resources N] [--check]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

# the repository root instead of bench/: bench/html.py would shadow the stdlib module
sys.path.remove(str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auditor.sources import Progress
from auditor.sources.azure import AzureConnection, AzureScope, AzureSource
from tests.arm_replay import CLIENT_ID, CLIENT_SECRET, TENANT, ArmReplay, Estate, generated_rows, graph_row

SUBSCRIPTION = "4a1e0c3b-9d8f-4e2a-b7c6-5d4e3f2a1b0c"
TARGET = 12


def estate(total: int) -> Estate:
    """`total` resources in one subscription: the subscription, its resource groups, the rest
    shaped like the published NSG, VNet and VM examples."""
    result = Estate()
    result.add_subscription(SUBSCRIPTION, "bench")
    groups = (total + 499) // 500
    containers = [graph_row({"id": f"/subscriptions/{SUBSCRIPTION}", "name": "bench",
                             "type": "microsoft.resources/subscriptions"})]
    containers += [graph_row({"id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-{n:03d}", "name": f"rg-{n:03d}",
                              "type": "microsoft.resources/subscriptions/resourcegroups", "location": "westeurope"})
                   for n in range(groups)]
    result.rows = containers + generated_rows(total - len(containers), SUBSCRIPTION)
    return result


def run_auditor(replay: ArmReplay) -> tuple[int, float]:
    connection = AzureConnection(arm_endpoint=replay.url, authority=replay.url, ca_bundle=str(replay.cert))
    started = time.perf_counter()
    collected = AzureSource(connection, AzureScope(subscriptions=[SUBSCRIPTION])).collect(Progress(enabled=False))
    elapsed = time.perf_counter() - started
    if collected.sources[0].status != "ok":
        raise SystemExit(collected.sources[0].error)
    return len(collected.resources), elapsed


def run_reference(replay: ArmReplay) -> tuple[int, float]:
    from azure.identity import ClientSecretCredential
    from azure.mgmt.resource.resources import ResourceManagementClient

    options = {"connection_verify": str(replay.cert)}
    credential = ClientSecretCredential(TENANT, CLIENT_ID, CLIENT_SECRET, authority=replay.url,
                                        disable_instance_discovery=True, **options)
    client = ResourceManagementClient(credential, SUBSCRIPTION, base_url=replay.url,
                                      credential_scopes=[f"{replay.url}/.default"], **options)
    started = time.perf_counter()
    resources = [client.resources.get_by_id(item.id, api_version="2024-07-01").as_dict()
                 for item in client.resources.list()]
    elapsed = time.perf_counter() - started
    client.close()
    credential.close()
    return len(resources), elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=10_000)
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args()
    os.environ.update(AZURE_TENANT_ID=TENANT, AZURE_CLIENT_ID=CLIENT_ID, AZURE_CLIENT_SECRET=CLIENT_SECRET)
    with tempfile.TemporaryDirectory() as workdir:
        replay = ArmReplay(Path(workdir), estate(args.resources)).start()
        try:
            count, auditor_time = run_auditor(replay)
            auditor_arm, auditor_tokens = replay.arm_requests(), replay.requests["token"] + replay.requests["openid"]
            replay.requests.clear()
            generic_count, reference_time = run_reference(replay)
            reference_arm = replay.arm_requests()
        finally:
            replay.stop()
    per_10k = auditor_arm * 10_000 / count
    print(f"estate: {args.resources:,} resources in one subscription, served over HTTPS on loopback")
    print(f"auditor:   {count:,} resources (resource groups and subscription included) in {auditor_time:.2f} s; "
          f"{auditor_arm} Resource Manager requests ({per_10k:.1f} per 10,000) + {auditor_tokens} to Entra ID")
    print(f"reference: {generic_count:,} resources (list + get by id) in {reference_time:.2f} s; "
          f"{reference_arm:,} Resource Manager requests")
    print(f"ratio reference/auditor: {reference_arm / auditor_arm:.0f}x fewer requests, "
          f"{reference_time / auditor_time:.1f}x faster")
    print(f"requests per 10,000 resources: {per_10k:.1f} (target <= {TARGET})")
    if args.check and per_10k > TARGET:
        print("missed target: requests per 10,000 resources")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
