"""Constructs of the quickstart gallery's Application Gateway templates, in
small templates of our own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from appgw.config import ConfigError, Inputs, load

POOL_ID = "[resourceId('Microsoft.Network/applicationGateways/backendAddressPools', 'gw', 'pool')]"


def gateway() -> dict[str, Any]:
    ref = "[resourceId('Microsoft.Network/applicationGateways/{}', 'gw', '{}')]"
    return {
        "type": "Microsoft.Network/applicationGateways",
        "name": "gw",
        "properties": {
            "frontendIPConfigurations": [{"name": "fe", "properties": {}}],
            "frontendPorts": [{"name": "p80", "properties": {"port": 80}}],
            "backendAddressPools": [{"name": "pool", "properties": {}}],
            "backendHttpSettingsCollection": [
                {"name": "s", "properties": {"port": 80, "protocol": "Http"}}
            ],
            "httpListeners": [
                {
                    "name": "l",
                    "properties": {
                        "frontendIPConfiguration": {
                            "id": ref.format("frontendIPConfigurations", "fe")
                        },
                        "frontendPort": {"id": ref.format("frontendPorts", "p80")},
                        "protocol": "Http",
                    },
                }
            ],
            "requestRoutingRules": [
                {
                    "name": "r",
                    "properties": {
                        "ruleType": "Basic",
                        "priority": 10,
                        "httpListener": {"id": ref.format("httpListeners", "l")},
                        "backendAddressPool": {"id": POOL_ID},
                        "backendHttpSettings": {
                            "id": ref.format("backendHttpSettingsCollection", "s")
                        },
                    },
                }
            ],
        },
    }


def dynamic_nics() -> dict[str, Any]:
    """The ipv6 quickstart's idiom: a copy loop of NICs with dynamic IPs, each
    an IPv4 configuration in the pool and an IPv6 one outside it."""
    name = "[format('{0}{1}', 'net-int', add(range(0, 2)[copyIndex()], 1))]"
    return {
        "type": "Microsoft.Network/networkInterfaces",
        "name": name,
        "copy": {"name": "networkInterface", "count": "[length(range(0, 2))]"},
        "properties": {
            "ipConfigurations": [
                {
                    "name": "v4",
                    "properties": {
                        "privateIPAllocationMethod": "Dynamic",
                        "privateIPAddressVersion": "IPv4",
                        "applicationGatewayBackendAddressPools": [{"id": POOL_ID}],
                    },
                },
                {"name": "v6", "properties": {"privateIPAddressVersion": "IPv6"}},
            ]
        },
    }


def write(tmp_path: Path, resources: list[dict[str, Any]]) -> Path:
    path = tmp_path / "azuredeploy.json"
    path.write_text(json.dumps({"contentVersion": "1.0.0.0", "resources": resources}))
    return path


def test_every_dynamic_nic_of_a_pool_is_named_in_one_message(tmp_path: Path) -> None:
    path = write(tmp_path, [dynamic_nics(), gateway()])
    with pytest.raises(ConfigError) as caught:
        load(str(path))
    assert caught.value.errors == [
        "backendAddressPools.pool: filled by network interfaces 'net-int1', 'net-int2', whose "
        "private IPs exist only once deployed; give them with "
        "--reference net-int1.privateIPAddress=VALUE --reference net-int2.privateIPAddress=VALUE"
    ]
    refs = ("net-int1.privateIPAddress=10.0.1.4", "net-int2.privateIPAddress=10.0.1.5")
    config = load(str(path), Inputs(references=refs))
    assert [s.host for s in config.pools["pool"].servers] == ["10.0.1.4", "10.0.1.5"]


def test_a_key_vault_secret_id_is_one_error(tmp_path: Path) -> None:
    """The Key Vault quickstart's idiom: keyVaultSecretId built from the vault's
    vaultUri (derived from its name); the secret is not in the template."""
    vault = {"type": "Microsoft.KeyVault/vaults", "name": "kv", "properties": {}}
    resource = gateway()
    secret_id = "[concat(reference('kv').vaultUri, 'secrets/sslcert')]"
    resource["properties"]["sslCertificates"] = [
        {"name": "cert", "properties": {"keyVaultSecretId": secret_id}}
    ]
    with pytest.raises(ConfigError) as caught:
        load(str(write(tmp_path, [vault, resource])))
    assert len(caught.value.errors) == 1
    assert caught.value.errors[0].startswith("sslCertificates.cert.keyVaultSecretId: ")
    assert "--certificate cert=FILE[:PASSWORD]" in caught.value.errors[0]
