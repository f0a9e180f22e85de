"""One set of validators for every value that comes from a user, a job, the fabric or a file.

Rules (each a full match: `re.fullmatch`, never `^...$`, whose `$` also matches before a final
newline):

- Slurm names (partition, account, QOS): Slurm's own rules as sacctmgr stores them (lower case,
  digits, ``_ . -``), at most `MAX_NAME_LEN` characters, no control characters or spaces.
- User names: POSIX portable user names plus ``@`` (sssd/AD users), same length bound.
- Host names: RFC 1123 labels (letters, digits, ``-``) plus ``_`` which Slurm accepts in node
  names; never ``[ ] , : = #`` or white space, which are hostlist/config syntax.
- Numbers: ASCII digits only (``isdigit()`` accepts ``²``), bounded (no NaN/Infinity, no 2^63,
  no 5,000-digit integers), GPUs per host at most `MAX_GPUS_PER_HOST`.
- YAML is read with `NoAliasLoader` (a SafeLoader that refuses aliases before anything expands).
- Bytes from Slurm are decoded with `SLURM_DECODE_ERRORS` (a job name that is not UTF-8 becomes
  U+FFFD, never an exception).
- Hostlists are capped in `gpupool.hostlist` (the one hostlist module, `GPUPOOL_HOSTLIST_LIMIT`,
  default 200,000 names, counted before anything is expanded).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gpupool.errors import BadInput, located

if TYPE_CHECKING:
    import yaml

MAX_NAME_LEN = 64
# A few DGX/HGX boxes hold 8-16 GPUs; a node with more than this is a typo or an attack.
MAX_GPUS_PER_HOST = 1024
# Largest count accepted for --gpus, --nodes, limits in files (memory stays proportional to it).
MAX_COUNT = 10_000_000
# Deepest nesting accepted in a JSON input (fabric files nest 3-4 levels).
MAX_JSON_DEPTH = 64
# How Slurm command output is decoded: users put arbitrary bytes in job names and comments.
SLURM_DECODE_ERRORS = "replace"

SLURM_NAME_RE = re.compile(rf"[a-z0-9_][a-z0-9_.-]{{0,{MAX_NAME_LEN - 1}}}")
USER_NAME_RE = re.compile(rf"[A-Za-z0-9_][A-Za-z0-9_.@-]{{0,{MAX_NAME_LEN - 1}}}")
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
HOST_NAME_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
ASCII_INT_RE = re.compile(r"[0-9]{1,18}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def has_control(text: str) -> bool:
    return bool(_CONTROL.search(text))


def slurm_name(value: Any, what: str) -> str:
    """A partition, account or QOS name, or BadInput naming `what`."""
    if not isinstance(value, str) or not SLURM_NAME_RE.fullmatch(value):
        raise BadInput(f"{what}: {value!r} is not a valid Slurm name (lower-case letters, digits, "
                         f"'_', '.', '-', starting with a letter, digit or '_', at most {MAX_NAME_LEN} characters)")
    return value


def user_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not USER_NAME_RE.fullmatch(value):
        raise BadInput(f"{what}: {value!r} is not a valid user name")
    return value


def is_host_name(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 253 and HOST_NAME_RE.fullmatch(value) is not None


def host_name(value: Any, what: str) -> str:
    """An RFC 1123 host name (``_`` allowed, as in Slurm node names), or BadInput naming `what`."""
    if not is_host_name(value):
        raise BadInput(f"{what}: {value!r} is not a valid host name")
    return value


def bounded_int(value: Any, what: str, low: int = 0, high: int = MAX_COUNT) -> int:
    """A JSON/YAML number that is an integer in [low, high] (1.0 accepted, NaN/inf/1e400 refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInput(f"{what}: expected an integer, got {_short(value)}")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise BadInput(f"{what}: expected an integer, got {_short(value)}")
        value = int(value)
    if not low <= value <= high:
        raise BadInput(f"{what}: {_short(value)} is out of range [{low}, {high}]")
    return value


def int_text(text: str, what: str, low: int = 0, high: int = MAX_COUNT) -> int:
    """ASCII decimal digits -> int in [low, high] (``²``, ``٣``, ``1_0`` and 5,000 digits refused)."""
    stripped = text.strip() if isinstance(text, str) else text
    if not isinstance(stripped, str) or not ASCII_INT_RE.fullmatch(stripped):
        raise BadInput(f"{what}: {_short(text)} is not a whole number")
    return bounded_int(int(stripped), what, low, high)


def maybe_int_text(text: str | None, low: int = 0, high: int = MAX_COUNT) -> int | None:
    """Like `int_text` but None for anything that is not a bounded ASCII integer (untrusted fields)."""
    if not isinstance(text, str) or not ASCII_INT_RE.fullmatch(text.strip()):
        return None
    number = int(text.strip())
    return number if low <= number <= high else None


def decode_slurm(data: bytes) -> str:
    """Slurm output bytes -> text, by the one decoding policy (`SLURM_DECODE_ERRORS`)."""
    return data.decode("utf-8", errors=SLURM_DECODE_ERRORS)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _int_or_refuse(text: str) -> int:
    if len(text) > 40:
        raise ValueError(f"integer with {len(text)} digits")
    return int(text)


def _float_or_refuse(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"number {text[:20]} is out of range")
    return number


def json_depth_ok(doc: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when `doc` nests at most `limit` containers deep (iterative: no recursion limit)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > limit:
                return False
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return True


def load_json_text(text: str, what: str, hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
                   problem: str = "invalid JSON") -> Any:
    """Strict JSON: no NaN/Infinity, no 1e400, no 5,000-digit integers, no deep nesting, no lone
    surrogates; every problem is one BadInput naming `what`."""
    if _deeper_than(text, MAX_JSON_DEPTH):
        raise BadInput(f"{what}: {problem}: nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        doc = json.loads(text, parse_constant=_refuse_constant, parse_int=_int_or_refuse,
                         parse_float=_float_or_refuse, object_pairs_hook=hook)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{what}:{exc.lineno}: {problem}: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:
        raise BadInput(f"{what}: {problem}: {exc}") from None
    if _has_surrogate(doc):
        raise BadInput(f"{what}: {problem}: a string holds a lone surrogate (\\ud800-\\udfff escape)")
    return doc


_BRACKET = re.compile(r"[\[\]{}]")


def _deeper_than(text: str, limit: int) -> bool:
    # Cheap bracket count before json.loads recurses; brackets inside strings only over-count.
    if text.count("[") + text.count("{") <= limit:
        return False  # fewer openings than the limit: no nesting can pass it (the common case, C speed)
    depth = 0
    for char in _BRACKET.findall(text):  # only the brackets, found at C speed
        if char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _has_surrogate(doc: Any) -> bool:
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if not node.isascii() and any("\ud800" <= c <= "\udfff" for c in node):
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


# ---------------------------------------------------------------------------------------------
# YAML: no aliases


def _no_alias_loader() -> type:
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        """SafeLoader that refuses aliases (``*name``, ``<<: *name``) before anything is expanded: a
        1.6 KB alias bomb would otherwise expand to billions of nodes."""

        def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.composer.ComposerError(None, None, "YAML aliases (*name) are not allowed",
                                                  event.start_mark)
            return super().compose_node(parent, index)

    return NoAliasLoader


def __getattr__(name: str) -> Any:
    # PyYAML is imported only by the commands that read YAML (`from gpupool.validate import NoAliasLoader`).
    if name == "NoAliasLoader":
        loader = globals().get("NoAliasLoader") or _no_alias_loader()
        globals()["NoAliasLoader"] = loader
        return loader
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _short(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ---------------------------------------------------------------------------------------------
# YAML files: the one loader (`pool apply` and the job_submit.lua generator read pools files
# through it), remembering the line of every key so errors read `file:line: key: message`.

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

    def error(self, key: Path, message: str) -> BadInput:
        name = ".".join(key) if key else "(top level)"
        return BadInput(located(self.path, self.line(key), f"{name}: {message}"))


def load_source(path: str) -> Source:
    """Read and parse a YAML file; syntax errors and duplicate keys are input errors with a line."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise BadInput(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read: {exc}") from None
    return parse_source(text, path)


MAX_POOLS_FILE_BYTES = 4 * 1024 * 1024


def parse_source(text: str, path: str = "<pools>") -> Source:
    if len(text) > MAX_POOLS_FILE_BYTES:
        raise BadInput(f"{path}: pools file larger than {MAX_POOLS_FILE_BYTES} bytes")
    import yaml  # only the commands that read YAML pay for PyYAML

    try:
        root = yaml.compose(text, Loader=__getattr__("NoAliasLoader"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise BadInput(located(path, line, f"invalid YAML: {exc.problem or exc}")) from None
    except yaml.YAMLError as exc:
        # A reader error (a control character) has a position, not a mark; its text spans two lines.
        position = getattr(exc, "position", None)
        line = text.count("\n", 0, position) + 1 if isinstance(position, int) else None
        first = (str(exc).splitlines() or [repr(exc)])[0]
        raise BadInput(located(path, line, f"invalid YAML: {first}")) from None
    except RecursionError:
        raise BadInput(f"{path}: invalid YAML: nests too deeply") from None
    source = Source(path, None)
    if root is None:
        source.data = {}
        return source
    source.lines[()] = root.start_mark.line + 1
    try:
        source.data = _convert(root, (), source)
    except RecursionError:
        raise BadInput(f"{path}: invalid YAML: nests too deeply") from None
    return source


def _convert(node: yaml.Node, key: Path, source: Source) -> Any:
    import yaml

    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            name = _scalar(key_node, key, source)
            if not isinstance(name, str | int | float | bool) or isinstance(name, bool):
                raise BadInput(located(source.path, key_node.start_mark.line + 1,
                                         f"{'.'.join(key) or '(top level)'}: keys must be plain names"))
            text = str(name)
            child = (*key, text)
            if text in result:
                raise BadInput(located(source.path, key_node.start_mark.line + 1,
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
    import yaml

    if not isinstance(node, yaml.ScalarNode):
        raise BadInput(located(source.path, node.start_mark.line + 1,
                                 f"{'.'.join(key) or '(top level)'}: expected a plain value here"))
    if node.tag.endswith((":int", ":float")) and ":" in node.value:
        return node.value  # YAML 1.1 reads 12:00:00 as a base-60 number; a time limit is meant
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, OverflowError) as exc:  # ValueError: 5,000-digit integers
        raise BadInput(located(source.path, node.start_mark.line + 1, f"{'.'.join(key)}: {exc}")) from None
    finally:
        loader.dispose()
