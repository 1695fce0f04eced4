"""Typed reading of one table of a configuration file, collecting errors.

Both loaders walk nested mappings (TOML tables, JSON objects) through
`Section`. A getter checks the type of one key, and on a problem records
"key.path: what is wrong" in the list shared by the whole load and returns a
default, so reading goes on and every problem is reported. A section
remembers which keys were read; the caller reports the rest as unknown.

ARM property names are case-insensitive (`fold_case`), and ARM values may be
template expressions (`resolve` turns them into values or raises Invalid).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from appgw.config.suggest import unknown_key


class Invalid(Exception):
    """A value that cannot be used; the message does not name the key."""


Resolver = Callable[[Any, str], Any]

# A value the getters return after they reported a problem with it.
_BAD = object()
_MISSING = object()


def join(path: str, key: str) -> str:
    """The key path of `key` inside `path` ("" is the top level)."""
    if key.startswith("["):
        return f"{path}{key}"
    return f"{path}.{key}" if path else key


class Section:
    """One mapping being read, with the key path that leads to it."""

    def __init__(
        self,
        data: Mapping[str, Any],
        path: str,
        errors: list[str],
        *,
        fold_case: bool = False,
        resolve: Resolver | None = None,
        table_word: str = "table",
        quiet: set[str] | None = None,
        lenient: bool = False,
    ) -> None:
        self.data = data
        # ARM's leniency: "true", "80" where a boolean or a number is expected.
        self.lenient = lenient
        self.path = path
        self.errors = errors
        # Key paths whose value was replaced by a placeholder after an error.
        self.quiet = set() if quiet is None else quiet
        self.fold_case = fold_case
        self.resolve = resolve
        self.table_word = table_word
        self._index = {(k.lower() if fold_case else k): k for k in data}
        self._used: set[str] = set()
        self._asked: dict[str, None] = {}  # every key looked for, in order: the known ones

    # -- plumbing -----------------------------------------------------------

    def key_path(self, key: str | None) -> str:
        return self.path if key is None else join(self.path, key)

    def error(self, key: str | None, message: str, *, placeholder: bool = False) -> None:
        """Record a problem with `key` (None: with the section itself).

        `placeholder`: the value read is replaced by a stand-in, so later
        checks of that key stay quiet (see Draft).
        """
        where = self.key_path(key)
        self.errors.append(f"{where}: {message}" if where else message)
        if placeholder:
            self.quiet.add(where)

    def sub(self, value: Any, path: str) -> Section | None:
        """A section for a nested mapping, or None after reporting a wrong type."""
        value = self._resolved(value, path)
        if value is _BAD or value is None:  # None: an expression's null(), as if absent
            return None
        if not isinstance(value, Mapping):
            self.errors.append(f"{path}: must be a {self.table_word}")
            self.quiet.add(path)
            return None
        return Section(
            value,
            path,
            self.errors,
            fold_case=self.fold_case,
            resolve=self.resolve,
            table_word=self.table_word,
            quiet=self.quiet,
            lenient=self.lenient,
        )

    def _resolved(self, value: Any, path: str) -> Any:
        if self.resolve is None:
            return value
        try:
            return self.resolve(value, path)
        except Invalid as e:
            self.errors.append(f"{path}: {e}")
            self.quiet.add(path)
            return _BAD

    def _name(self, key: str) -> str | None:
        self._asked.setdefault(key)
        return self._index.get(key.lower() if self.fold_case else key)

    def has(self, key: str) -> bool:
        return self._name(key) is not None

    def raw(self, key: str) -> Any:
        """The unresolved value of `key` (marked as read), or None if absent."""
        name = self._name(key)
        if name is None:
            return None
        self._used.add(name)
        return self.data[name]

    def _get(self, key: str) -> Any:
        name = self._name(key)
        if name is None:
            return _MISSING
        self._used.add(name)
        value = self.data[name]
        if value is None:  # JSON null: as if absent
            return _MISSING
        return self._resolved(value, self.key_path(key))

    def keys(self) -> list[str]:
        """Every key, all marked as read (for tables of named resources)."""
        self._used.update(self.data)
        return list(self.data)

    def unused(self) -> list[str]:
        """Keys present but not read, in their original spelling. With fold_case,
        a key written twice in two cases with one value (a gallery template's
        `cookieBasedAffinity` and `CookieBasedAffinity`) is read as one."""
        return [k for k in self.data if k not in self._used and not self._read_twin(k)]

    def _read_twin(self, key: str) -> bool:
        twin = self._index.get(key.lower()) if self.fold_case else None
        return twin is not None and twin in self._used and self.data[twin] == self.data[key]

    def reject_unused(self) -> None:
        for key in self.unused():
            self.unknown(key)

    def unknown(self, key: str, also: Iterable[str] = ()) -> None:
        """Report `key` as unknown, with the closest key this section looked for."""
        twin = self._index.get(key.lower()) if self.fold_case else None
        if twin is not None and twin != key:
            self.error(key, f"also written as {twin!r}, with another value")
            return
        self.error(key, unknown_key(key, [*self._asked, *also]))

    # -- typed getters ------------------------------------------------------

    def _typed(self, key: str, check: Callable[[Any], bool], what: str, required: bool) -> Any:
        value = self._get(key)
        if value is _MISSING:
            if required:
                self.error(key, "required", placeholder=True)
            return _MISSING
        if value is _BAD:
            return _MISSING
        if not check(value) and self.lenient and isinstance(value, str):
            value = _from_string(value)
        if not check(value):
            self.error(key, f"must be {what}", placeholder=True)
            return _MISSING
        return value

    def get_int(self, key: str, default: int, *, required: bool = False) -> int:
        value = self._typed(key, _is_int, "an integer", required)
        return default if value is _MISSING else int(value)

    def get_opt_int(self, key: str) -> int | None:
        value = self._typed(key, _is_int, "an integer", False)
        return None if value is _MISSING else int(value)

    def get_float(self, key: str, default: float) -> float:
        value = self._typed(key, _is_number, "a number", False)
        return default if value is _MISSING else float(value)

    def get_bool(self, key: str, default: bool) -> bool:
        value = self._typed(key, lambda v: isinstance(v, bool), "true or false", False)
        return default if value is _MISSING else bool(value)

    def get_str(self, key: str, default: str, *, required: bool = False) -> str:
        value = self._typed(key, lambda v: isinstance(v, str), "a string", required)
        return default if value is _MISSING else str(value)

    def get_opt_str(self, key: str) -> str | None:
        value = self._typed(key, lambda v: isinstance(v, str), "a string", False)
        return None if value is _MISSING else str(value)

    def get_list(self, key: str) -> list[Any]:
        value = self._typed(key, lambda v: isinstance(v, list), "a list", False)
        return [] if value is _MISSING else list(value)

    def get_strs(self, key: str) -> tuple[str, ...]:
        """A list of strings (each element resolved on its own)."""
        items = []
        for i, item in enumerate(self.get_list(key)):
            item = self._resolved(item, self.key_path(f"{key}[{i}]"))
            if item is _BAD:
                continue
            if not isinstance(item, str):
                self.error(key, "must be a list of strings", placeholder=True)
                return ()
            items.append(item)
        return tuple(items)

    def get_section(self, key: str) -> Section | None:
        """A nested table, or None when absent or not a table (reported)."""
        name = self._name(key)
        if name is None:
            return None
        self._used.add(name)
        if self.data[name] is None:
            return None
        return self.sub(self.data[name], self.key_path(key))

    def get_sections(self, key: str) -> list[Section]:
        """A list of tables; their paths are key[0], key[1], ..."""
        sections = []
        for i, item in enumerate(self.get_list(key)):
            section = self.sub(item, self.key_path(f"{key}[{i}]"))
            if section is not None:
                sections.append(section)
        return sections


def _from_string(text: str) -> Any:
    """A boolean or number written as a string, as Azure accepts it; else the text."""
    word = text.strip()
    if word.lower() in ("true", "false"):
        return word.lower() == "true"
    try:
        return int(word)
    except ValueError:
        pass
    try:
        return float(word)
    except ValueError:
        return text


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_STATUS_RANGE = re.compile(r"^\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?$")


def read_status_codes(
    s: Section, key: str, items: Iterable[Any], default: tuple[tuple[int, int], ...]
) -> tuple[tuple[int, int], ...]:
    """Status codes read with parse_status_codes, each bad entry reported."""
    ranges: list[tuple[int, int]] = []
    for item in items:
        try:
            ranges += parse_status_codes([item])
        except Invalid as e:
            s.error(key, str(e))
    return tuple(ranges) or default


def parse_status_codes(items: Iterable[Any]) -> tuple[tuple[int, int], ...]:
    """["200-399", "404", 418] -> ((200, 399), (404, 404), (418, 418)).

    Raises Invalid on a malformed entry; bounds (100..599) are checked by
    validation.
    """
    ranges = []
    for item in items:
        if _is_int(item):
            ranges.append((int(item), int(item)))
            continue
        match = _STATUS_RANGE.match(item) if isinstance(item, str) else None
        if match is None:
            raise Invalid(f"{item!r} is not a status code or a range like '200-399'")
        low = int(match.group(1))
        ranges.append((low, int(match.group(2) or low)))
    return tuple(ranges)
