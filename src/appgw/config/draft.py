"""What a loader hands to validation: a Config and the problems found so far."""

from __future__ import annotations

from attrs import frozen

from appgw.config.model import Config


@frozen
class Draft:
    """A configuration as read from a file, before validation.

    `config` holds every resource that could be read, with placeholders for
    values that could not (a missing port is 0). `errors` are the loader's
    own problems. `quiet` lists the key paths of those placeholders, whose
    problems were already reported, so validation stays silent about them
    (a wrongly typed port, a listener whose frontend port is broken, a
    certificate whose file is unreadable).
    """

    config: Config
    errors: tuple[str, ...] = ()
    quiet: frozenset[str] = frozenset()

    def merge(self, validation_errors: list[str]) -> list[str]:
        """Every error: the loader's, then validation's not already covered (at a
        quiet path, or under one)."""
        return list(self.errors) + [
            e for e in validation_errors if not self._covered(error_path(e))
        ]

    def _covered(self, path: str) -> bool:
        if path in self.quiet:
            return True
        head, _, _ = path.rpartition(".")
        while head:
            if head in self.quiet:
                return True
            head, _, _ = head.rpartition(".")
        return False


def error_path(error: str) -> str:
    """The key path of an error message "key.path: message"."""
    return error.split(": ", 1)[0]
