"""Engine benchmark: our compiled rules vs Cloud Custodian's ValueFilter, same rules, same dicts.

Builds a synthetic estate of ~100,000 resources with the sample estate's shapes, then:
1. evaluates the shipped rule packs with auditor's engine (compile + evaluate);
2. evaluates the same rules translated to c7n filters (value / and / or / not /
   list-item) over deep copies of the same resources, in the same process;
3. runs a whole `auditor scan` of the estate saved as a snapshot (load, facts, evaluate,
   write findings.json and SARIF) in a child process, for wall time and peak memory.

Prints resource x rule evaluations per second for both engines and their ratio.
Targets: ratio >= 3; the 100,000-resource scan under 10 s and 1 GiB.
Translation notes: c7n has no lifecycle lookup or port-range arithmetic, so lifecycle
operators become an `in` list of the estate's values that are past the date, and
`port_overlaps` an `in` list of the texts that overlap. Both are cheaper for c7n than the
real operations, so the ratio errs in c7n's favour.

Usage: python bench/engine.py [--resources N] [--check]
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from auditor.accounting import account_hybrid_benefit
from auditor.engine.evaluate import candidates, evaluate, index_by_type
from auditor.engine.operators import OPERATORS, CompileContext, parse_ports
from auditor.engine.paths import ABSENT, compile_path
from auditor.facts import derive_facts
from auditor.sample import SAMPLE_BASELINE
from auditor.sample.generate import build_sample_estate
from auditor.scan import load_rule_context
from auditor.segmentation import assign_zones
from auditor.snapshot import save_snapshot

AS_OF = date(2026, 11, 25)


def build_estate(target: int):
    """The sample estate scaled so that it holds about `target` resources."""
    vsphere_vms = int(target * 0.7)
    azure_units = max(1, int(target * 0.3) // 26)  # each unit: 12 VMs, 12 NICs, ~2 public IPs
    return build_sample_estate(vms_per_vcenter=(vsphere_vms * 4 // 7, vsphere_vms * 3 // 7),
                               azure_vm_scale=azure_units)


# --- translation of our rules into c7n filters ------------------------------------------

SIMPLE = {"eq": "eq", "ne": "ne", "lt": "lt", "le": "le", "gt": "gt", "ge": "ge", "in": "in",
          "not_in": "not-in", "contains": "contains", "regex": "regex", "glob": "glob"}
VERSION = {"version_lt": "lt", "version_le": "le", "version_gt": "gt", "version_ge": "ge"}


class Translator:
    def __init__(self, context, resources: list[dict[str, Any]]):
        self.baselines = context.baselines
        self.resources = resources
        self.approximated: set[str] = set()

    def value(self, raw: Any) -> Any:
        if isinstance(raw, dict) and set(raw) == {"baseline"}:
            return self.baselines.resolve(raw["baseline"])[0]
        return raw

    def observed(self, path: str, scopes: list[Any]) -> set:
        get = compile_path(path)
        values = set()
        for scope in scopes:
            value = get(scope)
            for element in value if isinstance(value, list) else [value]:
                if element is not ABSENT and not isinstance(element, (dict, list)):
                    values.add(element)
        return values

    def condition(self, node: dict[str, Any], scopes: list[Any], rule_id: str) -> dict[str, Any]:
        if "all" in node:
            return {"and": [self.condition(c, scopes, rule_id) for c in node["all"]]}
        if "any" in node:
            return {"or": [self.condition(c, scopes, rule_id) for c in node["any"]]}
        if "not" in node:
            return {"not": [self.condition(node["not"], scopes, rule_id)]}
        for kind in ("any_item", "all_items", "no_item"):
            if kind in node:
                body = node[kind]
                get = compile_path(body["path"])
                items = [i for s in scopes for i in (get(s) if isinstance(get(s), list) else [])]
                inner = self.condition(body["match"], items, rule_id)
                list_key = jmespath_key(body["path"])
                listed = {"type": "list-item", "key": list_key, "attrs": [inner]}
                if kind == "any_item":
                    return listed
                if kind == "no_item":
                    return {"not": [listed]}
                return {"and": [{"type": "value", "key": list_key, "value_type": "size", "op": "gt", "value": 0},
                                {"not": [{"type": "list-item", "key": list_key, "attrs": [{"not": [inner]}]}]}]}
        return self.compare(node, scopes, rule_id)

    def compare(self, node: dict[str, Any], scopes: list[Any], rule_id: str) -> dict[str, Any]:
        path, op = node["path"], node["op"]
        key = jmespath_key(path)
        raw = node.get("value")
        if isinstance(raw, dict) and set(raw) == {"path"}:
            return {"type": "value", "key": key, "op": SIMPLE.get(op, VERSION.get(op, "eq")),
                    "value": raw["path"], "value_type": "expr"}
        value = self.value(raw)
        if op == "in":
            # ours also accepts a list with any listed element; c7n spells that `intersect`
            return {"or": [{"type": "value", "key": key, "op": "in", "value": value},
                           {"type": "value", "key": key, "op": "intersect", "value": value}]}
        if op in SIMPLE:
            return {"type": "value", "key": key, "op": SIMPLE[op], "value": value}
        if op in VERSION:
            # c7n's version parser fails on a missing value; our operator treats it as no match
            return {"and": [{"type": "value", "key": key, "value": "present"},
                            {"type": "value", "key": key, "op": VERSION[op], "value": value, "value_type": "version"}]}
        if op in ("present", "absent", "empty"):
            return {"type": "value", "key": key, "value": op}
        if op == "not_empty":
            return {"type": "value", "key": key, "value": "not-null"}
        if op in ("date_before", "date_after"):
            when = AS_OF.isoformat() if value == "today" else value
            return {"type": "value", "key": key, "op": "lt" if op == "date_before" else "gt",
                    "value": when, "value_type": "date"}
        if op == "older_than_days":
            return {"type": "value", "key": key, "op": "gt", "value": value, "value_type": "age"}
        if op == "within_days":  # not yet passed, and before N days from now
            return {"and": [{"type": "value", "key": key, "op": "gt", "value": AS_OF.isoformat(), "value_type": "date"},
                            {"type": "value", "key": key, "op": "lt", "value": value, "value_type": "expiration"}]}
        # no c7n equivalent: an `in` list of the estate's values our operator accepts
        self.approximated.add(rule_id)
        if op == "port_overlaps":
            wanted = parse_ports(value)
            accepted = [v for v in self.observed(path, scopes)
                        if any(lo <= wh and wl <= hi for lo, hi in parse_ports(v) for wl, wh in wanted)]
        else:
            # lifecycle operators take the table; the others (set_eq, set_ne) its value
            constant: Any = self.baselines.resolve(raw["baseline"])[1] if OPERATORS[op].wants_table else value
            if OPERATORS[op].wants_days:
                constant = (constant, self.value(raw["days"]))
            predicate = OPERATORS[op].factory(constant, CompileContext(today=AS_OF))
            accepted = [v for v in self.observed(path, scopes) if predicate(v)]
        accepted = sorted(accepted, key=str)
        return {"or": [{"type": "value", "key": key, "op": "in", "value": accepted},
                       {"type": "value", "key": key, "op": "intersect", "value": accepted}]}


_SEGMENT = re.compile(r'\["([^"]*)"\]|([^.\[\]]+)')
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def jmespath_key(path: str) -> str:
    """Our path (`facts.esxi_settings["Security.AccountUnlockTime"]`) as a JMESPath key: a
    segment that is no JMESPath identifier quoted (jmespath 1.1 refuses the brackets)."""
    segments = [quoted or plain for quoted, plain in _SEGMENT.findall(path)]
    return ".".join(s if _IDENTIFIER.fullmatch(s) else '"' + s.replace('"', '\\"') + '"' for s in segments)


def c7n_filters(context, resources: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], list]]:
    """(rule id, c7n filter data, candidate resources) for every compiled rule."""
    index = index_by_type(resources)
    translator = Translator(context, resources)
    translated = []
    for compiled in context.compiled:
        rule = compiled.rule
        scopes = list(candidates(compiled, index))
        match = translator.condition(rule.match, scopes, rule.id)
        data = {"and": [translator.condition(rule.where, scopes, rule.id), match]} if rule.where else match
        translated.append((rule.id, data, scopes))
    return translated, translator.approximated


def c7n_manager():
    from c7n.config import Config
    from c7n.filters.core import And, FilterRegistry, ListItemFilter, Not, Or, ValueFilter
    from c7n.output import NullTracer

    registry = FilterRegistry("auditor.bench")
    for name, cls in (("value", ValueFilter), ("and", And), ("or", Or), ("not", Not), ("list-item", ListItemFilter)):
        registry.register(name, cls)

    class Model:
        id = "id"
        name = "name"
        date = None
        dimension = None

    class Context:
        session_factory = None
        options = Config.empty()

    Context.tracer = NullTracer(Context())

    class Manager:
        filter_registry = registry
        data: dict[str, Any] = {}
        ctx = Context()

        def get_model(self):
            return Model

    return registry, Manager()


# --- runs -----------------------------------------------------------------------------------

def run_ours(rule_paths, resources):
    start = time.perf_counter()
    # the estate is the sample's, scaled: its zones and entitlements apply
    context = load_rule_context(rule_paths, [SAMPLE_BASELINE], AS_OF)
    compiled_at = time.perf_counter()
    # facts both engines read (zones, licence accounting): not part of either engine's time
    assign_zones(resources, context.baselines)
    account_hybrid_benefit(resources, context.baselines)
    evaluated_from = time.perf_counter()
    findings = evaluate(context.compiled, resources)
    end = time.perf_counter()
    index = index_by_type(resources)
    pairs = sum(sum(1 for _ in candidates(c, index)) for c in context.compiled)
    compile_s = compiled_at - start
    return context, findings, pairs, compile_s, compile_s + (end - evaluated_from)


def run_c7n(translated):
    registry, manager = c7n_manager()
    matched: dict[str, set] = {}
    start = time.perf_counter()
    for rule_id, data, scopes in translated:
        (compiled,) = registry.parse([data], manager)
        matched[rule_id] = {r["id"] for r in compiled.process(scopes)}
    return matched, time.perf_counter() - start


def run_scan_process(snapshot: Path, out: Path) -> tuple[float, float, int]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "auditor", "scan", "--snapshot", str(snapshot), "--out", str(out),
                             "--format", "json,sarif", "--as-of", AS_OF.isoformat(), "-q",
                             "--baseline", str(SAMPLE_BASELINE)],
                            capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"scan failed ({result.returncode}): {result.stderr.strip()}")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    findings = len(json.loads((out / "latest" / "findings.json").read_text())["findings"])
    return elapsed, peak_kib / 1024, findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=100_000)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    estate = build_estate(args.resources)
    resources = estate.resources
    print(f"estate: {len(resources):,} resources built in {time.perf_counter() - started:.1f} s")

    with tempfile.TemporaryDirectory() as tmp:
        snapshot = Path(tmp) / "estate.json.gz"
        save_snapshot(estate, snapshot)
        scan_seconds, scan_mib, scan_findings = run_scan_process(snapshot, Path(tmp) / "reports")

    derive_facts(resources)  # both engines read the same derived facts
    context, findings, pairs, compile_s, ours_s = run_ours(None, resources)
    translated, approximated = c7n_filters(context, resources)
    copies = copy.deepcopy(translated)  # c7n annotates resources it matches; keep ours clean
    matched, c7n_s = run_c7n(copies)

    ours_rate, c7n_rate = pairs / ours_s, pairs / c7n_s
    ratio = ours_rate / c7n_rate
    ours_ids = {}
    for finding in findings:
        ours_ids.setdefault(finding.rule_id, set()).add(finding.resource_id)
    differing = sorted(rule_id for rule_id, ids in matched.items() if ids != ours_ids.get(rule_id, set()))
    agree = len(matched) - len(differing)

    print(f"rules: {len(context.compiled)}; resource x rule evaluations: {pairs:,}")
    print(f"auditor engine: {ours_s:.3f} s (compile {compile_s * 1000:.1f} ms) = {ours_rate:,.0f} evaluations/s, "
          f"{len(findings):,} findings")
    print(f"c7n ValueFilter: {c7n_s:.3f} s = {c7n_rate:,.0f} evaluations/s "
          f"({len(approximated)} rules via `in` lists: {', '.join(sorted(approximated))})")
    print(f"same resources matched by both engines: {agree}/{len(matched)} rules"
          + (f" (differ: {', '.join(differing)})" if differing else ""))
    print(f"ratio auditor/c7n: {ratio:.1f}x (target >= 3)")
    print(f"full scan of {len(resources):,} resources (load, facts, evaluate, JSON + SARIF): "
          f"{scan_seconds:.2f} s, peak {scan_mib:,.0f} MiB, {scan_findings:,} findings "
          f"(targets: < 10 s, < 1024 MiB)")
    missed = [name for name, ok in (("ratio", ratio >= 3), ("time", scan_seconds < 10), ("memory", scan_mib < 1024))
              if not ok]
    if missed:
        print(f"missed targets: {', '.join(missed)}")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
