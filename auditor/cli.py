"""Command line: parsing and printing only.

Flags are declared in auditor/options.py, merged there with the environment and the config
file into typed options, and handed to the pipeline functions (`scan.run_scan`,
`live.run_collect`, ...), whose outcomes are printed here.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .errors import (
    EXIT_INCOMPLETE,
    EXIT_INPUT_ERROR,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    AuditorError,
    InputError,
)
from .findings import SEVERITY_RANK, STATES, ScanReport
from .options import add_arguments, collect_options, log_level, scan_options, settings_for
from .text import first_few, plural, shortened
from .text import for_terminal as safe

EPILOG = """exit codes: 0 no finding at or above --fail-on; 1 findings at or above it (with --compare: new
ones); 2 usage or input error; 3 collection incomplete (a source failed); 70 internal error (a bug)"""

COLLECT_EPILOG = """exit codes: 0 every source collected; 2 usage or input error; 3 a source failed (the snapshot
holds the others; none collected: nothing written); 70 internal error (a bug)"""


class _Parser(argparse.ArgumentParser):
    """argparse, whose error is one line quoting the value given: shown escaped, so a value
    cannot forge lines in a CI log (`--as-of $'x\\n::error::...'`), and without the usage
    text, 27 lines that would bury it."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT_ERROR, f"{self.prog}: error: {safe(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all subcommands, built from the option table."""
    # no abbreviations: `--password x` must never be taken for `--password-file x`
    parser = _Parser(
        prog="auditor", epilog=EPILOG, allow_abbrev=False,
        description="Compliance and drift auditing for hybrid vSphere + Azure estates. Options come from "
                    "flags, AUDITOR_<OPTION> environment variables and ./auditor.yaml (or --config), in that "
                    "order of precedence.")
    parser.add_argument("--version", action="version", version=f"auditor {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(parent: Any, name: str, key: str, **kwargs: Any) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, allow_abbrev=False, epilog=kwargs.pop("epilog", EPILOG), **kwargs)
        add_arguments(sub, key)
        return sub

    command(commands, "scan", "scan", help="evaluate rule packs over snapshots and live sources, write reports",
            description="Scan snapshots (--snapshot) and live sources (--vsphere, --azure) with the rule packs "
                        "and write reports. With no source named, the bundled sample estate is scanned, and "
                        "every report of it says SAMPLE.")
    collect = commands.add_parser("collect", allow_abbrev=False, epilog=COLLECT_EPILOG,
                                  help="collect an inventory snapshot from a live estate")
    collect_commands = collect.add_subparsers(dest="collect_command", metavar="SOURCE", required=True)
    command(collect_commands, "vsphere", "collect vsphere", epilog=COLLECT_EPILOG,
            help="collect from vCenters or ESXi hosts with pyvmomi",
            description="Collect hosts, clusters, VMs, port groups, datastores and licences from one or more "
                        "vCenters in parallel. The password comes from VSPHERE_PASSWORD or --vsphere-password-file, "
                        "never from the command line.")
    command(collect_commands, "azure", "collect azure", epilog=COLLECT_EPILOG,
            help="collect from Azure with Resource Graph and the SDK",
            description="Collect VMs, scale sets, networks, NSGs, flow logs, SQL VMs, Arc machines, AVS private "
                        "clouds, resource groups and policy assignments and states of the given subscriptions, "
                        "of a management group, or of every subscription the identity can read. Credentials: a "
                        "service principal from AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, else "
                        "DefaultAzureCredential (managed identity, Azure CLI login, ...).")
    rules = commands.add_parser("rules", allow_abbrev=False, help="list or validate rule packs")
    rule_commands = rules.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    command(rule_commands, "list", "rules list", help="list rules", epilog=None)
    validate = command(rule_commands, "validate", "rules validate", epilog="exit codes: 0 valid; 2 problems found",
                       help="check rule files against the rule format, reporting every problem")
    validate.add_argument("paths", type=Path, nargs="+", metavar="PATH",
                          help="rule pack files or folders of them to check")
    diff = command(commands, "diff", "diff", help="what changed between two snapshots",
                   epilog="exit codes: 0 no drift; 1 drift found; 2 usage or input error; 3 a source failed in "
                          "either snapshot (its resources are not compared)")
    diff.add_argument("old", type=Path, metavar="OLD_SNAPSHOT", help="the earlier snapshot (.json or .json.gz)")
    diff.add_argument("new", type=Path, metavar="NEW_SNAPSHOT", help="the later snapshot to compare with it")
    command(commands, "history", "history", help="list recorded scans", epilog=None)
    command(commands, "report", "report", help="render saved findings again, without scanning", epilog=None)
    return parser


def main(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> int:
    """Entry point of the `auditor` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_INPUT_ERROR
    key = " ".join(part for part in (args.command, getattr(args, "collect_command", None),
                                     getattr(args, "rules_command", None)) if part)
    try:
        settings = settings_for(key, args, sys.argv[1:] if argv is None else argv, environ)
        if "log-level" in settings:
            configure_logging(log_level(settings))
        if key == "scan":
            return _scan(settings)
        if key.startswith("collect"):
            return _collect(collect_options(args.collect_command, settings))
        if key == "rules list":
            return _rules_list(settings)
        if key == "rules validate":
            return _rules_validate(args.paths, settings)
        if key == "report":
            return _report(settings)
        if key == "diff":
            return _diff(args.old, args.new, settings)
        if key == "history":
            return _history(settings)
    except AuditorError as error:
        for line in error.lines():
            print(f"auditor: error: {safe(line)}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("auditor: interrupted; no output was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit as exc:
        if exc.code == EXIT_TERMINATED:  # a SIGTERM, raised by the scan to end its workers
            print("auditor: terminated; the history and `latest` are as they were", file=sys.stderr)
        raise
    parser.error(f"unknown command {key}")
    return EXIT_INPUT_ERROR


class _SafeFormatter(logging.Formatter):
    """Log lines with a UTC timestamp; text from the estate cannot forge lines or escapes."""

    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        return safe(super().format(record))


def configure_logging(level: str) -> None:
    """Timestamped log lines of auditor (and of the Azure SDK at debug) on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_SafeFormatter("%(asctime)sZ auditor %(levelname)s: %(message)s", "%Y-%m-%dT%H:%M:%S"))
    logger = logging.getLogger("auditor")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False


def _failure(source: dict) -> str:
    error = source.get("error") or "failed"
    return error if source["id"] in error else f"{source['id']}: {error}"


def _warn(text: str) -> None:
    print(f"auditor: warning: {safe(text)}", file=sys.stderr)


def _progress(quiet: bool) -> Any:
    from .sources import Progress
    # None lets Progress decide (a terminal outside CI); quiet turns it off
    return Progress(enabled=False if quiet else None)


def _scan(settings: dict) -> int:
    from .scan import run_scan

    options = scan_options(settings)
    outcome = run_scan(options, _warn, _progress(options.quiet))
    report = outcome.report
    if outcome.payload is not None:
        sys.stdout.buffer.write(outcome.payload)
        sys.stdout.flush()
    # one Azure scope that fails is a failed source per subscription, all for one reason;
    # a reason that does not name its source (one read from a snapshot) gets the name
    _print_failures(dict.fromkeys(_failure(s) for s in outcome.failed_sources), "the report's sources list each")
    if report.sample and options.quiet:
        # what the numbers are about is no detail -q may hide
        print(f"auditor: warning: {SAMPLE_NOTICE}", file=sys.stderr)
    if not options.quiet:
        # with the findings on standard output, the summary goes beside them, to stderr
        print_summary(report, outcome, sys.stderr if options.to_stdout else sys.stdout)
        for framework in options.selection.frameworks:
            print_compliance(report, framework, sys.stderr if options.to_stdout else sys.stdout)
    if outcome.no_previous is not None:
        _warn(f"no earlier scan at {outcome.no_previous}: every finding counts as new")
    for waiver in report.waivers:
        where = (f"waiver {safe(waiver['file'])}:{waiver['line']} ({safe(waiver['rule'])} on "
                 f"{safe(waiver['resource'])}, owner {safe(waiver['owner'])})")
        if waiver["status"] in ("expired", "stale"):
            what = ("expired on " + waiver["expires"] + f": {plural(waiver['matched'], 'finding')} no longer suppressed"
                    if waiver["status"] == "expired" else "matches no finding: remove it")
            print(f"auditor: {where} {what}", file=sys.stderr)
        if waiver.get("warning"):
            _warn(f"{where} {waiver['warning']}")
    if outcome.failed_sources:
        failed = first_few([s["id"] for s in outcome.failed_sources])
        if len(outcome.failed_sources) == len(report.sources):
            stale = sum(1 for s in outcome.failed_sources if (s.get("details") or {}).get("stale_snapshot"))
            what = ("no source could be collected" if not stale else "every snapshot is older than --max-age"
                    if stale == len(outcome.failed_sources) else "no source is both collected and recent enough")
            print(f"auditor: collection failed: {what} ({safe(failed)}); no finding describes the estate, and "
                  "earlier findings are unknown, not fixed", file=sys.stderr)
        else:
            print(f"auditor: collection incomplete: {safe(failed)} failed; findings cover only part of the "
                  "estate, and earlier findings of what failed are unknown, not fixed", file=sys.stderr)
    if outcome.gate.failed and not outcome.failed_sources:
        print(f"auditor: gate failed: {outcome.gate.reason}", file=sys.stderr)
        for finding in outcome.gate.failing[:20]:
            print(f"  {finding.severity.upper():8} {finding.rule_id}  {safe(finding.message)}", file=sys.stderr)
    elif outcome.gate.provider_left and not options.quiet:
        print(f"auditor: {outcome.gate.provider_left} finding(s) the provider acts on (Azure VMware Solution "
              "hosts) were not counted by the gate; --gate-provider-findings counts them", file=sys.stderr)
    return outcome.exit_code


SAMPLE_NOTICE = ("SAMPLE ESTATE: these findings are about the bundled sample, not your estate "
                 "(name one with --snapshot, --vsphere or --azure)")


def print_summary(report: ScanReport, outcome: Any, stream: Any = None) -> None:
    """The terminal summary: counts by severity and category, rules by status, then the top findings."""
    from .formats import formats

    out = functools.partial(print, file=stream or sys.stdout)
    summary = report.summary()
    if report.sample:
        out(SAMPLE_NOTICE)
    sources = len(report.sources)
    waived = f" ({summary.suppressed} waived)" if summary.suppressed else ""
    out(f"Scanned {report.resource_count} resources from {sources} source{'s' if sources != 1 else ''} with "
        f"{len(report.rules)} rules (as of {report.as_of}): {summary.total} findings{waived}")
    if report.compared_with:
        out(f"  compared with {safe(report.compared_with)}: " + "  ".join(
            f"{state} {summary.by_state.get(state, 0)}" for state in STATES))
    elif summary.by_state:
        out("  " + "  ".join(f"{state} {count}" for state, count in sorted(summary.by_state.items())))
    if report.waivers:
        statuses = [w["status"] for w in report.waivers]
        out(f"  waivers  active {statuses.count('active')}  expired {statuses.count('expired')}  "
            f"stale {statuses.count('stale')}" + (f"  not evaluated {statuses.count('not_evaluated')}"
                                                    if "not_evaluated" in statuses else "")
            + f"  ({summary.suppressed} findings suppressed)")
    out("  severity  " + "  ".join(f"{name} {summary.by_severity.get(name, 0)}" for name in SEVERITY_RANK))
    if summary.by_category:
        out("  category  " + "  ".join(f"{name} {count}" for name, count in sorted(summary.by_category.items())))
    statuses = summary.rules_by_status
    out(f"  rules     evaluated {statuses.get('evaluated', 0)}  partial {statuses.get('partial', 0)}  "
        f"not evaluated {statuses.get('not_evaluated', 0)}")
    unjudged: dict[str, list[str]] = {}
    for rule in report.rules:
        if rule.status != "evaluated":
            unjudged.setdefault(f"{rule.status.replace('_', ' ')}: {rule.reason}", []).append(rule.id)
    for reason, ids in sorted(unjudged.items()):
        out(f"    {safe(reason)}: {', '.join(ids)}")
    top = [f for f in report.current if not f.suppression][:10]
    if top:
        out("Top findings:")
        width = max(len(f.rule_id) for f in top)
        for finding in top:
            out(f"  {finding.severity.upper():8} {finding.rule_id:{width}}  {safe(finding.message)}")
        if summary.open > len(top):
            out(f"  ... and {summary.open - len(top)} more")
    if outcome.run is not None:
        available = formats()
        files = ", ".join(available[name].filename for name in outcome.formats)
        out(f"Reports: {safe(outcome.run)}/ ({files}); latest: {safe(outcome.run.parent / 'latest')}")


def print_compliance(report: ScanReport, framework: str, stream: Any) -> None:
    """One framework's compliance summary: controls by status, then the failed ones."""
    from .compliance import compliance

    found = compliance(report).get(framework)
    if found is None:
        stream.write(f"Compliance with {safe(framework)}: no rule that ran maps to it\n")
        return
    totals = found["totals"]
    stream.write(f"Compliance with {safe(found['name'])} ({safe(framework)}): {len(found['controls'])} controls: "
                 + "  ".join(f"{status.replace('_', ' ')} {totals[status]}" for status in totals) + "\n")
    for control in found["controls"]:
        if control["status"] != "passed":
            title = f" {safe(shortened(control['title'], 70))}" if control.get("title") else ""
            stream.write(f"  {control['status'].replace('_', ' '):14} {safe(control['id']):12}{title}: "
                         f"rules {', '.join(control['rules'])}" + (f"; {control['findings']} open findings"
                                                                   if control["findings"] else "") + "\n")


FAILURE_LINES = 20  # error lines of failed sources printed; the reports and the snapshot hold every one


def _print_failures(reasons: Iterable[str], where_all: str) -> None:
    """One error line per failed source's reason, the first FAILURE_LINES of them: 100,000
    stale snapshots would otherwise print 100,000 lines into a CI log."""
    reasons = list(reasons)
    for reason in reasons[:FAILURE_LINES]:
        print(f"auditor: error: {safe(reason)}", file=sys.stderr)
    if len(reasons) > FAILURE_LINES:
        print(f"auditor: error: {len(reasons) - FAILURE_LINES} more sources failed; {where_all}", file=sys.stderr)


def _collect(options: Any) -> int:
    from .live import run_collect

    outcome = run_collect(options, _warn, _progress(options.quiet))
    _print_failures(dict.fromkeys(s.error or f"{s.id} failed" for s in outcome.snapshot.sources
                                  if s.status != "ok"), "the snapshot's sources list each")
    if not outcome.written:
        # nothing was collected: keep whatever snapshot is already at --output
        print(f"auditor: no source could be collected; {safe(options.output)} was not written", file=sys.stderr)
        return EXIT_INCOMPLETE
    if not options.quiet:
        counts = ", ".join(f"{s.id}: {s.resource_count}" if s.status == "ok" else f"{s.id}: failed"
                           for s in outcome.snapshot.sources)
        # the blob written, not the prefix asked for: a site's log then names the exact snapshot
        # that a later `scan --max-age` may call stale
        print(f"wrote {len(outcome.snapshot.resources)} resources to {safe(outcome.output)} ({safe(counts)})")
    return outcome.exit_code


def _write_or_print(output: Any, text: str) -> None:
    if output:
        from .atomic import write_text_atomic
        write_text_atomic(output, text)
    else:
        sys.stdout.write(text)


def _rules_list(settings: dict) -> int:
    from datetime import date

    from .catalogue import rules_markdown
    from .scan import load_rule_context

    default_rules = not settings["no-default-rules"].value
    if not default_rules and not settings["rules"].value:
        raise InputError("--no-default-rules needs --rules PATH: with neither there is no rule to list")
    context = load_rule_context(settings["rules"].value, [], date.today(), default_rules=default_rules)
    rules = context.ruleset.rules
    fmt = settings["format"].value
    if fmt == "json":
        text = json.dumps([{"id": r.id, "title": r.title, "severity": r.severity,
                            "category": r.category, "resources": r.resource_text,
                            "frameworks": r.frameworks, "file": r.file, "line": r.line}
                           for r in rules], indent=1) + "\n"
    elif fmt == "markdown":
        text = rules_markdown(rules)
    else:
        width = max((len(r.id) for r in rules), default=4)
        text = "".join(f"{r.id:{width}}  {r.severity:8}  {r.category:17}  {safe(r.title)}\n" for r in rules)
    _write_or_print(settings["output"].value, text)
    return EXIT_OK


def _rules_validate(paths: list, settings: dict) -> int:
    from datetime import date

    from .scan import load_rule_context

    # only the files named: their ids may still clash with the shipped packs at scan time
    context = load_rule_context(paths, settings["baseline"].value, date.today(), default_rules=False)
    disabled = sum(1 for rule in context.ruleset.rules if not rule.enabled)
    print(f"ok: {plural(len(context.ruleset.rules), 'rule')} in {plural(len(context.ruleset.files), 'file')}"
          + (f" ({disabled} disabled)" if disabled else ""))
    return EXIT_OK


def _report(settings: dict) -> int:
    from .atomic import write_bytes_atomic
    from .formats import formats
    from .formats.findings_json import load_report

    source, fmt_name = settings["from"].value, settings["format"].value
    if source is None or fmt_name is None:
        raise InputError("report needs --from FINDINGS_JSON and --format FORMAT")
    report = load_report(source, settings["max-input-size"].value)
    fmt = formats()[fmt_name]
    payload = fmt.render(report)
    if settings["output"].value == Path("-"):
        sys.stdout.buffer.write(payload)
        return EXIT_OK
    target = settings["output"].value or source.with_name(fmt.filename)
    if target.resolve() == source.resolve():
        raise InputError("refusing to overwrite the findings file it reads; pass --output", where=str(target))
    write_bytes_atomic(target, payload)
    print(f"wrote {safe(target)}")
    return EXIT_OK


def _diff(old: Any, new: Any, settings: dict) -> int:
    from .drift import diff_snapshots
    from .formats.drift import render_html, render_json, render_text
    from .snapshot import load_snapshot

    limit = settings["max-input-size"].value
    drift = diff_snapshots(load_snapshot(old, limit), load_snapshot(new, limit))
    renderers: dict[str, Callable[[], bytes]] = {"text": lambda: render_text(drift).encode("utf-8"),
                                                 "json": lambda: render_json(drift),
                                                 "html": lambda: render_html(drift)}
    payload = renderers[settings["format"].value]()
    output = settings["output"].value
    if output and output.resolve() in (Path(old).resolve(), Path(new).resolve()):
        raise InputError("refusing to overwrite a snapshot it compares; pass another --output", where=str(output))
    if output:
        from .atomic import write_bytes_atomic
        write_bytes_atomic(output, payload)
    else:
        sys.stdout.write(payload.decode("utf-8"))
    for source in drift.unavailable:
        what = ("was not collected in the new snapshot" if source.get("status") == "not collected"
                else f"failed in the {source['snapshot']} snapshot")
        print(f"auditor: error: {safe(source['id'])} {what}: its resources were not compared", file=sys.stderr)
    if drift.unavailable:
        return EXIT_INCOMPLETE
    return EXIT_OK if drift.empty else 1


def _history(settings: dict) -> int:
    from .history import scans

    rows = scans(settings["history"].value, settings["limit"].value)
    print(f"{'scan':>5}  {'scanned at':20}  {'sources':>7}  {'open':>5}  critical high medium low info  waived")
    for row in rows:
        try:
            sources = json.loads(row["sources"])
        except (TypeError, ValueError):
            raise InputError(f"scan {row['id']} of the history has unreadable sources (edited by hand?)",
                             where=str(settings["history"].value)) from None
        flag = " incomplete" if row["incomplete"] else ""
        print(f"{row['id']:>5}  {safe(row['scanned_at']):20}  {len(sources):>7}  {row['total']:>5}  "
              f"{row['critical']:>8} "
              f"{row['high']:>4} {row['medium']:>6} {row['low']:>3} {row['info']:>4}  {row['suppressed']:>6}{flag}")
    return EXIT_OK


class _ReaderMayLeave:
    """Standard output whose reader may go away (`auditor scan | head -1`): what is left to
    print is dropped, and the command still exits with its own code (a gate failure or a
    failed source must not turn into 0 because the pipe closed). Any other failure to write
    (a full disk behind `> file`) is bad output, not a bug of ours."""

    # what the write failures this stream forgives are: the reader gone
    forgiven: tuple[type[OSError], ...] = (BrokenPipeError,)

    def __init__(self, stream: Any):
        self._stream = stream

    def _gone(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())

    def write(self, data: Any) -> int:
        try:
            return self._stream.write(data)
        except self.forgiven:
            self._gone()
            return len(data)
        except OSError as exc:
            raise InputError(f"cannot write to standard output: {exc.strerror}") from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except self.forgiven:
            self._gone()
        except OSError as exc:
            raise InputError(f"cannot write to standard output: {exc.strerror}") from None

    @property
    def buffer(self) -> Any:
        return type(self)(self._stream.buffer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _ErrorsMayGoUnread(_ReaderMayLeave):
    """Standard error whose reader may go away (`2>&1 | head -1`) or whose disk is full
    (`2>/dev/full`): the messages left are dropped, never the exit code. Not one of the
    command's outputs: a message that cannot be written is no reason to fail the run, and
    a BrokenPipeError reaching `run` would have turned a failed gate into 0."""

    forgiven = (OSError,)


def run() -> None:
    """Console-script entry point."""
    # a stream closed before the start (`2>&-`) is None in Python: what goes to it is dropped
    # (the null device stays open as long as the process)
    sys.stdout = _ReaderMayLeave(sys.stdout or open(os.devnull, "w"))  # type: ignore[assignment]  # noqa: SIM115
    sys.stderr = _ErrorsMayGoUnread(sys.stderr or open(os.devnull, "w"))  # type: ignore[assignment]  # noqa: SIM115
    try:
        code = main()
        sys.stdout.flush()
    except AuditorError as error:  # the last flush of standard output failed
        print(f"auditor: error: {safe(error.one_line())}", file=sys.stderr)
        code = error.exit_code
    except Exception as exc:
        # a bug of ours: one line in the CI log, with its own exit code so that it is never
        # taken for findings (1) or bad input (2); AUDITOR_TRACEBACK=1 shows where
        if os.environ.get("AUDITOR_TRACEBACK"):
            raise
        print(f"auditor: internal error (a bug in auditor, please report it): {type(exc).__name__}: {safe(exc)}; "
              "set AUDITOR_TRACEBACK=1 for the traceback", file=sys.stderr)
        code = EXIT_INTERNAL
    sys.exit(code)


if __name__ == "__main__":
    run()

