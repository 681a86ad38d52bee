"""Regular expressions and shell globs that run in time linear in the text they read.

Names, tags and OS descriptions come from whoever can create a VM, and rule files from
whoever can open a pull request. Python's `re` backtracks: `^([a-z0-9]+-?)+$` takes 52 s on
a 29-character name, and `ubuntu\\D*?(\\d{2})` searched over `"ubuntu" * 10000` is quadratic.
RE2 (Google's engine, through the `google-re2` bindings) guarantees linear time; the price is
that backreferences and lookaround are refused, which a rule is told at load time.

Measured on this project's machines: RE2 costs about 1.5 µs a search on a short OS name
against 0.4 µs for `re`, and stays linear where `re` took minutes.
"""

from __future__ import annotations

from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would otherwise print its own parse errors to stderr

Pattern = Any  # re2._Regexp: search / match / fullmatch like re.Pattern


def linear(pattern: str, *, ignore_case: bool = False) -> Pattern:
    """Compile `pattern` (RE2 syntax, close to Python's for everything but backreferences
    and lookaround); a pattern RE2 cannot run raises ValueError saying why."""
    try:
        return re2.compile(f"(?i){pattern}" if ignore_case else pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(f"invalid regular expression: {reason} (RE2 syntax, which runs in linear time: no "
                         "backreferences or lookaround)") from None


def glob_pattern(glob: str) -> str:
    """The RE2 expression that matches what the shell pattern `glob` matches, whole:
    `*` any text, `?` one character, `[abc]` / `[!abc]` / `[a-z]` one of (or none of) a set."""
    parts: list[str] = []
    index, length = 0, len(glob)
    while index < length:
        char = glob[index]
        index += 1
        if char == "*":
            if not parts or parts[-1] != ".*":  # `**` is `*`
                parts.append(".*")
        elif char == "?":
            parts.append(".")
        elif char == "[":
            end = index + 1 if index < length and glob[index] == "!" else index
            end = glob.find("]", end + 1 if end < length and glob[end] == "]" else end)  # `[]]` holds `]`
            if end < 0:  # no closing bracket: a literal `[`, as fnmatch reads it
                parts.append(r"\[")
                continue
            members = glob[index:end]
            index = end + 1
            negate = members.startswith("!")
            members = members[1:] if negate else members
            escaped = "".join("\\" + c if c in "\\]^[" else c for c in members)
            parts.append(f"[{'^' if negate else ''}{escaped}]")
        else:
            parts.append(re2.escape(char))
    return "(?s:" + "".join(parts) + ")"


def glob(pattern: str, *, ignore_case: bool = False) -> Pattern:
    """A compiled glob; use its `fullmatch`."""
    return linear(glob_pattern(pattern), ignore_case=ignore_case)


# Searches already made, by (pattern, text): the same port group, setting key or guest name
# is searched on thousands of resources, and the bindings cost some 3 µs a search where a look
# here costs a tenth of that. Bounded in entries and in the length of the texts kept.
_SEARCHES: dict[tuple[Pattern, str], Any] = {}
_SEARCHES_KEPT = 65_536
_SEARCH_TEXT_KEPT = 256


def search(pattern: Pattern, text: str) -> Any:
    """`pattern.search(text)`, treating text RE2 cannot encode (a lone surrogate) as no match."""
    key = (pattern, text)
    found = _SEARCHES.get(key, _SEARCHES)
    if found is not _SEARCHES:
        return found
    try:
        found = pattern.search(text)
    except UnicodeEncodeError:
        found = None
    if len(text) <= _SEARCH_TEXT_KEPT:
        if len(_SEARCHES) >= _SEARCHES_KEPT:
            _SEARCHES.clear()
        _SEARCHES[key] = found
    return found


def fullmatch(pattern: Pattern, text: str) -> bool:
    """Whether `pattern` matches all of `text` (false for text RE2 cannot encode)."""
    try:
        return pattern.fullmatch(text) is not None
    except UnicodeEncodeError:
        return False
