"""Progress on a terminal for the long steps of a run."""

from __future__ import annotations

import os
import sys
import threading
from typing import TextIO


class Progress:
    """What a long run is doing, on one line of a terminal: objects collected per source
    while collecting, then the step under way (loading, evaluating, writing); silent in CI
    and in pipes, where the log (--log-level info) says the same with timestamps."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None):
        self.stream = stream or sys.stderr
        if enabled is None:
            enabled = self.stream.isatty() and not os.environ.get("CI")
        self.enabled = enabled
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        self.shown = False

    def update(self, source: str, count: int) -> None:
        """`source` has now collected `count` objects."""
        with self.lock:
            self.counts[source] = count
            if self.enabled:
                line = "  ".join(f"{name}: {n:,}" for name, n in self.counts.items())
                self.stream.write(f"\r\x1b[Kcollecting {line}")
                self.stream.flush()

    def finish(self) -> None:
        """End the progress line."""
        if self.enabled and self.counts:
            self.stream.write("\n")
            self.stream.flush()

    def stage(self, text: str) -> None:
        """Show the step under way (replacing the collection counts once collection ended)."""
        with self.lock:
            if self.enabled:
                self.stream.write(f"\r\x1b[K{text}")
                self.stream.flush()
                self.shown = True

    def done(self) -> None:
        """Clear the line before the summary is printed."""
        with self.lock:
            if self.enabled and self.shown:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self.shown = False
