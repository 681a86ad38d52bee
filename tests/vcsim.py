"""govmomi's vCenter simulator, built from Debian's Go packages and run per test module."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

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
