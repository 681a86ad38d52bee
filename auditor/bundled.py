"""Where the shipped rule packs and baselines are, in a checkout and in an installed wheel."""

from __future__ import annotations

import os
from pathlib import Path

from .text import path_text

_PACKAGE = Path(__file__).resolve().parent


def bundled_rules_dir() -> Path:
    """The shipped rules/ folder: inside the wheel, or at the top of a source checkout."""
    installed = _PACKAGE / "_bundled" / "rules"
    return installed if installed.is_dir() else _PACKAGE.parent / "rules"


def bundled_baselines_dir() -> Path:
    """The shipped baselines (rules/baselines)."""
    return bundled_rules_dir() / "baselines"


def display_path(path: Path) -> str:
    """How a rule or baseline file is named in messages and reports.

    Shipped files read `rules/<file>` wherever auditor is installed, so SARIF locations
    and fingerprints do not depend on the install path; user files are named relative to
    the working folder when they are under it.
    """
    resolved = path.resolve()
    rules = bundled_rules_dir().resolve()
    if resolved.is_relative_to(rules):
        return (Path("rules") / resolved.relative_to(rules)).as_posix()
    try:
        shown = Path(os.path.relpath(resolved)).as_posix() if resolved.is_relative_to(
            Path.cwd().resolve()) else resolved.as_posix()
    except ValueError:
        shown = resolved.as_posix()
    return path_text(shown)
