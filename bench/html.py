"""HTML report benchmark: size and load time of 100,000 findings in headless Chromium.

Renders the sample scan's findings repeated to 100,000 (each with its own fingerprint)
and, as the reference in the same run, a 200-finding report; loads each in Debian's
Chromium (Playwright) until the first page of rows is on screen and the filters are live,
and prints each file's size and ready time and the size and time ratios against the
200-finding page. Targets: the 100,000-finding page under 30 MB and ready in under 3 s.

Usage: python bench/html.py [--findings N] [--check]
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

# the repository's auditor rather than an installed copy, and not bench/ (this file would
# shadow the stdlib html module)
sys.path.remove(str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auditor.formats.html import HtmlReport
from auditor.sample import SAMPLE_BASELINE, SAMPLE_SNAPSHOT
from auditor.scan import load_rule_context, load_snapshots, scan_snapshot

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
        "--disable-component-update", "--disable-sync"]
MAX_BYTES = 30_000_000
MAX_SECONDS = 3.0


def report_with(count: int):
    as_of = date(2026, 11, 25)
    report = scan_snapshot(load_snapshots([SAMPLE_SNAPSHOT]), load_rule_context(None, [SAMPLE_BASELINE], as_of), as_of)
    base = report.findings
    findings = []
    for index in range(count):
        finding = copy.copy(base[index % len(base)])
        finding.fingerprint = f"{index:032x}"
        findings.append(finding)
    report.findings = findings
    return report


def load_time(browser, path: Path, runs: int = 3) -> float:
    """Best of `runs`: navigation start until rows are rendered and the count is shown."""
    best = float("inf")
    for _ in range(runs):
        page = browser.new_page()
        start = time.perf_counter()
        page.goto(path.as_uri())
        page.wait_for_selector("#findings tbody tr.finding")
        page.locator("#shown-count").filter(has_text="showing").wait_for()
        best = min(best, time.perf_counter() - start)
        page.close()
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=100_000)
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        pages = {}
        for label, count in (("reference", 200), ("large", args.findings)):
            path = Path(tmp) / f"{label}.html"
            started = time.perf_counter()
            path.write_bytes(HtmlReport().render(report_with(count)))
            pages[label] = (count, path, path.stat().st_size, time.perf_counter() - started)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        ready = {label: load_time(browser, path) for label, (_, path, _, _) in pages.items()}
        browser.close()
    for label, (count, _, size, rendered) in pages.items():
        print(f"{label}: {count:,} findings, {size / 1e6:.2f} MB ({size / count:.0f} bytes per finding), "
              f"rendered in {rendered:.2f} s, page ready in {ready[label]:.2f} s")
    (_, _, small, _), (count, _, large, _) = pages["reference"], pages["large"]
    print(f"ratios {count:,} / 200 findings: size {large / small:.1f}x, ready time "
          f"{ready['large'] / ready['reference']:.1f}x")
    size_ok, time_ok = large < MAX_BYTES, ready["large"] < MAX_SECONDS
    print(f"targets: < {MAX_BYTES / 1e6:.0f} MB {'met' if size_ok else 'MISSED'}, "
          f"< {MAX_SECONDS:.0f} s {'met' if time_ok else 'MISSED'}")
    return 1 if args.check and not (size_ok and time_ok) else 0

if __name__ == "__main__":
    sys.exit(main())
