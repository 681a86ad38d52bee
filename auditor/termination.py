"""How a scan meets SIGTERM (a Kubernetes deadline, a systemd stop): where it has workers,
writers or spill files to end, as on Ctrl-C; where it is committing a finished run, only
once that run is whole. Elsewhere SIGTERM keeps its default and ends the process at once."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


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
def sigterm_deferred() -> Iterator[Callable[[], None]]:
    """A function that holds SIGTERM back (this thread's mask) until the block ends: from the
    claim of the run folder to `latest`, a scan finishes what it started, and a SIGTERM that
    came meanwhile ends the process then, its work whole (the message "no output was
    written" is never false)."""
    held = False

    def defer() -> None:
        nonlocal held
        if hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread():
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            held = True
    try:
        yield defer
    finally:
        if held:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
