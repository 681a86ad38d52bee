"""How a scan meets SIGTERM (a Kubernetes deadline, a systemd stop): where it has workers,
writers or spill files to end, as on Ctrl-C; while `latest` moves, once it has. Elsewhere
SIGTERM keeps its default and ends the process at once."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
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
def sigterm_held() -> Iterator[None]:
    """SIGTERM held back (this thread's mask) while the block runs, for a step too short to
    stop halfway: a SIGTERM that came meanwhile ends the process once it is done. Only for
    steps that cannot wait on anything (a lock, a peer), or the SIGTERM would wait too."""
    held = hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread()
    if held:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        if held:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
