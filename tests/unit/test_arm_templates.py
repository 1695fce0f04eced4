"""Whole ARM templates: parameters as az takes them, loops, conditions,
nested and linked deployments, reference() and --reference."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from appgw.config import ConfigError, Inputs, load
from appgw.config.model import Server
from tests.support.quickstart import gateway_resource, quickstart_template, write_quickstart


def site_certificate() -> tuple[str, trustme.CA]:
    """Base64 PFX of a certificate for www.contoso.com and localhost, and its CA."""
    from cryptography import x509

    ca = trustme.CA()
    leaf = ca.issue_cert("www.contoso.com", "localhost")
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    cert = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    pfx = pkcs12.serialize_key_and_certificates(
        b"site",
        key,  # type: ignore[arg-type]
        cert,
        None,
        serialization.NoEncryption(),
    )
    return base64.b64encode(pfx).decode(), ca


def pfx_b64() -> str:
    return site_certificate()[0]


@pytest.fixture(scope="module")
def cert() -> str:
    return pfx_b64()


def errors(path: Path, *parameters: str, **inputs: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(str(path), Inputs(parameters=parameters, **inputs))
    return caught.value.errors


def test_quickstart_loads_with_its_parameters_file(tmp_path: Path, cert: str) -> None:
    template, parameters = write_quickstart(tmp_path, cert)
    config = load(str(template), Inputs(parameters=(str(parameters),)))
    assert config.warnings == ()
    http, https = config.listeners["httpListener"], config.listeners["httpsListener"]
    assert (http.protocol, http.port, http.certificate) == ("http", 80, None)
    assert (https.protocol, https.port, https.certificate) == ("https", 443, "siteCert")
    assert https.host_names == ("www.contoso.com",)
    assert config.pools["myBackendPool"].servers == (Server("10.0.0.4"), Server("10.0.0.5"))
    rules = config.rules
    assert (rules["rule-httpListener"].priority, rules["rule-httpsListener"].priority) == (100, 101)
    assert rules["rule-httpsListener"].listener == "httpsListener"


def test_a_parameter_without_a_value_names_the_flag(tmp_path: Path) -> None:
    template, _ = write_quickstart(tmp_path, "")
    assert errors(template) == [
        "sslCertificates.siteCert.data: parameter 'certData' has no value and no "
        "defaultValue: give it with --parameters certData=..."
    ]


def test_az_parameter_forms(tmp_path: Path, cert: str) -> None:
    template, parameters = write_quickstart(tmp_path, cert)
    (tmp_path / "cert.b64").write_text(cert)
    at_file = f"@{parameters}"
    config = load(
        str(template),
        Inputs(
            parameters=(
                at_file,
                "certData=@cert.b64",  # NAME=@FILE: the file's text
                'backendIPAddresses=["127.0.0.2", "127.0.0.3"]',  # JSON when it parses
                "hostName=gw.example.com",  # else a string
                "capacity=3",
            ),
            base=str(tmp_path),
        ),
    )
    assert config.pools["myBackendPool"].servers == (Server("127.0.0.2"), Server("127.0.0.3"))
    assert config.listeners["httpsListener"].host_names == ("gw.example.com",)
    assert config.certificates["siteCert"].key_pem


def test_parameters_files_with_comments_and_inline_json(tmp_path: Path, cert: str) -> None:
    template, _ = write_quickstart(tmp_path, cert)
    commented = tmp_path / "p.jsonc"
    body = '"parameters": {"certData": {"value": "' + cert + '"},},'
    commented.write_text("{\n  // the site certificate\n  " + body + "\n}")
    config = load(
        str(template), Inputs(parameters=(str(commented), '{"hostName": {"value": "a.b"}}'))
    )
    assert config.listeners["httpListener"].host_names == ("a.b",)


def test_bad_parameters_are_named(tmp_path: Path, cert: str) -> None:
    template, parameters = write_quickstart(tmp_path, cert)
    assert errors(template, str(parameters), "nope=1", "capacity=many") == [
        "--parameters: the template has no parameter named 'nope' (it has: backendIPAddresses, "
        "backendPort, capacity, certData, certPassword, deployWaf, hostName, location, namePrefix)",
        "parameters.capacity: parameter 'capacity' must be of type int, not 'many'",
    ]
    assert errors(template, str(tmp_path / "missing.json"))[0].startswith(
        f"--parameters {tmp_path / 'missing.json'}: cannot read"
    )
    vault = tmp_path / "vault.json"
    vault.write_text(json.dumps({"parameters": {"certData": {"reference": {"secretName": "x"}}}}))
    assert "give its value with --parameters certData=VALUE" in errors(template, str(vault))[0]


def test_template_json_with_comments_and_trailing_commas(tmp_path: Path, cert: str) -> None:
    text = json.dumps(quickstart_template(), indent=2)
    text = text.replace('"resources": [', '"resources": [ // what gets deployed\n', 1)
    text = text.rstrip().rstrip("}") + ",}"
    path = tmp_path / "azuredeploy.json"
    path.write_text(text)
    config = load(str(path), Inputs(parameters=(f"certData={cert}",)))
    assert set(config.listeners) == {"httpListener", "httpsListener"}
    path.write_text('{\n  "resources": [\n    {"type": }\n  ]\n}')
    assert errors(path)[0].startswith("line 3, column")


def small_gateway(**properties: Any) -> dict[str, Any]:
    resource = gateway_resource()
    resource["properties"]["sslCertificates"] = []
    resource["properties"]["copy"][0]["count"] = 1
    resource["properties"]["copy"][1]["count"] = 1
    resource["properties"]["copy"][2]["count"] = 1
    resource["properties"].update(properties)
    return resource


def small_template(resource: dict[str, Any], **extra: Any) -> dict[str, Any]:
    document = copy.deepcopy(quickstart_template())
    document["resources"] = [resource]
    document.update(extra)
    return document


def write(tmp_path: Path, document: Any, name: str = "main.json") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


def test_conditions_and_resource_copy_loops(tmp_path: Path) -> None:
    resource = small_gateway()
    resource["condition"] = "[not(parameters('deployWaf'))]"
    resource["copy"] = {"name": "gateways", "count": 1}
    path = write(tmp_path, small_template(resource))
    assert set(load(str(path), Inputs(parameters=("certData=x",))).listeners) == {"httpListener"}
    assert errors(path, "certData=x", "deployWaf=true") == [
        "resources: no resource of type Microsoft.Network/applicationGateways"
    ]
    resource["copy"]["count"] = 2
    path = write(tmp_path, small_template(resource))
    assert errors(path, "certData=x") == ["resources: 2 application gateways; give one a file"]


def test_nested_inline_deployments_in_both_scopes(tmp_path: Path) -> None:
    inner = small_template(small_gateway())
    del inner["parameters"]["certData"]
    outer_scope = {
        "type": "Microsoft.Resources/deployments",
        "apiVersion": "2022-09-01",
        "name": "gatewayDeployment",
        "properties": {"mode": "Incremental", "template": {"resources": [small_gateway()]}},
    }
    path = write(tmp_path, small_template(outer_scope))
    config = load(str(path), Inputs(parameters=("certData=x", 'backendIPAddresses=["10.1.0.9"]')))
    assert config.pools["myBackendPool"].servers == (Server("10.1.0.9"),)
    inner_scope = {
        "type": "Microsoft.Resources/deployments",
        "apiVersion": "2022-09-01",
        "name": "gatewayDeployment",
        "properties": {
            "expressionEvaluationOptions": {"scope": "inner"},
            "parameters": {
                "backendIPAddresses": {"value": "[createArray(parameters('hostName'))]"}
            },
            "template": inner,
        },
    }
    path = write(tmp_path, small_template(inner_scope))
    config = load(str(path), Inputs(parameters=("certData=x", "hostName=10.2.0.1")))
    assert config.pools["myBackendPool"].servers == (Server("10.2.0.1"),)


def test_linked_templates_resolve_beside_the_main_file(tmp_path: Path) -> None:
    inner = small_template(small_gateway())
    del inner["parameters"]["certData"]
    write(tmp_path, inner, "nested/gateway.json")
    link = {
        "type": "Microsoft.Resources/deployments",
        "apiVersion": "2022-09-01",
        "name": "linked",
        "properties": {
            "templateLink": {"relativePath": "nested/gateway.json"},
            "parameters": {"namePrefix": {"value": "linked"}},
        },
    }
    path = write(tmp_path, small_template(link))
    assert load(str(path), Inputs(parameters=("certData=x",))).pools["myBackendPool"].servers
    base = "https://raw.githubusercontent.com/Azure/azure-quickstart-templates/master/x/"
    link["properties"]["templateLink"] = {"uri": f"[uri('{base}', 'nested/gateway.json')]"}
    path = write(tmp_path, small_template(link))
    assert load(str(path), Inputs(parameters=("certData=x",))).listeners
    link["properties"]["templateLink"] = {"uri": f"{base}elsewhere/other.json"}
    path = write(tmp_path, small_template(link))
    assert errors(path, "certData=x") == [
        f"resources[linked].properties.templateLink.uri: {base}elsewhere/other.json is not "
        f"fetched; save it beside the main file as {tmp_path / 'other.json'} (or under the "
        "same folders as in the URL)"
    ]


def test_reference_to_a_resource_in_the_document(tmp_path: Path) -> None:
    pip = {
        "type": "Microsoft.Network/publicIPAddresses",
        "name": "frontIp",
        "properties": {"dnsSettings": {"fqdn": "[concat(parameters('namePrefix'), '.local')]"}},
    }
    resource = small_gateway()
    listener = resource["properties"]["copy"][1]["input"]["properties"]
    listener["hostName"] = "[reference('frontIp').dnsSettings.fqdn]"
    resource["properties"]["backendAddressPools"][0]["properties"] = {
        "backendAddresses": [{"fqdn": "[reference('webApp').defaultHostName]"}]
    }
    path = write(tmp_path, small_template(resource, resources=[pip, resource]))
    assert errors(path, "certData=x") == [
        "backendAddressPools.myBackendPool.backendAddresses[0].fqdn: webApp.defaultHostName "
        "exists only once deployed in Azure; give it with --reference "
        "webApp.defaultHostName=VALUE"
    ]
    config = load(
        str(path),
        Inputs(parameters=("certData=x",), references=("webApp.defaultHostName=localhost",)),
    )
    assert config.listeners["httpListener"].host_names == ("myAppGateway.local",)
    assert config.pools["myBackendPool"].servers == (Server("localhost"),)


def test_copy_errors_name_the_loop(tmp_path: Path) -> None:
    resource = small_gateway()
    resource["properties"]["copy"][0]["count"] = "[frobnicate()]"
    path = write(tmp_path, small_template(resource))
    assert errors(path, "certData=x") == [
        "copy frontendPorts, httpListeners, requestRoutingRules: unknown template function "
        "frobnicate()"
    ]


def test_one_message_per_root_cause(tmp_path: Path) -> None:
    resource = small_gateway()
    resource["properties"]["copy"][1]["count"] = 2  # two listeners on port 80
    listener = resource["properties"]["copy"][1]["input"]["properties"]
    listener["protocol"] = "Http"
    listener["sslCertificate"] = None
    listener["hostName"] = "[parameters('site')]"
    resource["properties"]["backendHttpSettingsCollection"][0]["properties"]["hostName"] = (
        "[parameters('site')]"
    )
    document = small_template(resource)
    document["parameters"]["site"] = {"type": "string"}
    document["variables"]["listeners"][1]["port"] = 80
    resource["properties"]["copy"][0]["count"] = 1
    path = write(tmp_path, document)
    assert errors(path, "certData=x") == [
        "httpListeners.httpListener.hostName, httpListeners.httpsListener.hostName, "
        "backendHttpSettingsCollection.myHTTPSetting.hostName: parameter 'site' has no value "
        "and no defaultValue: give it with --parameters site=..."
    ]


def test_errors_inside_copy_loops_name_the_key(tmp_path: Path) -> None:
    resource = small_gateway()
    rules = resource["properties"]["copy"][2]["input"]["properties"]
    rules["backendAddressPool"] = {"id": "[resourceId('x', frobnicate())]"}
    rules["priority"] = "[add(100, copyIndex('requestRoutingRules'), 1)]"
    path = write(tmp_path, small_template(resource))
    assert errors(path, "certData=x") == [
        "requestRoutingRules.rule-httpListener.priority: add() takes 2 argument(s), got 3",
        "requestRoutingRules.rule-httpListener.backendAddressPool: unknown template function "
        "frobnicate()",
    ]


def dual_stack_template() -> dict[str, Any]:
    """Public IPv4 and IPv6 frontends, each with a listener on port 80."""
    resource = small_gateway()
    props = resource["properties"]
    props["frontendIPConfigurations"] = [
        {"name": f"front{v}", "properties": {"publicIPAddress": {"id": f"[resourceId("
         f"'Microsoft.Network/publicIPAddresses', 'pip{v}')]"}}}
        for v in (4, 6)
    ]  # fmt: skip
    listener = props["copy"][1]["input"]
    listener["name"] = "[concat('web', copyIndex('httpListeners'))]"
    listener["properties"]["frontendIPConfiguration"] = {
        "id": "[resourceId('Microsoft.Network/applicationGateways/frontendIPConfigurations', "
        "'gw', concat('front', if(equals(copyIndex('httpListeners'), 0), '4', '6')))]"
    }
    listener["properties"]["protocol"] = "Http"
    listener["properties"]["sslCertificate"] = None
    listener["properties"]["frontendPort"] = {"id": "x/frontendPorts/port_80"}
    listener["properties"].pop("hostName")
    props["copy"][1]["count"] = 2
    rule = props["copy"][2]["input"]
    rule["name"] = "[concat('rule', copyIndex('requestRoutingRules'))]"
    rule["properties"]["httpListener"] = {
        "id": "[resourceId('Microsoft.Network/applicationGateways/httpListeners', 'gw', "
        "concat('web', copyIndex('requestRoutingRules')))]"
    }
    props["copy"][2]["count"] = 2
    pips = [
        {
            "type": "Microsoft.Network/publicIPAddresses",
            "name": f"pip{v}",
            "properties": {"publicIPAddressVersion": f"IPv{v}"},
        }
        for v in (4, 6)
    ]
    document = small_template(resource, resources=[*pips, resource])
    document["parameters"].pop("certData")
    return document


def test_dual_stack_frontends(tmp_path: Path) -> None:
    config = load(str(write(tmp_path, dual_stack_template())))
    assert (config.listeners["web0"].address, config.listeners["web1"].address) == ("0.0.0.0", "::")
    assert {listener.port for listener in config.listeners.values()} == {80}


def test_pools_filled_by_the_template_s_network_interfaces(tmp_path: Path) -> None:
    resource = small_gateway()
    resource["properties"]["backendAddressPools"][0]["properties"] = {}
    nic = {
        "type": "Microsoft.Network/networkInterfaces",
        "name": "[concat('nic', copyIndex(1))]",
        "copy": {"name": "nics", "count": 2},
        "properties": {
            "ipConfigurations": [
                {
                    "name": "ipconfig1",
                    "properties": {
                        "privateIPAllocationMethod": "[if(equals(copyIndex(), 0), 'Static', "
                        "'Dynamic')]",
                        "privateIPAddress": "[if(equals(copyIndex(), 0), '10.0.1.4', null())]",
                        "applicationGatewayBackendAddressPools": [
                            {
                                "id": "[resourceId('Microsoft.Network/applicationGateways/"
                                "backendAddressPools', 'gw', 'myBackendPool')]"
                            }
                        ],
                    },
                }
            ]
        },
    }
    path = write(tmp_path, small_template(resource, resources=[nic, resource]))
    assert errors(path, "certData=x") == [
        "backendAddressPools.myBackendPool: filled by network interface 'nic2', whose private "
        "IP exists only once deployed; give it with --reference nic2.privateIPAddress=VALUE"
    ]
    config = load(
        str(path),
        Inputs(parameters=("certData=x",), references=("NIC2.privateIPAddress=10.0.1.5",)),
    )
    assert config.pools["myBackendPool"].servers == (Server("10.0.1.4"), Server("10.0.1.5"))


def _optional_id(collection: str, item: str, key: str) -> str:
    """The gallery's idiom: an optional reference built from a parameter array."""
    return (
        f"[if(contains({item}, '{key}'), json(format('{{{{\"id\": \"{{0}}\"}}}}', "
        f"resourceId('Microsoft.Network/applicationGateways/{collection}', "
        f"parameters('applicationGatewayName'), {item}.{key}))), null())]"
    )


def test_a_gateway_built_from_parameter_arrays(tmp_path: Path) -> None:
    listener = "parameters('httpListeners')[copyIndex('httpListeners')]"
    rule = "parameters('rules')[copyIndex('requestRoutingRules')]"
    setting = "parameters('backendHttpSettings')[copyIndex('backendHttpSettingsCollection')]"
    document = {
        "parameters": {
            "applicationGatewayName": {"type": "string", "defaultValue": "appGw01"},
            "http2Enabled": {"type": "bool", "defaultValue": False},
            "enableWebApplicationFirewall": {"type": "bool", "defaultValue": False},
            "existingVnetName": {"type": "string"},
            "frontEndPorts": {"type": "array", "defaultValue": [{"name": "port_80", "port": 80}]},
            "httpListeners": {
                "type": "array",
                "defaultValue": [{"name": "L1", "protocol": "Http", "frontEndPort": "port_80"}],
            },
            "backendAddressPools": {
                "type": "array",
                "defaultValue": [{"name": "P1", "backendAddresses": [{"ipAddress": "10.1.2.3"}]}],
            },
            "backendHttpSettings": {
                "type": "array",
                "defaultValue": [
                    {
                        "name": "S1",
                        "port": 80,
                        "protocol": "Http",
                        "cookieBasedAffinity": "Enabled",
                        "requestTimeout": 300,
                        "connectionDraining": {"drainTimeoutInSec": 60, "enabled": True},
                    }
                ],
            },
            "rules": {
                "type": "array",
                "defaultValue": [
                    {
                        "name": "R1",
                        "ruleType": "Basic",
                        "listener": "L1",
                        "backendPool": "P1",
                        "backendHttpSettings": "S1",
                    }
                ],
            },
            "customProbes": {"type": "array", "defaultValue": []},
        },
        "resources": [
            {
                "type": "Microsoft.Network/applicationGateways",
                "apiVersion": "2021-03-01",
                "name": "[parameters('applicationGatewayName')]",
                "properties": {
                    "copy": [
                        {
                            "name": "frontendPorts",
                            "count": "[length(parameters('frontEndPorts'))]",
                            "input": {
                                "name": "[parameters('frontEndPorts')[copyIndex('frontendPorts')]"
                                ".name]",
                                "properties": {
                                    "port": "[parameters('frontEndPorts')"
                                    "[copyIndex('frontendPorts')].port]"
                                },
                            },
                        },
                        {
                            "name": "probes",
                            "count": "[length(parameters('customProbes'))]",
                            "input": {"name": "[parameters('customProbes')[copyIndex()].name]"},
                        },
                        {
                            "name": "backendAddressPools",
                            "count": "[length(parameters('backendAddressPools'))]",
                            "input": {
                                "name": "[parameters('backendAddressPools')"
                                "[copyIndex('backendAddressPools')].name]",
                                "properties": {
                                    "backendAddresses": "[parameters('backendAddressPools')"
                                    "[copyIndex('backendAddressPools')].backendAddresses]"
                                },
                            },
                        },
                        {
                            "name": "backendHttpSettingsCollection",
                            "count": "[length(parameters('backendHttpSettings'))]",
                            "input": {
                                "name": f"[{setting}.name]",
                                "properties": {
                                    "port": f"[{setting}.port]",
                                    "protocol": f"[{setting}.protocol]",
                                    "cookieBasedAffinity": f"[{setting}.cookieBasedAffinity]",
                                    "affinityCookieName": f"[if(contains({setting}, "
                                    f"'affinityCookieName'), {setting}.affinityCookieName, null())]",
                                    "requestTimeout": f"[{setting}.requestTimeout]",
                                    "connectionDraining": f"[{setting}.connectionDraining]",
                                    "probe": _optional_id("probes", setting, "probeName"),
                                    "pickHostNameFromBackendAddress": f"[if(contains({setting}, "
                                    "'pickHostNameFromBackendAddress'), "
                                    f"{setting}.pickHostNameFromBackendAddress, false())]",
                                },
                            },
                        },
                        {
                            "name": "httpListeners",
                            "count": "[length(parameters('httpListeners'))]",
                            "input": {
                                "name": f"[{listener}.name]",
                                "properties": {
                                    "frontendPort": {
                                        "id": "[resourceId('Microsoft.Network/applicationGateways"
                                        "/frontendPorts', parameters('applicationGatewayName'), "
                                        f"{listener}.frontEndPort)]"
                                    },
                                    "protocol": f"[{listener}.protocol]",
                                    "sslCertificate": _optional_id(
                                        "sslCertificates", listener, "sslCertificate"
                                    ),
                                    "hostNames": f"[if(contains({listener}, 'hostNames'), "
                                    f"{listener}.hostNames, null())]",
                                },
                            },
                        },
                        {
                            "name": "requestRoutingRules",
                            "count": "[length(parameters('rules'))]",
                            "input": {
                                "name": f"[{rule}.name]",
                                "properties": {
                                    "ruleType": f"[{rule}.ruleType]",
                                    "priority": "[add(copyIndex('requestRoutingRules'), 1)]",
                                    "httpListener": _optional_id("httpListeners", rule, "listener"),
                                    "backendAddressPool": _optional_id(
                                        "backendAddressPools", rule, "backendPool"
                                    ),
                                    "backendHttpSettings": _optional_id(
                                        "backendHttpSettingsCollection", rule, "backendHttpSettings"
                                    ),
                                },
                            },
                        },
                    ],
                    "enableHttp2": "[parameters('http2Enabled')]",
                    "webApplicationFirewallConfiguration": "[if(parameters("
                    "'enableWebApplicationFirewall'), createObject('enabled', true()), null())]",
                    "gatewayIPConfigurations": [
                        {
                            "name": "ipconfig",
                            "properties": {
                                "subnet": {
                                    "id": "[resourceId('Microsoft.Network/virtualNetworks/subnets',"
                                    " parameters('existingVnetName'), 'appgw')]"
                                }
                            },
                        }
                    ],
                },
            }
        ],
    }
    path = write(tmp_path, document)
    config = load(str(path), Inputs(parameters=("existingVnetName=vnet",)))
    assert config.warnings == ()  # the WAF evaluates to off
    assert not config.gateway.http2.enabled
    assert config.pools["P1"].servers == (Server("10.1.2.3"),)
    setting_model = config.settings["S1"]
    assert (setting_model.cookie_based_affinity, setting_model.drain_timeout) == (True, 60)
    assert (config.rules["R1"].listener, config.rules["R1"].pool) == ("L1", "P1")
    enabled = load(str(path), Inputs(parameters=("existingVnetName=vnet", "http2Enabled=true")))
    assert enabled.warnings == ()
    assert enabled.gateway.http2.enabled
