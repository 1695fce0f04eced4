"""JSON as Azure's tools write and read it: comments and trailing commas allowed.

ARM templates and parameters files may hold `//` and `/* */` comments and
trailing commas (Azure Resource Manager and VS Code accept them). Plain JSON
is parsed by the standard library (fast: a 50-rule template in a few
milliseconds); only text it refuses goes through json5, whose grammar is a
superset of JSON with comments and trailing commas. An error names the line
and column of the first problem.
"""

from __future__ import annotations

import json
import re
from typing import Any

import json5

_POSITION = re.compile(r"^<string>:(\d+) (.*?)(?: at column (\d+))?$", re.S)


class JsonError(ValueError):
    """Text that is not JSON even with comments; `line` and `column` point at it."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"line {line}, column {column}: {message}")
        self.message, self.line, self.column = message, line, column


def loads(text: str) -> Any:
    """The value of JSON text that may hold comments and trailing commas."""
    try:
        return json.loads(text, strict=False)  # tabs inside strings, as ARM takes them
    except json.JSONDecodeError as strict:
        try:
            return json5.loads(text)
        except ValueError as e:
            match = _POSITION.match(str(e))
            if match is not None and match.group(3):
                raise JsonError(match.group(2), int(match.group(1)), int(match.group(3))) from None
            raise JsonError(strict.msg, strict.lineno, strict.colno) from None
