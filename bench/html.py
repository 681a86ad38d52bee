"""HTML report load benchmark: 20,000 findings in headless Chromium.

Renders the sample scan's findings repeated to 20,000 and, as the reference in the same
run, a 200-finding report; loads each in Debian's Chromium (Playwright) until the first
page of rows is on screen and the filters are live, and prints both times and their
ratio. Target: the 20,000-finding page ready in under 3 s.

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

from auditor.formats.html import HtmlReport
from auditor.sample import SAMPLE_BASELINE, SAMPLE_SNAPSHOT
from auditor.scan import load_rule_context, load_snapshots, scan_snapshot

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
        "--disable-component-update", "--disable-sync"]


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
    parser.add_argument("--findings", type=int, default=20_000)
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        pages = {}
        for label, count in (("reference", 200), ("large", args.findings)):
            path = Path(tmp) / f"{label}.html"
            started = time.perf_counter()
            path.write_bytes(HtmlReport().render(report_with(count)))
            print(f"{label}: {count:,} findings, {path.stat().st_size / 1e6:.1f} MB, rendered in "
                  f"{time.perf_counter() - started:.2f} s")
            pages[label] = path
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        reference = load_time(browser, pages["reference"])
        large = load_time(browser, pages["large"])
        browser.close()
    print(f"page ready: {large:.2f} s for {args.findings:,} findings, {reference:.2f} s for 200 "
          f"(ratio {large / reference:.1f}x); target < 3 s")
    return 1 if args.check and large >= 3 else 0


if __name__ == "__main__":
    sys.exit(main())
