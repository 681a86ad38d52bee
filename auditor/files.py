"""Reading user-supplied files with errors a person can act on (one line, file named), and
within limits that a real estate never reaches and an attack always does.

- Only regular files are read: a FIFO would hang the scan, `/dev/zero` would fill memory.
- Rule, baseline, waiver, config and password files: at most `TEXT_FILE_LIMIT` bytes.
- Snapshots and earlier findings: at most `--max-input-size` bytes (default
  `DEFAULT_INPUT_LIMIT`), counted after gzip decompression, so a small `.json.gz` cannot
  expand into gigabytes.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import zlib
from pathlib import Path
from typing import Any

from .errors import InputError

MIB = 1024 * 1024
GIB = 1024 * MIB
# rule packs, baselines, waivers and config files are hand-written: the shipped packs are
# under 100 KiB together
TEXT_FILE_LIMIT = 64 * MIB
# a 100,000-resource estate is about 200 MiB of snapshot JSON; the default leaves room for
# a million resources
DEFAULT_INPUT_LIMIT = 2 * GIB
GZIP_MAGIC = b"\x1f\x8b"
# An inventory has a JSON value for every ~20 bytes or more (names, ids, nested ARM
# properties; a Resource SKUs answer one for every ~30); `[[],[],...]` has one for every 3,
# and each costs Python ~60 bytes, so 200 MiB of it would take 5 GiB. A document denser than
# this is refused before it is parsed.
MAX_VALUES_PER_BYTE = 1 / 5


def json_values(text: str | bytes) -> int:
    """About how many JSON values `text` holds (a comma or an opening bracket each)."""
    if isinstance(text, str):
        return text.count(",") + text.count("[") + text.count("{")
    return text.count(b",") + text.count(b"[") + text.count(b"{")


def too_dense(values: int, size: int) -> bool:
    """Whether `size` bytes holding `values` JSON values (see `json_values`) are far denser
    than any inventory: they would take many times their size in memory."""
    return values > 10_000 and values > size * MAX_VALUES_PER_BYTE


def size_text(size: int) -> str:
    """A byte count as people write it (`2 GiB`, `512 MiB`, `1,234 bytes`)."""
    for unit, name in ((GIB, "GiB"), (MIB, "MiB"), (1024, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit:,} {name}"
    return f"{size:,} bytes"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def open_regular(path: Path, what: str, error: type[InputError] = InputError) -> tuple[int, os.stat_result]:
    """An open descriptor of the regular file `path` and its status; a missing, unreadable or
    special file (a folder, a FIFO, a device) raises `error` naming it."""
    where = str(path)
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer for ever
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise error(f"{what} not found", where=where) from None
    except IsADirectoryError:
        raise error(f"is a directory, expected a {what}", where=where) from None
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror}", where=where) from None
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode):
        os.close(fd)
        if stat.S_ISDIR(status.st_mode):
            raise error(f"is a directory, expected a {what}", where=where)
        raise error(f"is a {_kind(status.st_mode)}, not a regular file: expected a {what}", where=where)
    return fd, status


def read_input(path: Path, what: str, error: type[InputError] = InputError, *,
               limit: int = TEXT_FILE_LIMIT, raise_with: str = "") -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them.

    A missing, unreadable, special or oversized file raises `error` naming it; `raise_with`
    tells the user how to raise the limit where they can."""
    where = str(path)
    fd, status = open_regular(path, what, error)
    if status.st_size > limit:  # refused before a byte is read
        os.close(fd)
        raise error(over_limit(what, limit, raise_with), where=where)
    with os.fdopen(fd, "rb") as handle:
        try:
            payload = _read_at_most(handle, limit)
        except OSError as exc:
            raise error(f"cannot read {what}: {exc.strerror}", where=where) from None
    if payload is None:  # the file grew past the limit while it was read
        raise error(over_limit(what, limit, raise_with), where=where)
    return payload


_CHUNK = 1 << 20


def _read_at_most(stream: Any, limit: int) -> bytes | None:
    """Up to `limit` bytes of `stream`, or None if it holds more. Read in chunks: a single
    `read(limit + 1)` reserves the whole limit up front, whatever the stream holds."""
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = stream.read(min(_CHUNK, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            return None


def decompress_bounded(payload: bytes, where: str, what: str, error: type[InputError] = InputError, *,
                       limit: int = DEFAULT_INPUT_LIMIT, raise_with: str = "") -> bytes:
    """`payload` itself, or, when it is gzip data, its decompressed bytes, stopping as soon
    as they pass `limit` (a gzip bomb is refused after `limit` bytes, not after memory runs out)."""
    if payload[:2] != GZIP_MAGIC:
        return payload
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(payload)) as stream:
            data = _read_at_most(stream, limit)
    except (OSError, EOFError, zlib.error) as exc:
        raise error(f"broken gzip data ({exc})", where=where) from None
    if data is None:
        raise error(over_limit(f"{what} (decompressed)", limit, raise_with), where=where)
    return data


def over_limit(what: str, limit: int, raise_with: str) -> str:
    """What to say of `what` past `limit` bytes, and how to raise the limit."""
    hint = f"; raise the limit with {raise_with}" if raise_with else ""
    return f"{what} is larger than the limit of {size_text(limit)}{hint}"
