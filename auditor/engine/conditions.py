"""Conditions compiled into predicates.

Each node has two ways to run:
- `test(scope)`: a closure chain with no allocation, the verdict on one resource; the hot
  loop over every resource is generated from the same nodes (codegen.py), which calls
  `test` only for what it does not write out;
- `explain(scope, evidence, prefix)`: run again only on resources that matched, recording
  which observed values made the rule true (the evidence a report shows).
Inside `any_item` / `all_items` / `no_item`, paths are relative to the list element.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..text import bounded, shortened_key
from ..yamlfile import plain_data
from .operators import Operator, Predicate
from .paths import ABSENT, Getter

Test = Callable[[Any], bool]
Evidence = list[dict[str, Any]]


def _observed(value: Any) -> Any:
    # keep evidence small: a whole NSG rule list is not evidence, its size is; a hostile
    # name is shown shortened
    if isinstance(value, (str, list, dict)):
        return bounded(value)
    return value


class Compare:
    """`{path, op, value}`: one observed value against a constant, a baseline or a field."""

    def __init__(self, path: str, get: Getter, op: Operator, test: Test, shown_value: Any,
                 predicate: Predicate | None = None, expected: Any = None):
        self.path = path
        self.op = op
        self.shown_value = plain_data(shown_value)
        self.test = test
        self.get = get
        # set where `test` is `constant_test(get, op, predicate)`, with the constant the
        # predicate was made from: codegen writes the comparison out
        self.predicate = predicate
        self.expected = expected

    def observe(self, scope: Any, evidence: Evidence, prefix: str, result: bool) -> None:
        observed = self.get(scope)
        if self.op.unordered and isinstance(observed, list):
            observed = sorted(observed, key=str)  # a set: its order is no evidence
        entry = {"path": prefix + self.path, "op": self.op.name,
                 "actual": None if observed is ABSENT else _observed(observed),
                 "result": result}
        if self.op.takes_value:
            entry["expected"] = self.shown_value
        if observed is ABSENT:
            entry["absent"] = True
        evidence.append(entry)

    def explain(self, scope: Any, evidence: Evidence, prefix: str) -> bool:
        result = self.test(scope)
        if result:
            self.observe(scope, evidence, prefix, True)
        return result

    def observe_all(self, scope: Any, evidence: Evidence, prefix: str) -> None:
        self.observe(scope, evidence, prefix, self.test(scope))


def constant_test(get: Getter, op: Operator, predicate: Predicate) -> Test:
    """The hot-path test of a comparison with a constant already compiled into `predicate`."""
    on_absent = op.on_absent

    def test(scope: Any) -> bool:
        observed = get(scope)
        if observed is ABSENT:
            return on_absent
        return predicate(observed)
    return test


def field_test(get: Getter, op: Operator, factory: Callable[[Any], Predicate],
               get_other: Getter) -> Test:
    """Test against another field of the same scope: its value is only known per resource."""
    on_absent = op.on_absent

    def test(scope: Any) -> bool:
        observed = get(scope)
        if observed is ABSENT:
            return on_absent
        other = get_other(scope)
        if other is ABSENT:
            return False
        try:
            return factory(other)(observed)
        except (ValueError, TypeError):  # the other field is no usable constant
            return False
    return test


class All:
    def __init__(self, children: list[Any]):
        self.children = children
        tests = tuple(child.test for child in children)
        if len(tests) == 2:
            first, second = tests
            self.test: Test = lambda scope: first(scope) and second(scope)
        else:
            self.test = lambda scope: all(test(scope) for test in tests)

    def explain(self, scope: Any, evidence: Evidence, prefix: str) -> bool:
        found: Evidence = []
        for child in self.children:
            if not child.explain(scope, found, prefix):
                return False
        evidence.extend(found)
        return True

    def observe_all(self, scope: Any, evidence: Evidence, prefix: str) -> None:
        for child in self.children:
            child.observe_all(scope, evidence, prefix)


class Any_:
    def __init__(self, children: list[Any]):
        self.children = children
        tests = tuple(child.test for child in children)
        if len(tests) == 2:
            first, second = tests
            self.test: Test = lambda scope: first(scope) or second(scope)
        else:
            self.test = lambda scope: any(test(scope) for test in tests)

    def explain(self, scope: Any, evidence: Evidence, prefix: str) -> bool:
        for child in self.children:
            found: Evidence = []
            if child.explain(scope, found, prefix):
                evidence.extend(found)
                return True
        return False

    def observe_all(self, scope: Any, evidence: Evidence, prefix: str) -> None:
        for child in self.children:
            child.observe_all(scope, evidence, prefix)


class Not:
    def __init__(self, child: Any):
        self.child = child
        inner = child.test
        self.test: Test = lambda scope: not inner(scope)

    def explain(self, scope: Any, evidence: Evidence, prefix: str) -> bool:
        result = self.test(scope)
        if result:
            # what the negated condition saw is the evidence: each value that made it false
            self.child.observe_all(scope, evidence, prefix)
        return result

    def observe_all(self, scope: Any, evidence: Evidence, prefix: str) -> None:
        self.child.observe_all(scope, evidence, prefix)


def item_key(item: Any, index: int) -> str:
    """A key for a list element that survives reordering: its name, key or id where it has one.

    Keys only need to be unique within their list (the fingerprint holds the resource id),
    so the short readable name comes first.
    """
    if isinstance(item, dict):
        for field in ("name", "key", "id", "macAddress", "label"):
            value = item.get(field)
            if isinstance(value, (str, int)) and not isinstance(value, bool):
                return shortened_key(str(value).lower() if field == "id" else str(value))
    if isinstance(item, (str, int, float)) and not isinstance(item, bool):
        return shortened_key(str(item))
    return f"#{index}"


class Items:
    """`any_item` / `all_items` / `no_item` over the list at `path`."""

    def __init__(self, kind: str, path: str, get: Getter, inner: Any):
        self.kind = kind
        self.path = path
        self.get = get
        self.inner = inner
        test_item = inner.test

        if kind == "any_item":
            def test(scope: Any) -> bool:
                items = get(scope)
                if type(items) is not list:
                    return False
                # a plain loop: any() over a generator costs a frame per resource here
                for item in items:  # noqa: SIM110
                    if test_item(item):
                        return True
                return False
        elif kind == "all_items":
            # an empty or absent list is not a violation: "every NIC has a public IP" must
            # not fire on a VM with no NIC
            def test(scope: Any) -> bool:
                items = get(scope)
                if type(items) is not list or not items:
                    return False
                return all(test_item(item) for item in items)
        else:
            def test(scope: Any) -> bool:
                items = get(scope)
                if type(items) is not list:
                    return True
                return not any(test_item(item) for item in items)
        self.test: Test = test

    def matching(self, scope: Any) -> list[tuple[int, Any]]:
        """Elements the inner condition holds for, with their indexes (any_item findings)."""
        items = self.get(scope)
        if type(items) is not list:
            return []
        test_item = self.inner.test
        return [(index, item) for index, item in enumerate(items) if test_item(item)]

    def explain(self, scope: Any, evidence: Evidence, prefix: str) -> bool:
        result = self.test(scope)
        if not result:
            return False
        items = self.get(scope)
        if type(items) is not list:
            evidence.append({"path": prefix + self.path, "op": self.kind, "actual": None,
                             "absent": True, "result": True})
            return True
        for index, item in enumerate(items):
            # keyed by the element's name, not its position: a reordered list is the same evidence
            item_prefix = f"{prefix}{self.path}[{item_key(item, index)}]."
            if self.kind == "any_item":
                if self.inner.explain(item, evidence, item_prefix):
                    return True  # the first matching element is the evidence
            elif self.kind == "all_items":
                self.inner.explain(item, evidence, item_prefix)
        if self.kind == "no_item":
            evidence.append({"path": prefix + self.path, "op": "no_item",
                             "actual": f"{len(items)} items, none matching", "result": True})
        return True

    def observe_all(self, scope: Any, evidence: Evidence, prefix: str) -> None:
        items = self.get(scope)
        count = len(items) if type(items) is list else None
        evidence.append({"path": prefix + self.path, "op": self.kind,
                         "actual": f"{count} items" if count is not None else None,
                         "absent": count is None, "result": self.test(scope)})


def first_item(node: Any, scope: Any) -> Any:
    """The first list element an `any_item` inside `node` matched, for `{item.…}` messages."""
    if isinstance(node, Items):
        if node.kind == "any_item":
            matches = node.matching(scope)
            return matches[0][1] if matches else ABSENT
        return ABSENT
    if isinstance(node, (All, Any_)):
        for child in node.children:
            found = first_item(child, scope)
            if found is not ABSENT:
                return found
    return ABSENT
