"""Errors a user can cause, and the exit codes the CLI maps them to.

Exit codes are part of the CLI contract (see README):
  0  no finding at or above the --fail-on threshold
  1  findings at or above the threshold (or, with --compare, new findings)
  2  usage or input error (bad YAML, bad snapshot, unknown rule, unreadable file)
  3  collection incomplete: at least one source failed, the picture is partial
 70  internal error: a bug in auditor (one line; AUDITOR_TRACEBACK=1 shows the traceback)
130  interrupted (Ctrl-C); 143  terminated (SIGTERM): the history and `latest` as they were
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_INPUT_ERROR = 2
EXIT_INCOMPLETE = 3
EXIT_INTERNAL = 70  # EX_SOFTWARE of sysexits.h
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM


class AuditorError(Exception):
    """A failure the user can act on: printed as one line, never as a traceback."""

    exit_code = EXIT_INPUT_ERROR

    def __init__(self, message: str, *, where: str | None = None, line: int | None = None):
        self.message = message
        self.where = where
        self.line = line
        super().__init__(self.one_line())

    def lines(self) -> list[str]:
        """Every problem as one line (most errors have one)."""
        return [self.one_line()]

    def one_line(self) -> str:
        """The message as `file:line: what is wrong`, the form editors and CI logs link."""
        if self.where is None:
            return self.message
        if self.line is None:
            return f"{self.where}: {self.message}"
        return f"{self.where}:{self.line}: {self.message}"


class InputError(AuditorError):
    """A file or argument we were given is unusable (exit 2)."""


class RuleError(InputError):
    """A rule pack breaks the rule format; reported at load time, never at evaluation."""


class BaselineError(InputError):
    """A baseline file is malformed or lacks a table or key a rule uses."""


class SnapshotError(InputError):
    """A snapshot is not JSON, not ours, or of a schema version we cannot read."""


class CollectionError(AuditorError):
    """A live source could not be read at all (exit 3 when others succeeded)."""

    exit_code = EXIT_INCOMPLETE
