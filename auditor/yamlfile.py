"""YAML reading that keeps line numbers, so rule and baseline errors can say `file:line`.

Two deliberate departures from plain PyYAML:
- duplicate keys in a mapping are an error (PyYAML silently keeps the last one, which would
  hide a rule author's mistake);
- unquoted decimals and dates stay text: `6.10` is a version, not the float 6.1, and
  `2027-10-11` is compared by the date operators, which parse ISO text themselves.
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


def line_of(value: Any, default: int | None = None) -> int | None:
    """The line a loaded value started on, where it is known."""
    return getattr(value, "line", default)


def _convert(node: yaml.Node, loader: _Loader, where: str) -> Any:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolve `<<:` merge keys the way PyYAML does
        result = LinedDict()
        result.line = line
        result.key_lines = {}
        for key_node, value_node in node.value:
            key = _convert(key_node, loader, where)
            if isinstance(key, (dict, list)):
                raise InputError("a mapping key must be a plain value", where=where,
                                 line=key_node.start_mark.line + 1)
            key = str(key) if not isinstance(key, str) else key
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


def load_yaml_text(text: str, where: str) -> Any:
    """Load one YAML document from text; `where` names it in error messages."""
    loader = _Loader(text)
    try:
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
    finally:
        loader.dispose()
