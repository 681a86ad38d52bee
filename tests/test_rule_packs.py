"""Every shipped rule against the sample estate: named resources that must match it and
named resources that must not. A shipped rule missing from CASES fails the suite."""

from __future__ import annotations

from collections import defaultdict

import pytest

from auditor.sample import SAMPLE_BASELINE, SAMPLE_SNAPSHOT
from auditor.scan import load_rule_context, load_snapshots, scan_snapshot
from tests.conftest import AS_OF

# rule id -> (must match, must not match); an entry is a resource name, or
# (resource name, list item key) for rules that report per list element.
CASES: dict[str, tuple[list, list]] = {
    "VS-SUP-001": (["esx01.dc1.corp.example", "esx03.dc1.corp.example"],
                   ["esx07.dc1.corp.example", "esx01.dc2.corp.example"]),
    "VS-SUP-002": (["vc-dc1.corp.example"], ["vc-dc2.corp.example"]),
    # srv-mon-01 runs Ubuntu 20.04 without Ubuntu Pro: out of support, and only that
    "HY-SUP-001": (["dc1-legacy-erp", "vm-erp-01", "srv-file-01", "<img src=x onerror=alert(1)>", "srv-mon-01"],
                   ["dc1-build01", "vm-web-01", "srv-print-01", "vm-api-02"]),
    "HY-SUP-002": (["vm-api-02"], ["vm-erp-01", "vm-web-01", "srv-app-07", "srv-mon-01"]),
    # dc1-app004 has vmx-14 on ESXi 6.7, which cannot run vmx-17: "where supported"
    "VS-SUP-003": (["dc1-legacy-erp"], ["dc1-build01", "dc2-web01", "dc1-app004"]),
    "VS-SUP-004": (["dc1-legacy-erp"], ["dc1-build01"]),
    "AZ-SUP-001": (["vm-sql-02"], ["vm-sql-01", "vm-sql-03", "vm-sql-05"]),  # 02: 2014 SP2; 03: 2014 SP3
    "AZ-SUP-005": (["vm-sql-03"], ["vm-sql-02", "vm-sql-04"]),
    "AZ-SUP-006": (["vm-sql-05"], ["vm-sql-01", "vm-sql-02"]),
    "VS-SUP-010": (["esx01.lab.corp.example"], ["esx01.dc1.corp.example", "esx07.dc1.corp.example"]),
    "VS-SUP-011": (["vc-lab.corp.example"], ["vc-dc1.corp.example", "vc-dc2.corp.example"]),
    "AZ-LIC-007": (["vm-sql-02"], ["vm-sql-01", "vm-sql-03"]),
    "AZ-SUP-002": (["srv-file-01"], ["srv-print-01"]),
    # NSG rules are judged as Azure judges them (tests/test_reachability.py has the cases):
    # nsg-app's RDP is denied first; nsg-jump's reaches no VM (AZ-NET-015's); nsg-ops's SSH
    # is denied to half the Internet first, which leaves the other half
    "AZ-NET-001": ([("nsg-web", "tcp::nsg-web/allow-rdp-any")],
                   ["nsg-app", "nsg-db", "nsg-jump", ("nsg-web", "tcp::nsg-web/allow-https-internet")]),
    "AZ-NET-002": ([("nsg-ops", "tcp::nsg-ops/allow-ssh-internet")], ["nsg-db", "nsg-web", "nsg-jump"]),
    "AZ-NET-003": ([("nsg-legacy-ftp", "tcp::nsg-legacy-ftp/allow-any-any")],
                   ["nsg-web", ("nsg-legacy-ftp", "udp::nsg-legacy-ftp/allow-udp-syslog")]),
    "AZ-NET-004": ([("vnet-prod", "snet-app"), ("vnet-hub", "snet-dns")],
                   [("vnet-prod", "snet-web"), ("vnet-prod", "GatewaySubnet"),
                    ("vnet-hub", "AzureBastionSubnet"), ("vnet-hub", "AzureFirewallSubnet")]),
    "AZ-NET-005": (["vm-web-01-nic", "vm-api-02-nic"], ["vm-web-02-nic"]),
    "AZ-NET-006": (["avs-weu-01"], ["avs-weu-02"]),
    "VS-NET-001": (["pg-ids-tap"], ["pg-prod-web", "pg-legacy-nlb"]),
    "VS-NET-002": (["pg-legacy-nlb"], ["pg-prod-web", "pg-ids-tap"]),
    "VS-NET-003": (["pg-legacy-nlb"], ["pg-ids-tap"]),
    "VS-NET-004": (["pg-vgt-appliance", "pg-trunk-fw"], ["vc-dc1-DVUplinks", "pg-prod-web"]),
    "VS-NET-018": ([("esx03.dc1.corp.example", "key-vim.host.PortGroup-sniffer")],
                   ["esx01.dc1.corp.example", ("esx03.dc1.corp.example", "key-vim.host.PortGroup-vMotion")]),
    "VS-NET-005": ([("esx03.dc1.corp.example", "key-vim.host.PortGroup-sniffer")],
                   ["esx01.dc1.corp.example", ("esx03.dc1.corp.example", "key-vim.host.PortGroup-vMotion")]),
    "VS-NET-006": ([("esx01.dc1.corp.example", "TSM-SSH"), ("esx05.dc1.corp.example", "TSM-SSH")],
                   ["esx02.dc1.corp.example", "esx01.dc2.corp.example"]),
    "VS-NET-007": (["esx01.dc1.corp.example"], ["esx05.dc1.corp.example", "esx01.dc2.corp.example"]),
    "VS-NET-008": (["esx02.dc1.corp.example"], ["esx01.dc1.corp.example"]),
    "VS-NET-009": (["esx02.dc1.corp.example", "esx06.dc1.corp.example"], ["esx01.dc1.corp.example"]),
    "VS-LIC-001": (["VMware vSphere 7 Enterprise Plus"], ["VMware vCenter Server 7 Standard"]),
    "VS-LIC-002": (["Evaluation Mode"], ["VMware vSphere 7 Enterprise Plus"]),
    "VS-LIC-003": (["VMware vSphere 7 Standard (term)"], ["VMware Cloud Foundation (per core)"]),
    "VS-LIC-004": (["VMware Cloud Foundation (per core)", "Evaluation Mode"],
                   ["VMware vCenter Server 8 Standard", "VMware vSphere 7 Standard (term)"]),
    "VS-LIC-005": (["esx08.dc1.corp.example"], ["esx07.dc1.corp.example"]),
    "AZ-LIC-001": (["vm-sql-03"], ["vm-sql-01", "vm-sql-02"]),
    "AZ-LIC-002": (["vm-tools-01"], ["vm-web-01", "vm-api-01"]),
    "AZ-LIC-003": (["vm-etl-01"], ["vm-rhel-01"]),
    "VS-SUP-005": (["esx07.dc1.corp.example", "esx04.dc2.corp.example"], ["esx03.dc1.corp.example", "esx01.dc1.corp.example"]),
    "VS-SUP-006": (["vc-dc2.corp.example"], ["vc-dc1.corp.example"]),
    "HY-SUP-003": (["vm-api-01", "dc1-build01"], ["vm-web-01", "dc1-legacy-erp", "srv-mon-01"]),
    "HY-SUP-004": (["dc2-appliance-01"], ["vm-web-01", "vm-sap-01", "dc2-web01"]),
    "VS-SUP-007": (["esx03.dc1.corp.example", "esx01.dc2.corp.example"], ["esx04.dc2.corp.example", "esx01.dc1.corp.example"]),
    "VS-SUP-008": (["vc-dc1.corp.example"], ["vc-dc2.corp.example"]),
    "VS-SUP-009": (["dc1-legacy-erp"], ["dc1-build01", "dc2-web01"]),
    "AZ-SUP-003": (["vmss-batch"], ["vmss-web"]),
    "AZ-SUP-004": (["vm-sql-04"], ["vm-sql-01", "vm-sql-02"]),
    "AZ-NET-007": ([("nsg-ops", "tcp::nsg-ops/allow-winrm-internet")], ["nsg-web", "nsg-legacy-ftp", "nsg-jump"]),
    "AZ-NET-008": ([("nsg-web", "tcp::nsg-web/allow-https-internet")], ["nsg-app", "nsg-legacy-ftp", "nsg-shared"]),
    "AZ-NET-009": ([("nsg-ops", "udp::nsg-ops/allow-dns-udp")], ["nsg-shared", "nsg-legacy-ftp"]),
    # allow-sql-internet admits IPv6 sources only, which cannot reach vm-api-02's IPv4 address
    "AZ-NET-010": ([("nsg-ops", "tcp::nsg-ops/allow-postgres-internet")],
                   ["nsg-db", "nsg-legacy-ftp", ("nsg-ops", "tcp::nsg-ops/allow-sql-internet")]),
    "AZ-NET-017": (["vnet-prod"], ["vnet-hub"]),  # the hub has DDoS Network Protection
    "AZ-NET-018": (["prod-workloads"], ["shared-services"]),  # the shared subscription has a Bastion host
    "AZ-NET-019": (["agw-web"], ["agw-api"]),  # agw-web's WAF policy only detects
    "AZ-NET-015": ([("nsg-jump", "tcp::nsg-jump/allow-mgmt-internet"), ("nsg-ops", "tcp::nsg-ops/allow-sql-internet")],
                   ["nsg-web", "nsg-app", ("nsg-ops", "tcp::nsg-ops/allow-winrm-internet")]),
    "AZ-NET-016": ([("vm-web-01", "vm-web-01-nic:tcp:public IP vm-web-01-pip:nsg-web/allow-rdp-any+no NSG on the nic"),
                    ("vm-api-02", "vm-api-02-nic:tcp:public IP vm-api-02-pip:no NSG on the subnet+nsg-ops/allow-ssh-internet"),
                    ("vm-ftp-01", "vm-ftp-01-nic:tcp:public IP vm-ftp-01-pip:no NSG on the subnet+nsg-legacy-ftp/allow-any-any")],
                   ["vm-web-02", "vm-sql-01", "vmss-web",
                    ("vm-web-01", "vm-web-01-nic:tcp:public IP vm-web-01-pip:nsg-web/allow-https-internet+no NSG on the nic"),
                    ("vm-api-02", "vm-api-02-nic:tcp:public IP vm-api-02-pip:no NSG on the subnet+nsg-ops/allow-sql-internet")]),
    "AZ-NET-011": (["nsg-app", "nsg-shared"], ["nsg-web", "nsg-db", "nsg-jump"]),
    "AZ-NET-012": (["fl-vnet-prod"], ["fl-nsg-jump"]),
    "AZ-NET-013": (["vnet-hub"], ["vnet-prod"]),
    "AZ-NET-014": ([("nsg-db", "allow-sql-app:10.20.2.0/24")],
                   ["nsg-web", "nsg-app", ("nsg-db", "allow-ssh-bastion:10.0.1.0/26")]),
    "VS-NET-010": ([("dc2-flat-01", "pg-flat")], ["dc2-web01"]),
    "HY-NET-001": ([("dc1-pci-pay01", "pg-dev"), ("vm-erp-02", "vnet-prod/snet-app")],
                   ["dc1-pci-db01", "vm-sql-01", "dc1-build01"]),
    "VS-NET-011": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-NET-012": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-NET-013": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-NET-014": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-NET-015": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-NET-016": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-NET-017": (["esx02.dc1.corp.example"],
                   ["esx01.dc1.corp.example", "esx01.dc2.corp.example"]),
    "VS-LIC-006": (["VMware Cloud Foundation (per core, expansion)"], ["VMware Cloud Foundation (per core)"]),
    "VS-LIC-007": (["esx06.dc2.corp.example"], ["esx05.dc2.corp.example"]),
    # cl2 has esx07 on vSphere Standard, whose licence lists no DRS feature
    "VS-LIC-008": (["vc-dc1-cl2"], ["vc-dc1-cl1", "vc-dc2-cl2"]),
    # vm-etl-01's RHEL_BYOS claim on Ubuntu (AZ-LIC-003) takes no subscription: vm-rhel-01 gets it
    "AZ-LIC-004": (["vm-dc-01"], ["vm-web-01", "vm-etl-01", "vm-sap-01", "vm-rhel-01"]),
    "AZ-LIC-005": (["vm-erp-01", "vm-sql-04"], ["vm-api-01", "vm-web-01"]),
    "AZ-LIC-006": (["vm-sap-01"], ["vm-rhel-01", "vm-web-01"]),
    # hardening (rules/hardening.yaml): dc1 and its legacy VM are neglected, dc2 hardened
    "VS-HRD-001": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-002": (["esx07.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-003": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-004": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-005": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-006": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-007": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-008": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-009": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-010": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-011": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-012": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-013": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-014": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-015": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-016": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-017": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-018": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-019": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-020": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-021": (["esx04.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-022": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-023": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-024": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-025": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-026": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-027": (["esx02.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-028": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-029": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-030": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-031": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    "VS-HRD-033": (["vc-dc1.corp.example"], ["vc-dc2.corp.example"]),
    "VS-HRD-034": (["vc-dc1.corp.example"], ["vc-dc2.corp.example"]),
    "VS-HRD-035": (["vc-dc1.corp.example"], ["vc-dc2.corp.example"]),
    "VS-HRD-036": (["vc-dc1.corp.example"], ["vc-dc2.corp.example"]),
    "VS-HRD-037": (["pg-ids-tap"], ["pg-flat"]),
    "VS-HRD-038": (["pg-legacy-nlb"], ["pg-flat"]),
    "VS-HRD-039": (["pg-legacy-nlb"], ["pg-flat"]),
    "VS-HRD-040": (["vc-dc1-dvs"], ["vc-dc2-dvs"]),
    "VS-HRD-041": (["vc-dc1-dvs"], ["vc-dc2-dvs"]),
    "VS-HRD-042": (["vc-dc1-dvs"], ["vc-dc2-dvs"]),
    "VS-HRD-043": (["dc1-legacy-erp"], ["dc2-web01"]),
    "VS-HRD-044": (["dc1-legacy-erp"], ["dc2-web01"]),
    "VS-HRD-045": (["dc1-legacy-erp"], ["dc2-web01"]),
    "VS-HRD-046": (["dc1-legacy-erp"], ["dc2-web01"]),
    "VS-HRD-047": (["dc1-legacy-erp"], ["dc2-web01"]),
    "VS-HRD-048": (["dc1-legacy-erp"], ["dc2-web01"]),
    "VS-HRD-049": (["dc1-legacy-erp"], ["dc2-web01"]),
    "VS-HRD-050": (["dc1-legacy-erp"], ["dc2-web01"]),
    "VS-HRD-051": (["dc1-legacy-erp"], ["dc2-web01"]),
    "VS-HRD-052": (["dc1-legacy-erp"], ["dc2-web01"]),
    "VS-HRD-053": (["dc1-legacy-erp"], ["dc2-web01"]),
    "VS-HRD-054": (["dc1-legacy-erp"], ["dc2-web01"]),
    "VS-HRD-055": (["dc1-legacy-erp"], ["dc2-web01"]),
    "VS-HRD-056": (["dc1-legacy-erp"], ["dc2-web01"]),
    "VS-HRD-057": (["dc1-legacy-erp"], ["dc2-web01"]),
    "VS-HRD-058": (["dc1-legacy-erp"], ["dc2-web01"]),
    "VS-HRD-059": (["dc1-legacy-erp"], ["dc2-web01"]),
    "VS-HRD-060": (["dc1-legacy-erp"], ["dc2-web01"]),
    "VS-HRD-061": (["dc1-legacy-erp"], ["dc2-web01"]),
    "VS-HRD-062": (["dc1-legacy-erp"], ["dc2-web01"]),
    "VS-HRD-063": (["dc1-legacy-erp"], ["dc2-web01"]),
    "VS-HRD-064": (["dc1-legacy-erp"], ["dc2-web01"]),
    "VS-HRD-100": (["esx01.dc1.corp.example"], ["esx01.dc2.corp.example"]),
    # Azure VMware Solution: avs-weu-01 binds LDAP in clear, has no customer key, and its VCF
    # licence ends soon; avs-weu-02's has ended
    "AZ-AVS-001": (["avs-weu-01"], ["avs-weu-02"]),
    "AZ-AVS-002": (["avs-weu-01"], ["avs-weu-02"]),
    "AZ-AVS-003": (["avs-weu-01"], ["avs-weu-02"]),
    "AZ-AVS-004": (["avs-weu-02"], ["avs-weu-01"]),
    "DR-AZ-001": (["1c3e07b90c6459588de4"], ["87938b39f6345087ac45"]),  # policy states: nsg-app, nsg-jump
    "DR-AZ-002": (["require-owner-tag"], ["require-flow-logs"]),
    "DR-VS-001": ([("esx04.dc1.corp.example", "UserVars.ESXiShellTimeOut")], ["esx03.dc1.corp.example"]),
    "DR-VS-002": ([("esx07.dc1.corp.example", "Security.AccountLockFailures")], ["esx04.dc1.corp.example"]),
    "DR-VS-003": (["esx02.dc2.corp.example"], ["esx01.dc2.corp.example", "esx02.dc1.corp.example"]),
    "DR-VS-004": ([("esx03.dc1.corp.example", "Syslog.global.logHost")],
                  ["esx01.dc1.corp.example", "esx02.dc1.corp.example"]),
}


@pytest.fixture(scope="module")
def sample_findings():
    context = load_rule_context(None, [SAMPLE_BASELINE], AS_OF)
    snapshot = load_snapshots([SAMPLE_SNAPSHOT])
    report = scan_snapshot(snapshot, context, AS_OF)
    by_rule = defaultdict(set)
    for finding in report.findings:
        by_rule[finding.rule_id].add((finding.resource_name, finding.item_key))
    names = {resource["name"] for resource in snapshot.resources}
    return context, by_rule, names


def test_every_shipped_rule_has_cases(sample_findings):
    context, _, _ = sample_findings
    shipped = {rule.id for rule in context.ruleset.rules}
    assert shipped == set(CASES), f"rules without cases: {shipped - set(CASES)}; stale cases: {set(CASES) - shipped}"


def test_shipped_packs_meet_the_minimum(sample_findings):
    context, _, _ = sample_findings
    per_category = defaultdict(int)
    for rule in context.ruleset.rules:
        per_category[rule.category] += 1
        assert rule.references, f"{rule.id} has no reference"
    for category in ("support-status", "network-isolation", "licensing"):
        assert per_category[category] >= 5, category
    assert per_category["drift"] >= 3


def _hits(found: set, entry) -> bool:
    if isinstance(entry, tuple):
        return entry in found
    return any(name == entry for name, _ in found)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_matches_true_positives(sample_findings, rule_id):
    _, by_rule, names = sample_findings
    for entry in CASES[rule_id][0]:
        name = entry[0] if isinstance(entry, tuple) else entry
        assert name in names, f"sample estate has no resource {name}"
        assert _hits(by_rule[rule_id], entry), f"{rule_id} should match {entry}; found {sorted(by_rule[rule_id])[:10]}"


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_spares_true_negatives(sample_findings, rule_id):
    _, by_rule, names = sample_findings
    for entry in CASES[rule_id][1]:
        name = entry[0] if isinstance(entry, tuple) else entry
        assert name in names, f"sample estate has no resource {name}"
        assert not _hits(by_rule[rule_id], entry), f"{rule_id} must not match {entry}"


def test_rule_catalogue_in_docs_is_current(sample_findings):
    from auditor.catalogue import rules_markdown
    from tests.conftest import ROOT
    context, _, _ = sample_findings
    written = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    assert written == rules_markdown(context.ruleset.rules), \
        "run `auditor rules list --format markdown --output docs/rules.md`"


def test_one_verdict_of_support_per_machine(sample_findings):
    # "out of support" and "covered by an extended lane" never name the same machine
    _, by_rule, _ = sample_findings
    for out, extended in (("HY-SUP-001", "HY-SUP-002"), ("AZ-SUP-001", "AZ-SUP-005"), ("AZ-SUP-003", "HY-SUP-002")):
        both = {name for name, _ in by_rule[out]} & {name for name, _ in by_rule[extended]}
        assert not both, f"{out} and {extended} both name {both}"
    assert by_rule["HY-SUP-001"] and by_rule["HY-SUP-002"]
