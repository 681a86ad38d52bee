"""The HTML report in a real browser (Debian's Chromium, driven by Playwright)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

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


def open_report(browser, tmp_path, report, hash_="", name="report.html"):
    path = tmp_path / name
    path.write_bytes(HtmlReport().render(report))
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.goto(path.as_uri() + hash_)
    page.wait_for_selector("#findings tbody tr.finding", state="attached")  # its tab may not be the one shown
    return page


def test_compliance_tab_totals_and_drill_down_to_a_control(page, sample_report):
    from auditor.compliance import compliance
    frameworks = compliance(sample_report)
    page.click("nav.tabs button[data-view=view-compliance]")
    assert page.is_visible("#view-compliance") and not page.is_visible("#view-findings")
    assert page.locator("#compliance section.framework").count() == len(frameworks)
    cis = page.locator("section.framework[data-framework='cis-azure-2.0']")
    totals = frameworks["cis-azure-2.0"]["totals"]
    assert cis.locator(".total-failed").inner_text() == f"{totals['failed']} failed"
    assert cis.locator(".total-passed").inner_text() == f"{totals['passed']} passed"
    assert cis.locator("tr.control").count() == len(frameworks["cis-azure-2.0"]["controls"])
    control = next(c for c in frameworks["cis-azure-2.0"]["controls"] if c["id"] == "6.1")
    expected = sum(1 for f in sample_report.findings if f.rule_id in control["rules"])
    assert 0 < expected < len(sample_report.findings)
    cis.locator("tr.control[data-control='6.1'] a").click()
    assert page.is_visible("#view-findings")
    expect(rows(page)).to_have_count(expected)
    assert set(rows(page).locator("td:nth-child(2)").all_inner_texts()) <= set(control["rules"])
    expect(page.locator("#control-chip")).to_be_visible()
    expect(page.locator("#control-chip")).to_contain_text("6.1")
    assert "control=cis-azure-2.0%3A6.1" in page.evaluate("location.hash")
    page.click("#control-chip-clear")
    expect(page.locator("#control-chip")).to_be_hidden()
    expect(rows(page)).to_have_count(min(500, len(sample_report.findings)))
    # Enter on a control (keyboard) drills down too
    page.click("nav.tabs button[data-view=view-compliance]")
    page.focus("section.framework[data-framework='cis-azure-2.0'] tr.control[data-control='6.2'] a")
    page.keyboard.press("Enter")
    control = next(c for c in frameworks["cis-azure-2.0"]["controls"] if c["id"] == "6.2")
    expect(rows(page)).to_have_count(sum(1 for f in sample_report.findings if f.rule_id in control["rules"]))
    assert page.is_visible("#view-findings") and page.errors == []


def test_compliance_control_title_shows_when_present(browser, tmp_path, sample_report, monkeypatch):
    from auditor import compliance as module
    from auditor.formats import html

    def titled(report):
        result = module.compliance(report)
        result["cis-azure-2.0"]["controls"][0]["title"] = "Restrict RDP from the Internet"
        return result
    monkeypatch.setattr(html, "compliance", titled)
    page = open_report(browser, tmp_path, sample_report)
    page.click("nav.tabs button[data-view=view-compliance]")
    cis = page.locator("section.framework[data-framework='cis-azure-2.0']")
    expect(cis.locator("tr.control").first).to_contain_text("Restrict RDP from the Internet")
    assert page.locator("section.framework[data-framework='nist-800-53'] th", has_text="Title").count() == 0
    page.context.close()


def test_keyboard_reaches_and_operates_rows_headers_cards_and_links(page, sample_report):
    for _ in range(200):  # Tab from the top of the page to the first finding row
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.matches('#findings tbody tr.finding')"):
            break
    else:
        pytest.fail("no finding row is reachable with Tab")
    row = page.locator("#findings tbody tr.finding:focus")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"  # a visible focus
    assert row.get_attribute("aria-expanded") == "false"
    page.keyboard.press("Enter")
    assert row.get_attribute("aria-expanded") == "true"
    expect(page.locator("tr.detail")).to_have_count(1)
    page.keyboard.press(" ")
    expect(page.locator("tr.detail")).to_have_count(0)
    assert row.get_attribute("aria-expanded") == "false"
    # sort header: Enter sorts
    page.focus("th[data-key=resource_name]")
    page.keyboard.press("Enter")
    assert page.get_attribute("th[data-key=resource_name]", "aria-sort") == "ascending"
    # severity card: Enter filters
    assert page.get_attribute(".card.sev-critical", "tabindex") == "0"
    page.focus(".card.sev-critical")
    page.keyboard.press("Enter")
    expect(rows(page)).to_have_count(sum(1 for f in sample_report.findings if f.severity == "critical"))
    # tab and rule link: real links, Enter follows them
    page.focus("nav.tabs button[data-view=view-rules]")
    page.keyboard.press("Enter")
    assert page.is_visible("#view-rules")
    link = page.locator("#rules a", has_text="VS-NET-006")
    assert link.get_attribute("href") == "#rule=VS-NET-006"
    link.focus()
    page.keyboard.press("Enter")
    expect(rows(page)).to_have_count(sum(1 for f in sample_report.findings if f.rule_id == "VS-NET-006"))
    page.focus("nav.tabs button[data-view=view-resources]")
    page.keyboard.press(" ")
    link = page.locator("#resources tbody a").first
    assert link.get_attribute("href").startswith("#res=")
    resource_id = link.get_attribute("title")
    link.focus()
    page.keyboard.press(" ")
    expect(rows(page)).to_have_count(sum(1 for f in sample_report.findings if f.resource_id == resource_id))
    assert page.errors == []


def test_filters_live_in_the_url_and_restore_the_view(browser, tmp_path, sample_report):
    from auditor.compliance import compliance
    page = open_report(browser, tmp_path, sample_report, "#sev=high&cat=hardening&q=esx")
    assert page.input_value("#filter-severity") == "high"
    assert page.input_value("#filter-category") == "hardening"
    assert page.input_value("#filter-text") == "esx"
    expected = [f for f in sample_report.findings if f.severity == "high" and f.category == "hardening"
                and "esx" in (f.message + " " + f.resource_name + " " + f.resource_id + " " + f.rule_id + " "
                              + f.title).lower()]
    assert 0 < len(expected) < len(sample_report.findings)
    expect(rows(page)).to_have_count(len(expected))
    page.select_option("#filter-cloud", "vsphere")
    assert "cloud=vsphere" in page.evaluate("location.hash")
    page.click("th[data-key=message]")
    assert "sort=message" in page.evaluate("location.hash")
    page.click("nav.tabs button[data-view=view-rules]")
    assert "tab=rules" in page.evaluate("location.hash")
    shared = page.url
    page.context.close()
    context = browser.new_context()
    again = context.new_page()
    again.goto(shared)
    again.wait_for_selector("#view-rules:not([hidden])")
    assert again.input_value("#filter-cloud") == "vsphere" and again.input_value("#filter-severity") == "high"
    assert again.get_attribute("th[data-key=message]", "aria-sort") == "ascending"
    context.close()
    page = open_report(browser, tmp_path, sample_report, "#tab=compliance&control=cis-azure-2.0:6.1", "b.html")
    assert page.is_visible("#view-compliance")
    expect(page.locator("#control-chip")).to_contain_text("6.1")
    page.click("nav.tabs button[data-view=view-findings]")
    control = next(c for c in compliance(sample_report)["cis-azure-2.0"]["controls"] if c["id"] == "6.1")
    expect(rows(page)).to_have_count(sum(1 for f in sample_report.findings if f.rule_id in control["rules"]))
    assert page.evaluate("location.hash") == "#control=cis-azure-2.0%3A6.1"
    page.click("#filter-reset")
    assert page.evaluate("location.hash") == ""
    page.context.close()


def _csv_lines(report):
    from auditor.formats.csv import CsvReport
    return CsvReport().render(report).decode("utf-8").split("\r\n")


def test_export_csv_downloads_the_filtered_rows_escaped_like_findings_csv(browser, tmp_path, sample_report):
    import copy
    report = copy.copy(sample_report)
    report.findings = [copy.copy(f) for f in sample_report.findings]
    hostile = report.findings[0]
    hostile.resource_name = '=HYPERLINK("http://evil","click")'
    hostile.message = '-2+3, "quoted"\nforged line \u202e reversed'
    hostile.first_seen = "@2026-01-01"
    hostile.suppression = {"reason": "r", "owner": "+owner", "expires": "2027-01-01", "file": "w", "line": 1}
    page = open_report(browser, tmp_path, report)
    with page.expect_download() as info:
        page.click("#export-csv")
    text = Path(info.value.path()).read_bytes().decode("utf-8")
    lines, expected = text.split("\r\n"), _csv_lines(report)
    assert lines[0] == expected[0]
    assert sorted(lines) == sorted(expected) and len(lines) == len(report.findings) + 2
    assert any(line.startswith("high") or "'=HYPERLINK" in line for line in lines)
    assert any("'=HYPERLINK(\"\"http://evil\"\",\"\"click\"\")" in line and "\\x0a" in line and "\\u202e" in line
               and "'+owner" in line and "'@2026-01-01" in line for line in lines)
    page.select_option("#filter-category", "licensing")
    with page.expect_download() as info:
        page.click("#export-csv")
    lines = Path(info.value.path()).read_bytes().decode("utf-8").split("\r\n")
    filtered = copy.copy(report)
    filtered.findings = [f for f in report.findings if f.category == "licensing"]
    assert 0 < len(filtered.findings) < len(report.findings)
    assert sorted(lines) == sorted(_csv_lines(filtered))
    page.context.close()


def test_trend_chart_has_axes_dates_and_totals(browser, tmp_path, sample_report):
    import copy
    report = copy.copy(sample_report)
    counts = [(1, 5, 10, 3, 0), (2, 7, 12, 4, 1), (0, 3, 9, 2, 0)]
    report.history = [{"id": i, "scanned_at": f"2026-11-{20 + i}T08:00:00Z", "critical": c, "high": h, "medium": m,
                       "low": low, "info": info, "total": c + h + m + low + info}
                      for i, (c, h, m, low, info) in enumerate(counts)]
    page = open_report(browser, tmp_path, report)
    ticks = [int(t) for t in page.locator("#trend text.y-tick").all_text_contents()]
    assert ticks[0] == 0 and ticks[-1] >= 26 and len(ticks) >= 3 and ticks == sorted(ticks)
    assert page.locator("#trend text.x-label").all_text_contents() == ["2026-11-20", "2026-11-21", "2026-11-22"]
    assert page.locator("#trend text.bar-total").all_text_contents() == ["19", "26", "14"]
    page.context.close()


def test_resource_view_pages_beyond_a_thousand(browser, tmp_path, sample_report):
    import copy
    report = copy.copy(sample_report)
    template = sample_report.findings[0]
    extra = []
    for i in range(1500):
        f = copy.copy(template)
        f.resource_id, f.resource_name, f.fingerprint = f"/extra/vm-{i}", f"extra-vm-{i:04d}", f"extra-{i}"
        extra.append(f)
    report.findings = list(sample_report.findings) + extra
    total = len({f.resource_id for f in report.findings})
    assert total > 1500
    page = open_report(browser, tmp_path, report)
    page.click("nav.tabs button[data-view=view-resources]")
    resources = page.locator("#resources tbody tr")
    assert resources.count() == 1000
    expect(page.locator("#resources-count")).to_have_text(f"showing 1,000 of {total:,} resources with findings")
    page.click("#resources-more")
    expect(resources).to_have_count(total)
    expect(page.locator("#resources-count")).to_have_text(f"showing {total:,} of {total:,} resources with findings")
    assert page.is_hidden("#resources-more")
    assert len(set(page.locator("#resources tbody a").evaluate_all("links => links.map(a => a.title)"))) == total
    page.context.close()


def test_days_open_only_where_history_knows_the_first_sighting(browser, tmp_path, sample_report):
    import copy
    assert all(f.first_seen is None for f in sample_report.findings)  # no history: nothing is known
    report = copy.copy(sample_report)
    report.findings = [copy.copy(f) for f in sample_report.findings]
    known, unknown = report.findings[0], report.findings[1]
    known.first_seen = "2026-11-05T00:00:00Z"
    page = open_report(browser, tmp_path, report)
    for finding, shows in ((known, True), (unknown, False)):
        page.fill("#filter-text", finding.resource_id)
        needle = finding.resource_id.lower()
        expect(rows(page)).to_have_count(sum(1 for f in report.findings if needle in " ".join(
            (f.message, f.resource_name, f.resource_id, f.rule_id, f.title)).lower()))
        row = page.locator(f"#findings tbody tr.finding[data-fingerprint='{finding.fingerprint}']").first
        row.click()
        detail = page.locator("tr.detail").first
        expect(detail).to_be_visible()
        assert ("days open" in detail.inner_text()) is shows
        row.click()
    page.context.close()


def test_prototype_names_in_links_and_in_the_estate_break_nothing(browser, tmp_path, sample_report):
    # a shared link may name any framework, and an estate may name a resource __proto__
    import copy

    for hash_ in ("#control=__proto__:x", "#control=constructor:x", "#control=hasOwnProperty:x"):
        page = open_report(browser, tmp_path, sample_report, hash_, name="proto.html")
        page.wait_for_selector("#findings tbody tr.finding")
        assert not page.errors and rows(page).count() > 0, hash_
        page.close()
    report = copy.copy(sample_report)
    report.findings = [copy.copy(f) for f in sample_report.findings]
    report.findings[0].resource_id = report.findings[0].resource_name = "__proto__"
    page = open_report(browser, tmp_path, report, name="proto-resource.html")
    page.wait_for_selector("#findings tbody tr.finding")
    assert page.evaluate("Object.prototype.count") is None
    assert page.locator("#shown-count").inner_text().startswith(f"showing {min(500, len(report.findings))} of")
    page.close()
