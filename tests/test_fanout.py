"""Collect at each site, scan centrally (issue #18), end to end with real peers.

Two sites each run `auditor collect vsphere` against their own vCenter (two govmomi
simulators) into one container of Azure Blob Storage (Microsoft's Azurite), each in its own
process and with a SAS that may only create and write, as a site has; a central
`auditor scan` reads the newest snapshot of every site with a read-and-list SAS and records
the scan in PostgreSQL (Debian's server, tests/postgres.py). Then one site collects again
later, and a scan whose --max-age is shorter than the other site's snapshot age names that
site, exits 3, and still reports the fresh site's findings.

`clean_environment` and the `sites` fixture also serve tests/test_examples.py, which runs the
fan-out examples (GitHub Actions, Kubernetes) against the same peers; containers come from
tests/azurite.py, as test_blob.py's do.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from auditor.errors import EXIT_INCOMPLETE, EXIT_OK
from tests import vcsim
from tests.azurite import Container, new_container
from tests.conftest import AS_OF
from tests.postgres import PostgresServer, postgres_fixture, postgres_url_fixture  # noqa: F401 (fixtures)

pytestmark = pytest.mark.peer
USER = "auditor@vsphere.local"
PREFIX = "site-snapshots/"
GUARD = 120  # seconds: a command still running then hangs
WROTE = re.compile(r"^wrote \d+ resources to (\S+) \(", re.M)


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without auditor's, Azure's, vSphere's and libpq's variables
    (a developer's own must not leak into a site's run), plus `extra`."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("AUDITOR_", "AZURE_", "VSPHERE_", "PG", "CI_"))}
    env.update(extra)
    return env


def collected_at(blob: str) -> datetime:
    """The collection time a snapshot blob is named by (`.../20261120T080000Z.json.gz`)."""
    stamp = re.search(r"/(\d{8}T\d{6}Z)(?:-\d+)?\.json\.gz$", blob)
    assert stamp, blob
    return datetime.strptime(stamp.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


@pytest.fixture(scope="module", name="sites")
def sites_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[vcsim.Simulator]]:
    """Two vCenters, one per site."""
    binary = vcsim.build(tmp_path_factory.mktemp("vcsim-bin"))
    workdir = tmp_path_factory.mktemp("vcsim")
    simulators = [vcsim.start(binary, workdir, "-user", USER) for _ in range(2)]
    yield simulators
    for simulator in simulators:
        simulator.stop()


def auditor(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command in its own process, as a site's or the central scheduler runs it."""
    result = subprocess.run(["auditor", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=GUARD)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def collect_site(vcenter: vcsim.Simulator, container: Container, workdir: Path) -> str:
    """One site's collection, with the site's write-only SAS; the blob it wrote (az://...)."""
    env = clean_environment(AZURE_STORAGE_CONNECTION_STRING=container.connection_string("cw"),
                            VSPHERE_USER=USER, VSPHERE_PASSWORD=vcsim.PASSWORD)
    result = auditor(["collect", "vsphere", "--vsphere", vcenter.server, "--vsphere-ca-bundle", str(vcenter.cert),
                      "--output", container.at(PREFIX)], env, workdir)
    assert result.returncode == EXIT_OK, result.stderr
    # the exact blob is named, not the prefix: the site's log says which snapshot it added
    [blob] = WROTE.findall(result.stdout)
    assert blob.startswith(container.at(f"{PREFIX}vsphere-127.0.0.1-{vcenter.port}/")), result.stdout
    assert blob.removeprefix(container.at()) in container.names(PREFIX)
    return blob


def test_sites_collect_into_storage_and_one_scan_reads_them_all(sites, azurite, postgres: PostgresServer,
                                                                postgres_url, tmp_path):
    paris, lyon = sites
    container = new_container(azurite, "fanout")
    central = clean_environment(AZURE_STORAGE_CONNECTION_STRING=container.connection_string("rl"),
                                PGPASSWORD=postgres.password)
    scan = ["scan", "--snapshot", container.at(PREFIX), "--history", postgres_url, "--as-of", AS_OF.isoformat(),
            "-q", "-f", "json"]

    def history() -> list[tuple]:
        database = postgres_url.rsplit("/", 1)[1]
        with postgres.admin(database) as db:
            rows = db.execute("SELECT sources, incomplete, resource_count, total FROM scans ORDER BY id").fetchall()
        return [({s["id"]: s["status"] for s in json.loads(sources)}, *rest) for sources, *rest in rows]

    paris_blob = collect_site(paris, container, tmp_path)
    lyon_blob = collect_site(lyon, container, tmp_path)
    assert container.names(PREFIX) == sorted(b.removeprefix(container.at()) for b in (paris_blob, lyon_blob))

    # the central scan: both sites' newest snapshots merged, recorded in the team's history
    first = auditor([*scan, "--output", "first"], central, tmp_path)
    assert first.returncode == EXIT_OK, first.stderr
    report = json.loads((tmp_path / "first" / "latest" / "findings.json").read_text())
    sources = {s["id"]: s for s in report["snapshot"]["sources"]}
    assert set(sources) == {paris.server, lyon.server} and all(s["status"] == "ok" for s in sources.values())
    by_site = {site: [f for f in report["findings"] if f["source"] == site] for site in sources}
    assert by_site[paris.server] and by_site[lyon.server]  # both vCenters' findings, e.g. ESXi 6.5 out of support
    assert {f["rule_id"] for f in by_site[paris.server]} == {f["rule_id"] for f in by_site[lyon.server]}
    [(recorded_sources, incomplete, resource_count, total)] = history()
    assert recorded_sources == {paris.server: "ok", lyon.server: "ok"}
    assert (incomplete, resource_count, total) == (0, report["snapshot"]["resource_count"], len(report["findings"]))
    database = postgres_url.rsplit("/", 1)[1]
    with postgres.admin(database) as db:
        fingerprints = {fp for (fp,) in db.execute("SELECT fingerprint FROM findings")}
    assert fingerprints == {f["fingerprint"] for f in report["findings"]}

    # Lyon collects again later; Paris's collector has stopped. A --max-age shorter than
    # Paris's snapshot's age, and longer than Lyon's new one's, names Paris alone. The
    # margins leave Lyon's scan seconds to start on a busy machine.
    time.sleep(max(0.0, (collected_at(paris_blob) + timedelta(seconds=12) - datetime.now(UTC)).total_seconds()))
    fresh_lyon = collect_site(lyon, container, tmp_path)
    gap = int((collected_at(fresh_lyon) - collected_at(paris_blob)).total_seconds())
    assert gap >= 12, (paris_blob, fresh_lyon)
    max_age = gap - 4
    stale = auditor([*scan, "--output", "stale", "--max-age", f"{max_age}s"], central, tmp_path)
    assert stale.returncode == EXIT_INCOMPLETE, stale.stderr
    assert f"auditor: error: {paris.server}: newest snapshot is " in stale.stderr
    assert f"{paris_blob}), older than --max-age {max_age} s" in stale.stderr
    assert f"collection incomplete: {paris.server} failed" in stale.stderr
    assert f"{lyon.server}: newest snapshot" not in stale.stderr
    report = json.loads((tmp_path / "stale" / "latest" / "findings.json").read_text())
    sources = {s["id"]: s for s in report["snapshot"]["sources"]}
    assert sources[paris.server]["status"] == "failed" and sources[lyon.server]["status"] == "ok"
    assert sources[paris.server]["details"]["stale_snapshot"]["max_age_seconds"] == max_age
    # the fresh site is still reported in full; the stale one is not passed off as current
    assert {f["fingerprint"] for f in report["findings"] if f["source"] == lyon.server} == \
        {f["fingerprint"] for f in by_site[lyon.server]}
    assert not any(f["source"] == paris.server for f in report["findings"])
    # the partial scan is recorded as such, with the stale site as failed
    assert [row[:2] for row in history()][1:] == [({paris.server: "failed", lyon.server: "ok"}, 1)]
