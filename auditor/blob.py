"""Snapshots and reports in Azure Blob Storage.

A location is written one of three ways; a path that is empty or ends in `/` is a prefix:

    az://CONTAINER/PATH                                   account from AZURE_STORAGE_ACCOUNT or
                                                          AZURE_STORAGE_CONNECTION_STRING
    https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH  any cloud's or private endpoint's host
    http://127.0.0.1:PORT/ACCOUNT/CONTAINER/PATH          the Azurite emulator (plain HTTP: loopback only)

Credentials come from the environment, never from a flag (a flag is on every process list
and in CI logs), the first that applies winning:

1. AZURE_STORAGE_CONNECTION_STRING: its account key or SAS (for a URL, only when the URL
   names its account);
2. AZURE_STORAGE_SAS_TOKEN, else AZURE_STORAGE_KEY (the Azure CLI's variables);
3. the credential chain of the Azure source: a service principal from AZURE_TENANT_ID,
   AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, else DefaultAzureCredential (managed identity,
   Azure CLI login, ...), which needs a data role such as Storage Blob Data Contributor.

A SAS in a URL given on the command line is refused, and every message that could carry
one (the SDK's errors quote request URLs) is scrubbed of SAS signatures and keys.

Writing is atomic from a reader's point of view: a block blob is committed whole (Put Blob
for a small one; staged blocks and one Put Block List at the end for a large one), so an
upload that is interrupted leaves no new blob, only uncommitted blocks that the service
discards after a week. `collect --output az://c/site-snapshots/` names each snapshot
`<prefix><source label>/<collected_at>.json.gz` and never overwrites one, so older ones stay;
`scan --snapshot` of a prefix reads the newest of every folder under it (one folder per
source label) and merges them.

Errors are one line naming the location: what is wrong with the location or what it holds
(no such container or blob, no snapshot under a prefix, a blob that is not a snapshot) is an
input error (exit 2), as a missing or broken file is; trouble at the far end (unreachable,
timed out, credentials refused, server error) fails like an unreachable vCenter (exit 3).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import ipaddress
import logging
import os
import posixpath
import re
import shutil
import tempfile
import urllib.parse
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from .errors import CollectionError, InputError, SnapshotError

if TYPE_CHECKING:
    from .findings import Finding, ScanReport
    from .snapshot import Snapshot

LOG = logging.getLogger("auditor")

AZ_SCHEME = "az://"
DEFAULT_TIMEOUT = 60.0  # seconds, as --vsphere-timeout and --azure-timeout
# a snapshot larger than this goes up in blocks of this size, committed together at the end
BLOCK_SIZE = 4 * 1024 * 1024
# `<collected_at>[-n].json.gz`, as `collect --output PREFIX/` names snapshots (any snapshot
# layout auditor reads: .json, .jsonl, gzipped or not)
FUTURE_SKEW = timedelta(minutes=5)  # clocks of sites and the central scan may differ this much
SNAPSHOT_NAME = re.compile(r"(?P<stamp>\d{8}T\d{6}Z)(?:-(?P<n>\d{1,4}))?\.jsonl?(?:\.gz)?")
_CONTAINER = re.compile(r"\$root|\$web|\$logs|[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
_MAX_SUFFIX = 1000


class StorageError(CollectionError):
    """The storage account could not be reached, did not answer in time, refused the
    credentials or failed: the far end's trouble, like an unreachable vCenter (exit 3)."""


# --- locations --------------------------------------------------------------------------------

@dataclass(frozen=True)
class BlobLocation:
    """A blob or a prefix of blobs in one container.

    It answers the few path operations the report writer, the CLI and the history use (`/`,
    `parent`, `name`, `str`, `resolve`, `relative_to`), so a run written to storage is named
    like a run folder on disk. It is no `os.PathLike`: nothing opens it as a local file."""

    container: str
    path: str  # blob name, or a prefix: empty or ending in "/"
    account: str | None = None  # None for az://: it comes from the environment
    endpoint: str | None = None  # https://ACCOUNT.blob.core.windows.net or http://127.0.0.1:PORT/ACCOUNT
    timeout: float = field(default=DEFAULT_TIMEOUT, compare=False)  # seconds, per request

    def __str__(self) -> str:
        if self.endpoint is None:  # az:// is written as the blob is named, unescaped
            return f"{AZ_SCHEME}{self.container}/{self.path}"
        return f"{self.endpoint}/{self.container}/{urllib.parse.quote(self.path, safe='/')}"

    @property
    def is_prefix(self) -> bool:
        """Whether this names the blobs under a prefix rather than one blob."""
        return not self.path or self.path.endswith("/")

    @property
    def name(self) -> str:
        """The last part of the path, as a file name is of a path."""
        return posixpath.basename(self.path.rstrip("/"))

    @property
    def parent(self) -> BlobLocation:
        """The location one level up (the container's root at the top)."""
        return dataclasses.replace(self, path=posixpath.dirname(self.path.rstrip("/")))

    def __truediv__(self, part: str) -> BlobLocation:
        base = self.path if self.is_prefix else self.path + "/"
        return dataclasses.replace(self, path=base + part)

    def with_timeout(self, seconds: float) -> BlobLocation:
        """The same location with another per-request timeout."""
        return dataclasses.replace(self, timeout=seconds)

    def resolve(self) -> BlobLocation:
        """Itself: a location in storage is absolute already (as the history names runs)."""
        return self

    def relative_to(self, other: object) -> BlobLocation:
        """Never relative to a local folder: raises ValueError, as `PurePath.relative_to` does
        for a path outside the folder, so the history names a run in storage by its URL."""
        raise ValueError(f"{self} is not inside {other}")


@dataclass(frozen=True)
class BlobRun(BlobLocation):
    """A run folder of reports uploaded under a prefix, with the local copy its `latest/`
    is uploaded from (removed once it is)."""

    staged: Path | None = field(default=None, compare=False)


def looks_like_blob(text: str) -> bool:
    """Whether `text` is meant as a storage location rather than a local path."""
    return text[:8].lower().startswith((AZ_SCHEME, "https://", "http://"))


def is_blob(location: object) -> TypeGuard[BlobLocation]:
    """Whether an option's value (a Path or a BlobLocation) is in storage."""
    return isinstance(location, BlobLocation)


def parse_location(text: str) -> BlobLocation:
    """A location as written on the command line, in the environment or in the config file.

    Raises ValueError with a message that never repeats a SAS token."""
    if text[:len(AZ_SCHEME)].lower() == AZ_SCHEME:
        if "?" in text or "#" in text:
            # a SAS pasted onto az:// would sit on every process list, and in blob names
            raise ValueError(f"{text.partition('?')[0].partition('#')[0]}: a query string (a SAS token?) does not "
                             "belong on the command line: set AZURE_STORAGE_SAS_TOKEN or "
                             "AZURE_STORAGE_CONNECTION_STRING instead")
        container, _, path = text[len(AZ_SCHEME):].partition("/")
        return BlobLocation(container=_container(container, text), path=path)
    parsed = urllib.parse.urlsplit(text)
    shown = urllib.parse.urlunsplit((parsed.scheme, parsed.netloc.rpartition("@")[2], parsed.path, "", ""))
    if parsed.query or parsed.fragment:
        # the query is where a SAS token goes; on argv it would be on every process list
        raise ValueError(f"{shown}: a query string (a SAS token?) does not belong on the command line: set "
                         "AZURE_STORAGE_SAS_TOKEN or AZURE_STORAGE_CONNECTION_STRING instead")
    if parsed.username or parsed.password:
        raise ValueError(f"{shown}: credentials do not belong in the URL")
    host = (parsed.hostname or "").lower()
    if not host:
        raise ValueError(f"'{shown}' names no storage account host")
    path = urllib.parse.unquote(parsed.path).lstrip("/")
    loopback = _is_loopback(host)
    if parsed.scheme.lower() == "http" and not loopback:
        raise ValueError(f"{shown}: plain http:// is only for a local emulator; use https://")
    netloc = parsed.netloc.rpartition("@")[2]
    if _is_ip(host) or host == "localhost":
        # an emulator or an IP endpoint: the account is the first part of the path
        account, _, path = path.partition("/")
        if not account:
            raise ValueError(f"{shown}: name the account after the host (http://HOST:PORT/ACCOUNT/CONTAINER/...)")
        endpoint = f"{parsed.scheme.lower()}://{netloc}/{account}"
    else:
        account, endpoint = host.split(".")[0], f"https://{netloc}"
    container, _, path = path.partition("/")
    return BlobLocation(container=_container(container, shown), path=path, account=account, endpoint=endpoint)


def _container(name: str, shown: str) -> str:
    if not name:
        raise ValueError(f"'{shown}' names no container")
    if not _CONTAINER.fullmatch(name):
        raise ValueError(f"'{name}' in {shown} is not a container name (3-63 lower-case letters, digits and "
                         "single hyphens)")
    return name


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    return host == "localhost" or (_is_ip(host) and ipaddress.ip_address(host.strip("[]")).is_loopback)


def source_label(kind: str, names: list[str]) -> str:
    """The folder a collect's snapshots go to under a prefix: the kind and what it collects
    (`vsphere-vc1.corp.example`, `azure-mg-platform`), the same on every run, so that the
    newest snapshot of each folder is the newest of that collection."""
    parts = sorted({re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "-" for name in names})
    label = f"{kind}-{'+'.join(parts)}" if parts else f"{kind}-all"
    if len(label) > 100:  # many subscriptions: the first, a count and a digest of them all
        digest = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:8]
        label = f"{kind}-{parts[0][:40]}-and-{len(parts) - 1}-more-{digest}"
    return label


# --- connecting -------------------------------------------------------------------------------

# what a SAS or a key looks like inside a message (the SDK's errors quote request URLs)
_SECRETS = re.compile(r"(?i)(sig=|accountkey=|sharedaccesssignature=)[^&;\s'\"]+")


def scrub(text: str, environ: Mapping[str, str] | None = None) -> str:
    """`text` without SAS signatures, account keys, or the storage secrets of the environment."""
    environ = os.environ if environ is None else environ
    text = _SECRETS.sub(lambda m: m.group(1) + "REDACTED", text)
    for variable in ("AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_KEY", "AZURE_STORAGE_CONNECTION_STRING"):
        secret = environ.get(variable, "").strip().lstrip("?")
        if len(secret) >= 8:
            text = text.replace(secret, "REDACTED")
    return text


def _connection_string(environ: Mapping[str, str]) -> dict[str, str]:
    text = environ.get("AZURE_STORAGE_CONNECTION_STRING", "").strip()
    fields: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            fields[key.strip().lower()] = value.strip()
    if text and not (fields.get("accountname") or fields.get("blobendpoint")):
        raise InputError("AZURE_STORAGE_CONNECTION_STRING has neither AccountName nor BlobEndpoint")
    return fields


@dataclass
class _Access:
    """Where a location's account is and how to sign requests to it."""

    endpoint: str
    account: str
    credential: Any
    credential_from: str  # for messages: which variable or chain it came from


def _access(location: BlobLocation, environ: Mapping[str, str]) -> _Access:
    """The endpoint and credential for `location` (see the module docstring)."""
    from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential

    fields = _connection_string(environ)
    endpoint, account = location.endpoint, location.account
    if endpoint is None:  # az://: the account comes from the environment
        if fields:
            account = fields.get("accountname", "")
            endpoint = fields.get("blobendpoint") or (
                f"{fields.get('defaultendpointsprotocol', 'https')}://{account}.blob."
                f"{fields.get('endpointsuffix', 'core.windows.net')}")
        elif environ.get("AZURE_STORAGE_ACCOUNT"):
            account = environ["AZURE_STORAGE_ACCOUNT"].strip()
            endpoint = f"https://{account}.blob.core.windows.net"
        else:
            raise InputError("no storage account for az://: set AZURE_STORAGE_ACCOUNT (or "
                             "AZURE_STORAGE_CONNECTION_STRING), or give the account's blob URL",
                             where=str(location))
        endpoint = endpoint.rstrip("/")
        if not account:
            account = urllib.parse.urlsplit(endpoint).path.strip("/") or endpoint
    # a connection string signs for its own account only: a URL of another account is not given its key
    applies = bool(fields) and (location.endpoint is None or fields.get("accountname", "").lower() == account
                                or fields.get("blobendpoint", "").rstrip("/") == endpoint)
    if applies and fields.get("accountkey"):
        return _Access(endpoint, account, AzureNamedKeyCredential(fields["accountname"], fields["accountkey"]),
                       "the account key of AZURE_STORAGE_CONNECTION_STRING")
    if applies and fields.get("sharedaccesssignature"):
        return _Access(endpoint, account, AzureSasCredential(fields["sharedaccesssignature"].lstrip("?")),
                       "the SAS of AZURE_STORAGE_CONNECTION_STRING")
    if environ.get("AZURE_STORAGE_SAS_TOKEN", "").strip():
        return _Access(endpoint, account, AzureSasCredential(environ["AZURE_STORAGE_SAS_TOKEN"].strip().lstrip("?")),
                       "the SAS token of AZURE_STORAGE_SAS_TOKEN")
    if environ.get("AZURE_STORAGE_KEY", "").strip():
        return _Access(endpoint, account, AzureNamedKeyCredential(account, environ["AZURE_STORAGE_KEY"].strip()),
                       "the account key of AZURE_STORAGE_KEY")
    if endpoint.startswith("http://"):
        # azure-core refuses to send a bearer token in clear text, rightly
        raise InputError("plain http:// needs AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_SAS_TOKEN or "
                         "AZURE_STORAGE_KEY: an Azure token is never sent unencrypted", where=str(location))
    from .sources.azure import AzureConnection

    connection = AzureConnection(cloud=_cloud_of(endpoint), timeout=location.timeout)
    return _Access(endpoint, account, connection.credential(),
                   "the Azure identity (AZURE_CLIENT_ID/AZURE_CLIENT_SECRET, managed identity or `az login`)")


def _cloud_of(endpoint: str) -> str:
    """The Azure cloud whose Entra ID issues tokens for a blob endpoint."""
    host = urllib.parse.urlsplit(endpoint).hostname or ""
    if host.endswith(".usgovcloudapi.net"):
        return "AzureUSGovernment"
    if host.endswith(".chinacloudapi.cn"):
        return "AzureChinaCloud"
    return "AzureCloud"


@functools.cache
def _retry_policy_class() -> type:
    """The storage SDK's exponential retry with short waits (its own start at 15 s), and no
    second try of a request that timed out: a stalled account costs one timeout, as a
    stalled Resource Manager does (auditor/sources/azure.py)."""
    from azure.storage.blob import ExponentialRetry

    from .sources.azure import _timeout_of as timeout_of

    class TimeoutFinalRetry(ExponentialRetry):
        def increment(self, settings: dict[str, Any], request: Any, response: Any = None,
                      error: Any = None) -> bool:
            # a timeout while the body is read comes wrapped in a connection error
            if error is not None and timeout_of(error) is not None:
                return False
            return super().increment(settings, request, response=response, error=error)

    return TimeoutFinalRetry


class BlobStore:
    """One container of one account, with the credential and timeouts of a location."""

    def __init__(self, location: BlobLocation, *, block_size: int = BLOCK_SIZE,
                 environ: Mapping[str, str] | None = None, **client_options: Any):
        from azure.storage.blob import BlobServiceClient

        self.location = location
        self.environ = os.environ if environ is None else environ
        self.access = _access(location, self.environ)
        # the SDK logs failed requests as warnings; the one line we raise says it once
        logging.getLogger("azure").addHandler(logging.NullHandler())
        # waits of about 3 and 5 s: a refused connection is tried twice (it rarely heals in
        # seconds), a dropped one three times, throttling and server errors four times
        retry = _retry_policy_class()(initial_backoff=1, increment_base=2, random_jitter_range=0.5,
                                      retry_total=3, retry_connect=1, retry_read=2, retry_status=3)
        self.client = BlobServiceClient(
            self.access.endpoint, credential=self.access.credential,
            connection_timeout=min(location.timeout, 30.0), read_timeout=location.timeout, retry_policy=retry,
            max_single_put_size=block_size, max_block_size=block_size, **client_options)
        self.container = self.client.get_container_client(location.container)

    def close(self) -> None:
        """Close the connections (and a token credential's)."""
        self.client.close()
        close = getattr(self.access.credential, "close", None)
        if callable(close):
            close()

    def __enter__(self) -> BlobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def failing_as_one_line(self, where: BlobLocation, doing: str) -> Iterator[None]:
        """Turn any error of the SDK or the credential into one scrubbed line naming `where`."""
        try:
            yield
        except InputError:
            raise
        except Exception as exc:
            if not _from_azure(exc):
                raise
            raise self.describe(exc, where, doing) from None

    def describe(self, exc: BaseException, where: BlobLocation, doing: str) -> InputError | StorageError:
        """One line for an SDK error: InputError for what the location holds, StorageError for the far end."""
        from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestTimeoutError

        account, endpoint = self.access.account, self.access.endpoint
        code, status = _code(exc), getattr(exc, "status_code", None)
        text = scrub(" ".join(str(exc).split()), self.environ)
        timeout = _timeout_of(exc)
        if type(exc).__name__ == "AzureSigningError":  # a key that is not base64: no request was sent
            return InputError(f"cannot sign requests with {self.access.credential_from}: {_shorten(text)}",
                              where=str(where))
        if timeout is not None:
            seconds = min(where.timeout, 30.0) if isinstance(timeout, ServiceRequestTimeoutError) else where.timeout
            message = f"storage account {account} at {endpoint} timed out after {seconds:g} s ({doing})"
        elif code == "ContainerNotFound" or (status == 404 and not code and not self._container_exists()):
            return InputError(f"container '{where.container}' not found in storage account {account} (create it, "
                              "or correct the name)", where=str(where))
        elif code == "BlobNotFound" or status == 404:
            return InputError("no such blob (a location that names a prefix ends with /)", where=str(where))
        elif status in (401, 403):
            message = (f"storage account {account} refused {self.access.credential_from} while {doing} "
                       f"(HTTP {status}{' ' + code if code else ''}): check that it is right, not expired, and "
                       "allowed to read and write blobs")
        elif isinstance(exc, HttpResponseError) and status:
            message = f"storage account {account} answered HTTP {status}{' ' + code if code else ''} while {doing}"
        elif isinstance(exc, ClientAuthenticationError) or type(exc).__name__ == "CredentialUnavailableError":
            message = (f"no Azure token for storage account {account}: {_shorten(text)} (set "
                       "AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_SAS_TOKEN, or sign in with `az login`)")
        else:
            message = f"cannot reach storage account {account} at {endpoint} while {doing}: {_shorten(text)}"
        return StorageError(scrub(message, self.environ), where=str(where))

    def _container_exists(self) -> bool:
        """Whether the container exists; True when that cannot be told (a SAS without read)."""
        try:
            return bool(self.container.exists())
        except Exception:
            return True

    # --- blobs ------------------------------------------------------------------------------

    def check_container(self) -> None:
        """Fail now when the container is missing or the account unusable, before minutes of
        collection; a credential that may write but not read the container (a write-only
        SAS, as a site collector should have) is let through."""
        from azure.core.exceptions import HttpResponseError

        where = dataclasses.replace(self.location, path="")
        try:
            self.container.get_container_properties()
        except HttpResponseError as exc:
            if exc.status_code == 403 and _code(exc) in _LACKING_PERMISSION:
                return  # a right this check lacks, not a wrong credential: the upload will tell
            raise self.describe(exc, where, "checking the container") from None
        except Exception as exc:
            if not _from_azure(exc):
                raise
            raise self.describe(exc, where, "checking the container") from None

    def upload(self, name: str, payload: bytes, *, overwrite: bool, content_type: str) -> None:
        """Upload one blob whole: readers see the old one or none until the commit at the end.
        Raises azure-core's ResourceExistsError when `overwrite` is off and the name is taken."""
        from azure.storage.blob import ContentSettings

        self.container.get_blob_client(name).upload_blob(
            payload, overwrite=overwrite, max_concurrency=1,
            content_settings=ContentSettings(content_type=content_type))

    def upload_new(self, directory: str, stem: str, suffix: str, payload: bytes, content_type: str) -> str:
        """Upload under the first free name `directory/stem[-n]suffix` and return it; a blob
        already there (another run of the same second) is never overwritten."""
        from azure.core.exceptions import ResourceExistsError

        for n in range(1, _MAX_SUFFIX):
            name = f"{directory}{stem}{'' if n == 1 else f'-{n}'}{suffix}"
            try:
                self.upload(name, payload, overwrite=False, content_type=content_type)
            except ResourceExistsError:
                continue
            return name
        raise InputError(f"no free blob name for {stem} after {_MAX_SUFFIX} tries", where=str(self.location))

    def newest_snapshots(self, prefix: str) -> list[tuple[str, int]]:
        """(name, size) of the newest snapshot in every folder under `prefix`, by the
        `<collected_at>[-n]` of their names; blobs of other names are passed over."""
        newest: dict[str, tuple[tuple[str, int], str, int]] = {}
        # a name dated ahead of now would stay "newest" for ever and shadow its site's real
        # snapshots (a site's SAS may create blobs in any folder): such names are passed over
        latest_stamp = (datetime.now(UTC) + FUTURE_SKEW).strftime("%Y%m%dT%H%M%SZ")
        for blob in self.container.list_blobs(name_starts_with=prefix):
            folder, _, base = blob.name.rpartition("/")
            match = SNAPSHOT_NAME.fullmatch(base)
            if match is None or "/" in folder[len(prefix):] or match["stamp"] > latest_stamp:
                continue  # not a snapshot, one in a sub-folder (an archive), or dated in the future
            key = (match["stamp"], int(match["n"] or 1))
            if folder not in newest or key > newest[folder][0]:
                newest[folder] = (key, blob.name, blob.size)
        return [(name, size) for _, name, size in sorted(newest.values(), key=lambda item: item[1])]

    def download(self, name: str, target: Path, limit: int) -> None:
        """Stream one blob into `target`, refusing one larger than `limit` bytes before reading it."""
        blob = self.container.get_blob_client(name)
        size = blob.get_blob_properties().size
        if size > limit:
            raise _TooLarge(size)
        with open(target, "wb") as handle:
            blob.download_blob(max_concurrency=1).readinto(handle)

    def delete(self, name: str) -> None:
        """Delete one blob (with its snapshots), if it is still there."""
        from azure.core.exceptions import ResourceNotFoundError

        with contextlib.suppress(ResourceNotFoundError):
            self.container.delete_blob(name, delete_snapshots="include")


# 403 codes of a valid credential without the right to read the container's properties (a
# write-only SAS); a wrong or expired key or SAS is AuthenticationFailed (AuthorizationFailure
# on Azurite), and a network rule that bars this machine AuthorizationFailure
_LACKING_PERMISSION = ("AuthorizationPermissionMismatch", "AuthorizationResourceTypeMismatch")


class _TooLarge(Exception):
    def __init__(self, size: int):
        super().__init__(size)
        self.size = size


def _code(exc: BaseException) -> str:
    """The storage error code of an SDK error (`ContainerNotFound`), as plain text."""
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")


def _from_azure(exc: BaseException) -> bool:
    """Whether an exception is the SDK's or the credential's (not a bug of ours)."""
    from azure.core.exceptions import AzureError

    return isinstance(exc, AzureError) or type(exc).__module__.startswith("azure.")


def _timeout_of(exc: BaseException) -> BaseException | None:
    from .sources.azure import _timeout_of as timeout_of

    return timeout_of(exc)


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


# --- snapshots --------------------------------------------------------------------------------

def check_output(location: BlobLocation) -> None:
    """Before a collection or scan that may take minutes: the container is there and the
    account answers (see `BlobStore.check_container`)."""
    with BlobStore(location) as store:
        store.check_container()


def upload_snapshot(snapshot: Snapshot, location: BlobLocation, label: str, *,
                    block_size: int = BLOCK_SIZE, **client_options: Any) -> BlobLocation:
    """Store a collected snapshot and return the blob written: under a prefix, as
    `<prefix><label>/<collected_at>.json.gz` (a new blob, so older snapshots stay); else the
    blob named, replaced whole (`.gz` names are gzip-compressed, as files are)."""
    import gzip

    from .jsonio import to_json

    gz = location.is_prefix or location.path.endswith(".gz")
    payload = to_json(snapshot.as_dict())
    if gz:
        payload = gzip.compress(payload, mtime=0)
    content_type = "application/gzip" if gz else "application/json"
    with (BlobStore(location, block_size=block_size, **client_options) as store,
          store.failing_as_one_line(location, "uploading the snapshot")):
        if location.is_prefix:
            stamp = re.sub(r"[-:]", "", snapshot.collected_at)[:16]
            if not re.fullmatch(r"\d{8}T\d{6}Z", stamp):
                raise InputError(f"collected_at {snapshot.collected_at!r} is no UTC timestamp to name a "
                                 "snapshot by", where=str(location))
            name = store.upload_new(f"{location.path}{label}/", stamp, ".json.gz", payload, content_type)
        else:
            name = location.path
            store.upload(name, payload, overwrite=True, content_type=content_type)
    written = dataclasses.replace(location, path=name)
    LOG.info("stored %s (%d bytes)", written, len(payload))
    return written


def read_snapshots(location: BlobLocation, limit: int) -> list[Snapshot]:
    """The snapshot blob named, or the newest snapshot of every folder under a prefix, each
    checked as a snapshot file is (at most `limit` bytes after decompression)."""
    from .snapshot import MAX_INPUT_FLAG, load_snapshot

    with BlobStore(location) as store, tempfile.TemporaryDirectory(prefix="auditor-blob-") as scratch:
        with store.failing_as_one_line(location, "listing snapshots" if location.is_prefix else "reading"):
            names = ([name for name, _ in store.newest_snapshots(location.path)] if location.is_prefix
                     else [location.path])
        if not names:
            raise InputError(f"no snapshot under this prefix (collect writes <source>/<UTC time>.json.gz blobs "
                             f"under it: auditor collect ... --output {location})", where=str(location))
        snapshots = []
        for index, name in enumerate(names):
            blob = dataclasses.replace(location, path=name)
            target = Path(scratch) / f"{index}{'.json.gz' if name.endswith('.gz') else '.json'}"
            try:
                with store.failing_as_one_line(blob, "reading the snapshot"):
                    store.download(name, target, limit)
                snapshot = load_snapshot(target, limit)
            except _TooLarge as exc:
                raise SnapshotError(f"snapshot blob of {exc.size:,} bytes is larger than the limit of {limit:,}; "
                                    f"raise the limit with {MAX_INPUT_FLAG}", where=str(blob)) from None
            except SnapshotError as exc:  # named after the blob, not the scratch file
                raise SnapshotError(exc.message, where=str(blob), line=exc.line) from None
            finally:
                target.unlink(missing_ok=True)  # one downloaded blob on disk at a time
            snapshot.origin = [str(blob)]
            for source in snapshot.sources:
                source.origin = str(blob)
            LOG.info("read %s (collected %s, %d resources)", blob, snapshot.collected_at, len(snapshot.resources))
            snapshots.append(snapshot)
    return snapshots


# --- reports ----------------------------------------------------------------------------------

def upload_run(report: ScanReport, out: BlobLocation, names: list[str]) -> BlobRun:
    """Write a run's reports into a local temporary folder with the file writer, then upload
    them to `<out>/<timestamp>[-n]/`; returns the run, whose `latest/` `upload_latest` adds."""
    from .output import write_run_folder

    staging_root = Path(tempfile.mkdtemp(prefix="auditor-reports-"))
    try:
        run = write_run_folder(report, staging_root, names)
        files = sorted(run.iterdir())
        with BlobStore(out) as store, store.failing_as_one_line(out, "uploading the reports"):
            first, *rest = files
            folder = store.upload_new(out.path if out.is_prefix else out.path + "/", run.name, f"/{first.name}",
                                      first.read_bytes(), _content_type(first.name))
            folder = folder.rpartition("/")[0]
            for file in rest:
                store.upload(f"{folder}/{file.name}", file.read_bytes(), overwrite=False,
                             content_type=_content_type(file.name))
    except BaseException:
        shutil.rmtree(staging_root, ignore_errors=True)
        raise
    uploaded = BlobRun(container=out.container, path=folder, account=out.account, endpoint=out.endpoint,
                       timeout=out.timeout, staged=run)
    # a scan that fails before `latest` is uploaded still leaves no temporary folder behind
    weakref.finalize(uploaded, shutil.rmtree, staging_root, ignore_errors=True)
    LOG.info("uploaded %d reports to %s/", len(files), uploaded)
    return uploaded


def upload_latest(out: BlobLocation, run: BlobLocation) -> None:
    """Make `<out>/latest/` hold the run's reports: each blob replaced whole, then the blobs
    of formats this run did not write removed, as the local `latest` shows one run only."""
    staged = run.staged if isinstance(run, BlobRun) else None
    if staged is None:
        return
    latest = out / "latest/"
    try:
        with BlobStore(out) as store, store.failing_as_one_line(latest, "uploading latest/"):
            files = {file.name: file for file in staged.iterdir()}
            # findings.json last: a run stopped half-way leaves --compare latest an earlier whole scan
            for name, file in sorted(files.items(), key=lambda item: (item[0] == "findings.json", item[0])):
                store.upload(f"{latest.path}{name}", file.read_bytes(), overwrite=True,
                             content_type=_content_type(name))
            for blob in list(store.container.list_blobs(name_starts_with=latest.path)):
                if blob.name[len(latest.path):] not in files:
                    store.delete(blob.name)
    finally:
        shutil.rmtree(staged.parent, ignore_errors=True)


def previous_findings(out: BlobLocation, limit: int) -> tuple[list[Finding], str, BlobLocation | None]:
    """`--compare latest` for reports in storage: the findings of `<out>/latest/`, what to
    call them, and (when there is no earlier scan yet) the location looked for."""
    from azure.core.exceptions import ResourceNotFoundError

    from .gate import load_previous

    wanted = out / "latest/findings.json"
    with BlobStore(out) as store, tempfile.TemporaryDirectory(prefix="auditor-blob-") as scratch:
        target = Path(scratch) / "findings.json"
        try:
            store.download(wanted.path, target, limit)
        except ResourceNotFoundError as exc:
            if _code(exc) == "ContainerNotFound":
                raise store.describe(exc, wanted, "reading the previous scan") from None
            return [], f"{wanted} (no earlier scan yet)", wanted
        except _TooLarge as exc:
            raise InputError(f"previous scan of {exc.size:,} bytes is larger than the limit of {limit:,}; raise "
                             "the limit with --max-input-size", where=str(wanted)) from None
        except Exception as exc:
            if not _from_azure(exc):
                raise
            raise store.describe(exc, wanted, "reading the previous scan") from None
        try:
            return load_previous(target, limit), str(wanted), None
        except InputError as exc:
            raise InputError(exc.message, where=str(wanted), line=exc.line) from None


_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".json": "application/json", ".sarif": "application/json",
                  ".xml": "application/xml", ".csv": "text/csv; charset=utf-8", ".gz": "application/gzip"}


def _content_type(name: str) -> str:
    return _CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream")


__all__ = ["BlobLocation", "BlobRun", "BlobStore", "StorageError", "check_output", "is_blob", "looks_like_blob",
           "parse_location", "previous_findings", "read_snapshots", "scrub", "source_label", "upload_latest",
           "upload_run", "upload_snapshot"]
