"""Fuzzing the rule loader and the snapshot loader: whatever the input, the only exception
that escapes is our one-line InputError (never a traceback)."""

from __future__ import annotations

import contextlib
import json
import textwrap
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.baselines import load_baselines
from auditor.bundled import bundled_baselines_dir
from auditor.engine.evaluate import evaluate
from auditor.engine.operators import OPERATORS
from auditor.engine.rules import compile_rules, load_rules
from auditor.errors import InputError
from auditor.snapshot import snapshot_from_document
from auditor.yamlfile import load_yaml_text

SETTINGS = settings(max_examples=1500, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
BASELINES = load_baselines([bundled_baselines_dir()])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-70000, 70000), st.text(max_size=12),
                    st.sampled_from(["*", "22", "3380-3390", "10.0.0.0/8", "Internet", "7.0.3", "today",
                                     "2026-01-01", "{baseline: lifecycle.esxi}", "eval", "[1"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=12)


@st.composite
def conditions(draw, depth=0):
    if depth < 3 and draw(st.booleans()):
        kind = draw(st.sampled_from(["all", "any", "not", "any_item", "all_items", "no_item", "bogus"]))
        if kind in ("all", "any"):
            return {kind: draw(st.lists(conditions(depth + 1), max_size=3))}
        if kind == "not":
            return {"not": draw(conditions(depth + 1))}
        if kind == "bogus":
            return {"bogus": draw(values)}
        return {kind: {"path": draw(st.sampled_from(["items", "a.b", "", "x[0]"])), "match": draw(conditions(depth + 1))}}
    condition = {"path": draw(st.sampled_from(["a", "a.b", "items[0].c", "a..b", "", "tags.env"])),
                 "op": draw(st.sampled_from([*OPERATORS, "nope"]))}
    if draw(st.booleans()):
        condition["value"] = draw(st.one_of(values, st.sampled_from([
            {"baseline": "lifecycle.esxi"}, {"baseline": "nope.nothing"}, {"path": "a"},
            {"baseline": "network.internet_sources"}])))
    return condition


@st.composite
def rules_documents(draw):
    rule = {"id": draw(st.sampled_from(["R-1", "r1", "R-2"])), "title": "t",
            "severity": draw(st.sampled_from(["high", "low", "urgent"])),
            "category": draw(st.sampled_from(["other", "licensing", "misc"])),
            "resource": draw(st.sampled_from(["azure:microsoft.network/routetables", "vsphere:HostSystem", "*:Datastore", "aws:z", ["azure:microsoft.network/routetables"]])),
            "description": "d", "remediation": "r", "match": draw(conditions())}
    if draw(st.booleans()):
        rule["message"] = draw(st.sampled_from(["{name}", "{item.name}", "{a|b}", "{", "{a..b}", "plain"]))
    if draw(st.booleans()):
        rule["where"] = draw(conditions())
    if draw(st.booleans()):
        rule[draw(st.sampled_from(["extra", "frameworks", "references", "enabled"]))] = draw(values)
    return {"rules": [rule] * draw(st.integers(1, 2))}


resources = st.lists(st.fixed_dictionaries({
    "a": values, "items": st.lists(st.dictionaries(st.sampled_from(["c", "name", "id"]), values, max_size=3), max_size=3),
    "tags": st.dictionaries(st.sampled_from(["env"]), scalars, max_size=1),
}), max_size=3)


@SETTINGS
@given(document=rules_documents(), inputs=resources)
def test_rule_loader_and_engine_never_raise_anything_but_input_errors(tmp_path_factory, document, inputs):
    path = tmp_path_factory.mktemp("fuzz") / "r.yaml"
    path.write_text(json.dumps(document), encoding="utf-8")  # JSON is YAML
    try:
        ruleset = load_rules([path])
        compiled = compile_rules(ruleset, BASELINES, date(2026, 11, 25))
    except InputError as error:
        assert str(path) in error.one_line() and "\n" not in error.one_line()
        return
    typed = [dict(r, id=f"x/{i}", name=f"n{i}", cloud="azure", type="microsoft.network/routetables", source="s") for i, r in enumerate(inputs)]
    evaluate(compiled, typed)


@SETTINGS
@given(text=st.text(max_size=200))
def test_yaml_loader_on_arbitrary_text(text):
    try:
        load_yaml_text(text, "fuzz.yaml")
    except InputError as error:
        assert error.one_line().startswith("fuzz.yaml")


@SETTINGS
@given(text=st.sampled_from(["rules:\n  - id: A\n", "a: [1, {b: 2}]\n", "x: &a [*a]\n", "- - - -\n", "k: !!python/object:os.system x\n"])
       .flatmap(lambda base: st.tuples(st.just(base), st.integers(0, len(base)), st.text(max_size=5))))
def test_yaml_loader_on_mutated_yaml(text):
    base, position, insert = text
    mutated = base[:position] + insert + base[position:]
    with contextlib.suppress(InputError):
        load_yaml_text(textwrap.dedent(mutated), "m.yaml")


snapshot_documents = st.one_of(
    values,
    st.fixed_dictionaries({"kind": st.sampled_from(["auditor.snapshot", "other"]),
                           "schema_version": st.one_of(st.integers(-1, 3), st.booleans(), st.text(max_size=2)),
                           "collected_at": st.one_of(st.text(max_size=5), st.none()),
                           "sources": st.one_of(values, st.lists(st.dictionaries(
                               st.sampled_from(["id", "cloud", "kind", "status", "resource_count", "details", "error"]),
                               values, max_size=7), max_size=3)),
                           "resources": st.one_of(values, st.lists(st.dictionaries(
                               st.sampled_from(["id", "name", "cloud", "type", "source", "tags"]),
                               st.one_of(values, st.sampled_from(["azure", "vsphere"])), max_size=6), max_size=3))}))


@SETTINGS
@given(document=snapshot_documents)
def test_snapshot_loader_never_raises_anything_but_snapshot_errors(document):
    try:
        snapshot = snapshot_from_document(document, "fuzz.json")
    except InputError as error:
        assert error.one_line().startswith("fuzz.json: ")
        return
    for resource in snapshot.resources:
        assert resource["cloud"] in ("azure", "vsphere") and isinstance(resource["tags"], dict)


# Keys the fact stages read, so that random nesting reaches their real paths.
FACT_KEYS = ["properties", "hardwareProfile", "vmSize", "networkProfile", "networkInterfaces", "id",
             "ipConfigurations", "subnet", "subnets", "addressPrefix", "networkSecurityGroup", "targetResourceId",
             "retentionPolicy", "days", "enabled", "licenseType", "extended", "instanceView", "osName",
             "osVersion", "storageProfile", "imageReference", "publisher", "offer", "sku", "virtualMachineProfile",
             "config", "summary", "hardware", "numCpuPkgs", "numCpuCores", "product", "version", "build", "guest",
             "toolsVersion", "guestFullName", "guestId", "runtime", "host", "network", "assignedLicense",
             "licenseKey", "editionKey", "parent", "moref", "about", "location", "defaultPortConfig", "vlan",
             "vlanId", "uplinkPortgroup", "osSku", "sqlImageOffer", "name", "zone"]
FACT_TYPES = [("vsphere", "VirtualMachine"), ("vsphere", "HostSystem"), ("vsphere", "License"),
              ("vsphere", "ClusterComputeResource"), ("vsphere", "DistributedVirtualPortgroup"),
              ("vsphere", "vCenter"), ("vsphere", "DistributedVirtualSwitch"),
              ("azure", "microsoft.compute/virtualmachines"), ("azure", "microsoft.network/networkinterfaces"),
              ("azure", "microsoft.network/virtualnetworks"), ("azure", "microsoft.network/networksecuritygroups"),
              ("azure", "microsoft.network/networkwatchers"), ("azure", "microsoft.network/networkwatchers/flowlogs"),
              ("azure", "microsoft.compute/virtualmachinescalesets"), ("azure", "microsoft.hybridcompute/machines"),
              ("azure", "microsoft.sqlvirtualmachine/sqlvirtualmachines")]
shaped = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(FACT_KEYS), inner, max_size=4)), max_leaves=16)
estate = st.lists(st.tuples(st.sampled_from(FACT_TYPES), st.dictionaries(st.sampled_from(FACT_KEYS), shaped, max_size=6),
                            st.dictionaries(st.sampled_from(["zone", "Zone", "env"]), scalars, max_size=2)),
                  max_size=8)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs=estate)
def test_fact_stages_survive_any_shape_of_native_data(inputs):
    from auditor.accounting import account_hybrid_benefit
    from auditor.facts import derive_facts
    from auditor.segmentation import assign_zones

    resources = []
    for index, ((cloud, kind), native, tags) in enumerate(inputs):
        resource = dict(native)
        resource.update(id=f"/r/{index}", name=f"r{index}", cloud=cloud, type=kind, source="s", tags=tags)
        resources.append(resource)
    derive_facts(resources)
    assign_zones(resources, BASELINES)
    account_hybrid_benefit(resources, BASELINES)
    derive_facts(resources)  # and again: re-deriving over derived facts is safe too
