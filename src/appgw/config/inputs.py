"""What a deployment takes besides its file: the command line's inputs.

`--parameters` (az's forms, see arm_parameters.py), `--reference NAME.PATH=VALUE`
(a value that exists only once deployed in Azure), `--certificate
NAME=FILE[:PASSWORD]` (a certificate the document carries without its private
key) and `--connect-to HOST[:PORT]=HOST[:PORT]` are kept as written, so a
reload reads the files they name again. The same lists can be written in a
TOML file's `[gateway]` table (parameters, references, certificates,
connect_to), relative to that file.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from appgw.config.fields import Invalid


@attrs.frozen
class Inputs:
    parameters: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    certificates: tuple[str, ...] = ()
    connect_to: tuple[str, ...] = ()
    base: str = "."  # where relative file names are read from

    def __add__(self, other: Inputs) -> Inputs:
        """These inputs, then `other`'s (which win where both give a value)."""
        return Inputs(
            self.parameters + other.parameters,
            self.references + other.references,
            self.certificates + other.certificates,
            self.connect_to + other.connect_to,
            other.base if other.base != "." else self.base,
        )


def read_references(items: tuple[str, ...]) -> dict[str, Any]:
    """["web.outputs.fqdn.value=127.0.0.2"] -> {"web.outputs.fqdn.value": "127.0.0.2"}."""
    values: dict[str, Any] = {}
    for item in items:
        path, sep, value = item.partition("=")
        if not sep or "." not in path.strip(".") or not path.strip():
            raise Invalid(
                f"--reference {item}: expected NAME.PATH=VALUE "
                "(for example webServer1.outputs.fqdn.value=127.0.0.2)"
            )
        try:
            values[path.strip()] = json.loads(value)
        except ValueError:
            values[path.strip()] = value
    return values


def read_certificates(items: tuple[str, ...]) -> dict[str, tuple[str, str | None]]:
    """["cert=site.pfx:secret"] -> {"cert": ("site.pfx", "secret")} (names lower case)."""
    out: dict[str, tuple[str, str | None]] = {}
    for item in items:
        name, sep, rest = item.partition("=")
        if not sep or not name.strip() or not rest:
            raise Invalid(f"--certificate {item}: expected NAME=FILE[:PASSWORD]")
        path, colon, password = rest.partition(":")
        out[name.strip().lower()] = (path, password if colon else None)
    return out
