"""Reading user-supplied files with errors a person can act on (one line, file named)."""

from __future__ import annotations

from pathlib import Path

from .errors import InputError


def read_input(path: Path, what: str, error: type[InputError] = InputError) -> bytes:
    """The bytes of `path`; a missing, unreadable or folder path raises `error` naming it."""
    where = str(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise error(f"{what} not found", where=where) from None
    except IsADirectoryError:
        raise error(f"is a directory, expected a {what}", where=where) from None
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror}", where=where) from None
