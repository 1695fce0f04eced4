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

from collections.abc import Iterator
from typing import Any

import attrs

from appgw.config import arm_waf
from appgw.config.arm_resources import build_config
from appgw.config.arm_template import Template, id_name, locate
from appgw.config.draft import Draft
from appgw.config.errors import ConfigError
from appgw.config.fields import Invalid, Section, join


def _keys(text: str) -> frozenset[str]:
    return frozenset(k.lower() for k in text.split())


# Accepted and ignored: they change nothing when the gateway runs locally.
# "resource" is the gateway resource's envelope, "gateway" its properties,
# "*" every sub-resource (frontendPorts[], httpListeners[], ...).
AZURE_ONLY: dict[str, frozenset[str]] = {
    "resource": _keys(
        "apiVersion type name location tags zones identity dependsOn comments id etag"
        " resourceGroup systemData"
    ),
    "gateway": _keys(
        "sku autoscaleConfiguration zones location tags etag id type provisioningState"
        " resourceGuid operationalState gatewayIPConfigurations enableFips"
        " privateEndpointConnections defaultPredefinedSslPolicy forceFirewallPolicyAssociation"
    ),
    "*": _keys("name id etag type resourceGroup provisioningState"),
    "frontendIPConfigurations": _keys(
        "privateIPAllocationMethod publicIPAddress subnet privateLinkConfiguration"
        " httpListeners listeners urlPathMaps requestRoutingRules routingRules"
    ),
    "frontendPorts": _keys("httpListeners listeners"),
    "sslCertificates": _keys("publicCertData"),
    "backendAddressPools": _keys("outboundRule outboundRules loadBalancerBackendAddresses"),
    "backendHttpSettingsCollection": _keys(
        "probeEnabled requestRoutingRules urlPathMaps pathRules"
    ),
    "probes": _keys("backendHttpSettings"),
    "sslProfiles": _keys("httpListeners listeners"),
    "trustedClientCertificates": _keys("validatedCertData clientCertIssuerDN"),
    "redirectConfigurations": _keys("requestRoutingRules urlPathMaps pathRules"),
}

# Azure features that would change behaviour and that appgw does not
# implement: loaded with a warning when set (an empty list or false is quiet).
NOT_IMPLEMENTED: dict[str, frozenset[str]] = {
    "gateway": _keys(
        "authenticationCertificates privateLinkConfigurations listeners"
        " routingRules backendSettingsCollection"
        " loadDistributionPolicies globalConfiguration enableHttp2"
    ),
    "backendAddressPools": _keys("backendIPConfigurations"),
    "backendHttpSettingsCollection": _keys("authenticationCertificates dedicatedBackendConnection"),
    "urlPathMaps": _keys("defaultLoadDistributionPolicy"),
    "pathRules": _keys("loadDistributionPolicy"),
    "requestRoutingRules": _keys("loadDistributionPolicy"),
}

# Keys of a sub-resource around its `properties`.
_ENVELOPE = _keys("name id etag type resourceGroup properties")


def build(document: Any, source: str) -> Draft:
    """A parsed JSON document -> Draft; `source` is its file.

    Raises ConfigError when the document holds no application gateway.
    """
    try:
        resource, template = locate(document)
    except Invalid as e:
        raise ConfigError(source, [str(e)]) from None
    arm = ArmReader(template)
    top = arm.section(resource, "")
    if top.has("properties"):
        properties = top.get_section("properties")
        arm.finish(top, "resource")
        if properties is None:
            raise ConfigError(source, arm.errors)
        properties.path = ""
    else:  # flattened az output: the envelope and the properties side by side
        properties = top
    config = build_config(arm, properties, source)
    config = arm_waf.apply(arm, document, properties, config)  # WAF policies: arm_waf.py
    arm.finish(properties, "gateway", also="resource" if properties is top else None)
    config = attrs.evolve(config, warnings=tuple(arm.warnings))
    return Draft(config, tuple(arm.errors), frozenset(arm.quiet))


class ArmReader:
    """What one ARM load shares: errors, warnings, quiet paths, the template."""

    def __init__(self, template: Template | None) -> None:
        self.template = template
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.quiet: set[str] = set()

    def section(self, data: Any, path: str) -> Section:
        return Section(
            data,
            path,
            self.errors,
            fold_case=True,
            resolve=self.template.resolve if self.template else None,
            table_word="object",
            quiet=self.quiet,
        )

    def finish(self, s: Section, kind: str, also: str | None = None) -> None:
        """Sort the keys of `s` not read: Azure-only, not implemented, or unknown."""
        quiet = AZURE_ONLY.get(kind, frozenset()) | AZURE_ONLY.get(also or "", frozenset())
        if kind not in ("resource", "gateway"):
            quiet |= AZURE_ONLY["*"]
        for key in s.unused():
            if key.lower() in quiet:
                continue
            if key.lower() in NOT_IMPLEMENTED.get(kind, frozenset()):
                if s.data[key] not in (None, False, "", [], {}):
                    self.warnings.append(f"{join(s.path, key)}: not implemented by appgw, ignored")
                continue
            s.error(key, "unknown key")

    def resources(self, parent: Section, key: str) -> Iterator[tuple[str, Section]]:
        """The named sub-resources of a collection, as sections of their properties
        with the path "collection.name" (errors name the resource, not its index)."""
        seen: set[str] = set()
        for item in parent.get_sections(key):
            name = item.get_str("name", "", required=True)
            if not name:
                continue
            path = join(parent.path, f"{key}.{name}")
            if name in seen:
                self.errors.append(f"{path}: duplicate name")
                continue
            seen.add(name)
            if item.has("properties"):
                properties = item.sub(item.raw("properties"), path)
                for extra in item.unused():
                    if extra.lower() not in _ENVELOPE:
                        item.error(extra, "unknown key")
                if properties is not None:
                    yield name, properties
            else:  # flattened: properties beside name and id
                item.path = path
                yield name, item

    def ref(self, s: Section, key: str, collection: str) -> str | None:
        """The name a reference {"id": ...} points at; None if absent, "" if broken."""
        ref = s.get_section(key)
        return None if ref is None else self._target(ref, collection)

    def refs(self, s: Section, key: str, collection: str) -> tuple[str, ...]:
        """The names a list of references points at (broken ones are reported)."""
        names = (self._target(ref, collection) for ref in s.get_sections(key))
        return tuple(name for name in names if name)

    def _target(self, ref: Section, collection: str) -> str:
        value = ref.raw("id")
        for extra in ref.unused():
            if extra.lower() not in _ENVELOPE:
                ref.error(extra, "unknown key")
        if value is None:
            ref.error("id", "required")
            self.quiet.add(ref.path)
            return ""
        try:
            return id_name(value, collection, self.template)
        except Invalid as e:
            ref.error(None, str(e), placeholder=True)
            return ""
