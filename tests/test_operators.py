"""Each v1 operator, including what it does with absent values and with lists."""

from __future__ import annotations

from datetime import date

import pytest

from auditor.baselines import Table
from auditor.engine.operators import OPERATORS, CompileContext, parse_ports

CTX = CompileContext(today=date(2026, 11, 25))
V1 = ["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "contains", "regex", "glob", "present", "absent", "empty", "not_empty", "version_lt", "version_le", "version_gt", "version_ge", "date_before", "date_after", "older_than_days", "cidr_contains", "cidr_overlaps", "port_overlaps", "past_eol"]


def check(op: str, expected, observed) -> bool:
    return OPERATORS[op].factory(expected, CTX)(observed)


def test_every_v1_operator_is_registered():
    assert set(V1) <= set(OPERATORS)


def test_absent_is_false_except_absent_and_ne():
    true_on_absent = {name for name, op in OPERATORS.items() if op.on_absent}
    assert true_on_absent == {"absent", "ne", "set_ne"}


@pytest.mark.parametrize("op, expected, observed, result", [
    ("eq", "Allow", "Allow", True), ("eq", "Allow", "allow", False), ("eq", 22, "22", False),
    ("ne", "Allow", "Deny", True), ("ne", "Allow", "Allow", False),
    ("lt", 5, 4, True), ("lt", 5, 5, False), ("le", 5, 5, True), ("gt", 90, "120", True),
    ("ge", 90, 89.5, False), ("gt", 1, "abc", False), ("gt", 1, True, False),
    ("in", ["*", "Internet"], "Internet", True), ("in", ["*"], ["10.0.0.0/8", "*"], True),
    ("in", ["*"], "10.0.0.0/8", False), ("in", ["*"], {"a": 1}, False),
    ("not_in", ["GatewaySubnet"], "snet-app", True), ("not_in", ["a"], ["b", "a"], False),
    ("contains", "TSM-SSH", ["TSM", "TSM-SSH"], True), ("contains", "ssh", "openssh-server", True),
    ("contains", "key", {"key": 1}, True), ("contains", "x", 5, False),
    ("regex", r"^vmx-0?[4-9]$", "vmx-08", True), ("regex", "^vmx-1", "vmx-08", False),
    ("regex", "22", 22, True), ("regex", "^a", ["b", "ab", "a"], True),
    ("glob", "rhel-*", "rhel-8", True), ("glob", "rhel-*", "RHEL-8", False),
    ("version_lt", "6.10", "6.7.0", True), ("version_lt", "7.0", "7.0.0", False),
    ("version_le", "7.0", "7.0.0", True), ("version_gt", "8.0.2", "8.0.3 build-24022510", True),
    ("version_ge", "1.40", "1.30.02201.1000", False), ("version_lt", "13", "vmx-08", True),
    ("version_lt", "7.0", "not a version", False),
    ("date_before", "today", "2026-11-24T23:00:00Z", True), ("date_before", "today", "2026-11-25", False),
    ("date_after", "2027-01-01", "2027-10-11", True), ("date_before", "2027-01-01", "garbage", False),
    ("older_than_days", 90, "2026-08-26", True), ("older_than_days", 90, "2026-08-28", False),
    ("within_days", 60, "2027-01-10", True), ("within_days", 60, "2027-02-10", False),
    ("within_days", 60, "2026-11-01", False),
    ("cidr_contains", "10.1.2.3", "10.0.0.0/8", True), ("cidr_contains", "10.0.0.0/24", "10.0.0.0/16", True),
    ("cidr_contains", "10.0.0.0/8", "10.0.0.0/16", False), ("cidr_contains", "8.8.8.8", "*", True),
    ("cidr_contains", "8.8.8.8", "Internet", True), ("cidr_contains", "8.8.8.8", "VirtualNetwork", False),
    ("cidr_contains", "2001:db8::1", "::/0", True), ("cidr_contains", "10.0.0.1", ["192.168.0.0/16", "10.0.0.0/8"], True),
    ("cidr_overlaps", "10.0.0.0/8", "10.20.0.0/16", True), ("cidr_overlaps", "10.0.0.0/8", "172.16.0.0/12", False),
    ("cidr_overlaps", "0.0.0.0/0", "203.0.113.0/24", True),
    ("port_overlaps", 3389, "3380-3390", True), ("port_overlaps", 3389, "*", True),
    ("port_overlaps", 3389, ["22", "80"], False), ("port_overlaps", [22, 3389], ["22", "80"], True),
    ("port_overlaps", "5985-5986", "5986", True), ("port_overlaps", 22, "220", False),
    ("port_overlaps", 22, "garbage", False), ("port_overlaps", 443, 443, True),
])
def test_operator(op, expected, observed, result):
    assert check(op, expected, observed) is result


@pytest.mark.parametrize("op", ["empty", "not_empty", "present", "absent"])
def test_valueless_operators(op):
    factory = OPERATORS[op].factory
    assert factory(None, CTX)("") is (op in ("empty", "present"))
    assert factory(None, CTX)([]) is (op in ("empty", "present"))
    assert factory(None, CTX)({}) is (op in ("empty", "present"))
    assert factory(None, CTX)([1]) is (op in ("not_empty", "present"))
    assert factory(None, CTX)(0) is (op in ("not_empty", "present"))


@pytest.mark.parametrize("op, bad", [
    ("in", "not a list"), ("regex", "(unclosed"), ("version_lt", "latest"), ("date_before", "soon"),
    ("older_than_days", -1), ("older_than_days", "90"), ("cidr_contains", "10.0.0.300"),
    ("port_overlaps", "ssh"), ("lt", "many"), ("glob", 5),
])
def test_bad_constants_are_refused_at_compile_time(op, bad):
    with pytest.raises(ValueError):
        OPERATORS[op].factory(bad, CTX)


def test_parse_ports():
    assert parse_ports("3380-3390") == ((3380, 3390),)
    assert parse_ports(["22", 80, "8000-8001"]) == ((22, 22), (80, 80), (8000, 8001))
    assert parse_ports("*") == ((0, 65535),)
    assert parse_ports("90-80") == ((80, 90),)
    assert parse_ports(True) == ()


def _table(rows) -> Table:
    return Table(name="lifecycle.test", value=rows, file="t.yaml", line=1)


def test_lifecycle_operators_by_version_prefix_and_glob():
    table = _table({"7.0": {"end_of_support": "2025-10-02"},
                    "8.0": {"end_of_support": "2027-10-11"},
                    "windows-server-2012*": {"end_of_support": "2023-10-10",
                                             "extended_support_until": "2026-12-31"}})
    past = OPERATORS["past_eol"].factory(table, CTX)
    assert past("7.0.3") is True and past("8.0.2") is False
    assert past("6.5.0") is False  # unknown versions are not guessed at
    assert past("windows-server-2012-r2") is True
    extended = OPERATORS["in_extended_support"].factory(table, CTX)
    assert extended("windows-server-2012-r2") is True and extended("7.0.3") is False
    beyond = OPERATORS["past_extended_support"].factory(table, CTX)
    assert beyond("windows-server-2012-r2") is False and beyond("7.0.3") is True
    unknown = OPERATORS["unknown_to"].factory(table, CTX)
    assert unknown("9.0") is True and unknown("8.0.1") is False


def test_lifecycle_longest_version_prefix_wins():
    table = _table({"8": {"end_of_support": "2020-01-01"}, "8.0": {"end_of_support": "2030-01-01"}})
    past = OPERATORS["past_eol"].factory(table, CTX)
    assert past("8.0.2") is False
    assert past("8.1") is True


def test_eol_within_days_between_the_scan_date_and_the_horizon():
    table = _table({"7.0": {"end_of_support": "2025-10-02"}, "8.0": {"end_of_support": "2027-10-11"},
                    "9.0": {"end_of_support": "2030-01-01"}})
    within_year = OPERATORS["eol_within_days"].factory((table, 365), CTX)
    assert within_year("8.0.3") is True  # 320 days away
    assert within_year("7.0.3") is False  # already past: past_eol's finding, not a warning
    assert within_year("9.0") is False and within_year("10.0") is False
    assert OPERATORS["eol_within_days"].factory((table, 300), CTX)("8.0.3") is False


def test_below_minimum_reads_the_minimum_of_the_release_line():
    table = Table(name="support.minimum_builds.esxi", value={"7.0": "7.0.3.24585291", "8.0": "8.0.3.24585383"},
                  file="t.yaml", line=1)
    below = OPERATORS["below_minimum"].factory(table, CTX)
    assert below("7.0.3.21313628") is True and below("7.0.3.24585291") is False
    assert below("8.0.2.22380479") is True and below("8.0.3.24674464") is False
    assert below("6.7.0.17700523") is False  # a line without a minimum is not judged here
    assert below(None) is False and below("no version") is False
    with pytest.raises(ValueError):
        OPERATORS["below_minimum"].factory(Table(name="t", value={"7.0": "latest"}, file="t", line=1), CTX)
