"""The operator registry.

An operator is registered with one decorator and is a *factory*: given the rule's constant
(already converted: a version parsed, a regex compiled, a date resolved against the scan
date), it returns a plain predicate on the observed value. The engine calls the factory
once per rule at load time and the predicate once per resource, which is the difference
from filters that re-read their configuration on every resource.

Absent values never reach a predicate: each operator declares what absent means
(`on_absent`, false unless said otherwise: only `absent` and `ne` are true).
List-valued observations: `in`, `not_in`, `regex`, `glob`, `port_overlaps`,
`cidr_contains` and `cidr_overlaps` test each element (NSG rules carry both singular and
plural fields); `contains`, `empty` and `not_empty` look at the list itself.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from ..baselines import LifecycleTable, MinimumTable, Table, compare_versions, parse_date, parse_version
from ..errors import BaselineError
from ..patterns import fullmatch, glob, linear, search

Predicate = Callable[[Any], bool]


@dataclass(frozen=True)
class CompileContext:
    """What constants are resolved against: the scan date for `today` and lifecycle dates."""

    today: date


@dataclass(frozen=True)
class Operator:
    """A named comparison: `factory(expected, context)` returns a predicate on the observed."""

    name: str
    factory: Callable[[Any, CompileContext], Predicate]
    takes_value: bool
    on_absent: bool
    summary: str
    wants_table: bool = False  # the value must be a baseline table (resolved by the engine)
    wants_days: bool = False  # with wants_table: the value also names a horizon in days
    unordered: bool = False  # compares lists as sets: evidence shows them sorted, so order is no change


OPERATORS: dict[str, Operator] = {}


def operator(name: str, summary: str, *, takes_value: bool = True, on_absent: bool = False,
             wants_table: bool = False, wants_days: bool = False, unordered: bool = False):
    """Register an operator factory under `name`."""
    def register(factory: Callable[[Any, CompileContext], Predicate]):
        OPERATORS[name] = Operator(name, factory, takes_value, on_absent, summary, wants_table, wants_days,
                                   unordered)
        return factory
    return register


def _each(predicate: Predicate) -> Predicate:
    """Lift a scalar predicate to lists: true when any element satisfies it."""
    def test(observed: Any) -> bool:
        if isinstance(observed, list):
            return any(predicate(element) for element in observed if element is not None)
        return predicate(observed)
    return test


# --- equality and membership ------------------------------------------------------------

@operator("eq", "observed equals the value")
def _eq(expected: Any, _: CompileContext) -> Predicate:
    return lambda observed: observed == expected


@operator("ne", "observed differs from the value (absent counts as different)",
          on_absent=True)
def _ne(expected: Any, _: CompileContext) -> Predicate:
    return lambda observed: observed != expected


def as_members(expected: Any) -> frozenset:
    if not isinstance(expected, list):
        raise ValueError("needs a list value")
    if any(isinstance(member, (dict, list)) for member in expected):
        raise ValueError("list members must be plain values")
    return frozenset(expected)


@operator("in", "observed (or any element of it) is one of the listed values")
def _in(expected: Any, _: CompileContext) -> Predicate:
    members = as_members(expected)

    def test(observed: Any) -> bool:
        if isinstance(observed, list):
            return any(_hashable(e) and e in members for e in observed)
        return _hashable(observed) and observed in members
    return test


@operator("not_in", "observed (and every element of it) is none of the listed values")
def _not_in(expected: Any, _: CompileContext) -> Predicate:
    members = as_members(expected)

    def test(observed: Any) -> bool:
        if isinstance(observed, list):
            return not any(_hashable(e) and e in members for e in observed)
        return not (_hashable(observed) and observed in members)
    return test


def _hashable(value: Any) -> bool:
    return not isinstance(value, (dict, list))


def _as_set(value: Any) -> frozenset | None:
    """A list of plain values (or one plain value) as a set; None for any other shape."""
    items = value if isinstance(value, list) else [value]
    if not all(_hashable(item) for item in items):
        return None
    return frozenset(items)


@operator("set_eq", "observed list holds exactly the listed values, in any order (repeats ignored)",
          unordered=True)
def _set_eq(expected: Any, _: CompileContext) -> Predicate:
    members = _as_set(expected)
    if members is None:
        raise ValueError("needs a list of plain values")
    return lambda observed: _as_set(observed) == members


@operator("set_ne", "observed list differs from the listed values as a set: order is no difference "
          "(absent counts as different)", on_absent=True, unordered=True)
def _set_ne(expected: Any, _: CompileContext) -> Predicate:
    members = _as_set(expected)
    if members is None:
        raise ValueError("needs a list of plain values")
    return lambda observed: _as_set(observed) != members


@operator("contains", "observed list holds the value, text has it as a substring, "
                      "or mapping has it as a key")
def _contains(expected: Any, _: CompileContext) -> Predicate:
    def test(observed: Any) -> bool:
        if isinstance(observed, list):
            return expected in observed
        if isinstance(observed, str):
            return isinstance(expected, str) and expected in observed
        if isinstance(observed, dict):
            return _hashable(expected) and expected in observed
        return False
    return test


# --- text patterns ----------------------------------------------------------------------

def _as_text(observed: Any) -> str | None:
    if isinstance(observed, str):
        return observed
    if isinstance(observed, (int, float)) and not isinstance(observed, bool):
        return str(observed)
    return None


@operator("regex", "observed text matches the regular expression (search, not full match; RE2 syntax, "
                   "linear time: no backreferences or lookaround)")
def _regex(expected: Any, _: CompileContext) -> Predicate:
    if not isinstance(expected, str):
        raise ValueError("needs a regular expression as text")
    pattern = linear(expected)  # RE2: a rule's pattern cannot make a scan take minutes

    def test(observed: Any) -> bool:
        text = _as_text(observed)
        return text is not None and search(pattern, text) is not None
    return _each(test)


@operator("glob", "observed text matches the shell pattern (*, ?, [..]), case-sensitive")
def _glob(expected: Any, _: CompileContext) -> Predicate:
    if not isinstance(expected, str):
        raise ValueError("needs a glob pattern as text")
    pattern = glob(expected)

    def test(observed: Any) -> bool:
        text = _as_text(observed)
        return text is not None and fullmatch(pattern, text)
    return _each(test)


# --- presence ---------------------------------------------------------------------------

@operator("present", "the path exists and is not null", takes_value=False)
def _present(_: Any, __: CompileContext) -> Predicate:
    return lambda observed: True


@operator("absent", "the path is missing or null", takes_value=False, on_absent=True)
def _absent(_: Any, __: CompileContext) -> Predicate:
    return lambda observed: False


@operator("empty", "observed is an empty text, list or mapping (absent is not empty)",
          takes_value=False)
def _empty(_: Any, __: CompileContext) -> Predicate:
    return lambda observed: observed == "" or observed == [] or observed == {}


@operator("not_empty", "observed is present and not an empty text, list or mapping",
          takes_value=False)
def _not_empty(_: Any, __: CompileContext) -> Predicate:
    return lambda observed: not (observed == "" or observed == [] or observed == {})


# --- numbers ----------------------------------------------------------------------------

def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _numeric(name: str, compare: Callable[[float, float], bool]) -> None:
    def factory(expected: Any, _: CompileContext) -> Predicate:
        limit = _number(expected)
        if limit is None:
            raise ValueError("needs a number")

        def test(observed: Any) -> bool:
            number = _number(observed)
            return number is not None and compare(number, limit)
        return test
    operator(name, f"observed number {name} the value (numeric text is read as a number)")(
        factory)


_numeric("lt", lambda a, b: a < b)
_numeric("le", lambda a, b: a <= b)
_numeric("gt", lambda a, b: a > b)
_numeric("ge", lambda a, b: a >= b)


# --- versions ---------------------------------------------------------------------------

def _versioned(name: str, wanted: Callable[[int], bool]) -> None:
    def factory(expected: Any, _: CompileContext) -> Predicate:
        limit = parse_version(expected)
        if limit is None:
            raise ValueError("needs a dotted version such as 7.0.3")
        memo: dict[Any, bool] = {}

        def test(observed: Any) -> bool:
            try:
                return memo[observed]
            except (KeyError, TypeError):
                pass
            version = parse_version(observed)
            result = version is not None and wanted(compare_versions(version, limit))
            if _hashable(observed) and len(memo) < 10_000:
                memo[observed] = result
            return result
        return test
    operator(name, "dotted versions compared numerically (6.7.0 < 6.10)")(factory)


_versioned("version_lt", lambda c: c < 0)
_versioned("version_le", lambda c: c <= 0)
_versioned("version_gt", lambda c: c > 0)
_versioned("version_ge", lambda c: c >= 0)


# --- dates ------------------------------------------------------------------------------

def _date_constant(expected: Any, context: CompileContext) -> date:
    if expected == "today":
        return context.today
    parsed = parse_date(expected)
    if parsed is None:
        raise ValueError("needs an ISO date (2027-10-11) or 'today'")
    return parsed


@operator("date_before", "observed ISO date is before the value ('today' = scan date)")
def _date_before(expected: Any, context: CompileContext) -> Predicate:
    limit = _date_constant(expected, context)

    def test(observed: Any) -> bool:
        when = parse_date(observed)
        return when is not None and when < limit
    return test


@operator("date_after", "observed ISO date is after the value ('today' = scan date)")
def _date_after(expected: Any, context: CompileContext) -> Predicate:
    limit = _date_constant(expected, context)

    def test(observed: Any) -> bool:
        when = parse_date(observed)
        return when is not None and when > limit
    return test


@operator("older_than_days", "observed ISO date is more than N days before the scan date")
def _older_than_days(expected: Any, context: CompileContext) -> Predicate:
    if not isinstance(expected, int) or isinstance(expected, bool) or expected < 0:
        raise ValueError("needs a whole number of days")
    limit = shift(context.today, -expected)

    def test(observed: Any) -> bool:
        when = parse_date(observed)
        return when is not None and when < limit
    return test


@operator("within_days", "observed ISO date is between the scan date and N days after it")
def _within_days(expected: Any, context: CompileContext) -> Predicate:
    if not isinstance(expected, int) or isinstance(expected, bool) or expected < 0:
        raise ValueError("needs a whole number of days")
    start, end = context.today, shift(context.today, expected)

    def test(observed: Any) -> bool:
        when = parse_date(observed)
        return when is not None and start <= when <= end
    return test


# --- networks ---------------------------------------------------------------------------

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Azure service tags and wildcards that mean "any address": a rule asking whether a
# prefix covers an address must treat them as the whole address space.
_ANYWHERE = {"*", "any", "internet", "0.0.0.0/0", "::/0", "0.0.0.0", "::"}
_EVERY_NETWORK = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


@lru_cache(maxsize=65_536)
def _networks(text: str) -> tuple[Network, ...]:
    if text.strip().lower() in _ANYWHERE:
        return _EVERY_NETWORK
    try:
        return (ipaddress.ip_network(text.strip(), strict=False),)
    except ValueError:
        return ()  # a service tag like VirtualNetwork: not an address range


def _constant_networks(expected: Any) -> tuple[Network, ...]:
    values = expected if isinstance(expected, list) else [expected]
    networks: list[Network] = []
    for value in values:
        if not isinstance(value, str):
            raise ValueError("needs an address or CIDR as text (or a list of them)")
        found = _networks(value)
        if not found:
            raise ValueError(f"'{value}' is not an IP address or CIDR")
        networks.extend(found)
    return tuple(networks)


@operator("cidr_contains", "observed prefix contains the value's address or prefix "
                           "('*', 'Internet' and 0.0.0.0/0 contain everything)")
def _cidr_contains(expected: Any, _: CompileContext) -> Predicate:
    wanted = _constant_networks(expected)

    def test(observed: Any) -> bool:
        if not isinstance(observed, str):
            return False
        return any(have.version == want.version and want.subnet_of(have)  # type: ignore[arg-type]
                   for have in _networks(observed) for want in wanted)
    return _each(test)


@operator("cidr_overlaps", "observed prefix shares any address with the value")
def _cidr_overlaps(expected: Any, _: CompileContext) -> Predicate:
    wanted = _constant_networks(expected)

    def test(observed: Any) -> bool:
        if not isinstance(observed, str):
            return False
        return any(have.version == want.version and have.overlaps(want)  # type: ignore[arg-type]
                   for have in _networks(observed) for want in wanted)
    return _each(test)


# --- ports ------------------------------------------------------------------------------

PortRanges = tuple[tuple[int, int], ...]


def shift(day: date, days: int) -> date:
    """`day` moved by `days`, held at the calendar's ends (`--as-of 9999-12-31` plus a
    warning window is still a date, not an OverflowError)."""
    try:
        return day + timedelta(days=days)
    except OverflowError:
        return date.max if days > 0 else date.min


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 5


@lru_cache(maxsize=65_536)
def _port_text(text: str) -> PortRanges:
    text = text.strip()
    if text in ("*", "any", "Any"):
        return ((0, 65535),)
    ranges = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        # ASCII digits only: `"²".isdigit()` is true, and int() refuses it
        if not _is_number(low) or (dash and not _is_number(high)):
            return ()
        start, end = int(low), int(high) if dash else int(low)
        if start > end:
            start, end = end, start
        ranges.append((start, end))
    return tuple(ranges)


def parse_ports(value: Any) -> PortRanges:
    """Port ranges of `22`, `"3380-3390"`, `"*"`, or a list of them; () if none parse."""
    if isinstance(value, bool):
        return ()
    if isinstance(value, int):
        return ((value, value),)
    if isinstance(value, str):
        return _port_text(value)
    if isinstance(value, list):
        return tuple(r for element in value for r in parse_ports(element))
    return ()


@operator("port_overlaps", "observed ports ('*', 22, '3380-3390', lists) include any of "
                           "the value's ports")
def _port_overlaps(expected: Any, _: CompileContext) -> Predicate:
    wanted = parse_ports(expected)
    if not wanted:
        raise ValueError("needs ports such as 22, '3380-3390' or a list of them")

    def test(observed: Any) -> bool:
        return any(low <= w_high and w_low <= high
                   for low, high in parse_ports(observed) for w_low, w_high in wanted)
    return test


# --- lifecycle --------------------------------------------------------------------------

_LIFECYCLE_CACHE: dict[int, tuple[Table, LifecycleTable]] = {}


def lifecycle_table(table: Table) -> LifecycleTable:
    """The compiled lookup for a baseline table, built once however many rules use it."""
    cached = _LIFECYCLE_CACHE.get(id(table))
    if cached is None or cached[0] is not table:
        cached = (table, LifecycleTable(table))
        _LIFECYCLE_CACHE[id(table)] = cached
    return cached[1]


def _lifecycle_operator(name: str, summary: str, holds: Callable[[Any, date], bool]) -> None:
    """Register an operator that looks the observed value up in a lifecycle table and asks
    `holds(row, scan date)`; values the table does not know are never a match."""
    def factory(table: Table, context: CompileContext) -> Predicate:
        lifecycle = lifecycle_table(table)
        today = context.today

        def test(observed: Any) -> bool:
            row = lifecycle.lookup(observed)
            return row is not None and holds(row, today)
        return test
    operator(name, summary, wants_table=True)(factory)


_lifecycle_operator("past_eol", "the version's end of general support in the baseline table is before the scan date",
                    lambda row, today: row.end_of_support < today)
_lifecycle_operator("past_extended_support", "past end of general support and past the end of extended support "
                    "or ESU (or none exists)",
                    lambda row, today: row.end_of_support < today
                    and (row.extended_until is None or row.extended_until < today))
_lifecycle_operator("in_extended_support", "past end of general support but still inside extended support or ESU",
                    lambda row, today: row.end_of_support < today
                    and row.extended_until is not None and row.extended_until >= today)


@operator("eol_within_days", "end of general support in the baseline table is between the scan date and N days "
          "after it; value {baseline: TABLE, days: N or {baseline: KEY}}", wants_table=True, wants_days=True)
def _eol_within_days(value: tuple[Table, int], context: CompileContext) -> Predicate:
    table, days = value
    lifecycle = lifecycle_table(table)
    today, horizon = context.today, shift(context.today, days)

    def test(observed: Any) -> bool:
        row = lifecycle.lookup(observed)
        return row is not None and today <= row.end_of_support <= horizon
    return test


@operator("below_minimum", "observed dotted version is below the minimum the table gives for its release line "
          "(the longest key that is a prefix of it: '7.0' covers '7.0.3.21477706'); a row is a version "
          "or {minimum, advisory, source}; lines the table lacks never match", wants_table=True)
def _below_minimum(table: Table, _: CompileContext) -> Predicate:
    try:
        minimums = MinimumTable(table)
    except BaselineError as error:
        raise ValueError(error.message) from None
    return lambda observed: minimums.below(observed) is True


@operator("unknown_to", "the baseline table has no row for the observed value",
          wants_table=True)
def _unknown_to(table: Table, _: CompileContext) -> Predicate:
    lifecycle = lifecycle_table(table)
    return lambda observed: lifecycle.lookup(observed) is None
