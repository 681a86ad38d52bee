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
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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


@dataclass
class Container:
    """A container of the emulator, with what tests do with one: name places in it, list and
    read its blobs, and sign a SAS on it."""

    azurite: Azurite
    name: str

    def at(self, path: str = "") -> str:
        """The az:// location of `path` in this container."""
        return f"az://{self.name}/{path}"

    def url(self, path: str = "") -> str:
        """The blob URL of `path` in this container (the account's URL form)."""
        return f"{self.azurite.endpoint}/{self.name}/{path}"

    @property
    def client(self):
        """A ContainerClient with the account key."""
        return self.azurite.client().get_container_client(self.name)

    def names(self, prefix: str = "") -> list[str]:
        """The blobs under `prefix`, sorted."""
        return sorted(blob.name for blob in self.client.list_blobs(name_starts_with=prefix))

    def read(self, name: str) -> bytes:
        """A blob's content."""
        return self.client.download_blob(name).readall()

    def sas(self, permission: str, valid_for: timedelta = timedelta(hours=1)) -> str:
        """A SAS token on this container that allows only `permission` (`cw`: create and write,
        as a site needs; `rl`: read and list, as a scan needs), expiring `valid_for` from now
        (a negative one has expired)."""
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        return generate_container_sas(ACCOUNT, self.name, account_key=KEY,
                                      permission=ContainerSasPermissions.from_string(permission),
                                      expiry=datetime.now(UTC) + valid_for)

    def connection_string(self, permission: str) -> str:
        """A connection string with `sas(permission)`, the form a pipeline's secret store hands
        over in AZURE_STORAGE_CONNECTION_STRING."""
        return f"BlobEndpoint={self.azurite.endpoint};SharedAccessSignature={self.sas(permission)}"


def new_container(azurite: Azurite, prefix: str = "t") -> Container:
    """A new, empty container of `azurite` with a name no other test has."""
    container = Container(azurite, f"{prefix}{uuid.uuid4().hex[:12]}")
    azurite.client().create_container(container.name)
    return container


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
