"""Fuzzing the whole pipeline from the command line: a previous scan (`--compare`), saved
findings (`report --from`) and waivers of any shape, every value of the wrong type, a
lone surrogate, a huge number. The command answers with a documented exit code and, on
bad input, one line per problem naming the file: never a traceback."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.cli import main
from auditor.snapshot import Snapshot, Source, make_resource, save_snapshot

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
HOSTILE = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70), st.floats(allow_nan=False),
                    st.text(max_size=8), st.sampled_from(["\ud800", "9" * 5000, "2027-01-01Tgarbage", "²", "*", "",
                                                          "\x1b[2J::error::x", "latest"]),
                    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
RULE = """rules:
  - id: F-001
    title: fuzz
    severity: high
    category: other
    resource: azure:microsoft.network/routetables
    description: d
    remediation: r
    match: {path: properties.open, op: eq, value: true}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A tiny estate and rule, and a valid findings.json of it to mutate."""
    root = tmp_path_factory.mktemp("pipeline")
    resources = [make_resource(id=f"/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/routeTables/t{i}",
                               name=f"t{i}", cloud="azure", type="microsoft.network/routetables", source="s",
                               native={"properties": {"open": i % 2 == 0}}) for i in range(4)]
    save_snapshot(Snapshot("2026-11-20T00:00:00Z", [Source("s", "azure", "subscription")], resources),
                  root / "estate.json")
    (root / "rule.yaml").write_text(RULE)
    assert main(["scan", *base(root), "-o", str(root / "first"), "-q"]) == 0
    return root, json.loads((root / "first" / "latest" / "findings.json").read_text())


def base(root: Path) -> list[str]:
    return ["scan", "--snapshot", str(root / "estate.json"), "--no-default-rules", "--rules", str(root / "rule.yaml"),
            "--no-history", "--as-of", "2026-11-25"][1:]


def paths_of(document, prefix=()):
    """Every path into a JSON document, for mutation."""
    yield prefix
    if isinstance(document, dict):
        for key, value in document.items():
            yield from paths_of(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from paths_of(value, (*prefix, index))


def mutated(document, path, value):
    copied = copy.deepcopy(document)
    if not path:
        return value
    target = copied
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copied


def write_json(path: Path, document) -> None:
    # surrogates and huge numbers as JSON text can write them; the reader must cope
    path.write_text(json.dumps(document, ensure_ascii=True), encoding="utf-8")


def assert_one_line_errors(code: int, err: str, name: str) -> None:
    assert code in (0, 1, 2), (code, err)
    assert "Traceback" not in err
    if code == 2:
        lines = err.strip().splitlines()
        assert lines and all(line.startswith("auditor: error: ") for line in lines), err
        assert name in lines[0], err


@SETTINGS
@given(data=st.data())
def test_a_previous_scan_of_any_shape(site, capsys, data):
    root, document = site
    path = data.draw(st.sampled_from(list(paths_of(document))))
    previous = root / "previous.json"
    write_json(previous, mutated(document, path, data.draw(HOSTILE)))
    code = main(["scan", *base(root), "-o", str(root / "out"), "-q", "--compare", str(previous)])
    assert_one_line_errors(code, capsys.readouterr().err, "previous.json")


@SETTINGS
@given(data=st.data())
def test_report_from_saved_findings_of_any_shape(site, capsys, data):
    root, document = site
    path = data.draw(st.sampled_from(list(paths_of(document))))
    saved = root / "saved.json"
    write_json(saved, mutated(document, path, data.draw(HOSTILE)))
    fmt = data.draw(st.sampled_from(["html", "sarif", "junit", "json", "csv"]))
    code = main(["report", "--from", str(saved), "-f", fmt, "-o", str(root / f"again.{fmt}")])
    assert_one_line_errors(code, capsys.readouterr().err, "saved.json")


WAIVER_KEYS = ["rule", "resource", "reason", "owner", "expires", "ticket", "extra"]


@SETTINGS
@given(entries=st.lists(st.dictionaries(st.sampled_from(WAIVER_KEYS), HOSTILE, max_size=7), max_size=3),
       top=st.sampled_from(["waivers", "waiver", None]))
def test_waivers_of_any_shape(site, capsys, entries, top):
    root, _ = site
    waivers = root / "waivers.yaml"
    write_json(waivers, {top: entries} if top else entries)  # JSON is YAML
    code = main(["scan", *base(root), "-o", str(root / "out"), "-q", "--waivers", str(waivers)])
    assert_one_line_errors(code, capsys.readouterr().err, "waivers.yaml")


@pytest.fixture(scope="module")
def estate_slice(tmp_path_factory):
    """A few resources of every type of the sample, as a snapshot document to mutate: every
    shipped rule and fact stage sees them."""
    from auditor.sample import SAMPLE_SNAPSHOT

    document = json.loads(SAMPLE_SNAPSHOT.read_text())
    kept, per_type = [], {}
    for resource in document["resources"]:
        per_type[resource["type"]] = per_type.get(resource["type"], 0) + 1
        if per_type[resource["type"]] <= 2:
            kept.append(resource)
    document["resources"] = kept
    return tmp_path_factory.mktemp("estate"), document


@SETTINGS
@given(data=st.data())
def test_a_snapshot_of_any_shape(estate_slice, capsys, data):
    # any field of any resource (names, versions, ports, prefixes, facts) replaced by a
    # hostile value: the scan evaluates it or refuses the file in one line
    root, document = estate_slice
    path = data.draw(st.sampled_from([p for p in paths_of(document) if len(p) >= 3 and p[0] == "resources"]))
    snapshot = root / "odd.json"
    write_json(snapshot, mutated(document, path, data.draw(HOSTILE)))
    code = main(["scan", "--snapshot", str(snapshot), "--no-history", "--as-of", "2026-11-25", "-o",
                 str(root / "out"), "-q"])
    assert_one_line_errors(code, capsys.readouterr().err, "odd.json")


@SETTINGS
@given(data=st.data())
def test_a_previous_sarif_of_any_shape(site, capsys, data):
    root, _ = site
    sarif = json.loads((root / "first" / "latest" / "results.sarif").read_text())
    path = data.draw(st.sampled_from(list(paths_of(sarif))))
    previous = root / "previous.sarif"
    write_json(previous, mutated(sarif, path, data.draw(HOSTILE)))
    code = main(["scan", *base(root), "-o", str(root / "out"), "-q", "--compare", str(previous)])
    assert_one_line_errors(code, capsys.readouterr().err, "previous.sarif")
