"""Options: every list-valued flag adds up, the layers flag > environment > config file >
default, source options without their source, and the sample only when nothing is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auditor.cli import build_parser, main
from auditor.options import SPECS, Spec, UsageError, resolve, scan_options, settings_for
from auditor.sample import SAMPLE_SNAPSHOT
from auditor.snapshot import load_snapshot, save_snapshot
from tests.conftest import AS_OF

ARGS = ["--as-of", AS_OF.isoformat(), "--no-history"]
COMMAND_WORDS = {"scan": ["scan"], "collect vsphere": ["collect", "vsphere"], "collect azure": ["collect", "azure"],
                 "rules list": ["rules", "list"], "rules validate": ["rules", "validate", "r.yaml"],
                 "diff": ["diff", "a.json", "b.json"], "history": ["history"], "report": ["report"]}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in [name for name in __import__("os").environ if name.startswith("AUDITOR_")]:
        monkeypatch.delenv(name)
    return tmp_path


def settings(argv: list[str], environ: dict[str, str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    key = " ".join(p for p in (args.command, getattr(args, "collect_command", None),
                               getattr(args, "rules_command", None)) if p)
    return settings_for(key, args, argv, environ or {})


def _values(spec: Spec) -> tuple[str, str]:
    if spec.choices:
        return spec.choices[0], spec.choices[-1]
    return {"format": ("json", "sarif")}.get(spec.name, ("one", "two"))


LIST_OPTIONS = [(command, spec) for command, specs in SPECS.items() for spec in specs if spec.many]


def test_every_command_has_its_list_options_in_the_table():
    assert {command for command, _ in LIST_OPTIONS} >= {"scan", "collect vsphere", "collect azure", "rules list",
                                                        "rules validate"}
    assert {spec.name for command, spec in LIST_OPTIONS if command == "scan"} == {
        "snapshot", "rules", "baseline", "format", "waivers", "vsphere", "azure-subscription", "checks", "skip-checks",
        "severity", "framework"}


@pytest.mark.parametrize("command, spec", LIST_OPTIONS, ids=[f"{c}--{s.name}" for c, s in LIST_OPTIONS])
def test_a_repeated_list_flag_adds_up_on_every_command(workdir, command, spec):
    first, second = _values(spec)
    for spelling in [spec.name, *[a for a in spec.aliases if len(a) > 1]]:
        argv = [*COMMAND_WORDS[command], f"--{spelling}", first, f"--{spelling}", second]
        value = settings(argv)[spec.name].value
        assert [str(v) for v in value] == [first, second], (spelling, value)


def test_two_snapshots_are_both_scanned(workdir, capsys):
    snapshot = load_snapshot(SAMPLE_SNAPSHOT)
    vsphere = [r for r in snapshot.resources if r["cloud"] == "vsphere"]
    azure = [r for r in snapshot.resources if r["cloud"] == "azure"]
    for name, resources, clouds in (("a.json", vsphere, "vsphere"), ("b.json", azure, "azure")):
        snapshot.resources, sources = resources, snapshot.sources
        part = type(snapshot)(snapshot.collected_at, [s for s in sources if s.cloud == clouds], resources)
        save_snapshot(part, workdir / name)
    code = main(["scan", *ARGS, "--snapshot", "a.json", "--snapshot", "b.json", "--format", "json"])
    assert code == 0, capsys.readouterr().err
    document = json.loads((workdir / "reports" / "latest" / "findings.json").read_text())
    assert document["snapshot"]["resource_count"] == len(vsphere) + len(azure)
    assert document["sample"] is False
    # and `--snapshot a b` is the same as the flag twice
    assert main(["scan", *ARGS, "--snapshot", "a.json", "b.json", "--format", "json", "-q"]) == 0


def test_flag_beats_environment_beats_config_file_beats_default(workdir):
    (workdir / "auditor.yaml").write_text("fail-on: low\nscan:\n  snapshot: [from-file.json]\n  quiet: true\n")
    base = ["scan", "--as-of", "2026-11-25"]
    from_file = settings(base)
    assert from_file["fail-on"].value == "low" and from_file["fail-on"].origin == "auditor.yaml:1"
    assert [str(p) for p in from_file["snapshot"].value] == ["from-file.json"] and from_file["quiet"].value is True
    from_env = settings(base, {"AUDITOR_FAIL_ON": "medium", "AUDITOR_SNAPSHOT": "e1.json,e2.json",
                               "AUDITOR_QUIET": "false"})
    assert from_env["fail-on"].value == "medium" and from_env["fail-on"].origin == "AUDITOR_FAIL_ON"
    assert [str(p) for p in from_env["snapshot"].value] == ["e1.json", "e2.json"] and not from_env["quiet"].value
    from_flag = settings([*base, "--fail-on", "high", "--snapshot", "f.json"], {"AUDITOR_FAIL_ON": "medium"})
    assert from_flag["fail-on"].value == "high" and from_flag["fail-on"].origin == "--fail-on"
    assert [str(p) for p in from_flag["snapshot"].value] == ["f.json"]
    (workdir / "auditor.yaml").unlink()
    assert settings(base)["fail-on"].origin == "default" and settings(base)["output"].value == Path("reports")


def test_a_command_section_wins_over_the_top_level_and_config_names_a_file(workdir, capsys):
    (workdir / "other.yaml").write_text("output: top\ncollect:\n  output: snap.json\n")
    assert str(settings(["collect", "azure", "--config", "other.yaml"])["output"].value) == "snap.json"
    assert str(settings(["scan", "--config", "other.yaml"])["output"].value) == "top"
    assert str(settings(["scan"], {"AUDITOR_CONFIG": "other.yaml"})["output"].value) == "top"
    assert main(["scan", "--config", "missing.yaml"]) == 2
    assert "missing.yaml: YAML file not found" in capsys.readouterr().err


@pytest.mark.parametrize("text, expected", [
    ("fail-on: sometimes\n", "auditor.yaml:1: option 'fail-on': 'sometimes' is not one of"),
    ("scan:\n  snapshots: [a.json]\n", "auditor.yaml:2: unknown option 'snapshots' in section 'scan'"),
    ("vsphere-password: hunter2\n", "auditor.yaml:1: unknown option 'vsphere-password'"),
    ("scan: [a]\n", "auditor.yaml:1: section 'scan' must be a mapping"),
    ("as-of: {day: 1}\n", "auditor.yaml:1: option 'as-of': must be one plain value"),
    ("scan:\n  snapshot: {a: 1}\n", "auditor.yaml:2: option 'snapshot': must be a list of plain values"),
    ("scan:\n  snapshot:\n", "auditor.yaml:2: option 'snapshot': must be a list of plain values"),
])
def test_config_file_mistakes_are_one_line_errors(workdir, capsys, text, expected):
    (workdir / "auditor.yaml").write_text(text)
    assert main(["scan", *ARGS]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1 and not (workdir / "reports").exists()


def test_environment_mistakes_name_the_variable(workdir, capsys):
    assert main(["scan", *ARGS], environ={"AUDITOR_FAIL_ON": "often"}) == 2
    assert "AUDITOR_FAIL_ON: 'often' is not one of" in capsys.readouterr().err


SOURCE_OPTIONS = [spec for spec in SPECS["scan"] if spec.needs_source]


@pytest.mark.parametrize("spec", SOURCE_OPTIONS, ids=[s.name for s in SOURCE_OPTIONS])
def test_a_source_option_without_its_source_is_a_usage_error(workdir, capsys, spec):
    value = [] if spec.switch else [_values(spec)[0] if spec.choices or spec.parse.__name__ in ("as_text",)
                                    else {"as_path": "x.pem", "as_seconds": "5", "as_count": "5"}[spec.parse.__name__]]
    assert main(["scan", *ARGS, f"--{spec.name}", *value]) == 2
    err = capsys.readouterr().err
    wanted = "--vsphere HOST" if spec.needs_source == "vsphere" else "--azure"
    assert f"--{spec.name} needs {wanted}" in err and not (workdir / "reports").exists()


def test_a_source_option_from_the_config_file_is_named_with_its_line(workdir, capsys):
    (workdir / "auditor.yaml").write_text("azure-subscription: [abc]\n")
    assert main(["scan", *ARGS]) == 2
    assert "azure-subscription (from auditor.yaml:1) needs --azure" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--min-severity", "high"], "--min-severity needs --compare PREVIOUS"),
    (["--save-snapshot", "live.json"], "--save-snapshot needs a live source"),
    (["--fail-on", "new"], "--fail-on new needs --compare PREVIOUS"),
    (["--history", "h.db", "--no-history"], "--history and --no-history contradict each other"),
])
def test_options_that_need_another_are_usage_errors(workdir, capsys, argv, message):
    assert main(["scan", "--as-of", "2026-11-25", *argv]) == 2
    assert message in capsys.readouterr().err and not (workdir / "reports").exists()


def test_the_sample_only_when_nothing_is_named_or_asked_for(workdir):
    def typed(argv: list[str]):
        args = build_parser().parse_args(["scan", *argv])
        return scan_options(resolve("scan", vars(args), {}, None))
    assert typed([]).sample and typed(["--rules", "my-rules"]).sample
    assert not typed(["--snapshot", "a.json"]).sample
    assert not typed(["--vsphere", "vc1"]).sample and not typed(["--azure"]).sample
    assert typed(["--sample"]).sample
    # the sample's organisation baselines must never apply to a real estate
    for mixed in (["--sample", "--snapshot", "a.json"], ["--sample", "--vsphere", "vc1"], ["--sample", "--azure"]):
        with pytest.raises(UsageError, match="scans the bundled sample on its own"):
            typed(mixed)
    with pytest.raises(UsageError):
        typed(["--azure-subscription", "abc"])


def test_the_readme_options_table_is_current():
    from auditor.options import options_markdown
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("<!-- options:start -->\n", 1)[1].split("<!-- options:end -->", 1)[0]
    assert table == options_markdown(), "run `python -m auditor.options` and paste the table into README.md"
