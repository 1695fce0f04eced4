"""What one ARM load shares (ArmReader): errors and warnings, the paths read
quietly, the template, the names by collection, and the tables of what every
key is (arm.py explains them: read, AZURE_ONLY, NOT_IMPLEMENTED, else an
error).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from appgw.config.arm_deployments import nic_members
from appgw.config.arm_template import Template, id_name
from appgw.config.fields import Invalid, Section, join
from appgw.config.rest_schema import READ_ONLY


def _keys(text: str) -> frozenset[str]:
    return frozenset(k.lower() for k in text.split())


# Accepted and ignored: they change nothing when the gateway runs locally.
# Read-only properties come from the REST API specification (rest_schema.py,
# generated); this table adds what az show prints beyond it (back-references
# such as a frontend port's httpListeners) and what a local gateway ignores.
# "resource" is the gateway resource's envelope, "gateway" its properties,
# "*" every sub-resource (frontendPorts[], httpListeners[], ...).
AZURE_ONLY: dict[str, frozenset[str]] = {
    "resource": _keys(
        "apiVersion type name location tags zones identity dependsOn comments id etag"
        " resourceGroup systemData condition copy scope metadata"
    ),
    "gateway": _keys(
        "sku autoscaleConfiguration zones location tags etag id type"
        " gatewayIPConfigurations enableFips forceFirewallPolicyAssociation"
    ),
    "*": _keys("name id etag type resourceGroup provisioningState"),
    "frontendIPConfigurations": _keys(
        "privateIPAllocationMethod publicIPAddress subnet privateLinkConfiguration"
        " httpListeners listeners urlPathMaps requestRoutingRules routingRules"
    ),
    "frontendPorts": _keys("httpListeners listeners"),
    # Back-references az show prints that the REST specification leaves out.
    "httpListeners": _keys("requestRoutingRules routingRules"),
    "sslCertificates": _keys("httpListeners listeners"),
    "rewriteRuleSets": _keys("requestRoutingRules urlPathMaps pathRules"),
    "urlPathMaps": _keys("requestRoutingRules"),
    "backendAddressPools": _keys(
        "outboundRule outboundRules loadBalancerBackendAddresses"
        " requestRoutingRules routingRules urlPathMaps pathRules"
    ),
    "backendHttpSettingsCollection": _keys(
        "probeEnabled requestRoutingRules urlPathMaps pathRules"
    ),
    "probes": _keys("backendHttpSettings"),
    "sslProfiles": _keys("httpListeners listeners"),
    "redirectConfigurations": _keys("requestRoutingRules urlPathMaps pathRules"),
}

# Azure features that would change behaviour and that appgw does not
# implement: loaded with a warning when set (an empty list or false is quiet).
NOT_IMPLEMENTED: dict[str, frozenset[str]] = {
    "gateway": _keys(
        "privateLinkConfigurations listeners"
        " routingRules backendSettingsCollection"
        " loadDistributionPolicies"
    ),
    "backendHttpSettingsCollection": _keys("dedicatedBackendConnection"),
    "urlPathMaps": _keys("defaultLoadDistributionPolicy"),
    "pathRules": _keys("loadDistributionPolicy"),
    "requestRoutingRules": _keys("loadDistributionPolicy"),
}

# Keys of a sub-resource around its `properties`.
_ENVELOPE = _keys("name id etag type resourceGroup properties")


class ArmReader:
    """What one ARM load shares: errors, warnings, quiet paths, the template."""

    def __init__(self, template: Template | None) -> None:
        self.template = template
        self.certificates: dict[str, tuple[str, str | None]] = {}  # --certificate
        self.default_policy: str | None = None  # the TLS policy without sslPolicy
        self.unresolved: set[str] = set()  # key paths whose expression failed
        self.names: dict[str, dict[str, str]] = {}  # collection -> lower name -> as declared
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.quiet: set[str] = set()

    def nic_members(self, s: Section, pool: str) -> list[str]:
        """A pool filled by the template's network interfaces (reported on `s`)."""
        if self.template is None:
            return []
        try:
            return nic_members(self.template, pool)
        except Invalid as e:
            s.error(None, str(e))
            return []

    def public_address(self, reference: Any) -> str:
        """Where a public frontend listens: "::" for a public IPv6 address declared
        in the same template (publicIPAddressVersion IPv6), else "0.0.0.0"."""
        if self.template is None or not isinstance(reference, Mapping):
            return "0.0.0.0"
        try:
            target = id_name(reference.get("id"), "publicIPAddresses", self.template)
            declared = self.template.declared(target)
        except Invalid:
            return "0.0.0.0"
        properties = {str(k).lower(): v for k, v in (declared or {}).get("properties", {}).items()}
        version = str(properties.get("publicipaddressversion", "IPv4")).lower()
        return "::" if version == "ipv6" else "0.0.0.0"

    def _value(self, value: Any) -> Any:
        """A value as evaluated, for telling a set feature from an unset one
        (`"[parameters('http2Enabled')]"` that is false); itself if it fails."""
        if self.template is None:
            return value
        try:
            return self.template.resolve(value)
        except Invalid:
            return value

    def _resolve(self, value: Any, path: str) -> Any:
        assert self.template is not None
        try:
            return self.template.resolve(value, path)
        except Invalid:
            self.unresolved.add(path)
            raise

    def index_names(self, properties: Section) -> None:
        """Every collection's names, so references find them whatever their case
        (ARM's names are case-insensitive, as resource ids are)."""
        for key, items in properties.data.items():
            if not isinstance(items, list):
                continue
            names = self.names.setdefault(str(key).lower(), {})
            for item in items:
                name = item.get("name") if isinstance(item, dict) else None
                if self.template is not None and isinstance(name, str):
                    try:
                        name = self.template.resolve(name)
                    except Invalid:
                        continue
                if isinstance(name, str):
                    names.setdefault(name.lower(), name)

    def section(self, data: Any, path: str) -> Section:
        return Section(
            data,
            path,
            self.errors,
            fold_case=True,
            resolve=self._resolve if self.template else None,
            table_word="object",
            quiet=self.quiet,
            lenient=True,
        )

    def finish(self, s: Section, kind: str, also: str | None = None) -> None:
        """Sort the keys of `s` not read: Azure-only, not implemented, or unknown."""
        quiet = AZURE_ONLY.get(kind, frozenset()) | AZURE_ONLY.get(also or "", frozenset())
        quiet |= READ_ONLY.get(kind, frozenset()) | READ_ONLY.get(also or "", frozenset())
        if kind not in ("resource", "gateway"):
            quiet |= AZURE_ONLY["*"]
        for key in s.unused():
            if key.lower() in quiet:
                continue
            if key.lower() in NOT_IMPLEMENTED.get(kind, frozenset()):
                if self._value(s.data[key]) not in (None, False, "", [], {}):
                    self.warnings.append(f"{join(s.path, key)}: not implemented by appgw, ignored")
                continue
            s.unknown(key)

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
                        item.unknown(extra)
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
                ref.unknown(extra)
        if value is None:
            ref.error("id", "required")
            self.quiet.add(ref.path)
            return ""
        try:
            name = id_name(value, collection, self.template)
            return self.names.get(collection.lower(), {}).get(name.lower(), name)
        except Invalid as e:
            ref.error(None, str(e), placeholder=True)
            return ""
