"""The closest known key to a misspelt one, for "unknown key" errors (pure).

`appgw check` answers `settings.web.prot: unknown key (did you mean port?)`.
The candidates are the keys the reader asked for in that same table, so a
suggestion is always a key that is valid at that place.

The rules this module keeps:
- Keys are compared in a loose form: case and the separators `_`, `-` and
  `.` do not count, so `request-timeout`, `RequestTimeout` and
  `requesttimeout` all find `request_timeout` (and ARM's `requestTimeout`).
- Otherwise the closest candidate by difflib's ratio wins, if it is close
  enough (CUTOFF); a word close to nothing gets no suggestion rather than
  a wild guess.
- A candidate is shown in its own spelling, the one the file should use.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

CUTOFF = 0.6  # difflib ratio below which a candidate is no suggestion


def _loose(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "").replace(".", "")


def closest(word: str, known: Iterable[str]) -> str | None:
    """The known key `word` most likely meant, or None."""
    spelling: dict[str, str] = {}
    for key in known:
        loose = _loose(key)
        if key != word and loose:
            spelling.setdefault(loose, key)
    target = _loose(word)
    if target in spelling:
        return spelling[target]
    found = difflib.get_close_matches(target, spelling, n=1, cutoff=CUTOFF)
    return spelling[found[0]] if found else None


def unknown_key(word: str, known: Iterable[str]) -> str:
    """The message for an unknown key: "unknown key", with the closest known one if any."""
    match = closest(word, known)
    return "unknown key" if match is None else f"unknown key (did you mean {match}?)"
