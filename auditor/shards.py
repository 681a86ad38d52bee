"""Sharded evaluation: a JSON Lines snapshot evaluated one vCenter (or the Azure tenant) at
a time, in worker processes on every core, so no process holds the whole estate.

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

The parent routes each line by its first keys (`auditor.snapshot_lines`) into one spill
file per shard without parsing the rest, checks ids for duplicates across the whole estate,
then hands shards, largest first and small ones packed together, to a pool of workers
forked before the first finding arrives (each hands a finished shard's memory back).
Workers return findings, tallies and counts; memory is bounded by the largest shard plus the
findings, not by the estate.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import marshal
import multiprocessing
import os
import signal
import tempfile
import threading
import traceback
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .accounting import needs_on_premises, standard_on_premises
from .avs import PRIVATE_CLOUD, assign_responsibility
from .engine.evaluate import Evaluation, RuleTally, evaluate_rules
from .errors import EXIT_INTERNAL, AuditorError, SnapshotError
from .files import over_limit
from .findings import Finding, finding_values
from .snapshot import CLOUDS, MAX_INPUT_FLAG, Snapshot, Source, _check_resource, snapshot_from_document
from .snapshot_lines import is_lines_header, open_lines, parse_header, parse_resource, routing_keys

if TYPE_CHECKING:
    from .scan import RuleContext

AZURE_SHARD = "azure"
BATCH_RESOURCES = 20_000  # small shards are packed into batches of about this many resources
MAX_BLANK_LINES = 10_000
MAX_HEADER = 64 * 1024 * 1024  # a header lists every source: thousands of subscriptions fit


def is_lines_file(path: Path) -> bool:
    """Whether `path` is a snapshot in the JSON Lines layout (read by its first line)."""
    try:
        with open_lines(path) as stream:
            return is_lines_header(stream.readline(MAX_HEADER))
    except (AuditorError, OSError, EOFError):
        return False  # the one-document reader names what is wrong with it


@dataclass
class Shard:
    """One vSphere source's resources, or every Azure source's, spilled to a file."""

    key: str
    cloud: str
    path: Path
    resources: int = 0


@dataclass
class RoutedEstate:
    """The snapshots' headers (sources, no resources) and the estate split into shards."""

    header: Snapshot
    shards: list[Shard]
    context: dict[str, Path]  # shard cloud -> the file of context resources it reads
    files: list[str]  # the snapshot files, by the index each spilled line carries


def route(paths: list[Path], limit: int, spill: Path) -> RoutedEstate:
    """Read the snapshot files a line at a time and write each resource line to its shard's
    spill file (`<file index> <line number> <json>`): the estate is checked for duplicate ids
    across files as `merge_snapshots` does, every file is bounded by `limit` bytes after
    decompression, and nothing is parsed beyond a line's routing keys."""
    shards: dict[str, Shard] = {}
    handles: dict[str, IO[bytes]] = {}
    seen: dict[str, int] = {}  # resource key -> where it was first seen (file index, line)
    headers: list[Snapshot] = []
    context = {"vsphere": spill / "context-vsphere.jsonl", AZURE_SHARD: spill / "context-azure.jsonl"}
    with ExitStack() as stack:
        context_files = {cloud: stack.enter_context(open(path, "wb")) for cloud, path in context.items()}

        def shard_file(key: str, cloud: str) -> IO[bytes]:
            if key not in handles:
                shards[key] = Shard(key, cloud, spill / f"shard-{len(shards)}.jsonl")
                handles[key] = stack.enter_context(open(shards[key].path, "wb"))
            shards[key].resources += 1
            return handles[key]

        for index, path in enumerate(paths):
            where = str(path)
            header = None
            blank = 0
            with open_lines(path) as stream:
                for number, line in enumerate(_bounded_lines(stream, limit, where), start=1):
                    if number == 1:
                        header = snapshot_from_document({**parse_header(line, where), "resources": []}, where)
                        continue
                    if not line.strip():
                        blank += 1
                        if blank > MAX_BLANK_LINES:  # a gzip bomb of newlines would take minutes to count
                            raise SnapshotError(f"not a snapshot: more than {MAX_BLANK_LINES:,} blank lines",
                                                where=where, line=number)
                        continue
                    source, cloud, kind, rid = routing_keys(line, where, number)
                    if not all(isinstance(value, str) and value for value in (source, cloud, kind, rid)) \
                            or cloud not in CLOUDS:
                        # the one-document reader's checks, for its messages
                        _check_line(parse_resource(line, where, number), where, number)
                    key = rid.lower() if cloud == "azure" else rid
                    if key in seen:
                        first_file, first_line = divmod(seen[key], 1 << 40)
                        raise SnapshotError(f"resource {rid} is also at {paths[first_file]}:{first_line}; pass each "
                                            "source's snapshot once", where=where, line=number)
                    seen[key] = (index << 40) + number  # an int: a million of them are 28 MB, not 100
                    prefix = b"%d %d " % (index, number)
                    line = line if line.endswith(b"\n") else line + b"\n"
                    # "vsphere/<id>": no vCenter, whatever its name, shares the Azure shard's key
                    shard_file(f"vsphere/{source}" if cloud == "vsphere" else AZURE_SHARD, cloud).write(prefix + line)
                    if cloud == "azure" and kind.lower() == PRIVATE_CLOUD:
                        context_files["vsphere"].write(prefix + line)
                    elif cloud == "vsphere" and kind == "vCenter":
                        context_files[AZURE_SHARD].write(prefix + line)
            if header is None:
                raise SnapshotError("not a snapshot: the file is empty", where=where)
            headers.append(header)
    merged = Snapshot(collected_at=max(h.collected_at for h in headers),
                      sources=[source for h in headers for source in h.sources], resources=[],
                      origin=[o for h in headers for o in h.origin])
    ordered = sorted(shards.values(), key=lambda shard: -shard.resources)
    return RoutedEstate(merged, ordered, context, [str(path) for path in paths])


def _check_line(resource: Any, where: str, number: int) -> None:
    """The one-document reader's checks of a resource, its errors naming the line."""
    try:
        _check_resource(resource, number - 2, where)
    except SnapshotError as exc:
        raise SnapshotError(exc.message, where=where, line=number) from None


def _bounded_lines(stream: IO[bytes], limit: int, where: str) -> Iterator[bytes]:
    """The stream's lines, failing once they pass `limit` bytes in all (a gzip bomb stops at
    the limit, as the one-document reader's does)."""
    total = 0
    try:
        while line := stream.readline(limit + 1 - total):
            total += len(line)
            if total > limit:
                raise SnapshotError(over_limit("snapshot file (decompressed)", limit, MAX_INPUT_FLAG), where=where)
            yield line
    except (OSError, EOFError) as exc:
        raise SnapshotError(f"broken gzip data ({exc})", where=where) from None


def pack(shards: list[Shard], batch: int = BATCH_RESOURCES) -> list[list[Shard]]:
    """Shards in batches for the workers: a large shard alone, small ones together up to
    about `batch` resources, largest first (so the longest work starts first). The Azure
    shard is always alone: it may have to wait for every vSphere one."""
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
    standard_cores: int = 0  # Windows Server Standard cores its vSphere hosts' guests take
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
            linked: dict[str, dict[str, Any]], resources: int, standard_cores: int) -> None:
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
        self.standard_cores += standard_cores


@dataclass
class _Job:
    """What forked workers share with the parent: set before the pool starts."""

    rules: RuleContext
    sources: list[Source]
    context: dict[str, Path]
    files: list[str]
    as_of: date
    skip_sources: frozenset[str]


_JOB: _Job | None = None


def _read_spill(path: Path, job: _Job) -> list[dict[str, Any]]:
    resources = []
    with open(path, "rb") as stream:
        for raw in stream:
            index, number, line = raw.split(b" ", 2)
            where, number = job.files[int(index)], int(number)
            resource = parse_resource(line, where, number, routed=True)
            _check_line(resource, where, number)
            if resource["source"] not in job.skip_sources:
                resources.append(resource)
    return resources


def _evaluate_batch(task: tuple[list[Shard], int | None]) -> ShardOutcome:
    """Worker: evaluate each shard of the batch on its own, with its context; `on_premises`
    is what Azure's Windows Server claims must leave to vSphere (None: not needed)."""
    from .scan import assess_estate, resource_counts

    batch, on_premises = task

    job = _JOB
    assert job is not None, "workers are forked after the job is set"
    outcome = ShardOutcome()
    try:
        gc.disable()  # a JSON tree has no cycles; see snapshot._collector_paused
        for shard in batch:
            own = _read_spill(shard.path, job)
            context = _read_spill(job.context[shard.cloud], job)
            linked = assess_estate(context + own, job.sources, job.rules, job.as_of,
                                   on_premises if shard.cloud == AZURE_SHARD else None)
            evaluation = evaluate_rules(job.rules.compiled, own)
            assign_responsibility(evaluation.findings, own)
            outcome.add(evaluation.findings, evaluation.tallies, resource_counts(own), linked, len(own),
                        standard_on_premises(own))
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


def _completed(pool: ProcessPoolExecutor, tasks: list[tuple[list[Shard], int | None]]) -> Iterator[ShardOutcome]:
    """The outcomes of `tasks`, as they complete."""
    futures = [pool.submit(_evaluate_batch, task) for task in tasks]
    for future in as_completed(futures):
        yield future.result()


def _worker_started() -> None:
    """A worker ends with the scan that started it (see `_exit_with_parent`); Ctrl-C and
    SIGTERM are the scan's to handle, and it ends its workers."""
    from .sources import _exit_with_parent

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _exit_with_parent()


@contextmanager
def terminated_as_exit() -> Iterator[None]:
    """SIGTERM (a Kubernetes deadline, a systemd stop) raises SystemExit while the block
    runs, so that its workers are ended and its spill files removed, as on Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminated(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def spill_folder() -> Iterator[Path]:
    """A private temporary folder for the spill files, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="auditor-shards-") as folder:
        yield Path(folder)


def evaluate_sharded(routed: RoutedEstate, rules: RuleContext, as_of: date, workers: int,
                     skip_sources: frozenset[str] = frozenset()) -> tuple[Evaluation, dict[str, int], int,
                                                                          dict[str, dict[str, Any]]]:
    """Evaluate every shard in `workers` forked processes; returns the evaluation (findings
    unsorted), resource counts by cloud:type, the number of resources and the AVS joins."""
    global _JOB
    _JOB = _Job(rules, routed.header.sources, routed.context, routed.files, as_of, skip_sources)
    total = ShardOutcome()
    batches = pack(routed.shards)
    enabled = gc.isenabled()
    gc.disable()  # a million findings arrive: the cyclic collector would re-walk them all
    try:
        # Azure's Windows Server Standard claims wait for the vSphere guests they share licences with
        waits = needs_on_premises(rules.baselines)
        first = [(batch, None) for batch in batches if not (waits and batch[0].cloud == AZURE_SHARD)]
        later = [batch for batch in batches if waits and batch[0].cloud == AZURE_SHARD]

        def absorb(outcome: ShardOutcome) -> None:
            if outcome.error is not None:
                message, where, line = outcome.error
                raise SnapshotError(message, where=where, line=line)
            if outcome.crash is not None:
                raise RuntimeError(f"a shard worker failed:\n{outcome.crash}")
            total.add(outcome.findings, outcome.tallies, outcome.counts, outcome.linked, outcome.resources,
                      outcome.standard_cores)

        # forked at the first submit, while this process is small: a worker forked later would
        # start with a copy of every finding gathered so far
        pool = ProcessPoolExecutor(max_workers=max(1, min(workers, len(batches))),
                                   mp_context=multiprocessing.get_context("fork"), initializer=_worker_started)
        try:
            for outcome in _completed(pool, first):
                absorb(outcome)
            # every vSphere shard is in: the cores their Windows guests take are known
            for outcome in _completed(pool, [(batch, total.standard_cores) for batch in later]):
                absorb(outcome)
        except BaseException as exc:
            # a Ctrl-C, a SIGTERM, a bad line, a lost worker: no worker runs on
            for process in dict(getattr(pool, "_processes", None) or {}).values():
                with contextlib.suppress(Exception):
                    process.kill()
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
