"""The bundled sample estate: what `auditor scan` reads when given no snapshot."""

from __future__ import annotations

from pathlib import Path

SAMPLE_SNAPSHOT = Path(__file__).with_name("estate.json")
# its segmentation zones and entitlements, added to the baselines when the sample is scanned
SAMPLE_BASELINE = Path(__file__).with_name("baselines.yaml")


def is_sample(paths: list[Path]) -> bool:
    """Whether the bundled sample estate is among the snapshot files to scan."""
    sample = SAMPLE_SNAPSHOT.resolve()
    return any(Path(path).resolve() == sample for path in paths)
