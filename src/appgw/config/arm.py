"""ARM template or `az network application-gateway show` JSON -> a Draft.

Property names are case-insensitive, as in ARM. Error key paths use ARM's
names: the collection, the resource's name, then the property
("backendHttpSettingsCollection.chat-settings.requestTimeout"), without the
`properties` level. Every key is one of three things: read and mapped onto
the model; Azure-only and irrelevant to a local gateway (accepted silently,
AZURE_ONLY); or an Azure feature that would change behaviour but appgw does
not implement (loaded with a warning in Config.warnings, NOT_IMPLEMENTED).
Any other key is an error: a misspelled key must not pass unnoticed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from appgw.config import arm_waf
from appgw.config.arm_deployments import locate
from appgw.config.arm_parameters import read_parameters
from appgw.config.arm_reader import ArmReader
from appgw.config.arm_resources import build_config
from appgw.config.arm_template import Template
from appgw.config.arm_tls import default_policy_name
from appgw.config.draft import Draft
from appgw.config.errors import ConfigError
from appgw.config.fields import Invalid, Section
from appgw.config.inputs import Inputs, read_certificates, read_references


def build(document: Any, source: str, inputs: Sequence[Inputs] = ()) -> Draft:
    """A parsed JSON document -> Draft; `source` is its file, `inputs` the
    `--parameters`, `--reference` and `--certificate` lists (later ones win).

    Raises ConfigError when the document holds no application gateway, or
    when the inputs cannot be read.
    """
    values: dict[str, Any] = {}
    references: dict[str, Any] = {}
    certificates: dict[str, tuple[str, str | None]] = {}
    files: list[str] = []
    try:
        for group in inputs:
            values.update(read_parameters(group.parameters, group.base, files))
            references.update(read_references(group.references))
            certificates.update(read_certificates(group.certificates, group.base))
        base = Path(source).absolute().parent
        resource, template, holder = locate(document, values, references, base)
    except Invalid as e:
        raise ConfigError(source, str(e).split("\n")) from None
    arm = ArmReader(template)
    arm.certificates = certificates
    arm.default_policy = _default_policy(resource, template)
    top = arm.section(resource, "")
    _child_resources(arm, top)
    if top.has("properties"):
        properties = top.get_section("properties")
        arm.finish(top, "resource")
        if properties is None:
            raise ConfigError(source, arm.errors)
        properties.path = ""
    else:  # flattened az output: the envelope and the properties side by side
        properties = top
    arm.index_names(properties)
    config = build_config(arm, properties, source)
    config = arm_waf.apply(arm, holder, properties, config)  # WAF policies: arm_waf.py
    arm.finish(properties, "gateway", also="resource" if properties is top else None)
    files += [path for path, _ in certificates.values()]
    if template is not None:
        files += template.shared.files
    config = attrs.evolve(config, warnings=tuple(arm.warnings), files=tuple(files))
    return Draft(
        config,
        tuple(one_per_cause(arm.errors)),
        frozenset(arm.quiet | _resources_of(arm.unresolved)),
    )


_NAMES_A_FLAG = re.compile(r"--(parameters|reference|certificate) ")


def one_per_cause(errors: list[str]) -> list[str]:
    """One message per root cause: a missing input (a parameter, a reference, a
    certificate) read in three places is one error naming the three key paths."""
    paths: dict[str, list[str]] = {}
    for error in errors:
        path, sep, message = error.partition(": ")
        key = message if sep and _NAMES_A_FLAG.search(message) else error
        if key == error:
            sep = ""
        paths.setdefault(key, []).append(path if sep else "")
    out = []
    for message, where in paths.items():
        named = [w for w in where if w]
        out.append(f"{', '.join(named)}: {message}" if named else message)
    return out


def _resources_of(quiet: set[str]) -> set[str]:
    """The resources ("httpListeners.web") with a value that could not be
    evaluated: validation's findings about them would follow from that error."""
    prefixes = set()
    for path in quiet:
        parts = path.split(".")
        if len(parts) > 2:
            prefixes.add(".".join(parts[:2]))
    return prefixes


def _default_policy(resource: Mapping[str, Any], template: Template | None) -> str | None:
    envelope = {str(k).lower(): v for k, v in resource.items()}
    inner = envelope.get("properties")
    inner = inner if isinstance(inner, Mapping) else envelope
    printed = {str(k).lower(): v for k, v in inner.items()}.get("defaultpredefinedsslpolicy")
    version = envelope.get("apiversion")
    if template is not None and isinstance(version, str):
        try:
            version = template.resolve(version)
        except Invalid:
            version = None
    return default_policy_name(
        version if isinstance(version, str) else None,
        printed if isinstance(printed, str) else None,
    )


def _child_resources(arm: ArmReader, top: Section) -> None:
    """A template's child resources of the gateway (diagnostic settings, ...): warned of."""
    children = top.raw("resources")
    for i, child in enumerate(children if isinstance(children, list) else []):
        spec = {str(k).lower(): v for k, v in child.items()} if isinstance(child, dict) else {}
        what = f"{spec.get('type', 'a resource')} {spec.get('name', '')!r}".strip()
        arm.warnings.append(
            f"resources[{i}]: {what} is a child resource of the gateway, not run by appgw; ignored"
        )
