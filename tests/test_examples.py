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
from tests.azurite import new_container
from tests.conftest import ROOT
from tests.postgres import postgres_fixture, postgres_url_fixture  # noqa: F401 (fixtures)
from tests.test_fanout import clean_environment, sites_fixture  # noqa: F401 (fixture: two vCenters)

pytestmark = pytest.mark.peer
EXAMPLES = ROOT / "examples"
USER = "auditor@vsphere.local"


@pytest.fixture
def replay(tmp_path):
    server = ArmReplay(tmp_path, standard_estate()).start()
    yield server
    server.stop()


@pytest.fixture
def site(tmp_path, sites):
    """The folders and files an example expects on its host, with the peers' names."""
    etc, var, audit = tmp_path / "etc" / "auditor", tmp_path / "var" / "lib" / "auditor", tmp_path / "work" / "audit"
    for folder in (etc, var, audit / "rules"):
        folder.mkdir(parents=True)
    bundle = "".join(sim.cert.read_text() for sim in sites)
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
    names = {"vc1.corp.example": sites[0].server, "vc2.corp.example": sites[1].server,
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


# --- collecting at each site, scanning centrally --------------------------------------------
# The fan-out examples run against Azurite (the sites' and the central scan's storage, each
# with a SAS of only the permissions the example's comments give them), the two simulated
# vCenters as two sites, the Resource Manager replay as the Azure site and PostgreSQL as the
# team's history.

KUBERNETES = EXAMPLES / "kubernetes"
# a Kubernetes version whose schemas kubernetes-validate ships (pinned in pyproject.toml):
# CronJob.timeZone (1.27) and Job.podFailurePolicy (1.26) are in it
KUBERNETES_VERSION = "1.30"
SECRET_NAMES = re.compile(r"PASSWORD|SECRET|CONNECTION_STRING|SAS|KEY|TOKEN", re.I)
SECRET_TEXT = re.compile(r"(?i)password(?![-_]file)|sig=|accountkey|sharedaccesssignature|://[^/@\s]*:[^/@\s]*@")


def manifests() -> list[tuple[str, dict]]:
    """(file name, document) of every Kubernetes manifest in examples/kubernetes/."""
    found = [(path.name, document) for path in sorted(KUBERNETES.glob("*.yaml"))
             for document in yaml.safe_load_all(path.read_text()) if document]
    assert found
    return found


def cronjobs() -> dict[str, dict]:
    return {document["metadata"]["name"]: document for _, document in manifests() if document["kind"] == "CronJob"}


def test_kubernetes_manifests_match_the_schemas_of_the_pinned_version(monkeypatch):
    import socket

    from kubernetes_validate.utils import validate

    def offline(*args: object) -> None:
        raise AssertionError("the schemas must come from the package, not the network")

    # CI has no network beyond package registries: validation must not even try
    monkeypatch.setattr(socket.socket, "connect", offline)
    monkeypatch.setattr(socket, "getaddrinfo", offline)
    kinds = []
    for name, document in manifests():
        # strict: a misspelt field (readOnlyRootFileSystem) is an error, not silently ignored;
        # a kind without a schema raises too, rather than pass unchecked
        assert validate(document, KUBERNETES_VERSION, strict=True) == KUBERNETES_VERSION, name
        kinds.append(document["kind"])
    assert kinds.count("CronJob") == 3  # two sites and the central scan


def test_kubernetes_cronjobs_run_unprivileged_bounded_and_without_secrets_in_arguments():
    image_user = re.search(r"^USER (\d+):(\d+)$", (KUBERNETES / "Dockerfile").read_text(), re.M)
    assert image_user, "the image needs a numeric USER for runAsNonRoot to be checked"
    for name, cronjob in cronjobs().items():
        assert cronjob["spec"]["concurrencyPolicy"] == "Forbid", name
        job = cronjob["spec"]["jobTemplate"]["spec"]
        assert job["backoffLimit"] <= 3 and 0 < job["activeDeadlineSeconds"] <= 3600, name
        pod = job["template"]["spec"]
        assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False, name
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True and context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert (str(context["runAsUser"]), str(context["runAsGroup"])) == image_user.groups(), name
        scratch = {volume["name"] for volume in pod["volumes"] if "emptyDir" in volume}
        [container] = pod["containers"]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"] == {"drop": ["ALL"]}, name
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
        assert "memory" in container["resources"]["limits"], name
        assert any(mount["mountPath"] == "/tmp" and mount["name"] in scratch for mount in container["volumeMounts"])
        # secrets come from a Secret through the environment, never as arguments or literals
        assert not [arg for arg in container["command"] + container["args"] if SECRET_TEXT.search(str(arg))], name
        for variable in container.get("env", []):
            if SECRET_NAMES.search(variable["name"]):
                assert "secretKeyRef" in variable.get("valueFrom", {}), (name, variable["name"])


def pod_run(cronjob: dict, names: dict[str, str], secrets: dict[tuple[str, str], str], config: Path,
            env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """Run a CronJob's container as its pod would: its command and arguments (no shell), its
    environment with the Secret's values, its ConfigMap at `config` instead of its mountPath."""
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    config_mounts = [mounts[v["name"]] for v in pod["volumes"] if "configMap" in v]
    names = {**names, **{path: str(config) for path in config_mounts}}
    variables = dict(env)
    for variable in container.get("env", []):
        if "value" in variable:
            variables[variable["name"]] = variable["value"]
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            variables[variable["name"]] = secrets[ref["name"], ref["key"]]
    argv = [localised(str(arg), names) for arg in container["command"] + container["args"]]
    return subprocess.run(argv, cwd=cwd, env=variables, capture_output=True, text=True, timeout=300)


def test_kubernetes_cronjobs_collect_at_each_site_and_scan_centrally(site, sites, replay, azurite, postgres,
                                                                     postgres_url, tmp_path):
    container = new_container(azurite)
    jobs = cronjobs()
    names = {"postgresql://auditor@db.corp.example:5432/auditor?sslmode=verify-full&sslrootcert=/etc/auditor/db-ca.pem":
             postgres_url, "az://site-data/": container.at(), "vc1.paris.example": sites[0].server,
             "mg-production": "mg-payments"}
    site_storage = container.connection_string("cw")  # what each site's Secret holds: create and write only
    paris_config, central_config = tmp_path / "paris-config", tmp_path / "central-config"
    for folder in (paris_config, central_config):
        folder.mkdir()
    shutil.copy(sites[0].cert, paris_config / "vcenter-ca.pem")
    shutil.copy(EXAMPLES / "waivers.yaml", central_config / "waivers.yaml")
    shutil.copy(site["work"] / "audit" / "baselines.yaml", central_config / "baselines.yaml")

    paris = pod_run(jobs["auditor-collect-paris"], names, {
        ("auditor-site-paris", "vsphere-user"): USER, ("auditor-site-paris", "vsphere-password"): vcsim.PASSWORD,
        ("auditor-site-paris", "storage-connection-string"): site_storage}, paris_config, clean_environment(), tmp_path)
    assert paris.returncode == 0, paris.stderr
    # AKS's workload identity webhook would inject the identity; here, the replay's service principal
    azure_identity = {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT_ID, "AZURE_CLIENT_SECRET": CLIENT_SECRET,
                      "AUDITOR_AZURE_ARM_ENDPOINT": replay.url, "AUDITOR_AZURE_AUTHORITY": replay.url,
                      "AUDITOR_AZURE_CA_BUNDLE": str(replay.cert)}
    azure = pod_run(jobs["auditor-collect-azure"], names,
                    {("auditor-site-azure", "storage-connection-string"): site_storage}, tmp_path / "unused",
                    clean_environment(**azure_identity), tmp_path)
    assert azure.returncode == 0, azure.stderr
    folders = {name.split("/")[1] for name in container.names("site-snapshots/")}
    assert folders == {f"vsphere-127.0.0.1-{sites[0].port}", "azure-mg-mg-payments"}

    central_secrets = {("auditor-central", "storage-connection-string"): container.connection_string("rlcw"),
                       ("auditor-central", "pgpassword"): postgres.password}
    for run_number in (1, 2):  # the second compares with the first's latest/ in storage
        central = pod_run(jobs["auditor-scan"], names, central_secrets, central_config, clean_environment(),
                          tmp_path)
        assert central.returncode == 0, central.stderr
        assert "Traceback" not in central.stderr
        latest = json.loads(container.read("reports/latest/findings.json"))
        assert {s["cloud"] for s in latest["snapshot"]["sources"]} == {"vsphere", "azure"}
        assert all(s["status"] == "ok" for s in latest["snapshot"]["sources"]) and latest["findings"]
        if run_number == 2:
            assert latest["compared_with"] == container.at("reports/latest/findings.json")
            assert "new" not in {f["state"] for f in latest["findings"]}
    runs = {name.split("/")[1] for name in container.names("reports/")} - {"latest"}
    assert len(runs) == 2 and not (tmp_path / "reports").exists()  # reports only in storage
    with postgres.admin(postgres_url.rsplit("/", 1)[1]) as db:
        assert db.execute("SELECT count(*), max(incomplete) FROM scans").fetchone() == (2, 0)


GITHUB_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def expand(text: str, context: dict[str, dict[str, str]]) -> str:
    """GitHub's `${{ matrix.site }}` and `${{ secrets.NAME }}` in a workflow value, from
    `context`; any other expression fails the test, so an example cannot grow one untested."""
    def value(match: re.Match) -> str:
        scope, _, key = match.group(1).partition(".")
        assert scope in context and key in context[scope], f"no value for ${{{{ {match.group(1)} }}}} in the test"
        return context[scope][key]

    return GITHUB_EXPRESSION.sub(value, text)


def step_run(job: dict, context: dict[str, dict[str, str]], names: dict[str, str], env: dict[str, str],
             cwd: Path) -> subprocess.CompletedProcess:
    """The job's auditor step (its `run:` under bash, its `env:`) with GitHub's expressions filled in."""
    [step] = [step for step in job["steps"] if "auditor " in step.get("run", "") and "pip install" not in step["run"]]
    variables = {**env, **{key: expand(str(value), context) for key, value in step.get("env", {}).items()}}
    return run(localised(expand(step["run"], context), names), cwd, variables)


def test_github_actions_fanout_collects_at_each_site_then_scans_them_all(site, sites, replay, azurite, postgres,
                                                                          postgres_url):
    workflow = yaml.safe_load((EXAMPLES / "github-actions-fanout.yml").read_text())
    jobs = workflow["jobs"]
    central = jobs["scan"]
    assert set(central["needs"]) == {"collect-vsphere", "collect-azure"}
    assert "!cancelled()" in central["if"]  # a site whose collection failed does not stop the scan
    assert jobs["collect-vsphere"]["strategy"]["fail-fast"] is False
    container = new_container(azurite)
    work = site["work"]
    names = {**site["names"], "az://site-data/": container.at(), "vc1.paris.example": sites[0].server,
             "vc1.lyon.example": sites[1].server}
    site_storage = container.connection_string("cw")  # the sites' SAS: create and write only
    # the secrets of each GitHub environment
    secrets = {
        "site-paris": {"VSPHERE_USER": USER, "VSPHERE_PASSWORD": vcsim.PASSWORD, "AUDIT_SITE_STORAGE": site_storage},
        "site-lyon": {"VSPHERE_USER": USER, "VSPHERE_PASSWORD": vcsim.PASSWORD, "AUDIT_SITE_STORAGE": site_storage},
        "site-azure": {"AZURE_CLIENT_ID": CLIENT_ID, "AZURE_TENANT_ID": TENANT, "AUDIT_SITE_STORAGE": site_storage},
        "audit-central": {"AUDIT_READER_STORAGE": container.connection_string("rl"),
                          "AUDIT_HISTORY_URL": postgres_url, "AUDIT_HISTORY_PASSWORD": postgres.password},
    }
    (work / "audit" / "ca").mkdir()
    matrix = jobs["collect-vsphere"]["strategy"]["matrix"]["include"]
    for entry in matrix:  # the repository's CA of each site's vCenters
        [vcenter] = [sim for sim in sites if sim.server == localised(entry["vcenters"], names)]
        shutil.copy(vcenter.cert, work / "audit" / "ca" / f"{entry['site']}.pem")

    for entry in matrix:
        environment_name = expand(jobs["collect-vsphere"]["environment"], {"matrix": entry})
        context = {"matrix": entry, "secrets": secrets[environment_name]}
        collected = step_run(jobs["collect-vsphere"], context, names, clean_environment(), work)
        assert collected.returncode == 0, collected.stderr
    # what azure/login leaves behind for DefaultAzureCredential, and where this test's cloud is
    azure_login = clean_environment(AZURE_TENANT_ID=TENANT, AZURE_CLIENT_ID=CLIENT_ID, AZURE_CLIENT_SECRET=CLIENT_SECRET,
                                    AUDITOR_AZURE_ARM_ENDPOINT=replay.url, AUDITOR_AZURE_AUTHORITY=replay.url,
                                    AUDITOR_AZURE_CA_BUNDLE=str(replay.cert))
    azure = step_run(jobs["collect-azure"], {"secrets": secrets[jobs["collect-azure"]["environment"]]}, names,
                     azure_login, work)
    assert azure.returncode == 0, azure.stderr
    assert len({name.split("/")[1] for name in container.names("site-snapshots/")}) == 3  # a folder per site

    scanned = step_run(central, {"secrets": secrets[central["environment"]]}, names, clean_environment(), work)
    assert scanned.returncode == 0, scanned.stderr
    assert "Traceback" not in scanned.stderr
    upload = next(step for step in central["steps"] if step.get("uses", "").startswith("github/codeql-action/upload-sarif"))
    sarif = json.loads((work / upload["with"]["sarif_file"]).read_text())
    categories = {run["automationDetails"]["id"] for run in sarif["runs"]}
    assert {f"vsphere/{sim.server}/" for sim in sites} <= categories
    assert any(category.startswith("azure/") for category in categories)
    findings = json.loads((work / "reports" / "latest" / "findings.json").read_text())
    sources = findings["snapshot"]["sources"]
    assert {s["id"] for s in sources if s["cloud"] == "vsphere"} == {sim.server for sim in sites}
    assert any(s["cloud"] == "azure" for s in sources) and all(s["status"] == "ok" for s in sources)
    with postgres.admin(postgres_url.rsplit("/", 1)[1]) as db:
        assert db.execute("SELECT count(*), max(incomplete), max(total) FROM scans").fetchone() == \
            (1, 0, len(findings["findings"]))
