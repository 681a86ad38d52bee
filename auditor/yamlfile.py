"""YAML reading that keeps line numbers, so rule and baseline errors can say `file:line`.

Two deliberate departures from plain PyYAML:
- duplicate keys in a mapping are an error (PyYAML silently keeps the last one, which would
  hide a rule author's mistake);
- unquoted decimals and dates stay text: `6.10` is a version, not the float 6.1, and
  `2027-10-11` is compared by the date operators, which parse ISO text themselves.

And two limits that hand-written rules, baselines and waivers never reach and a hostile
file always does, checked on the event stream before any node is built: nesting deeper
than `MAX_DEPTH` (the parser recurses and would overflow the C stack), and aliases that
expand to more than `MAX_ALIAS_EXPANSION` nodes beyond those written ("billion laughs":
547 bytes would otherwise become gigabytes), and more than `MAX_NODES` values in all.
Tags other than YAML's own are refused on collections too (PyYAML's safe loader only
refuses them on scalars): a rule file is data, never `!!python/object`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import InputError
from .files import read_input

try:  # the libyaml parser is several times faster on large rule packs
    _BaseLoader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _BaseLoader = yaml.SafeLoader

_TEXT_TAGS = {"tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp"}
_MERGE_TAG = "tag:yaml.org,2002:merge"
_COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}
MAX_DEPTH = 100  # the shipped packs nest 12 deep
MAX_ALIAS_EXPANSION = 100_000  # nodes that aliases may add; `<<: *defaults` on every rule adds hundreds
# nodes written in one file: each costs ~400 bytes once built (the shipped packs have 12,000;
# 10,000 waivers have 80,000), so 64 MiB of `[1,1,1,...]` cannot take gigabytes
MAX_NODES = 1_000_000


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    pass


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _TEXT_TAGS]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}


class LinedDict(dict):
    """A mapping that remembers the line of itself and of each of its keys."""

    line: int
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        """Line of `key` if present, else the line of the mapping itself."""
        return self.key_lines.get(key, self.line)


class LinedList(list):
    """A sequence that remembers the line of itself and of each item."""

    line: int
    item_lines: list[int]


def plain_data(value: Any) -> Any:
    """`value` with its mappings and sequences as plain dicts and lists, without their lines:
    what a finding's evidence shows of a rule's constant, which then crosses between
    processes as plain data (see shards.ShardOutcome)."""
    if isinstance(value, dict):
        return {key: plain_data(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain_data(item) for item in value]
    return value


def line_of(value: Any, default: int | None = None) -> int | None:
    """The line a loaded value started on, where it is known."""
    return getattr(value, "line", default)


def _convert(node: yaml.Node, loader: _Loader, where: str) -> Any:
    line = node.start_mark.line + 1
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _COLLECTION_TAGS:
        raise InputError(f"YAML tag {node.tag} is not allowed here", where=where, line=line)
    if isinstance(node, yaml.MappingNode):
        # an anchored mapping is visited once per alias, and flattening rewrites it in place:
        # count its merged pairs on the first visit
        merged_counts: dict[int, int] = loader.__dict__.setdefault("merged_counts", {})
        if id(node) not in merged_counts:
            written = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
            loader.flatten_mapping(node)  # resolve `<<:` merge keys the way PyYAML does: merged pairs first
            merged_counts[id(node)] = len(node.value) - written
        merged = merged_counts[id(node)]
        result = LinedDict()
        result.line = line
        result.key_lines = {}
        from_merge: set[str] = set()
        for position, (key_node, value_node) in enumerate(node.value):
            key = _convert(key_node, loader, where)
            if isinstance(key, (dict, list)):
                raise InputError("a mapping key must be a plain value", where=where,
                                 line=key_node.start_mark.line + 1)
            key = str(key) if not isinstance(key, str) else key
            if position < merged:  # merged values: a later one wins, the mapping's own keys override all
                result[key] = _convert(value_node, loader, where)
                result.key_lines[key] = key_node.start_mark.line + 1
                from_merge.add(key)
                continue
            if key in from_merge:
                from_merge.discard(key)
                del result[key]
            if key in result:
                raise InputError(
                    f"duplicate key '{key}' (first at line {result.key_lines[key]})",
                    where=where, line=key_node.start_mark.line + 1)
            result[key] = _convert(value_node, loader, where)
            result.key_lines[key] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        items = LinedList(_convert(item, loader, where) for item in node.value)
        items.line = line
        items.item_lines = [item.start_mark.line + 1 for item in node.value]
        return items
    return loader.construct_object(node, deep=True)


def load_yaml(path: Path) -> Any:
    """Load one YAML document from `path`, keeping line numbers; errors name file and line."""
    where = str(path)
    try:
        text = read_input(path, "YAML file").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", where=where) from None
    return load_yaml_text(text, where)


def check_shape(text: str, where: str) -> None:
    """Refuse YAML nested deeper than MAX_DEPTH or whose aliases expand to more than
    MAX_ALIAS_EXPANSION nodes, reading events only (no recursion, nothing built)."""
    anchored: dict[str, int] = {}  # anchor -> how many nodes its value expands to
    open_collections: list[tuple[str | None, int]] = []  # anchor and the count where it began
    expanded = written = 0
    for event in yaml.parse(text, Loader=_BaseLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent, yaml.ScalarEvent)):
            # a collection is a value too: a file of ten million `[]` costs as much as of scalars
            expanded += 1
            written += 1
            if written > MAX_NODES:
                raise InputError(f"YAML file has more than {MAX_NODES:,} values: no rule, baseline or waiver "
                                 "file needs that many", where=where, line=event.start_mark.line + 1)
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            open_collections.append((event.anchor, expanded - 1))
            if len(open_collections) > MAX_DEPTH:
                raise InputError(f"YAML nested more than {MAX_DEPTH} levels deep", where=where,
                                 line=event.start_mark.line + 1)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            anchor, began = open_collections.pop()
            if anchor is not None:
                anchored[anchor] = expanded - began
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                anchored[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            expanded += anchored.get(event.anchor, 1)
            if expanded - written > MAX_ALIAS_EXPANSION:
                raise InputError(f"YAML aliases expand to more than {MAX_ALIAS_EXPANSION:,} nodes (an alias "
                                 "bomb?); write the values out", where=where, line=event.start_mark.line + 1)


def load_yaml_text(text: str, where: str) -> Any:
    """Load one YAML document from text; `where` names it in error messages."""
    loader = _Loader(text)
    try:
        check_shape(text, where)
        node = loader.get_single_node()
        if node is None:
            return None
        return _convert(node, loader, where)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        line = mark.line + 1 if mark is not None else None
        raise InputError(f"YAML syntax error: {problem}", where=where, line=line) from None
    except yaml.YAMLError as exc:
        raise InputError(f"YAML error: {str(exc).splitlines()[0]}", where=where) from None
    except RecursionError:
        raise InputError("YAML nesting too deep", where=where) from None
    except ValueError as exc:  # an integer of more digits than Python converts (4,300)
        raise InputError(f"YAML value: {str(exc).split(';')[0]}", where=where) from None
    finally:
        loader.dispose()
