"""One registry type for every plug-in axis (export formats, audit checks, node checks, Slurm backends).

An entry is a small frozen dataclass with a `name` (what users type and JSON carries), its metadata
and its callable. `Registry.register` adds it once: a second entry under a taken name raises
`DuplicateRegistration` (two plug-ins claiming one name is a bug, never a silent override), the
same in spirit as reframe's refusal of a duplicate backend name. Iteration follows registration
order, which is the order things run and are listed in (help texts, docs tables).
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Generic, Protocol, TypeVar


class Named(Protocol):
    @property
    def name(self) -> str: ...


EntryT = TypeVar("EntryT", bound=Named)


class DuplicateRegistration(ValueError):
    """A second registration of a name already taken in that registry."""


class Registry(MutableMapping[str, EntryT], Generic[EntryT]):
    """Entries by name, in registration order; `register` (and `registry[name] = entry`) refuses a
    name already taken, so nothing is ever overwritten; `del registry[name]` takes one out again."""

    def __init__(self, what: str) -> None:
        self.what = what  # "export format", "audit check", ...: named in the duplicate error
        self._entries: dict[str, EntryT] = {}

    def register(self, entry: EntryT) -> EntryT:
        if entry.name in self._entries:
            raise DuplicateRegistration(f"{self.what} {entry.name!r} is already registered")
        self._entries[entry.name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Take an entry out again (tests that register a toy one clean up with this)."""
        del self._entries[name]

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def entries(self) -> tuple[EntryT, ...]:
        return tuple(self._entries.values())

    def __setitem__(self, name: str, entry: EntryT) -> None:
        if name != entry.name:
            raise ValueError(f"{self.what} {entry.name!r} registered under another name, {name!r}")
        self.register(entry)

    def __delitem__(self, name: str) -> None:
        self.unregister(name)

    def __getitem__(self, name: str) -> EntryT:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
