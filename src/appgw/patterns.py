"""Regular expressions of rewrite rules, in RE2's syntax and semantics.

Application Gateway requires rewrite patterns to be RE2-compatible. appgw
compiles them with RE2 itself (the `google-re2` package), so a pattern Azure
accepts means the same here, one it would refuse (lookaround,
backreferences, possessive quantifiers ...) is a configuration error, and
matching a header the client controls takes time linear in its length
whatever the pattern: no pattern can be made to backtrack for ever.

Shared by configuration validation (which reports a bad pattern with its
key) and the rewrite engine (which runs compiled patterns).
"""

from __future__ import annotations

from typing import Any, Protocol

import re2  # type: ignore[import-untyped]


class PatternError(ValueError):
    """A pattern RE2 does not accept; the message says why."""


class Match(Protocol):
    def group(self, index: int = 0) -> str | None: ...


class Pattern(Protocol):
    def search(self, text: str) -> Match | None: ...


def compile_pattern(pattern: str, ignore_case: bool = False) -> Pattern:
    """An RE2 pattern, searched anywhere in a value like `re.search`."""
    options = re2.Options()
    options.case_sensitive = not ignore_case
    options.log_errors = False  # the error comes back as an exception
    try:
        compiled: Any = re2.compile(pattern, options)
    except re2.error as e:
        raise PatternError(_message(e)) from None
    except (TypeError, ValueError, OverflowError) as e:  # NUL bytes, huge repeats ...
        raise PatternError(str(e)) from None
    return compiled  # type: ignore[no-any-return]


def _message(error: Exception) -> str:
    reason = error.args[0] if error.args else str(error)
    if isinstance(reason, bytes):
        reason = reason.decode("utf-8", "replace")
    return str(reason)
