"""The bundled sample estate: what `auditor scan` reads when given no snapshot."""

from __future__ import annotations

from pathlib import Path

SAMPLE_SNAPSHOT = Path(__file__).with_name("estate.json")
