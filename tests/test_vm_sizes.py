"""VM sizes' real vCPU counts (auditor/vm_sizes.py): the bundled table generated from recorded
Resource SKUs API responses, the order of the bases, hostile input, and the generator."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from importlib import resources

import pytest

from auditor.snapshot import Source
from auditor.vm_sizes import (
    MAX_VCPUS,
    PROVENANCE,
    build_table,
    count,
    main,
    render,
    table,
    vcpus,
    vm_sizes,
)
from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures"
EXAMPLE = FIXTURES / "azure-rest-examples" / "compute" / "ListAvailableResourceSkusForARegion.json"
EASTUS = FIXTURES / "azure" / "resource-skus-eastus.json"
BUNDLED = ROOT / "auditor" / "data" / "vm_sizes.json"


# -- the bundled table: real counts, not a name's digits ----------------------------------


@pytest.mark.parametrize("size, expected", [
    ("Standard_D5_v2", 16),  # "5" in the name, 16 vCPUs
    ("Standard_D12_v2", 4),
    ("Standard_G5", 32),
    ("Standard_D15_v2", 20),
    ("Standard_M128s", 128),
    ("Standard_F72s_v2", 72),
    ("Standard_E8-2s_v3", 2),  # constrained: 8 vCPUs, 2 active (vCPUsAvailable)
    ("Standard_E8-2ds_v4", 2),
    ("Standard_DS14-8_v2", 8),
    ("Standard_M416-208s_v2", 208),
    ("Basic_A0", 1),
])
def test_the_bundled_table_gives_real_vcpus(size, expected):
    assert vcpus(size) == (expected, "bundled")


def test_names_compare_case_insensitively():
    assert vcpus("STANDARD_d5_V2") == (16, "bundled")
    assert vcpus(" standard_g5 ") == (32, "bundled")


def test_a_size_no_response_has_is_unknown_not_guessed():
    # the recorded responses predate the v5 sizes: nothing is made up for them
    assert vcpus("Standard_E8-2ds_v5") == (None, "unknown")
    assert vcpus("Standard_D4s_v5") == (None, "unknown")
    assert vcpus("Standard_Imaginary99") == (None, "unknown")
    assert vcpus(None) == (None, "unknown")


def test_sizes_whose_responses_disagree_are_left_out():
    # eastus2 (2020-03) answered vCPUsAvailable 4 for Standard_E4-2s_v3, eastus (2020-08) 2
    document = json.loads(BUNDLED.read_text(encoding="utf-8"))
    assert "standard_e4-2s_v3" in document["conflicts"]
    assert vcpus("Standard_E4-2s_v3") == (None, "unknown")


def test_the_bundled_file_names_its_sources_and_holds_only_counts():
    document = json.loads(BUNDLED.read_text(encoding="utf-8"))
    assert document["kind"] == "auditor.vm_sizes"
    assert document["count"] == len(document["sizes"]) > 350
    for source in document["source"]:
        assert {"repository", "path", "commit", "licence", "sha256"} <= source.keys()
        assert source["licence"].startswith("MIT")
        assert PROVENANCE[source["sha256"]]["commit"] == source["commit"]
    for name, entry in document["sizes"].items():
        assert name == name.lower() and set(entry) <= {"vcpus", "vcpus_available"}
        assert 0 < entry["vcpus"] <= MAX_VCPUS
        assert 0 < entry.get("vcpus_available", entry["vcpus"]) <= entry["vcpus"]
    # the families the issue asks about, as far as real responses cover them
    for size in ("standard_d1_v2", "standard_d15_v2", "standard_ds5_v2", "standard_g1", "standard_gs5", "standard_m64",
                 "standard_b2s", "standard_d64s_v3", "standard_e64_v3", "standard_d48a_v4", "standard_e32s_v4",
                 "standard_f16s", "standard_f48s_v2", "standard_l80s_v2", "standard_nc24rs_v3", "standard_h16r"):
        assert size in document["sizes"], size
    # the file is exactly what the generator writes for it (no hand edits)
    assert render(document) == BUNDLED.read_text(encoding="utf-8")


def test_the_table_is_read_as_package_data_once():
    shipped = resources.files("auditor").joinpath("data", "vm_sizes.json")
    assert json.loads(shipped.read_text(encoding="utf-8"))["sizes"] == {k: dict(v) for k, v in table().items()}
    assert table() is table()
    with pytest.raises(TypeError):
        table()["standard_d5_v2"]["vcpus"] = 1  # read-only: no caller can change a count for the next


# -- the order of the bases ------------------------------------------------------------------


def test_vcpus_available_of_the_vm_comes_first():
    assert vcpus("Standard_D5_v2", available=8) == (8, "vmSizeProperties")
    assert vcpus("Standard_D5_v2", {"standard_d5_v2": 16}, available=4) == (4, "vmSizeProperties")
    assert vcpus("Standard_E8-2ds_v5", available=2) == (2, "vmSizeProperties")  # size unknown, VM says
    assert vcpus(None, available=6) == (6, "vmSizeProperties")
    # more active vCPUs than the size has is not a count
    assert vcpus("Standard_D5_v2", available=32) == (16, "bundled")


def test_what_the_scan_read_comes_before_the_bundled_table():
    assert vcpus("Standard_E8-2ds_v5", {"standard_e8-2ds_v5": 2}) == (2, "resource-skus")
    assert vcpus("Standard_D5_v2", {"standard_d5_v2": 16}) == (16, "resource-skus")
    assert vcpus("Standard_D5_v2", {"standard_g5": 32}) == (16, "bundled")
    assert vcpus("Standard_D5_v2", {}) == (16, "bundled")


HUGE = "Standard_D5_v2" + "x" * 1_000_000


@pytest.mark.parametrize("size", [5, 5.0, True, b"Standard_D5_v2", ["Standard_D5_v2"], {"Standard_D5_v2": 1}, "",
                                  "   ", HUGE, "Standard_D5_v2\x00", "\ud800", object()])
def test_hostile_sizes_are_unknown(size):
    assert vcpus(size) == (None, "unknown")
    assert vcpus(size, {"standard_d5_v2": 16}) == (None, "unknown")


@pytest.mark.parametrize("available", [True, False, 0, -8, 10**100, MAX_VCPUS + 1, 8.0, "8.0", "-8", "+8", "٨",
                                       "8 ", "", None, [8], {"vCPUsAvailable": 8}, "9" * 5000])
def test_hostile_vcpus_available_is_ignored(available):
    assert vcpus("Standard_D5_v2", available=available) == (16, "bundled")


@pytest.mark.parametrize("collected", [{"standard_d5_v2": True}, {"standard_d5_v2": -1}, {"standard_d5_v2": 10**100},
                                       {"standard_d5_v2": "sixteen"}, {"standard_d5_v2": None},
                                       {"standard_d5_v2": {"vcpus": 4}}, [("standard_d5_v2", 4)], "standard_d5_v2",
                                       42, None])
def test_hostile_collected_counts_are_ignored(collected):
    assert vcpus("Standard_D5_v2", collected) == (16, "bundled")


def test_counts_are_whole_positive_numbers():
    assert [count(v) for v in (1, "16", "0", 0, "07", MAX_VCPUS, True, 2.0, "1e3", " 4")] == \
        [1, 16, None, None, 7, MAX_VCPUS, None, None, None, None]


# -- merging what the Azure source stored --------------------------------------------------


def test_vm_sizes_merges_the_sources_details():
    sources = [
        Source(id="sub-a", cloud="azure", kind="subscription", details={"vm_sizes": {
            "standard_d5_v2": {"vcpus": 16, "vcpus_available": 16},
            "standard_e8-2ds_v5": {"vcpus": 8, "vcpus_available": 2}}}),
        # the JSON form of a source, as a saved snapshot holds it
        {"id": "sub-b", "details": {"vm_sizes": {"Standard_D5_v2": {"vcpus": 16}, "standard_g5": {"vcpus": 32}}}},
        Source(id="vc01", cloud="vsphere", kind="vcenter", details={"version": "8.0.2"}),
        Source(id="sub-c", cloud="azure", kind="subscription", status="failed", error="HTTP 403"),
    ]
    collected = vm_sizes(sources)
    assert collected == {"standard_d5_v2": 16, "standard_e8-2ds_v5": 2, "standard_g5": 32}
    assert vcpus("Standard_E8-2ds_v5", collected) == (2, "resource-skus")


def test_vm_sizes_leaves_out_what_sources_disagree_on_or_cannot_count():
    sources = [
        {"details": {"vm_sizes": {"standard_d5_v2": {"vcpus": 16}, "standard_a1": {"vcpus": 1}}}},
        {"details": {"vm_sizes": {"standard_d5_v2": {"vcpus": 20}, "standard_b2s": {"vcpus": 2, "vcpus_available": 4},
                                  "standard_x": {"vcpus": True}, "standard_y": {"vcpus": 4, "vcpus_available": "x"},
                                  "standard_z": 4, 17: {"vcpus": 1}, HUGE: {"vcpus": 1}}}},
        {"details": {"vm_sizes": ["standard_a2"]}}, {"details": "x"}, {"no": "details"}, None, 42, "source",
    ]
    assert vm_sizes(sources) == {"standard_a1": 1}
    assert vm_sizes(None) == {} and vm_sizes([]) == {}


# -- generating the table from Resource SKUs answers ---------------------------------------


def _item(name: str, *capabilities: tuple[str, str], resource_type: str = "virtualMachines") -> dict:
    return {"resourceType": resource_type, "name": name, "locations": ["westeurope"],
            "capabilities": [{"name": key, "value": value} for key, value in capabilities]}


def test_generating_from_an_answer_and_a_published_example():
    document = build_table([("eastus.json", EASTUS.read_bytes()), ("example.json", EXAMPLE.read_bytes())])
    assert document["sizes"] == {
        "standard_a0": {"vcpus": 1, "vcpus_available": 1}, "standard_a1": {"vcpus": 1, "vcpus_available": 1},
        "standard_d12_v2": {"vcpus": 4, "vcpus_available": 4}, "standard_d4s_v3": {"vcpus": 4, "vcpus_available": 4},
        "standard_d5_v2": {"vcpus": 16, "vcpus_available": 16},
        "standard_e8-2s_v3": {"vcpus": 8, "vcpus_available": 2}}  # the disk SKU is not a VM size
    # Microsoft's example is recognised by its digest and named by repository, path and commit
    [example] = [s for s in document["source"] if s["sha256"] == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()]
    assert example["repository"] == "Azure/azure-rest-api-specs" and example["licence"].startswith("MIT")
    [other] = [s for s in document["source"] if s is not example]
    assert other == {"file": "eastus.json", "sha256": hashlib.sha256(EASTUS.read_bytes()).hexdigest()}


def test_generating_reads_sdk_recordings():
    body = json.dumps({"value": [_item("Standard_D5_v2", ("vCPUs", "16"))]})
    java = {"networkCallRecords": [
        {"Uri": "http://localhost:1234/subscriptions/x/providers/Microsoft.Compute/skus?api-version=2019-04-01",
         "Response": {"StatusCode": "200", "Body": body}},
        {"Uri": "http://localhost:1234/subscriptions/x/resourcegroups?api-version=2019-04-01",
         "Response": {"Body": json.dumps({"value": [_item("Standard_Fake1", ("vCPUs", "99"))]})}},
        "not a record", 42, {"Uri": 7}, {"Uri": "/providers/Microsoft.Compute/skus", "Response": "gone"}]}
    dotnet = {"Entries": [{"RequestUri": "/subscriptions/x/providers/Microsoft.Compute/skus?api-version=2017-09-01",
                           "ResponseBody": json.dumps({"value": [_item("Standard_G5", ("vCPUs", "32"))]})}]}
    vcr = ("interactions:\n- request:\n    uri: https://management.azure.com/subscriptions/x/providers/"
           "Microsoft.Compute/skus?api-version=2021-07-01\n  response:\n    body:\n      string: '"
           + json.dumps({"value": [_item("Standard_D12_v2", ("vCPUs", "4"), ("vCPUsAvailable", "4"))]}) + "'\n")
    listed = [_item("Standard_A1", ("vCPUs", "1"))]  # what `az vm list-skus -o json` prints
    document = build_table([("java.json", json.dumps(java).encode()), ("net.json", json.dumps(dotnet).encode()),
                            ("vcr.yaml", vcr.encode()), ("cli.json", json.dumps(listed).encode())])
    assert document["sizes"] == {"standard_a1": {"vcpus": 1}, "standard_d12_v2": {"vcpus": 4, "vcpus_available": 4},
                                 "standard_d5_v2": {"vcpus": 16}, "standard_g5": {"vcpus": 32}}


def test_disagreement_and_unknowable_constrained_sizes_are_left_out():
    first = {"value": [_item("Standard_E4-2s_v3", ("vCPUs", "4"), ("vCPUsAvailable", "2")),
                       _item("Standard_D5_v2", ("vCPUs", "16")),
                       _item("Standard_GS4-8", ("vCPUs", "16")),  # constrained, active count unknown
                       _item("Standard_Odd1", ("vCPUs", "2"), ("vCPUsAvailable", "4")),
                       _item("Standard_NoCount", ("MemoryGB", "4")),
                       _item("Standard_Bad1", ("vCPUs", "lots")),
                       _item("Standard_LRS", ("vCPUs", "4"), resource_type="disks")]}
    second = {"value": [_item("Standard_E4-2s_v3", ("vCPUs", "4"), ("vCPUsAvailable", "4")),
                        _item("standard_d5_v2", ("vCPUs", "16"), ("vCPUsAvailable", "16"))]}
    document = build_table([("a.json", json.dumps(first).encode()), ("b.json", json.dumps(second).encode())])
    assert document["sizes"] == {"standard_d5_v2": {"vcpus": 16, "vcpus_available": 16}}
    assert set(document["conflicts"]) == {"standard_e4-2s_v3", "standard_odd1"}
    assert "vCPUsAvailable 2" in document["conflicts"]["standard_e4-2s_v3"]
    assert set(document["left_out"]) == {"standard_gs4-8"}


def test_the_command_writes_the_same_table_whatever_the_order(tmp_path):
    first, second = tmp_path / "one.json", tmp_path / "two.json"
    assert main(["--generate", str(EASTUS), str(EXAMPLE), "--output", str(first)]) == 0
    assert main(["--generate", str(EXAMPLE), str(EASTUS), "--output", str(second)]) == 0
    assert first.read_bytes() == second.read_bytes()
    written = json.loads(first.read_text(encoding="utf-8"))
    assert written["count"] == 6 and written["sizes"]["standard_e8-2s_v3"] == {"vcpus": 8, "vcpus_available": 2}
    assert render(written) == first.read_text(encoding="utf-8")


def test_the_command_as_a_user_runs_it(tmp_path):
    out = tmp_path / "sizes.json"
    result = subprocess.run([sys.executable, "-m", "auditor.vm_sizes", "--generate", str(EASTUS), "--output", str(out)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"wrote 5 sizes to {out}" in result.stdout


@pytest.mark.parametrize("content, message", [
    (b"\x00\x01not json: [", "neither JSON nor YAML"),
    (b'{"kind": "auditor.snapshot", "resources": []}', "not a Resource SKUs response"),
    (b'{"value": [{"resourceType": "disks", "name": "Premium_LRS"}]}', "no virtualMachines SKU"),
    (json.dumps({"networkCallRecords": [{"Uri": "/providers/Microsoft.Compute/skus",
                                         "Response": {"Body": "<html>"}}]}).encode(), "bad.json"),
])
def test_the_command_refuses_what_is_not_a_skus_answer_in_one_line(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    out = tmp_path / "sizes.json"
    assert main(["--generate", str(bad), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()
    assert main(["--generate", str(tmp_path / "missing.json"), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'missing.json'}: Resource SKUs response not found" in err and len(err.splitlines()) == 1


def test_a_recorded_answer_with_fewer_active_vcpus_on_a_plain_size_is_not_trusted():
    # the 2020 answers give Standard_DS14 16 vCPUs but 8 available: only constrained sizes
    # (E8-2s_v3) have fewer active vCPUs, so its claims are not judged rather than under-counted
    assert vcpus("Standard_DS14") == (None, "unknown")
    assert vcpus("Standard_E8-2s_v3") == (2, "bundled")
    assert vcpus("Standard_DS14", {"standard_ds14": 16}) == (16, "resource-skus")


# -- hostile input to the generator: one line naming the file, exit 2 ------------------------

SKUS_URI = "https://management.azure.com/subscriptions/x/providers/Microsoft.Compute/skus?api-version=2021-07-01"
DEEP = "[" * 200_000 + "]" * 200_000


def _recorded(body: str) -> bytes:
    return json.dumps({"interactions": [{"request": {"uri": SKUS_URI}, "response": {"body": {"string": body}}}]}).encode()


def _refused(capsys, code: int, *names: str) -> str:
    """The one error line of a refused run, which names each of `names`."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("auditor: error: ") and "Traceback" not in err, err
    for name in names:
        assert name in err, err
    return err


@pytest.mark.parametrize("content, message", [
    (DEEP.encode(), "denser than any Resource SKUs response"),  # refused before it is parsed
    ((DEEP + " " * 2_000_000).encode(), "JSON nested too deeply"),  # as deep, not as dense: the parser's limit
    (("[" * 5000 + "]" * 5000).encode(), "JSON nested too deeply"),
    (_recorded(DEEP), "denser than any Resource SKUs response"),
    (_recorded(DEEP + " " * 2_000_000), "a recorded response body is JSON nested too deeply"),
    (_recorded("[" * 5000 + "]" * 5000), "a recorded response body is JSON nested too deeply"),
    (("- " * 100_000 + "x\n").encode(), "YAML nested more than 100 levels deep"),  # a 100k-deep YAML list
    (("x: " + "[" * 100_000 + "]" * 100_000 + "\n" + " " * 1_000_000).encode(), "YAML nested more than 100"),
    (("interactions:\n- request:\n    uri: " + SKUS_URI + "\n  response:\n    body:\n      string: '"
      + "[" * 5000 + "]" * 5000 + "'\n").encode(), "a recorded response body is JSON nested too deeply"),
    (b"[" + b"[]," * 100_000 + b"[]]", "denser than any Resource SKUs response"),
], ids=["json-200k-deep", "json-200k-deep-padded", "json-5k-deep", "recorded-200k-deep", "recorded-200k-deep-padded",
        "recorded-5k-deep", "yaml-100k-deep-list", "yaml-100k-deep-flow", "vcrpy-yaml-5k-deep-body", "json-dense"])
def test_the_command_refuses_deep_or_dense_input_in_one_line(tmp_path, capsys, content, message):
    bad = tmp_path / "deep.json"
    bad.write_bytes(content)
    out = tmp_path / "sizes.json"
    _refused(capsys, main(["--generate", str(bad), "--output", str(out)]), f"{bad}", message)
    assert not out.exists()


def test_names_that_are_not_text_are_skipped():
    items = [
        {"resourceType": "virtualMachines", "name": "Standard_X",
         "capabilities": [{"name": ["vCPUs"], "value": "4"}, {"name": {"vCPUs": 1}, "value": "4"}]},
        {"resourceType": "virtualMachines", "name": ["Standard_Y"], "capabilities": [{"name": "vCPUs", "value": "4"}]},
        {"resourceType": "virtualMachines", "name": {"n": "Standard_Z"}, "capabilities": [{"name": "vCPUs", "value": "4"}]},
        {"resourceType": ["virtualMachines"], "name": "Standard_W", "capabilities": [{"name": "vCPUs", "value": "4"}]},
        {"resourceType": "virtualMachines", "name": "Standard_V",
         "capabilities": [{"name": ["vCPUs"], "value": "99"}, {"name": "vCPUs", "value": "8"}, {"name": 7, "value": "1"},
                          {"name": None}, {"name": "vCPUsAvailable", "value": "8"}]},
    ]
    document = build_table([("odd.json", json.dumps({"value": items}).encode())])
    assert document["sizes"] == {"standard_v": {"vcpus": 8, "vcpus_available": 8}}


def test_the_command_refuses_an_answer_whose_capability_names_are_lists(tmp_path, capsys):
    bad = tmp_path / "names.json"
    bad.write_text('{"value":[{"resourceType":"virtualMachines","name":"Standard_X",'
                   '"capabilities":[{"name":["vCPUs"],"value":"4"}]}]}', encoding="utf-8")
    code = main(["--generate", str(bad), "--output", str(tmp_path / "sizes.json")])
    _refused(capsys, code, str(bad), "no virtualMachines SKU with a vCPUs capability")


def _limited_memory() -> None:  # pragma: no cover - runs in the child
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # reading /dev/zero whole fails fast


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo") or not __import__("os").path.exists("/dev/zero"),
                    reason="needs named pipes and /dev/zero")
@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_the_command_reads_only_regular_files(tmp_path, special):
    import os

    if special == "fifo":
        special = str(tmp_path / "skus.fifo")
        os.mkfifo(special)  # nobody writes to it: reading it would wait for ever
    out = tmp_path / "sizes.json"
    result = subprocess.run([sys.executable, "-m", "auditor.vm_sizes", "--generate", special, "--output", str(out)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60, preexec_fn=_limited_memory)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"auditor: error: {special}: is a {'named pipe' if special.endswith('fifo') else 'device'}, not a regular "
        "file: expected a Resource SKUs response"]
    assert not out.exists()


def test_the_command_refuses_inputs_over_the_size_limit(tmp_path, capsys, monkeypatch):
    import auditor.vm_sizes as vm_sizes_module

    monkeypatch.setattr(vm_sizes_module, "MAX_INPUT_SIZE", 1024)
    out = tmp_path / "sizes.json"
    code = main(["--generate", str(EASTUS), "--output", str(out)])  # 13 KiB
    _refused(capsys, code, str(EASTUS), "larger than the limit of 1 KiB")
    assert not out.exists()
    code = main(["--generate", str(tmp_path), "--output", str(out)])
    _refused(capsys, code, str(tmp_path), "is a directory")


@pytest.mark.parametrize("output, message", [
    ("{tmp}", "is a directory"),
    ("/dev/full", "is not a regular file"),
    ("/proc/version", "cannot write"),
    ("{tmp}/missing/sizes.json", "cannot write: the folder {tmp}/missing does not exist"),
    ("{tmp}/file.txt/sizes.json", "cannot write: the folder {tmp}/file.txt is not a directory"),
])
def test_an_output_that_cannot_be_written_is_one_line_and_exit_2(tmp_path, capsys, output, message):
    import os

    output, message = output.format(tmp=tmp_path), message.format(tmp=tmp_path)
    if output.startswith(("/dev/", "/proc/")) and not os.path.exists(output):
        pytest.skip(f"no {output} here")
    (tmp_path / "file.txt").write_text("x", encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    _refused(capsys, main(["--generate", str(EASTUS), "--output", output]), f"{output}: ", message)
    assert not (tmp_path / "missing").exists()  # a mistyped folder is not created
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing half-written is left
    assert (tmp_path / "file.txt").read_text(encoding="utf-8") == "x"


def test_a_failed_write_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    import errno

    import auditor.atomic

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(auditor.atomic, "write_text_atomic", full)
    out = tmp_path / "sizes.json"
    _refused(capsys, main(["--generate", str(EASTUS), "--output", str(out)]), f"{out}: cannot write: No space left")
