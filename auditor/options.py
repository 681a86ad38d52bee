"""Options: one table of every option, filled from flags, environment and a config file alike.

Each command's options are declared once here (`SPECS`). The CLI builds its argument parser
from the table, and `resolve()` merges four layers, the first that sets an option winning:

    command-line flag  >  AUDITOR_<OPTION> environment variable  >  config file  >  default

The config file is `auditor.yaml` in the working folder, or the file `--config` (or
`AUDITOR_CONFIG`) names. Its top-level keys are option names (`fail-on: high`) that apply
to every command that has the option, and sections named after commands (`scan:`,
`collect:`, `rules:`, `diff:`, `report:`, `history:`) whose keys apply to that command
only and win over the top-level ones. List-valued options take a YAML list, or text with
commas; in the environment, text with commas (`AUDITOR_SNAPSHOT=a.json,b.json`). Repeated
flags add up: `--snapshot a.json --snapshot b.json` scans both.

Secrets never come from here: the vSphere password only from VSPHERE_PASSWORD or a
password file, Azure credentials only from the Azure SDK's own chain.

The typed option objects (`ScanOptions`, `CollectOptions`, ...) are what the pipeline
modules take; the argparse namespace never leaves the CLI.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from .blob import BlobLocation, is_blob, looks_like_blob, parse_location
from .errors import InputError
from .files import DEFAULT_INPUT_LIMIT
from .history import HistoryLocation, history_location

SEVERITIES = ("critical", "high", "medium", "low", "info")
REPORT_FORMATS = ("json", "sarif", "html", "junit", "csv")
DEFAULT_FORMATS = ("json", "sarif", "html", "junit")
AZURE_CLOUDS = ("AzureCloud", "AzureUSGovernment", "AzureChinaCloud")
CONFIG_FILE = "auditor.yaml"
ENV_PREFIX = "AUDITOR_"
COMMANDS = ("scan", "collect vsphere", "collect azure", "rules list", "rules validate", "diff", "report",
            "history")


class UsageError(InputError):
    """Options that do not go together, or a value of the wrong form (exit 2)."""


# --- value parsers: text (from a flag, the environment or the config file) -> value -------

def as_date(text: str) -> date:
    """`today` or an ISO date (YYYY-MM-DD)."""
    if text == "today":
        return date.today()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'{text}' is not an ISO date (YYYY-MM-DD)") from None


def as_seconds(text: str) -> float:
    """A positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"'{text}' is not a number of seconds") from None
    if not 0 < value < 86_400:
        raise ValueError(f"'{text}' must be more than 0 and less than 86400 seconds")
    return value


def as_count(text: str) -> int:
    """A whole number of at least 1."""
    if not text.isascii() or not text.strip().isdigit() or len(text.strip()) > 9 or int(text) < 1:
        raise ValueError(f"'{text}' is not a whole number of at least 1")
    return int(text)


_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}


def as_size(text: str) -> int:
    """A size in bytes: a whole number with an optional K, M, G or T (powers of 1024)."""
    spoken = text.strip().upper().removesuffix("IB").removesuffix("B")
    number, unit = (spoken[:-1], spoken[-1]) if spoken and spoken[-1] in _SIZE_UNITS else (spoken, "")
    if not (number.isascii() and number.isdigit()) or len(number) > 12 or int(number) < 1:
        raise ValueError(f"'{text}' is not a size (a whole number of bytes, or with K, M, G or T)")
    size = int(number) * _SIZE_UNITS[unit]
    if size > _SIZE_UNITS["T"] * 64:
        raise ValueError(f"'{text}' is more than 64T")
    return size


def as_flag(text: str) -> bool:
    """An on/off switch as text (environment and config file)."""
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"'{text}' is not true or false")


def as_text(text: str) -> str:
    """Non-empty text."""
    if not text.strip():
        raise ValueError("must not be empty")
    return text


def as_path(text: str) -> Path:
    """A file or folder path."""
    if not text.strip():
        raise ValueError("must not be empty")
    return Path(text)


def as_location(text: str) -> Path | BlobLocation:
    """A local path, or a place in Azure Blob Storage (`az://container/path`, or the
    account's blob URL): see auditor/blob.py."""
    return parse_location(text.strip()) if looks_like_blob(text.strip()) else as_path(text)


_DURATION_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION_PART = re.compile(r"(\d{1,6})(min|[smhdw])")


def as_duration(text: str) -> float:
    """A duration in seconds from `36h`, `2d`, `90m`, `1d12h` (units s, m or min, h, d, w)."""
    spoken = text.strip().lower().replace(" ", "")
    parts = _DURATION_PART.findall(spoken)
    if not parts or "".join(number + unit for number, unit in parts) != spoken:
        raise ValueError(f"'{text}' is not a duration (a number and a unit: 36h, 2d, 90m, 1w)")
    seconds = sum(int(number) * _DURATION_UNITS[unit] for number, unit in parts)
    if not 0 < seconds <= 366 * 86_400:
        raise ValueError(f"'{text}' must be more than nothing and at most a year")
    return float(seconds)


# --- the table -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Spec:
    """One option: its name (the long flag without dashes, also its config and environment
    name), how one value is read from text, and how it shows in help."""

    name: str
    help: str
    parse: Callable[[str], Any] = as_text
    many: bool = False  # a list; repeated flags add up
    switch: bool = False  # on/off, takes no value on the command line
    default: Any = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    aliases: tuple[str, ...] = ()  # other spellings accepted on the command line
    group: str | None = None
    # the source this option belongs to ("vsphere", "azure"): naming it without its source
    # is a usage error, since it would otherwise be silently ignored
    needs_source: str | None = None

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.dest.upper()


def _vsphere_specs(prefixed: bool) -> list[Spec]:
    """Connection options of vSphere; `collect vsphere` also takes them without the prefix."""
    def aliases(name: str) -> tuple[str, ...]:
        return () if prefixed else (name,)
    needs = "vsphere" if prefixed else None
    group = "vSphere connection"
    return [
        Spec("vsphere-user", "login user (default: VSPHERE_USER)", metavar="USER", aliases=aliases("user"),
             group=group, needs_source=needs),
        Spec("vsphere-password-file", "file whose first line is the password (default: VSPHERE_PASSWORD; "
             "never the password itself on the command line)", parse=as_path, metavar="FILE",
             aliases=aliases("password-file"), group=group, needs_source=needs),
        Spec("vsphere-ca-bundle", "CA certificates to verify the vCenter with (default: the system's)",
             parse=as_path, metavar="PEM", aliases=aliases("ca-bundle"), group=group, needs_source=needs),
        Spec("vsphere-insecure", "do not verify the vCenter's TLS certificate (a warning is printed)",
             switch=True, default=False, aliases=aliases("insecure"), group=group, needs_source=needs),
        Spec("vsphere-timeout", "seconds each request may take, whole: a new connection's TLS handshake, "
             "sending it, reading all of its answer; connecting gets as long per address (default: 60)",
             parse=as_seconds,
             default=60.0, metavar="SECONDS", aliases=aliases("timeout"), group=group, needs_source=needs),
        Spec("vsphere-page-size", "objects per PropertyCollector page (default: 250)", parse=as_count,
             default=250, metavar="N", aliases=aliases("page-size"), group=group, needs_source=needs),
        Spec("vsphere-parser", "how the PropertyCollector's answers are read: fast (lxml, the default) or pyvmomi "
             "(its own deserialiser: the same snapshot, several times the CPU)", choices=("fast", "pyvmomi"),
             default="fast", aliases=aliases("parser"), group=group, needs_source=needs),
    ]


def _azure_specs(prefixed: bool) -> list[Spec]:
    """Scope and connection options of Azure; `collect azure` also takes them without the prefix."""
    def aliases(name: str) -> tuple[str, ...]:
        return () if prefixed else (name,)
    needs = "azure" if prefixed else None
    group = "Azure scope and connection"
    return [
        Spec("azure-subscription", "subscription to collect; repeat for several (default: every one the "
             "identity can read)", many=True, default=[], metavar="ID", aliases=aliases("subscription"),
             group=group, needs_source=needs),
        Spec("azure-management-group", "collect every subscription under this management group", metavar="ID",
             aliases=aliases("management-group"), group=group, needs_source=needs),
        Spec("azure-cloud", "Azure cloud (default: AzureCloud)", choices=AZURE_CLOUDS, default="AzureCloud",
             aliases=aliases("cloud"), group=group, needs_source=needs),
        Spec("azure-arm-endpoint", "Resource Manager URL, e.g. Azure Stack Hub's https://management.<region>.<fqdn>",
             metavar="URL", aliases=aliases("arm-endpoint"), group=group, needs_source=needs),
        Spec("azure-authority", "Entra ID (or AD FS) authority URL that issues tokens for that Resource Manager",
             metavar="URL", aliases=aliases("authority"), group=group, needs_source=needs),
        Spec("azure-audience", "token audience of Resource Manager (default: the cloud's, or its endpoint URL)",
             metavar="URL", aliases=aliases("audience"), group=group, needs_source=needs),
        Spec("azure-tenant", "tenant of the service principal (default: AZURE_TENANT_ID)", metavar="ID",
             aliases=aliases("tenant"), group=group, needs_source=needs),
        Spec("azure-ca-bundle", "CA certificates to verify Resource Manager and the authority with",
             parse=as_path, metavar="PEM", aliases=aliases("ca-bundle"), group=group, needs_source=needs),
        Spec("azure-timeout", "seconds each request may take, whole, from its connection to the last byte of "
             "its answer; connecting gets as long per address, at most 30 (default: 60)", parse=as_seconds,
             default=60.0, metavar="SECONDS", aliases=aliases("timeout"), group=group, needs_source=needs),
    ]


QUIET = Spec("quiet", "print only errors and warnings", switch=True, default=False, aliases=("q",))
VERBOSE = Spec("verbose", "log each step with its timing on stderr (the same as --log-level info)", switch=True,
               default=False, aliases=("v",))
LOG_LEVEL = Spec("log-level", "how much to log on stderr, with timestamps (default: warning)",
                 choices=("debug", "info", "warning", "error"))
NO_DEFAULT_RULES = Spec("no-default-rules", "do not run the shipped rule packs, only those --rules names",
                        switch=True, default=False)
RULES = Spec("rules", "rule files or folders to run beside the shipped packs (see --no-default-rules)",
             parse=as_path, many=True, default=[], metavar="PATH")
STDOUT = Path("-")  # `--output -`: the one format to standard output
STORAGE_TIMEOUT = Spec("storage-timeout", "seconds each wait of an Azure Blob Storage request may take "
                       "(connecting, each read, each write), when a snapshot or output is in storage "
                       "(default: 60)", parse=as_seconds, default=60.0,
                       metavar="SECONDS")
MAX_INPUT_SIZE = Spec("max-input-size", "largest snapshot or earlier findings file to read, counted after "
                      "gzip decompression (default: 2G)", parse=as_size, default=DEFAULT_INPUT_LIMIT, metavar="SIZE")
CONFIG = Spec("config", f"config file of options (default: ./{CONFIG_FILE} when it exists)", parse=as_path,
              metavar="FILE")

SPECS: dict[str, list[Spec]] = {
    "scan": [
        Spec("snapshot", "snapshot files to scan, or Azure Blob Storage locations (az://container/blob, or the "
             "account's blob URL); a location ending in / reads the newest snapshot of each source under it; "
             "repeat or list several", parse=as_location, many=True, default=[], metavar="LOCATION"),
        Spec("max-age", "a source whose snapshot was collected longer ago than this (90m, 36h, 2d, 1w) counts as "
             "failed: exit 3, naming it and its age", parse=as_duration, metavar="DURATION"),
        Spec("workers", "processes to use (default: one per CPU the process may use). A scan of local JSON Lines "
             "snapshots (.jsonl, .jsonl.gz) alone is evaluated a part at a time in N processes (all Azure "
             "resources, a vCenter, or 5,000 of its VMs), so memory follows the largest part (one per process) and "
             "the findings, not the estate; with 1, another kind of snapshot or a live source, the whole estate is "
             "read into this process. Up to N processes write the report formats side by side into a local "
             "output folder", parse=as_count, metavar="N"),
        Spec("sample", "scan the bundled sample estate (also the default when no source is named)", switch=True,
             default=False),
        RULES,
        NO_DEFAULT_RULES,
        Spec("checks", "run only the rules whose ids match these globs (AZ-NET-*, VS-SUP-001)", many=True,
             default=[], metavar="ID"),
        Spec("skip-checks", "do not run the rules whose ids match these globs", many=True, default=[],
             metavar="ID"),
        Spec("severity", "run and report only rules of these severities (the gate's threshold is --fail-on)",
             many=True, default=[], choices=SEVERITIES, metavar="LIST"),
        Spec("framework", "run only the rules mapped to these frameworks (cis-azure-2.0, vsphere-scg-8, ...) "
             "and print their compliance summary", many=True, default=[], metavar="NAME"),
        Spec("baseline", "baseline files; their tables replace shipped tables of the same name", parse=as_path,
             many=True, default=[], metavar="FILE"),
        Spec("output", "output folder: each run writes DIR/<timestamp>/ and DIR/latest (default: reports); "
             "`-` writes the one --format to standard output; az://container/prefix/ (or a blob URL) uploads "
             "them to Azure Blob Storage", parse=as_location, default=Path("reports"), metavar="DIR",
             aliases=("out", "o")),
        Spec("format", f"comma-separated formats to write (default: {','.join(DEFAULT_FORMATS)}; also csv)",
             many=True, default=list(DEFAULT_FORMATS), choices=REPORT_FORMATS, metavar="LIST", aliases=("f",)),
        Spec("fail-on", "exit 1 on findings at or above this severity, or on `new` ones (see --compare); "
             "default: new with --compare, else never", choices=(*SEVERITIES, "new", "never")),
        Spec("min-severity", "with --compare: the lowest severity of a new finding that fails (default: info)",
             choices=SEVERITIES),
        Spec("compare", "a previous findings.json or SARIF of auditor, or `latest` for the newest run in the "
             "output folder: findings become new/unchanged/updated/absent/unknown", metavar="PREVIOUS"),
        Spec("history", "scan history: a SQLite file (default: OUTPUT/history.db) or PostgreSQL, "
             "postgresql://USER@HOST:PORT/DB (password from PGPASSWORD or ~/.pgpass)", parse=history_location,
             metavar="DB"),
        Spec("gate-provider-findings", "let findings the provider acts on (the hosts of an Azure VMware Solution "
             "private cloud, run by Microsoft) fail the gate too; they are always reported", switch=True,
             default=False),
        Spec("no-history", "do not record this scan in the history", switch=True, default=False),
        Spec("waivers", "YAML of accepted risks (rule, resource, reason, owner, expires); repeat for several",
             parse=as_path, many=True, default=[], metavar="FILE"),
        Spec("as-of", "evaluate dates (end of support, expiry) as of this day (default: today)", parse=as_date,
             metavar="DATE"),
        QUIET,
        VERBOSE,
        LOG_LEVEL,
        Spec("vsphere", "collect these vCenters live (HOST, HOST:PORT, [IPv6]:PORT or https://HOST/sdk) and scan "
             "them with the rest", many=True,
             default=[], metavar="HOST"),
        *_vsphere_specs(prefixed=True),
        Spec("save-snapshot", "also write what was collected live to FILE (.json, .json.gz; .jsonl or .jsonl.gz "
             "for JSON Lines)", parse=as_path,
             metavar="FILE"),
        Spec("azure", "collect Azure live (the --azure-* options choose what) and scan it with the rest",
             switch=True, default=False),
        *_azure_specs(prefixed=True),
        MAX_INPUT_SIZE,
        STORAGE_TIMEOUT,
        CONFIG,
    ],
    "collect vsphere": [
        Spec("vsphere", "vCenter or ESXi host to collect (HOST, HOST:PORT, [IPv6]:PORT or https://HOST/sdk); "
             "repeat for several", many=True, default=[], metavar="HOST", aliases=("server",)),
        Spec("output", "snapshot to write (.json, .json.gz; .jsonl or .jsonl.gz for JSON Lines), or in Azure Blob "
             "Storage: a blob, or a prefix "
             "az://container/path/ that gets <source>/<UTC time>.json.gz", parse=as_location, metavar="FILE",
             aliases=("out", "o")),
        QUIET,
        VERBOSE,
        LOG_LEVEL,
        *_vsphere_specs(prefixed=False),
        STORAGE_TIMEOUT,
        CONFIG,
    ],
    "collect azure": [
        Spec("output", "snapshot to write (.json, .json.gz; .jsonl or .jsonl.gz for JSON Lines), or in Azure Blob "
             "Storage: a blob, or a prefix "
             "az://container/path/ that gets <source>/<UTC time>.json.gz", parse=as_location, metavar="FILE",
             aliases=("out", "o")),
        QUIET,
        VERBOSE,
        LOG_LEVEL,
        *_azure_specs(prefixed=False),
        STORAGE_TIMEOUT,
        CONFIG,
    ],
    "rules list": [
        RULES,
        NO_DEFAULT_RULES,
        Spec("format", "table, markdown or json (default: table)", choices=("table", "markdown", "json"),
             default="table", aliases=("f",)),
        Spec("output", "write to FILE instead of standard output", parse=as_path, metavar="FILE", aliases=("o",)),
        CONFIG,
    ],
    "rules validate": [
        Spec("baseline", "baseline files the rules are compiled against", parse=as_path, many=True, default=[],
             metavar="FILE"),
        CONFIG,
    ],
    "diff": [
        Spec("format", "text, json or html (default: text)", choices=("text", "json", "html"), default="text",
             aliases=("f",)),
        Spec("output", "write to FILE instead of standard output", parse=as_path, metavar="FILE", aliases=("o",)),
        MAX_INPUT_SIZE,
        CONFIG,
    ],
    "history": [
        Spec("history", "scan history: a SQLite file (default: reports/history.db) or PostgreSQL, "
             "postgresql://USER@HOST:PORT/DB (password from PGPASSWORD or ~/.pgpass)", parse=history_location,
             default=Path("reports") / "history.db", metavar="DB", aliases=("db",)),
        Spec("limit", "how many scans to list (default: 20)", parse=as_count, default=20, metavar="N"),
        CONFIG,
    ],
    "report": [
        Spec("from", "the findings.json of an earlier scan", parse=as_path, metavar="FINDINGS_JSON"),
        Spec("format", "the format to write", choices=REPORT_FORMATS, aliases=("f",)),
        Spec("output", "output file (default: the format's file name beside the input; `-`: standard output)",
             parse=as_path, metavar="FILE", aliases=("o",)),
        MAX_INPUT_SIZE,
        CONFIG,
    ],
}
# config file sections: a section applies to every command whose name starts with it
SECTIONS = ("scan", "collect", "rules", "diff", "report", "history")


# --- argparse --------------------------------------------------------------------------------

def _flag_type(spec: Spec) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            if spec.name == "format" and spec.many:
                return _format_list(text, spec)
            if spec.many and spec.parse not in (as_path, as_location):
                # `--severity critical,high` as the environment and config file write it;
                # paths keep their commas
                return [one(part) for part in _items(spec, text)] or [one(text)]
            return one(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    def one(text: str) -> Any:
        value = spec.parse(text)
        if spec.choices and value not in spec.choices:
            raise ValueError(f"invalid choice {value!r} (choose from {', '.join(spec.choices)})")
        return value
    convert.__name__ = spec.name  # argparse names the option's type in its messages
    return convert


class _Accumulate(argparse.Action):
    """A list option: repeated flags and several values add up (`--snapshot a b
    --snapshot c`), and comma lists (`--severity critical,high`) are flattened into them."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        for value in values if isinstance(values, list) else [values]:
            items.extend(value if isinstance(value, list) else [value])
        setattr(namespace, self.dest, items)


def _format_list(text: str, spec: Spec) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in (spec.choices or ())]
    if unknown or not names:
        raise ValueError(f"unknown format {', '.join(unknown) or text!r} (choose from {', '.join(spec.choices or ())})")
    return names


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Add the flags of `command` to its parser. Every flag defaults to 'not given', so
    that the environment and the config file can fill what the command line leaves out."""
    groups: dict[str, Any] = {}
    for spec in SPECS[command]:
        target = parser
        if spec.group:
            target = groups.setdefault(spec.group, parser.add_argument_group(spec.group))
        names = [f"--{spec.name}"] + [f"-{a}" if len(a) == 1 else f"--{a}" for a in spec.aliases]
        kwargs: dict[str, Any] = {"dest": spec.dest, "default": argparse.SUPPRESS, "help": spec.help}
        if spec.switch:
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = _flag_type(spec)
            kwargs["metavar"] = spec.metavar or (("{" + ",".join(spec.choices) + "}") if spec.choices
                                                 else spec.name.upper())
            if spec.many:
                # `--snapshot a b --snapshot c` is a, b and c; `-f json,csv` and `-f json csv` alike
                kwargs["action"] = _Accumulate
                kwargs["nargs"] = "+"
        target.add_argument(*names, **kwargs)


# --- merging the layers ----------------------------------------------------------------------

@dataclass
class Setting:
    """An option's value and where it came from, for messages that name what the user gave."""

    value: Any
    origin: str  # "--flag", "AUDITOR_X", "auditor.yaml:3" or "default"

    @property
    def given(self) -> bool:
        return self.origin != "default"


@dataclass
class ConfigFile:
    """A loaded config file: top-level option values and per-command sections, with lines."""

    path: str
    values: dict[str, tuple[Any, int]] = field(default_factory=dict)
    sections: dict[str, dict[str, tuple[Any, int]]] = field(default_factory=dict)

    def lookup(self, command: str, name: str) -> tuple[Any, int] | None:
        """The file's value for `name` in `command`: its section first, then the top level."""
        family = command.split()[0]
        for section in (command.replace(" ", "-"), family):
            entries = self.sections.get(section)
            if entries and name in entries:
                return entries[name]
        return self.values.get(name)


def load_config(path: Path | None) -> ConfigFile | None:
    """The config file `path` (which must exist), else ./auditor.yaml when it exists."""
    from .yamlfile import LinedDict, load_yaml

    explicit = path is not None
    path = path or Path(CONFIG_FILE)
    if not explicit and not path.is_file():
        return None
    where = str(path)
    document = load_yaml(path)
    if document is None:
        return ConfigFile(where)
    if not isinstance(document, LinedDict):
        raise InputError("a config file is a mapping of option names to values", where=where, line=1)
    known = {spec.name for specs in SPECS.values() for spec in specs} - {"config"}
    config = ConfigFile(where)

    def entries(mapping: LinedDict, names: set[str], label: str) -> dict[str, tuple[Any, int]]:
        found = {}
        for key, value in mapping.items():
            name = str(key).replace("_", "-")
            if name not in names:
                raise InputError(f"unknown option '{key}'{label} (options are the long flags without "
                                 "dashes: fail-on, snapshot, ...)", where=where, line=mapping.line_of(key))
            found[name] = (value, mapping.line_of(key))
        return found

    top: dict[str, Any] = LinedDict()
    top.line, top.key_lines = document.line, {}
    for key, value in document.items():
        section = str(key).replace(" ", "-")
        if section in SECTIONS or section in ("collect-vsphere", "collect-azure", "rules-list", "rules-validate"):
            if not isinstance(value, LinedDict):
                raise InputError(f"section '{key}' must be a mapping of options", where=where,
                                 line=document.line_of(key))
            commands = [c for c in SPECS if c.replace(" ", "-").startswith(section)]
            names = {spec.name for c in commands for spec in SPECS[c]} - {"config"}
            config.sections[section] = entries(value, names, f" in section '{key}'")
        else:
            top[key] = value
            top.key_lines[key] = document.line_of(key)
    config.values = entries(top, known, "")
    return config


def _from_text(spec: Spec, text: str) -> Any:
    if spec.switch:
        return as_flag(text)
    if spec.many:
        return [_checked(spec, spec.parse(part)) for part in _items(spec, text)]
    return _checked(spec, spec.parse(text))


def _items(spec: Spec, text: str) -> list[str]:
    """The items of a list option written as one comma-separated text. A list of vCenters
    with an "@" in it is kept whole: a password in an address may hold commas, and split
    there its first part (no "@" left in it) would be shown in the refusal; whole, it is
    refused without the password (live.vsphere_sources)."""
    if spec.name == "vsphere" and "@" in text:
        return [text.strip()]
    return [part.strip() for part in text.split(",") if part.strip()]


def _checked(spec: Spec, value: Any) -> Any:
    if spec.choices and value not in spec.choices:
        raise ValueError(f"{value!r} is not one of {', '.join(spec.choices)}")
    return value


def _from_config(spec: Spec, value: Any) -> Any:
    """A config file value: YAML may have typed it already (a list, a bool, a number)."""
    if spec.switch:
        if isinstance(value, bool):
            return value
        return as_flag(str(value))
    if spec.many:
        if isinstance(value, (dict, bool)) or value is None:
            raise ValueError("must be a list of plain values, or one")
        items = value if isinstance(value, list) else str(value).split(",")
        if not all(isinstance(item, (str, int, float)) and not isinstance(item, bool) for item in items):
            raise ValueError("must be a list of plain values")
        return [_checked(spec, spec.parse(str(item).strip())) for item in items if str(item).strip()]
    if isinstance(value, (dict, list)) or value is None or isinstance(value, bool):
        raise ValueError("must be one plain value")
    return _checked(spec, spec.parse(str(value)))


def spellings(command: str, argv: list[str]) -> dict[str, str]:
    """How each flag given was spelt on the command line (`--user` or `--vsphere-user`), so
    that messages name what the user typed."""
    found: dict[str, str] = {}
    for spec in SPECS[command]:
        names = [f"--{spec.name}"] + [f"-{a}" if len(a) == 1 else f"--{a}" for a in spec.aliases]
        for token in argv:
            spelt = next((n for n in names if token == n or token.startswith(n + "=")), None)
            if spelt:
                found[spec.dest] = spelt
    return found


def resolve(command: str, given: Mapping[str, Any], environ: Mapping[str, str],
            config: ConfigFile | None, spelt: Mapping[str, str] | None = None) -> dict[str, Setting]:
    """Every option of `command`: flag, else environment, else config file, else default."""
    settings: dict[str, Setting] = {}
    for spec in SPECS[command]:
        if spec.name == "config":
            continue
        # every layer that sets the option is checked, even one a higher layer overrides:
        # a broken config file must not lie in wait for the day the flag is left out
        layers: list[Setting] = []
        if spec.dest in given:
            layers.append(Setting(given[spec.dest], (spelt or {}).get(spec.dest, f"--{spec.name}")))
        if spec.env in environ:
            try:
                layers.append(Setting(_from_text(spec, environ[spec.env]), spec.env))
            except ValueError as exc:
                raise UsageError(f"{spec.env}: {exc}") from None
        found = config.lookup(command, spec.name) if config is not None else None
        if found is not None and config is not None:
            value, line = found
            try:
                layers.append(Setting(_from_config(spec, value), f"{config.path}:{line}"))
            except ValueError as exc:
                raise UsageError(f"option '{spec.name}': {exc}", where=config.path, line=line) from None
        default = list(spec.default) if isinstance(spec.default, list) else spec.default
        settings[spec.name] = layers[0] if layers else Setting(default, "default")
    return settings


def settings_for(command: str, namespace: argparse.Namespace, argv: list[str],
                 environ: Mapping[str, str] | None = None) -> dict[str, Setting]:
    """Merge the layers for a parsed command line (the config file is found and read here)."""
    environ = os.environ if environ is None else environ
    given = vars(namespace)
    config_path = given.get("config")
    if config_path is None and environ.get(CONFIG.env):
        config_path = Path(environ[CONFIG.env])
    return resolve(command, given, environ, load_config(config_path), spellings(command, argv))


# --- typed options the pipeline takes --------------------------------------------------------

class Named:
    """Typed options that remember how the user gave each option, for messages."""

    given: dict[str, str]
    prefix = ""

    def flag(self, name: str) -> str:
        """What to call option `name` in a message: the flag as typed, the environment
        variable or config line it came from, or its long flag when it was not given."""
        return self.given.get(name, f"--{self.prefix}{name}")


@dataclass
class VSphereOptions(Named):
    """Which vCenters (or ESXi hosts) to collect and how to log in and verify them."""

    prefix = "vsphere-"

    servers: list[str] = field(default_factory=list)
    user: str | None = None
    password_file: Path | None = None
    ca_bundle: Path | None = None
    insecure: bool = False
    timeout: float = 60.0
    page_size: int = 250  # auditor.sources.vsphere.PAGE_SIZE
    parser: str = "fast"  # how SOAP answers are read (auditor.sources.vsphere.PARSERS)
    given: dict[str, str] = field(default_factory=dict)


@dataclass
class AzureOptions(Named):
    """Which Azure scope to collect and how to reach its cloud."""

    prefix = "azure-"

    enabled: bool = False
    subscriptions: list[str] = field(default_factory=list)
    management_group: str | None = None
    cloud: str = "AzureCloud"
    arm_endpoint: str | None = None
    authority: str | None = None
    audience: str | None = None
    tenant: str | None = None
    ca_bundle: Path | None = None
    timeout: float = 60.0
    given: dict[str, str] = field(default_factory=dict)


@dataclass
class ScanOptions:
    """Everything one scan needs, whatever layer it came from."""

    snapshots: list[Path | BlobLocation] = field(default_factory=list)
    max_age: float | None = None  # seconds: older snapshots count as failed sources
    sample: bool = False
    rules: list[Path] = field(default_factory=list)
    default_rules: bool = True  # run the shipped packs too
    selection: RuleSelection = field(default_factory=lambda: RuleSelection())
    baselines: list[Path] = field(default_factory=list)
    output: Path | BlobLocation = Path("reports")
    formats: list[str] = field(default_factory=lambda: list(DEFAULT_FORMATS))
    fail_on: str = "never"
    min_severity: str = "info"
    gate_provider_findings: bool = False  # provider findings (AVS hosts) fail the gate too
    compare: str | None = None  # a path, or "latest"
    history: HistoryLocation | None = None  # None: no history
    waivers: list[Path] = field(default_factory=list)
    as_of: date = field(default_factory=date.today)
    quiet: bool = False
    vsphere: VSphereOptions = field(default_factory=VSphereOptions)
    azure: AzureOptions = field(default_factory=AzureOptions)
    save_snapshot: Path | None = None
    max_input_size: int = DEFAULT_INPUT_LIMIT  # bytes of a snapshot or earlier findings file
    workers: int | None = None  # evaluating JSON Lines snapshots; None: one per CPU

    @property
    def live(self) -> bool:
        """Whether any live source is to be collected."""
        return bool(self.vsphere.servers) or self.azure.enabled

    @property
    def to_stdout(self) -> bool:
        """`--output -`: the one format goes to standard output, no run folder is written."""
        return self.output == STDOUT


@dataclass
class RuleSelection:
    """Which of the loaded rules run: id globs to keep and to skip, severities, frameworks.
    Empty means no restriction."""

    checks: list[str] = field(default_factory=list)
    skip: list[str] = field(default_factory=list)
    severities: list[str] = field(default_factory=list)
    frameworks: list[str] = field(default_factory=list)

    def admits(self, rule_id: str, severity: str, frameworks: Mapping[str, Any]) -> bool:
        """Whether a rule with this id, severity and framework mapping is selected."""
        from fnmatch import fnmatchcase

        if self.checks and not any(fnmatchcase(rule_id, glob) for glob in self.checks):
            return False
        if any(fnmatchcase(rule_id, glob) for glob in self.skip):
            return False
        if self.severities and severity not in self.severities:
            return False
        return not self.frameworks or any(name in frameworks for name in self.frameworks)

    @property
    def active(self) -> bool:
        return bool(self.checks or self.skip or self.severities or self.frameworks)


@dataclass
class CollectOptions:
    """One `collect vsphere` or `collect azure`."""

    source: str  # "vsphere" or "azure"
    output: Path | BlobLocation
    quiet: bool = False
    vsphere: VSphereOptions = field(default_factory=VSphereOptions)
    azure: AzureOptions = field(default_factory=AzureOptions)


def _unique(values: list[Any]) -> list[Any]:
    """A list with repeats dropped, first occurrence kept (`--snapshot a --snapshot a` is a once)."""
    return list(dict.fromkeys(values))


def _given(settings: dict[str, Setting], prefix: str) -> dict[str, str]:
    """Option name without its source prefix -> how the user named it (given ones only)."""
    return {name.removeprefix(prefix): _named(name, setting) for name, setting in settings.items()
            if name.startswith(prefix) and setting.given}


def _vsphere(settings: dict[str, Setting], servers: list[str]) -> VSphereOptions:
    given = _given(settings, "vsphere-")
    if settings["vsphere"].given:  # the servers: --vsphere in scan, --server in collect vsphere
        given["server"] = _named("vsphere", settings["vsphere"])
    return VSphereOptions(
        given=given,
        servers=_unique(servers), user=settings["vsphere-user"].value,
        password_file=settings["vsphere-password-file"].value, ca_bundle=settings["vsphere-ca-bundle"].value,
        insecure=settings["vsphere-insecure"].value, timeout=settings["vsphere-timeout"].value,
        page_size=settings["vsphere-page-size"].value, parser=settings["vsphere-parser"].value)


def _azure(settings: dict[str, Setting], enabled: bool) -> AzureOptions:
    return AzureOptions(
        given=_given(settings, "azure-"),
        enabled=enabled, subscriptions=_unique(settings["azure-subscription"].value),
        management_group=settings["azure-management-group"].value, cloud=settings["azure-cloud"].value,
        arm_endpoint=settings["azure-arm-endpoint"].value, authority=settings["azure-authority"].value,
        audience=settings["azure-audience"].value, tenant=settings["azure-tenant"].value,
        ca_bundle=settings["azure-ca-bundle"].value, timeout=settings["azure-timeout"].value)


def _needs(settings: dict[str, Setting], option: str, wanted: str, why: str) -> None:
    setting = settings[option]
    if setting.given:
        raise UsageError(f"{_named(option, setting)} needs {wanted}: {why}")


def _named(option: str, setting: Setting) -> str:
    if setting.origin.startswith("-"):
        return setting.origin
    return f"{option} (from {setting.origin})"


def scan_options(settings: dict[str, Setting]) -> ScanOptions:
    """Check how the scan's options go together and build the typed options."""
    servers = settings["vsphere"].value
    azure = settings["azure"].value
    for spec in SPECS["scan"]:
        if spec.needs_source == "vsphere" and not servers:
            _needs(settings, spec.name, "--vsphere HOST", "without a vCenter to collect it would be ignored")
        elif spec.needs_source == "azure" and not azure:
            _needs(settings, spec.name, "--azure", "without Azure to collect it would be ignored")
    if not (servers or azure):
        _needs(settings, "save-snapshot", "a live source (--vsphere or --azure)", "there is nothing collected "
               "to save")
    compare = settings["compare"].value
    if compare is None:
        _needs(settings, "min-severity", "--compare PREVIOUS", "it sets which new findings fail the gate")
        if settings["fail-on"].value == "new":
            raise UsageError(f"{_named('fail-on', settings['fail-on'])} new needs --compare PREVIOUS (a "
                             "findings.json or SARIF of an earlier scan, or `latest`)")
    if settings["no-history"].value and settings["history"].given:
        raise UsageError(f"{_named('history', settings['history'])} and --no-history contradict each other")
    output: Path | BlobLocation = _in_storage(settings, "output")
    formats = _unique(settings["format"].value)
    if not formats:  # an empty AUDITOR_FORMAT or `format: []` would write an empty run as if all went well
        raise UsageError(f"{_named('format', settings['format'])} names no format: name at least one of "
                         f"{', '.join(REPORT_FORMATS)}")
    if output == STDOUT:
        if len(formats) != 1:
            raise UsageError(f"{_named('output', settings['output'])} - writes one format to standard output: "
                             f"name it with -f (json, sarif, csv, ...), not {len(formats)}")
        if compare == "latest":
            raise UsageError("--compare latest reads the output folder's latest run; with --output - there is "
                             "none: name the previous findings.json")
    # reports in storage have no folder for a history file: only a named --history records them
    history = None if settings["no-history"].value or ((output == STDOUT or is_blob(output))
                                                      and not settings["history"].given) \
        else (settings["history"].value or output / "history.db")
    fail_on = settings["fail-on"].value or ("new" if compare else "never")
    snapshots = _unique(_in_storage(settings, "snapshot"))
    if settings["max-age"].given and not snapshots:
        raise UsageError(f"{_named('max-age', settings['max-age'])} needs --snapshot: it is the age of the "
                         "snapshots read that it limits")
    if settings["storage-timeout"].given and not (is_blob(output) or any(map(is_blob, snapshots))):
        _needs(settings, "storage-timeout", "a --snapshot or --output in Azure Blob Storage",
               "without one it would be ignored")
    if settings["sample"].value and (snapshots or servers or azure):
        raise UsageError(f"{_named('sample', settings['sample'])} scans the bundled sample on its own: with "
                         "--snapshot, --vsphere or --azure its zones and entitlements would apply to your estate")
    sample = settings["sample"].value or not (snapshots or servers or azure)
    default_rules = not settings["no-default-rules"].value
    if not default_rules and not settings["rules"].value:
        raise UsageError(f"{_named('no-default-rules', settings['no-default-rules'])} needs --rules PATH: "
                         "with neither there is no rule to run")
    selection = RuleSelection(checks=_unique(settings["checks"].value), skip=_unique(settings["skip-checks"].value),
                              severities=_unique(settings["severity"].value),
                              frameworks=_unique(settings["framework"].value))
    return ScanOptions(
        snapshots=snapshots, max_age=settings["max-age"].value, sample=sample, rules=_unique(settings["rules"].value),
        default_rules=default_rules,
        selection=selection, baselines=_unique(settings["baseline"].value), output=output,
        formats=formats, fail_on=fail_on, gate_provider_findings=settings["gate-provider-findings"].value,
        min_severity=settings["min-severity"].value or "info", compare=compare, history=history,
        waivers=_unique(settings["waivers"].value), as_of=settings["as-of"].value or date.today(),
        quiet=settings["quiet"].value, vsphere=_vsphere(settings, servers), azure=_azure(settings, azure),
        save_snapshot=settings["save-snapshot"].value, max_input_size=settings["max-input-size"].value,
        workers=settings["workers"].value)


def _in_storage(settings: dict[str, Setting], option: str) -> Any:
    """An option's value with --storage-timeout applied to the storage locations in it."""
    value, timeout = settings[option].value, settings["storage-timeout"].value
    if isinstance(value, list):
        return [item.with_timeout(timeout) if is_blob(item) else item for item in value]
    return value.with_timeout(timeout) if is_blob(value) else value


def log_level(settings: dict[str, Setting]) -> str:
    """The logging level the command runs with: --log-level, else info for -v, else warning."""
    if settings["log-level"].value:
        return settings["log-level"].value
    return "info" if settings["verbose"].value else "warning"


def collect_options(source: str, settings: dict[str, Setting]) -> CollectOptions:
    """The typed options of `collect vsphere` / `collect azure`."""
    output = _in_storage(settings, "output")
    if output is None:
        raise UsageError(f"collect {source} needs --output FILE (the snapshot to write)")
    if not is_blob(output):
        _needs(settings, "storage-timeout", "an --output in Azure Blob Storage", "without one it would be ignored")
    if source == "vsphere":
        servers = settings["vsphere"].value
        if not servers:
            raise UsageError("collect vsphere needs --server HOST (repeat for several)")
        return CollectOptions(source, output, settings["quiet"].value, vsphere=_vsphere(settings, servers))
    return CollectOptions(source, output, settings["quiet"].value, azure=_azure(settings, True))


def options_markdown() -> str:
    """The README's table of every option of every command (from SPECS, so it cannot drift).
    An option whose meaning differs between commands (`--output`) has a row per meaning."""
    lines = ["| option | commands | environment | what it does |", "|---|---|---|---|"]
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for command, specs in SPECS.items():
        for spec in specs:
            row = rows.setdefault((spec.name, spec.help), {"spec": spec, "commands": [], "aliases": {}})
            row["commands"].append(command)
            for alias in spec.aliases:
                row["aliases"].setdefault(alias, []).append(command)
    for row in rows.values():
        spec: Spec = row["spec"]

        def spelled(alias: str) -> str:
            return f"`-{alias}`" if len(alias) == 1 else f"`--{alias}`"
        everywhere = [a for a, where in row["aliases"].items() if where == row["commands"]]
        spellings = ", ".join([f"`--{spec.name}`"] + [spelled(a) for a in sorted(everywhere, key=len)])
        value = "" if spec.switch else f" {spec.metavar or ('{' + ','.join(spec.choices or ()) + '}')}"
        many = " (repeatable)" if spec.many else ""
        # a spelling only some commands take (`collect vsphere --timeout`) says which
        some = "".join(f" ({spelled(a)} in {', '.join(where)})" for a, where in sorted(row["aliases"].items())
                       if where != row["commands"])
        commands = ", ".join(row["commands"]) if len(row["commands"]) < len(SPECS) else "every command"
        cells = (f"{spellings}{value}{many}{some}", commands, f"`{spec.env}`", spec.help)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m auditor.options: the README's options table
    print(options_markdown(), end="")
