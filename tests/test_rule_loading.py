"""Rule files that break the format are refused at load time with `file:line: message`."""

from __future__ import annotations

import textwrap
from datetime import date

import pytest

from auditor.baselines import load_baselines
from auditor.bundled import bundled_baselines_dir, bundled_rules_dir
from auditor.engine.rules import compile_rules, load_rules
from auditor.errors import InputError, RuleError

GOOD = """\
rules:
  - id: X-001
    title: t
    severity: high
    category: other
    resource: azure:microsoft.network/routetables
    description: d
    remediation: r
    match: {path: a, op: eq, value: 1}
"""


def load(tmp_path, text, name="r.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_rules([path])


def error_of(tmp_path, text) -> str:
    with pytest.raises(InputError) as caught:
        load(tmp_path, text)
    return caught.value.one_line()


def replace(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


def test_good_file_loads(tmp_path):
    ruleset = load(tmp_path, GOOD)
    assert [r.id for r in ruleset.rules] == ["X-001"] and ruleset.rules[0].line == 2


@pytest.mark.parametrize("text, expected", [
    (replace("    match:", "    colour: red\n    match:"), "r.yaml:9: rule X-001: unknown key 'colour'"),
    (replace("op: eq", "op: equals"), "r.yaml:9: rule X-001: unknown operator 'equals'"),
    (replace("severity: high", "severity: urgent"), "r.yaml:4: rule X-001: severity 'urgent' is not one of"),
    (replace("category: other", "category: misc"), "r.yaml:5: rule X-001: category 'misc'"),
    (replace("id: X-001", "id: x_001"), "r.yaml:2: rule id 'x_001' must match [A-Z0-9-]+"),
    (replace("    remediation: r\n", ""), "r.yaml:2: rule X-001: missing required key 'remediation'"),
    (replace("resource: azure:microsoft.network/routetables", "resource: aws:ec2"), "r.yaml:6: rule X-001: resource 'aws:ec2'"),
    (replace("{path: a, op: eq, value: 1}", "{path: a, op: eq}"), "r.yaml:9: rule X-001: operator 'eq' needs a value"),
    (replace("{path: a, op: eq, value: 1}", "{path: a, op: present, value: 1}"), "r.yaml:9: rule X-001: operator 'present' takes no value"),
    (replace("{path: a, op: eq, value: 1}", "{path: a, op: regex, value: '(x'}"), "r.yaml:9: rule X-001: operator 'regex': invalid regular expression"),
    (replace("{path: a, op: eq, value: 1}", "{path: 'a..b', op: eq, value: 1}"), "r.yaml:9: rule X-001: cannot read path 'a..b'"),
    (replace("{path: a, op: eq, value: 1}", "{all: []}"), "r.yaml:9: rule X-001: 'all' needs a non-empty list"),
    (replace("{path: a, op: eq, value: 1}", "{any_item: {path: a}}"), "r.yaml:9: rule X-001: 'any_item' needs exactly 'path' and 'match'"),
    (replace("{path: a, op: eq, value: 1}", "{all: [{path: a, op: present}], not: {path: b, op: present}}"),
     "r.yaml:9: rule X-001: a condition holds exactly one of"),
    (replace("{path: a, op: eq, value: 1}", "{path: a, op: past_eol, value: 7}"), "r.yaml:9: rule X-001: operator 'past_eol' needs value {baseline: TABLE}"),
    (replace("{path: a, op: eq, value: 1}", "{path: a, op: version_lt, value: latest}"), "r.yaml:9: rule X-001: operator 'version_lt': needs a dotted version"),
    (GOOD + "    message: '{item.name}'\n", "r.yaml:10: rule X-001: message uses {item.name} but the rule has no any_item"),
    (GOOD + "    message: 'unclosed {name'\n", "r.yaml:10: rule X-001: message template"),
    (GOOD.replace("    title: t\n", "    title: t\n    title: u\n"), "r.yaml:4: duplicate key 'title' (first at line 3)"),
    (GOOD + "  - [not, a, mapping]\n", "r.yaml:10: each rule must be a mapping"),
    ("rules: [\n", "r.yaml:2: YAML syntax error"),
    ("rule:\n  - id: X\n", "r.yaml:1: a rule file needs a top-level 'rules:' list"),
    ("", "r.yaml:1: a rule file needs a top-level 'rules:' list"),
])
def test_broken_rule_files(tmp_path, text, expected):
    message = error_of(tmp_path, text)
    assert message.startswith(str(tmp_path / expected.split(":", 1)[0]) + ":" + expected.split(":", 1)[1]), message


def test_duplicate_id_across_files_names_both(tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(GOOD, encoding="utf-8")
    with pytest.raises(RuleError) as caught:
        load_rules([tmp_path])
    assert caught.value.one_line() == (f"{tmp_path / 'b.yaml'}:2: duplicate rule id X-001 "
                                       f"(first defined at {tmp_path / 'a.yaml'}:2)")


def test_missing_baseline_table_or_key_is_a_compile_error_naming_the_line(tmp_path):
    ruleset = load(tmp_path, replace("{path: a, op: eq, value: 1}", "{path: a, op: lt, value: {baseline: limits.nothing}}"))
    with pytest.raises(InputError) as caught:
        compile_rules(ruleset, load_baselines([bundled_baselines_dir()]), date(2026, 1, 1))
    assert caught.value.one_line().startswith(f"{tmp_path / 'r.yaml'}:9: rule X-001: no baseline table named 'limits.nothing'")
    ruleset = load(tmp_path, replace("{path: a, op: eq, value: 1}", "{path: a, op: lt, value: {baseline: support.minimum_versions.vcenter}}"))
    with pytest.raises(InputError) as caught:
        compile_rules(ruleset, load_baselines([bundled_baselines_dir()]), date(2026, 1, 1))
    assert "has no key 'vcenter'" in caught.value.one_line()


def test_broken_baseline_rows_name_file_and_line(tmp_path):
    baseline = tmp_path / "b.yaml"
    baseline.write_text("baselines:\n  lifecycle.esxi:\n    '7.0': {end_of_support: someday}\n", encoding="utf-8")
    from auditor.scan import load_rule_context

    # checked when the rules load, before any scan: the support stage reads every lifecycle table
    with pytest.raises(InputError) as caught:
        load_rule_context(None, [baseline], date(2026, 1, 1))
    assert caught.value.one_line().startswith(f"{baseline}:3: lifecycle table 'lifecycle.esxi' row '7.0': needs end_of_support")


def test_disabled_rules_load_but_do_not_compile(tmp_path):
    ruleset = load(tmp_path, GOOD + "    enabled: false\n")
    assert compile_rules(ruleset, load_baselines([]), date(2026, 1, 1)) == []


def test_shipped_packs_load_and_compile():
    from auditor.sample import SAMPLE_BASELINE

    ruleset = load_rules([bundled_rules_dir()])
    shipped = load_baselines([bundled_baselines_dir()])
    compiled = compile_rules(ruleset, shipped, date(2026, 11, 25))
    # only the rules that compare with the organisation's own tables wait for them
    waiting = {rule.id for rule in ruleset.rules if rule.requires}
    assert waiting == {"DR-VS-003", "DR-VS-004", "AZ-LIC-004", "AZ-LIC-005", "AZ-LIC-006", "AZ-LIC-007",
                       "AZ-NET-014", "HY-NET-001"}
    assert len(compiled) == len(ruleset.rules) - len(waiting) >= 60
    with_sample = load_baselines([bundled_baselines_dir(), SAMPLE_BASELINE])
    assert len(compile_rules(ruleset, with_sample, date(2026, 11, 25))) == len(ruleset.rules)


def test_a_rule_waits_for_the_baselines_it_requires(tmp_path, capsys):
    from auditor.cli import main
    from auditor.scan import load_rule_context
    from tests.conftest import AS_OF, rule_file, write

    rules = rule_file(tmp_path, """
        requires: [desired.dns_servers]
        match: {path: dns, op: ne, value: {baseline: desired.dns_servers}}
        message: "{name} uses {dns}"
        """)
    context = load_rule_context([rules], [], AS_OF, default_rules=False)
    assert context.compiled == [] and context.waiting == {"T-001": ["desired.dns_servers"]}
    mine = write(tmp_path, "mine.yaml", """
        baselines:
          desired.dns_servers: [10.0.0.53]
        """)
    context = load_rule_context([rules], [mine], AS_OF, default_rules=False)
    assert [c.rule.id for c in context.compiled] == ["T-001"] and context.waiting == {}
    assert main(["scan", "--rules", str(rules), "--out", str(tmp_path / "out"), "--no-history"]) == 0
    assert "not evaluated: waits for baseline table desired.dns_servers: declare it in a --baseline file: T-001" \
        in capsys.readouterr().out
    bad = rule_file(tmp_path, """
        requires: desired.dns_servers
        match: {path: dns, op: present}
        """)
    with pytest.raises(RuleError, match="'requires' must be a list"):
        load_rule_context([bad], [], AS_OF, default_rules=False)


def test_every_shipped_yaml_file_loads_the_same_without_libyaml():
    # PyYAML falls back to its pure-Python scanner where libyaml is missing, and that
    # scanner rejects some flow sequences libyaml accepts (an unquoted URL with a `?`)
    import yaml

    from tests.conftest import ROOT
    files = [*(ROOT / "rules").rglob("*.yaml"), *(ROOT / "examples").rglob("*.y*ml"),
             ROOT / "auditor" / "sample" / "baselines.yaml"]
    assert len(files) > 8
    for file in files:
        text = file.read_text(encoding="utf-8")
        # Kubernetes manifests hold several documents
        pure = list(yaml.load_all(text, Loader=yaml.SafeLoader))
        if hasattr(yaml, "CSafeLoader"):
            assert list(yaml.load_all(text, Loader=yaml.CSafeLoader)) == pure, file
