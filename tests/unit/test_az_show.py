"""az show and REST bodies as Azure prints them: read-only properties, ARM's
leniency, child resources, certificates without their private key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from appgw.config import ConfigError, Inputs, load
from appgw.config.certs import pair_problem
from appgw.config.rest_schema import READ_ONLY
from appgw.config.validate_tls import effective_policy
from tests.unit.test_config_arm import GW, gateway, props, ref, template


def write(tmp_path: Path, document: Any, name: str = "gw.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


def https_show() -> dict[str, Any]:
    """An az show body with an HTTPS listener whose certificate has no key."""
    doc = gateway()
    p = doc["properties"]
    p["frontendPorts"].append({"name": "p443", "properties": {"port": 443}})
    p["sslCertificates"] = [
        {
            "name": "site",
            "id": f"{GW}/sslCertificates/site",
            "properties": {"publicCertData": "MIIB"},
        }
    ]
    p["httpListeners"].append(
        {
            "name": "secure",
            "properties": {
                "frontendPort": ref("frontendPorts", "p443"),
                "protocol": "Https",
                "sslCertificate": ref("sslCertificates", "site"),
            },
        }
    )
    rule = json.loads(json.dumps(p["requestRoutingRules"][0]))
    rule["name"] = "secure-rule"
    rule["properties"]["priority"] = 20
    rule["properties"]["httpListener"] = ref("httpListeners", "secure")
    p["requestRoutingRules"].append(rule)
    return doc


def with_every_read_only_property(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` with each read-only property of the REST schema set where it belongs."""
    p = doc["properties"]
    for name in READ_ONLY["gateway"]:
        p[name] = "x"
    for name in READ_ONLY["resource"] - {"name", "type"}:
        doc[name] = 'W/"1"'
    for key, items in p.items():
        if not isinstance(items, list):
            continue
        read_only = {n.lower() for n in READ_ONLY.get(key, ())}
        for item in items:
            for name in read_only:
                if name in ("name",):
                    continue
                target = item if name in ("etag", "type") else item.setdefault("properties", {})
                target[name] = [{"id": f"{GW}/x/y"}] if name.endswith("configurations") else "x"
    return doc


def test_every_read_only_property_is_accepted(tmp_path: Path) -> None:
    doc = with_every_read_only_property(gateway())
    props(doc, "frontendPorts")["httpListeners"] = [ref("httpListeners", "web")]
    props(doc, "backendHttpSettingsCollection")["requestRoutingRules"] = [ref("x", "rule")]
    for collection in ("httpListeners", "backendAddressPools"):
        props(doc, collection)["requestRoutingRules"] = [ref("requestRoutingRules", "rule")]
    assert props(doc, "backendAddressPools")["backendipconfigurations"]
    config = load(write(tmp_path, doc))
    assert config.warnings == ()
    assert set(config.rules) == {"rule"}


def test_arm_leniency_case_and_strings(tmp_path: Path) -> None:
    doc = gateway()
    props(doc, "httpListeners")["frontendPort"] = ref("frontendPorts", "P80")
    rule = props(doc, "requestRoutingRules")
    rule["backendAddressPool"] = ref("backendAddressPools", "POOL")
    rule["priority"] = "10"
    props(doc, "backendHttpSettingsCollection")["port"] = "8080"
    props(doc, "backendHttpSettingsCollection")["pickHostNameFromBackendAddress"] = "False"
    props(doc, "httpListeners")["requireServerNameIndication"] = "false"
    config = load(write(tmp_path, doc))
    assert config.listeners["web"].port == 80
    assert (config.rules["rule"].pool, config.rules["rule"].priority) == ("pool", 10)
    assert config.settings["set"].port == 8080
    props(doc, "backendHttpSettingsCollection")["port"] = "eighty"
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, doc))
    assert caught.value.errors == ["backendHttpSettingsCollection.set.port: must be an integer"]


def test_rewrite_rule_names_as_azure_takes_them(tmp_path: Path) -> None:
    doc = gateway()
    doc["properties"]["rewriteRuleSets"] = [
        {
            "name": "headers",
            "properties": {
                "rewriteRules": [
                    {
                        "name": "Set X-Forwarded-For",
                        "ruleSequence": 102,
                        "actionSet": {
                            "requestHeaderConfigurations": [
                                {"headerName": "X-Forwarded-For", "headerValue": "{var_client_ip}"}
                            ]
                        },
                    }
                ]
            },
        }
    ]
    props(doc, "requestRoutingRules")["rewriteRuleSet"] = ref("rewriteRuleSets", "headers")
    config = load(write(tmp_path, doc))
    assert config.rewrite_rule_sets["headers"].rules[0].name == "Set X-Forwarded-For"


def test_child_resources_are_warned_of(tmp_path: Path) -> None:
    resource = gateway()
    resource["apiVersion"] = "2023-09-01"
    resource["resources"] = [
        {"type": "providers/diagnosticSettings", "name": "Microsoft.Insights/logs"}
    ]
    config = load(write(tmp_path, template(resource)))
    assert config.warnings == (
        "resources[0]: providers/diagnosticSettings 'Microsoft.Insights/logs' is a child "
        "resource of the gateway, not run by appgw; ignored",
    )


def key_pair(tmp_path: Path, password: bytes | None) -> tuple[Path, Path]:
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost")
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    pfx = tmp_path / "site.pfx"
    pfx.write_bytes(pkcs12.serialize_key_and_certificates(b"s", key, cert, None, encryption))  # type: ignore[arg-type]
    pem = tmp_path / "site.pem"
    pem.write_bytes(leaf.cert_chain_pems[0].bytes() + leaf.private_key_pem.bytes())
    return pfx, pem


def test_a_certificate_without_its_key_names_the_flag(tmp_path: Path) -> None:
    path = write(tmp_path, https_show())
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert caught.value.errors == [
        "sslCertificates.site.data: has no private key (publicCertData only): give the "
        "certificate with --certificate site=FILE[:PASSWORD] (PFX, or PEM with its key)"
    ]
    pfx, pem = key_pair(tmp_path, b"secret")
    for given in (f"site={pfx}:secret", f"SITE={pem}"):
        config = load(path, Inputs(certificates=(given,)))
        cert = config.certificates["site"]
        assert pair_problem(cert.cert_pem, cert.key_pem) is None
        assert config.listeners["secure"].certificate == "site"
    with pytest.raises(ConfigError) as caught:
        load(path, Inputs(certificates=(f"site={pfx}:wrong",)))
    assert caught.value.errors[0].startswith(f"sslCertificates.site: --certificate site={pfx}: ")
    doc = https_show()
    doc["properties"]["sslCertificates"][0]["properties"] = {
        "keyVaultSecretId": "https://kv.vault.azure.net/secrets/site"
    }
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, doc))
    assert "--certificate site=FILE[:PASSWORD]" in caught.value.errors[0]
    assert load(write(tmp_path, doc), Inputs(certificates=(f"site={pem}",))).certificates


def test_az_show_of_a_list_and_flattened_properties(tmp_path: Path) -> None:
    doc = gateway()
    flattened = {"name": doc["name"], "type": doc["type"], **doc["properties"]}
    flattened["provisioningState"] = "Succeeded"
    flattened["resourceGuid"] = "g"
    assert load(write(tmp_path, [flattened])).listeners["web"].port == 80


@pytest.mark.parametrize(
    ("api_version", "printed", "expected"),
    [
        ("2017-06-01", None, "AppGwSslPolicy20150501"),
        ("2022-11-01", None, "AppGwSslPolicy20150501"),
        ("2023-02-01", None, "AppGwSslPolicy20220101"),
        (None, "AppGwSslPolicy20170401S", "AppGwSslPolicy20170401S"),
        (None, None, "AppGwSslPolicy20220101"),
    ],
)
def test_default_tls_policy_by_api_version(
    tmp_path: Path, api_version: str | None, printed: str | None, expected: str
) -> None:
    pfx, _ = key_pair(tmp_path, None)
    doc = https_show()
    if printed:
        doc["properties"]["defaultPredefinedSslPolicy"] = printed
    document: Any = doc
    if api_version:
        doc["apiVersion"] = api_version
        document = template(doc)
    config = load(write(tmp_path, document), Inputs(certificates=(f"site={pfx}",)))
    assert effective_policy(config, config.listeners["secure"]).name == expected


def test_an_old_template_keeps_its_own_ssl_profile(tmp_path: Path) -> None:
    pfx, _ = key_pair(tmp_path, None)
    doc = https_show()
    doc["apiVersion"] = "2019-09-01"
    doc["properties"]["sslProfiles"] = [
        {
            "name": "legacy",
            "properties": {
                "sslPolicy": {"policyType": "Predefined", "policyName": "AppGwSslPolicy20170401"}
            },
        }
    ]
    listener = doc["properties"]["httpListeners"][1]["properties"]
    listener["sslProfile"] = ref("sslProfiles", "legacy")
    config = load(write(tmp_path, template(doc)), Inputs(certificates=(f"site={pfx}",)))
    assert effective_policy(config, config.listeners["secure"]).name == "AppGwSslPolicy20170401"
