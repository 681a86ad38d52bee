"""Shared helpers: compile rules from YAML text, build resources, scan the sample estate."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from auditor.baselines import load_baselines
from auditor.bundled import bundled_baselines_dir
from auditor.engine.evaluate import evaluate
from auditor.engine.rules import compile_rules, load_rules
from auditor.findings import Finding

if TYPE_CHECKING:
    from tests.azurite import Azurite

AS_OF = date(2026, 11, 25)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need_peer(available: bool, reason: str) -> None:
    """Skip when a real peer is missing, except in CI, where a missing peer is a failure."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


RULE_HEAD = """
rules:
  - id: T-001
    title: test rule
    severity: high
    category: other
    resource: {resource}
    description: d
    remediation: r
"""


def rule_file(tmp_path: Path, body: str, resource: str = "azure:microsoft.network/routetables") -> Path:
    """A one-rule file with the metadata filled in; `body` is the rest of the rule (indented 4)."""
    text = RULE_HEAD.format(resource=resource) + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ") + "\n"
    path = tmp_path / "rule.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def run_rule(tmp_path: Path, body: str, resources: list[dict[str, Any]], *,
             resource: str = "azure:microsoft.network/routetables", baseline: str | None = None,
             today: date = AS_OF) -> list[Finding]:
    """Load, compile and evaluate one rule over `resources`."""
    ruleset = load_rules([rule_file(tmp_path, body, resource)])
    paths = [bundled_baselines_dir()]
    if baseline is not None:
        paths.append(write(tmp_path, "baseline.yaml", baseline))
    compiled = compile_rules(ruleset, load_baselines(paths), today)
    return evaluate(compiled, resources)


def thing(name: str = "r1", **native: Any) -> dict[str, Any]:
    """An Azure-shaped test resource (a route table: no fact stage reads those)."""
    resource = {"id": f"/subscriptions/s/providers/test/things/{name}", "name": name,
                "cloud": "azure", "type": "microsoft.network/routetables", "source": "s", "tags": {}}
    resource.update(native)
    return resource


ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"  # everything the tests read: they pass with nothing beside the clone


@pytest.fixture(scope="session")
def sample_report():
    """The sample estate scanned with the shipped packs as of AS_OF."""
    from auditor.sample import SAMPLE_BASELINE, SAMPLE_SNAPSHOT
    from auditor.scan import load_rule_context, load_snapshots, scan_snapshot
    return scan_snapshot(load_snapshots([SAMPLE_SNAPSHOT]), load_rule_context(None, [SAMPLE_BASELINE], AS_OF), AS_OF)


def multitool_binary() -> Path | None:
    """Microsoft's SARIF multitool as installed by .ci/run (its native binary: the npm shim
    runs through a shell, which splits `--rule-kind Sarif;Ghas` at the semicolon)."""
    for base in (ROOT / "tests" / ".npm", ROOT):
        binary = base / "node_modules" / "@microsoft" / "sarif-multitool-linux" / "Sarif.Multitool"
        if binary.exists():
            return binary
    return None


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Microsoft's Blob Storage emulator (tests/azurite.py), started once for the whole session:
    the blob and fan-out tests each take a container of their own in it."""
    from tests.azurite import start  # here, not at the top: tests/azurite.py imports this module

    emulator = start(tmp_path_factory.mktemp("azurite"))
    yield emulator
    emulator.stop()


CHROMIUM = Path(os.environ.get("AUDITOR_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-first-run", "--disable-component-update", "--disable-sync", "--disable-quic"]
