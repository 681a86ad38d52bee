"""The Azure source against a local HTTPS replay of Entra ID and Resource Manager.

The real SDK clients (azure-identity, SubscriptionClient, ResourceGraphClient,
ResourceManagementClient, PolicyClient) talk to tests/arm_replay.py through the switches a
user has; nothing in the source is patched.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time

import pytest

from auditor.cli import main
from auditor.errors import EXIT_INCOMPLETE, EXIT_INPUT_ERROR, EXIT_OK
from auditor.snapshot import load_snapshot
from auditor.sources import Progress
from auditor.sources.azure import (
    CLOUDS,
    RESOURCE_TYPES,
    AzureConnection,
    AzureScope,
    AzureSource,
    inventory_query,
)
from auditor.vm_sizes import vcpus, vm_sizes
from tests.arm_replay import (
    CLIENT_ID,
    CLIENT_SECRET,
    TENANT,
    ArmReplay,
    Fault,
    generated_rows,
    graph_row,
    standard_estate,
)
from tests.conftest import ROOT

PCI = "9f2c4e1a-7b3d-4c5e-8f60-a1b2c3d4e5f6"
EXAMPLES = ["subid", "{subscriptionId}", "ae640e6b-ba3e-4256-9d62-2993eecfa6f2"]


@pytest.fixture(name="replay")
def replay_fixture(tmp_path, monkeypatch):
    server = ArmReplay(tmp_path, standard_estate()).start()
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", CLIENT_SECRET)
    yield server
    server.stop()


def endpoint_args(replay: ArmReplay) -> list[str]:
    return ["--arm-endpoint", replay.url, "--authority", replay.url, "--ca-bundle", str(replay.cert)]


def collect(replay: ArmReplay, *subscriptions: str, page_size: int = 1000, **scope) -> tuple:
    connection = AzureConnection(arm_endpoint=replay.url, authority=replay.url, ca_bundle=str(replay.cert))
    waits: list[float] = []
    source = AzureSource(connection, AzureScope(subscriptions=list(subscriptions), **scope),
                         page_size=page_size, sleep=waits.append)
    return source.collect(Progress(enabled=False)), waits


def by_id(resources: list[dict]) -> dict[str, dict]:
    return {r["id"]: r for r in resources}


def test_cli_collects_the_published_examples_with_a_service_principal(replay, tmp_path, capsys):
    out = tmp_path / "azure.json.gz"
    code = main(["collect", "azure", *endpoint_args(replay), "--out", str(out),
                 *[arg for s in [*EXAMPLES, PCI] for arg in ("--subscription", s)]])
    assert code == EXIT_OK, capsys.readouterr().err
    snapshot = load_snapshot(out)
    resources = by_id(snapshot.resources)
    # Microsoft's examples arrive whole, placeholders and all
    nsg = resources["/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/networkSecurityGroups/nsg1"]
    assert nsg["type"] == "microsoft.network/networksecuritygroups" and nsg["source"] == "subid"
    assert {r["name"] for r in nsg["properties"]["defaultSecurityRules"]} >= {"AllowVnetInBound", "DenyAllInBound"}
    vm = next(r for r in snapshot.resources if r["type"] == "microsoft.compute/virtualmachines"
              and r["source"] == "{subscriptionId}")
    assert vm["properties"]["storageProfile"]["imageReference"]["sku"] == "2012-R2-Datacenter"
    assignment = resources["/subscriptions/ae640e6b-ba3e-4256-9d62-2993eecfa6f2/providers/Microsoft.Authorization/"
                           "policyAssignments/CostManagement"]
    assert assignment["properties"]["parameters"] == {"allowedSkus": {"value": "Standard_A1"}}
    # the custom definitions the assignments name, read with PolicyClient
    definition = resources["/subscriptions/ae640e6b-ba3e-4256-9d62-2993eecfa6f2/providers/Microsoft.Authorization/"
                           "policyDefinitions/storageSkus"]
    assert definition["properties"]["policyRule"]["then"]["effect"] == "deny"
    assert replay.requests["definition"] == 2
    # resource groups, subscriptions and policy states come from the same paged query
    types = {r["type"] for r in snapshot.resources}
    assert {"microsoft.resources/subscriptions/resourcegroups", "microsoft.resources/subscriptions",
            "microsoft.policyinsights/policystates", "microsoft.network/networkwatchers/flowlogs"} <= types
    assert replay.requests["resources"] == 1 and replay.requests["subscriptions"] == 1
    sources = {s.id: s for s in snapshot.sources}
    assert set(sources) == {*EXAMPLES, PCI} and all(s.status == "ok" for s in sources.values())
    assert sources[PCI].details == {"tenant_id": TENANT, "display_name": "pci-payments", "state": "Enabled"}
    assert sources[PCI].resource_count == sum(1 for r in snapshot.resources if r["source"] == PCI)
    # nothing secret is written: neither the client secret nor a token
    raw = gzip.decompress(out.read_bytes())
    assert CLIENT_SECRET.encode() not in raw and b"replay-token" not in raw
    assert "wrote" in capsys.readouterr().out


def test_resource_graph_request_covers_every_type_and_subscription(replay):
    collect(replay, *EXAMPLES)
    [body] = replay.graph_bodies()
    assert sorted(body["subscriptions"]) == sorted(EXAMPLES)
    assert body["options"] == {"$top": 1000, "resultFormat": "objectArray", "allowPartialScopes": False}
    assert body["query"] == inventory_query()
    for resource_type in RESOURCE_TYPES:
        assert f"'{resource_type}'" in body["query"]


def test_fields_the_sdk_does_not_know_are_kept(replay):
    collected, _ = collect(replay, PCI)
    vm = next(r for r in collected.resources if r["name"] == "vm-pci-web-01")
    assert vm["newTopLevelField"] == {"introducedIn": "2031-01-01"}
    assert vm["properties"]["futureSecurityProfile"] == {"quantumSafeBoot": True}
    assert vm["properties"]["extended"]["instanceView"]["osName"] == "Windows Server 2012 R2 Datacenter"
    assert vm["tags"] == {"zone": "pci"} and vm["subscriptionId"] == PCI


def test_pages_by_skip_token_until_the_last_page(replay):
    replay.estate.rows += generated_rows(2345, PCI)
    expected = sum(1 for r in replay.estate.rows if r["subscriptionId"] == PCI)
    collected, _ = collect(replay, PCI)
    bodies = replay.graph_bodies()
    assert len(bodies) == 3
    assert "$skipToken" not in bodies[0]["options"]
    assert bodies[1]["options"]["$skipToken"] and bodies[2]["options"]["$skipToken"] != bodies[1]["options"]["$skipToken"]
    graph_ids = [r["id"] for r in collected.resources if r["type"] != "microsoft.authorization/policydefinitions"]
    assert len(graph_ids) == len(set(graph_ids)) == expected


def test_a_429_is_retried_after_the_time_it_names(replay):
    replay.fail("resources", Fault(429, {"Retry-After": "1"},
                                   {"error": {"code": "RateLimiting", "message": "Please provide below info when asking "
                                                                                 "for support: timestamp = ..."}}))
    started = time.monotonic()
    collected, _ = collect(replay, PCI)
    assert time.monotonic() - started >= 1.0
    assert replay.requests["resources"] == 2
    assert [s.status for s in collected.sources] == ["ok"]
    assert any(r["name"] == "vm-pci-web-01" for r in collected.resources)


def test_a_429_that_asks_for_more_than_the_wait_limit_is_reported_not_slept_on(replay):
    """azure-core sleeps whatever Retry-After says (an hour here, each try): past
    QUOTA_WAIT_LIMIT the answer is reported at once. The near miss is the test above."""
    replay.fail("subscriptions", Fault(429, {"Retry-After": "3600"},
                                       {"error": {"code": "RateLimiting", "message": "come back in an hour"}}))
    started = time.monotonic()
    collected, _ = collect(replay, PCI)
    assert time.monotonic() - started < 30
    assert replay.requests["subscriptions"] == 1
    assert collected.sources[0].status == "failed"
    assert collected.sources[0].error.endswith(
        "answered HTTP 429 RateLimiting: come back in an hour (it asks for a wait of 3600 s; auditor waits 60 s at "
        "most: collect again later)"), collected.sources[0].error


@pytest.mark.parametrize("retry_after", ["Sat, 32 Dec 2099 00:00:00 GMT", "Fri, 31 Dec 99999 00:00:00 GMT", "soon"])
def test_a_retry_after_that_is_no_wait_is_taken_as_none(replay, retry_after):
    """azure-core raised ValueError reading it, and the answer's status was lost in a
    "collection failed: ValueError" line; it is retried as one without the header."""
    replay.fail("resources", Fault(429, {"Retry-After": retry_after},
                                   {"error": {"code": "RateLimiting", "message": "slow down"}}))
    collected, _ = collect(replay, PCI)
    assert replay.requests["resources"] == 2 and [s.status for s in collected.sources] == ["ok"]


def test_a_wait_asked_for_by_an_answer_not_tried_again_is_not_advice_to_wait(replay):
    """A 403 is not retried whatever wait it asks for: no "collect again later"."""
    replay.fail("subscriptions", Fault(403, {"Retry-After": "3600"},
                                       {"error": {"code": "AuthorizationFailed", "message": "no access"}}))
    collected, _ = collect(replay, PCI)
    assert collected.sources[0].error.endswith("answered HTTP 403 AuthorizationFailed: no access"), \
        collected.sources[0].error


def test_a_redirect_whose_location_is_not_utf8_is_named(replay):
    """requests raises UnicodeDecodeError reading it: not "collection failed: UnicodeDecodeError"."""
    replay.fail("subscriptions", Fault(307, {"Location": f"{replay.url}/subscriptions?x=\x9b"}))
    collected, _ = collect(replay, PCI)
    assert collected.sources[0].status == "failed"
    assert collected.sources[0].error.endswith("answered with a header that is not UTF-8 (a redirect's Location): "
                                               "no Resource Manager sends one; check what is in between"), \
        collected.sources[0].error


def test_a_chain_of_redirects_is_followed_three_times_at_most(replay):
    """Each redirect is a request of its own, with its own timeout: azure-core's 30 would be
    30 timeouts."""
    replay.fail("subscriptions", *[Fault(307, {"Location": f"{replay.url}/subscriptions?api-version=2022-12-01"})] * 10)
    collected, _ = collect(replay, PCI)
    assert replay.requests["subscriptions"] == 4  # the request and three redirects
    assert collected.sources[0].status == "failed"
    assert (f"Resource Manager at {replay.url} redirected the request more than 3 times (last to "
            f"'{replay.url}/subscriptions?api-version=2022-12-01'): it answers where it is asked"
            ) in collected.sources[0].error, collected.sources[0].error


def test_a_500_then_success_is_retried(replay):
    replay.fail("resources", Fault(500, {}, {"error": {"code": "InternalServerError", "message": "try again"}}))
    collected, _ = collect(replay, PCI)
    assert replay.requests["resources"] == 2 and collected.sources[0].status == "ok"


def test_retries_are_bounded_and_the_snapshot_already_there_is_kept(replay, tmp_path, capsys):
    out = tmp_path / "azure.json"
    out.write_text("earlier snapshot")
    unavailable = Fault(503, {"Retry-After": "0"}, {"error": {"code": "ServiceUnavailable", "message": "down"}})
    replay.fail("resources", *[unavailable] * 20)
    code = main(["collect", "azure", *endpoint_args(replay), "--subscription", PCI, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == EXIT_INCOMPLETE
    assert replay.requests["resources"] == 5  # the first try and four retries
    assert "HTTP 503 ServiceUnavailable" in err and "Traceback" not in err
    assert out.read_text() == "earlier snapshot"


def test_an_expired_token_is_replaced_once(replay):
    replay.revoked.add("replay-token-1")  # the first token Entra ID hands out is refused by ARM
    collected, _ = collect(replay, PCI)
    assert collected.sources[0].status == "ok"
    assert replay.issued == ["replay-token-1", "replay-token-2"]


def test_a_token_refused_again_fails_the_scope_with_one_line(replay, tmp_path, capsys):
    replay.revoked.update(f"replay-token-{n}" for n in range(1, 10))
    code = main(["collect", "azure", *endpoint_args(replay), "--subscription", PCI,
                 "--out", str(tmp_path / "a.json")])
    err = capsys.readouterr().err
    assert code == EXIT_INCOMPLETE and not (tmp_path / "a.json").exists()
    [line] = [line for line in err.splitlines() if line.startswith("auditor: error")]
    assert "rejected the access token" in line and "ExpiredAuthenticationToken" in line and PCI in line


def test_a_wrong_client_secret_is_one_line_without_the_secret(replay, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "not-the-secret")
    code = main(["collect", "azure", *endpoint_args(replay), "--out", str(tmp_path / "a.json")])
    err = capsys.readouterr().err
    assert code == EXIT_INCOMPLETE
    assert "AADSTS7000215" in err and replay.url in err and "not-the-secret" not in err
    assert "Traceback" not in err


def test_a_forbidden_subscription_fails_alone_and_the_scan_exits_3(replay, tmp_path, capsys):
    replay.estate.add_subscription("0dd5e6f7-0000-4000-8000-00000000f403", "locked", readable=False)
    out = tmp_path / "reports"
    code = main(["scan", "--azure", "--azure-arm-endpoint", replay.url, "--azure-authority", replay.url,
                 "--azure-ca-bundle", str(replay.cert), "--azure-subscription", PCI,
                 "--azure-subscription", "0dd5e6f7-0000-4000-8000-00000000f403", "--out", str(out), "--quiet",
                 "--as-of", "2026-11-25"])
    err = capsys.readouterr().err
    assert code == EXIT_INCOMPLETE
    assert "HTTP 403 AuthorizationFailed" in err and "collection incomplete" in err
    report = json.loads((out / "latest" / "findings.json").read_text())
    statuses = {s["id"]: s["status"] for s in report["snapshot"]["sources"]}
    assert statuses == {PCI: "ok", "0dd5e6f7-0000-4000-8000-00000000f403": "failed"}
    # the readable subscription was still scanned: its Windows Server 2012 R2 VM is past end of support
    assert any(f["resource_name"] == "vm-pci-web-01" and f["category"] == "support-status"
               for f in report["findings"])
    # Azure Policy's own verdict, collected from PolicyResources, is reported beside the rules
    assert any(f["rule_id"] == "DR-AZ-001" and "vm-pci-web-01" in f["message"] for f in report["findings"])
    sarif = json.loads((out / "latest" / "results.sarif").read_text())
    assert {run["automationDetails"]["id"].split("/")[0] for run in sarif["runs"]} == {"azure", "auditor"}
    # the forbidden subscription has no run of its own (it would close its alerts) but is named
    [status] = [run for run in sarif["runs"] if run["automationDetails"]["id"] == "auditor/collection/"]
    assert "0dd5e6f7-0000-4000-8000-00000000f403" in status["invocations"][0]["toolExecutionNotifications"][0][
        "message"]["text"]
    assert any(TENANT in run["automationDetails"]["id"] for run in sarif["runs"])


def test_scan_reads_the_published_examples(replay, tmp_path):
    out = tmp_path / "reports"
    code = main(["scan", "--azure", "--azure-arm-endpoint", replay.url, "--azure-authority", replay.url,
                 "--azure-ca-bundle", str(replay.cert), "--azure-subscription", "subid", "--out", str(out),
                 "--quiet", "--as-of", "2026-11-25", "--save-snapshot", str(tmp_path / "live.json")])
    assert code == EXIT_OK
    findings = json.loads((out / "latest" / "findings.json").read_text())["findings"]
    found = {(f["rule_id"], f["resource_name"], f["item_key"]) for f in findings}
    # vnet1's subnet test-1 has no NSG in Microsoft's example, and the published rule-list
    # example (testnsg) allows port 80 from '*' while guarding nothing reachable
    assert ("AZ-NET-004", "vnet1", "test-1") in found
    assert ("AZ-NET-015", "testnsg", "tcp::testnsg/rule1") in found
    assert not any(rule == "AZ-NET-008" and name == "testnsg" for rule, name, _ in found)
    assert load_snapshot(tmp_path / "live.json").sources[0].id == "subid"


def test_management_group_scope(replay):
    collected, _ = collect(replay, management_group="mg-payments")
    [body] = replay.graph_bodies()
    assert body["managementGroups"] == ["mg-payments"] and "subscriptions" not in body
    assert [(s.id, s.details["display_name"]) for s in collected.sources] == [(PCI, "pci-payments")]
    assert {r["source"] for r in collected.resources} == {PCI}


def test_every_visible_subscription_without_a_scope(replay):
    collected, _ = collect(replay)
    assert sorted(s.id for s in collected.sources) == sorted([*EXAMPLES, PCI])


def test_waits_when_the_resource_graph_quota_is_used_up(replay):
    replay.estate.rows += generated_rows(2100, PCI)
    replay.quota_remaining = 1  # the first answer leaves 0
    collected, waits = collect(replay, PCI)
    assert waits == [1.0, 1.0]  # after the 1st and 2nd pages: x-ms-user-quota-resets-after 00:00:01
    assert replay.requests["resources"] == 3 and collected.sources[0].status == "ok"


def test_untrusted_certificate_and_unreachable_endpoint_are_one_line(replay, tmp_path, capsys):
    code = main(["collect", "azure", "--arm-endpoint", replay.url, "--authority", replay.url,
                 "--subscription", PCI, "--out", str(tmp_path / "a.json")])
    err = capsys.readouterr().err
    assert code == EXIT_INCOMPLETE and "Traceback" not in err
    assert "certificate" in err.lower() and "--ca-bundle" in err
    closed = "https://127.0.0.1:9"
    code = main(["collect", "azure", "--arm-endpoint", closed, "--authority", closed,
                 "--subscription", PCI, "--out", str(tmp_path / "a.json"), "--timeout", "5"])
    err = capsys.readouterr().err
    assert code == EXIT_INCOMPLETE and "127.0.0.1:9" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("auditor: error")]) == 1


@pytest.mark.parametrize("args, message", [
    (["--arm-endpoint", "https://arm.local"], "--arm-endpoint and --azure-authority go together"),
    (["--arm-endpoint", "http://arm.local", "--authority", "https://login.local"], "must be an https:// URL"),
    (["--subscription", "a", "--management-group", "b"], "not both"),
    (["--ca-bundle", "/nonexistent/ca.pem"], "CA bundle not found"),
    (["--ca-bundle", "/"], "/: CA bundle is a folder, not a PEM file"),
])
def test_bad_options_are_usage_errors(args, message, tmp_path, capsys):
    assert main(["collect", "azure", *args, "--out", str(tmp_path / "a.json")]) == EXIT_INPUT_ERROR
    assert message in capsys.readouterr().err


def test_sovereign_clouds_use_their_own_endpoints_and_scope():
    government = AzureConnection(cloud="AzureUSGovernment")
    assert government.endpoints == CLOUDS["AzureUSGovernment"]
    assert government.scope == "https://management.core.usgovcloudapi.net/.default"
    china = AzureConnection(cloud="AzureChinaCloud")
    assert china.endpoints.authority == "https://login.chinacloudapi.cn"
    # Azure Stack Hub: its own ARM and AD FS authority; the audience follows the endpoint unless given
    stack = AzureConnection(arm_endpoint="https://management.local.azurestack.external/",
                            authority="https://adfs.local.azurestack.external/adfs")
    assert stack.scope == "https://management.local.azurestack.external/.default"
    assert AzureConnection(arm_endpoint="https://management.local.azurestack.external",
                           authority="https://adfs.local.azurestack.external/adfs",
                           audience="https://management.adfs.azurestack.local/4de154de").scope == \
        "https://management.adfs.azurestack.local/4de154de/.default"


def test_the_command_line_as_a_user_runs_it(replay, tmp_path):
    out = tmp_path / "azure.json"
    result = subprocess.run([sys.executable, "-m", "auditor", "collect", "azure", *endpoint_args(replay),
                             "--subscription", PCI, "--out", str(out)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == EXIT_OK, result.stderr
    assert f"wrote {len(load_snapshot(out).resources)} resources" in result.stdout
    assert CLIENT_SECRET not in result.stdout + result.stderr


def test_an_identity_that_can_read_nothing_is_an_incomplete_collection(replay, tmp_path, capsys):
    for subscription in list(replay.estate.subscriptions):
        replay.estate.forbidden.add(subscription)
    code = main(["collect", "azure", *endpoint_args(replay), "--out", str(tmp_path / "a.json")])
    err = capsys.readouterr().err
    assert code == EXIT_INCOMPLETE and not (tmp_path / "a.json").exists()
    assert "can read no subscription in the tenant" in err
    collected, _ = collect(replay, management_group="mg-unknown")
    assert [(s.id, s.status) for s in collected.sources] == [("mg-unknown", "failed")]
    assert "no subscription in management group mg-unknown" in collected.sources[0].error


def test_no_credential_at_all_is_one_line_naming_what_to_set(tmp_path, capsys, monkeypatch):
    for name in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE",
                 "IDENTITY_ENDPOINT", "MSI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path / "no-az-login"))  # no Azure CLI session either
    # developer credentials only: a CI host that happens to have a managed identity must not answer
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "dev")
    code = main(["collect", "azure", "--subscription", PCI, "--out", str(tmp_path / "a.json"), "--timeout", "5"])
    err = capsys.readouterr().err
    assert code == EXIT_INCOMPLETE and "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.startswith("auditor: error")]
    assert "no Azure token" in line and "AZURE_CLIENT_SECRET" in line and "az login" in line


def test_scan_checks_every_live_option_before_collecting_anything(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VSPHERE_USER", "auditor@vsphere.local")
    monkeypatch.setenv("VSPHERE_PASSWORD", "not-used")
    code = main(["scan", "--vsphere", "127.0.0.1:9", "--azure", "--azure-arm-endpoint", "http://arm.local",
                 "--azure-authority", "https://login.local", "--out", str(tmp_path / "reports")])
    err = capsys.readouterr().err
    assert code == EXIT_INPUT_ERROR and "must be an https:// URL" in err
    assert "127.0.0.1" not in err  # the vCenter was never contacted
    assert not (tmp_path / "reports" / "latest").exists()


def test_a_truncated_result_without_a_page_token_fails_the_scope(replay):
    replay.fail("resources", Fault(200, {}, {"totalRecords": 5000, "count": 1, "resultTruncated": "true",
                                             "data": [replay.estate.rows[0]], "facets": []}))
    collected, _ = collect(replay, PCI)
    [source] = collected.sources
    assert source.status == "failed" and collected.resources == []
    assert "truncated the result at 1 of 5000 rows" in source.error


def test_progress_counts_rows_per_page_on_a_terminal(replay):
    import io

    replay.estate.rows += generated_rows(1500, PCI)
    stream = io.StringIO()
    connection = AzureConnection(arm_endpoint=replay.url, authority=replay.url, ca_bundle=str(replay.cert))
    progress = Progress(stream=stream, enabled=True)
    AzureSource(connection, AzureScope(subscriptions=[PCI])).collect(progress)
    progress.finish()
    shown = stream.getvalue()
    assert f"collecting {PCI}: 1,000" in shown  # after the first page
    # the fixture's own PCI rows, less the rule collection group that Resource Graph does not index
    fixture_rows = sum(1 for row in standard_estate().rows if row["subscriptionId"] == PCI
                       and "/rulecollectiongroups/" not in row["id"].lower())
    assert f"{PCI}: {1500 + fixture_rows:,}" in shown and shown.endswith("\n")


def test_a_subscription_readable_but_not_listed_is_collected(replay):
    # as for a guest identity from another tenant: the list omits it, its resources answer
    replay.estate.subscriptions[PCI]["listed"] = False
    collected, _ = collect(replay, PCI)
    [source] = collected.sources
    assert source.status == "ok" and source.resource_count > 0 and replay.requests["resourcegroups"] == 1


@pytest.mark.parametrize("answer, reason", [
    # rows short of totalRecords with no page token: 1,000 of 2,511 must not pass for the estate
    (lambda rows: {"totalRecords": 2511, "count": 1, "resultTruncated": "false", "data": rows[:1], "facets": []},
     "pages add up to 1 rows where it counted 2,511 (totalRecords)"),
    (lambda rows: {"totalRecords": 5, "count": 0, "resultTruncated": "false", "data": [], "facets": []},
     "answered an empty page after 0 of 5 rows"),
    (lambda rows: {"totalRecords": 5, "count": 0, "resultTruncated": "false", "data": {"rows": []}, "facets": []},
     "data is not a list of rows"),
    (lambda rows: {"totalRecords": 2, "count": 2, "resultTruncated": "false", "data": [rows[0], dict(
        rows[0], id=rows[0]["id"].upper())], "facets": []}, "twice (ids compare case-insensitively)"),
])
def test_a_resource_graph_answer_that_does_not_add_up_fails_the_scope(replay, tmp_path, capsys, answer, reason):
    replay.fail("resources", Fault(200, {}, answer(replay.estate.rows)))
    collected, _ = collect(replay, PCI)
    [source] = collected.sources
    assert source.status == "failed" and collected.resources == [] and reason in source.error
    # and through the command: exit 3, nothing written, the earlier snapshot kept
    out = tmp_path / "azure.json"
    out.write_text("earlier snapshot")
    replay.fail("resources", Fault(200, {}, answer(replay.estate.rows)))
    code = main(["collect", "azure", *endpoint_args(replay), "--subscription", PCI, "--output", str(out), "-q"])
    assert code == EXIT_INCOMPLETE and out.read_text() == "earlier snapshot"
    assert reason in capsys.readouterr().err


def test_firewall_policy_rule_collection_groups_are_read_by_id(replay, tmp_path):
    collected, _ = collect(replay, PCI)
    groups = [r for r in collected.resources if r["type"] == "microsoft.network/firewallpolicies/rulecollectiongroups"]
    assert [g["name"] for g in groups] == ["dnat"]  # not in Resource Graph's answer: read by its id
    # and the DNAT rule in it is what makes vm-pci-web-01 reachable on RDP
    from auditor.facts import derive_facts
    derive_facts(collected.resources)
    vm = next(r for r in collected.resources if r["name"] == "vm-pci-web-01")
    assert [(e["protocol"], e["ports"], e["path"]) for e in vm["facts"]["exposure"]["internet"]] == [
        ("tcp", "3389", "firewall DNAT fw-pci rule rdp-to-web")]


# -- Resource SKUs: the vCPUs of the VM sizes in use -----------------------------------------


def compute_row(subscription: str, kind: str, name: str, location: str, size: str) -> dict:
    """A VM (size in properties.hardwareProfile.vmSize) or scale set (size in sku.name)."""
    arm = {"id": f"/subscriptions/{subscription}/resourceGroups/rg-sizes/providers/Microsoft.Compute/{kind}/{name}",
           "name": name, "type": f"Microsoft.Compute/{kind}", "location": location, "properties": {}}
    if kind == "virtualMachines":
        arm["properties"]["hardwareProfile"] = {"vmSize": size}
    else:
        arm["sku"] = {"name": size, "tier": "Standard", "capacity": 3}
    return graph_row(arm)


@pytest.fixture
def sized_estate(replay):
    """VMs and a scale set in eastus (two subscriptions) and westus; unused SKUs in the answers."""
    replay.estate.rows += [
        compute_row("subid", "virtualMachines", "vm-constrained", "eastus", "Standard_E8-2s_v3"),
        compute_row("{subscriptionId}", "virtualMachineScaleSets", "vmss-web", "eastus", "STANDARD_D5_V2"),
        compute_row("subid", "virtualMachines", "vm-west", "westus", "Standard_A1"),
        compute_row("subid", "virtualMachines", "vm-no-size", "westus", None),
        compute_row("subid", "virtualMachines", "vm-odd-place", "east us'; drop", "Standard_A0"),
    ]
    return replay


def test_resource_skus_of_the_regions_in_use_give_the_sizes_in_use(sized_estate):
    collected, _ = collect(sized_estate, "subid", "{subscriptionId}")
    sources = {s.id: s for s in collected.sources}
    assert all(s.status == "ok" for s in sources.values())
    # one request per region (eastus, westus), made through one subscription with VMs there;
    # the odd location never reaches the $filter
    assert sized_estate.requests["skus"] == 2
    assert sources["subid"].details["vm_sizes"] == {
        "standard_a0": {"vcpus": 1, "vcpus_available": 1},  # the published VM example's size (eastus)
        "standard_a1": {"vcpus": 1, "vcpus_available": 1},  # Microsoft's westus example
        "standard_d5_v2": {"vcpus": 16, "vcpus_available": 16},  # the scale set's sku.name
        "standard_e8-2s_v3": {"vcpus": 8, "vcpus_available": 2},  # constrained: 2 active
    }  # eastus's Standard_D12_v2 and Standard_D4s_v3 are in use nowhere: not kept
    assert "vm_sizes" not in sources["{subscriptionId}"].details
    assert not any("vm_sizes_error" in s.details for s in sources.values())
    counts = vm_sizes(collected.sources)
    assert vcpus("Standard_E8-2s_v3", counts) == (2, "resource-skus")
    assert vcpus("standard_d5_v2", counts) == (16, "resource-skus")


def test_the_vm_sizes_reach_the_snapshot(sized_estate, tmp_path):
    out = tmp_path / "azure.json"
    code = main(["collect", "azure", *endpoint_args(sized_estate), "--subscription", "subid", "--out", str(out), "-q"])
    assert code == EXIT_OK
    snapshot = load_snapshot(out)
    # only subid was collected: its own VMs' sizes (the published example's VMs are elsewhere)
    assert vm_sizes(snapshot.sources) == {"standard_a1": 1, "standard_e8-2s_v3": 2}


def test_every_page_of_the_resource_skus_answer_is_read(sized_estate):
    sized_estate.estate.sku_page_size = 1
    collected, _ = collect(sized_estate, "subid")
    [source] = collected.sources
    assert sized_estate.requests["skus"] > 2  # eastus's six SKUs came one a page
    assert source.details["vm_sizes"] == {"standard_a1": {"vcpus": 1, "vcpus_available": 1},
                                          "standard_e8-2s_v3": {"vcpus": 8, "vcpus_available": 2}}


@pytest.mark.parametrize("faults, reason", [
    ([Fault(403, {}, {"error": {"code": "AuthorizationFailed", "message": "The client does not have authorization to "
                                                                          "perform action 'Microsoft.Compute/skus/read'"
                                                                          ".\nSecond line."}})],
     "HTTP 403 AuthorizationFailed: The client does not have authorization"),
    ([Fault(500, {}, {"error": {"code": "InternalServerError", "message": "try again"}})] * 5,  # first try + 4 retries
     "HTTP 500 InternalServerError: try again"),
])
def test_a_failing_resource_skus_lookup_keeps_the_inventory(sized_estate, faults, reason):
    sized_estate.fail("skus", *faults)  # eastus (asked first) fails; westus answers
    collected, _ = collect(sized_estate, "subid")
    [source] = collected.sources
    assert source.status == "ok" and source.error is None
    assert any(r["name"] == "vm-constrained" for r in collected.resources)
    assert source.resource_count == sum(1 for r in collected.resources if r["source"] == "subid")
    assert sized_estate.requests["skus"] == len(faults) + 1
    error = source.details["vm_sizes_error"]
    assert error.startswith(f"Resource SKUs of eastus: Resource Manager at {sized_estate.url} answered {reason}")
    assert "\n" not in error and "westus" not in error
    assert source.details["vm_sizes"] == {"standard_a1": {"vcpus": 1, "vcpus_available": 1}}
    # the bundled table still answers for the eastus size it knows
    assert vcpus("Standard_E8-2s_v3", vm_sizes(collected.sources)) == (2, "bundled")


def test_every_region_that_fails_is_named_in_one_line(sized_estate):
    denied = Fault(403, {}, {"error": {"code": "AuthorizationFailed", "message": "no"}})
    sized_estate.fail("skus", denied, denied)
    collected, _ = collect(sized_estate, "subid")
    [source] = collected.sources
    assert source.status == "ok" and "vm_sizes" not in source.details
    assert source.details["vm_sizes_error"] == (
        f"Resource SKUs of eastus: Resource Manager at {sized_estate.url} answered HTTP 403 AuthorizationFailed: no; "
        f"Resource SKUs of westus: Resource Manager at {sized_estate.url} answered HTTP 403 AuthorizationFailed: no")


def test_a_stalled_resource_skus_lookup_times_out_once_and_the_inventory_stays(sized_estate):
    sized_estate.hold("skus")  # eastus, asked first, never answers
    connection = AzureConnection(arm_endpoint=sized_estate.url, authority=sized_estate.url,
                                 ca_bundle=str(sized_estate.cert), timeout=2)
    started = time.monotonic()
    collected = AzureSource(connection, AzureScope(subscriptions=["subid"])).collect(Progress(enabled=False))
    assert time.monotonic() - started < 20
    [source] = collected.sources
    assert source.status == "ok" and any(r["name"] == "vm-west" for r in collected.resources)
    # the timed-out request was not retried, and westus was not asked to wait out another timeout
    assert sized_estate.requests["skus"] == 1 and "vm_sizes" not in source.details
    assert source.details["vm_sizes_error"] == (
        f"Resource SKUs of eastus: Resource Manager at {sized_estate.url} timed out after 2 s; "
        "Resource SKUs of westus: not asked, as those of eastus timed out")
