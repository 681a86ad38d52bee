"""Generated rule loops (auditor/engine/codegen.py) give the verdicts the condition closures
give: the same resources matched, the same list elements, the same resources not evaluated,
over hostile shapes (None, wrong types, missing keys, lists where mappings are expected)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from auditor.baselines import load_baselines
from auditor.bundled import bundled_baselines_dir
from auditor.engine.evaluate import candidate_lists, index_by_type
from auditor.engine.paths import ABSENT
from auditor.engine.rules import compile_rules, load_rules
from auditor.errors import InputError
from auditor.snapshot import resource_key

BASELINES = load_baselines([bundled_baselines_dir()])
AS_OF = date(2026, 11, 25)
TYPE = "microsoft.network/routetables"

PATHS = ["a", "a.b", "a.b.c", "a.b.c.d", "a.b.c.d.e", 'a["x.y"]', "items[0].c", "items[-1]", "name"]
ITEM_PATHS = ["c", "c.d", "name", "items"]


def closure_verdicts(compiled: Any, resources: list[dict[str, Any]]) -> tuple:
    """What the closures say, the way evaluation ran before rule loops were generated."""
    index = index_by_type(resources)
    matched, not_evaluated, checked = [], [], 0
    for group in candidate_lists(compiled, index):
        for resource in group:
            if compiled.where is not None and not compiled.where(resource):
                continue
            if any(get(resource) is ABSENT for get in compiled.needs):
                not_evaluated.append(resource_key(resource))
                continue
            checked += 1
            if compiled.per_item:
                matched.extend((resource["id"], position, id(item))
                               for position, item in compiled.match.matching(resource))
            elif compiled.match.test(resource):
                matched.append(resource["id"])
    return matched, not_evaluated, checked


def loop_verdicts(compiled: Any, resources: list[dict[str, Any]]) -> tuple:
    index = index_by_type(resources)
    found: list[Any] = []
    not_evaluated: list[str] = []
    checked = sum(compiled.loop(group, not_evaluated, found) for group in candidate_lists(compiled, index))
    if compiled.per_item:
        matched = [(resource["id"], position, id(item)) for resource, position, item in found]
    else:
        matched = [resource["id"] for resource in found]
    return matched, not_evaluated, checked


def compile_one(tmp_path_factory: Any, rule: dict[str, Any]) -> Any:
    path = tmp_path_factory.mktemp("codegen") / "r.yaml"
    document = {"rules": [{"id": "C-1", "title": "t", "severity": "high", "category": "other",
                           "resource": f"azure:{TYPE}", "description": "d", "remediation": "r", **rule}]}
    path.write_text(json.dumps(document), encoding="utf-8")
    (compiled,) = compile_rules(load_rules([path]), BASELINES, AS_OF)
    return compiled


scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["x", "X", "22", "true", "1", ""]))
shapes = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(["a", "b", "c", "d", "e", "x.y", "name", "items"]), inner, max_size=4)),
    max_leaves=14)

# operators with values that compile, and a few that need none
comparisons = st.one_of(
    st.builds(lambda op, value: {"op": op, "value": value},
              st.sampled_from(["eq", "ne"]), scalars),
    st.builds(lambda op, value: {"op": op, "value": value},
              st.sampled_from(["in", "not_in"]), st.lists(scalars, max_size=3)),
    st.builds(lambda op, value: {"op": op, "value": value},
              st.sampled_from(["gt", "lt"]), st.integers(-2, 2)),
    st.builds(lambda value: {"op": "regex", "value": value}, st.sampled_from(["^x", "(?i)^(true|1)$"])),
    st.builds(lambda op: {"op": op}, st.sampled_from(["present", "absent", "empty", "not_empty"])),
    st.just({"op": "eq", "value": {"path": "b"}}),  # a field comparison: called, not written out
)


@st.composite
def conditions(draw: Any, paths: list[str] = PATHS, depth: int = 0) -> dict[str, Any]:
    if depth < 4 and draw(st.booleans()):
        kind = draw(st.sampled_from(["all", "any", "not", "any_item", "all_items", "no_item"]))
        if kind in ("all", "any"):
            return {kind: draw(st.lists(conditions(paths, depth + 1), min_size=1, max_size=3))}
        if kind == "not":
            return {"not": draw(conditions(paths, depth + 1))}
        return {kind: {"path": draw(st.sampled_from(["items", "a", "a.b"])),
                       "match": draw(conditions(ITEM_PATHS, depth + 1))}}
    return {"path": draw(st.sampled_from(paths)), **draw(comparisons)}


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(match=conditions(), where=st.one_of(st.none(), conditions()),
       needs=st.lists(st.sampled_from(PATHS), max_size=2), per_item=st.booleans(),
       natives=st.lists(st.fixed_dictionaries({"a": shapes, "items": shapes}), min_size=1, max_size=4))
def test_generated_loops_judge_as_the_closures(tmp_path_factory, match, where, needs, per_item, natives):
    rule: dict[str, Any] = {"match": {"any_item": {"path": "items", "match": match}} if per_item else match}
    if where is not None:
        rule["where"] = where
    if needs:
        rule["needs"] = needs
    try:
        compiled = compile_one(tmp_path_factory, rule)
    except InputError:
        assume(False)
    resources = [{"id": f"r{i}", "name": f"n{i}", "cloud": "azure", "type": TYPE, "source": "s", "tags": {},
                  **native} for i, native in enumerate(natives)]
    assert loop_verdicts(compiled, resources) == closure_verdicts(compiled, resources)


def nested(kind: str, depth: int, leaf: dict[str, Any]) -> dict[str, Any]:
    condition = leaf
    for _ in range(depth):
        condition = {kind: {"path": "items", "match": condition}} if kind.endswith("item") else {kind: condition}
    return condition


@pytest.mark.parametrize("match", [
    nested("not", 90, {"path": "a", "op": "eq", "value": "x"}),
    {"all": [{"path": "a", "op": "ne", "value": str(i)} for i in range(200)]},
    {"any": [{"path": "a", "op": "eq", "value": str(i)} for i in range(200)] + [{"path": "a", "op": "eq", "value": "x"}]},
    nested("any_item", 30, {"path": "c", "op": "eq", "value": "x"}),
    nested("no_item", 25, {"path": "c", "op": "present"}),
], ids=["90 nots", "all of 200", "any of 201", "30 any_item", "25 no_item"])
def test_trees_past_pythons_nesting_limits_are_called_and_judge_the_same(tmp_path_factory, match):
    compiled = compile_one(tmp_path_factory, {"match": match})
    deep: Any = {"c": "x"}  # reached by exactly 30 nested any_item
    for _ in range(30):
        deep = {"items": [deep], "c": "y"}
    resources = [{"id": f"r{i}", "name": "n", "cloud": "azure", "type": TYPE, "source": "s", "tags": {}, **native}
                 for i, native in enumerate([{"a": "x"}, {"a": "y"}, deep, {"a": None, "items": "x"}])]
    verdicts = loop_verdicts(compiled, resources)
    assert verdicts == closure_verdicts(compiled, resources)
    assert verdicts[0], "the case must match something, or it proves nothing"


def balanced(depth: int) -> dict[str, Any]:
    """A tree of `all`/`any` 2**depth comparisons wide: no indentation limit stops it."""
    if depth == 0:
        return {"path": "a", "op": "ne", "value": "z"}
    return {("all" if depth % 2 else "any"): [balanced(depth - 1), balanced(depth - 1)]}


def test_a_path_of_thousands_of_keys_is_read_by_its_getter(tmp_path_factory):
    """A chain of 4,000 subscripts would exhaust the compiler's recursion: such a path is read
    by its getter, and the rule judges as the closures do."""
    path = ".".join(["a"] * 4000)
    compiled = compile_one(tmp_path_factory, {"match": {"path": path, "op": "present"}, "needs": [path]})
    deep: Any = "x"
    for _ in range(4000):
        deep = {"a": deep}
    resources = [{"id": f"r{i}", "name": "n", "cloud": "azure", "type": TYPE, "source": "s", "tags": {}, **native}
                 for i, native in enumerate([deep, {"a": {"a": None}}])]
    assert loop_verdicts(compiled, resources) == closure_verdicts(compiled, resources) == (["r0"], ["r1"], 1)


def test_a_rule_of_thousands_of_comparisons_compiles_to_bounded_code(tmp_path_factory):
    """Past a few hundred comparisons the rest are called: a rule file at the YAML value limit
    must not become megabytes of bytecode."""
    small = compile_one(tmp_path_factory, {"match": balanced(8)})  # 256 comparisons, all written out
    large = compile_one(tmp_path_factory, {"match": balanced(14)})  # 16,384
    assert len(large.loop.__code__.co_code) < 3 * len(small.loop.__code__.co_code)
    resources = [{"id": f"r{i}", "name": "n", "cloud": "azure", "type": TYPE, "source": "s", "tags": {}, "a": a}
                 for i, a in enumerate(["x", "z", None])]
    assert loop_verdicts(large, resources) == closure_verdicts(large, resources)


def test_a_rule_the_compiler_refuses_runs_through_its_closures(tmp_path_factory, monkeypatch):
    """The safety net under the caps: should CPython still refuse the code, the rule is run by
    calling its closures, with the same verdicts, rather than failing the scan."""
    from auditor.engine import codegen

    def refuse(*args: Any) -> Any:
        raise RecursionError("maximum recursion depth exceeded during compilation")
    monkeypatch.setattr(codegen, "compile", refuse, raising=False)
    match = {"any_item": {"path": "items", "match": {"path": "c", "op": "eq", "value": "x"}}}
    compiled = compile_one(tmp_path_factory, {"match": match, "where": {"path": "a", "op": "ne", "value": "skip"},
                                              "needs": ["items"]})
    resources = [{"id": f"r{i}", "name": "n", "cloud": "azure", "type": TYPE, "source": "s", "tags": {}, **native}
                 for i, native in enumerate([{"items": [{"c": "x"}, {"c": "y"}, {"c": "x"}]}, {"a": "skip"}, {}])]
    assert loop_verdicts(compiled, resources) == closure_verdicts(compiled, resources)
    assert loop_verdicts(compiled, resources)[1:] == (["r2"], 1)
