"""Azure VM sizes: how many vCPUs a size really has.

Licence counting needs a VM's vCPUs, and the digits of a size's name do not give them:
Standard_D5_v2 has 16 vCPUs, Standard_D12_v2 4, Standard_G5 32. A constrained size
(Standard_E8-2s_v3: 8 vCPUs, 2 of them active) counts the active ones, the Resource SKUs
API's `vCPUsAvailable` capability.

`vcpus()` answers a count and where it came from (its basis), best first:

- "vmSizeProperties": the VM's own `properties.hardwareProfile.vmSizeProperties.vCPUsAvailable`
  (VM size customisation: the owner disabled vCPUs, which then are not licensed);
- "resource-skus": what the Azure source read from the Resource SKUs API during the scan
  (each subscription Source's `details["vm_sizes"]`, merged by `vm_sizes()`);
- "bundled": the table shipped in auditor/data/vm_sizes.json, generated from recorded
  Resource SKUs API responses (its "source" key names them: repository, path, commit, licence);
- "unknown": nobody knows the size, and the count is None: the licence rule cannot verify it.

The bundled table is generated, never written by hand:

    python -m auditor.vm_sizes --generate RESPONSE.json [RESPONSE.json ...] [--output PATH]

Each RESPONSE is a `GET /subscriptions/{id}/providers/Microsoft.Compute/skus` answer: the
body (`{"value": [...]}`), a Microsoft REST example (`{"responses": {"200": {"body": ...}}}`),
or an SDK test recording that holds such answers (Java `networkCallRecords`, .NET `Entries`,
vcrpy `interactions`). Items of resourceType virtualMachines give `vCPUs` and, where the API
has it, `vCPUsAvailable`. A size whose responses disagree, or a constrained size no response
gives `vCPUsAvailable` for, is left out (and listed in the table's header): a size the table
does not know is "unknown", never guessed.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .errors import AuditorError, InputError
from .files import TEXT_FILE_LIMIT, json_values, read_input, too_dense
from .text import for_terminal

MAX_NAME = 128  # the longest size names are under 40 characters
MAX_VCPUS = 65536  # the largest Azure VMs have under 2,000 vCPUs; more is not a count
KIND = "auditor.vm_sizes"
GENERATE_COMMAND = "python -m auditor.vm_sizes --generate"
# --generate reads regular files of at most this many bytes: the recordings behind the bundled
# table are under 1 MiB each (canListSkus.json, every region, is 0.8 MiB)
MAX_INPUT_SIZE = TEXT_FILE_LIMIT
# "Standard_E8-2s_v3", "Standard_M416-208ms_v2", "Standard_GS4-8": vCPUs minus disabled ones
_CONSTRAINED = re.compile(r"^[a-z]+_[a-z]+\d+-\d+")
_DIGITS = re.compile(r"[0-9]{1,6}")

# Where the recorded responses behind the bundled table come from, by the SHA-256 of the file
# given to --generate; the generated header repeats this for every input it recognises.
PROVENANCE: dict[str, dict[str, str]] = {
    "c7703ca942a46f1192f978d3e437afcc334798a5815c0cf005f842b25290c435": {
        "repository": "Azure/azure-libraries-for-java",
        "path": "azure-mgmt-compute/src/test/resources/session-records/canListSkus.json",
        "commit": "50afe6670f826c21750d511fea7d5f566654dd9d",
        "licence": "MIT (Copyright (c) 2015 Microsoft)",
        "recorded": "2018-09-19, api-version 2017-09-01, every region",
    },
    "c2160d780e079b519217d18a266ef786c80775c0ff54765074f9048650d23ad8": {
        "repository": "Azure/azure-libraries-for-java",
        "path": "azure-mgmt-compute/src/test/resources/session-records/canListSkusByRegion.json",
        "commit": "fd2102a9d5bd45dd9ef198887ec2d86b0d3cd46a",
        "licence": "MIT (Copyright (c) 2015 Microsoft)",
        "recorded": "2020-03-05, api-version 2019-04-01, location eq 'eastus2'",
    },
    "ab3551cdb4e5a6ff1ae3a1d9be05428fdff9ac2bc311436f814a3669f695affd": {
        "repository": "Azure/skewer",
        "path": "testdata/eastus.json",
        "commit": "ab19a3fa578b4e07d8525e4db32c98667b9cd1f2",
        "licence": "MIT (Copyright (c) Microsoft Corporation)",
        "recorded": "2020-08, the Resource SKUs of eastus",
    },
    "34e85d0421bea3478920538d56eadc90cab8712003934bf9a98c61def671f13a": {
        "repository": "Azure/azure-rest-api-specs",
        "path": "specification/compute/resource-manager/Microsoft.Compute/Skus/stable/2021-07-01/examples/skus/"
                "ListAvailableResourceSkusForARegion.json",
        "commit": "dd68c545b43b91166baa3345006f29c301e8984b",
        "licence": "MIT (Copyright (c) Microsoft Corporation)",
        "recorded": "Microsoft's published example, api-version 2021-07-01, location eq 'westus'",
    },
}


# -- counts ------------------------------------------------------------------------------


def vcpus(size: str | None, collected: Mapping[str, int] | None = None,
          available: Any = None, active_only: bool = True) -> tuple[int | None, str]:
    """The vCPUs licences count for a VM of `size`, and the basis of that count.

    `available` is the VM's `properties.hardwareProfile.vmSizeProperties.vCPUsAvailable`;
    `collected` is what this scan read from the Resource SKUs API (`vm_sizes(sources)`).
    With `active_only=False` it is all the size's vCPUs, constrained or not (what Azure
    prices the operating system on; pass `vm_sizes(sources, active=False)` as `collected`).
    Names compare case-insensitively; anything that is not a size name or a count is ignored.
    """
    name = size_key(size)
    bundled_entry = table().get(name) if name is not None else None
    if not active_only:
        if name is None:
            return None, "unknown"
        found = count(collected.get(name)) if isinstance(collected, Mapping) else None
        if found is not None:
            return found, "resource-skus"
        found = count(bundled_entry.get("vcpus")) if bundled_entry is not None else None
        return (found, "bundled") if found is not None else (None, "unknown")
    active = count(available)
    if active is not None:
        total = count(bundled_entry.get("vcpus")) if bundled_entry is not None else None
        if total is None or active <= total:  # a size cannot have more active vCPUs than it has
            return active, "vmSizeProperties"
    if name is None:
        return None, "unknown"
    if isinstance(collected, Mapping):
        found = count(collected.get(name))
        if found is not None:
            return found, "resource-skus"
    if bundled_entry is not None:
        found = effective(bundled_entry)
        # Only constrained sizes (E8-2ds_v5) have fewer active vCPUs than vCPUs; a recorded
        # answer that says so of another size (Standard_DS14: 16 and 8) is not to be trusted
        # either way, so that size's claims are not judged rather than under-counted.
        if found != count(bundled_entry.get("vcpus")) and not _CONSTRAINED.match(name):
            return None, "unknown"
        return found, "bundled"
    return None, "unknown"


def vm_sizes(sources: Iterable[Any] | None, active: bool = True) -> dict[str, int]:
    """Size -> vCPUs licences count, merged from the `details["vm_sizes"]` the Azure source
    stored on a snapshot's sources (Source objects, or their JSON form): the active vCPUs,
    or with `active=False` all the size's vCPUs. A size two sources disagree about is left
    out, so the bundled table or "unknown" decides it instead."""
    merged: dict[str, int] = {}
    disagreed: set[str] = set()
    for source in sources or ():
        details = source.get("details") if isinstance(source, Mapping) else getattr(source, "details", None)
        sizes = details.get("vm_sizes") if isinstance(details, Mapping) else None
        if not isinstance(sizes, Mapping):
            continue
        for raw_name, entry in sizes.items():
            name = size_key(raw_name)
            found = effective(entry) if active else count(entry.get("vcpus")) if isinstance(entry, Mapping) else None
            if name is None or found is None:
                continue
            if merged.setdefault(name, found) != found:
                disagreed.add(name)
    for name in disagreed:
        del merged[name]
    return merged


def effective(entry: Any) -> int | None:
    """The count of one `{"vcpus": n, "vcpus_available": m}` entry: m when given, else n;
    None when either is not a count or m exceeds n."""
    if not isinstance(entry, Mapping):
        return None
    total = count(entry.get("vcpus"))
    if total is None:
        return None
    if "vcpus_available" not in entry:
        return total
    active = count(entry.get("vcpus_available"))
    return active if active is not None and active <= total else None


def count(value: Any) -> int | None:
    """A positive vCPU count from an int or a string of digits (as the Resource SKUs API
    gives capabilities); None for anything else (bools, floats, signs, absurd sizes)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        number = int(value)
    else:
        return None
    return number if 0 < number <= MAX_VCPUS else None


def size_key(size: Any) -> str | None:
    """The lower-case form sizes are looked up by; None for what cannot be a size name."""
    if not isinstance(size, str) or not size or len(size) > MAX_NAME:
        return None
    name = size.strip().lower()
    return name or None


@functools.cache
def table() -> Mapping[str, Mapping[str, int]]:
    """The bundled table (size -> {"vcpus", "vcpus_available"?}), read once."""
    text = resources.files("auditor").joinpath("data", "vm_sizes.json").read_text(encoding="utf-8")
    document = json.loads(text)
    return MappingProxyType({name: MappingProxyType(dict(entry)) for name, entry in document["sizes"].items()})


# -- generating the bundled table ----------------------------------------------------------


class NotSkus(InputError, ValueError):
    """A file that holds no Resource SKUs API response (an input error: exit 2)."""


def responses(document: Any) -> Iterator[Any]:
    """The Resource SKUs answers in one parsed file: an answer itself, a REST example, a
    recording of SDK tests (Java, .NET, vcrpy), or the list `az vm list-skus` prints."""
    if isinstance(document, list):
        yield {"value": document}
    elif not isinstance(document, dict):
        raise NotSkus("not a Resource SKUs response")
    elif isinstance(document.get("value"), list):
        yield document
    elif isinstance(document.get("responses"), dict):
        yield _field(document, "responses", "200", "body")
    elif isinstance(document.get("networkCallRecords"), list):  # Java SDK test recordings
        for record in _dicts(document["networkCallRecords"]):
            if _skus_uri(record.get("Uri")):
                yield _body(_field(record, "Response", "Body"))
    elif isinstance(document.get("Entries"), list):  # .NET SDK test recordings
        for entry in _dicts(document["Entries"]):
            if _skus_uri(entry.get("RequestUri")):
                yield _body(entry.get("ResponseBody"))
    elif isinstance(document.get("interactions"), list):  # vcrpy (azure-cli, azure-sdk-for-python)
        for interaction in _dicts(document["interactions"]):
            if _skus_uri(_field(interaction, "request", "uri")):
                yield _body(_field(interaction, "response", "body", "string"))
    else:
        raise NotSkus("not a Resource SKUs response: no `value`, `responses` or recorded requests")


def _dicts(items: list[Any]) -> Iterator[dict[str, Any]]:
    return (item for item in items if isinstance(item, dict))


def _field(value: Any, *keys: str) -> Any:
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _skus_uri(uri: Any) -> bool:
    return isinstance(uri, str) and "/providers/microsoft.compute/skus" in uri.lower()


def _too_dense(text: str | bytes) -> bool:
    """Denser than any Resource SKUs answer: refused before it is parsed, as snapshots are."""
    return too_dense(json_values(text), len(text))


def _parse(content: bytes, where: str) -> Any:
    """One input file as JSON or, failing that, YAML (vcrpy recordings), within the limits
    the scan applies: nesting, density and the YAML reader's node and alias limits."""
    if _too_dense(content):
        raise NotSkus("far denser than any Resource SKUs response (it would take many times its size in "
                      "memory)", where=where)
    try:
        return json.loads(content)
    except RecursionError:
        raise NotSkus("JSON nested too deeply", where=where) from None
    except ValueError:
        pass  # not JSON: YAML, or neither
    from .yamlfile import load_yaml_text

    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise NotSkus("neither JSON nor YAML (not UTF-8 text)", where=where) from None
    try:
        return load_yaml_text(text, where)
    except InputError as exc:
        syntax = exc.message.startswith(("YAML syntax error", "YAML error"))
        raise NotSkus(f"neither JSON nor YAML ({exc.message})" if syntax else exc.message,
                      where=where, line=exc.line) from None


def _body(body: Any) -> Any:
    """A recorded answer's body: parsed when it is JSON text."""
    if not isinstance(body, str | bytes) or not body:
        return body
    if _too_dense(body):
        raise NotSkus("a recorded response body is far denser than any Resource SKUs response")
    try:
        return json.loads(body)
    except RecursionError:
        raise NotSkus("a recorded response body is JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of 4,300+ digits
        raise NotSkus(f"a recorded response body is not JSON ({str(exc).split(';')[0]})") from None


def observations(body: Any) -> Iterator[tuple[str, int, int | None]]:
    """(lower-case size, vCPUs, vCPUsAvailable or None) for each VM size of one answer."""
    items = body.get("value") if isinstance(body, dict) else None
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        resource_type = item.get("resourceType")
        if not isinstance(resource_type, str) or resource_type.lower() != "virtualmachines":
            continue
        name = size_key(item.get("name"))  # None for a name that is not text
        capabilities = item.get("capabilities") if isinstance(item.get("capabilities"), list) else []
        # a capability whose name is not text (a list, a mapping) names nothing
        values = {c["name"]: c.get("value") for c in capabilities
                  if isinstance(c, dict) and isinstance(c.get("name"), str)}
        total = count(values.get("vCPUs"))
        if name is not None and total is not None:
            yield name, total, count(values.get("vCPUsAvailable"))


def build_table(inputs: Iterable[tuple[str, bytes] | tuple[str, bytes, str]]) -> dict[str, Any]:
    """The bundled table's document from (file name, content) pairs; independent of their order.

    A third item, the path as given, names the file in errors (else its name does). A file
    that holds no answer, or is too deep or dense to parse, raises NotSkus naming it."""
    sources = []
    seen: dict[str, dict[str, dict[int, set[str]]]] = {}
    for label, content, *given in inputs:
        where = given[0] if given else label
        digest = hashlib.sha256(content).hexdigest()
        sources.append({**PROVENANCE.get(digest, {"file": label}), "sha256": digest})
        document = _parse(content, where)
        try:
            answers = list(responses(document))
        except NotSkus as exc:
            raise NotSkus(exc.message, where=where) from None
        for body in answers:
            for name, total, active in observations(body):
                found = seen.setdefault(name, {"vcpus": {}, "vcpus_available": {}})
                found["vcpus"].setdefault(total, set()).add(digest)
                if active is not None:
                    found["vcpus_available"].setdefault(active, set()).add(digest)
    sizes: dict[str, dict[str, int]] = {}
    conflicts: dict[str, str] = {}
    left_out: dict[str, str] = {}
    for name in sorted(seen):
        totals, actives = seen[name]["vcpus"], seen[name]["vcpus_available"]
        if len(totals) > 1 or len(actives) > 1:
            conflicts[name] = "; ".join(
                f"{key} {value} in {', '.join(sorted(d[:12] for d in files))}"
                for key, values in (("vCPUs", totals), ("vCPUsAvailable", actives)) if len(values) > 1
                for value, files in sorted(values.items()))
            continue
        [total] = totals
        entry = {"vcpus": total}
        if actives:
            [active] = actives
            if active > total:
                conflicts[name] = f"vCPUsAvailable {active} above vCPUs {total}"
                continue
            entry["vcpus_available"] = active
        elif _CONSTRAINED.match(name):
            left_out[name] = "constrained size, and no response gives its vCPUsAvailable"
            continue
        sizes[name] = entry
    sources.sort(key=lambda s: (s.get("repository", ""), s.get("path", s.get("file", "")), s["sha256"]))
    return {"kind": KIND, "generated_by": GENERATE_COMMAND + " " + " ".join(
                sorted(str(s.get("path", s.get("file", ""))).rsplit("/", 1)[-1] for s in sources)),
            "source": sources, "count": len(sizes), "conflicts": conflicts, "left_out": left_out, "sizes": sizes}


def render(document: dict[str, Any]) -> str:
    """The table as text: the header indented, then one size a line (small, readable diffs)."""
    header = json.dumps({key: value for key, value in document.items() if key != "sizes"}, indent=2,
                        ensure_ascii=False)
    sizes = document["sizes"]
    rows = ",\n".join(f"    {json.dumps(name)}: {json.dumps(sizes[name], sort_keys=True)}" for name in sorted(sizes))
    return header[:-1].rstrip() + ',\n  "sizes": {\n' + rows + "\n  }\n}\n"


def default_output() -> Path:
    """auditor/data/vm_sizes.json beside this module (in a checkout, the file to commit)."""
    return Path(__file__).resolve().parent / "data" / "vm_sizes.json"


def main(argv: list[str] | None = None) -> int:
    """`python -m auditor.vm_sizes --generate RESPONSE.json [...] [--output PATH]`."""
    parser = argparse.ArgumentParser(prog="python -m auditor.vm_sizes",
                                     description="Generate the bundled VM size table from Resource SKUs "
                                                 "API responses.")
    parser.add_argument("--generate", nargs="+", metavar="RESPONSE", required=True, type=Path,
                        help="Resource SKUs answers, REST examples or SDK recordings that hold them")
    parser.add_argument("--output", type=Path, default=None, help="where to write (default: the bundled table)")
    args = parser.parse_args(argv)
    output = args.output or default_output()
    try:
        document = _generate(args.generate, output)
    except AuditorError as error:  # one line naming the file, exit 2, as auditor's own CLI prints them
        print(f"auditor: error: {for_terminal(error.one_line())}", file=sys.stderr)
        return error.exit_code
    print(f"wrote {document['count']} sizes to {for_terminal(output)} ({len(document['conflicts'])} "
          f"conflicting, {len(document['left_out'])} left out)")
    return 0


def _generate(paths: list[Path], output: Path) -> dict[str, Any]:
    """Read the regular files `paths`, build the table and write it atomically to `output`;
    every problem is an InputError naming its file."""
    inputs = [(path.name, read_input(path, "Resource SKUs response", limit=MAX_INPUT_SIZE), str(path))
              for path in paths]
    document = build_table(inputs)
    if not document["sizes"]:
        raise InputError("the responses hold no virtualMachines SKU with a vCPUs capability",
                         where=", ".join(str(path) for path in paths))
    from .atomic import write_text_atomic

    where = str(output)
    if not output.parent.is_dir():  # the writer would create it: a mistyped path is an error instead
        state = "is not a directory" if output.parent.exists() else "does not exist"
        raise InputError(f"cannot write: the folder {output.parent} {state}", where=where)
    try:
        write_text_atomic(output, render(document))
    except OSError as exc:  # a full disk, a file system that refuses the rename
        raise InputError(f"cannot write: {exc.strerror or exc}", where=where) from None
    return document


if __name__ == "__main__":
    sys.exit(main())
