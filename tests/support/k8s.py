"""Kubernetes manifests checked against Kubernetes' own object schemas, offline.

Each document is loaded into lightkube's typed models (lightkube-models,
generated from the Kubernetes OpenAPI schema of a release): an unknown kind,
a value of the wrong type or a missing required field is refused by
msgspec's conversion. Conversion alone ignores unknown fields, as the API
server's non-strict decoding does; `kubectl apply` (strict field
validation since Kubernetes 1.27) refuses them, so `unknown_fields` walks
each document against the same models and names every key they lack.

And the Dockerfile's exec-form ENTRYPOINT and CMD, for checking against
appgw's argument parser.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import yaml
from lightkube.core.exceptions import LoadResourceError
from lightkube.core.resource_registry import resource_registry

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "conf" / "k8s" / "appgw.yaml"
DOCKERFILE = REPO / "conf" / "k8s" / "Dockerfile"


def documents(path: Path = MANIFEST) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def model_of(document: dict[str, Any]) -> type[Any]:
    """The lightkube resource class of a document's apiVersion and kind."""
    try:
        return resource_registry.load(document["apiVersion"], document["kind"])
    except (KeyError, LoadResourceError, ModuleNotFoundError) as exc:
        raise AssertionError(
            f"{document.get('apiVersion')}/{document.get('kind')}: no such kind: {exc}"
        ) from None


def problems(document: dict[str, Any]) -> list[str]:
    """What Kubernetes' schema refuses in one document (empty: it is valid)."""
    model = model_of(document)
    found = [f"{path}: unknown field" for path in unknown_fields(document, model)]
    try:
        msgspec.convert(document, model)
    except msgspec.ValidationError as exc:
        found.append(str(exc))
    return found


def unknown_fields(value: Any, model: type[Any]) -> Iterator[str]:
    yield from _walk(value, msgspec.inspect.type_info(model), "$")


def _walk(value: Any, info: msgspec.inspect.Type, path: str) -> Iterator[str]:
    if isinstance(info, msgspec.inspect.UnionType):
        for option in info.types:
            if not isinstance(option, msgspec.inspect.NoneType):
                yield from _walk(value, option, path)
    elif isinstance(info, msgspec.inspect.StructType) and isinstance(value, dict):
        fields = {field.encode_name: field.type for field in info.fields}
        for key, item in value.items():
            if key not in fields:
                yield f"{path}.{key}"
            else:
                yield from _walk(item, fields[key], f"{path}.{key}")
    elif isinstance(info, msgspec.inspect.ListType) and isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, info.item_type, f"{path}[{i}]")
    elif isinstance(info, msgspec.inspect.DictType) and isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, info.value_type, f"{path}.{key}")


def dockerfile_exec_form(instruction: str, path: Path = DOCKERFILE) -> list[str]:
    """The JSON array of the Dockerfile's last `instruction` (ENTRYPOINT, CMD)."""
    found = re.findall(rf"^{instruction}\s+(\[.*\])\s*$", path.read_text(), re.MULTILINE)
    assert found, f"{path.name}: no exec-form {instruction} [...]"
    words = json.loads(found[-1])
    assert isinstance(words, list) and all(isinstance(w, str) for w in words), words
    return words
