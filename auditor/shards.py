"""Sharded evaluation: a JSON Lines snapshot evaluated a vCenter (or a part of one) or all
of Azure at a time, in worker processes on every core, so no process holds the whole estate.

What a shard is follows from what the facts read. Every fact of a vSphere resource reads its
own vCenter's inventory only (hosts, port groups, clusters and licences are keyed by
source), except the join with an Azure VMware Solution private cloud, which reads the
private clouds. Azure facts read the tenant: NSGs, NICs and subnets, zones from virtual
networks, and Hybrid Benefit claims counted against one pool of licences across
subscriptions; the private clouds' join reads the vCenters. So a shard is one vSphere
source, or every Azure source together, and it carries *context*: the private clouds for a
vSphere shard, the vCenter resources for the Azure shard, read for facts, never evaluated.
With that, each resource gets exactly the facts and findings the in-memory path gives it,
and the report is byte for byte the same (tests/test_shards.py checks it).

No fact of a vSphere VM reads another VM, and the one fact of the rest of a vCenter that
counts its VMs is a host's Windows guests (facts.windows_server: the Windows Server Standard
cores it needs, which Azure's claims may wait for). So a vCenter of more than `VM_PART` VMs
is split further: parts of `VM_PART` VMs, each reading the vCenter's other resources
(hosts, networks, clusters, licences) as context, and a part that owns those other
resources, evaluated once every VM part is in, with each host's Windows guests summed over
them by the parent. Two workers then share a 40,000-VM vCenter instead of one of them
carrying it alone.

The parent routes each line by its first keys (`auditor.snapshot_lines`) into one spill
file per shard (and per part) without parsing the rest, the snapshot read ahead on a thread,
checks ids for duplicates across the whole estate, then hands shards, largest first and
small ones packed together, to a pool of workers forked before the first finding arrives
(each hands a finished shard's memory back). Workers return findings, tallies and counts;
memory is bounded by the largest shard (all the Azure resources, which are never split, or a
vCenter or part of one) plus the findings, not by the estate.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import marshal
import multiprocessing
import os
import queue
import re
import shutil
import signal
import stat
import tempfile
import threading
import time
import traceback
import zlib
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .accounting import HostKey, host_cpus, needs_on_premises, standard_cores, windows_guests
from .avs import PRIVATE_CLOUD, assign_responsibility
from .engine.evaluate import Evaluation, RuleTally, evaluate_rules
from .errors import EXIT_INTERNAL, AuditorError, InputError, SnapshotError
from .facts import SizeTables
from .files import json_values, over_limit
from .findings import Finding, finding_values
from .snapshot import (
    CLOUDS,
    MAX_INPUT_FLAG,
    SOURCE_ID_LIMIT,
    Snapshot,
    Source,
    _check_resource,
    check_density,
    check_source_once,
    count_source,
    snapshot_from_document,
    unlisted_sources,
)
from .snapshot_lines import blank_line, is_lines_header, open_lines, parse_header, parse_resource, routing_keys

try:
    import fcntl
except ImportError:  # Windows: spill folders of killed scans stay
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from .scan import RuleContext

AZURE_SHARD = "azure"
# A vCenter's VMs are evaluated in parts of this many, so that the work spreads evenly over
# the workers (one 40,000-VM vCenter would otherwise be one worker's alone); small shards
# are packed into batches of about as many resources
VM_PART = 5_000
BATCH_RESOURCES = VM_PART
# the spill line's mark: a vCenter's VM, which only its own part reads, or any other resource
_VM, _OTHER = b"v", b"-"
_SPILL_BUFFER, _LARGE_BUFFERS = 1 << 20, 32  # spill files with a buffer of 1 MiB, and how many
MAX_HEADER = 64 * 1024 * 1024  # a header lists every source: thousands of subscriptions fit


def is_lines_file(path: Path) -> bool:
    """Whether `path` is a snapshot in the JSON Lines layout (read by its first line)."""
    try:
        with open_lines(path) as stream:
            return is_lines_header(stream.readline(MAX_HEADER))
    except (AuditorError, OSError, EOFError, zlib.error):
        return False  # the one-document reader names what is wrong with it


@dataclass
class Shard:
    """One vSphere source's resources, or every Azure source's, spilled to a file; or, of a
    vCenter split into parts, either a part of its VMs, which reads the vCenter's other
    resources from the first file (`inventory`) as context, or those other resources."""

    key: str
    cloud: str
    path: Path
    resources: int = 0
    part: int = 0
    inventory: Path | None = None
    lines: bytes | None = None  # the lines of `path` it owns by their mark (_VM, _OTHER); None: all
    after_vms: bool = False  # a split vCenter's other resources: evaluated with its VMs' Windows guests


@dataclass
class RoutedEstate:
    """The snapshots' headers (sources, no resources) and the estate split into shards."""

    header: Snapshot
    shards: list[Shard]
    context: dict[str, Path]  # shard cloud -> the file of context resources it reads
    files: list[str]  # the snapshot files, by the index each spilled line carries


def route(paths: list[Path], limit: int, spill: Path) -> RoutedEstate:
    """See `_route`; a spill file that cannot be written (a full disk, too many open files)
    is an input error naming the folder, not a bug."""
    _more_open_files()
    try:
        return _route(paths, limit, spill)
    except OSError as exc:
        raise InputError(f"cannot write the scan's spill files: {exc.strerror or exc} (TMPDIR names the folder "
                         "they go to)", where=str(spill)) from None


def _more_open_files() -> None:
    """Raise this process's soft limit of open files to its hard limit: a spill file per
    vCenter, and an estate of a thousand standalone ESXi hosts passes the usual 1,024."""
    try:
        import resource
    except ImportError:  # not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _route(paths: list[Path], limit: int, spill: Path) -> RoutedEstate:
    """Read the snapshot files a line at a time and write each resource line to its shard's
    spill file (`<file index> <line number> <mark> <json>`, the mark saying whether it is a
    vCenter's VM): the estate is checked for duplicate ids across files as `merge_snapshots`
    does, every file is bounded by `limit` bytes after decompression, and nothing is parsed
    beyond a line's routing keys. A vCenter's first file holds its other resources and its
    first `VM_PART` VMs, each further file the next `VM_PART` VMs (see `_split`)."""
    shards: dict[tuple[str, int], Shard] = {}  # (shard key, part) -> shard
    handles: dict[tuple[str, int], IO[bytes]] = {}
    vms: dict[str, int] = {}  # a vCenter's VMs routed so far, by shard key
    seen: dict[str, int] = {}  # resource key -> where it was first seen (file index, line)
    headers: list[Snapshot] = []
    listed: dict[str, str] = {}  # source id -> the file that has it
    context = {"vsphere": spill / "context-vsphere.jsonl", AZURE_SHARD: spill / "context-azure.jsonl"}
    with ExitStack() as stack:
        context_files = {cloud: stack.enter_context(open(path, "wb")) for cloud, path in context.items()}

        def shard_file(key: str, cloud: str, part: int) -> IO[bytes]:
            if (key, part) not in handles:
                shards[(key, part)] = Shard(key, cloud, spill / f"shard-{len(shards)}.jsonl", part=part)
                # written in large pieces: each write lets the read-ahead thread take the GIL
                # (the first files only: an estate of thousands of vCenters keeps memory small)
                buffering = _SPILL_BUFFER if len(handles) < _LARGE_BUFFERS else -1
                handles[(key, part)] = stack.enter_context(open(shards[(key, part)].path, "wb", buffering=buffering))
            shards[(key, part)].resources += 1
            return handles[(key, part)]

        for index, path in enumerate(paths):
            where = str(path)
            header = None
            blank = 0
            named: dict[str, list[Any]] = {}  # source -> [cloud, resources], for unlisted_sources
            with open_lines(path) as stream:
                for number, line in enumerate(_bounded_lines(stream, limit, where), start=1):
                    if number == 1:
                        header = snapshot_from_document({**parse_header(line, where), "resources": []}, where)
                        continue
                    if not line.strip():
                        blank = blank_line(blank, where, number)
                        continue
                    source, cloud, kind, rid = routing_keys(line, where, number)
                    if cloud not in CLOUDS or not (isinstance(source, str) and isinstance(kind, str)
                                                   and isinstance(rid, str) and source and kind and rid
                                                   and len(source) <= SOURCE_ID_LIMIT):
                        # the one-document reader's checks, for its messages
                        _check_line(parse_resource(line, where, number), where, number)
                    key = rid.lower() if cloud == "azure" else rid
                    if key in seen:
                        first_file, first_line = divmod(seen[key], 1 << 40)
                        raise SnapshotError(f"resource {rid} is also at {paths[first_file]}:{first_line}; pass each "
                                            "source's snapshot once", where=where, line=number)
                    seen[key] = (index << 40) + number  # an int: a million of them are 28 MB, not 100
                    count_source(named, source, cloud)
                    part, mark = 0, _OTHER
                    if cloud == "vsphere":
                        # "vsphere/<id>": no vCenter, whatever its name, shares the Azure shard's key
                        shard_key = f"vsphere/{source}"
                        if kind == "VirtualMachine":
                            mark, count = _VM, vms.get(shard_key, 0)
                            vms[shard_key] = count + 1
                            part = count // VM_PART  # the first VM made part 0, with the other resources
                    else:
                        shard_key = AZURE_SHARD
                    spilled = b"%d %d %s %s\n" % (index, number, mark, line)
                    shard_file(shard_key, cloud, part).write(spilled)
                    if cloud == "azure" and kind.lower() == PRIVATE_CLOUD:
                        context_files["vsphere"].write(spilled)
                    elif cloud == "vsphere" and kind == "vCenter":
                        context_files[AZURE_SHARD].write(spilled)
            if header is None:
                raise SnapshotError("not a snapshot: the file is empty", where=where)
            header.sources += unlisted_sources(header.sources, named, header.collected_at, where)
            check_source_once(listed, header.sources, where)
            headers.append(header)
    merged = Snapshot(collected_at=max(h.collected_at for h in headers),
                      sources=[source for h in headers for source in h.sources], resources=[],
                      origin=[o for h in headers for o in h.origin])
    ordered = sorted(_split(shards, vms), key=lambda shard: -shard.resources)
    return RoutedEstate(merged, ordered, context, [str(path) for path in paths])


def _split(files: dict[tuple[str, int], Shard], vms: dict[str, int]) -> list[Shard]:
    """The shards of the spill files: a vCenter with more VMs than fit one file becomes a
    shard of its other resources (after its VMs) and one per file of VMs, the first of them
    read from the first file by the mark, every one reading the first file's other
    resources; the rest are a shard per file."""
    shards = []
    for (key, part), shard in files.items():
        if part or vms.get(key, 0) <= VM_PART:
            if part:
                shard.part, shard.inventory = part + 1, files[(key, 0)].path
            shards.append(shard)
            continue
        shards.append(Shard(key, shard.cloud, shard.path, shard.resources - VM_PART, part=0, lines=_OTHER,
                            after_vms=True))
        shards.append(Shard(key, shard.cloud, shard.path, VM_PART, part=1, inventory=shard.path, lines=_VM))
    return shards


def _check_line(resource: Any, where: str, number: int) -> None:
    """The one-document reader's checks of a resource, its errors naming the line."""
    try:
        _check_resource(resource, number - 2, where)
    except SnapshotError as exc:
        raise SnapshotError(exc.message, where=where, line=number) from None


def _bounded_lines(stream: IO[bytes], limit: int, where: str) -> Iterator[bytes]:
    """The stream's lines, without their newlines, failing once they pass `limit` bytes in all
    (a gzip bomb stops at the limit, as the one-document reader's does) or, at the end, when
    the whole is far denser in JSON values than any inventory (as that reader refuses it
    before it parses anything). The stream is read ahead on a thread (see `_read_ahead`)."""
    total = values = 0
    pending: list[bytes] = []  # the start of a line that runs on into the next chunk
    with _read_ahead(stream, limit + 1) as chunks:
        try:
            for chunk in chunks:
                total += len(chunk)
                if total > limit:
                    raise SnapshotError(over_limit("snapshot file (decompressed)", limit, MAX_INPUT_FLAG),
                                        where=where)
                values += json_values(chunk)
                lines = chunk.split(b"\n")
                if len(lines) == 1:  # no line ends here: joined once it does, never re-copied meanwhile
                    pending.append(chunk)
                    continue
                if pending:
                    pending.append(lines[0])
                    lines[0] = b"".join(pending)
                pending = [lines.pop()]
                yield from lines
        except (OSError, EOFError, zlib.error) as exc:
            raise SnapshotError(f"broken gzip data ({exc})", where=where) from None
    check_density(values, total, where)
    if last := b"".join(pending):
        yield last


_READ_AHEAD = 1 << 20  # bytes a read-ahead chunk holds
_CHUNKS_AHEAD = 4


@contextmanager
def _read_ahead(stream: IO[bytes], limit: int) -> Iterator[Iterator[bytes]]:
    """The stream in chunks, read on a thread while the caller works on the chunks before:
    inflating gzip and its CRC let go of the GIL, so a gzip snapshot is decompressed on
    another core while this one routes. At most `limit` bytes are read; an error reading is
    raised to the caller, at the chunk it stopped; leaving the block stops the thread."""
    chunks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=_CHUNKS_AHEAD)
    stop = threading.Event()

    def put(item: bytes | BaseException) -> None:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                chunks.put(item, timeout=0.1)
                return

    def read() -> None:
        left = limit
        try:
            while not stop.is_set():
                chunk = stream.read(min(_READ_AHEAD, left)) if left > 0 else b""
                left -= len(chunk)
                put(chunk)
                if not chunk:
                    return
        except BaseException as exc:  # raised again in the caller's thread
            put(exc)

    def received() -> Iterator[bytes]:
        while True:
            item = chunks.get()
            if isinstance(item, BaseException):
                raise item
            if not item:
                return
            yield item

    reader = threading.Thread(target=read, name="snapshot-reader", daemon=True)
    reader.start()
    try:
        yield received()
    finally:
        stop.set()
        reader.join()


def pack(shards: list[Shard], batch: int = BATCH_RESOURCES) -> list[list[Shard]]:
    """Shards in batches for the workers: a large shard alone, small ones together up to
    about `batch` resources, largest first (so the longest work starts first). The Azure
    shard is always alone: it may have to wait for every vSphere one; the shards that wait
    for their vCenter's VMs are packed among themselves."""
    return (_pack([shard for shard in shards if not shard.after_vms], batch)
            + _pack([shard for shard in shards if shard.after_vms], batch))


def _pack(shards: list[Shard], batch: int) -> list[list[Shard]]:
    batches: list[list[Shard]] = []
    current: list[Shard] = []
    size = 0
    for shard in shards:  # largest first
        if shard.resources >= batch or shard.cloud == AZURE_SHARD:
            batches.append([shard])
            continue
        current.append(shard)
        size += shard.resources
        if size >= batch:
            batches.append(current)
            current, size = [], 0
    if current:
        batches.append(current)
    return batches


_MARSHALLED = "marshal"


@dataclass
class ShardOutcome:
    """What a worker found in one batch of shards."""

    findings: list[Finding] = field(default_factory=list)
    tallies: dict[str, RuleTally] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    linked: dict[str, dict[str, Any]] = field(default_factory=dict)
    resources: int = 0
    # what Windows Server Standard counting needs, summed over the parts of each vCenter:
    # each host's Windows guests, and the CPUs of the hosts (from the part that owns them)
    windows_guests: dict[HostKey, int] = field(default_factory=dict)
    host_cpus: dict[HostKey, tuple[int, int]] = field(default_factory=dict)
    error: tuple[str, str | None, int | None] | None = None  # an input error: message, where, line
    crash: str | None = None  # anything else: the worker's traceback

    def __getstate__(self) -> dict[str, Any]:
        """How a worker hands the outcome back: findings as marshal data where they can be
        (pickle's memo makes it six times slower on a hundred thousand findings and their
        evidence); marshal refuses what it cannot give back as it was, which pickle then takes."""
        state = dict(self.__dict__)
        rows = [finding_values(finding) for finding in self.findings]
        with contextlib.suppress(ValueError):  # a value of a type marshal does not keep (a date, a subclass)
            state["findings"] = (_MARSHALLED, marshal.dumps(rows))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        findings = state["findings"]
        if isinstance(findings, tuple) and findings[0] == _MARSHALLED:
            state["findings"] = [Finding(*row) for row in marshal.loads(findings[1])]
        self.__dict__.update(state)

    def add(self, findings: list[Finding], tallies: dict[str, RuleTally], counts: dict[str, int],
            linked: dict[str, dict[str, Any]], resources: int, guests: dict[HostKey, int],
            cpus: dict[HostKey, tuple[int, int]]) -> None:
        """Count another shard's results in (a worker its batch's shards, the scan every batch)."""
        self.findings.extend(findings)
        for rule_id, tally in tallies.items():
            merged = self.tallies.setdefault(rule_id, RuleTally())
            merged.checked += tally.checked
            merged.not_evaluated.extend(tally.not_evaluated)
        for key, count in counts.items():
            self.counts[key] = self.counts.get(key, 0) + count
        self.linked.update(linked)
        self.resources += resources
        for host, count in guests.items():
            self.windows_guests[host] = self.windows_guests.get(host, 0) + count
        self.host_cpus.update(cpus)


@dataclass
class _Job:
    """What forked workers share with the parent: set before the pool starts."""

    rules: RuleContext
    sources: list[Source]
    context: dict[str, Path]
    files: list[str]
    as_of: date
    skip_sources: frozenset[str]
    sizes: SizeTables | None = None  # the estate's VM sizes: read once, not per shard


_JOB: _Job | None = None


def _read_spill(path: Path, job: _Job, lines: bytes | None = None) -> list[dict[str, Any]]:
    """The resources of a spill file: of the lines marked `lines` (_VM, _OTHER), or all."""
    resources = []
    with open(path, "rb") as stream:
        for raw in stream:
            index, number, mark, line = raw.split(b" ", 3)
            if lines is not None and mark != lines:
                continue
            where, number = job.files[int(index)], int(number)
            resource = parse_resource(line, where, number, routed=True)
            _check_line(resource, where, number)
            if resource["source"] not in job.skip_sources:
                resources.append(resource)
    return resources


def _evaluate_batch(task: tuple[list[Shard], int | None, dict[HostKey, int] | None]) -> ShardOutcome:
    """Worker: evaluate the batch's shards, with their context; `on_premises` is what Azure's
    Windows Server claims must leave to vSphere (None: not needed), `guests` the Windows
    guests of each host of the vCenters split into parts (for their hosts' shard). The
    shards of a batch (small vCenters packed together, all vSphere) are evaluated as one
    estate: every vSphere fact is keyed by its vCenter, so each resource gets what it would
    alone, and a thousand branch-office vCenters are not a thousand rounds of facts."""
    from .scan import assess_estate, resource_counts

    batch, on_premises, guests = task

    job = _JOB
    assert job is not None, "workers are forked after the job is set"
    outcome = ShardOutcome()
    try:
        gc.disable()  # a JSON tree has no cycles; see snapshot._collector_paused
        own: list[dict[str, Any]] = []
        context: list[dict[str, Any]] = []
        read: set[tuple[Path, bytes | None]] = set()
        for shard in batch:
            own += _read_spill(shard.path, job, shard.lines)
            for path, lines in ((job.context[shard.cloud], None), (shard.inventory, _OTHER)):
                if path is not None and (path, lines) not in read:
                    read.add((path, lines))
                    context += _read_spill(path, job, lines)
        first = batch[0]
        linked = assess_estate(context + own, job.sources, job.rules, job.as_of,
                               on_premises if first.cloud == AZURE_SHARD else None,
                               guests if first.after_vms else None, job.sizes)
        evaluation = evaluate_rules(job.rules.compiled, own)
        assign_responsibility(evaluation.findings, own)
        outcome.add(evaluation.findings, evaluation.tallies, resource_counts(own), linked, len(own),
                    windows_guests(own), host_cpus(own))
        del own, context, evaluation, linked
        _release_memory()
    except AuditorError as exc:
        return ShardOutcome(error=(exc.message, exc.where, exc.line))
    except Exception:  # reported by the parent as an internal error, with this traceback
        return ShardOutcome(crash=traceback.format_exc())
    return outcome


def _release_memory() -> None:
    """Hand a finished shard's memory back to the system before the next shard: the worker
    lives on, and its peak should be its largest shard, not the sum of them."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: the memory waits for the next shard
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class ShardWorkerLost(AuditorError):
    """A worker process ended without handing back its shard (killed, out of memory)."""

    exit_code = EXIT_INTERNAL


def _completed(pool: ProcessPoolExecutor,
               tasks: list[tuple[list[Shard], int | None, dict[HostKey, int] | None]]) -> Iterator[ShardOutcome]:
    """The outcomes of `tasks`, as they complete."""
    futures = [pool.submit(_evaluate_batch, task) for task in tasks]
    for future in as_completed(futures):
        yield future.result()


def _worker_started() -> None:
    """A worker ends with the scan that started it (see `_exit_with_parent`); Ctrl-C and
    SIGTERM are the scan's to handle, and it ends its workers. What it inherits (modules,
    rules) is frozen out of the cyclic collector's sight: the collection after each shard
    then looks at that shard's leftovers alone, not at every object of the scan again."""
    from .sources import _exit_with_parent

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _exit_with_parent()
    gc.freeze()


@contextmanager
def spill_folder() -> Iterator[Path]:
    """A private temporary folder for the spill files, removed afterwards. It holds an flock
    for as long as this scan lives (the kernel drops it when the process dies, `kill -9`
    and the OOM killer included), and every scan first removes the spill folders whose lock
    is free: those of scans that were killed, which could not remove their own."""
    sweep_spill_folders(Path(tempfile.gettempdir()))
    with tempfile.TemporaryDirectory(prefix=SPILL_PREFIX) as folder:
        held = _lock_spill(Path(folder))
        try:
            yield Path(folder)
        finally:
            if held is not None:
                os.close(held)


SPILL_PREFIX = "auditor-shards-"
# the names tempfile gives a spill folder: the prefix and eight of its characters; a folder
# merely named like one (auditor-shards-notes) is not this program's to remove
_SPILL_NAME = re.compile(re.escape(SPILL_PREFIX) + r"[a-z0-9_]{8}")
_SPILL_LOCK = ".lock"
_SPILL_LOCK_NEW = ".lock-new"  # the lock file until it is locked, then renamed _SPILL_LOCK


def _lock_spill(folder: Path) -> int | None:
    """Lock `folder`'s lock file, which appears under its name only once locked, so that a
    sweep never finds it free in between; None where flock is missing (nothing is swept)."""
    if fcntl is None:
        return None
    fd = os.open(folder / _SPILL_LOCK_NEW, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(folder / _SPILL_LOCK_NEW, folder / _SPILL_LOCK)
    except OSError:
        os.close(fd)
        return None
    return fd


# a spill folder holding no more than the lock file it was about to lock, this long after it
# was last changed, was left by a scan killed while creating it (which takes microseconds)
_UNLOCKED_AGE = 600.0


def sweep_spill_folders(temp: Path) -> None:
    """Remove the spill folders of killed scans from `temp`: this user's folders whose lock
    file nobody holds. A folder without a lock file is left alone (a scan may be creating it,
    or one runs where flock fails, with its spill files there), unless it holds nothing but
    the lock file not yet locked and has not changed for _UNLOCKED_AGE seconds."""
    if fcntl is None:
        return
    try:
        entries = list(os.scandir(temp))
    except OSError:
        return
    for entry in entries:
        if not _SPILL_NAME.fullmatch(entry.name):
            continue
        with contextlib.suppress(OSError):
            status = entry.stat(follow_symlinks=False)
            if not entry.is_dir(follow_symlinks=False) or status.st_uid != os.getuid():
                continue
            try:
                # never blocks: a FIFO named .lock is opened without waiting, and left alone
                fd = os.open(Path(entry.path) / _SPILL_LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except FileNotFoundError:
                if time.time() - status.st_mtime > _UNLOCKED_AGE and set(os.listdir(entry.path)) <= {_SPILL_LOCK_NEW}:
                    shutil.rmtree(entry.path, ignore_errors=True)
                continue
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    continue
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held: its scan is alive
            except OSError:
                continue
            finally:
                os.close(fd)  # releases what was just taken, if it was
            shutil.rmtree(entry.path, ignore_errors=True)


def evaluate_sharded(routed: RoutedEstate, rules: RuleContext, as_of: date, workers: int,
                     skip_sources: frozenset[str] = frozenset()) -> tuple[Evaluation, dict[str, int], int,
                                                                          dict[str, dict[str, Any]]]:
    """Evaluate every shard in `workers` forked processes; returns the evaluation (findings
    unsorted), resource counts by cloud:type, the number of resources and the AVS joins."""
    from .scan import estate_sizes

    global _JOB
    _JOB = _Job(rules, routed.header.sources, routed.context, routed.files, as_of, skip_sources,
                estate_sizes(routed.header.sources))
    total = ShardOutcome()
    batches = pack(routed.shards)
    enabled = gc.isenabled()
    gc.disable()  # a million findings arrive: the cyclic collector would re-walk them all
    try:
        # Azure's Windows Server Standard claims wait for the vSphere guests they share licences
        # with; the hosts of a vCenter split into parts wait for its VMs' Windows guests
        waits = needs_on_premises(rules.baselines)
        first = [(batch, None, None) for batch in batches
                 if not batch[0].after_vms and not (waits and batch[0].cloud == AZURE_SHARD)]
        hosts = [batch for batch in batches if batch[0].after_vms]
        later = [batch for batch in batches if waits and batch[0].cloud == AZURE_SHARD]

        def absorb(outcome: ShardOutcome) -> None:
            if outcome.error is not None:
                message, where, line = outcome.error
                raise SnapshotError(message, where=where, line=line)
            if outcome.crash is not None:
                crash = RuntimeError(f"a shard worker failed: {outcome.crash.strip().splitlines()[-1]}")
                crash.add_note(f"in the worker:\n{outcome.crash.rstrip()}")  # AUDITOR_TRACEBACK=1 shows it
                raise crash
            total.add(outcome.findings, outcome.tallies, outcome.counts, outcome.linked, outcome.resources,
                      outcome.windows_guests, outcome.host_cpus)

        # forked at the first submit, while this process is small: a worker forked later would
        # start with a copy of every finding gathered so far
        pool = ProcessPoolExecutor(max_workers=max(1, min(workers, len(batches))),
                                   mp_context=multiprocessing.get_context("fork"), initializer=_worker_started)
        try:
            for outcome in _completed(pool, first):
                absorb(outcome)
            # every VM is in: each host's Windows guests are known
            for outcome in _completed(pool, [(batch, None, total.windows_guests) for batch in hosts]):
                absorb(outcome)
            # every vSphere shard is in: the cores their Windows guests take are known
            on_premises = standard_cores(total.host_cpus, total.windows_guests)
            for outcome in _completed(pool, [(batch, on_premises, None) for batch in later]):
                absorb(outcome)
        except BaseException as exc:
            # a Ctrl-C, a SIGTERM, a bad line, a lost worker: no worker runs on
            for process in dict(getattr(pool, "_processes", None) or {}).values():
                with contextlib.suppress(Exception):
                    process.kill()
            # a worker killed halfway through sending its result leaves the pool's reader
            # waiting for the rest for ever (this process holds the pipe's other end too):
            # closed here, the reader sees the end and the pool shuts down
            with contextlib.suppress(Exception):
                pool._result_queue._writer.close()  # type: ignore[attr-defined]
            if isinstance(exc, BrokenProcessPool):
                raise ShardWorkerLost("a worker evaluating a shard ended without its result: it was killed, ran "
                                      "out of memory, or hit a bug of auditor; nothing was written") from None
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        for compiled in rules.compiled:  # every rule has a tally, as evaluate_rules gives
            total.tallies.setdefault(compiled.rule.id, RuleTally())
    finally:
        _JOB = None
        if enabled:
            gc.enable()
    return Evaluation(total.findings, total.tallies), total.counts, total.resources, total.linked


def default_workers() -> int:
    """One worker per CPU this process may use: those it may run on, fewer when its cgroup
    (a container's CPU limit) allows less, since a pod on a large node would otherwise start
    one worker, and hold one shard in memory, per CPU of the node."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpus()
    return max(1, min(cpus, quota) if quota else cpus)


def _cgroup_cpus() -> int | None:
    """The CPUs a cgroup's quota allows (cgroup v2 cpu.max, else v1), rounded up; None when
    unlimited or unknown."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota == "max":
            return None
        return -(-int(quota) // int(period))
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return -(-quota // period) if quota > 0 and period > 0 else None
