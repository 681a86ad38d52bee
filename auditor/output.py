"""Writing a scan's outputs: `OUT/<timestamp>/` plus `OUT/latest` pointing at it.

Every file is written in pieces (the formats side by side in forked processes when the scan
has more than one worker; one after another into Azure Blob Storage) into a hidden staging
folder (`.auditor-staging.<pid>.XXXXXXXX`) that is renamed into place once all are
written, and only then does `latest` move (an atomic symlink swap). A failure at any step
leaves earlier runs and the previous `latest` untouched.

Several scans may write into one output folder at once:

- a run claims its folder by renaming its complete staging folder to `<timestamp>`; the
  rename fails when another run already holds that name, and the run takes the next free
  `<timestamp>-<n>`, so no two runs share a folder and no name is checked then taken;
- `latest` moves by `os.replace` of a symlink with a name of its own (pid and random), so
  two runs never clash on the temporary link; the run that moves it last wins;
- each run holds an flock on its staging folder for as long as it lives (the kernel drops
  it when the process dies, `kill -9` included). At start a scan removes the staging folders
  whose lock is free: they belong to runs that were killed. A folder another process is
  still writing is locked, so it stays. Creating a staging folder, sweeping and moving
  `latest` each hold a short flock on the output folder itself, so a sweep never sees a
  staging folder between its creation and its lock.

Where flock is missing (Windows, some network filesystems) runs still never collide, but
nothing is swept: without a lock a live run's folder cannot be told from a dead one's.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import multiprocessing
import os
import pickle
import re
import secrets
import shutil
import signal
import tempfile
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .atomic import write_stream_atomic
from .blob import BlobLocation, is_blob
from .errors import EXIT_INTERNAL, AuditorError, InputError
from .findings import ScanReport
from .formats import ReportFormat, formats

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOG = logging.getLogger("auditor")

STAGING_PREFIX = ".auditor-staging."
LATEST_TEMP_PREFIX = ".auditor-latest."
# what auditor versions before the staging locks left behind when killed: `.<stamp>.XXXXXXXX`
# staging folders and `.latest.XXXXXXXX` copies (mkdtemp's 8 characters), `.latest.<pid>`
# links. They carry no lock, so they go only once no run could still be writing them.
_LEGACY_FOLDER = re.compile(r"\.(\d{8}T\d{6}Z(-\d+)?|latest)\.[a-z0-9_]{8}")
_LEGACY_LINK = re.compile(r"\.latest\.\d+")
LEGACY_LEFTOVER_AGE = 3600.0  # seconds
_MAX_SUFFIX = 10_000


def write_run(report: ScanReport, out: Path | BlobLocation, names: list[str]) -> Path | BlobLocation:
    """Write the outputs of one run and point `latest` at it; returns the run folder."""
    run = write_run_folder(report, out, names)
    point_latest(out, run)
    return run


def write_run_folder(report: ScanReport, out: Path | BlobLocation, names: list[str],
                     processes: int = 1) -> Path | BlobLocation:
    """Write the outputs of one run into a new run folder of `out` and return it; `latest`
    does not move (see `point_latest`).

    Formats are written in pieces into the staging folder, so a large SARIF or findings.json
    is never whole in memory; with `processes` above one they are shared out to that many
    processes (see `_write_formats`). The folder only appears under its name when all are
    written.
    """
    if is_blob(out):  # Azure Blob Storage: written here into a temporary folder, then uploaded
        from .blob import upload_run
        return upload_run(report, out, names)
    available = formats()
    _create_folder(out)
    staging, held = _make_staging(out)
    try:
        _write_formats(report, staging, [available[name] for name in names], processes)
        os.chmod(staging, 0o755)
        return _claim(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if held is not None:
            os.close(held)  # the run folder is in place (or gone): the lock has done its work


class FormatWriterLost(AuditorError):
    """A process writing formats ended without saying how (killed, out of memory)."""

    exit_code = EXIT_INTERNAL


def _write_formats(report: ScanReport, staging: Path, chosen: list[ReportFormat], processes: int) -> None:
    """Write each format into `staging`. With `processes` above one, the formats are dealt
    out in turn: this process writes the first share, and a process forked for each other
    share writes that (each format's bytes are the same whoever writes them; findings.json
    and SARIF of 100,000 resources take a second each). A writer's error is raised here as
    it was raised there; any error stops every writer."""
    step = max(1, processes)
    shares = [chosen[first::step] for first in range(min(step, len(chosen)))]
    writers: list[tuple[Any, Any, list[ReportFormat]]] = []
    try:
        if len(shares) > 1:
            context = multiprocessing.get_context("fork")
            for share in shares[1:]:
                receiver, sender = context.Pipe(duplex=False)
                process = context.Process(target=_write_share_forked, args=(report, staging, share, sender),
                                          name="auditor-formats", daemon=True)
                process.start()
                sender.close()
                writers.append((process, receiver, share))
        _write_share(report, staging, shares[0] if shares else [])
        for process, receiver, share in writers:
            try:
                failure = receiver.recv()  # None once the share is written
            except EOFError:  # it ended without a word
                failure = FormatWriterLost(f"the process writing {', '.join(f.name for f in share)} ended without "
                                           "finishing (it was killed or ran out of memory); nothing was written")
            process.join()
            if failure is not None:
                raise failure
    finally:
        for process, receiver, _ in writers:
            if process.is_alive():
                process.kill()
            process.join()
            receiver.close()


def _write_share(report: ScanReport, staging: Path, share: list[ReportFormat]) -> None:
    for fmt in share:
        try:
            with write_stream_atomic(staging / fmt.filename) as stream:
                fmt.write(report, stream)  # in pieces: a large SARIF or findings.json never whole in memory
        except OSError as exc:  # a full disk, a quota: the user's to fix, not a bug
            raise InputError(f"cannot write {fmt.filename}: {exc.strerror or exc}", where=str(staging.parent)) from None


def _write_share_forked(report: ScanReport, staging: Path, share: list[ReportFormat], sender: Any) -> None:
    """The body of a forked writer: write the share, then send None, or the error as it was
    raised (a bug's with its traceback as a note, which AUDITOR_TRACEBACK=1 shows; one that
    cannot travel as it is, by its words)."""
    from .sources import _exit_with_parent

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it ends us
    _exit_with_parent()
    names = ", ".join(fmt.name for fmt in share)
    failure: BaseException | None = None
    try:
        _write_share(report, staging, share)
    except BaseException as exc:
        failure = exc
        if not isinstance(exc, AuditorError | OSError):
            exc.add_note(f"in the process writing {names}:\n{traceback.format_exc().rstrip()}")
        try:
            pickle.loads(pickle.dumps(failure))
        except Exception:
            failure = RuntimeError(f"writing {names} failed: {type(exc).__name__}: {exc}")
            failure.__notes__ = getattr(exc, "__notes__", [])
    sender.send(failure)
    sender.close()


def prepare_output(out: Path | BlobLocation) -> None:
    """Create the output folder, or fail with one line before any work is done; then remove
    what killed runs left in it (see `remove_leftovers`). In storage: check the container."""
    if is_blob(out):
        from .blob import check_output
        check_output(out)
        return
    _create_folder(out)
    remove_leftovers(out)


def _create_folder(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder: {exc.strerror}", where=str(out)) from None
    if not os.access(out, os.W_OK):
        raise InputError("output folder is not writable", where=str(out))


def _claim(staging: Path, out: Path) -> Path:
    """Rename the complete staging folder to the first free `<timestamp>[-n]` of `out`.

    The rename is the claim: it fails with EEXIST/ENOTEMPTY when a run (a non-empty folder)
    already has the name, even one that took it a moment ago in another process.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for suffix in range(1, _MAX_SUFFIX):
        run = out / (stamp if suffix == 1 else f"{stamp}-{suffix}")
        if os.path.lexists(run):
            continue  # the common case, without a failed syscall
        try:
            os.rename(staging, run)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                continue  # taken between the look and the rename
            raise
        return run
    raise InputError(f"no free run folder name for {stamp} after {_MAX_SUFFIX} tries", where=str(out))


def point_latest(out: Path | BlobLocation, run: Path | BlobLocation) -> None:
    """Make `out/latest` refer to `run`: a symlink swapped atomically, or a copy; in storage,
    each blob of `latest/` replaced by the run's."""
    if is_blob(out):
        from .blob import upload_latest
        upload_latest(out, run)
        return
    latest = out / "latest"
    # a name no other process uses (a pid alone repeats across containers sharing a folder)
    link = out / f"{LATEST_TEMP_PREFIX}{os.getpid()}.{secrets.token_hex(4)}"
    with _folder_lock(out):
        try:
            os.symlink(run.name, link)
            if latest.is_dir() and not latest.is_symlink():
                shutil.rmtree(latest)  # an old copy from a filesystem without symlinks
            os.replace(link, latest)
        except OSError:
            # no symlinks here (some Windows setups): copy instead
            if link.is_symlink():
                link.unlink()
            staging = Path(tempfile.mkdtemp(prefix=LATEST_TEMP_PREFIX, dir=out))
            for file in run.iterdir():
                shutil.copy2(file, staging / file.name)
            if latest.is_symlink() or latest.is_file():
                latest.unlink()
            elif latest.exists():
                shutil.rmtree(latest)
            os.rename(staging, latest)


def remove_leftovers(out: Path) -> list[Path]:
    """Remove what killed runs left in `out` and return it: staging folders no live process
    holds, temporary `latest` links and copies, and the leftovers of older auditor versions
    once they are an hour old. Never fails: a leftover that cannot go stays for next time."""
    removed: list[Path] = []
    with _folder_lock(out, patience=5.0) as locked:
        if not locked:
            return removed  # no flock here: a live run's staging folder looks like a dead one's
        try:
            entries = list(os.scandir(out))
        except OSError:
            return removed
        now = time.time()
        for entry in entries:
            name = entry.name
            if name.startswith(STAGING_PREFIX):
                stale = entry.is_dir(follow_symlinks=False) and _abandoned(entry.path)
            elif name.startswith(LATEST_TEMP_PREFIX):
                stale = True  # made and consumed under the folder lock that this sweep holds
            elif ((_LEGACY_FOLDER.fullmatch(name) and entry.is_dir(follow_symlinks=False))
                  or (_LEGACY_LINK.fullmatch(name) and entry.is_symlink())):
                stale = _age(entry, now) > LEGACY_LEFTOVER_AGE
            else:
                continue
            if stale and _remove(entry):
                LOG.info("removed %s, left by an interrupted run", entry.path)
                removed.append(Path(entry.path))
    return removed


def _make_staging(out: Path) -> tuple[Path, int | None]:
    """A new staging folder of `out` and the descriptor holding its lock (None without flock)."""
    with _folder_lock(out):
        staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}.", dir=out))
        held = _open_locked(str(staging))
    return staging, held


def _open_locked(path: str) -> int | None:
    """Open `path` and flock it without waiting: the descriptor, or None when it is locked
    elsewhere or cannot be locked here."""
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _abandoned(path: str) -> bool:
    """True when no process holds the lock of this staging folder: its run was killed."""
    fd = _open_locked(path)
    if fd is None:
        return False
    os.close(fd)  # the owner is dead, and new staging folders wait for the folder lock we hold
    return True


@contextlib.contextmanager
def _folder_lock(out: Path, patience: float = 30.0) -> Iterator[bool]:
    """Hold an flock on the output folder itself for a short critical section; yields
    whether it is held. Other runs hold it for milliseconds (a sweep: its removals), so after
    `patience` seconds the holder is taken to be stopped or hung and the section runs
    unguarded, as it does where flock is missing: a scan never waits forever on another."""
    if fcntl is None:
        yield False
        return
    try:
        fd = os.open(out, os.O_RDONLY)
    except OSError:
        yield False
        return
    try:
        yield _lock_patiently(fd, out, patience)
    finally:
        os.close(fd)  # closing releases the lock


def _lock_patiently(fd: int, out: Path, patience: float) -> bool:
    deadline = time.monotonic() + patience
    pause = 0.005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                LOG.warning("another auditor process has held the lock of %s for %.0f s; going on without it",
                            out, patience)
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
        except OSError:
            return False  # e.g. NFS, where flock on a folder is refused


def _age(entry: os.DirEntry[str], now: float) -> float:
    try:
        return now - entry.stat(follow_symlinks=False).st_mtime
    except OSError:
        return 0.0


def _remove(entry: os.DirEntry[str]) -> bool:
    try:
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)
    except FileNotFoundError:
        return False  # its run failed and removed it meanwhile
    except OSError as exc:
        LOG.warning("could not remove %s, left by an interrupted run: %s", entry.path, exc.strerror or exc)
        return False
    return True
