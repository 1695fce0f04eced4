"""Template parameters as `az deployment group create --parameters` takes them.

Each `--parameters` item is one of az's forms, later items winning:

- `FILE` or `@FILE`: a parameters file (the deploymentParameters schema,
  `{"parameters": {"name": {"value": ...}}}`, or the bare
  `{"name": {"value": ...}}`), JSON with comments allowed;
- `{"name": {"value": ...}}`: the same, inline;
- `NAME=VALUE`: the value as JSON when it parses as JSON, else the string;
- `NAME=@FILE`: the file's text as a string.

A Key Vault reference in a parameters file cannot be read locally: it is an
error naming `--parameters NAME=VALUE`. Given values are checked against
the template's declarations (`parameter_problems`) and converted as ARM
does for a value written as a string (`coerce`: "80" for an int).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from appgw.config.arm_expressions import Failed
from appgw.config.fields import Invalid
from appgw.config.jsonc import loads as load_json


def read_parameters(
    items: Sequence[str], base: str = ".", files: list[str] | None = None
) -> dict[str, Any]:
    """The parameter values of `--parameters` items; Invalid names the bad item.

    Relative file names are read from `base` (a TOML file's directory); the
    files read are added to `files`.
    """
    files = [] if files is None else files
    values: dict[str, Any] = {}
    for item in items:
        text = item.strip()
        if text.startswith("{"):
            values.update(_parameters_file(_json(text, "--parameters"), "--parameters"))
            continue
        name, sep, value = text.partition("=")
        if sep and name and "/" not in name and not _is_file(Path(base, text)):
            if value.startswith("@"):
                values[name] = _read(base, value[1:], f"--parameters {item}")
                files.append(os.path.join(base, value[1:]))
            else:
                values[name] = _maybe_json(value)
            continue
        path = text[1:] if text.startswith("@") else text
        document = _json(_read(base, path, f"--parameters {item}"), f"--parameters {path}")
        files.append(os.path.join(base, path))
        values.update(_parameters_file(document, f"--parameters {path}"))
    return values


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for a file: a NAME=VALUE
        return False


def _read(base: str, path: str, what: str) -> str:
    if path.endswith(".bicepparam"):
        raise Invalid(f"{what}: .bicepparam files are not read; build it with `az bicep`")
    try:
        return Path(base, path).expanduser().read_text(encoding="utf-8-sig")
    except OSError as e:
        raise Invalid(f"{what}: cannot read {path}: {e.strerror or e}") from None


def _json(text: str, what: str) -> Any:
    try:
        return load_json(text)
    except ValueError as e:
        raise Invalid(f"{what}: not valid JSON: {e}") from None


def _maybe_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _parameters_file(document: Any, what: str) -> dict[str, Any]:
    if not isinstance(document, Mapping):
        raise Invalid(f"{what}: a parameters file is a JSON object")
    top = {str(k).lower(): v for k, v in document.items()}
    if isinstance(top.get("parameters"), Mapping) and (
        "$schema" in top or "contentversion" in top or len(top) == 1
    ):
        document = top["parameters"]
    values: dict[str, Any] = {}
    for name, entry in document.items():
        if str(name).startswith("$"):
            continue
        spec = {str(k).lower(): v for k, v in entry.items()} if isinstance(entry, Mapping) else {}
        if "value" in spec:
            values[str(name)] = spec["value"]
        elif "reference" in spec:
            raise Invalid(
                f"{what}: parameter {name!r} is a Key Vault reference, which is read only in "
                f"Azure; give its value with --parameters {name}=VALUE"
            )
        else:
            raise Invalid(f'{what}: parameter {name!r} needs {{"value": ...}}')
    return values


def parameter_problems(
    declared: Mapping[str, Any], values: Mapping[str, Any], names: Sequence[str] = ()
) -> list[str]:
    """Messages for given values the template does not declare or does not allow;
    `declared` is keyed in lower case, `names` are the declared names as written."""
    problems = []
    known = ", ".join(sorted(names or declared, key=str.lower)) or "none"
    for key, value in values.items():
        if key.lower() not in declared:
            problems.append(
                f"--parameters: the template has no parameter named {key!r} (it has: {known})"
            )
            continue
        if isinstance(value, Failed):  # a nested deployment's: an error where it is read
            continue
        spec = {str(k).lower(): v for k, v in (declared[key.lower()] or {}).items()}
        try:
            coerce(key, spec, value)
        except Invalid as e:
            problems.append(f"parameters.{key}: {e}")
    return problems


_TYPES = {
    "string": str,
    "securestring": str,
    "int": int,
    "bool": bool,
    "array": list,
    "object": dict,
    "secureobject": dict,
}


def coerce(name: str, declared: Mapping[str, Any], value: Any) -> Any:
    """A given value as the declared type, converted from a string where ARM does so."""
    if isinstance(value, Failed):
        raise Invalid(value.message)
    kind = str(declared.get("type", "")).lower()
    want = _TYPES.get(kind)
    if isinstance(value, str) and want is not None and want is not str:
        if want is bool and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        elif want is int and value.strip().lstrip("-").isdigit():
            value = int(value)
        elif want in (list, dict):
            value = _maybe_json(value)
    if want is int and isinstance(value, bool):
        raise Invalid(f"parameter {name!r} is an int, not {value!r}")
    if want is str and not isinstance(value, str):
        value = json.dumps(value) if isinstance(value, list | dict) else str(value)
    if want is not None and not isinstance(value, want):
        raise Invalid(f"parameter {name!r} must be of type {declared.get('type')}, not {value!r}")
    allowed = declared.get("allowedvalues")
    if isinstance(allowed, list) and allowed and value not in allowed:
        shown = ", ".join(json.dumps(a) for a in allowed)
        raise Invalid(f"parameter {name!r}: {json.dumps(value)} is not one of {shown}")
    return value
