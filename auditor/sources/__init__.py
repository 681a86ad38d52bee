"""Inventory sources: each collects one kind of estate into snapshot resources.

A source knows its API and the snapshot's resource envelope, nothing of rules or formats.
`collect()` never raises for trouble with the far end (refused connection, bad
certificate, wrong password, lost connection): it returns a failed Source with a one-line
reason, so one broken vCenter or subscription does not stop the others, and the scan can
say the picture is incomplete (exit 3).

Several sources are collected at once. A source whose collection is CPU work in Python
(`own_process`: reading a vCenter's pages) runs in a process of its own, so that several
of them use every core instead of taking turns on the GIL; the others run on threads. The
processes start from a fork server (never a fork of this threaded process), get their
source (with its credentials) through a pipe, never on a command line, send their progress
and their result back through it as plain data, leave SIGINT to this process, and end when
it ends (however it ends): Ctrl-C or a SIGTERM ends the collection, not only this process.
A process that dies without a result fails its source alone.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from ..progress import Progress
from ..snapshot import Snapshot, Source, now_utc

LOG = logging.getLogger("auditor")
# exit status of a collecting process whose parent went away (it stops rather than go on alone)
ORPHANED = 70


@dataclass
class Collected:
    """What one source produced: the status of each vCenter or subscription it covers (an
    Azure scope covers many) and their resources."""

    sources: list[Source]
    resources: list[dict[str, Any]] = field(default_factory=list)


class InventorySource(ABC):
    """One vCenter, or one Azure scope (subscriptions or a management group), to collect from."""

    id: str
    # what a failed Source of this source says when its collection gave no result at all
    cloud: str = ""
    kind: str = ""
    # collected in a process of its own when collected with others: its collection is CPU
    # work in Python, which would take turns with the others' on the GIL
    own_process: bool = False

    @abstractmethod
    def collect(self, progress: Progress) -> Collected:
        """Collect everything; failures come back as a failed Source, not as exceptions."""

    def lost(self, reason: str) -> Collected:
        """The result of a collection that ended without one (its process died)."""
        return Collected([Source(id=self.id, cloud=self.cloud, kind=self.kind, status="failed", error=reason)])


def collect_all(sources: list[InventorySource], progress: Progress | None = None,
                workers: int = 8) -> Snapshot:
    """Collect from every source in parallel into one snapshot, failed sources included: up
    to `workers` sources at a time on threads, and up to `workers` at a time in processes
    (see the module's docstring). A lone source is collected here: a process would only add
    its start."""
    progress = progress or Progress()
    started = now_utc()
    results: list[Collected | None] = [None] * len(sources)
    isolated = [i for i, source in enumerate(sources) if source.own_process] if len(sources) > 1 else []
    threaded = [i for i in range(len(sources)) if i not in isolated]
    LOG.info("collecting %d source%s: %d in processes of their own, %d on threads", len(sources),
             "" if len(sources) == 1 else "s", len(isolated), len(threaded))
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(threaded)))) as pool:
        futures = {i: pool.submit(_timed, sources[i], progress) for i in threaded}
        if isolated:
            for i, collected in zip(isolated, collect_in_processes([sources[i] for i in isolated], progress, workers),
                                    strict=True):
                results[i] = collected
        for i, future in futures.items():
            results[i] = future.result()
    progress.finish()
    done = [result for result in results if result is not None]
    LOG.info("collected %d resources from %d sources", sum(len(r.resources) for r in done),
             sum(len(r.sources) for r in done))
    return Snapshot(collected_at=started, sources=[source for r in done for source in r.sources],
                    resources=[resource for r in done for resource in r.resources])


def _timed(source: InventorySource, progress: Progress) -> Collected:
    """`source.collect`, logged with its time."""
    started = time.perf_counter()
    collected = source.collect(progress)
    log_collected(collected, time.perf_counter() - started)
    return collected


def log_collected(collected: Collected, seconds: float, where: str = "") -> None:
    """One log line per source a collection covered: ok with its resources, or why not."""
    for source in collected.sources:
        if source.status == "ok":
            LOG.info("%s: %d resources in %.2f s%s", source.id, source.resource_count, seconds, where)
        else:
            LOG.info("%s: %s after %.2f s%s", source.id, source.status, seconds, where)


# -- collecting in processes -------------------------------------------------------------------


def _process_context(sources: list[InventorySource]) -> Any:
    """The fork server (spawn where there is none): the modules of the sources are imported
    once, in the server, and each process starts as a fork of it."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(sorted({"__main__", *(type(source).__module__ for source in sources)}))
    return context


class _Relay(Progress):
    """Progress of a collecting process, sent to the parent's Progress."""

    def __init__(self, channel: Connection):
        super().__init__(enabled=False)
        self.channel = channel

    def update(self, source: str, count: int) -> None:
        """Send `source`'s count to the parent."""
        self.channel.send(("progress", source, count))


def _exit_with_parent() -> None:
    """End this process when its parent ends (a SIGKILL, a SIGTERM it did not catch): a
    collection nobody waits for is stopped, not left to run against a vCenter."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(ORPHANED)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _collect_in_process(source: InventorySource, channel: Connection, cwd: str) -> None:
    """The body of a collecting process: collect, send the result (or the bug) and end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it ends us
    _exit_with_parent()
    with contextlib.suppress(OSError):  # the fork server's working folder may be older than the parent's
        os.chdir(cwd)
    try:
        collected = source.collect(_Relay(channel))
    except Exception as exc:  # a bug of ours: raised again in the parent, with this traceback
        exc.add_note("in the process collecting " + source.id + ":\n" + traceback.format_exc().rstrip())
        try:
            pickle.dumps(exc)
        except Exception:
            exc = RuntimeError(f"{type(exc).__name__}: {exc}")
        channel.send(("raised", exc))
    else:
        channel.send(("collected", collected))
    channel.close()


@dataclass
class _Running:
    """A collecting process and the end of its pipe."""

    index: int
    process: Any
    channel: Connection
    result: Collected | None = None
    started: float = 0.0  # time.perf_counter() at its start


def collect_in_processes(sources: list[InventorySource], progress: Progress, workers: int) -> list[Collected]:
    """Collect each source in a process of its own, up to `workers` at a time; results in the
    order of `sources`. A process that ends without a result fails its source; a bug raised
    in one is raised here. Ctrl-C here (or any exception) kills the processes still running."""
    context = _process_context(sources)
    results: list[Collected | None] = [None] * len(sources)
    waiting = deque(range(len(sources)))
    running: dict[Connection, _Running] = {}
    cwd = os.getcwd()
    try:
        while waiting or running:
            while waiting and len(running) < max(1, workers):
                index = waiting.popleft()
                receiver, sender = context.Pipe(duplex=False)
                process = context.Process(target=_collect_in_process, args=(sources[index], sender, cwd),
                                          name=f"auditor-collect-{sources[index].id}", daemon=True)
                _start(process, sources[index])
                sender.close()  # the child's end: EOF here once the child is gone
                running[receiver] = _Running(index, process, receiver, started=time.perf_counter())
            for channel in wait(list(running)):
                job = running[channel]
                if _receive(job, progress):
                    continue
                del running[channel]
                channel.close()
                job.process.join()
                results[job.index] = job.result or sources[job.index].lost(
                    f"{sources[job.index].id} (collecting): the collecting process ended without a result (exit "
                    f"status {job.process.exitcode}): it was killed, ran out of memory, or hit a bug of auditor")
                log_collected(results[job.index], time.perf_counter() - job.started,  # type: ignore[arg-type]
                              f" (process {job.process.pid})")
    finally:
        for job in running.values():
            job.process.kill()
            job.process.join()
            job.channel.close()
    return [result for result in results if result is not None]


def _start(process: Any, source: InventorySource) -> None:
    """Start `process`, collecting `source`, without it running this program's main script
    first, unless the source needs it.

    A child runs a function of this module on objects of the sources' modules, which the
    fork server has imported; nothing of the main script. Yet given the main script's path,
    each child runs it again (Python 3.11's fork server cannot preload a script: the key it
    looks for is not the one the preparation data holds), which is every import of the
    command line again: 0.04-0.06 s of CPU a child, 0.13 s under bench/vsphere.py. Without
    the path in the preparation data, the child skips that. A source of a class the main
    script defines (auditor used from a script) can only be rebuilt there: it keeps it."""
    main = sys.modules.get("__main__")
    path = None
    if main is not None and b"__main__" not in pickle.dumps(source):
        path = main.__dict__.pop("__file__", None)
    try:
        process.start()
    finally:
        if path is not None:
            main.__file__ = path  # type: ignore[union-attr]


def _receive(job: _Running, progress: Progress) -> bool:
    """Handle one message of a collecting process; False once it has nothing more to say."""
    try:
        message = job.channel.recv()
    except (EOFError, OSError):
        return False
    if message[0] == "progress":
        progress.update(message[1], message[2])
        return True
    if message[0] == "collected":
        job.result = message[1]
        return True
    raise message[1]  # "raised": a bug in the collection, the parent's to report


__all__ = ["Collected", "InventorySource", "Progress", "collect_all", "collect_in_processes"]
