"""Conditions, item iteration, values from baselines and other fields, messages,
evidence and fingerprints."""

from __future__ import annotations

import pytest

from auditor.engine.paths import ABSENT, compile_path, parse_path
from auditor.findings import fingerprint
from tests.conftest import run_rule, thing

NSG_RULE = """
match:
  any_item:
    path: properties.securityRules
    match:
      all:
        - {path: properties.access, op: eq, value: Allow}
        - any:
            - {path: properties.destinationPortRange, op: port_overlaps, value: 3389}
            - {path: properties.destinationPortRanges, op: port_overlaps, value: 3389}
message: "{name} rule {item.name} opens {item.properties.destinationPortRange|item.properties.destinationPortRanges}"
"""


def nsg(name, *rules):
    return thing(name, properties={"securityRules": [
        {"name": rule_name, "properties": properties} for rule_name, properties in rules]})


def test_any_item_gives_one_finding_per_matching_element(tmp_path):
    resource = nsg("nsg1",
                   ("rdp", {"access": "Allow", "destinationPortRange": "3389"}),
                   ("range", {"access": "Allow", "destinationPortRanges": ["22", "3380-3390"]}),
                   ("deny", {"access": "Deny", "destinationPortRange": "*"}),
                   ("web", {"access": "Allow", "destinationPortRange": "443"}))
    findings = run_rule(tmp_path, NSG_RULE, [resource])
    assert [f.item_key for f in findings] == ["rdp", "range"]
    assert findings[0].message == "nsg1 rule rdp opens 3389"
    assert findings[1].message == "nsg1 rule range opens 22, 3380-3390"
    evidence = {e["path"]: e["actual"] for e in findings[1].evidence}
    assert evidence == {"properties.securityRules[range].properties.access": "Allow",
                        "properties.securityRules[range].properties.destinationPortRanges": ["22", "3380-3390"]}


def test_fingerprints_are_stable_across_order_and_rename(tmp_path):
    first = nsg("nsg1", ("a", {"access": "Allow", "destinationPortRange": "3389"}),
                ("b", {"access": "Allow", "destinationPortRange": "*"}))
    reordered = nsg("nsg1", ("b", {"access": "Allow", "destinationPortRange": "*"}),
                    ("a", {"access": "Allow", "destinationPortRange": "3389"}))
    reordered["name"] = "nsg1-renamed"  # same ARM id, new display name
    one = {f.item_key: f.fingerprint for f in run_rule(tmp_path, NSG_RULE, [first])}
    two = {f.item_key: f.fingerprint for f in run_rule(tmp_path, NSG_RULE, [reordered])}
    assert one == two and len(set(one.values())) == 2
    assert one["a"] == fingerprint("T-001", first["id"].lower(), "a")


def test_azure_ids_compare_case_insensitively_in_fingerprints(tmp_path):
    body = "match: {path: properties.x, op: eq, value: 1}"
    upper = thing("A", properties={"x": 1})
    lower = dict(upper, id=upper["id"].lower())
    assert run_rule(tmp_path, body, [upper])[0].fingerprint == run_rule(tmp_path, body, [lower])[0].fingerprint


def test_all_items_needs_a_non_empty_list_and_no_item_holds_for_absent(tmp_path):
    all_items = """
match:
  all_items:
    path: nics
    match: {path: public, op: eq, value: true}
"""
    no_item = """
match:
  no_item:
    path: options
    match: {path: key, op: eq, value: Syslog.global.logHost}
"""
    resources = [thing("none"), thing("empty", nics=[]), thing("all", nics=[{"public": True}] * 2),
                 thing("some", nics=[{"public": True}, {"public": False}])]
    assert [f.resource_name for f in run_rule(tmp_path, all_items, resources)] == ["all"]
    resources = [thing("absent"), thing("empty", options=[]), thing("set", options=[{"key": "Syslog.global.logHost"}])]
    assert [f.resource_name for f in run_rule(tmp_path, no_item, resources)] == ["absent", "empty"]


def test_not_any_all_and_where(tmp_path):
    body = """
where: {path: tags.environment, op: ne, value: sandbox}
match:
  all:
    - {path: properties.licenseType, op: eq, value: RHEL_BYOS}
    - not: {path: facts.os.product, op: glob, value: "rhel-*"}
"""
    resources = [
        thing("ubuntu", properties={"licenseType": "RHEL_BYOS"}, facts={"os": {"product": "ubuntu-22.04"}}),
        thing("rhel", properties={"licenseType": "RHEL_BYOS"}, facts={"os": {"product": "rhel-8"}}),
        thing("unknown", properties={"licenseType": "RHEL_BYOS"}),
        thing("sandbox", tags={"environment": "sandbox"}, properties={"licenseType": "RHEL_BYOS"}),
    ]
    findings = run_rule(tmp_path, body, resources)
    assert [f.resource_name for f in findings] == ["ubuntu", "unknown"]
    negated = [e for e in findings[0].evidence if e["path"] == "facts.os.product"]
    assert negated == [{"path": "facts.os.product", "op": "glob", "actual": "ubuntu-22.04",
                        "result": False, "expected": "rhel-*"}]


def test_value_from_another_field(tmp_path):
    body = "match: {path: used, op: gt, value: {path: total}}"
    resources = [thing("over", used=14, total=12), thing("ok", used=3, total=12), thing("no-total", used=3)]
    assert [f.resource_name for f in run_rule(tmp_path, body, resources)] == ["over"]


def test_value_from_a_user_baseline_overrides_the_shipped_table(tmp_path):
    body = "match: {path: properties.agentVersion, op: version_lt, value: {baseline: support.minimum_versions.arc_agent}}"
    resources = [thing("old", properties={"agentVersion": "1.30"}), thing("new", properties={"agentVersion": "1.45"})]
    assert [f.resource_name for f in run_rule(tmp_path, body, resources)] == ["old"]
    stricter = "baselines:\n  support.minimum_versions:\n    arc_agent: '1.50'\n"
    assert [f.resource_name for f in run_rule(tmp_path, body, resources, baseline=stricter)] == ["old", "new"]


def test_past_eol_against_a_baseline_table(tmp_path):
    body = "match: {path: version, op: past_eol, value: {baseline: lifecycle.esxi}}"
    resources = [thing("six", version="6.7.0"), thing("seven", version="7.0.3"),
                 thing("eight", version="8.0.2"), thing("none")]
    assert [f.resource_name for f in run_rule(tmp_path, body, resources)] == ["six", "seven"]


def test_rule_applies_only_to_its_types_and_star_spans_clouds(tmp_path):
    body = "match: {path: flag, op: eq, value: true}"
    azure = thing("az", flag=True)
    vsphere = {"id": "vc/vm-1", "name": "vm", "cloud": "vsphere", "type": "Datastore",
               "source": "vc", "tags": {}, "flag": True}
    other = dict(thing("other", flag=True), type="microsoft.network/loadbalancers")
    assert [f.resource_name for f in run_rule(tmp_path, body, [azure, vsphere, other])] == ["az"]
    # `*:TYPE` names the type in either cloud (ARM types compared lower-case)
    azure_datastore = dict(thing("az-ds", flag=True), type="datastore")
    found = run_rule(tmp_path, body, [azure, vsphere, other, azure_datastore], resource="'*:Datastore'")
    assert sorted(f.resource_name for f in found) == ["az-ds", "vm"]


def test_message_marks_absent_fields_and_default_message(tmp_path):
    body = "match: {path: x, op: present}\nmessage: 'x={x} y={y}'"
    assert run_rule(tmp_path, body, [thing(x=1)])[0].message == "x=1 y=(absent)"
    assert run_rule(tmp_path, "match: {path: x, op: present}", [thing(x=1)])[0].message == "r1: test rule"


def test_paths():
    assert parse_path('config.option["Syslog.global.logHost"].value') == (
        "config", "option", "Syslog.global.logHost", "value")
    get = compile_path("a.b[1].c")
    assert get({"a": {"b": [{"c": 1}, {"c": 2}]}}) == 2
    assert get({"a": {"b": [{"c": 1}]}}) is ABSENT
    assert get({"a": {"b": "text"}}) is ABSENT
    assert compile_path("a.b")({"a": {"b": None}}) is ABSENT
    assert compile_path("a.b")({"a": "text"}) is ABSENT


def test_needs_leaves_resources_without_the_data_unjudged(tmp_path):
    from auditor.baselines import load_baselines
    from auditor.bundled import bundled_baselines_dir
    from auditor.engine.evaluate import evaluate_rules
    from auditor.engine.rules import compile_rules, load_rules
    from tests.conftest import AS_OF, rule_file

    body = """
    needs: [properties.version]
    match: {path: properties.version, op: version_lt, value: "7.0"}
    """
    old, current, unknown = (thing("old", properties={"version": "6.7"}), thing("new", properties={"version": "8.0"}),
                             thing("blind", properties={"version": None}))
    compiled = compile_rules(load_rules([rule_file(tmp_path, body)]), load_baselines([bundled_baselines_dir()]), AS_OF)
    result = evaluate_rules(compiled, [old, current, unknown])
    assert [f.resource_name for f in result.findings] == ["old"]
    tally = result.tallies["T-001"]
    # the resource with no version is neither a pass nor a finding
    assert tally.checked == 2 and tally.not_evaluated == [unknown["id"].lower()]


def test_evidence_of_a_reordered_list_is_the_same(tmp_path):
    body = """
    match:
      all_items:
        path: properties.securityRules
        match: {path: properties.access, op: eq, value: Allow}
    """
    a = nsg("nsg1", ("a", {"access": "Allow"}), ("b", {"access": "Allow"}))
    b = nsg("nsg1", ("b", {"access": "Allow"}), ("a", {"access": "Allow"}))
    first, second = run_rule(tmp_path, body, [a])[0], run_rule(tmp_path, body, [b])[0]
    assert sorted(e["path"] for e in first.evidence) == sorted(e["path"] for e in second.evidence) == [
        "properties.securityRules[a].properties.access", "properties.securityRules[b].properties.access"]


def test_set_comparison_ignores_order_and_shows_the_set_sorted(tmp_path):
    body = """
    match: {path: properties.ntp, op: set_ne, value: [ntp1, ntp2]}
    """
    same, reversed_, other = (thing("same", properties={"ntp": ["ntp1", "ntp2"]}),
                              thing("rev", properties={"ntp": ["ntp2", "ntp1"]}),
                              thing("other", properties={"ntp": ["ntp2", "ntp9"]}))
    findings = run_rule(tmp_path, body, [same, reversed_, other])
    assert [f.resource_name for f in findings] == ["other"]
    assert findings[0].evidence[0]["actual"] == ["ntp2", "ntp9"]
    eq = run_rule(tmp_path, "match: {path: properties.ntp, op: set_eq, value: [ntp1, ntp2]}",
                  [same, reversed_, other])
    assert [f.resource_name for f in eq] == ["same", "rev"]


@pytest.mark.parametrize("needs", [["properties.a"], ["properties.a", "properties.b"],
                                   ["properties.a", "properties.b", "properties.c"]])
def test_each_need_leaves_a_resource_unjudged_whatever_their_number(tmp_path, needs):
    """The straight-line test of one, two, or more needs: a resource missing any one of them,
    wherever it stands in the list, is not evaluated; one with them all is judged."""
    from auditor.baselines import load_baselines
    from auditor.bundled import bundled_baselines_dir
    from auditor.engine.evaluate import evaluate_rules
    from auditor.engine.rules import compile_rules, load_rules
    from tests.conftest import AS_OF, rule_file

    body = f"""
    needs: [{", ".join(needs)}]
    match: {{path: properties.a, op: eq, value: 1}}
    """
    whole = {"a": 1, "b": 2, "c": 3}
    complete = thing("complete", properties=whole)
    lacking = [thing(f"no-{path[-1]}", properties={k: v for k, v in whole.items() if k != path[-1]})
               for path in needs]
    compiled = compile_rules(load_rules([rule_file(tmp_path, body)]), load_baselines([bundled_baselines_dir()]), AS_OF)
    result = evaluate_rules(compiled, [complete, *lacking])
    assert [f.resource_name for f in result.findings] == ["complete"]
    tally = result.tallies["T-001"]
    assert tally.checked == 1 and tally.not_evaluated == [r["id"].lower() for r in lacking]


def test_a_rules_constant_shows_in_evidence_as_plain_data(tmp_path):
    """What a rule compares with is shown as plain lists and mappings, not the YAML loader's
    line-keeping types: evidence crosses between processes as plain data (shards)."""
    findings = run_rule(tmp_path, "match: {path: properties.ntp, op: set_ne, value: [ntp1, ntp2]}",
                        [thing("other", properties={"ntp": ["ntp9"]})])
    expected = findings[0].evidence[0]["expected"]
    assert expected == ["ntp1", "ntp2"] and type(expected) is list


def test_a_resource_two_selectors_name_is_judged_once(tmp_path):
    """`resource: [azure:T, "*:T"]` (or T twice) names one list of resources twice: each
    resource is judged, and found, once, as the index's docstring promises."""
    body = "match: {path: properties.a, op: eq, value: 1}"
    resources = [thing("one", properties={"a": 1}), thing("two", properties={"a": 2})]
    for selectors in ('[azure:microsoft.network/routetables, "*:microsoft.network/routetables"]',
                      "[azure:microsoft.network/routetables, azure:microsoft.network/routetables]"):
        findings = run_rule(tmp_path, body, resources, resource=selectors)
        assert [f.resource_name for f in findings] == ["one"], selectors
