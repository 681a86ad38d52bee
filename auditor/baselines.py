"""Baseline tables: lifecycle dates, network zones, licence entitlements.

A baseline file holds `baselines:`, a mapping of named tables (`lifecycle.esxi`,
`network.zones`, `licensing.entitlements`). Files load in order; a later file replaces a
whole table of the same name, which is how a user overrides what we ship. Rules read
tables and values through `{baseline: NAME}` or `{baseline: NAME.KEY}`; a reference that
names nothing is an error when the rules are compiled, never during a scan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from .errors import BaselineError, InputError
from .files import read_input
from .patterns import fullmatch, glob
from .yamlfile import LinedDict, line_of, load_yaml

ALLOWED_FILE_KEYS = {"baselines", "description", "version"}


@dataclass
class Table:
    """One named table and where it was defined."""

    name: str
    value: Any
    file: str
    line: int | None


@dataclass
class Baselines:
    """All loaded tables by name, the last definition of a name winning."""

    tables: dict[str, Table] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def resolve(self, reference: str) -> tuple[Any, Table]:
        """Value of `NAME` or `NAME.KEY[.KEY...]`; KeyError with a reason if missing."""
        name = reference
        rest = ""
        while name not in self.tables:
            if "." not in name:
                raise KeyError(f"no baseline table named '{reference}' "
                               f"(loaded: {', '.join(sorted(self.tables)) or 'none'})")
            name, _, last = name.rpartition(".")
            rest = f"{last}.{rest}" if rest else last
        table = self.tables[name]
        if not rest:
            return table.value, table
        value = table.value
        # a key may itself hold dots (versions like "6.7"), so try the whole rest first
        if isinstance(value, dict) and rest in value:
            return value[rest], table
        for key in rest.split("."):
            if not isinstance(value, dict) or key not in value:
                raise KeyError(f"baseline table '{name}' ({table.file}) has no key '{rest}'")
            value = value[key]
        return value, table


def load_baselines(paths: list[Path]) -> Baselines:
    """Load baseline files in order; errors name the file and line."""
    baselines = Baselines()
    for path in paths:
        files = sorted(path.glob("*.y*ml")) if path.is_dir() else [path]
        for file in files:
            if path.is_dir() and is_baseline_file(file) is False:  # unreadable: the load says why
                continue
            _load_file(file, baselines)
    return baselines


def is_baseline_file(file: Path) -> bool | None:
    """Whether a YAML file in a folder is a baseline file (it has `baselines:` at top level)
    rather than a rule pack, told by a text check without parsing; None when it cannot be
    read (a FIFO or a device among the files, say: read through read_input, it can neither
    hang nor fill memory), so that loading it reports the problem with its name."""
    try:
        text = read_input(file, "YAML file").decode("utf-8")
    except (InputError, UnicodeDecodeError):
        return None
    return re.search(r"^baselines\s*:", text, re.MULTILINE) is not None


def _load_file(file: Path, baselines: Baselines) -> None:
    where = str(file)
    document = load_yaml(file)
    if not isinstance(document, LinedDict) or "baselines" not in document:
        raise BaselineError("a baseline file needs a top-level 'baselines:' mapping",
                            where=where, line=line_of(document, 1))
    for key in document:
        if key not in ALLOWED_FILE_KEYS:
            raise BaselineError(f"unknown key '{key}' (expected: "
                                f"{', '.join(sorted(ALLOWED_FILE_KEYS))})",
                                where=where, line=document.line_of(key))
    tables = document["baselines"]
    if not isinstance(tables, LinedDict):
        raise BaselineError("'baselines' must be a mapping of table name to table",
                            where=where, line=document.line_of("baselines"))
    for name, value in tables.items():
        baselines.tables[name] = Table(name=name, value=value, file=where,
                                       line=tables.line_of(name))
    baselines.files.append(where)


# --- lifecycle tables -----------------------------------------------------------------

_VERSION = re.compile(r"(\d+(?:\.\d+)*)")


def parse_version(text: Any) -> tuple[int, ...] | None:
    """Numeric components of a dotted version: '6.7.0' -> (6, 7, 0); None if it has none.

    The first dotted-number run counts ('8.0.2 build-123' -> (8, 0, 2), 'vmx-13' -> (13,)),
    so that builds and suffixes do not compare as more version components.
    """
    if isinstance(text, bool):
        return None
    if isinstance(text, int):
        return (text,)
    if not isinstance(text, str):
        return None
    match = _VERSION.search(text)
    if match is None:
        return None
    parts = match.group(1).split(".")
    if any(len(part) > 18 for part in parts):  # no real version has such a component, and
        return None                            # int() refuses past 4,300 digits
    return tuple(int(part) for part in parts)


def compare_versions(left: tuple[int, ...], right: tuple[int, ...]) -> int:
    """-1, 0 or 1, padding the shorter with zeros (6.7 == 6.7.0 < 6.10)."""
    width = max(len(left), len(right))
    a = left + (0,) * (width - len(left))
    b = right + (0,) * (width - len(right))
    return (a > b) - (a < b)


# an ISO date, optionally with a time of day (ARM writes 7 fractional digits) and offset
_ISO_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}"
                            r"(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:[Zz]|[+-]\d{2}:?\d{2})?)?")


def parse_date(value: Any) -> date | None:
    """An ISO date or date-time as a date; None when it is neither (`2027-01-01Tgarbage`
    is not a date)."""
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not value.isascii() or _ISO_DATE_TIME.fullmatch(value) is None:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


EXTENDED_PROGRAMME_STATES = ("bought", "free", "free-on-azure", "not-bought")


@dataclass(frozen=True)
class ExtendedLane:
    """Paid or granted security updates after end of general support (Windows Server ESU,
    Ubuntu Pro ESM, RHEL ELS, SLES LTSS, Debian LTS): its own lane, which covers a machine
    only where the organisation is enrolled (support.extended_programmes)."""

    programme: str
    until: date
    until_on_azure: date | None = None  # Microsoft gives it free to machines in Azure, until then


@dataclass(frozen=True)
class LifecycleRow:
    """Support dates of one product version (or guest id, or image name)."""

    key: str
    end_of_support: date
    extended: ExtendedLane | None
    source: str | None
    line: int | None
    end_of_technical_guidance: date | None = None
    unverified: bool = False  # the vendor has not confirmed the dates (an estimate)

    @property
    def extended_until(self) -> date | None:
        """The last day of the extended lane, if the product has one."""
        return self.extended.until if self.extended else None


class LifecycleTable:
    """Looks up the lifecycle row for an observed version, guest id or image name.

    Lookup order: exact key; the longest version key that is a component prefix of the
    observed version ('6.7' covers '6.7.0 build 1234', '2014' covers '2014-sp3' when there
    is no row of its own); the first glob key that matches. Results are memoised per
    observed value, since estates repeat the same few versions.
    """

    def __init__(self, table: Table):
        self.name = table.name
        self.file = table.file
        self.rows: dict[str, LifecycleRow] = {}
        if not isinstance(table.value, dict):
            raise BaselineError(f"lifecycle table '{table.name}' must map versions to dates",
                                where=table.file, line=table.line)
        for key, row in table.value.items():
            self.rows[str(key)] = self._row(str(key), row, table)
        self._versioned = sorted(
            ((parse_version(k), r) for k, r in self.rows.items()
             if re.fullmatch(r"\d+(\.\d+)*", k)),
            key=lambda pair: -len(pair[0] or ()))
        self._globs = []
        for key, row in self.rows.items():
            if any(c in key for c in "*?["):
                try:
                    self._globs.append((glob(key), row))
                except ValueError as error:
                    raise BaselineError(f"lifecycle table '{table.name}' row '{key}': not a valid pattern ({error})",
                                        where=table.file, line=row.line) from None
        self._memo: dict[Any, LifecycleRow | None] = {}

    @staticmethod
    def _row(key: str, row: Any, table: Table) -> LifecycleRow:
        line = line_of(row, table.line)

        def fail(message: str) -> BaselineError:
            return BaselineError(f"lifecycle table '{table.name}' row '{key}': {message}",
                                 where=table.file, line=line)

        if isinstance(row, str):
            row = {"end_of_support": row}
        if not isinstance(row, dict):
            raise fail("must be a mapping with end_of_support")
        end = parse_date(row.get("end_of_support"))
        if end is None:
            raise fail("needs end_of_support as an ISO date")
        guidance = row.get("end_of_technical_guidance")
        guidance_date = parse_date(guidance) if guidance is not None else None
        if guidance is not None and guidance_date is None:
            raise fail("end_of_technical_guidance is not an ISO date")
        extended = None
        if row.get("extended") is not None:
            lane = row["extended"]
            if not isinstance(lane, dict) or not isinstance(lane.get("programme"), str) \
                    or parse_date(lane.get("until")) is None:
                raise fail("extended needs {programme: NAME, until: ISO date}")
            on_azure = lane.get("until_on_azure")
            if on_azure is not None and parse_date(on_azure) is None:
                raise fail("extended.until_on_azure is not an ISO date")
            extended = ExtendedLane(programme=lane["programme"], until=parse_date(lane["until"]),
                                    until_on_azure=parse_date(on_azure) if on_azure is not None else None)
        elif row.get("extended_support_until") is not None:  # the form of auditor 0.x baselines
            until = parse_date(row["extended_support_until"])
            if until is None:
                raise fail("extended_support_until is not an ISO date")
            extended = ExtendedLane(programme="extended-support", until=until)
        source = row.get("source")
        return LifecycleRow(key=key, end_of_support=end, extended=extended,
                            source=source if isinstance(source, str) else None, line=line,
                            end_of_technical_guidance=guidance_date, unverified=row.get("unverified") is True)

    def lookup(self, observed: Any) -> LifecycleRow | None:
        """The row that covers `observed`, or None when the table does not know it."""
        if isinstance(observed, (dict, list)):
            return None
        try:
            return self._memo[observed]
        except KeyError:
            pass
        row = self._find(observed)
        if len(self._memo) < 100_000:
            self._memo[observed] = row
        return row

    def _find(self, observed: Any) -> LifecycleRow | None:
        text = str(observed)
        if text in self.rows:
            return self.rows[text]
        # "2008-r2-sp3" without a row of its own is covered by "2008-r2", never by "2008"
        trimmed = text
        while "-" in trimmed:
            trimmed = trimmed.rsplit("-", 1)[0]
            if trimmed in self.rows:
                return self.rows[trimmed]
        version = parse_version(text)
        if version is not None:
            for key_version, row in self._versioned:
                if key_version and version[:len(key_version)] == key_version:
                    return row
        for pattern, row in self._globs:
            if fullmatch(pattern, text):
                return row
        return None


# --- minimum patch levels ---------------------------------------------------------------

@dataclass(frozen=True)
class Minimum:
    """The lowest acceptable version of one release line, and the advisory it comes from."""

    line: str
    minimum: str
    advisory: str | None
    source: str | None
    note: str | None
    parsed_line: tuple[int, ...]
    parsed_minimum: tuple[int, ...]


class MinimumTable:
    """Release line -> minimum version (`support.minimum_builds.esxi`). A row is either a
    version (`"8.0.3": "8.0.3.24585383"`) or {minimum, advisory, source}. The longest line
    that is a component prefix of an observed version decides ('8.0.2' before '8.0');
    a version whose line has no row has no minimum, which is "not evaluated", not "current".
    """

    def __init__(self, table: Table):
        if not isinstance(table.value, dict):
            raise BaselineError(f"'{table.name}' must map release lines to minimum versions",
                                where=table.file, line=table.line)
        self.name = table.name
        self.rows: list[Minimum] = []
        for line, row in table.value.items():
            spec = row if isinstance(row, dict) else {"minimum": row}
            minimum = spec.get("minimum")
            parsed_line = parse_version(str(line))
            parsed_minimum = parse_version(str(minimum)) if isinstance(minimum, (str, int)) else None
            if parsed_line is None or parsed_minimum is None:
                raise BaselineError(f"'{table.name}' row {line!r}: {minimum!r} is not a dotted version",
                                    where=table.file, line=line_of(row, table.line))
            if compare_versions(parsed_minimum, parsed_line) < 0:
                # a minimum of another, older line would let every build of this one pass
                raise BaselineError(f"'{table.name}' row {line!r}: minimum {minimum} is older than the line itself",
                                    where=table.file, line=line_of(row, table.line))
            advisory, source, note = spec.get("advisory"), spec.get("source"), spec.get("note")
            self.rows.append(Minimum(line=str(line), minimum=str(minimum), note=note if isinstance(note, str) else None,
                                     advisory=advisory if isinstance(advisory, str) else None,
                                     source=source if isinstance(source, str) else None,
                                     parsed_line=parsed_line, parsed_minimum=parsed_minimum))
        self.rows.sort(key=lambda row: len(row.parsed_line), reverse=True)  # most specific first

    def lookup(self, version: tuple[int, ...]) -> Minimum | None:
        """The row of the release line `version` belongs to, or None."""
        for row in self.rows:
            if version[:len(row.parsed_line)] == row.parsed_line:
                return row
        return None

    def below(self, observed: Any) -> bool | None:
        """Whether `observed` is below its line's minimum; None when it is no version or its
        line has no row."""
        version = parse_version(observed) if isinstance(observed, str) else None
        row = self.lookup(version) if version is not None else None
        if row is None or version is None:
            return None
        return compare_versions(version, row.parsed_minimum) < 0
