"""A quickstart-style ARM template, written the way the gallery's are.

Parameters with and without defaults (a securestring certificate given
through a parameters file), variables built from variables, resourceId()
references, property copy loops over a parameter array (frontend ports,
backend addresses, listeners, rules), a resource with a false condition,
the public IP and virtual network the gateway depends on, and backends on
the 10.0.0.0/24 addresses a real deployment gives them (served locally with
--connect-to).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

GATEWAY = "Microsoft.Network/applicationGateways"


def _id(kind: str, name: str) -> dict[str, str]:
    return {"id": f"[resourceId('{GATEWAY}/{kind}', variables('applicationGatewayName'), {name})]"}


def gateway_resource() -> dict[str, Any]:
    return {
        "type": GATEWAY,
        "apiVersion": "2023-09-01",
        "name": "[variables('applicationGatewayName')]",
        "location": "[parameters('location')]",
        "dependsOn": [
            "[resourceId('Microsoft.Network/publicIPAddresses', variables('publicIPName'))]",
            "[resourceId('Microsoft.Network/virtualNetworks', variables('vnetName'))]",
        ],
        "properties": {
            "sku": {"name": "Standard_v2", "tier": "Standard_v2"},
            "autoscaleConfiguration": {"minCapacity": "[parameters('capacity')]"},
            "gatewayIPConfigurations": [
                {
                    "name": "appGatewayIpConfig",
                    "properties": {
                        "subnet": {
                            "id": "[resourceId('Microsoft.Network/virtualNetworks/subnets', "
                            "variables('vnetName'), 'myAGSubnet')]"
                        }
                    },
                }
            ],
            "sslCertificates": [
                {
                    "name": "siteCert",
                    "properties": {
                        "data": "[parameters('certData')]",
                        "password": "[parameters('certPassword')]",
                    },
                }
            ],
            "frontendIPConfigurations": [
                {
                    "name": "appGwPublicFrontendIp",
                    "properties": {
                        "publicIPAddress": {
                            "id": "[resourceId('Microsoft.Network/publicIPAddresses', "
                            "variables('publicIPName'))]"
                        }
                    },
                }
            ],
            "copy": [
                {
                    "name": "frontendPorts",
                    "count": "[length(variables('listeners'))]",
                    "input": {
                        "name": "[concat('port_', variables('listeners')[copyIndex('frontendPorts')].port)]",
                        "properties": {
                            "Port": "[variables('listeners')[copyIndex('frontendPorts')].port]"
                        },
                    },
                },
                {
                    "name": "httpListeners",
                    "count": "[length(variables('listeners'))]",
                    "input": {
                        "name": "[variables('listeners')[copyIndex('httpListeners')].name]",
                        "properties": {
                            "frontendIPConfiguration": _id(
                                "frontendIPConfigurations", "'appGwPublicFrontendIp'"
                            ),
                            "frontendPort": _id(
                                "frontendPorts",
                                "concat('port_', variables('listeners')"
                                "[copyIndex('httpListeners')].port)",
                            ),
                            "protocol": "[variables('listeners')[copyIndex('httpListeners')].protocol]",
                            "sslCertificate": "[if(equals(variables('listeners')"
                            "[copyIndex('httpListeners')].protocol, 'Https'), "
                            "createObject('id', resourceId('Microsoft.Network/applicationGateways/"
                            "sslCertificates', variables('applicationGatewayName'), 'siteCert')), "
                            "null())]",
                            "hostName": "[parameters('hostName')]",
                        },
                    },
                },
                {
                    "name": "requestRoutingRules",
                    "count": "[length(variables('listeners'))]",
                    "input": {
                        "name": "[format('rule-{0}', variables('listeners')"
                        "[copyIndex('requestRoutingRules')].name)]",
                        "properties": {
                            "ruleType": "Basic",
                            "priority": "[add(100, copyIndex('requestRoutingRules'))]",
                            "httpListener": _id(
                                "httpListeners",
                                "variables('listeners')[copyIndex('requestRoutingRules')].name",
                            ),
                            "backendAddressPool": _id("backendAddressPools", "'myBackendPool'"),
                            "backendHttpSettings": _id(
                                "backendHttpSettingsCollection", "'myHTTPSetting'"
                            ),
                        },
                    },
                },
            ],
            "backendAddressPools": [
                {
                    "name": "myBackendPool",
                    "properties": {
                        "copy": [
                            {
                                "name": "backendAddresses",
                                "count": "[length(parameters('backendIPAddresses'))]",
                                "input": {
                                    "ipAddress": "[parameters('backendIPAddresses')"
                                    "[copyIndex('backendAddresses')]]"
                                },
                            }
                        ]
                    },
                }
            ],
            "backendHttpSettingsCollection": [
                {
                    "name": "myHTTPSetting",
                    "properties": {
                        "Port": "[parameters('backendPort')]",
                        "Protocol": "Http",
                        "CookieBasedAffinity": "Disabled",
                        "PickHostNameFromBackendAddress": False,
                        "RequestTimeout": 20,
                    },
                }
            ],
        },
    }


def quickstart_template() -> dict[str, Any]:
    return {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/"
        "deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {
            "location": {"type": "string", "defaultValue": "[resourceGroup().location]"},
            "namePrefix": {"type": "string", "defaultValue": "myAppGateway"},
            "capacity": {"type": "int", "defaultValue": 2, "minValue": 1},
            "hostName": {"type": "string", "defaultValue": "www.contoso.com"},
            "backendIPAddresses": {"type": "array", "defaultValue": ["10.0.0.4", "10.0.0.5"]},
            "backendPort": {"type": "int", "defaultValue": 80},
            "certData": {"type": "securestring"},
            "certPassword": {"type": "securestring", "defaultValue": ""},
            "deployWaf": {"type": "bool", "defaultValue": False},
        },
        "variables": {
            "applicationGatewayName": "[toLower(parameters('namePrefix'))]",
            "publicIPName": "[concat(variables('applicationGatewayName'), '-pip')]",
            "vnetName": "[concat(variables('applicationGatewayName'), '-vnet')]",
            "listeners": [
                {"name": "httpListener", "port": 80, "protocol": "Http"},
                {"name": "httpsListener", "port": 443, "protocol": "Https"},
            ],
        },
        "resources": [
            {
                "type": "Microsoft.Network/publicIPAddresses",
                "apiVersion": "2023-09-01",
                "name": "[variables('publicIPName')]",
                "location": "[parameters('location')]",
                "sku": {"name": "Standard"},
                "properties": {
                    "publicIPAllocationMethod": "Static",
                    "dnsSettings": {
                        "domainNameLabel": "[concat(variables('applicationGatewayName'), "
                        "uniqueString(resourceGroup().id))]"
                    },
                },
            },
            {
                "type": "Microsoft.Network/virtualNetworks",
                "apiVersion": "2023-09-01",
                "name": "[variables('vnetName')]",
                "location": "[parameters('location')]",
                "properties": {
                    "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                    "subnets": [
                        {"name": "myAGSubnet", "properties": {"addressPrefix": "10.0.0.0/24"}}
                    ],
                },
            },
            {
                "condition": "[parameters('deployWaf')]",
                "type": "Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies",
                "apiVersion": "2023-09-01",
                "name": "[concat(variables('applicationGatewayName'), '-waf')]",
                "properties": {},
            },
            gateway_resource(),
        ],
        "outputs": {
            "fqdn": {
                "type": "string",
                "value": "[reference(variables('publicIPName')).dnsSettings.fqdn]",
            }
        },
    }


def write_quickstart(directory: Path, cert_b64: str, password: str = "") -> tuple[Path, Path]:
    """azuredeploy.json and azuredeploy.parameters.json in `directory`."""
    template = directory / "azuredeploy.json"
    template.write_text(json.dumps(quickstart_template(), indent=2))
    parameters = directory / "azuredeploy.parameters.json"
    parameters.write_text(
        json.dumps(
            {
                "$schema": "https://schema.management.azure.com/schemas/2019-04-01/"
                "deploymentParameters.json#",
                "contentVersion": "1.0.0.0",
                "parameters": {
                    "certData": {"value": cert_b64},
                    "certPassword": {"value": password},
                },
            },
            indent=2,
        )
    )
    return template, parameters
