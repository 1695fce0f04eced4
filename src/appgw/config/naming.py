"""How each file format names the model's keys, for error messages.

Validation works on the model and speaks of it in schema paths such as
"settings.*.request_timeout" with a `*` for each resource name. A Naming
turns one into the key path the user wrote: the same path in appgw's TOML,
"backendHttpSettingsCollection.chat.requestTimeout" in an ARM template.
A schema missing from the table is translated by its longest known prefix.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
from attrs import frozen

TOML_NOUNS = {
    "certificates": "certificate",
    "trusted_root_certificates": "trusted root certificate",
    "listeners": "listener",
    "pools": "pool",
    "settings": "setting",
    "probes": "probe",
    "redirects": "redirect",
    "rewrite_rule_sets": "rewrite rule set",
    "path_maps": "path map",
    "rules": "rule",
    "ssl_profiles": "SSL profile",
    "trusted_client_certificates": "trusted client certificate",
}

# TLS resources (validate_tls.py): the policy's keys, at the gateway and in profiles.
_POLICY_KEYS = {
    "policy_type": "policyType",
    "policy_name": "policyName",
    "min_protocol_version": "minProtocolVersion",
    "cipher_suites": "cipherSuites",
}
_TLS_PATHS = {
    "ssl_policy": "sslPolicy",
    **{f"ssl_policy.{k}": f"sslPolicy.{v}" for k, v in _POLICY_KEYS.items()},
    "ssl_profiles": "sslProfiles",
    "ssl_profiles.*.ssl_policy": "sslProfiles.*.sslPolicy",
    **{
        f"ssl_profiles.*.ssl_policy.{k}": f"sslProfiles.*.sslPolicy.{v}"
        for k, v in _POLICY_KEYS.items()
    },
    "ssl_profiles.*.trusted_client_certificates": "sslProfiles.*.trustedClientCertificates",
    "ssl_profiles.*.client_auth": "sslProfiles.*.clientAuthConfiguration",
    "ssl_profiles.*.client_auth.mode": "sslProfiles.*.clientAuthConfiguration.verifyClientAuthMode",
    "ssl_profiles.*.client_auth.verify_issuer_dn": "sslProfiles.*.clientAuthConfiguration"
    ".verifyClientCertIssuerDN",
    "ssl_profiles.*.client_auth.verify_revocation": "sslProfiles.*.clientAuthConfiguration"
    ".verifyClientRevocation",
    "trusted_client_certificates": "trustedClientCertificates",
    "trusted_client_certificates.*.cert": "trustedClientCertificates.*.data",
    "listeners.*.ssl_profile": "httpListeners.*.sslProfile",
    "settings.*.sni_name": "backendHttpSettingsCollection.*.sniName",
}
_POLICY_TYPES = {"predefined": "Predefined", "custom": "Custom", "customv2": "CustomV2"}
_TLS_VALUES = {
    "ssl_policy.policy_type": _POLICY_TYPES,
    "ssl_profiles.*.ssl_policy.policy_type": _POLICY_TYPES,
    "ssl_profiles.*.client_auth.mode": {"strict": "Strict", "passthrough": "Passthrough"},
    "ssl_profiles.*.client_auth.verify_revocation": {"none": "None", "ocsp": "OCSP"},
}


@frozen
class Naming:
    paths: Mapping[str, str] = attrs.Factory(dict)  # schema -> the format's schema
    nouns: Mapping[str, str] = TOML_NOUNS  # collection -> what one resource is called
    values: Mapping[str, Mapping[str, str]] = attrs.Factory(dict)  # schema -> model value -> shown

    def path(self, schema: str, *names: str) -> str:
        """The key path of `schema` with its `*` replaced by `names` in order."""
        parts = schema.split(".")
        for cut in range(len(parts), 0, -1):
            head = ".".join(parts[:cut])
            if head in self.paths:
                schema = ".".join([self.paths[head], *parts[cut:]])
                break
        pieces = schema.split("*")
        if len(pieces) != len(names) + 1:
            raise ValueError(f"schema {schema!r} needs {len(pieces) - 1} names, got {names!r}")
        out = [pieces[0]]
        for name, piece in zip(names, pieces[1:], strict=True):
            out += [name, piece]
        return "".join(out)

    def noun(self, collection: str) -> str:
        return self.nouns.get(collection, collection)

    def show(self, schema: str, value: str) -> str:
        """A model value as the format spells it ("path" -> "PathBasedRouting")."""
        return self.values.get(schema, {}).get(value, value)

    def choices(self, schema: str, values: tuple[str, ...]) -> str:
        shown = [self.show(schema, v) for v in values]
        if len(shown) == 2:
            return f"{shown[0]} or {shown[1]}"
        return "one of " + ", ".join(shown)


TOML_NAMING = Naming()

ARM_NAMING = Naming(
    paths={
        "certificates": "sslCertificates",
        "certificates.*.cert": "sslCertificates.*.data",
        "certificates.*.key": "sslCertificates.*.data",
        "trusted_root_certificates": "trustedRootCertificates",
        "trusted_root_certificates.*.cert": "trustedRootCertificates.*.data",
        "listeners": "httpListeners",
        "listeners.*.port": "httpListeners.*.frontendPort",
        "listeners.*.address": "httpListeners.*.frontendIPConfiguration",
        "listeners.*.host_names": "httpListeners.*.hostNames",
        "listeners.*.certificate": "httpListeners.*.sslCertificate",
        "listeners.*.require_sni": "httpListeners.*.requireServerNameIndication",
        "pools": "backendAddressPools",
        "pools.*.servers": "backendAddressPools.*.backendAddresses",
        "pools.*.servers[*]": "backendAddressPools.*.backendAddresses[*]",
        "settings": "backendHttpSettingsCollection",
        "settings.*.request_timeout": "backendHttpSettingsCollection.*.requestTimeout",
        "settings.*.drain_timeout": "backendHttpSettingsCollection.*.connectionDraining"
        ".drainTimeoutInSec",
        "settings.*.host_name": "backendHttpSettingsCollection.*.hostName",
        "settings.*.pick_host_name_from_backend_address": "backendHttpSettingsCollection.*"
        ".pickHostNameFromBackendAddress",
        "settings.*.affinity_cookie_name": "backendHttpSettingsCollection.*.affinityCookieName",
        "settings.*.trusted_root_certificates": "backendHttpSettingsCollection.*"
        ".trustedRootCertificates",
        "probes.*.unhealthy_threshold": "probes.*.unhealthyThreshold",
        "probes.*.min_servers": "probes.*.minServers",
        "probes.*.match_status_codes": "probes.*.match.statusCodes",
        "probes.*.match_body": "probes.*.match.body",
        "probes.*.pick_host_name_from_settings": "probes.*.pickHostNameFromBackendHttpSettings",
        "redirects": "redirectConfigurations",
        "redirects.*.redirect_type": "redirectConfigurations.*.redirectType",
        "redirects.*.target_listener": "redirectConfigurations.*.targetListener",
        "redirects.*.target_url": "redirectConfigurations.*.targetUrl",
        "rewrite_rule_sets": "rewriteRuleSets",
        "rewrite_rule_sets.*.rules": "rewriteRuleSets.*.rewriteRules",
        "rewrite_rule_sets.*.rules.*.sequence": "rewriteRuleSets.*.rewriteRules.*.ruleSequence",
        "rewrite_rule_sets.*.rules.*.request_headers": "rewriteRuleSets.*.rewriteRules.*"
        ".actionSet.requestHeaderConfigurations",
        "rewrite_rule_sets.*.rules.*.response_headers": "rewriteRuleSets.*.rewriteRules.*"
        ".actionSet.responseHeaderConfigurations",
        "rewrite_rule_sets.*.rules.*.url": "rewriteRuleSets.*.rewriteRules.*"
        ".actionSet.urlConfiguration",
        "path_maps": "urlPathMaps",
        "path_maps.*.default_pool": "urlPathMaps.*.defaultBackendAddressPool",
        "path_maps.*.default_setting": "urlPathMaps.*.defaultBackendHttpSettings",
        "path_maps.*.default_redirect": "urlPathMaps.*.defaultRedirectConfiguration",
        "path_maps.*.default_rewrite_rule_set": "urlPathMaps.*.defaultRewriteRuleSet",
        "path_maps.*.rules": "urlPathMaps.*.pathRules",
        "path_maps.*.rules.*.pool": "urlPathMaps.*.pathRules.*.backendAddressPool",
        "path_maps.*.rules.*.setting": "urlPathMaps.*.pathRules.*.backendHttpSettings",
        "path_maps.*.rules.*.redirect": "urlPathMaps.*.pathRules.*.redirectConfiguration",
        "path_maps.*.rules.*.rewrite_rule_set": "urlPathMaps.*.pathRules.*.rewriteRuleSet",
        "rules": "requestRoutingRules",
        "rules.*.listener": "requestRoutingRules.*.httpListener",
        "rules.*.kind": "requestRoutingRules.*.ruleType",
        "rules.*.pool": "requestRoutingRules.*.backendAddressPool",
        "rules.*.setting": "requestRoutingRules.*.backendHttpSettings",
        "rules.*.redirect": "requestRoutingRules.*.redirectConfiguration",
        "rules.*.path_map": "requestRoutingRules.*.urlPathMap",
        "rules.*.rewrite_rule_set": "requestRoutingRules.*.rewriteRuleSet",
        **_TLS_PATHS,
    },
    nouns={
        "certificates": "sslCertificates entry",
        "trusted_root_certificates": "trustedRootCertificates entry",
        "listeners": "httpListeners entry",
        "pools": "backendAddressPools entry",
        "settings": "backendHttpSettingsCollection entry",
        "probes": "probes entry",
        "redirects": "redirectConfigurations entry",
        "rewrite_rule_sets": "rewriteRuleSets entry",
        "path_maps": "urlPathMaps entry",
        "rules": "requestRoutingRules entry",
        "ssl_profiles": "sslProfiles entry",
        "trusted_client_certificates": "trustedClientCertificates entry",
    },
    values={
        "rules.*.kind": {"basic": "Basic", "path": "PathBasedRouting"},
        "listeners.*.protocol": {"http": "Http", "https": "Https"},
        "settings.*.protocol": {"http": "Http", "https": "Https"},
        "probes.*.protocol": {"http": "Http", "https": "Https", "ws": "ws", "wss": "wss"},
        "redirects.*.redirect_type": {
            "permanent": "Permanent",
            "found": "Found",
            "seeother": "SeeOther",
            "temporary": "Temporary",
        },
        **_TLS_VALUES,
    },
)
