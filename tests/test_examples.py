"""Every example in examples/ run end to end, twice in a row, as its scheduler runs it: on a
new host (nothing to compare with yet), then again, comparing with the first run.

The commands are taken from the example files as written; only the names of this test's
peers and folders replace the examples' (vc1.corp.example becomes a simulator on
127.0.0.1, /etc/auditor a temporary folder), and where a CI service would provide
credentials or endpoints (GitHub's azure/login, secrets) the environment carries them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests import vcsim
from tests.arm_replay import CLIENT_ID, CLIENT_SECRET, TENANT, ArmReplay, standard_estate
from tests.conftest import ROOT

pytestmark = pytest.mark.peer
EXAMPLES = ROOT / "examples"
USER = "auditor@vsphere.local"


@pytest.fixture(scope="module")
def vcenters(tmp_path_factory):
    binary = vcsim.build(tmp_path_factory.mktemp("vcsim-bin"))
    workdir = tmp_path_factory.mktemp("vcsim")
    simulators = [vcsim.start(binary, workdir, "-user", USER) for _ in range(2)]
    yield simulators
    for simulator in simulators:
        simulator.stop()


@pytest.fixture
def replay(tmp_path):
    server = ArmReplay(tmp_path, standard_estate()).start()
    yield server
    server.stop()


@pytest.fixture
def site(tmp_path, vcenters):
    """The folders and files an example expects on its host, with the peers' names."""
    etc, var, audit = tmp_path / "etc" / "auditor", tmp_path / "var" / "lib" / "auditor", tmp_path / "work" / "audit"
    for folder in (etc, var, audit / "rules"):
        folder.mkdir(parents=True)
    bundle = "".join(sim.cert.read_text() for sim in vcenters)
    for folder in (etc, audit):
        (folder / "vcenter-ca.pem").write_text(bundle)
        shutil.copy(EXAMPLES / "waivers.yaml", folder / "waivers.yaml")
    (etc / "vsphere-password").write_text(vcsim.PASSWORD + "\n")
    (etc / "vsphere-password").chmod(0o600)
    (audit / "baselines.yaml").write_text("baselines:\n  desired.ntp_servers: [ntp1.corp.example]\n")
    (audit / "rules" / "house.yaml").write_text("""\
rules:
  - id: HOUSE-001
    title: VM without an owner
    severity: low
    category: other
    resource: [vsphere:VirtualMachine, azure:microsoft.compute/virtualmachines]
    description: Every VM names the team that answers for it.
    remediation: Set the owner tag (vSphere custom attribute owner).
    references: [https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/tag-resources]
    match: {path: tags.owner, op: absent}
""")
    names = {"vc1.corp.example": vcenters[0].server, "vc2.corp.example": vcenters[1].server,
             "/etc/auditor": str(etc), "/var/lib/auditor": str(var), "/usr/local/bin/auditor": "auditor",
             "mg-production": "mg-payments"}
    return {"names": names, "var": var, "work": audit.parent, "tmp": tmp_path}


def localised(text: str, names: dict[str, str]) -> str:
    for real, local in names.items():
        text = text.replace(real, local)
    return text


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITOR_", "AZURE_", "VSPHERE_", "CI_"))}
    env.update(extra)
    return env


def run(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def assert_compared_second_run(first, second, findings: Path) -> None:
    assert first.returncode in (0, 1), first.stderr
    assert "Traceback" not in first.stderr + second.stderr
    assert second.returncode == 0, second.stderr
    document = json.loads(findings.read_text())
    assert document["compared_with"] and document["findings"]
    assert "new" not in {f["state"] for f in document["findings"]}


def test_cron_line_runs_twice(site):
    line = next(line for line in (EXAMPLES / "cron.txt").read_text().splitlines()
                if line and not line.startswith("#") and "=" not in line.split()[0])
    command = localised(" ".join(line.split()[6:]), site["names"])  # after the schedule and the user
    first = run(command, site["tmp"], environment())
    assert "no earlier scan" in first.stderr  # a new host: said, and every finding is new
    second = run(command, site["tmp"], environment())
    assert_compared_second_run(first, second, site["var"] / "reports" / "latest" / "findings.json")


def test_systemd_service_runs_twice(site):
    unit = (EXAMPLES / "systemd" / "auditor-scan.service").read_text()
    service = {}
    for key, value in re.findall(r"^(\w+)=((?:[^\n]*\\\n)*[^\n]*)", unit, re.M):
        service.setdefault(key, []).append(value.replace("\\\n", " "))
    credentials = site["tmp"] / "credentials"
    credentials.mkdir()
    name, path = service["LoadCredential"][0].split(":", 1)
    shutil.copy(localised(path, site["names"]), credentials / name)
    env = environment(CREDENTIALS_DIRECTORY=str(credentials),
                      **dict(entry.split("=", 1) for entry in service["Environment"]))
    command = localised(service["ExecStart"][0], site["names"])
    cwd = Path(localised(service["WorkingDirectory"][0], site["names"]))
    first, second = run(command, cwd, env), run(command, cwd, env)
    assert_compared_second_run(first, second, site["var"] / "reports" / "latest" / "findings.json")
    assert (EXAMPLES / "systemd" / "auditor-scan.timer").read_text().count("OnCalendar=") == 1


def test_github_actions_workflow_runs_twice(site, replay):
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    steps = workflow["jobs"]["audit"]["steps"]
    scan = next(step for step in steps if step.get("name") == "Scan")
    keep = next(step for step in steps if step.get("name") == "Keep this scan as the next reference")
    secrets = {"VSPHERE_USER": USER, "VSPHERE_PASSWORD": vcsim.PASSWORD}
    env = environment(
        **{key: secrets[re.search(r"secrets\.(\w+)", value).group(1)] for key, value in scan["env"].items()},
        # what azure/login leaves behind for DefaultAzureCredential, and where this test's cloud is
        AZURE_TENANT_ID=TENANT, AZURE_CLIENT_ID=CLIENT_ID, AZURE_CLIENT_SECRET=CLIENT_SECRET,
        AUDITOR_AZURE_ARM_ENDPOINT=replay.url, AUDITOR_AZURE_AUTHORITY=replay.url,
        AUDITOR_AZURE_CA_BUNDLE=str(replay.cert))
    work = site["work"]
    results = []
    for _ in range(2):  # actions/cache keeps audit-previous/ between the runs
        results.append(run(localised(scan["run"], site["names"]), work, env))
        assert run(keep["run"], work, env).returncode == 0
        assert (work / "reports" / "latest" / "results.sarif").exists()  # what upload-sarif sends
    assert_compared_second_run(*results, work / "reports" / "latest" / "findings.json")
    sources = json.loads((work / "reports" / "latest" / "findings.json").read_text())["snapshot"]["sources"]
    assert {s["cloud"] for s in sources} == {"vsphere", "azure"} and all(s["status"] == "ok" for s in sources)


def test_gitlab_job_runs_twice(site):
    job = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())["compliance-audit"]
    script = next(step for step in job["script"] if "auditor scan" in step)
    env = environment(CI_PIPELINE_SOURCE="schedule", VSPHERE_USER=USER, VSPHERE_PASSWORD=vcsim.PASSWORD)
    work = site["work"]
    first = run(localised(script, site["names"]), work, env)
    second = run(localised(script, site["names"]), work, env)
    assert_compared_second_run(first, second, work / "reports" / "latest" / "findings.json")
    assert (work / job["artifacts"]["reports"]["junit"]).exists()
