"""Inventory sources: each collects one kind of estate into snapshot resources.

A source knows its API and the snapshot's resource envelope, nothing of rules or formats.
`collect()` never raises for trouble with the far end (refused connection, bad
certificate, wrong password, lost connection): it returns a failed Source with a one-line
reason, so one broken vCenter or subscription does not stop the others, and the scan can
say the picture is incomplete (exit 3).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..progress import Progress
from ..snapshot import Snapshot, Source, now_utc


@dataclass
class Collected:
    """What one source produced: the status of each vCenter or subscription it covers (an
    Azure scope covers many) and their resources."""

    sources: list[Source]
    resources: list[dict[str, Any]] = field(default_factory=list)


class InventorySource(ABC):
    """One vCenter, or one Azure scope (subscriptions or a management group), to collect from."""

    id: str

    @abstractmethod
    def collect(self, progress: Progress) -> Collected:
        """Collect everything; failures come back as a failed Source, not as exceptions."""


def collect_all(sources: list[InventorySource], progress: Progress | None = None,
                workers: int = 8) -> Snapshot:
    """Collect from every source in parallel into one snapshot, failed sources included."""
    progress = progress or Progress()
    started = now_utc()
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(sources)))) as pool:
        results = list(pool.map(lambda source: source.collect(progress), sources))
    progress.finish()
    return Snapshot(collected_at=started, sources=[source for r in results for source in r.sources],
                    resources=[resource for r in results for resource in r.resources])


__all__ = ["Collected", "InventorySource", "Progress", "collect_all"]
