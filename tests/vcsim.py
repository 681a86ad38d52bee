"""govmomi's vCenter simulator, built from Debian's Go packages and run per test module."""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditor.sources.vsphere import VSphereConnection
from tests.conftest import ROOT, need_peer

SOURCE = ROOT / "tests" / "vcsim"
GOPATH = Path("/usr/share/gocode")
PASSWORD = "vcsim-Pa55word!"  # a test simulator's login, not a secret anyone relies on


def build(target_dir: Path) -> Path:
    """Build the simulator (about 20 s the first time; Go caches the rest)."""
    go = shutil.which("go")
    need_peer(go is not None and (GOPATH / "src/github.com/vmware/govmomi/simulator").is_dir(),
              "Go and govmomi are missing (apt-get install golang-go golang-github-vmware-govmomi-dev)")
    binary = target_dir / "vcsim-auditor"
    env = {**os.environ, "GOPATH": str(GOPATH), "GO111MODULE": "off",
           "GOCACHE": os.environ.get("GOCACHE", str(Path.home() / ".cache" / "go-build"))}
    result = subprocess.run([go, "build", "-o", str(binary), "."], cwd=SOURCE, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return binary


@dataclass
class Simulator:
    process: subprocess.Popen
    url: str
    cert: Path

    @property
    def server(self) -> str:
        parsed = urllib.parse.urlparse(self.url)
        return f"{parsed.hostname}:{parsed.port}"

    @property
    def port(self) -> int:
        return urllib.parse.urlparse(self.url).port

    @property
    def stopped(self) -> bool:
        """Whether the process is stopped (state T), as `-stop-on` leaves it."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] == "T"

    def resume(self) -> None:
        """Let a stopped simulator run again (SIGCONT)."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream:
                stream.close()


def start(binary: Path, workdir: Path, *args: str) -> Simulator:
    """Start a simulator; it serves until stopped."""
    cert = workdir / f"vcsim-{len(list(workdir.glob('vcsim-*.pem')))}.pem"
    process = subprocess.Popen([str(binary), "-password", PASSWORD, "-cert-out", str(cert), *args],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    if not line:
        process.kill()
        raise AssertionError(f"simulator did not start: {process.stderr.read()}")
    info = json.loads(line)
    return Simulator(process=process, url=info["url"], cert=Path(info["cert"]))


# the name main.go gives the first VM unless told otherwise (-hostile-name)
HOSTILE = "<img src=x onerror=alert(1)>"


def connection(simulator: Simulator, **overrides: Any) -> VSphereConnection:
    """How auditor's collector logs in to `simulator` (a 20 s timeout unless overridden)."""
    values: dict[str, Any] = dict(host="127.0.0.1", port=simulator.port, user="auditor", password=PASSWORD,
                                  ca_bundle=str(simulator.cert), timeout=20)
    values.update(overrides)
    return VSphereConnection(**values)


@contextmanager
def api(simulator: Simulator) -> Iterator[Any]:
    """pyVmomi's ServiceContent of a session with `simulator`, to change its estate through
    the API as an administrator would; logged out afterwards."""
    from pyVim.connect import Disconnect, SmartConnect

    service = SmartConnect(host="127.0.0.1", port=simulator.port, user="auditor", pwd=PASSWORD,
                           sslContext=ssl.create_default_context(cafile=str(simulator.cert)))
    try:
        yield service.RetrieveContent()
    finally:
        Disconnect(service)


def finished(task: Any) -> None:
    """Wait for a simulator task, which must succeed."""
    while task.info.state not in ("success", "error"):
        time.sleep(0.05)
    assert task.info.state == "success"


def set_vm_settings(content: Any, settings: dict[str, str]) -> str:
    """Add advanced settings (ReconfigVM) to the first VM not named HOSTILE; its moref."""
    from pyVmomi import vim

    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    vm = next(v for v in view.view if v.name != HOSTILE)
    finished(vm.ReconfigVM_Task(vim.vm.ConfigSpec(extraConfig=[
        vim.option.OptionValue(key=key, value=value) for key, value in settings.items()])))
    return vm._moId


def allow_forged_transmits(content: Any, name: str) -> str:
    """Let the distributed port group `name` accept forged transmits
    (ReconfigureDVPortgroup); its moref."""
    from pyVmomi import vim

    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.dvs.DistributedVirtualPortgroup], True)
    group = next(pg for pg in view.view if pg.name == name)
    config = group.config
    setting = config.defaultPortConfig
    setting.securityPolicy.forgedTransmits = vim.BoolPolicy(inherited=False, value=True)
    # the simulator replaces every field with the spec's, so the spec carries them all
    finished(group.ReconfigureDVPortgroup_Task(vim.dvs.DistributedVirtualPortgroup.ConfigSpec(
        configVersion=config.configVersion, name=config.name, numPorts=config.numPorts, type=config.type,
        policy=config.policy, description=config.description, autoExpand=config.autoExpand,
        defaultPortConfig=setting)))
    return group._moId
