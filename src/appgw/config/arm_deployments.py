"""Where the gateway is in an ARM document: resources, loops, conditions, nesting.

A template's `resources` (a list, or languageVersion 2.0's object of
symbolic names) are walked in order: a resource whose `condition` is false
is left out, one with a `copy` loop stands for `count` resources (each in
its own copyIndex() scope), and a `Microsoft.Resources/deployments`
resource is entered: its inline `template`, or the file its `templateLink`
names (`relativePath`, or a `uri` mapped onto a file beside the main one),
with its `parameters` evaluated in the parent's scope (one that fails is an
error only where the nested template reads it). An inline template
is evaluated in the parent's scope unless its expressionEvaluationOptions
say `inner`. Every resource met is recorded for reference().

The gateway's own `properties` have their copy loops expanded here; the
rest of their values are evaluated where they are read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from appgw.config.arm_template import Template, lower_keys
from appgw.config.fields import Invalid
from appgw.config.jsonc import loads as load_json

GATEWAY_TYPE = "microsoft.network/applicationgateways"
DEPLOYMENT_TYPE = "microsoft.resources/deployments"
_MAX_DEPTH = 8


Found = tuple[Mapping[str, Any], Template, Mapping[str, Any]]


def gateways(
    document: Mapping[str, Any], template: Template, base: Path, depth: int = 0
) -> Iterator[Found]:
    """Every application gateway resource in a template and its nested
    deployments: the resource, its scope, and the template that holds it."""
    if depth > _MAX_DEPTH:
        raise Invalid(f"deployments nested more than {_MAX_DEPTH} deep")
    resources = lower_keys(document).get("resources")
    if isinstance(resources, Mapping):  # languageVersion 2.0: symbolic names
        resources = list(resources.values())
    if not isinstance(resources, list):
        raise Invalid("resources: must be a list")
    found: list[Found] = []
    for resource, scope in _expanded(resources, template):
        kind = str(lower_keys(resource).get("type", "")).lower()
        if kind == GATEWAY_TYPE:
            found.append((resource, scope, document))
        elif kind == DEPLOYMENT_TYPE:
            found.extend(_nested(resource, scope, base, depth))
    yield from found


def deployed(document: Mapping[str, Any], template: Template, kind: str) -> list[Mapping[str, Any]]:
    """The template's resources of type `kind` that a deployment would create:
    their `condition` holds (copy loops and nested deployments aside)."""
    resources = lower_keys(document).get("resources")
    if isinstance(resources, Mapping):  # languageVersion 2.0: symbolic names
        resources = list(resources.values())
    if not isinstance(resources, list):
        return []
    kind = kind.lower()
    candidates = [
        r
        for r in resources
        if isinstance(r, Mapping) and str(lower_keys(r).get("type", "")).lower() == kind
    ]
    return [resource for resource, _ in _expanded(candidates, template)]


def _expanded(resources: list[Any], template: Template) -> list[tuple[Mapping[str, Any], Template]]:
    out = []
    for resource in resources:
        if not isinstance(resource, Mapping):
            continue
        spec = lower_keys(resource)
        is_gateway = str(spec.get("type", "")).lower() in (GATEWAY_TYPE, DEPLOYMENT_TYPE)
        try:
            for scope in _instances(spec, template):
                if "condition" in spec and not _condition(spec["condition"], scope):
                    continue
                _record(spec, scope)
                out.append((resource, scope))
        except Invalid as e:
            if is_gateway:
                name = spec.get("name", "?")
                raise Invalid(f"resources[{name}]: {e}") from None
            # A resource appgw does not run whose loop cannot be evaluated:
            # reference() to it says so when something needs it.
    return out


def _instances(spec: Mapping[str, Any], template: Template) -> list[Template]:
    loop = lower_keys(spec.get("copy"))
    if not loop:
        return [template]
    name = loop.get("name")
    if not isinstance(name, str) or not name:
        raise Invalid("copy: needs a name")
    return [template.within(name, i) for i in range(template.count(loop.get("count"), name))]


def _condition(value: Any, scope: Template) -> bool:
    result = scope.resolve(value)
    if isinstance(result, str) and result.lower() in ("true", "false"):
        result = result.lower() == "true"
    if not isinstance(result, bool):
        raise Invalid(f"condition must be true or false, not {result!r}")
    return result


def _record(spec: Mapping[str, Any], scope: Template) -> None:
    try:
        name = scope.resolve(spec.get("name"))
    except Invalid:
        return
    if isinstance(name, str) and name:
        short = name.rstrip("/").split("/")[-1].lower()
        scope.shared.resources.setdefault(short, (spec, scope))


def _nested(resource: Mapping[str, Any], scope: Template, base: Path, depth: int) -> list[Found]:
    spec = lower_keys(resource)
    name = spec.get("name", "?")
    props = lower_keys(spec.get("properties"))
    where = f"resources[{name}]"
    options = lower_keys(props.get("expressionevaluationoptions"))
    inner = str(options.get("scope", "outer")).lower() == "inner"
    if "template" in props:
        document, child_base = props["template"], base
    elif "templatelink" in props:
        path = linked_file(lower_keys(props["templatelink"]), scope, base, where)
        document, child_base, inner = _read_template(path, where), path.parent, True
        scope.shared.files.append(str(path))
    else:
        return []
    if not isinstance(document, Mapping):
        raise Invalid(f"{where}.properties.template: must be an object")
    if not inner:
        return list(gateways(document, scope, child_base, depth + 1))
    values = {}
    given = props.get("parameters")
    for key, entry in given.items() if isinstance(given, Mapping) else []:
        entry = lower_keys(entry)
        if "value" in entry:  # evaluated now, an error only where it is read
            values[str(key)] = scope.tolerant(entry["value"])
        elif "reference" in entry:
            raise Invalid(
                f"{where}.properties.parameters.{key}: a Key Vault reference is read only in Azure"
            )
    child = Template.of(document, values=values, references=scope.shared.references)
    problems = child.problems()
    if problems:
        raise Invalid(f"{where}: " + "; ".join(problems))
    return list(gateways(document, child, child_base, depth + 1))


def linked_file(link: Mapping[str, Any], scope: Template, base: Path, where: str) -> Path:
    """The local file a templateLink names; Invalid says how to map a URL onto one."""
    relative = link.get("relativepath")
    if relative is not None:
        path = base / str(scope.resolve(relative))
        if not path.is_file():
            raise Invalid(f"{where}.properties.templateLink.relativePath: no file {path}")
        return path
    uri = scope.resolve(link.get("uri"))
    if not isinstance(uri, str) or not uri:
        raise Invalid(f"{where}.properties.templateLink: needs relativePath or uri")
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = base / unquote(parsed.path)
        if path.is_file():
            return path
    segments = [unquote(s) for s in parsed.path.split("/") if s]
    for start in range(len(segments)):
        candidate = base.joinpath(*segments[start:])
        if candidate.is_file():
            return candidate
    last = segments[-1] if segments else "template.json"
    raise Invalid(
        f"{where}.properties.templateLink.uri: {uri} is not fetched; save it beside the "
        f"main file as {base / last} (or under the same folders as in the URL)"
    )


def _read_template(path: Path, where: str) -> Any:
    try:
        return load_json(path.read_text(encoding="utf-8-sig"))
    except OSError as e:
        raise Invalid(f"{where}: cannot read {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise Invalid(f"{where}: {path}: not valid JSON: {e}") from None


def expand_copies(value: Any, scope: Template) -> Any:
    """`value` with its property copy loops expanded (their inputs evaluated);
    everything else as written."""
    if isinstance(value, list):
        return [expand_copies(v, scope) for v in value]
    if not isinstance(value, Mapping):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key.lower() == "copy" and isinstance(item, list):
            try:
                out.update(scope.copies(item, Template.tolerant))
            except Invalid as e:
                names = ", ".join(str(lower_keys(c).get("name")) for c in item)
                raise Invalid(f"copy {names}: {e}") from None
        else:
            out[key] = expand_copies(item, scope)
    return out


def locate(
    document: Any,
    values: Mapping[str, Any] | None = None,
    references: Mapping[str, Any] | None = None,
    base: Path | None = None,
) -> tuple[Mapping[str, Any], Template | None, Any]:
    """The gateway resource in a parsed JSON document (its property copy loops
    expanded), the template scope around it (None for `az ... show` output),
    and the document whose resources[] hold it (a nested deployment's
    template, for the policies beside it). Raises Invalid with a full message."""
    if isinstance(document, list) and len(document) == 1:
        document = document[0]
    if not isinstance(document, Mapping):
        raise Invalid("expected a JSON object: an ARM template or an application gateway")
    top = lower_keys(document)
    if "resources" in top:
        template = Template.of(document, values, references)
        problems = template.problems()
        if problems:
            raise Invalid("\n".join(problems))
        found = list(gateways(document, template, base or Path(".")))
        if not found:
            raise Invalid("resources: no resource of type Microsoft.Network/applicationGateways")
        if len(found) > 1:
            raise Invalid(f"resources: {len(found)} application gateways; give one a file")
        resource, scope, holder = found[0]
        return expand_copies(resource, scope), scope, holder
    if values:
        names = ", ".join(sorted(values))
        raise Invalid(f"--parameters {names}: this document is not a template (no resources[])")
    kind = str(top.get("type", GATEWAY_TYPE)).lower()
    if kind != GATEWAY_TYPE:
        raise Invalid(f"type: {top['type']!r} is not Microsoft.Network/applicationGateways")
    if "properties" in top or "httplisteners" in top or "frontendports" in top:
        return document, None, document
    raise Invalid(
        "neither an ARM template (no resources[]) nor an application gateway (no properties)"
    )


NIC_TYPE = "microsoft.network/networkinterfaces"


def nic_members(template: Template, pool: str) -> list[str]:
    """The private IP addresses of the document's network interfaces whose IP
    configurations join backend pool `pool` (applicationGatewayBackendAddressPools),
    as the gallery's quickstarts fill a pool. An address given only once
    deployed (privateIPAllocationMethod Dynamic) raises Invalid naming
    `--reference NIC.privateIPAddress=VALUE`."""
    members: list[str] = []
    missing: list[str] = []
    for name, (spec, scope) in list(template.shared.resources.items()):
        if str(spec.get("type", "")).lower() != NIC_TYPE:
            continue
        try:
            properties = lower_keys(scope.deep(spec.get("properties") or {}))
        except Invalid:
            continue
        for config in properties.get("ipconfigurations") or []:
            ip = lower_keys(lower_keys(config).get("properties"))
            pools = ip.get("applicationgatewaybackendaddresspools") or []
            ids = [str(lower_keys(p).get("id", "")) for p in pools]
            if not any(i.rstrip("/").split("/")[-1].strip().lower() == pool.lower() for i in ids):
                continue
            try:
                name = str(scope.resolve(spec.get("name"))).rstrip("/").split("/")[-1]
            except Invalid:
                pass
            wanted = f"{name}.privateipaddress".lower()
            given = next(
                (v for k, v in template.shared.references.items() if k.lower() == wanted), None
            )
            address = given or ip.get("privateipaddress")
            if not isinstance(address, str) or not address:
                missing.append(name)
            else:
                members.append(address)
    if len(missing) == 1:
        raise Invalid(
            f"filled by network interface {missing[0]!r}, whose private IP exists only "
            f"once deployed; give it with --reference {missing[0]}.privateIPAddress=VALUE"
        )
    if missing:
        flags = " ".join(f"--reference {n}.privateIPAddress=VALUE" for n in missing)
        raise Invalid(
            f"filled by network interfaces {', '.join(repr(n) for n in missing)}, whose "
            f"private IPs exist only once deployed; give them with {flags}"
        )
    return members
