"""Reading a configuration file: which format it is, then load and validate.

A `.toml` file, or text that parses as TOML, is appgw's own format; JSON is
an ARM template or `az network application-gateway show` output. Text
written by Windows tools (a UTF-8 byte order mark, UTF-16 from PowerShell's
redirection) is decoded as such. Every problem, the loader's and
validation's, ends up in one ConfigError.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

import attrs

from appgw.config import arm, jsonc, toml
from appgw.config.connect_to import parse_connect_to
from appgw.config.errors import ConfigError
from appgw.config.inputs import KEYS, Inputs, from_toml
from appgw.config.model import Config
from appgw.config.naming import ARM_NAMING, TOML_NAMING
from appgw.config.validate import validate

_TOML_POSITION = re.compile(r"^(.*) \(at line (\d+), column (\d+)\)$", re.S)


def load_file(path: str, inputs: Inputs | None = None) -> Config:
    """Load and validate a TOML file, an ARM template or `az ... show` JSON;
    `inputs` are the command line's `--parameters`, `--reference`, ...

    A TOML file whose `[gateway]` names a `template` is that template (or az
    show JSON) with the inputs the table lists and its gateway settings.
    Raises ConfigError listing every problem with its key path, or naming
    the line of a syntax error.
    """
    text = read_text(path)
    kind, document = parse(path, text)
    given = [inputs] if inputs is not None else []
    if kind == "toml" and isinstance(document.get("gateway"), dict):
        gateway = dict(document["gateway"])
        if any(key in gateway for key in KEYS[:-1]):
            return _load_with_template(path, document, gateway, given)
        if "connect_to" in gateway:  # appgw's own format with [gateway] connect_to
            _, kept, errors = from_toml(gateway, str(Path(path).absolute().parent))
            if errors:
                raise ConfigError(path, errors)
            document = {**document, "gateway": gateway}
            given.insert(0, kept)
    if kind == "toml":
        if any(group.parameters or group.references or group.certificates for group in given):
            raise ConfigError(
                path,
                [
                    "--parameters, --reference and --certificate are for ARM templates "
                    "and az show JSON, not appgw's TOML"
                ],
            )
        draft, naming = toml.build(document, path), TOML_NAMING
    else:
        draft, naming = arm.build(document, path, given), ARM_NAMING
    errors = draft.merge(validate(draft.config, naming))
    if errors:
        raise ConfigError(path, errors)
    return _with_connect_to(draft.config, path, given)


def _with_connect_to(config: Config, path: str, given: list[Inputs]) -> Config:
    table = {}
    for group in given:
        try:
            flag = "gateway.connect_to:" if group.toml else "--connect-to"
            table.update(parse_connect_to(group.connect_to, flag))
        except ValueError as e:
            raise ConfigError(path, [str(e)]) from None
    return attrs.evolve(config, connect_to=table) if table else config


def _load_with_template(
    path: str, document: dict[str, Any], gateway: dict[str, Any], given: list[Inputs]
) -> Config:
    base = str(Path(path).absolute().parent)
    template, kept, errors = from_toml(gateway, base)
    if template is None and not errors:
        errors.append("gateway.parameters: needs gateway.template, the ARM template they are for")
    errors += [
        f"{key}: a TOML file with gateway.template holds only the [gateway] table"
        for key in document
        if key != "gateway"
    ]
    if errors or template is None:
        raise ConfigError(path, errors)
    settings = toml.build({"gateway": gateway}, path)
    if settings.errors:
        raise ConfigError(path, list(settings.errors))
    source = os.path.join(base, template)
    kind, arm_document = parse(source, read_text(source))
    if kind != "json":
        raise ConfigError(path, [f"gateway.template: {template} is not JSON"])
    draft = arm.build(arm_document, source, [kept, *given])
    errors = draft.merge(validate(draft.config, ARM_NAMING))
    if errors:
        raise ConfigError(source, errors)
    config = attrs.evolve(
        draft.config, gateway=settings.config.gateway, files=(source, *draft.config.files)
    )
    return _with_connect_to(config, path, [kept, *given])


def read_text(path: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(path, [f"cannot read: {e.strerror or e}"]) from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        raise ConfigError(path, [f"not {encoding.upper()} text (byte {e.start})"]) from None


def parse(path: str, text: str) -> tuple[str, Any]:
    """("toml" | "json", the parsed document); raises ConfigError naming the line."""
    suffix = Path(path).suffix.lower()
    if suffix == ".toml":
        return "toml", _parse_toml(path, text)
    if suffix == ".json" or text.lstrip().startswith("{"):
        return "json", _parse_json(path, text)
    try:
        return "json", json.loads(text)
    except ValueError:
        return "toml", _parse_toml(path, text)


def _parse_toml(path: str, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        message = f"not valid TOML: {e}"
        match = _TOML_POSITION.match(str(e))
        if match is not None:
            line, column = match.group(2), match.group(3)
            message = f"line {line}, column {column}: not valid TOML: {match.group(1)}"
        raise ConfigError(path, [message]) from None


def _parse_json(path: str, text: str) -> Any:
    try:
        return jsonc.loads(text)
    except jsonc.JsonError as e:
        raise ConfigError(
            path, [f"line {e.line}, column {e.column}: not valid JSON: {e.message}"]
        ) from None
