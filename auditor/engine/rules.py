"""Rule packs: loading, validation against the rule format v1, and compilation.

Loading checks everything that can be checked without data (keys, severities, operators,
paths, value types, message templates, duplicate ids) and reports the first problem as
`file:line: what is wrong`. Compilation then resolves baseline references and turns
every condition into predicates, once, before any resource is seen.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from .. import inventory
from ..baselines import Baselines, Table, is_baseline_file
from ..errors import InputError, RuleError
from ..snapshot import resource_key
from ..text import TEXT_LIMIT, shortened
from ..yamlfile import LinedDict, LinedList, line_of, load_yaml
from .codegen import RuleLoop, rule_loop
from .conditions import All, Any_, Compare, Items, Not, Test, constant_test, field_test
from .operators import OPERATORS, CompileContext
from .paths import ABSENT, Getter, compile_path

SEVERITIES = ("critical", "high", "medium", "low", "info")
CATEGORIES = ("support-status", "network-isolation", "hardening", "licensing", "drift", "other")
CLOUDS = ("vsphere", "azure")
RULE_ID = re.compile(r"[A-Z0-9-]+")
RULE_KEYS = {"id", "title", "severity", "category", "resource", "description", "remediation",
             "references", "frameworks", "where", "match", "message", "enabled", "requires", "needs", "scope"}
REQUIRED_RULE_KEYS = ("id", "title", "severity", "category", "resource", "description",
                      "remediation", "match")
FILE_KEYS = {"rules", "pack"}
PACK_KEYS = {"name", "version", "description", "maintainer"}
ITEM_KINDS = ("any_item", "all_items", "no_item")
LOGIC_KINDS = ("all", "any", "not")


@dataclass
class Rule:
    """One rule with its metadata and where it was written."""

    id: str
    title: str
    severity: str
    category: str
    resources: tuple[tuple[str, str], ...]  # (cloud or "*", type)
    description: str
    remediation: str
    references: list[str]
    frameworks: dict[str, list[str]]
    where: Any
    match: Any
    message: str | None
    file: str
    line: int
    pack: str
    enabled: bool = True
    # baseline tables the organisation must declare (its NTP servers, say): until they are
    # loaded the rule is off, since there is nothing true to compare with
    requires: tuple[str, ...] = ()
    # paths a resource must have for the rule to judge it: where one is absent the resource
    # is "not evaluated" for this rule, never a pass (a disconnected host has no config)
    needs: tuple[str, ...] = ()
    # "estate": a verdict on one resource depends on resources of every source (licence
    # accounting counts claims across subscriptions), so when any source failed, a finding
    # that vanished is unknown, not fixed
    scope: str = "resource"

    @property
    def resource_text(self) -> list[str]:
        """The resource selectors as written (`azure:microsoft.network/...`)."""
        return [f"{cloud}:{kind}" for cloud, kind in self.resources]


@dataclass
class RuleSet:
    """Rules from all loaded packs, in load order, plus the files they came from."""

    rules: list[Rule] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    packs: dict[str, dict[str, Any]] = field(default_factory=dict)


def rule_files(paths: list[Path]) -> list[Path]:
    """YAML rule files under the given files and folders, sorted; baselines are skipped."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            for file in sorted(path.rglob("*.y*ml")):
                if file.suffix in (".yaml", ".yml") and not is_baseline_file(file):
                    found.append(file)
        elif path.exists():
            found.append(path)
        else:
            raise InputError("rule file or folder not found", where=str(path))
    return found




def load_rules(paths: list[Path], display: Callable[[Path], str] = str) -> RuleSet:
    """Load and validate every rule file. Every problem in every file is reported at once
    (RuleErrors, one line each); a rule set with no rule at all is refused, since it would
    pass every estate."""
    ruleset = RuleSet()
    seen: dict[str, Rule] = {}
    errors: list[InputError] = []
    files = rule_files(paths)
    for file in files:
        where = display(file)
        try:
            document = load_yaml(file)
        except InputError as error:
            errors.append(error)
            continue
        problems: list[InputError] = []
        try:
            _load_document(document, where, ruleset, seen, problems)
        except InputError as error:
            problems.append(error)
        for error in problems:
            if error.where is None:
                error.where = where
            errors.extend(error.errors if isinstance(error, RuleErrors) else [error])
        ruleset.files.append(where)
    if errors:
        raise errors[0] if len(errors) == 1 else RuleErrors(errors)
    named = ", ".join(str(path) for path in paths)
    if not ruleset.rules:
        raise RuleError(f"no rules found ({len(files)} rule file{'s' if len(files) != 1 else ''}): a scan "
                        "without rules would pass any estate", where=named)
    return ruleset


class RuleErrors(RuleError):
    """Several problems in rule files, each one line."""

    def __init__(self, errors: list[InputError]):
        self.errors = errors
        super().__init__(errors[0].message, where=errors[0].where, line=errors[0].line)

    def lines(self) -> list[str]:
        """Every problem as `file:line: what is wrong`."""
        return [error.one_line() for error in self.errors]


def _load_document(document: Any, where: str, ruleset: RuleSet, seen: dict[str, Rule],
                   problems: list[InputError]) -> None:
    if not isinstance(document, LinedDict) or "rules" not in document:
        raise RuleError("a rule file needs a top-level 'rules:' list", where=where,
                        line=line_of(document, 1))
    for key in document:
        if key not in FILE_KEYS:
            raise RuleError(f"unknown top-level key '{key}' (expected: rules, pack)",
                            where=where, line=document.line_of(key))
    pack = document.get("pack") or LinedDict()
    if not isinstance(pack, dict):
        raise RuleError("'pack' must be a mapping", where=where, line=document.line_of("pack"))
    for key in pack:
        if key not in PACK_KEYS:
            raise RuleError(f"unknown pack key '{key}' (expected: {', '.join(sorted(PACK_KEYS))})",
                            where=where, line=pack.line_of(key))
    pack_name = str(pack.get("name") or Path(where).stem)
    ruleset.packs[pack_name] = {k: pack[k] for k in pack} | {"file": where}
    rules = document["rules"]
    if not isinstance(rules, LinedList):
        raise RuleError("'rules' must be a list of rules", where=where,
                        line=document.line_of("rules"))
    for index, raw in enumerate(rules):
        try:
            rule = _load_rule(raw, where, rules.item_lines[index], pack_name)
        except InputError as error:  # report it, and go on with the next rule
            problems.append(error)
            continue
        if rule.id in seen:
            first = seen[rule.id]
            problems.append(RuleError(f"duplicate rule id {rule.id} (first defined at "
                                      f"{first.file}:{first.line})", where=where, line=rule.line))
            continue
        seen[rule.id] = rule
        ruleset.rules.append(rule)


def _text(raw: LinedDict, key: str, where: str, *, required: bool = True) -> str | None:
    value = raw.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise RuleError(f"'{key}' must be non-empty text", where=where, line=raw.line_of(key))
    return value.strip()


def _load_rule(raw: Any, where: str, line: int, pack: str) -> Rule:
    """One rule, checked whole: every problem it has is reported in one run (RuleErrors),
    not only the first."""
    if not isinstance(raw, LinedDict):
        raise RuleError("each rule must be a mapping", where=where, line=line)
    problems: list[InputError] = []

    def problem(message: str, key: str | None = None) -> None:
        problems.append(RuleError(message, where=where, line=raw.line_of(key) if key else raw.line))

    def checked(read: Callable[[], Any], default: Any = None) -> Any:
        try:
            return read()
        except InputError as error:
            problems.append(error)
            return default

    label = f"rule {raw.get('id')}" if isinstance(raw.get("id"), str) else "rule"
    for key in raw:
        if key not in RULE_KEYS:
            problem(f"{label}: unknown key '{key}' (allowed: {', '.join(sorted(RULE_KEYS))})", key)
    for key in REQUIRED_RULE_KEYS:
        if key not in raw:
            problem(f"{label}: missing required key '{key}'")
    rule_id = raw.get("id")
    if "id" in raw and (not isinstance(rule_id, str) or not RULE_ID.fullmatch(rule_id)):
        problem(f"rule id {rule_id!r} must match [A-Z0-9-]+", "id")
    rule_id = rule_id if isinstance(rule_id, str) else "?"
    severity = raw.get("severity")
    if "severity" in raw and severity not in SEVERITIES:
        problem(f"rule {rule_id}: severity {severity!r} is not one of {', '.join(SEVERITIES)}", "severity")
    category = raw.get("category")
    if "category" in raw and category not in CATEGORIES:
        problem(f"rule {rule_id}: category {category!r} is not one of {', '.join(CATEGORIES)}", "category")
    references = raw.get("references", [])
    if not isinstance(references, list) or not all(
            isinstance(r, str) and re.match(r"https?://", r) for r in references):
        problem(f"rule {rule_id}: 'references' must be a list of http(s) URLs", "references")
    frameworks = raw.get("frameworks", {})
    controls: dict[str, list[str]] = {}
    if not isinstance(frameworks, dict):
        problem(f"rule {rule_id}: 'frameworks' must map a catalogue to control ids", "frameworks")
    else:
        for catalogue, ids in frameworks.items():
            if not isinstance(ids, list) or not all(isinstance(i, (str, int)) and
                                                    not isinstance(i, bool) for i in ids):
                problems.append(RuleError(f"rule {rule_id}: frameworks.{catalogue} must be a list of ids",
                                          where=where, line=frameworks.line_of(catalogue)))
                continue
            controls[catalogue] = [str(i) for i in ids]
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        problem(f"rule {rule_id}: 'enabled' must be true or false", "enabled")
    requires = raw.get("requires", [])
    if not isinstance(requires, list) or not all(isinstance(t, str) and t for t in requires):
        problem(f"rule {rule_id}: 'requires' must be a list of baseline table names", "requires")
    needs = raw.get("needs", [])
    if not isinstance(needs, list) or not all(isinstance(p, str) and p for p in needs):
        problem(f"rule {rule_id}: 'needs' must be a list of paths", "needs")
    else:
        for path in needs:
            try:
                compile_path(path)
            except ValueError as exc:
                problem(f"rule {rule_id}: needs: {exc}", "needs")
    scope = raw.get("scope", "resource")
    if scope not in ("resource", "estate"):
        problem(f"rule {rule_id}: 'scope' must be resource or estate", "scope")
    title = checked(lambda: _text(raw, "title", where)) if "title" in raw else None
    description = checked(lambda: _text(raw, "description", where)) if "description" in raw else None
    remediation = checked(lambda: _text(raw, "remediation", where)) if "remediation" in raw else None
    message = checked(lambda: _text(raw, "message", where, required=False))
    resources = checked(lambda: _resources(raw, rule_id, where), ()) if "resource" in raw else ()
    # a dry compile checks the shape of the conditions and the message now, at load time
    compiler = _Compiler(where, rule_id, baselines=None, context=None)
    if raw.get("where") is not None:
        checked(lambda: compiler.condition(raw["where"], raw.line_of("where")))
    match = checked(lambda: compiler.condition(raw["match"], raw.line_of("match"))) if "match" in raw else None
    if message is not None and match is not None:
        checked(lambda: compile_message(message, where, raw.line_of("message"), rule_id,
                                        has_item=_has_any_item(match)))
    if problems:
        raise problems[0] if len(problems) == 1 else RuleErrors(problems)
    return Rule(
        id=rule_id, title=title or "", severity=severity, category=category, resources=resources,
        description=description or "", remediation=remediation or "", references=list(references),
        frameworks=controls, where=raw.get("where"), match=raw["match"], message=message, file=where,
        line=raw.line, pack=pack, enabled=enabled, requires=tuple(requires), needs=tuple(needs), scope=scope)


def _resources(raw: LinedDict, rule_id: str, where: str) -> tuple[tuple[str, str], ...]:
    value = raw["resource"]
    values = value if isinstance(value, list) else [value]
    selectors = []
    for entry in values:
        cloud, _, kind = str(entry).partition(":") if isinstance(entry, str) else ("", "", "")
        if cloud not in (*CLOUDS, "*") or not kind:
            raise RuleError(f"rule {rule_id}: resource {entry!r} must be CLOUD:TYPE with "
                            "CLOUD vsphere, azure or *", where=where, line=raw.line_of("resource"))
        if not inventory.known(cloud, kind):
            guess = inventory.nearest(cloud, kind)
            raise RuleError(f"rule {rule_id}: resource {entry!r} is no type the collectors produce"
                            + (f" (did you mean {guess}?)" if guess else " (see auditor/inventory.py)"),
                            where=where, line=raw.line_of("resource"))
        # ARM types are case-insensitive; vSphere managed object types are not
        selectors.append((cloud, kind.lower() if cloud == "azure" else kind))
    if not selectors:
        raise RuleError(f"rule {rule_id}: 'resource' is empty", where=where,
                        line=raw.line_of("resource"))
    return tuple(selectors)


def _has_any_item(node: Any) -> bool:
    if isinstance(node, Items):
        return True
    if isinstance(node, (All, Any_)):
        return any(_has_any_item(child) for child in node.children)
    if isinstance(node, Not):
        return _has_any_item(node.child)
    return False


# --- conditions ---------------------------------------------------------------------------

class _Compiler:
    """Turns one rule's condition tree into nodes; `baselines=None` is the dry load check."""

    def __init__(self, where: str, rule_id: str, baselines: Baselines | None,
                 context: CompileContext | None):
        self.where = where
        self.rule_id = rule_id
        self.baselines = baselines
        self.context = context

    def fail(self, message: str, line: int | None) -> RuleError:
        return RuleError(f"rule {self.rule_id}: {message}", where=self.where, line=line)

    def path(self, node: LinedDict, key: str = "path") -> tuple[str, Getter]:
        path = node.get(key)
        try:
            return path, compile_path(path)
        except ValueError as exc:
            raise self.fail(str(exc), node.line_of(key)) from None

    def condition(self, node: Any, line: int | None) -> Any:
        if not isinstance(node, LinedDict):
            raise self.fail("a condition must be a mapping (all/any/not, any_item/all_items/"
                            "no_item, or path/op/value)", line_of(node, line))
        line = node.line
        kinds = [k for k in (*LOGIC_KINDS, *ITEM_KINDS) if k in node]
        if len(kinds) > 1 or (kinds and "op" in node):
            found = ", ".join(kinds + (["op"] if "op" in node else []))
            raise self.fail("a condition holds exactly one of all/any/not/any_item/all_items/"
                            f"no_item or a comparison; found {found}", line)
        if kinds:
            kind = kinds[0]
            if len(node) != 1:
                extra = [k for k in node if k != kind]
                raise self.fail(f"'{kind}' takes no sibling keys (found {', '.join(extra)})",
                                node.line_of(extra[0]))
            body = node[kind]
            if kind in ("all", "any"):
                if not isinstance(body, LinedList) or not body:
                    raise self.fail(f"'{kind}' needs a non-empty list of conditions",
                                    node.line_of(kind))
                children = [self.condition(child, body.item_lines[i])
                            for i, child in enumerate(body)]
                return All(children) if kind == "all" else Any_(children)
            if kind == "not":
                return Not(self.condition(body, node.line_of(kind)))
            return self.items(kind, body, node.line_of(kind))
        return self.compare(node)

    def items(self, kind: str, body: Any, line: int) -> Items:
        if not isinstance(body, LinedDict) or set(body) != {"path", "match"}:
            raise self.fail(f"'{kind}' needs exactly 'path' and 'match'", line_of(body, line))
        path, get = self.path(body)
        inner = self.condition(body["match"], body.line_of("match"))
        return Items(kind, path, get, inner)

    def compare(self, node: LinedDict) -> Compare:
        unknown = [k for k in node if k not in ("path", "op", "value")]
        if unknown:
            raise self.fail(f"unknown condition key '{unknown[0]}' (a comparison has path, op, "
                            "value)", node.line_of(unknown[0]))
        if "path" not in node or "op" not in node:
            raise self.fail("a comparison needs 'path' and 'op'", node.line)
        path, get = self.path(node)
        name = node["op"]
        op = OPERATORS.get(name) if isinstance(name, str) else None
        if op is None:
            raise self.fail(f"unknown operator {name!r} (known: {', '.join(sorted(OPERATORS))})",
                            node.line_of("op"))
        value_line = node.line_of("value")
        if not op.takes_value:
            if "value" in node:
                raise self.fail(f"operator '{op.name}' takes no value", value_line)
            predicate = op.factory(None, self.context or _DRY)
            return Compare(path, get, op, constant_test(get, op, predicate), None, predicate)
        if "value" not in node:
            raise self.fail(f"operator '{op.name}' needs a value", node.line)
        value = node["value"]
        if isinstance(value, dict) and set(value) == {"path"}:
            if op.wants_table:
                raise self.fail(f"operator '{op.name}' needs {{baseline: TABLE}}, not a path",
                                value_line)
            other_path, get_other = self.path(value)
            context = self.context or _DRY
            return Compare(path, get, op, field_test(
                get, op, lambda other: op.factory(other, context), get_other),
                {"path": other_path})
        if isinstance(value, dict) and "baseline" in value:
            return self.baseline_compare(path, get, op, value, value_line)
        if op.wants_table:
            raise self.fail(f"operator '{op.name}' needs value {{baseline: TABLE}}", value_line)
        try:
            predicate = op.factory(value, self.context or _DRY)
        except ValueError as exc:
            raise self.fail(f"operator '{op.name}': {exc}", value_line) from None
        return Compare(path, get, op, constant_test(get, op, predicate), value, predicate, value)

    def baseline_compare(self, path: str, get: Getter, op: Any, value: LinedDict,
                         line: int) -> Compare:
        reference = value["baseline"]
        allowed = {"baseline", "days"} if op.wants_days else {"baseline"}
        if not set(value) <= allowed or not isinstance(reference, str) or not reference:
            raise self.fail("a baseline value is written {baseline: TABLE[.KEY]}" + (
                ", days: N" if op.wants_days else ""), line)
        if op.wants_days and "days" not in value:
            raise self.fail(f"operator '{op.name}' needs days: N or days: {{baseline: KEY}} beside the table", line)
        shown: dict[str, Any] = {"baseline": reference}
        if op.wants_days:
            shown["days"] = value["days"]
        if self.baselines is None:  # dry check: the reference is resolved at compile time
            return Compare(path, get, op, lambda scope: False, shown)
        try:
            resolved, table = self.baselines.resolve(reference)
        except KeyError as exc:
            raise self.fail(f"{exc.args[0]}", line) from None
        constant: Any = resolved
        if not op.wants_table:  # evidence shows what was compared with, not only the table's name
            shown["value"] = resolved
        if op.wants_table:
            if not isinstance(resolved, dict):
                raise self.fail(f"'{reference}' is not a table", line)
            constant = table if table.value is resolved else Table(
                reference, resolved, table.file, line_of(resolved, table.line))
            if op.wants_days:
                constant = (constant, self.horizon_days(value["days"], line))
        try:
            predicate = op.factory(constant, self.context or _DRY)
        except ValueError as exc:
            raise self.fail(f"operator '{op.name}' with baseline '{reference}' "
                            f"({table.file}): {exc}", line) from None
        return Compare(path, get, op, constant_test(get, op, predicate), shown, predicate,
                       constant)

    def horizon_days(self, days: Any, line: int) -> int:
        """A number of days, written literally or as {baseline: KEY}."""
        if isinstance(days, dict) and set(days) == {"baseline"} and self.baselines is not None:
            try:
                days, _ = self.baselines.resolve(days["baseline"])
            except KeyError as exc:
                raise self.fail(f"{exc.args[0]}", line) from None
        if isinstance(days, bool) or not isinstance(days, int) or days < 0:
            raise self.fail(f"days must be a whole number of days, not {days!r}", line)
        return days


_DRY = CompileContext(today=date(2000, 1, 1))


# --- messages -----------------------------------------------------------------------------

# literal text, or the alternatives of one field: [(getter, reads the item), ...]
MessagePart = tuple[str, list[tuple[Getter, bool]]]


def compile_message(template: str, where: str, line: int | None, rule_id: str,
                    *, has_item: bool) -> list[MessagePart]:
    """Split a message template into literals and compiled path reads.

    `{path}` reads the resource, `{item.path}` the list element an item condition matched,
    and `{a|b}` the first of several paths that is present (NSG rules carry either the
    singular or the plural field).
    """
    parts: list[MessagePart] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise RuleError(f"rule {rule_id}: message template: {exc} (write {{{{ for a literal "
                        "brace)", where=where, line=line) from None
    for literal, field_name, _spec, _conversion in parsed:
        if literal:
            parts.append((literal, []))
        if field_name is None:
            continue
        alternatives = []
        for name in field_name.split("|"):
            name = name.strip()
            reads_item = name.startswith("item.")
            if reads_item and not has_item:
                raise RuleError(f"rule {rule_id}: message uses {{{name}}} but the rule has "
                                "no any_item/all_items/no_item", where=where, line=line)
            try:
                getter = compile_path(name[5:] if reads_item else name)
            except ValueError as exc:
                raise RuleError(f"rule {rule_id}: message field {{{name}}}: {exc}",
                                where=where, line=line) from None
            alternatives.append((getter, reads_item))
        parts.append(("", alternatives))
    return parts


def render_message(parts: list[MessagePart], resource: Any, item: Any) -> str:
    """Fill a compiled message for one resource (and list element)."""
    out = []
    for literal, alternatives in parts:
        if not alternatives:
            out.append(literal)
            continue
        value = ABSENT
        for getter, reads_item in alternatives:
            scope = item if reads_item else resource
            value = ABSENT if scope is ABSENT else getter(scope)
            if value is not ABSENT:
                break
        if value is ABSENT:
            out.append("(absent)")
        elif isinstance(value, list):
            out.append(shortened(", ".join(_text_of(v) for v in value[:50])
                                 + (f", ... {len(value) - 50} more" if len(value) > 50 else "")))
        else:
            out.append(shortened(_text_of(value)))
    return shortened("".join(out), 4 * TEXT_LIMIT)


def _text_of(value: Any) -> str:
    """A value as message text; an integer too long for Python to print (over 4,300 digits,
    which a hostile snapshot may hold) is named as such instead."""
    try:
        return str(value)
    except ValueError:
        return "(a number too long to show)"


# --- compiled rules -----------------------------------------------------------------------

@dataclass
class CompiledRule:
    """A rule ready to evaluate: predicates built, baselines resolved."""

    rule: Rule
    where: Test | None
    match: Any
    per_item: bool
    message: list[MessagePart]
    loop: RuleLoop  # where, needs and match over a list of resources, generated (codegen.py)
    needs: tuple[Getter, ...] = ()


def missing_baselines(rule: Rule, baselines: Baselines) -> list[str]:
    """The tables a rule requires that no loaded baseline file declares."""
    return [name for name in rule.requires if name not in baselines.tables]


def compile_rules(ruleset: RuleSet, baselines: Baselines, today: date) -> list[CompiledRule]:
    """Compile every enabled rule whose required baselines are loaded, against them and
    the scan date."""
    context = CompileContext(today=today)
    compiled = []
    errors: list[InputError] = []
    for rule in ruleset.rules:
        if not rule.enabled or missing_baselines(rule, baselines):
            continue
        try:
            compiled.append(_compile(rule, baselines, context))
        except InputError as error:
            errors.append(error)
    if errors:
        raise errors[0] if len(errors) == 1 else RuleErrors(errors)
    return compiled


def _compile(rule: Rule, baselines: Baselines, context: CompileContext) -> CompiledRule:
    """One rule against the baselines and the scan date."""
    compiler = _Compiler(rule.file, rule.id, baselines, context)
    where_node = (compiler.condition(rule.where, line_of(rule.where, rule.line))
                  if rule.where is not None else None)
    match = compiler.condition(rule.match, line_of(rule.match, rule.line))
    template = rule.message or "{name}: " + rule.title
    message = compile_message(template, rule.file, rule.line, rule.id, has_item=_has_any_item(match))
    per_item = isinstance(match, Items) and match.kind == "any_item"
    needs = tuple((path, compile_path(path)) for path in rule.needs)
    return CompiledRule(
        rule=rule, where=where_node.test if where_node is not None else None, match=match,
        per_item=per_item, message=message, needs=tuple(get for _, get in needs),
        loop=rule_loop(where_node, needs, match, per_item, resource_key))


__all__ = ["ABSENT", "CompiledRule", "Rule", "RuleErrors", "RuleSet", "compile_rules", "load_rules",
           "missing_baselines", "render_message", "rule_files"]
