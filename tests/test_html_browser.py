"""The HTML report in a real browser (Debian's Chromium, driven by Playwright)."""

from __future__ import annotations

import os
import shutil

import pytest
from playwright.sync_api import expect

from auditor.formats.html import HtmlReport
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, ROOT, need_peer

pytestmark = pytest.mark.peer
HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def browser():
    need_peer(CHROMIUM.exists(), f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, tmp_path, sample_report):
    path = tmp_path / "report.html"
    path.write_bytes(HtmlReport().render(sample_report))
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.as_uri())
    page.wait_for_selector("#findings tbody tr.finding")
    page.requests = requests
    yield page
    context.close()


def rows(page):
    return page.locator("#findings tbody tr.finding")


def test_loads_without_errors_or_network(page, sample_report, tmp_path):
    assert page.errors == []
    assert [url for url in page.requests if not url.startswith("file:")] == []
    assert page.locator("#total-count").inner_text() == str(len(sample_report.findings))
    assert rows(page).count() == min(500, len(sample_report.findings))
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("AUDITOR_SCREENSHOT_DIR")
    if keep:
        os.makedirs(keep, exist_ok=True)
        shutil.copy(shot, os.path.join(keep, "report.png"))


def test_hostile_resource_name_shows_as_text_and_runs_nothing(page):
    page.fill("#filter-text", "onerror")
    expect(page.locator("#shown-count")).to_contain_text("filtered")
    first = rows(page).first
    assert HOSTILE in first.inner_text()
    first.click()
    page.wait_for_selector("tr.detail")
    assert page.locator("img").count() == 0
    assert page.locator("[onerror]").count() == 0
    assert page.dialogs == [] and page.errors == []


def test_filter_by_severity_and_free_text(page, sample_report):
    page.select_option("#filter-severity", "critical")
    expected = sum(1 for f in sample_report.findings if f.severity == "critical")
    expect(rows(page)).to_have_count(expected)
    assert all(text.strip().lower().startswith("critical") for text in rows(page).locator("td:first-child").all_inner_texts())
    page.click("#filter-reset")
    page.select_option("#filter-category", "licensing")
    page.select_option("#filter-cloud", "azure")
    expected = sum(1 for f in sample_report.findings if f.category == "licensing" and f.cloud == "azure")
    expect(rows(page)).to_have_count(expected)
    page.click("#filter-reset")
    page.fill("#filter-text", "nsg-jump")
    expected = sum(1 for f in sample_report.findings if "nsg-jump" in (f.message + f.resource_name + f.resource_id).lower())
    expect(rows(page)).to_have_count(expected)
    assert expected > 0


def test_sort_by_resource_name_both_ways(page):
    page.click("th[data-key=resource_name]")
    names = rows(page).locator("td:nth-child(3)").all_inner_texts()
    assert names == sorted(names, key=str.lower)
    page.click("th[data-key=resource_name]")
    names = rows(page).locator("td:nth-child(3)").all_inner_texts()
    assert names == sorted(names, key=str.lower, reverse=True)
    assert page.get_attribute("th[data-key=resource_name]", "aria-sort") == "descending"


def test_finding_opens_to_evidence_remediation_and_references(page):
    page.select_option("#filter-rule", "AZ-NET-001")
    expect(page.locator("#shown-count")).to_contain_text("filtered")
    rows(page).first.click()
    detail = page.locator("tr.detail").first
    text = detail.inner_text()
    assert "Evidence" in text and "facts.exposure.admits[" in text and "Remediation" in text
    assert detail.locator("a[href^='https://']").count() >= 1
    rows(page).first.click()
    assert page.locator("tr.detail").count() == 0


def test_rule_and_resource_views_filter_the_table(page, sample_report):
    page.click("nav.tabs button[data-view=view-rules]")
    assert page.locator("#rules tbody tr").count() == len(sample_report.rules)
    page.locator("#rules a", has_text="VS-NET-006").click()
    expected = sum(1 for f in sample_report.findings if f.rule_id == "VS-NET-006")
    expect(rows(page)).to_have_count(expected)
    page.click("nav.tabs button[data-view=view-resources]")
    link = page.locator("#resources tbody a").first
    name, resource_id = link.inner_text(), link.get_attribute("title")
    link.click()
    expected = sum(1 for f in sample_report.findings if f.resource_id == resource_id)
    expect(rows(page)).to_have_count(expected)  # the rule filter from before is gone
    expect(page.locator("#resource-chip")).to_contain_text(name)
    page.click("#resource-chip-clear")
    expect(rows(page)).to_have_count(min(500, len(sample_report.findings)))


def test_show_more_pages_through_large_reports(browser, tmp_path, sample_report):
    import copy
    report = copy.copy(sample_report)
    report.findings = [copy.copy(f) for _ in range(20) for f in sample_report.findings]
    assert len(report.findings) > 2500
    path = tmp_path / "big.html"
    path.write_bytes(HtmlReport().render(report))
    page = browser.new_page()
    page.goto(path.as_uri())
    page.wait_for_selector("#findings tbody tr.finding")
    assert rows(page).count() == 500 and page.is_visible("#more")
    page.click("#more")
    expect(rows(page)).to_have_count(2500)
    page.close()


def test_print_layout_shows_every_view(page):
    page.emulate_media(media="print")
    assert page.is_visible("#view-rules") and page.is_visible("#view-resources")
    assert not page.is_visible(".filters")


def test_report_written_by_scan_opens_too(browser, tmp_path):
    from auditor.cli import main
    assert main(["scan", "--out", str(tmp_path / "reports"), "--format", "html", "-q"]) == 0
    page = browser.new_page()
    page.goto((tmp_path / "reports" / "latest" / "report.html").resolve().as_uri())
    page.wait_for_selector("#findings tbody tr.finding")
    assert page.locator("h1").inner_text() == "Compliance and drift audit"
    page.close()
    assert (ROOT / "auditor" / "formats" / "templates" / "report.html.j2").exists()


def test_table_cards_and_chart_agree_with_absent_unknown_and_waived_findings(browser, tmp_path):
    import copy

    from auditor.formats.findings_json import report_document
    from auditor.sample import SAMPLE_BASELINE, SAMPLE_SNAPSHOT
    from auditor.scan import load_rule_context, load_snapshots, scan_snapshot
    from tests.conftest import AS_OF

    report = scan_snapshot(load_snapshots([SAMPLE_SNAPSHOT]), load_rule_context(None, [SAMPLE_BASELINE], AS_OF), AS_OF)
    report.compared_with = "previous.json"
    del report.findings[450:]  # the page renders 500 rows at first: keep every one of them on it
    for finding in report.findings:
        finding.state = "unchanged"
    gone, unseen = copy.copy(report.findings[0]), copy.copy(report.findings[1])
    gone.fingerprint, gone.state = "gone", "absent"
    unseen.fingerprint, unseen.state = "unseen", "unknown"
    report.findings[2].suppression = {"reason": "r", "owner": "o", "expires": "2027-01-01", "file": "w", "line": 1}
    report.findings += [gone, unseen]
    summary = report_document(report)["summary"]
    path = tmp_path / "report.html"
    path.write_bytes(HtmlReport().render(report))
    page = browser.new_page()
    page.goto(path.as_uri())
    page.wait_for_selector("#findings tbody tr.finding")
    shown = page.locator("#shown-count").inner_text()
    assert shown == f"showing {summary['total']} of {summary['total']} findings" and summary["total"] < 500
    assert page.locator("#total-count").inner_text() == str(summary["total"]) == str(len(report.findings) - 2)
    assert rows(page).count() == summary["total"]  # absent and unknown are not current findings
    page.select_option("#filter-state", "unknown")
    expect(rows(page)).to_have_count(1)
    page.close()
