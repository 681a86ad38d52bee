"""Hostile input: bounded in time and memory, never a traceback, nothing forged.

Snapshots carry names anyone who can create a VM or a tag controls, and rule, waiver and
baseline files come from pull requests. Each case here once hung, exhausted memory,
crashed or forged output (see issue "Hostile input and faults"); each must now end with a
documented exit code and, on bad input, one line naming the file."""

from __future__ import annotations

import copy
import gzip
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from auditor.baselines import load_baselines
from auditor.bundled import bundled_baselines_dir
from auditor.cli import main
from auditor.engine.operators import OPERATORS, CompileContext
from auditor.facts import os_product
from auditor.patterns import fullmatch, glob
from auditor.sample import SAMPLE_BASELINE, SAMPLE_SNAPSHOT
from auditor.scan import evaluate_snapshot, load_rule_context
from auditor.snapshot import load_snapshot
from tests.conftest import AS_OF, ROOT

ARGS = ["--as-of", AS_OF.isoformat(), "--no-history"]
FORGED = "evil\n::error title=auditor::all clear, gate passed\r\x1b[2J\x07\u202e"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def auditor(*argv: str, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The real command in its own process: a regression may hang or crash the interpreter."""
    return subprocess.run([sys.executable, "-m", "auditor", *argv], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, errors="replace")


def one_line_error(result: subprocess.CompletedProcess, *expected: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("auditor: error:")]
    assert len(errors) == 1, result.stderr
    for text in expected:
        assert text in errors[0], errors[0]


def sample_document() -> dict:
    return json.loads(SAMPLE_SNAPSHOT.read_text())


def save(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document))
    return path


# --- YAML: alias bombs and nesting -----------------------------------------------------------

BOMB = "".join(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9 if prev else ['lol'] * 9)}]\n"
               for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True))


@pytest.mark.parametrize("option, body", [
    ("--rules", BOMB + "rules: []\n"),
    ("--waivers", BOMB + "waivers: []\n"),
    ("--baseline", BOMB + "baselines: {}\n"),
])
def test_a_yaml_alias_bomb_is_refused_at_once(workdir, option, body):
    # nine levels of nine aliases: 387 million nodes once expanded, in 250 bytes
    (workdir / "bomb.yaml").write_text(body)
    started = time.monotonic()
    result = auditor("scan", *ARGS, option, "bomb.yaml", timeout=60)
    one_line_error(result, "bomb.yaml:", "aliases expand to more than 100,000 nodes")
    assert time.monotonic() - started < 30


def test_merge_keys_of_an_ordinary_rule_pack_still_load(workdir):
    first = """rules:
  - &first
    id: M-000
    title: t
    severity: low
    category: other
    resource: azure:microsoft.network/routetables
    description: d
    remediation: r
    match: {path: properties.open, op: eq, value: true}
"""
    others = "".join(f"  - <<: *first\n    id: M-{i:03}\n" for i in range(1, 300))
    (workdir / "merged.yaml").write_text(first + others)
    assert main(["rules", "validate", "merged.yaml"]) == 0


def test_yaml_nested_thirty_thousand_deep_is_an_error_not_a_crash(workdir):
    (workdir / "deep.yaml").write_text("rules: " + "[" * 30_000 + "]" * 30_000 + "\n")
    result = auditor("rules", "validate", "deep.yaml")
    one_line_error(result, "deep.yaml:1:", "nested more than 100 levels deep")


# --- snapshots: size, gzip bombs, special files ----------------------------------------------

def test_a_gzip_bomb_stops_at_the_size_limit(workdir):
    # 64 MiB of one JSON string in 64 KiB of gzip: refused after the limit, not after memory
    document = b'{"kind": "auditor.snapshot", "pad": "' + b"0" * (64 << 20) + b'"}'
    (workdir / "bomb.json.gz").write_bytes(gzip.compress(document, compresslevel=9))
    assert (workdir / "bomb.json.gz").stat().st_size < 1 << 20
    for how in (["--max-input-size", "8M"], []):
        env = {} if how else {"AUDITOR_MAX_INPUT_SIZE": "8M"}
        result = auditor("scan", *ARGS, "--snapshot", "bomb.json.gz", *how, env=env)
        one_line_error(result, "bomb.json.gz:", "snapshot (decompressed) is larger than the limit of 8 MiB",
                       "--max-input-size")
    assert not (workdir / "reports" / "latest").exists()  # no report of a snapshot that was not read


def test_a_plain_snapshot_over_the_limit_is_refused_before_it_is_read(workdir):
    save(workdir / "big.json", sample_document())
    result = auditor("scan", *ARGS, "--snapshot", "big.json", "--max-input-size", "100K")
    one_line_error(result, "big.json:", "larger than the limit of 100 KiB")
    # the same file within the limit scans
    assert auditor("scan", *ARGS, "--snapshot", "big.json", "--max-input-size", "1M", "-q").returncode == 0


def test_the_size_limit_takes_sizes_people_write():
    from auditor.files import DEFAULT_INPUT_LIMIT
    from auditor.options import as_size

    assert DEFAULT_INPUT_LIMIT == 2 << 30
    assert [as_size(t) for t in ("2G", "512M", "100k", "1GiB", "4096")] == [2 << 30, 512 << 20, 100 << 10, 1 << 30,
                                                                            4096]
    for bad in ("", "G", "-1", "1.5G", "²M", "0"):
        with pytest.raises(ValueError):
            as_size(bad)


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_special_files_are_refused_without_reading(workdir, kind):
    target = {"fifo": workdir / "pipe", "device": Path("/dev/zero"), "directory": workdir / "folder"}[kind]
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "directory":
        target.mkdir()
    # a FIFO with no writer used to hang the scan; /dev/zero used to fill memory
    for argv in (["scan", *ARGS, "--snapshot", str(target)], ["scan", *ARGS, "--rules", str(target) + "/x.yaml"]
                 if kind == "directory" else ["scan", *ARGS, "--waivers", str(target)],
                 ["diff", str(target), str(SAMPLE_SNAPSHOT)], ["report", "--from", str(target), "-f", "html"]):
        result = auditor(*argv, timeout=30)
        assert result.returncode == 2 and "Traceback" not in result.stderr, (argv, result.stderr)
        assert str(target) in result.stderr


# --- linear time over names of any length ------------------------------------------------------

def _timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


HOSTILE_SHAPES = ("ubuntu", "a", "1.", "-", "*", "9", "windows server ", "rhel ", "suse linux enterprise ", "é")


def _hostile(length: int) -> list[str]:
    # the repeated unit ends without the digits a pattern hunts for, so nothing matches
    # early; a trailing `!` defeats anchored patterns
    return [(shape * (length // len(shape) + 1))[:length] + "!" for shape in HOSTILE_SHAPES]


def _os_detection(texts: list[str]) -> None:
    for text in texts:
        os_product.__wrapped__(text)


def _user_patterns(texts: list[str]) -> None:
    context = CompileContext(AS_OF)
    catastrophic = OPERATORS["regex"].factory(r"^([a-z0-9]+-?)+$", context)  # 52 s on 29 characters with `re`
    evil_glob = OPERATORS["glob"].factory("*a*a*a*a*a*a*a*a*b", context)
    ports = OPERATORS["port_overlaps"].factory(3389, context)
    versions = OPERATORS["version_lt"].factory("8.0.3", context)
    dates = OPERATORS["date_before"].factory("2027-01-01", context)
    cidrs = OPERATORS["cidr_overlaps"].factory("10.0.0.0/8", context)
    for text in texts:
        for predicate in (catastrophic, evil_glob, ports, versions, dates, cidrs):
            predicate(text)


def _waiver_globs(texts: list[str]) -> None:
    for text in texts:
        fullmatch(glob("*a*a*a*a*a*a*a*b"), text)
        fullmatch(glob("/subscriptions/*/resourceGroups/*-prod-*/*"), text)


@pytest.mark.parametrize("stage", [_os_detection, _user_patterns, _waiver_globs])
def test_every_pattern_is_linear_in_the_length_of_a_name(stage):
    # a ratio, not a wall-clock limit: ten times the text may take about ten times as long
    # (quadratic would be a hundred); the absolute bound only catches a hang
    stage(_hostile(1_000))  # warm caches and compiled patterns
    short = min(_timed(stage, _hostile(10_000)) for _ in range(3))
    long = min(_timed(stage, _hostile(100_000)) for _ in range(2))
    assert long < 5.0, f"{stage.__name__}: {long:.2f} s for 100,000-character names"
    assert long < max(short, 0.002) * 40, f"{stage.__name__}: {short:.4f} s -> {long:.4f} s"


def test_a_whole_scan_of_hundred_thousand_character_values_is_bounded():
    # every text of the sample estate replaced by long hostile text, through every shipped
    # rule and fact stage; OS descriptions and names get the shapes patterns hunt for
    def scan_with(length: int) -> float:
        snapshot = load_snapshot(SAMPLE_SNAPSHOT)
        texts = _hostile(length)

        def poison(value, counter=[0]):  # noqa: B006 - a running index across the walk
            if isinstance(value, dict):
                return {k: (v if k in ("id", "cloud", "type", "source") else poison(v)) for k, v in value.items()}
            if isinstance(value, list):
                return [poison(v) for v in value]
            if isinstance(value, str):
                counter[0] += 1
                return texts[counter[0] % len(texts)]
            return value
        snapshot.resources = [poison(resource) for resource in snapshot.resources]
        context = load_rule_context(None, [SAMPLE_BASELINE], AS_OF)
        return _timed(evaluate_snapshot, snapshot, context, AS_OF)
    short = scan_with(1_000)
    long = scan_with(100_000)
    assert long < 60, f"{long:.1f} s"
    assert long < max(short, 0.05) * 150, f"{short:.2f} s -> {long:.2f} s"


def test_a_rule_regex_that_needs_backtracking_is_refused_at_load(workdir):
    (workdir / "r.yaml").write_text("""rules:
  - id: X-001
    title: t
    severity: low
    category: other
    resource: azure:microsoft.network/routetables
    description: d
    remediation: r
    match: {path: name, op: regex, value: '^(a)\\1$'}
""")
    result = auditor("rules", "validate", "r.yaml")
    assert result.returncode == 2 and "r.yaml:9:" in result.stderr and "backreferences" in result.stderr
    assert "re2.cc" not in result.stderr  # RE2's own log line stays out of the user's terminal


def test_shipped_lifecycle_globs_still_match():
    tables = load_baselines([bundled_baselines_dir()]).tables
    assert tables  # the shipped tables loaded through the linear glob translation


# --- output a name cannot forge ----------------------------------------------------------------

def test_a_name_cannot_forge_lines_in_a_ci_log_or_break_xml(workdir):
    document = sample_document()
    targets = [r for r in document["resources"] if r["type"] in ("VirtualMachine", "microsoft.network/networksecuritygroups")]
    for resource in targets:
        resource["name"] = FORGED + resource["name"]
        resource.setdefault("tags", {})["owner"] = FORGED
    save(workdir / "forged.json", document)
    outputs = []
    for argv in (["scan", *ARGS, "--snapshot", "forged.json", "--fail-on", "high"],
                 ["scan", *ARGS, "--snapshot", "forged.json", "-o", "-", "-f", "csv"],
                 ["diff", str(SAMPLE_SNAPSHOT), "forged.json"]):
        result = auditor(*argv)
        assert result.returncode in (0, 1), result.stderr
        outputs.append(result.stdout + result.stderr)
    for text in outputs:
        for line in text.splitlines():
            assert not line.startswith("::"), line
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text and "\r" not in text
    assert "evil\\x0a::error" in outputs[0]  # shown, escaped: the reader still sees what the name holds
    junit = (workdir / "reports" / "latest" / "junit.xml").read_bytes()
    ET.fromstring(junit)  # control bytes once made this unreadable XML
    assert b"\x1b" not in junit and b"\x07" not in junit
    sarif = json.loads((workdir / "reports" / "latest" / "results.sarif").read_text())
    assert any("evil" in r["message"]["text"] for run in sarif["runs"] for r in run["results"])


# --- values of the wrong shape: exit codes, never tracebacks -----------------------------------

def _first(document: dict, type_name: str) -> dict:
    return next(r for r in document["resources"] if r["type"] == type_name)


def _nsg_port(document: dict, value) -> None:
    rule = _first(document, "microsoft.network/networksecuritygroups")["properties"]["securityRules"][0]
    rule["properties"]["destinationPortRange"] = value


CASES = {
    "facts not an object": (lambda d: d["resources"][0].__setitem__("facts", "x"), 2, "facts must be an object"),
    "superscript build": (lambda d: _first(d, "HostSystem")["summary"]["config"]["product"].__setitem__("build", "²"),
                          None, None),
    "superscript port": (lambda d: _nsg_port(d, "²"), None, None),
    "arabic-indic port": (lambda d: _nsg_port(d, "٣٣٨٩"), None, None),
    "superscript version": (lambda d: _first(d, "HostSystem")["summary"]["config"]["product"].__setitem__(
        "version", "8.²"), None, None),
    "lone surrogate in a name": (lambda d: d["resources"][3].__setitem__("name", "\ud800vm"), None, None),
    "lone surrogate in a tag key": (lambda d: d["resources"][3]["tags"].__setitem__("\udfff", "x"), None, None),
}


@pytest.mark.parametrize("case", CASES)
def test_values_of_any_shape_end_in_an_exit_code(workdir, case):
    change, code, message = CASES[case]
    document = sample_document()
    change(document)
    # ensure_ascii keeps a lone surrogate as its `\ud800` escape, as a hostile writer would
    (workdir / "odd.json").write_text(json.dumps(document, ensure_ascii=True))
    result = auditor("scan", *ARGS, "--snapshot", "odd.json")
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    if code is None:
        assert result.returncode in (0, 1), result.stderr
        json.loads((workdir / "reports" / "latest" / "findings.json").read_text())
        ET.fromstring((workdir / "reports" / "latest" / "junit.xml").read_bytes())
    else:
        one_line_error(result, "odd.json:", message)


def test_an_integer_of_five_thousand_digits(workdir):
    text = SAMPLE_SNAPSHOT.read_text().replace('"resources":', '"padding": ' + "9" * 5000 + ', "resources":', 1)
    (workdir / "big.json").write_text(text)
    one_line_error(auditor("scan", *ARGS, "--snapshot", "big.json"), "big.json:", "4300 digits")
    (workdir / "big.yaml").write_text("waivers:\n  - rule: " + "9" * 5000 + "\n")
    one_line_error(auditor("scan", *ARGS, "--waivers", "big.yaml"), "big.yaml:", "4300 digits")


@pytest.mark.parametrize("as_of", ["9999-12-31", "0001-01-01"])
def test_the_ends_of_the_calendar_are_dates_to_scan_as_of(workdir, as_of):
    result = auditor("scan", "--as-of", as_of, "--no-history", "-q")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]


def test_a_waiver_expiry_with_garbage_after_the_date_is_refused(workdir):
    (workdir / "w.yaml").write_text("""waivers:
  - rule: AZ-NET-001
    resource: '*'
    reason: accepted
    owner: secops
    expires: '2027-01-01Tgarbage'
""")
    one_line_error(auditor("scan", *ARGS, "--waivers", "w.yaml"), "w.yaml:6:", "expires")


@pytest.mark.parametrize("rule, resource", [("*", "*"), ("?*", "**")])
def test_a_blanket_waiver_is_reported_everywhere(workdir, rule, resource):
    (workdir / "w.yaml").write_text(f"""waivers:
  - rule: '{rule}'
    resource: '{resource}'
    reason: quiet please
    owner: someone
    expires: '2027-01-01'
""")
    result = auditor("scan", *ARGS, "--waivers", "w.yaml")
    assert result.returncode == 0
    assert "waives every rule on every resource" in result.stderr
    findings = json.loads((workdir / "reports" / "latest" / "findings.json").read_text())
    assert "waives every rule on every resource" in findings["waivers"][0]["warning"]
    assert "waives every rule on every resource" in (workdir / "reports" / "latest" / "report.html").read_text()


def test_a_waiver_for_most_findings_is_reported_as_broad(workdir):
    (workdir / "w.yaml").write_text("""waivers:
  - rule: '*-SUP-*'
    resource: '*'
    reason: quiet please
    owner: someone
    expires: '2027-01-01'
""")
    result = auditor("scan", *ARGS, "--waivers", "w.yaml")
    assert "narrow it to the resources whose risk was accepted" in result.stderr
    # a narrow waiver is not
    (workdir / "w.yaml").write_text(
        (workdir / "w.yaml").read_text().replace("'*-SUP-*'", "AZ-NET-001").replace("'*'", "'*nsg-web*'"))
    assert "narrow it" not in auditor("scan", *ARGS, "--waivers", "w.yaml").stderr


def test_previous_scans_of_the_wrong_shape_are_one_line_errors(workdir):
    assert auditor("scan", *ARGS, "-q").returncode == 0
    good = json.loads((workdir / "reports" / "latest" / "findings.json").read_text())
    for mutate in (lambda d: d.__setitem__("findings", "x"), lambda d: d["findings"][0].__setitem__("severity", 7),
                   lambda d: d.__setitem__("rules", [None]), lambda d: d["findings"][0].__setitem__("evidence", 3)):
        document = copy.deepcopy(good)
        mutate(document)
        (workdir / "prev.json").write_text(json.dumps(document))
        for argv in (["scan", *ARGS, "--compare", "prev.json", "-o", "again"],
                     ["report", "--from", "prev.json", "-f", "html", "-o", "r.html"]):
            result = auditor(*argv)
            assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
            assert "prev.json" in result.stderr
    # SARIF of another shape than ours
    (workdir / "prev.sarif").write_text(json.dumps({"version": "2.1.0", "runs": [None, 3]}))
    result = auditor("scan", *ARGS, "--compare", "prev.sarif", "-o", "again")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]


def test_readme_documents_the_limits():
    readme = (ROOT / "README.md").read_text()
    for text in ("--max-input-size", "100 levels", "100,000 nodes", "named pipe", "RE2"):
        assert text in readme, text


def test_a_bug_of_ours_is_one_line_with_its_own_exit_code():
    crash = ("import auditor.cli as cli\n"
             "def broken():\n    raise RuntimeError('oops\\n::error::forged')\n"
             "cli.main = broken\ncli.run()\n")
    result = subprocess.run([sys.executable, "-c", crash], capture_output=True, text=True, timeout=60)
    assert result.returncode == 70 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "internal error" in result.stderr and "\\x0a::error" in result.stderr
    shown = subprocess.run([sys.executable, "-c", crash], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "AUDITOR_TRACEBACK": "1"})
    assert "Traceback" in shown.stderr and shown.returncode == 1


# --- what an attacker found next ------------------------------------------------------------

@pytest.mark.parametrize("kind, option", [("fifo", "--rules"), ("fifo", "--baseline"), ("zero", "--rules"),
                                          ("zero", "--baseline")])
def test_special_files_inside_a_rule_or_baseline_folder(workdir, kind, option):
    folder = workdir / "folder"
    folder.mkdir()
    if option == "--rules":
        (folder / "mine.yaml").write_text((ROOT / "rules" / "drift.yaml").read_text().replace("DR-", "XX-"))
    else:
        (folder / "mine.yaml").write_text("baselines:\n  my.table: [1]\n")
    if kind == "fifo":
        os.mkfifo(folder / "evil.yaml")
    else:
        (folder / "evil.yaml").symlink_to("/dev/zero")
    result = auditor("scan", *ARGS, option, "folder", timeout=60)
    one_line_error(result, "evil.yaml", "not a regular file")


def test_dense_json_is_refused_before_it_takes_gigabytes(workdir):
    pad = b"[]," * (20 << 20)  # 60 MiB of empty lists: ~1.2 GiB once parsed
    document = b'{"kind":"auditor.snapshot","schema_version":1,"collected_at":"x","sources":[],"resources":[],' \
               b'"pad":[' + pad + b'[]]}'
    (workdir / "amp.json.gz").write_bytes(gzip.compress(document, compresslevel=6))
    started = time.monotonic()
    one_line_error(auditor("scan", *ARGS, "--snapshot", "amp.json.gz"), "amp.json.gz:", "far denser than any inventory")
    assert time.monotonic() - started < 30


def test_a_yaml_file_of_a_million_values_is_refused(workdir):
    (workdir / "w.yaml").write_text("waivers: [" + "1," * 1_100_000 + "1]\n")
    one_line_error(auditor("scan", *ARGS, "--waivers", "w.yaml", timeout=120), "w.yaml:", "more than 1,000,000 values")


@pytest.mark.parametrize("count, refused", [(101, True), (99, False)])
def test_empty_collections_count_as_values(monkeypatch, count, refused):
    """`- []` a million times builds nearly 2 GB and holds no scalar: the count of values
    must include collections (the document itself is one more)."""
    from auditor import yamlfile
    from auditor.errors import InputError

    monkeypatch.setattr(yamlfile, "MAX_NODES", 100)
    text = "- []\n" * count
    if refused:
        with pytest.raises(InputError, match="more than 100 values"):
            yamlfile.check_shape(text, "w.yaml")
    else:
        yamlfile.check_shape(text, "w.yaml")


def test_a_huge_name_on_many_items_keeps_reports_small(workdir):
    document = sample_document()
    nsg = next(r for r in document["resources"] if r["name"] == "nsg-legacy-ftp")
    nsg["name"] = "n" * 100_000
    rule = nsg["properties"]["securityRules"][0]
    nsg["properties"]["securityRules"] = [dict(rule, name=f"{'r' * 100_000}{i}") for i in range(300)]
    save(workdir / "big-names.json", document)
    result = auditor("scan", *ARGS, "--snapshot", "big-names.json", "-q", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    size = sum(f.stat().st_size for f in (workdir / "reports" / "latest").resolve().iterdir())
    assert size < 30 << 20, size  # 300 items x 100,000 characters each would be gigabytes
    findings = json.loads((workdir / "reports" / "latest" / "findings.json").read_text())["findings"]
    assert all(len(f["message"]) <= 5000 and len(f["resource_name"]) < 1100 for f in findings)
    keys = [f["item_key"] for f in findings if f["rule_id"] == "AZ-NET-015" and f["resource_id"] == nsg["id"]]
    assert len(keys) == len(set(keys))  # shortened keys stay distinct


@pytest.mark.parametrize("limit", ["1T", "64T"])
def test_a_large_size_limit_reserves_no_memory(workdir, limit):
    result = auditor("scan", *ARGS, "--snapshot", str(SAMPLE_SNAPSHOT), "--max-input-size", limit, "-q")
    assert result.returncode == 0, result.stderr[-2000:]


def _estate_with(change) -> dict:
    document = sample_document()
    change(document)
    return document


def _option(document: dict, value) -> None:
    host = _first(document, "HostSystem")
    host["config"]["option"] = [{"key": "UserVars.ESXiShellTimeOut", "value": value}]


def _nested(depth: int, inner) -> list:
    value = inner
    for _ in range(depth):
        value = [value]
    return value


SNAPSHOT_SHAPES = {
    "integer past 64 bits": lambda d: _option(d, 99999999999999999999),
    "CPU packages of 2**63-1": lambda d: _first(d, "HostSystem")["summary"]["hardware"].__setitem__("numCpuPkgs",
                                                                                                  2 ** 63 - 1),
    "a value nested 300 deep": lambda d: _option(d, _nested(300, 1)),
    "a surrogate nested 500 deep": lambda d: _option(d, _nested(500, "\ud800")),
    "security rules that are a number": lambda d: _first(d, "microsoft.network/networksecuritygroups")[
        "properties"].__setitem__("securityRules", 1),
    "subnets that are true": lambda d: _first(d, "microsoft.network/virtualnetworks")["properties"].__setitem__(
        "subnets", True),
}


@pytest.mark.parametrize("shape", SNAPSHOT_SHAPES)
def test_snapshot_values_that_once_crashed_the_scan(workdir, shape):
    (workdir / "odd.json").write_text(json.dumps(_estate_with(SNAPSHOT_SHAPES[shape]), ensure_ascii=True))
    for argv in (["scan", *ARGS, "--snapshot", "odd.json", "--baseline", str(SAMPLE_BASELINE), "-q"],
                 ["diff", "-f", "json", str(SAMPLE_SNAPSHOT), "odd.json"]):
        result = auditor(*argv)
        assert result.returncode in (0, 1, 2) and "internal error" not in result.stderr, (argv, result.stderr[-2000:])


def test_a_rule_constant_past_64_bits(workdir):
    (workdir / "r.yaml").write_text("""rules:
  - id: BIG-001
    title: t
    severity: low
    category: other
    resource: vsphere:HostSystem
    description: d
    remediation: r
    match: {path: name, op: ne, value: 99999999999999999999999}
""")
    result = auditor("scan", *ARGS, "--rules", "r.yaml", "-q")
    assert result.returncode == 0 and "internal error" not in result.stderr, result.stderr[-2000:]


@pytest.mark.parametrize("file, text, message", [
    ("w.yaml", "waivers:\n  - {rule: X, resource: '[z-a]*', reason: r, owner: o, expires: '2027-01-01'}\n",
     "not a usable glob"),
    ("b.yaml", "baselines:\n  network.zones:\n    pci: {vm_names: ['[z-a]']}\n", "network.zones.pci"),
])
def test_globs_that_cannot_compile_are_input_errors(workdir, file, text, message):
    (workdir / file).write_text(text)
    option = "--waivers" if file == "w.yaml" else "--baseline"
    one_line_error(auditor("scan", *ARGS, option, file), file, message)


REPORT_SHAPES = {
    "history entry empty": lambda d: d.__setitem__("history", [{}]),
    "history count as text": lambda d: d.__setitem__("history", [{"id": 1, "scanned_at": "x", "critical": "x",
                                                                   "high": 0, "medium": 0, "low": 0, "info": 0,
                                                                   "total": 0}]),
    "rule severity unknown": lambda d: d["rules"][0].__setitem__("severity", "x"),
    "suppression without its fields": lambda d: d["findings"][0].__setitem__("suppression", {"a": 1}),
    "waivers of the wrong shape": lambda d: d.__setitem__("waivers", [{}]),
    "source details not an object": lambda d: d["snapshot"]["sources"][0].__setitem__("details", 3),
}


@pytest.mark.parametrize("shape", REPORT_SHAPES)
@pytest.mark.parametrize("fmt", ["html", "sarif", "junit"])
def test_saved_findings_of_a_wrong_shape(workdir, shape, fmt):
    assert auditor("scan", *ARGS, "-q").returncode == 0
    document = json.loads((workdir / "reports" / "latest" / "findings.json").read_text())
    REPORT_SHAPES[shape](document)
    (workdir / "saved.json").write_text(json.dumps(document))
    result = auditor("report", "--from", "saved.json", "-f", fmt, "-o", f"out.{fmt}")
    assert result.returncode == 2 and "saved.json" in result.stderr, result.stderr[-2000:]


def test_junit_from_saved_findings_stays_xml(workdir):
    assert auditor("scan", *ARGS, "-q").returncode == 0
    document = json.loads((workdir / "reports" / "latest" / "findings.json").read_text())
    document["scanned_at"] = "2026\x01-12-06"
    document["rules"][0]["category"] = "cat\x01"
    (workdir / "saved.json").write_text(json.dumps(document))
    assert auditor("report", "--from", "saved.json", "-f", "junit", "-o", "j.xml").returncode == 0
    ET.fromstring((workdir / "j.xml").read_bytes())


def test_a_file_name_that_is_not_utf8(workdir):
    (workdir / "w.yaml").write_text("waivers:\n  - {rule: X-1, resource: '*vm*', reason: r, owner: o, "
                                    "expires: '2099-01-01'}\n")
    odd = os.fsencode(str(workdir)) + b"/w\xff.yaml"
    os.rename(workdir / "w.yaml", odd)
    result = subprocess.run([sys.executable, "-m", "auditor", "scan", *ARGS, "--waivers", odd, "-q"],
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "\ufffd" in json.loads((workdir / "reports" / "latest" / "findings.json").read_text())["waivers"][0]["file"]


def test_a_history_edited_by_hand(workdir):
    assert auditor("scan", "--as-of", AS_OF.isoformat(), "-q").returncode == 0
    import sqlite3
    with sqlite3.connect(workdir / "reports" / "history.db") as db:
        db.execute("UPDATE scans SET critical = 'x', sources = '['")
    one_line_error(auditor("scan", "--as-of", AS_OF.isoformat(), "-q"), "history.db", "not numbers")
    one_line_error(auditor("history"), "history.db", "unreadable sources")


@pytest.mark.parametrize("argv", [["diff", str(SAMPLE_SNAPSHOT), str(SAMPLE_SNAPSHOT), "-o", "adir"],
                                  ["rules", "list", "-o", "adir"],
                                  ["rules", "list", "-o", "/proc/self/none/x"]])
def test_an_output_that_cannot_be_written(workdir, argv):
    (workdir / "adir").mkdir()
    result = auditor(*argv)
    assert result.returncode == 2 and "internal error" not in result.stderr, result.stderr


def test_diff_never_writes_over_a_snapshot_it_compares(workdir):
    save(workdir / "new.json", sample_document())
    before = (workdir / "new.json").read_bytes()
    one_line_error(auditor("diff", str(SAMPLE_SNAPSHOT), "new.json", "-o", "new.json"), "refusing to overwrite")
    assert (workdir / "new.json").read_bytes() == before


def test_an_empty_format_list_writes_nothing(workdir):
    one_line_error(auditor("scan", *ARGS, env={"AUDITOR_FORMAT": ""}), "AUDITOR_FORMAT", "names no format")
    assert not (workdir / "reports" / "latest").exists()


def test_more_text_that_reaches_the_terminal(workdir):
    (workdir / "evil.yaml").write_text("""rules:
  - id: EVIL-001
    title: "Evil\\n::error file=x::forged \\e[2J\\u202e"
    severity: low
    category: other
    resource: vsphere:HostSystem
    description: d
    remediation: r
    match: {path: name, op: eq, value: nobody}
""")
    document = sample_document()
    document["collected_at"] = "x\n::error::forged\x1b[2J"
    save(workdir / "collected.json", document)
    outputs = [auditor("rules", "list", "--rules", "evil.yaml", "--no-default-rules"),
               auditor("rules", "list", "--rules", "evil.yaml", "--no-default-rules", "-f", "markdown"),
               auditor("diff", str(SAMPLE_SNAPSHOT), "collected.json"),
               auditor("scan", "--as-of", "x\n::error::forged"),
               auditor("scan", *ARGS, "-o", "out\n::error::forged"),
               auditor("scan", *ARGS, "-o", "-", "-f", "json")]
    for result in outputs:
        text = result.stdout + result.stderr
        assert not any(line.startswith("::") for line in text.splitlines()), text[-3000:]
        assert "\x1b" not in text and "\u202e" not in text and "\u2028" not in text and "\x85" not in text


def test_yaml_merges_through_a_shared_anchor_and_no_foreign_tags():
    from auditor.errors import InputError
    from auditor.yamlfile import load_yaml_text

    assert load_yaml_text("base: &b {x: 1}\nd: &d {<<: *b, x: 2}\ne: *d\nf: *d\n", "t")["f"] == {"x": 2}
    with pytest.raises(InputError, match="tag"):
        load_yaml_text("a: !!python/object/apply:os.system [ls]\n", "t")


def test_nan_is_no_drift(workdir):
    document = sample_document()
    document["resources"][0]["x"] = float("nan")
    (workdir / "nan.json").write_text(json.dumps(document))
    result = auditor("diff", "nan.json", "nan.json")
    assert result.returncode == 0, result.stdout[-2000:]


def test_an_nsg_that_splits_traffic_into_millions_of_pieces_is_not_evaluated_not_a_stall(workdir):
    # a Deny of 80 scattered public addresses x 80 scattered ports, then an Allow: followed
    # exactly, the pieces multiply past what a scan can afford (120 s and more before)
    document = sample_document()
    nsg = next(r for r in document["resources"] if r["name"] == "nsg-web")
    nsg["properties"]["securityRules"] = [
        {"name": "deny-grid", "properties": {"priority": 100, "direction": "Inbound", "access": "Deny",
                                             "protocol": "*", "sourcePortRange": "*", "destinationAddressPrefix": "*",
                                             "sourceAddressPrefixes": [f"20.{i}.1.1/32" for i in range(80)],
                                             "destinationPortRanges": [str(1000 + 2 * i) for i in range(80)]}},
        {"name": "allow-all", "properties": {"priority": 200, "direction": "Inbound", "access": "Allow",
                                             "protocol": "*", "sourcePortRange": "*", "destinationAddressPrefix": "*",
                                             "sourceAddressPrefix": "*", "destinationPortRange": "*"}}]
    save(workdir / "grid.json", document)
    started = time.monotonic()
    result = auditor("scan", *ARGS, "--snapshot", "grid.json", "-q", timeout=120)
    assert result.returncode in (0, 1), result.stderr[-2000:]
    assert time.monotonic() - started < 60
    facts = {}
    from auditor.facts import derive_facts
    loaded = load_snapshot(workdir / "grid.json")
    derive_facts(loaded.resources)
    facts = next(r for r in loaded.resources if r["name"] == "nsg-web")["facts"]["exposure"]
    assert any("too many distinct sources and ports" in note for note in facts["not_evaluated"])


@pytest.mark.parametrize("kind", ["fifo", "symlink"])
def test_report_and_diff_never_replace_a_special_output(workdir, kind):
    target = workdir / "out"
    if kind == "fifo":
        os.mkfifo(target)
    else:
        (workdir / "real").write_text("keep")
        target.symlink_to(workdir / "real")
    for argv in (["diff", str(SAMPLE_SNAPSHOT), str(SAMPLE_SNAPSHOT), "-o", "out"], ["rules", "list", "-o", "out"]):
        one_line_error(auditor(*argv, timeout=30), "out", "not a regular file")
    assert target.is_fifo() if kind == "fifo" else target.is_symlink()


def test_a_full_disk_behind_standard_output_is_an_input_error(workdir):
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "auditor", "scan", *ARGS, "-o", "-", "-f", "json", "-q"],
                                stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert result.returncode == 2 and "cannot write to standard output" in result.stderr, result.stderr


def test_a_search_remembered_is_the_search_made(monkeypatch):
    """patterns.search keeps what it found per pattern and text: the same answer (match or
    none) as searching again, per pattern; long texts are not kept, and the memory is bounded."""
    import auditor.patterns as patterns

    monkeypatch.setattr(patterns, "_SEARCHES", {})
    monkeypatch.setattr(patterns, "_SEARCHES_KEPT", 4)
    digits, letters = patterns.linear(r"(\d+)"), patterns.linear(r"([a-z]+)")
    assert patterns.search(digits, "vm-42").group(1) == "42"
    assert patterns.search(digits, "vm-42").group(1) == "42"  # remembered
    assert patterns.search(letters, "vm-42").group(1) == "vm"  # the same text, another pattern
    assert patterns.search(digits, "none") is None and patterns.search(digits, "none") is None
    assert patterns.search(digits, "\udc80") is None  # text RE2 cannot encode: no match, as before
    long_text = "x" * 10_000 + "7"
    assert patterns.search(digits, long_text).group(1) == "7"
    assert (digits, long_text) not in patterns._SEARCHES
    for number in range(20):
        assert patterns.search(digits, f"host-{number}").group(1) == str(number)
    assert len(patterns._SEARCHES) <= 4
