"""Atomic file output: a crash or a bad input never leaves half a report or snapshot."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import InputError


def write_bytes_atomic(path: Path, payload: bytes) -> None:
    """Write `payload` to `path` via a temp file in the same folder and a rename; a path that
    cannot be written (a folder, a missing or read-only place) is an InputError naming it."""
    with write_stream_atomic(path) as stream:
        stream.write(payload)


@contextlib.contextmanager
def write_stream_atomic(path: Path) -> Iterator[IO[bytes]]:
    """A binary stream whose bytes replace `path` only once the block ends without error (a
    temp file in the same folder, fsync, rename), for outputs too large to hold in memory."""
    if path.is_dir():
        raise InputError("is a directory: name a file to write", where=str(path))
    if path.is_symlink() or (path.exists() and not path.is_file()):
        # a device, a FIFO or a link would be replaced by the rename, not written through
        raise InputError("is not a regular file: name a file to write", where=str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise InputError(f"cannot write here: {exc.strerror}", where=str(path)) from None
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write UTF-8 `text` to `path` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))
