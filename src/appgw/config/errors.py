"""Configuration errors: every problem found, each naming its key path."""

from __future__ import annotations


class ConfigError(Exception):
    """A configuration that cannot be used.

    `errors` lists every problem found, each as "key.path: what is wrong"
    (for example "settings.chat.request_timeout: must be 1..86400").
    """

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = list(errors)
        super().__init__(f"{source}: " + "; ".join(self.errors))

    def report(self) -> str:
        lines = [f"{self.source}: {len(self.errors)} error(s)"]
        lines += [f"  {e}" for e in self.errors]
        return "\n".join(lines)
