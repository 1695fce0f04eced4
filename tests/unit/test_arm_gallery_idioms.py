"""More of the quickstart gallery's idioms, in small templates of our own:
ids built from the gateway's id, types written with a trailing '/', a web
app's defaultHostName behind child resources that read a database, a nested
deployment's parameter nobody reads, a WAF policy inside a nested
deployment, and a certificate whose Key Vault secret the template writes."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    NoEncryption,
    load_pem_private_key,
    pkcs12,
)

from appgw.config import ConfigError, Inputs, load
from tests.unit.test_arm_gallery import gateway, write

GW_ID = "[resourceId('Microsoft.Network/applicationGateways', 'gw')]"


def by_parent_id(resource: dict[str, Any]) -> dict[str, Any]:
    """The multihosting quickstart's idiom: resourceId(gatewayId, '/kind/name')."""
    props = resource["properties"]
    listener = props["httpListeners"][0]["properties"]
    listener["frontendPort"]["id"] = "[resourceId(variables('gwId'), '/frontendPorts/p80')]"
    rule = props["requestRoutingRules"][0]["properties"]
    rule["httpListener"]["id"] = "[resourceId(variables('gwId'), '/httpListeners/l')]"
    return resource


def test_an_id_built_from_the_gateway_id_names_the_child(tmp_path: Path) -> None:
    path = tmp_path / "azuredeploy.json"
    document = {"variables": {"gwId": GW_ID}, "resources": [by_parent_id(gateway())]}
    path.write_text(json.dumps(document))
    config = load(str(path))
    assert config.rules["r"].listener == "l"


def test_a_type_written_with_a_trailing_slash(tmp_path: Path) -> None:
    """The redirect quickstart's 'Microsoft.Network/applicationGateways/httpListeners/'."""
    resource = gateway()
    rule = resource["properties"]["requestRoutingRules"][0]["properties"]
    rule["httpListener"]["id"] = (
        "[resourceId('Microsoft.Network/applicationGateways/httpListeners/', 'gw', 'l')]"
    )
    config = load(str(write(tmp_path, [resource])))
    assert config.rules["r"].listener == "l"


def web_app() -> dict[str, Any]:
    """The iprestriction quickstart's web app: a child config resource reads a
    database's FQDN, which exists only once deployed."""
    fqdn = "[reference(resourceId('Microsoft.DBforMySQL/servers', 'db')).fullyQualifiedDomainName]"
    return {
        "type": "Microsoft.Web/sites",
        "name": "site",
        "properties": {"serverFarmId": "plan"},
        "resources": [
            {"type": "config", "name": "connectionstrings", "properties": {"db": {"value": fqdn}}}
        ],
    }


def test_reference_reads_only_the_value_asked_for(tmp_path: Path) -> None:
    resource = gateway()
    resource["properties"]["backendAddressPools"][0]["properties"] = {
        "backendAddresses": [{"ipAddress": "[reference('site').defaultHostName]"}]
    }
    path = write(tmp_path, [web_app(), resource])
    with pytest.raises(ConfigError) as caught:
        load(str(path))
    assert caught.value.errors == [
        "backendAddressPools.pool.backendAddresses[0].ipAddress: site.defaultHostName exists "
        "only once deployed in Azure; give it with --reference site.defaultHostName=VALUE"
    ]
    config = load(str(path), Inputs(references=("site.defaultHostName=127.0.0.2",)))
    assert [s.host for s in config.pools["pool"].servers] == ["127.0.0.2"]


def nested(template: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "Microsoft.Resources/deployments",
        "name": "application-gateway",
        "properties": {
            "expressionEvaluationOptions": {"scope": "inner"},
            "parameters": parameters,
            "template": template,
        },
    }


POLICY = {
    "type": "Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies",
    "name": "waf",
    "properties": {
        "customRules": [
            {
                "name": "RequireFrontDoorId",
                "priority": 1,
                "ruleType": "MatchRule",
                "action": "Block",
                "matchConditions": [
                    {
                        "matchVariables": [
                            {"variableName": "RequestHeaders", "selector": "X-Azure-FDID"}
                        ],
                        "negationConditon": True,
                        "operator": "Equal",
                        "matchValues": ["[parameters('frontDoorId')]"],
                    }
                ],
            }
        ],
        "managedRules": {"managedRuleSets": []},
    },
}


def front_door(tmp_path: Path) -> Path:
    """The Front Door quickstart's shape: the gateway and its WAF policy in a
    nested deployment whose parameters read outputs and a Front Door id."""
    resource = gateway()
    resource["properties"]["firewallPolicy"] = {
        "id": "[resourceId('Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies', 'waf')]"
    }
    template = {
        "parameters": {"subnetId": {"type": "string"}, "frontDoorId": {"type": "string"}},
        "resources": [resource, copy.deepcopy(POLICY)],
    }
    outputs = "[reference('network').outputs.subnetId.value]"
    parameters = {
        "subnetId": {"value": outputs},
        "frontDoorId": {"value": "[reference('fd').frontdoorId]"},
    }
    network = {"type": "Microsoft.Resources/deployments", "name": "network", "properties": {}}
    profile = {"type": "Microsoft.Cdn/profiles", "name": "fd"}
    return write(tmp_path, [profile, network, nested(template, parameters)])


def test_a_nested_deployment_parameter_is_needed_only_where_read(tmp_path: Path) -> None:
    """subnetId (a nested output) is never read; frontDoorId is, by the policy:
    one error, and no follow-on complaint about the rule's empty match values."""
    path = front_door(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load(str(path))
    assert caught.value.errors == [
        "firewallPolicies.waf.customRules.RequireFrontDoorId.matchConditions[0]"
        ".matchValues[0]: fd.frontdoorId exists only once deployed in Azure; "
        "give it with --reference fd.frontdoorId=VALUE"
    ]


def test_the_waf_policy_beside_a_nested_gateway_is_found(tmp_path: Path) -> None:
    config = load(str(front_door(tmp_path)), Inputs(references=("fd.frontdoorId=abc",)))
    assert config.firewall_policy == "waf"
    rule = config.waf_policies["waf"].custom_rules[0]
    assert rule.conditions[0].values == ("abc",)


def pfx_base64() -> str:
    leaf = trustme.CA().issue_cert("localhost")
    key = load_pem_private_key(leaf.private_key_pem.bytes(), None)
    cert = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    pfx = pkcs12.serialize_key_and_certificates(b"s", key, cert, None, NoEncryption())  # type: ignore[arg-type]
    return base64.b64encode(pfx).decode()


def key_vault_template(secrets: list[dict[str, str]]) -> dict[str, Any]:
    """The Key Vault quickstart's shape: the vault, its secrets from a
    parameter in a copy loop, and a certificate named by the vault's vaultUri."""
    vault = {"type": "Microsoft.KeyVault/vaults", "name": "[parameters('vault')]", "properties": {}}
    secret = {
        "type": "Microsoft.KeyVault/vaults/secrets",
        "name": "[concat(parameters('vault'), '/', parameters('secrets')[copyIndex()].name)]",
        "copy": {"name": "secretcopy", "count": "[length(parameters('secrets'))]"},
        "properties": {"value": "[parameters('secrets')[copyIndex()].value]"},
    }
    resource = gateway()
    secret_id = "[concat(reference(parameters('vault')).vaultUri, 'secrets/sslcert')]"
    resource["properties"]["sslCertificates"] = [
        {"name": "cert", "properties": {"keyVaultSecretId": secret_id}}
    ]
    return {
        "parameters": {
            "vault": {"type": "string", "defaultValue": "kv-site"},
            "secrets": {"type": "array", "defaultValue": secrets},
        },
        "resources": [vault, secret, resource],
    }


def test_a_key_vault_secret_the_template_writes_is_read(tmp_path: Path) -> None:
    path = tmp_path / "azuredeploy.json"
    path.write_text(json.dumps(key_vault_template([{"name": "sslcert", "value": pfx_base64()}])))
    config = load(str(path))
    assert b"BEGIN CERTIFICATE" in config.certificates["cert"].cert_pem


def test_a_key_vault_secret_elsewhere_names_the_flag(tmp_path: Path) -> None:
    path = tmp_path / "azuredeploy.json"
    path.write_text(json.dumps(key_vault_template([])))
    with pytest.raises(ConfigError) as caught:
        load(str(path))
    assert caught.value.errors == [
        "sslCertificates.cert.keyVaultSecretId: read only in Azure: give the certificate with "
        "--certificate cert=FILE[:PASSWORD] (PFX, or PEM with its key)"
    ]


def test_a_missing_parameter_is_named_as_declared(tmp_path: Path) -> None:
    """The webapps quickstart declares azureWebapp1 and reads azureWebApp1:
    the flag to give is the declared name, the one a parameters file uses."""
    resource = gateway()
    resource["properties"]["backendAddressPools"][0]["properties"] = {
        "backendAddresses": [{"ipAddress": "[parameters('azureWebApp1')]"}]
    }
    path = tmp_path / "azuredeploy.json"
    declared = {"azureWebapp1": {"type": "string"}}
    path.write_text(json.dumps({"parameters": declared, "resources": [resource]}))
    with pytest.raises(ConfigError) as caught:
        load(str(path))
    assert caught.value.errors[0].endswith("give it with --parameters azureWebapp1=...")
    config = load(str(path), Inputs(parameters=("AZUREWEBAPP1=app.example",)))
    assert [s.host for s in config.pools["pool"].servers] == ["app.example"]


def test_the_gallery_certificate_placeholder_names_the_flag(tmp_path: Path) -> None:
    """The gallery's parameters files give certData GEN-SELFSIGNED-CERT-PFXDATA."""
    resource = gateway()
    resource["properties"]["sslCertificates"] = [
        {"name": "appGatewaySslCert", "properties": {"data": "GEN-SELFSIGNED-CERT-PFXDATA"}}
    ]
    with pytest.raises(ConfigError) as caught:
        load(str(write(tmp_path, [resource])))
    assert caught.value.errors == [
        "sslCertificates.appGatewaySslCert.data: GEN-SELFSIGNED-CERT-PFXDATA is a placeholder: "
        "give the certificate with --certificate appGatewaySslCert=FILE[:PASSWORD] "
        "(PFX, or PEM with its key)"
    ]


def test_a_key_written_twice_in_two_cases_is_one_key(tmp_path: Path) -> None:
    """The 2vms-iis-ssl quickstart's HTTPS setting has cookieBasedAffinity and
    CookieBasedAffinity, both Disabled; two different values stay an error."""
    resource = gateway()
    setting = resource["properties"]["backendHttpSettingsCollection"][0]["properties"]
    setting.update({"cookieBasedAffinity": "Disabled", "CookieBasedAffinity": "Disabled"})
    config = load(str(write(tmp_path, [resource])))
    assert not config.settings["s"].cookie_based_affinity
    setting["cookieBasedAffinity"] = "Enabled"
    with pytest.raises(ConfigError) as caught:
        load(str(write(tmp_path, [resource])))
    assert caught.value.errors == [
        "backendHttpSettingsCollection.s.cookieBasedAffinity: also written as "
        "'CookieBasedAffinity', with another value"
    ]


def test_the_gallery_trusted_root_placeholder_is_named(tmp_path: Path) -> None:
    resource = gateway()
    resource["properties"]["trustedRootCertificates"] = [
        {"name": "root", "properties": {"data": "GEN-SELFSIGNED-CERT-CERDATA"}}
    ]
    with pytest.raises(ConfigError) as caught:
        load(str(write(tmp_path, [resource])))
    assert caught.value.errors == [
        "trustedRootCertificates.root.data: GEN-SELFSIGNED-CERT-CERDATA is a placeholder: give "
        "the certificate's base64 (a .cer file's content) with --parameters NAME=@FILE"
    ]


def test_a_written_secret_whose_value_fails_is_one_error(tmp_path: Path) -> None:
    document = key_vault_template([{"name": "sslcert", "value": "unused"}])
    document["resources"][1]["properties"]["value"] = "[parameters('nope')]"
    path = tmp_path / "azuredeploy.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ConfigError) as caught:
        load(str(path))
    assert caught.value.errors == [
        "sslCertificates.cert.keyVaultSecretId: the secret's value: no parameter named 'nope'"
    ]
