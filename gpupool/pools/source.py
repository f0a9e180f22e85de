"""YAML loading that remembers the line of every key, so errors read `file:line: key: message`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from gpupool.errors import InputError, located
from gpupool.validate import NoAliasLoader

Path = tuple[str, ...]


@dataclass
class Source:
    """A parsed YAML document plus the 1-based line of every mapping key and sequence item."""

    path: str
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)

    def line(self, key: Path) -> int | None:
        # Fall back to the nearest enclosing key: a missing key is reported where its parent is.
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), None)

    def error(self, key: Path, message: str) -> InputError:
        name = ".".join(key) if key else "(top level)"
        return InputError(located(self.path, self.line(key), f"{name}: {message}"))


def load_source(path: str) -> Source:
    """Read and parse a YAML file; syntax errors and duplicate keys are input errors with a line."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    return parse_source(text, path)


MAX_POOLS_FILE_BYTES = 4 * 1024 * 1024


def parse_source(text: str, path: str = "<pools>") -> Source:
    if len(text) > MAX_POOLS_FILE_BYTES:
        raise InputError(f"{path}: pools file larger than {MAX_POOLS_FILE_BYTES} bytes")
    try:
        root = yaml.compose(text, Loader=NoAliasLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise InputError(located(path, line, f"invalid YAML: {exc.problem or exc}")) from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: invalid YAML: {exc}") from None
    except RecursionError:
        raise InputError(f"{path}: invalid YAML: nests too deeply") from None
    source = Source(path, None)
    if root is None:
        source.data = {}
        return source
    source.lines[()] = root.start_mark.line + 1
    try:
        source.data = _convert(root, (), source)
    except RecursionError:
        raise InputError(f"{path}: invalid YAML: nests too deeply") from None
    return source


def _convert(node: yaml.Node, key: Path, source: Source) -> Any:
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            name = _scalar(key_node, key, source)
            if not isinstance(name, str | int | float | bool) or isinstance(name, bool):
                raise InputError(located(source.path, key_node.start_mark.line + 1,
                                         f"{'.'.join(key) or '(top level)'}: keys must be plain names"))
            text = str(name)
            child = (*key, text)
            if text in result:
                raise InputError(located(source.path, key_node.start_mark.line + 1,
                                         f"{'.'.join(child)}: duplicate key"))
            source.lines[child] = key_node.start_mark.line + 1
            result[text] = _convert(value_node, child, source)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            child = (*key, str(index))
            source.lines[child] = item.start_mark.line + 1
            items.append(_convert(item, child, source))
        return items
    return _scalar(node, key, source)


def _scalar(node: yaml.Node, key: Path, source: Source) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise InputError(located(source.path, node.start_mark.line + 1,
                                 f"{'.'.join(key) or '(top level)'}: expected a plain value here"))
    if node.tag.endswith((":int", ":float")) and ":" in node.value:
        return node.value  # YAML 1.1 reads 12:00:00 as a base-60 number; a time limit is meant
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, OverflowError) as exc:  # ValueError: 5,000-digit integers
        raise InputError(located(source.path, node.start_mark.line + 1, f"{'.'.join(key)}: {exc}")) from None
    finally:
        loader.dispose()
