"""A rule's loop over its resources, generated as one Python function.

The condition nodes (`conditions.py`) run as closure chains: every comparison is a call
to a test, which calls a getter, which calls the operator's predicate. Over 100,000
resources and 150 rules that is tens of millions of calls, about half of a scan's
evaluation. Here each rule's `where`, its `needs` and its `match` are written out as
straight-line Python, once per rule at compile time: path reads become subscripts in the
loop's own frame and only the operator's predicate is still called.

The generated code mirrors the closures exactly (same reads, same exceptions caught,
same short-circuits, same absent handling), so a rule's verdicts cannot differ between
the two; `tests/test_codegen.py` checks that over hostile shapes. Anything the generator
does not write out is called through its closure: a field comparison, a dry-check
placeholder, a path with an index or of more than _MAX_SEGMENTS keys, nesting past
Python's limits on nested blocks and indentation, and comparisons past the first
_MAX_WRITTEN of a rule. Should CPython still refuse the code, the whole rule runs through
its closures (called_loop).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .conditions import All, Any_, Compare, Items, Not
from .operators import as_members
from .paths import ABSENT, parse_path

# A rule's loop: (resources, keys of resources lacking data, resources that matched) ->
# how many resources it checked.
RuleLoop = Callable[[list[Any], list[str], list[Any]], int]

# CPython refuses more than 20 statically nested blocks (loops, try); each comparison
# adds a try and each list condition a loop, so deeper trees are called, not written out.
_MAX_BLOCKS = 12
# CPython's tokenizer allows 100 levels of indentation; an `all` of many children nests
# one `if` per child
_MAX_INDENT = 60
# a chain of subscripts is a nested expression for CPython's compiler, which recurses on it:
# longer paths are read by their getter (a loop)
_MAX_SEGMENTS = 16
# comparisons written out per rule: the shipped rules have at most a few dozen, and a rule
# file of a million values must not become megabytes of bytecode (the rest are called)
_MAX_WRITTEN = 500


class _Writer:
    """Python source for one rule, and the constants it refers to by name."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {"ABSENT": ABSENT, "_MISS": (KeyError, TypeError)}
        self.written = 0  # comparisons and list conditions written out so far

    def constant(self, value: Any) -> str:
        name = f"c{len(self.constants)}"
        self.constants[name] = value
        return name

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def read(self, indent: int, blocks: int, scope: str, path: str, get: Callable[[Any], Any]) -> int:
        """Code setting `v` to what `get(scope)` returns; the nesting it used."""
        segments = parse_path(path)
        if (blocks + 1 > _MAX_BLOCKS or len(segments) > _MAX_SEGMENTS
                or not all(isinstance(s, str) for s in segments)):
            self.emit(indent, f"v = {self.constant(get)}({scope})")
            return blocks
        keys = [repr(segment) for segment in segments]
        # as paths.compile_path: subscripts to the last level, dict.get for the last key
        # (a missing setting is the common miss), KeyError/TypeError for any wrong shape
        self.emit(indent, "try:")
        if len(keys) == 1:
            self.emit(indent + 1, f"v = {scope}[{keys[0]}]")
        elif len(keys) <= 4:
            inner = scope + "".join(f"[{key}]" for key in keys[:-1])
            self.emit(indent + 1, f"t_ = {inner}")
            self.emit(indent + 1, f"v = t_.get({keys[-1]}) if t_.__class__ is dict else t_[{keys[-1]}]")
        else:
            self.emit(indent + 1, f"v = {scope}" + "".join(f"[{key}]" for key in keys))
        self.emit(indent, "except _MISS:")
        self.emit(indent + 1, "v = ABSENT")
        self.emit(indent, "else:")
        self.emit(indent + 1, "if v is None:")
        self.emit(indent + 2, "v = ABSENT")
        return blocks + 1

    def condition(self, node: Any, indent: int, blocks: int, scope: str, depth: int) -> None:
        """Code setting `t` to the truth of `node` on `scope` (truthiness as `node.test`)."""
        if blocks + 2 > _MAX_BLOCKS or indent + 4 > _MAX_INDENT or self.written >= _MAX_WRITTEN:
            self.emit(indent, f"t = {self.constant(node.test)}({scope})")
        elif isinstance(node, Compare) and node.predicate is not None:
            self.written += 1
            self.read(indent, blocks, scope, node.path, node.get)
            self.emit(indent, f"t = {node.op.on_absent!r} if v is ABSENT else {self.comparison(node)}")
        elif isinstance(node, All | Any_):
            first, *rest = node.children
            self.condition(first, indent, blocks, scope, depth)
            for position, child in enumerate(rest):
                # each child sets t: the next runs only while the answer is still open
                self.emit(indent, "if t:" if isinstance(node, All) else "if not t:")
                indent += 1
                if indent + 4 > _MAX_INDENT:  # one `if` deeper per child: call the rest
                    self.emit(indent, f"t = {self.constant(_remaining(node, rest[position:]))}({scope})")
                    break
                self.condition(child, indent, blocks, scope, depth)
        elif isinstance(node, Not):
            self.condition(node.child, indent, blocks, scope, depth)
            self.emit(indent, "t = not t")
        elif isinstance(node, Items):
            self.written += 1
            self.items(node, indent, blocks, scope, depth)
        else:  # a field comparison or a dry-check placeholder
            self.emit(indent, f"t = {self.constant(node.test)}({scope})")

    def comparison(self, node: Compare) -> str:
        """An expression of `v` equal in truth to `node.predicate(v)`, `v` not absent."""
        name = node.op.name
        if name in ("eq", "ne"):  # the operators' own expressions (operators._eq, _ne)
            return f"v {'==' if name == 'eq' else '!='} {self.constant(node.expected)}"
        predicate = self.constant(node.predicate)
        if name in ("in", "not_in"):
            # text is the common observed shape: membership as operators._in tests it
            members = self.constant(as_members(node.expected))
            test = "in" if name == "in" else "not in"
            return f"(v {test} {members} if v.__class__ is str else {predicate}(v))"
        return f"{predicate}(v)"

    def matching(self, node: Items, indent: int, blocks: int) -> None:
        """Code appending (resource, position, element) for each element `node.inner` holds
        for, in order, as `Items.matching` lists them."""
        blocks = self.read(indent, blocks, "r", node.path, node.get)
        self.emit(indent, "if type(v) is list:")
        self.emit(indent + 1, "for p, e0 in enumerate(v):")
        self.condition(node.inner, indent + 2, blocks + 1, "e0", 1)
        self.emit(indent + 2, "if t:")
        self.emit(indent + 3, "matched.append((r, p, e0))")

    def items(self, node: Items, indent: int, blocks: int, scope: str, depth: int) -> None:
        blocks = self.read(indent, blocks, scope, node.path, node.get)
        element = f"e{depth}"
        if node.kind == "all_items":
            # as Items: an empty or absent list is no violation
            self.emit(indent, "if type(v) is not list or not v:")
            self.emit(indent + 1, "t = False")
            self.emit(indent, "else:")
            self.emit(indent + 1, f"for {element} in v:")
            self.condition(node.inner, indent + 2, blocks + 1, element, depth + 1)
            self.emit(indent + 2, "if not t:")
            self.emit(indent + 3, "break")
            return
        # any_item: some element holds; no_item: none does, and an absent list has none
        self.emit(indent, "if type(v) is not list:")
        self.emit(indent + 1, f"t = {node.kind != 'any_item'}")
        self.emit(indent, "else:")
        self.emit(indent + 1, "t = False")
        self.emit(indent + 1, f"for {element} in v:")
        self.condition(node.inner, indent + 2, blocks + 1, element, depth + 1)
        self.emit(indent + 2, "if t:")
        self.emit(indent + 3, "break")
        if node.kind == "no_item":
            self.emit(indent + 1, "t = not t")


def _remaining(node: All | Any_, children: list[Any]) -> Callable[[Any], bool]:
    """The truth of the rest of an `all` or `any`, child after child while it is open."""
    tests = tuple(child.test for child in children)
    if isinstance(node, All):
        return lambda scope: all(test(scope) for test in tests)
    return lambda scope: any(test(scope) for test in tests)


def rule_loop(where: Any, needs: tuple[tuple[str, Callable[[Any], Any]], ...], match: Any,
              per_item: bool, resource_key: Callable[[Any], str]) -> RuleLoop:
    """One function running a rule over a list of resources: resources its `where` turns
    away are skipped, those lacking a `needs` path are keyed into `not_evaluated`, and those
    the match holds for (every checked one, for a rule with a finding per list element)
    are appended to `matched`: the resource, or for a rule with a finding per list element
    a (resource, position, element) for each matching element."""
    writer = _Writer()
    key = writer.constant(resource_key)
    writer.emit(0, "def rule_loop(resources, not_evaluated, matched):")
    writer.emit(1, "checked = 0")
    writer.emit(1, "for r in resources:")
    blocks = 1
    if where is not None:
        writer.condition(where, 2, blocks, "r", 0)
        writer.emit(2, "if not t:")
        writer.emit(3, "continue")
    for path, get in needs[:_MAX_WRITTEN]:
        writer.read(2, blocks, "r", path, get)
        writer.emit(2, "if v is ABSENT:")
        writer.emit(3, f"not_evaluated.append({key}(r))")
        writer.emit(3, "continue")
    if len(needs) > _MAX_WRITTEN:
        rest = writer.constant(tuple(get for _, get in needs[_MAX_WRITTEN:]))
        writer.emit(2, f"if any(get(r) is ABSENT for get in {rest}):")
        writer.emit(3, f"not_evaluated.append({key}(r))")
        writer.emit(3, "continue")
    writer.emit(2, "checked += 1")
    if per_item:  # a finding per matching element
        writer.matching(match, 2, blocks)
    else:
        writer.condition(match, 2, blocks, "r", 0)
        writer.emit(2, "if t:")
        writer.emit(3, "matched.append(r)")
    writer.emit(1, "return checked")
    namespace = dict(writer.constants)
    try:
        code = compile("\n".join(writer.lines), "<rule loop>", "exec")
    except (RecursionError, MemoryError, SyntaxError):  # past a limit of CPython's the caps missed
        return called_loop(where, tuple(get for _, get in needs), match, per_item, resource_key)
    exec(code, namespace)
    return namespace["rule_loop"]


def called_loop(where: Any, needs: tuple[Callable[[Any], Any], ...], match: Any, per_item: bool,
                resource_key: Callable[[Any], str]) -> RuleLoop:
    """The loop `rule_loop` writes out, calling the condition closures instead."""
    where_test = where.test if where is not None else None
    test = match.test

    def loop(resources: list[Any], not_evaluated: list[str], matched: list[Any]) -> int:
        checked = 0
        for resource in resources:
            if where_test is not None and not where_test(resource):
                continue
            if any(get(resource) is ABSENT for get in needs):
                not_evaluated.append(resource_key(resource))
                continue
            checked += 1
            if per_item:
                matched.extend((resource, position, item) for position, item in match.matching(resource))
            elif test(resource):
                matched.append(resource)
        return checked
    return loop
