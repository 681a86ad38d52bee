"""Writing a scan's outputs: `OUT/<timestamp>/` plus `OUT/latest` pointing at it.

Every file is rendered in memory first, then written into a hidden staging folder that is
renamed into place, and only then does `latest` move (an atomic symlink swap). A failure
at any step leaves earlier runs and the previous `latest` untouched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from .atomic import write_bytes_atomic
from .errors import InputError
from .findings import ScanReport
from .formats import formats


def write_run(report: ScanReport, out: Path, names: list[str]) -> Path:
    """Write the outputs of one run; returns the run folder.

    Formats are rendered and written one at a time into the staging folder, so memory
    holds one rendered file at most; the folder only appears under its name when all are
    written.
    """
    available = formats()
    prepare_output(out)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run = out / stamp
    suffix = 1
    while run.exists():
        suffix += 1
        run = out / f"{stamp}-{suffix}"
    staging = Path(tempfile.mkdtemp(prefix=f".{run.name}.", dir=out))
    try:
        for name in names:
            fmt = available[name]
            write_bytes_atomic(staging / fmt.filename, fmt.render(report))
        os.chmod(staging, 0o755)
        os.rename(staging, run)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    point_latest(out, run)
    return run


def prepare_output(out: Path) -> None:
    """Create the output folder, or fail with one line before any work is done."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder: {exc.strerror}", where=str(out)) from None
    if not os.access(out, os.W_OK):
        raise InputError("output folder is not writable", where=str(out))


def point_latest(out: Path, run: Path) -> None:
    """Make `out/latest` refer to `run`: a symlink swapped atomically, or a copy."""
    latest = out / "latest"
    link = out / f".latest.{os.getpid()}"
    try:
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(run.name, link)
        if latest.is_dir() and not latest.is_symlink():
            shutil.rmtree(latest)  # an old copy from a filesystem without symlinks
        os.replace(link, latest)
    except OSError:
        # no symlinks here (some Windows setups): copy instead
        if link.is_symlink():
            link.unlink()
        staging = Path(tempfile.mkdtemp(prefix=".latest.", dir=out))
        for file in run.iterdir():
            shutil.copy2(file, staging / file.name)
        if latest.is_symlink() or latest.is_file():
            latest.unlink()
        elif latest.exists():
            shutil.rmtree(latest)
        os.rename(staging, latest)
