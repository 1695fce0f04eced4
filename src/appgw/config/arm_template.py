"""ARM documents: where the gateway is, and what template expressions mean.

Two shapes of JSON hold an application gateway: a deployment template
(`resources[]` with one resource of type Microsoft.Network/applicationGateways)
and the output of `az network application-gateway show` (the resource itself;
some CLI versions flatten `properties` into it).

appgw evaluates no template language beyond a value that is exactly
[parameters('n')] (the parameter's defaultValue) or [variables('n')]. Resource
ids are read by their last path segment, which is how they name the resource
they point at; that survives the punctuation real templates leave behind
(".../frontendPorts/port443')]") and placeholders such as <subid>. An id
written as [resourceId(..., 'name')] or [concat(..., '/frontendPorts/name')]
is read by its last argument.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from appgw.config.fields import Invalid

GATEWAY_TYPE = "microsoft.network/applicationgateways"

_REFERENCE = re.compile(r"^\[\s*(parameters|variables)\s*\(\s*'([^']*)'\s*\)\s*\]$", re.I)
_ID_CALL = re.compile(r"^\[\s*(?:resourceId|concat)\s*\((.*)\)\s*\]$", re.I | re.S)
_LAST_ARG = re.compile(r"(?:'([^']*)'|(parameters|variables)\s*\(\s*'([^']*)'\s*\))\s*$", re.I)
_ID_PUNCTUATION = "')]\" \t"


def _lower_keys(mapping: Any) -> dict[str, Any]:
    if not isinstance(mapping, Mapping):
        return {}
    return {str(k).lower(): v for k, v in mapping.items()}


def _is_expression(value: str) -> bool:
    return value.startswith("[") and value.endswith("]") and not value.startswith("[[")


class Template:
    """The parameters and variables of a template, to resolve references to them."""

    def __init__(self, parameters: Mapping[str, Any], variables: Mapping[str, Any]) -> None:
        self.parameters = _lower_keys(parameters)
        self.variables = _lower_keys(variables)

    @classmethod
    def of(cls, document: Mapping[str, Any]) -> Template:
        top = _lower_keys(document)
        return cls(top.get("parameters") or {}, top.get("variables") or {})

    def resolve(self, value: Any, path: str = "") -> Any:
        """A value with [parameters('n')] / [variables('n')] replaced; raises Invalid
        for any other template expression."""
        for _ in range(16):
            if not isinstance(value, str):
                return value
            if value.startswith("[["):
                return value[1:]  # ARM's escape for a literal "["
            if not _is_expression(value):
                return value
            match = _REFERENCE.match(value)
            if match is None:
                raise Invalid(
                    f"template expression {value!r} is not supported; only "
                    "[parameters('name')] and [variables('name')] are resolved"
                )
            value = self._lookup(match.group(1).lower(), match.group(2))
        raise Invalid("parameters and variables refer to each other in a loop")

    def _lookup(self, kind: str, name: str) -> Any:
        if kind == "variables":
            if name.lower() not in self.variables:
                raise Invalid(f"no variable named {name!r}")
            return self.variables[name.lower()]
        if name.lower() not in self.parameters:
            raise Invalid(f"no parameter named {name!r}")
        parameter = _lower_keys(self.parameters[name.lower()])
        if "defaultvalue" not in parameter:
            raise Invalid(f"parameter {name!r} has no defaultValue")
        return parameter["defaultvalue"]


def id_name(value: Any, collection: str, template: Template | None) -> str:
    """The name of the resource a resource id points at, in `collection`
    ("frontendPorts"); raises Invalid when it cannot be read."""
    if not isinstance(value, str):
        raise Invalid("the id must be a string")
    text = value.strip()
    if template is not None and _is_expression(text):
        match = _REFERENCE.match(text)
        if match is not None:
            return id_name(template.resolve(text), collection, template)
        call = _ID_CALL.match(text)
        last = _LAST_ARG.search(call.group(1)) if call else None
        if last is None:
            raise Invalid(f"cannot read the resource id {value!r}")
        if last.group(1) is not None:
            text = last.group(1)
        else:
            text = template.resolve(f"[{last.group(2)}('{last.group(3)}')]")
            if not isinstance(text, str):
                raise Invalid(f"cannot read the resource id {value!r}")
    segments = [s for s in text.rstrip(_ID_PUNCTUATION).split("/") if s]
    if not segments:
        raise Invalid(f"{value!r} is not a resource id")
    if len(segments) >= 2 and segments[-2].lower() != collection.lower():
        raise Invalid(f"{value!r} is not the id of one of {collection}")
    return segments[-1]


def locate(document: Any) -> tuple[Mapping[str, Any], Template | None]:
    """The gateway resource in a parsed JSON document, and the template around
    it (None for `az ... show` output). Raises Invalid with a full message."""
    if isinstance(document, list) and len(document) == 1:
        document = document[0]
    if not isinstance(document, Mapping):
        raise Invalid("expected a JSON object: an ARM template or an application gateway")
    top = _lower_keys(document)
    if "resources" in top:
        resources = top["resources"]
        if not isinstance(resources, list):
            raise Invalid("resources: must be a list")
        gateways = [
            r
            for r in resources
            if isinstance(r, Mapping)
            and str(_lower_keys(r).get("type", "")).lower() == GATEWAY_TYPE
        ]
        if not gateways:
            raise Invalid("resources: no resource of type Microsoft.Network/applicationGateways")
        if len(gateways) > 1:
            raise Invalid(f"resources: {len(gateways)} application gateways; give one a file")
        return gateways[0], Template.of(document)
    kind = str(top.get("type", GATEWAY_TYPE)).lower()
    if kind != GATEWAY_TYPE:
        raise Invalid(f"type: {top['type']!r} is not Microsoft.Network/applicationGateways")
    if "properties" in top or "httplisteners" in top or "frontendports" in top:
        return document, None
    raise Invalid(
        "neither an ARM template (no resources[]) nor an application gateway (no properties)"
    )
