"""Drift between snapshots as text (terminals, CI logs), JSON (scripts) and HTML (people)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..drift import Drift
from ..jsonio import to_json
from ..text import for_terminal
from .html import TEMPLATES

DRIFT_FORMATS = ("text", "json", "html")


def _short(value: Any, limit: int = 120) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else value
    except (RecursionError, ValueError):  # nested past what the encoder walks
        text = "(nested too deeply to show)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _unavailable(source: dict[str, Any]) -> str:
    if source.get("status") == "not collected":
        return "was not collected in the new snapshot"
    return f"failed in the {source['snapshot']} snapshot ({source['error']})"


def render_text(drift: Drift) -> str:
    """One line per added/removed resource and per changed path; names come from the estate,
    so each line is made terminal-safe (a name cannot forge a line of its own)."""
    lines = [for_terminal(f"drift from {drift.old_collected_at} to {drift.new_collected_at}: {len(drift.added)} "
                          f"added, {len(drift.removed)} removed, {len(drift.changed)} changed")]
    lines += [for_terminal(f"! source {s['id']} {_unavailable(s)}: its resources were not compared")
              for s in drift.unavailable]
    lines += [for_terminal(f"+ {r['type']} {r['name']} ({r['id']})") for r in drift.added]
    lines += [for_terminal(f"- {r['type']} {r['name']} ({r['id']})") for r in drift.removed]
    for resource in drift.changed:
        lines.append(for_terminal(f"~ {resource.type} {resource.name} ({resource.id})"))
        for change in resource.changes:
            lines.append(for_terminal(f"    {change.path}: {_short(change.old)} -> {_short(change.new)}"))
    return "\n".join(lines) + "\n"


def render_json(drift: Drift) -> bytes:
    """The drift as a JSON document (schema `auditor.drift`, version 1)."""
    return to_json({"schema": "auditor.drift", "schema_version": 1, **asdict(drift)}, indent=True) + b"\n"



def render_html(drift: Drift) -> bytes:
    """A self-contained page, autoescaped: names from the estate are text, never markup."""
    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    page = environment.get_template("drift.html.j2").render(drift=drift, short=lambda v: _short(v, 400))
    return page.encode("utf-8")
