"""The hardening rules against the vSphere Security Configuration Guide itself: every control
id a rule cites exists in the guide's controls file (vSphere 8 803-20260612-01, VCF 9.0),
at least 80 of its controls are checked, the generated pack is what its generator writes,
and comparisons follow the guide's wording ("5 or fewer", "TRUE or Undefined")."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from auditor.bundled import bundled_rules_dir
from auditor.engine.rules import load_rules
from auditor.facts import derive_facts
from auditor.snapshot import make_resource
from tests.conftest import ROOT, run_rule

FIXTURES = Path(__file__).parent / "fixtures" / "vsphere-scg"


def guide_ids(name: str) -> set[str]:
    with open(FIXTURES / name, encoding="utf-8-sig", newline="") as handle:
        return {row["SCG ID"] for row in csv.DictReader(handle) if row["SCG ID"]}


GUIDE = {"vsphere-scg-8": guide_ids("vsphere-8-controls.csv"), "vcf-scg-9": guide_ids("vcf-9-controls.csv")}
RULES = load_rules([bundled_rules_dir()]).rules


def test_the_fixture_is_the_guide_version_the_rules_cite():
    assert (FIXTURES / "VERSION").read_text().strip() == "803-20260612-01"
    assert len(GUIDE["vsphere-scg-8"]) == 156 and len(GUIDE["vcf-scg-9"]) >= 200


def test_every_cited_control_id_is_in_the_guide():
    unknown = sorted(f"{rule.id}: {framework} {control}" for rule in RULES
                     for framework, ids in rule.frameworks.items() if framework in GUIDE
                     for control in ids if control not in GUIDE[framework])
    assert not unknown, f"control ids the guide does not have: {unknown}"


def test_at_least_80_of_the_guides_controls_are_checked():
    cited = {control for rule in RULES for control in rule.frameworks.get("vsphere-scg-8", ())}
    assert len(cited) >= 80, len(cited)
    # host hardening is its own category: network isolation means network isolation again
    hardening = {rule.id for rule in RULES if rule.category == "hardening"}
    assert {"VS-NET-006", "VS-NET-007", "VS-NET-011", "VS-NET-017", "VS-HRD-100"} <= hardening


def test_the_pack_is_what_its_generator_writes():
    spec = importlib.util.spec_from_file_location("scg_rules", ROOT / "tools" / "scg_rules.py")
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    text, values = generator.render()
    assert json.loads((ROOT / "auditor" / "data" / "scg_control_titles.json").read_text()) == \
        generator.control_titles()
    assert (ROOT / "rules" / "hardening.yaml").read_text(encoding="utf-8") == text, "run python tools/scg_rules.py"
    assert json.loads((ROOT / "auditor" / "sample" / "hardening_values.json").read_text()) == values


def host(**settings) -> dict:
    resource = make_resource(id=f"vc/{len(settings)}", name="h", cloud="vsphere", type="HostSystem", source="vc",
                             native={"config": {"option": [{"key": k.replace("_", "."), "value": v}
                                                           for k, v in settings.items()]}})
    derive_facts([resource])
    return resource


def vm(**settings) -> dict:
    resource = make_resource(id="vc/vm", name="v", cloud="vsphere", type="VirtualMachine", source="vc",
                             native={"config": {"extraConfig": [{"key": k, "value": v} for k, v in settings.items()]}})
    derive_facts([resource])
    return resource


def rule_text(rule_id: str) -> str:
    """The conditions and message of a shipped hardening rule, to run under a test head."""
    text = (ROOT / "rules" / "hardening.yaml").read_text(encoding="utf-8")
    start = text.index(f"  - id: {rule_id}\n")
    end = text.find("\n  - id: ", start + 1)
    body = text[start:end if end > 0 else len(text)]
    return "\n".join(line for line in body.splitlines() if line.startswith(("    needs:", "    match:", "    message:")))


def rule_for(control: str) -> str:
    [rule] = [r.id for r in RULES if r.category == "hardening" and control in r.frameworks.get("vsphere-scg-8", ())]
    return rule


@pytest.mark.parametrize("value, found", [(5, False), (3, False), (1, False), (0, True), (10, True)])
def test_account_lockout_accepts_five_or_fewer(tmp_path, value, found):
    # esxi-8.account-lockout: "5", which the guide's text allows as "5 or fewer"; 0 turns lockout off
    findings = run_rule(tmp_path, rule_text(rule_for("esxi-8.account-lockout")), [host(Security_AccountLockFailures=value)],
                        resource="vsphere:HostSystem")
    assert bool(findings) is found


@pytest.mark.parametrize("value, found", [(600, False), (300, False), (900, True), (0, True)])
def test_shell_timeout_is_600_at_most(tmp_path, value, found):
    findings = run_rule(tmp_path, rule_text(rule_for("esxi-8.shell-timeout")), [host(UserVars_ESXiShellTimeOut=value)],
                        resource="vsphere:HostSystem")
    assert bool(findings) is found


@pytest.mark.parametrize("settings, found", [({}, False), ({"isolation.tools.copy.disable": "TRUE"}, False),
                                             ({"isolation.tools.copy.disable": "true"}, False),
                                             ({"isolation.tools.copy.disable": "FALSE"}, True)])
def test_a_vm_setting_the_guide_accepts_undefined(tmp_path, settings, found):
    findings = run_rule(tmp_path, rule_text(rule_for("vm-8.deactivate-console-copy")), [vm(**settings)], resource="vsphere:VirtualMachine")
    assert bool(findings) is found


def test_a_host_without_the_setting_is_not_evaluated(tmp_path):
    from auditor.baselines import load_baselines
    from auditor.bundled import bundled_baselines_dir
    from auditor.engine.evaluate import evaluate_rules
    from auditor.engine.rules import compile_rules
    from tests.conftest import AS_OF, rule_file

    compiled = compile_rules(load_rules([rule_file(tmp_path, rule_text(rule_for("esxi-8.account-lockout")), "vsphere:HostSystem")]),
                             load_baselines([bundled_baselines_dir()]), AS_OF)
    evaluation = evaluate_rules(compiled, [host(UserVars_DcuiTimeOut=600)])
    assert evaluation.findings == [] and evaluation.tallies["T-001"].not_evaluated


def test_cve_2024_37085_needs_a_domain_join_and_the_default_group(tmp_path):
    def joined(group: str, auto_add: bool, domain: bool = True) -> dict:
        auth = [{"_type": "HostActiveDirectoryInfo", "enabled": True, "joinedDomain": "corp.example"}] if domain else []
        resource = make_resource(id=f"vc/{group}{auto_add}{domain}", name="h", cloud="vsphere", type="HostSystem",
                                 source="vc", native={"config": {"authenticationManagerInfo": {"authConfig": auth},
                                                                 "option": [
            {"key": "Config.HostAgent.plugins.hostsvc.esxAdminsGroup", "value": group},
            {"key": "Config.HostAgent.plugins.hostsvc.esxAdminsGroupAutoAdd", "value": auto_add}]}})
        derive_facts([resource])
        return resource
    body = rule_text("VS-HRD-100")
    assert run_rule(tmp_path, body, [joined("ESX Admins", False)], resource="vsphere:HostSystem")
    assert run_rule(tmp_path, body, [joined("esx-admins-7f3", True)], resource="vsphere:HostSystem")
    assert not run_rule(tmp_path, body, [joined("esx-admins-7f3", False)], resource="vsphere:HostSystem")
    assert not run_rule(tmp_path, body, [joined("ESX Admins", True, domain=False)], resource="vsphere:HostSystem")
    # before the fix there is no AutoAdd setting: the group's name decides, and unset is "ESX Admins"
    for group, found in (("ESX Admins", True), ("esx-admins-7f3", False), (None, True)):
        unpatched = joined(group or "", False)
        unpatched["config"]["option"] = [] if group is None else unpatched["config"]["option"][:1]
        derive_facts([unpatched])
        assert bool(run_rule(tmp_path, body, [unpatched], resource="vsphere:HostSystem")) is found, group


def test_vm_setting_keys_are_case_insensitive_as_vmx_keys_are():
    resource = vm(**{"RemoteDisplay.MaxConnections": "1", "ISOLATION.TOOLS.COPY.DISABLE": "FALSE"})
    assert resource["facts"]["vm_settings"] == {"RemoteDisplay.maxConnections": "1",
                                                "isolation.tools.copy.disable": "FALSE"}


def test_controls_carry_their_titles_in_the_compliance_view():
    from auditor.compliance import control_titles
    titles = control_titles()
    # the guide's title, and the display name of an Azure Policy definition, not its GUID
    assert titles["esxi-8.account-lockout"].startswith("The ESXi host must lock an account")
    assert titles["22730e10-96f6-4aac-ad84-9383d35b5917"] == "Management ports should be closed on your virtual machines"
    cited = {control for rule in RULES for control in rule.frameworks.get("azure-policy", ())}
    assert cited and cited <= set(titles)
