"""Microsoft's Azurite emulator of Azure Blob Storage (npm `azurite`, installed by .ci/run
into tests/.npm), started on a free port with a temporary workspace.

It speaks the Blob service's REST API, so the real `azure-storage-blob` client talks to it
as to Azure, with the emulator's documented development account and key.
"""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT, need_peer

ACCOUNT = "devstoreaccount1"
# the emulator's well-known development key, published in Microsoft's Azurite documentation:
# it opens nothing but a local emulator
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
START_TIMEOUT = 60.0  # seconds; it starts in about one


def binary() -> Path | None:
    """azurite-blob as `npm install --prefix tests/.npm azurite` puts it (or a plain `npm install`)."""
    for base in (ROOT / "tests" / ".npm", ROOT):
        path = base / "node_modules" / ".bin" / "azurite-blob"
        if path.exists():
            return path
    return None


@dataclass
class Azurite:
    """A running emulator: its blob endpoint and the connection string of its account."""

    process: subprocess.Popen
    port: int
    workspace: Path

    @property
    def endpoint(self) -> str:
        """The account's blob endpoint (path style: the account follows the host)."""
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    def connection_string(self, key: str = KEY) -> str:
        """The account's connection string, as AZURE_STORAGE_CONNECTION_STRING holds it."""
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={key};"
                f"BlobEndpoint={self.endpoint};")

    def client(self):
        """A BlobServiceClient with the account key, for tests to arrange and inspect blobs."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stdout:
            self.process.stdout.close()


def start(workspace: Path) -> Azurite:
    """Start azurite-blob on 127.0.0.1 and a port the kernel picks; it serves until stopped.

    A missing emulator skips (fails under CI=true); one that is there but does not start
    fails, with what it printed."""
    program = binary()
    need_peer(program is not None, "Azurite is missing (npm install --prefix tests/.npm azurite)")
    workspace.mkdir(parents=True, exist_ok=True)
    # --disableTelemetry: the emulator would otherwise send usage data out of the machine
    process = subprocess.Popen(
        [str(program), "--blobHost", "127.0.0.1", "--blobPort", "0", "--location", str(workspace),
         "--skipApiVersionCheck", "--loose", "--disableTelemetry", "--silent"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:  # the emulator's output, read without blocking the wait below
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    printed: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        if line is None:
            break
        printed.append(line)
        match = re.search(r"listens on http://127\.0\.0\.1:(\d+)", line)
        if match:
            return Azurite(process=process, port=int(match.group(1)), workspace=workspace)
    process.kill()
    process.wait(timeout=10)
    raise AssertionError("Azurite did not start: " + "".join(printed)[-2000:])
