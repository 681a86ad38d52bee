"""Command line: argument parsing and printing only; the work is in the pipeline modules."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import re
import sys
from datetime import date
from pathlib import Path

from . import __version__
from .errors import EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_INPUT_ERROR, EXIT_OK, AuditorError, InputError
from .files import read_input
from .findings import SEVERITY_RANK, ScanReport
from .formats import FORMAT_NAMES

EPILOG = """exit codes: 0 no finding at or above --fail-on; 1 findings at or above it;
2 usage or input error; 3 collection incomplete (a source failed)"""
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe(text: object) -> str:
    """Text fit for a terminal: control characters (escape sequences) shown, not obeyed."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def _date(text: str) -> date:
    if text == "today":
        return date.today()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an ISO date (YYYY-MM-DD)") from None


def _format_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in FORMAT_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown format {', '.join(unknown) or text!r} (choose from {', '.join(FORMAT_NAMES)})")
    return names


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all subcommands."""
    # no abbreviations: `--password x` must never be taken for `--password-file x`
    parser = argparse.ArgumentParser(
        prog="auditor", epilog=EPILOG, allow_abbrev=False,
        description="Compliance and drift auditing for hybrid vSphere + Azure estates.")
    parser.add_argument("--version", action="version", version=f"auditor {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    scan = commands.add_parser("scan", allow_abbrev=False, help="evaluate rule packs over snapshots and write reports",
                               epilog=EPILOG)
    scan.add_argument("--snapshot", type=Path, nargs="+", metavar="FILE",
                      help="snapshot files to scan (default: the bundled sample estate)")
    scan.add_argument("--rules", type=Path, nargs="+", metavar="PATH",
                      help="rule files or folders (default: the shipped rule packs)")
    scan.add_argument("--baseline", type=Path, nargs="+", metavar="FILE", default=[],
                      help="baseline files; their tables replace shipped tables of the same name")
    scan.add_argument("--out", type=Path, default=Path("reports"), metavar="DIR",
                      help="output folder: each run writes DIR/<timestamp>/ and DIR/latest (default: reports)")
    scan.add_argument("--format", type=_format_list, default=list(FORMAT_NAMES), metavar="LIST",
                      help=f"comma-separated formats to write (default: {','.join(FORMAT_NAMES)})")
    scan.add_argument("--fail-on", choices=[*SEVERITY_RANK, "new", "never"], default=None,
                      help="exit 1 on findings at or above this severity, or on `new` ones (see --compare); "
                           "default: new with --compare, else never")
    scan.add_argument("--min-severity", choices=list(SEVERITY_RANK), default="info",
                      help="with --fail-on new: the lowest severity of a new finding that fails (default: info)")
    scan.add_argument("--compare", type=Path, metavar="PREVIOUS",
                      help="a previous findings.json or SARIF of auditor: findings become new/unchanged/updated/absent")
    scan.add_argument("--history", type=Path, metavar="DB",
                      help="scan history database (default: OUT/history.db)")
    scan.add_argument("--no-history", action="store_true", help="do not record this scan in the history")
    scan.add_argument("--waivers", type=Path, metavar="FILE",
                      help="YAML of accepted risks (rule, resource, reason, owner, expires)")
    scan.add_argument("--as-of", type=_date, default=None, metavar="DATE",
                      help="evaluate dates (end of support, expiry) as of this day (default: today)")
    scan.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    scan.add_argument("--vsphere", nargs="+", metavar="HOST", default=[],
                      help="collect these vCenters live (HOST or HOST:PORT) and scan them with any --snapshot")
    scan.add_argument("--save-snapshot", type=Path, metavar="FILE",
                      help="also write what was collected live to FILE (.json or .json.gz)")
    _vsphere_options(scan, prefix="vsphere-")
    scan.add_argument("--azure", action="store_true",
                      help="collect Azure live (the --azure-* options choose what) and scan it with the rest")
    _azure_options(scan, prefix="azure-")

    collect = commands.add_parser("collect", allow_abbrev=False, epilog=EPILOG,
                                  help="collect an inventory snapshot from a live estate")
    collect_commands = collect.add_subparsers(dest="collect_command", metavar="SOURCE", required=True)
    vsphere = collect_commands.add_parser(
        "vsphere", allow_abbrev=False, help="collect from vCenters with pyvmomi", epilog=EPILOG,
        description="Collect hosts, clusters, VMs, port groups, datastores and licences from one or more "
                    "vCenters in parallel. The password comes from VSPHERE_PASSWORD or --password-file, "
                    "never from the command line.")
    vsphere.add_argument("--server", action="append", required=True, metavar="HOST",
                         help="vCenter to collect (HOST, HOST:PORT or https://HOST/sdk); repeat for several")
    vsphere.add_argument("--out", type=Path, required=True, metavar="FILE",
                         help="snapshot to write (.json or .json.gz)")
    vsphere.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    _vsphere_options(vsphere, prefix="")
    azure = collect_commands.add_parser(
        "azure", allow_abbrev=False, help="collect from Azure with Resource Graph and the Azure SDK", epilog=EPILOG,
        description="Collect VMs, scale sets, networks, NSGs, flow logs, SQL VMs, Arc machines, AVS private "
                    "clouds, resource groups and policy assignments and states of the given subscriptions, "
                    "of a management group, or of every subscription the identity can read. Credentials: a "
                    "service principal from AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, else "
                    "DefaultAzureCredential (managed identity, Azure CLI login, ...).")
    azure.add_argument("--out", type=Path, required=True, metavar="FILE", help="snapshot to write (.json or .json.gz)")
    azure.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    _azure_options(azure, prefix="")

    rules = commands.add_parser("rules", allow_abbrev=False, help="list or validate rule packs")
    rule_commands = rules.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    listing = rule_commands.add_parser("list", allow_abbrev=False, help="list rules")
    listing.add_argument("--rules", type=Path, nargs="+", metavar="PATH")
    listing.add_argument("--format", choices=["table", "markdown", "json"], default="table")
    listing.add_argument("--output", type=Path, metavar="FILE",
                         help="write to FILE instead of standard output")
    validate = rule_commands.add_parser("validate", allow_abbrev=False, help="check rule files against the rule format")
    validate.add_argument("paths", type=Path, nargs="+", metavar="PATH")
    validate.add_argument("--baseline", type=Path, nargs="+", metavar="FILE", default=[])

    diff = commands.add_parser("diff", allow_abbrev=False, help="what changed between two snapshots",
                               epilog="exit codes: 0 no drift; 1 drift found; 2 usage or input error")
    diff.add_argument("old", type=Path, metavar="OLD_SNAPSHOT")
    diff.add_argument("new", type=Path, metavar="NEW_SNAPSHOT")
    diff.add_argument("--format", choices=["text", "json", "html"], default="text")
    diff.add_argument("--output", type=Path, metavar="FILE", help="write to FILE instead of standard output")

    history = commands.add_parser("history", allow_abbrev=False, help="list recorded scans")
    history.add_argument("--db", type=Path, default=Path("reports") / "history.db", metavar="DB")
    history.add_argument("--limit", type=int, default=20)

    report = commands.add_parser("report", allow_abbrev=False, help="render saved findings again, without scanning")
    report.add_argument("--from", dest="source", type=Path, required=True, metavar="FINDINGS_JSON")
    report.add_argument("--format", choices=FORMAT_NAMES, required=True)
    report.add_argument("--output", type=Path, metavar="FILE",
                        help="output file (default: the format's file name beside the input)")
    return parser


def _vsphere_options(parser: argparse.ArgumentParser, prefix: str) -> None:
    group = parser.add_argument_group("vSphere connection")
    group.add_argument(f"--{prefix}user", dest="vsphere_user", metavar="USER",
                       help="login user (default: VSPHERE_USER)")
    group.add_argument(f"--{prefix}password-file", dest="vsphere_password_file", type=Path, metavar="FILE",
                       help="file whose first line is the password (default: VSPHERE_PASSWORD)")
    group.add_argument(f"--{prefix}ca-bundle", dest="vsphere_ca_bundle", type=Path, metavar="PEM",
                       help="CA certificates to verify the vCenter with (default: the system's)")
    group.add_argument(f"--{prefix}insecure", dest="vsphere_insecure", action="store_true",
                       help="do not verify the vCenter's TLS certificate (a warning is printed)")
    group.add_argument(f"--{prefix}timeout", dest="vsphere_timeout", type=float, default=60.0, metavar="SECONDS",
                       help="network timeout per request (default: 60)")
    group.add_argument(f"--{prefix}page-size", dest="vsphere_page_size", type=int, default=1000, metavar="N",
                       help="objects per PropertyCollector page (default: 1000)")


def _azure_options(parser: argparse.ArgumentParser, prefix: str) -> None:
    from .sources.azure import CLOUDS
    group = parser.add_argument_group("Azure scope and connection")
    group.add_argument(f"--{prefix}subscription", dest="azure_subscriptions", action="append", default=[],
                       metavar="ID", help="subscription to collect; repeat for several (default: every one the "
                                          "identity can read)")
    group.add_argument(f"--{prefix}management-group", dest="azure_management_group", metavar="ID",
                       help="collect every subscription under this management group")
    group.add_argument(f"--{prefix}cloud", dest="azure_cloud", choices=list(CLOUDS), default="AzureCloud",
                       help="Azure cloud (default: AzureCloud)")
    group.add_argument(f"--{prefix}arm-endpoint", dest="azure_arm_endpoint", metavar="URL",
                       help="Resource Manager URL, e.g. Azure Stack Hub's https://management.<region>.<fqdn>")
    group.add_argument(f"--{prefix}authority", dest="azure_authority", metavar="URL",
                       help="Entra ID (or AD FS) authority URL that issues tokens for --arm-endpoint")
    group.add_argument(f"--{prefix}audience", dest="azure_audience", metavar="URL",
                       help="token audience of Resource Manager (default: the cloud's, or --arm-endpoint)")
    group.add_argument(f"--{prefix}tenant", dest="azure_tenant", metavar="ID",
                       help="tenant of the service principal (default: AZURE_TENANT_ID)")
    group.add_argument(f"--{prefix}ca-bundle", dest="azure_ca_bundle", type=Path, metavar="PEM",
                       help="CA certificates to verify Resource Manager and the authority with")
    group.add_argument(f"--{prefix}timeout", dest="azure_timeout", type=float, default=60.0, metavar="SECONDS",
                       help="network timeout per request (default: 60)")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `auditor` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_INPUT_ERROR
    try:
        if args.command == "scan":
            return _scan(args)
        if args.command == "rules":
            return _rules(args)
        if args.command == "report":
            return _report(args)
        if args.command == "collect":
            return _collect(args)
        if args.command == "diff":
            return _diff(args)
        if args.command == "history":
            return _history(args)
    except AuditorError as error:
        print(f"auditor: error: {safe(error.one_line())}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("auditor: interrupted; no output was written", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command}")
    return EXIT_INPUT_ERROR


def _scan(args: argparse.Namespace) -> int:
    from .gate import apply_waivers, compare, decide, load_previous, load_waivers
    from .output import prepare_output, write_run
    from .sample import SAMPLE_BASELINE, SAMPLE_SNAPSHOT, is_sample
    from .scan import load_rule_context, scan_snapshot

    as_of = args.as_of or date.today()
    fail_on = args.fail_on or ("new" if args.compare else "never")
    if fail_on == "new" and not args.compare:
        raise InputError("--fail-on new needs --compare PREVIOUS (a findings.json or SARIF of an earlier scan)")
    # every input is read before anything is collected, evaluated or written
    previous = load_previous(args.compare) if args.compare else None
    waivers = load_waivers(args.waivers) if args.waivers else []
    files = args.snapshot or ([] if args.vsphere or args.azure else [SAMPLE_SNAPSHOT])
    # the sample's own zones and entitlements come first, so a --baseline still overrides them
    baselines = ([SAMPLE_BASELINE] if is_sample(files) else []) + args.baseline
    context = load_rule_context(args.rules, baselines, as_of)
    prepare_output(args.out)  # before a live collection that may take minutes
    snapshots = [_load_frozen(files)] if files else []
    # every live source is set up (and its options checked) before any is collected; then
    # vCenters and Azure are collected in parallel
    live = (_vsphere_sources(args, args.vsphere) if args.vsphere else []) + \
        (_azure_sources(args) if args.azure else [])
    from .snapshot import merge_snapshots
    if live:
        collected = _collect_sources(args, live)
        if args.save_snapshot:
            from .snapshot import save_snapshot
            save_snapshot(collected, args.save_snapshot)
        snapshots.append(collected)
    snapshot = merge_snapshots(snapshots)
    # the inventory is acyclic and lives until the scan ends: keep the cyclic collector from
    # re-walking millions of its objects on every collection (refcounting still frees them)
    gc.freeze()
    report = scan_snapshot(snapshot, context, as_of)
    del snapshot  # findings hold what the reports need; free the inventory before rendering
    if previous is not None:
        report.findings = compare(report.findings, previous)
        report.compared_with = str(args.compare)
    due: set[str] = set()
    if args.waivers:
        report.waivers, due = apply_waivers(report.findings, waivers, as_of)
    gate = decide(report.findings, due, fail_on, args.min_severity)
    if not args.no_history:
        from .history import record
        record(args.history or args.out / "history.db", report)
    run = write_run(report, args.out, args.format)
    if not args.quiet:
        print_summary(report, run, args.format)
        if context.waiting:
            print("Rules off until a --baseline declares what they compare with: " + ", ".join(
                f"{rule_id} ({', '.join(tables)})" for rule_id, tables in sorted(context.waiting.items())))
    for waiver in report.waivers:
        if waiver["status"] in ("expired", "stale"):
            what = ("expired on " + waiver["expires"] + f": {waiver['matched']} findings no longer suppressed"
                    if waiver["status"] == "expired" else "matches no finding: remove it")
            print(f"auditor: waiver {waiver['file']}:{waiver['line']} ({safe(waiver['rule'])} on "
                  f"{safe(waiver['resource'])}, owner {safe(waiver['owner'])}) {what}", file=sys.stderr)
    if report.incomplete:
        failed = ", ".join(s["id"] for s in report.sources if s.get("status") != "ok")
        print(f"auditor: collection incomplete: {safe(failed)} failed; findings cover only "
              "part of the estate", file=sys.stderr)
        return EXIT_INCOMPLETE
    if gate.failed:
        print(f"auditor: gate failed: {len(gate.failing)} {gate.reason}", file=sys.stderr)
        for finding in gate.failing[:20]:
            print(f"  {finding.severity.upper():8} {finding.rule_id}  {safe(finding.message)}", file=sys.stderr)
        return EXIT_FINDINGS
    return EXIT_OK


def _load_frozen(files: list[Path]):
    """Load snapshots and move them out of the cyclic collector's sight before it runs
    again: re-enabled on a fresh million-object tree, its first full pass costs half a
    second for nothing (a JSON tree has no cycles; refcounting still frees it)."""
    from .scan import load_snapshots

    enabled = gc.isenabled()
    gc.disable()
    try:
        snapshot = load_snapshots(files)
        gc.freeze()
        return snapshot
    finally:
        if enabled:
            gc.enable()


def _vsphere_password(args: argparse.Namespace) -> str:
    if args.vsphere_password_file is not None:
        try:
            text = read_input(args.vsphere_password_file, "password file").decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("password file is not UTF-8 text", where=str(args.vsphere_password_file)) from None
        password = text.splitlines()[0] if text else ""
    else:
        password = os.environ.get("VSPHERE_PASSWORD", "")
    if not password:
        raise InputError("no vSphere password: set VSPHERE_PASSWORD or pass --password-file "
                         "(never on the command line)")
    return password


def _vsphere_sources(args: argparse.Namespace, servers: list[str]) -> list:
    """One source per vCenter, with the credentials and TLS options checked."""
    from .sources.vsphere import VSphereConnection, VSphereSource, parse_server

    user = args.vsphere_user or os.environ.get("VSPHERE_USER", "")
    if not user:
        raise InputError("no vSphere user: pass --user or set VSPHERE_USER")
    password = _vsphere_password(args)
    if args.vsphere_ca_bundle is not None and not args.vsphere_ca_bundle.is_file():
        raise InputError("CA bundle not found", where=str(args.vsphere_ca_bundle))
    if args.vsphere_page_size < 1:
        raise InputError("--page-size must be at least 1")
    sources = []
    for server in servers:
        host, port = parse_server(server)
        if args.vsphere_insecure:
            print(f"auditor: warning: TLS certificate verification is disabled for {safe(host)}; "
                  "the connection can be intercepted", file=sys.stderr)
        connection = VSphereConnection(host=host, port=port, user=user, password=password,
                                       ca_bundle=str(args.vsphere_ca_bundle) if args.vsphere_ca_bundle else None,
                                       insecure=args.vsphere_insecure, timeout=args.vsphere_timeout)
        sources.append(VSphereSource(connection, page_size=args.vsphere_page_size))
    return sources


def _collect_sources(args: argparse.Namespace, sources: list):
    """Collect the sources in parallel into one snapshot; failed ones are recorded in it."""
    from .sources import Progress, collect_all

    # None lets Progress decide (a terminal outside CI); quiet turns it off
    snapshot = collect_all(sources, Progress(enabled=False if args.quiet else None))
    for source in snapshot.sources:
        if source.status != "ok":
            print(f"auditor: error: {safe(source.error)}", file=sys.stderr)
    return snapshot


def _azure_sources(args: argparse.Namespace) -> list:
    """The Azure scope to collect, with its options checked."""
    from .sources.azure import AzureConnection, AzureScope, AzureSource

    if args.azure_subscriptions and args.azure_management_group:
        raise InputError("give --subscription or --management-group, not both")
    if bool(args.azure_arm_endpoint) != bool(args.azure_authority):
        raise InputError("--arm-endpoint and --authority go together: a private Resource Manager has its "
                         "own token issuer")
    for name in ("azure_arm_endpoint", "azure_authority", "azure_audience"):
        value = getattr(args, name)
        if value and not value.lower().startswith("https://"):
            option = "--" + name.removeprefix("azure_").replace("_", "-")
            raise InputError(f"{option} must be an https:// URL (tokens are never sent in clear text): {value}")
    if args.azure_ca_bundle is not None and not args.azure_ca_bundle.is_file():
        raise InputError("CA bundle not found", where=str(args.azure_ca_bundle))
    connection = AzureConnection(
        cloud=args.azure_cloud, arm_endpoint=args.azure_arm_endpoint, authority=args.azure_authority,
        audience=args.azure_audience, tenant_id=args.azure_tenant,
        ca_bundle=str(args.azure_ca_bundle) if args.azure_ca_bundle else None, timeout=args.azure_timeout)
    # the SDK logs each failed token request as a warning of its own; the source's one-line
    # status says the same, so keep Python's last-resort handler from printing it twice
    logging.getLogger("azure").addHandler(logging.NullHandler())
    scope = AzureScope(subscriptions=list(args.azure_subscriptions),
                       management_group=args.azure_management_group)
    return [AzureSource(connection, scope)]


def _collect(args: argparse.Namespace) -> int:
    from .snapshot import save_snapshot

    sources = _azure_sources(args) if args.collect_command == "azure" else _vsphere_sources(args, args.server)
    snapshot = _collect_sources(args, sources)
    if not any(source.status == "ok" for source in snapshot.sources):
        # nothing was collected: keep whatever snapshot is already at --out
        print(f"auditor: no source could be collected; {args.out} was not written", file=sys.stderr)
        return EXIT_INCOMPLETE
    save_snapshot(snapshot, args.out)
    if not args.quiet:
        counts = ", ".join(f"{s.id}: {s.resource_count}" if s.status == "ok" else f"{s.id}: failed"
                           for s in snapshot.sources)
        print(f"wrote {len(snapshot.resources)} resources to {args.out} ({safe(counts)})")
    return EXIT_INCOMPLETE if snapshot.incomplete else EXIT_OK


def print_summary(report: ScanReport, run: Path, names: list[str]) -> None:
    """The terminal summary: counts by severity and category, then the top findings."""
    from .formats import formats
    sources = len(report.sources)
    print(f"Scanned {report.resource_count} resources from {sources} source"
          f"{'s' if sources != 1 else ''} with {len(report.rules)} rules "
          f"(as of {report.as_of}): {len(report.findings)} findings")
    if report.compared_with:
        states = report.counts_by("state")
        print(f"  compared with {safe(report.compared_with)}: " + "  ".join(
            f"{state} {states.get(state, 0)}" for state in ("new", "updated", "unchanged", "absent")))
    if report.waivers:
        statuses = [w["status"] for w in report.waivers]
        suppressed = sum(1 for f in report.findings if f.suppression)
        print(f"  waivers  active {statuses.count('active')}  expired {statuses.count('expired')}  "
              f"stale {statuses.count('stale')}  ({suppressed} findings suppressed)")
    by_severity = report.counts_by("severity")
    print("  severity  " + "  ".join(f"{name} {by_severity.get(name, 0)}" for name in SEVERITY_RANK))
    by_category = report.counts_by("category")
    if by_category:
        print("  category  " + "  ".join(f"{name} {count}" for name, count in sorted(by_category.items())))
    top = report.findings[:10]
    if top:
        print("Top findings:")
        width = max(len(f.rule_id) for f in top)
        for finding in top:
            print(f"  {finding.severity.upper():8} {finding.rule_id:{width}}  {safe(finding.message)}")
        if len(report.findings) > len(top):
            print(f"  ... and {len(report.findings) - len(top)} more")
    available = formats()
    files = ", ".join(available[name].filename for name in names)
    print(f"Reports: {run}/ ({files}); latest: {run.parent / 'latest'}")


def _rules(args: argparse.Namespace) -> int:
    from .scan import load_rule_context

    if args.rules_command == "validate":
        context = load_rule_context(args.paths, args.baseline, date.today())
        print(f"ok: {len(context.ruleset.rules)} rules in {len(context.ruleset.files)} files")
        return EXIT_OK
    context = load_rule_context(args.rules, [], date.today())
    rules = context.ruleset.rules
    if args.format == "json":
        text = json.dumps([{"id": r.id, "title": r.title, "severity": r.severity,
                            "category": r.category, "resources": r.resource_text,
                            "frameworks": r.frameworks, "file": r.file, "line": r.line}
                           for r in rules], indent=1) + "\n"
    elif args.format == "markdown":
        text = rules_markdown(rules)
    else:
        width = max((len(r.id) for r in rules), default=4)
        text = "".join(f"{r.id:{width}}  {r.severity:8}  {r.category:17}  {r.title}\n" for r in rules)
    if args.output:
        from .atomic import write_text_atomic
        write_text_atomic(args.output, text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def rules_markdown(rules: list) -> str:
    """The rule catalogue (docs/rules.md)."""
    lines = ["# Rule catalogue", "",
             "Generated by `auditor rules list --format markdown`; do not edit by hand.", "",
             f"{len(rules)} rules.", ""]
    for category in ("support-status", "network-isolation", "licensing", "drift", "other"):
        chosen = [r for r in rules if r.category == category]
        if not chosen:
            continue
        lines += [f"## {category}", "", "| id | severity | title | applies to | controls |",
                  "|---|---|---|---|---|"]
        for r in chosen:
            controls = "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(r.frameworks.items()))
            needs = f" (needs baseline {', '.join(r.requires)})" if r.requires else ""
            lines.append(f"| {r.id} | {r.severity} | {r.title}{needs} | {', '.join(r.resource_text)} | "
                         f"{controls} |")
        lines.append("")
    return "\n".join(lines)


def _report(args: argparse.Namespace) -> int:
    from .atomic import write_bytes_atomic
    from .formats import formats
    from .formats.findings_json import load_report

    report = load_report(args.source)
    fmt = formats()[args.format]
    payload = fmt.render(report)
    target = args.output or args.source.with_name(fmt.filename)
    if target.resolve() == args.source.resolve():
        raise InputError("refusing to overwrite the findings file it reads; pass --output",
                         where=str(target))
    write_bytes_atomic(target, payload)
    print(f"wrote {target}")
    return EXIT_OK


def _diff(args: argparse.Namespace) -> int:
    from .drift import diff_snapshots
    from .formats.drift import render_html, render_json, render_text
    from .snapshot import load_snapshot

    drift = diff_snapshots(load_snapshot(args.old), load_snapshot(args.new))
    payload = {"text": lambda: render_text(drift).encode("utf-8"), "json": lambda: render_json(drift),
               "html": lambda: render_html(drift)}[args.format]()
    if args.output:
        from .atomic import write_bytes_atomic
        write_bytes_atomic(args.output, payload)
    else:
        sys.stdout.write(payload.decode("utf-8"))
    return EXIT_OK if drift.empty else EXIT_FINDINGS


def _history(args: argparse.Namespace) -> int:
    from .history import scans

    rows = scans(args.db, args.limit)
    print(f"{'scan':>5}  {'scanned at':20}  {'sources':>7}  {'open':>5}  critical high medium low info  waived")
    for row in rows:
        sources = json.loads(row["sources"])
        flag = " incomplete" if row["incomplete"] else ""
        print(f"{row['id']:>5}  {row['scanned_at']:20}  {len(sources):>7}  {row['total']:>5}  {row['critical']:>8} "
              f"{row['high']:>4} {row['medium']:>6} {row['low']:>3} {row['info']:>4}  {row['suppressed']:>6}{flag}")
    return EXIT_OK


def run() -> None:
    """Console-script entry point."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader (`| head`) went away: not an error of ours, and no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_OK
    sys.exit(code)


if __name__ == "__main__":
    run()
