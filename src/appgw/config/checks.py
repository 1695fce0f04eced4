"""The context of one validation (validate.py): the configuration, the file's
naming, the error list, and the helpers that fill it with key paths in the
file's own words. The checks of each kind of resource use it; it knows none
of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from appgw.config.model import Config
from appgw.config.naming import Naming

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}$")
BAD_NAME = "invalid name: up to 80 letters, digits, '_', '.' and '-'"
BAD_RULE_NAME = "invalid name: 1 to 80 characters, no control characters"


class Checks:
    """The error list of one validation and the helpers that fill it."""

    def __init__(self, config: Config, naming: Naming) -> None:
        self.config = config
        self.naming = naming
        self.errors: list[str] = []

    # -- helpers --------------------------------------------------------------

    def error(self, schema: str, names: Iterable[str], message: str) -> None:
        self.errors.append(f"{self.naming.path(schema, *names)}: {message}")

    def key(self, schema: str) -> str:
        """The last key of `schema` as the file spells it ("backendAddressPool")."""
        blanks = ["_"] * schema.count("*")
        return self.naming.path(schema, *blanks).rsplit(".", 1)[-1]

    def range(
        self, schema: str, names: Iterable[str], value: float | None, low: int, high: int
    ) -> None:
        if value is not None and not low <= value <= high:
            self.error(schema, names, f"must be {low}..{high}")

    def at_least(self, schema: str, names: Iterable[str], value: float, low: int) -> None:
        if value < low:
            self.error(schema, names, f"must be >= {low}")

    def choice(
        self, schema: str, names: Iterable[str], value: str, choices: tuple[str, ...]
    ) -> None:
        if value not in choices:
            shown = self.naming.show(schema, value)
            self.error(
                schema, names, f"must be {self.naming.choices(schema, choices)}, not {shown!r}"
            )

    def ref(self, schema: str, names: Iterable[str], value: str | None, collection: str) -> None:
        """A reference by name to a resource of `collection`; None is no reference."""
        if value is None:
            return
        if value == "":
            self.error(schema, names, "required")
        elif value not in getattr(self.config, collection):
            self.error(schema, names, f"no {self.naming.noun(collection)} named {value!r}")

    def target(
        self,
        base: str,
        names: tuple[str, ...],
        pool: str | None,
        setting: str | None,
        redirect: str | None,
        keys: tuple[str, str, str] = ("pool", "setting", "redirect"),
    ) -> None:
        """A pool and a setting, or a redirect, never both (rules, path maps)."""
        pool_key, setting_key, redirect_key = (f"{base}.{k}" for k in keys)
        words = [self.key(k) for k in (pool_key, setting_key, redirect_key)]
        if redirect is not None:
            if pool is not None or setting is not None:
                self.error(redirect_key, names, f"excludes {words[0]} and {words[1]}")
        elif pool is None and setting is None:
            self.error(base, names, f"needs {words[0]} and {words[1]}, or {words[2]}")
        elif pool is None:
            self.error(pool_key, names, f"required with {words[1]}")
        elif setting is None:
            self.error(setting_key, names, f"required with {words[0]}")
        self.ref(pool_key, names, pool, "pools")
        self.ref(setting_key, names, setting, "settings")
        self.ref(redirect_key, names, redirect, "redirects")

    def unique_names(
        self,
        schema: str,
        names: tuple[str, ...],
        items: Iterable[Any],
        pattern: re.Pattern[str] | None = None,
    ) -> None:
        """Names of entries of a list (path rules, rewrite rules): valid and unique."""
        pattern = pattern or NAME
        seen: set[str] = set()
        for item in items:
            if not item.name:
                continue  # reported by the loader
            if item.name in seen:
                self.error(f"{schema}.*", (*names, item.name), "duplicate name")
            elif not pattern.match(item.name):
                message = BAD_NAME if pattern is NAME else BAD_RULE_NAME
                self.error(f"{schema}.*", (*names, item.name), message)
            seen.add(item.name)
