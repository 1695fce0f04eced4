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
import os
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
    toml: bool = False  # from a TOML file's [gateway] table (messages name its keys)

    def given(self) -> bool:
        return bool(self.parameters or self.references or self.certificates or self.connect_to)

    def to_json(self) -> dict[str, Any]:
        return {
            "parameters": list(self.parameters),
            "references": list(self.references),
            "certificates": list(self.certificates),
            "connect_to": list(self.connect_to),
            "base": self.base,
        }

    @classmethod
    def from_json(cls, data: Any) -> Inputs:
        if not isinstance(data, dict):
            raise Invalid("inputs: not an object")
        def items(key: str) -> tuple[str, ...]:
            return tuple(str(item) for item in data.get(key) or ())

        return cls(
            parameters=items("parameters"),
            references=items("references"),
            certificates=items("certificates"),
            connect_to=items("connect_to"),
            base=str(data.get("base") or "."),
        )


# [gateway] keys that belong to a template; connect_to (last) also to appgw's TOML.
KEYS = ("template", "parameters", "references", "certificates", "connect_to")


def from_toml(gateway: dict[str, Any], base: str) -> tuple[str | None, Inputs, list[str]]:
    """`[gateway]`'s template and inputs (taken out of the table), and errors."""
    errors = []
    template = gateway.pop("template", None)
    if template is not None and not isinstance(template, str):
        errors.append("gateway.template: must be a string")
        template = None
    lists: dict[str, tuple[str, ...]] = {}
    for key in KEYS[1:]:
        value = gateway.pop(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors.append(f"gateway.{key}: must be a list of strings")
            value = []
        lists[key] = tuple(value)
    inputs = Inputs(
        parameters=lists["parameters"],
        references=lists["references"],
        certificates=lists["certificates"],
        connect_to=lists["connect_to"],
        base=base,
        toml=True,
    )
    return template, inputs, errors


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


def read_certificates(items: tuple[str, ...], base: str = ".") -> dict[str, tuple[str, str | None]]:
    """["cert=site.pfx:secret"] -> {"cert": ("/base/site.pfx", "secret")} (names lower case)."""
    out: dict[str, tuple[str, str | None]] = {}
    for item in items:
        name, sep, rest = item.partition("=")
        if not sep or not name.strip() or not rest:
            raise Invalid(f"--certificate {item}: expected NAME=FILE[:PASSWORD]")
        path, colon, password = rest.partition(":")
        out[name.strip().lower()] = (os.path.join(base, path), password if colon else None)
    return out
