"""Text from the estate made safe for where it is shown.

Names, tags and rule values are chosen by whoever can create a VM, a tag or an NSG rule.
Printed as they are, a newline in a VM name forges a line of its own in a CI log
(`::error title=auditor::all clear` is a GitHub Actions command), an escape sequence
rewrites the terminal, and a control byte makes an XML report unreadable. Every text that
reaches a terminal, a log or an XML file passes through one of these functions, which show
such characters visibly instead of obeying or dropping them.
"""

from __future__ import annotations

import re

# C0 and C1 controls (newline and tab included: one finding is one line), DEL, the Unicode
# line and paragraph separators, bidirectional overrides and isolates (they reorder what a
# reader sees: "Trojan Source"), and lone surrogates, which no UTF-8 stream can carry.
_TERMINAL_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069"
                              "\ud800-\udfff]")
# characters XML 1.0 forbids (https://www.w3.org/TR/xml/#charsets), plus the ones above that
# would forge lines in a CI system's view of the JUnit file
_XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e"
                         "\u2066-\u2069\ud800-\udfff\ufffe\uffff]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_terminal(text: object) -> str:
    """One line fit for a terminal or a CI log: control characters, newlines and
    direction overrides shown as `\\xNN` / `\\uNNNN`, never obeyed."""
    return _TERMINAL_UNSAFE.sub(_escape, str(text))


def for_xml(text: object) -> str:
    """Text an XML 1.0 file can hold: forbidden characters shown as `\\xNN` / `\\uNNNN`.
    Newlines and tabs stay (multi-line failure text is legitimate in JUnit)."""
    return _XML_UNSAFE.sub(_escape, str(text))


def without_lone_surrogates(text: str) -> str:
    """`text` with each unpaired UTF-16 surrogate replaced by U+FFFD.

    JSON's `\\ud800` escapes decode to such code points, which no UTF-8 output can encode;
    they can only come from a broken or hostile writer, and the replacement keeps the rest
    of the resource usable."""
    return _LONE_SURROGATE.sub("\ufffd", text)


def path_text(path: object) -> str:
    """A file path as text every report can hold: bytes that are not UTF-8 in a file name
    (which Python keeps as lone surrogates) shown as U+FFFD."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


TEXT_LIMIT = 1024  # characters of one estate value in a finding: real names are under 260


def shortened(text: str, limit: int = TEXT_LIMIT) -> str:
    """`text`, or its first `limit` characters and how many were left out: a 100,000-character
    VM name must not make every finding about it, and every report, that long."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def shortened_key(text: str, limit: int = TEXT_LIMIT) -> str:
    """An identifying key cut to `limit` characters, unique still: a digest of the whole
    stands for what was cut, so two long names that share a beginning stay two keys."""
    if len(text) <= limit:
        return text
    import hashlib

    return f"{text[:limit]}…{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"


def bounded(value: object, depth: int = 0) -> object:
    """Evidence fit for a report: long texts shortened, long lists cut at 20 items, and
    nothing deeper than 6 levels (JSON writers have depth limits, and evidence needs none)."""
    if isinstance(value, str):
        return shortened(value)
    if depth >= 6 and isinstance(value, (list, dict)):
        return "…"
    if isinstance(value, list):
        kept = [bounded(item, depth + 1) for item in value[:20]]
        return [*kept, f"... {len(value) - 20} more"] if len(value) > 20 else kept
    if isinstance(value, dict):
        return {shortened(str(key)): bounded(item, depth + 1) for key, item in value.items()}
    return value


def plural(count: int, noun: str) -> str:
    """`1 rule`, `2 rules`, `1,234 findings`."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def first_few(names: list[str], shown: int = 5) -> str:
    """The first `shown` names, and how many more: a line that names every failed source of
    100,000 is a gigabyte of reports."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
