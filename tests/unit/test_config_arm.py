"""ARM templates and `az network application-gateway show` JSON."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from appgw.config import ConfigError, load
from appgw.config.arm_template import Template, id_name
from appgw.config.certs import pair_problem
from appgw.config.fields import Invalid
from appgw.config.model import HeaderAction, RewriteCondition, Server, UrlAction

EXAMPLES = Path(__file__).parents[3] / "shared" / "examples"
GW = "/subscriptions/<subid>/resourceGroups/rg/providers/Microsoft.Network/applicationGateways/gw"


def example(name: str) -> str:
    path = EXAMPLES / name
    assert path.is_file(), f"missing example {path}"
    return str(path)


def test_arm_template_example() -> None:
    config = load(example("arm-template-websocket.json"))

    assert config.warnings == ()
    https = config.listeners["appGatewayHttpsListener"]
    http = config.listeners["appGatewayHttpListener"]
    assert (https.protocol, https.port, https.address) == ("https", 443, "0.0.0.0")
    assert https.certificate == "appGatewaySslCert1"
    assert (http.protocol, http.port, http.certificate) == ("http", 80, None)
    assert http.host_names == () and https.host_names == ()

    cert = config.certificates["appGatewaySslCert1"]
    assert pair_problem(cert.cert_pem, cert.key_pem) is None
    leaf = x509.load_pem_x509_certificates(cert.cert_pem)[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)

    assert config.pools["ChatServerPool"].servers == (
        Server("127.0.1.4"),
        Server("127.0.1.5"),
        Server("localhost"),
    )
    setting = config.settings["appGatewayBackendHttpSettings"]
    assert (setting.port, setting.protocol, setting.request_timeout) == (80, "http", 40)
    assert (setting.cookie_based_affinity, setting.probe) == (False, None)
    assert config.probes == {}

    rules = config.rules
    assert list(rules) == ["chatHttpsRule", "chatHttpRule"]
    assert (rules["chatHttpsRule"].kind, rules["chatHttpsRule"].priority) == ("basic", 100)
    assert rules["chatHttpsRule"].listener == "appGatewayHttpsListener"
    assert rules["chatHttpRule"].listener == "appGatewayHttpListener"
    for rule in rules.values():
        assert (rule.pool, rule.setting) == ("ChatServerPool", "appGatewayBackendHttpSettings")


def test_az_show_example() -> None:
    config = load(example("az-show-multisite.json"))

    assert config.warnings == ()
    chat, www, plain = (config.listeners[n] for n in ("chat-https", "www-https", "all-http"))
    assert (chat.port, chat.protocol, chat.certificate, chat.require_sni) == (
        443,
        "https",
        "wildcard",
        True,
    )
    assert chat.host_names == ("chat.contoso.com", "*.chat.contoso.com")
    assert (www.port, www.host_names) == (443, ("www.contoso.com",))
    assert (plain.port, plain.protocol, plain.host_names) == (80, "http", ())

    assert b"BEGIN CERTIFICATE" in config.trusted_root_certificates["example-root"]
    assert config.pools["chat-pool"].servers == (Server("127.0.2.4"), Server("127.0.2.5"))
    assert config.pools["api-pool"].servers == (Server("localhost"),)
    assert config.pools["static-pool"].servers == (Server("127.0.3.4"),)

    chat_s, api_s, static_s = (
        config.settings[n] for n in ("chat-settings", "api-settings", "static-settings")
    )
    assert (chat_s.port, chat_s.request_timeout, chat_s.probe) == (8080, 60, "chat-probe")
    assert (chat_s.cookie_based_affinity, chat_s.affinity_cookie_name) == (True, "ChatAffinity")
    assert (chat_s.connection_draining, chat_s.drain_timeout) == (True, 120)
    assert (api_s.port, api_s.protocol, api_s.path) == (443, "https", "/v2/")
    assert api_s.pick_host_name_from_backend_address is True
    assert api_s.trusted_root_certificates == ("example-root",)
    assert (static_s.host_name, static_s.probe) == ("static.contoso.com", None)

    chat_p, api_p = config.probes["chat-probe"], config.probes["api-probe"]
    assert (chat_p.protocol, chat_p.host, chat_p.path) == ("http", "127.0.0.1", "/healthz")
    assert (chat_p.interval, chat_p.timeout, chat_p.unhealthy_threshold) == (5, 3, 2)
    assert (chat_p.match_status_codes, chat_p.match_body) == (((200, 299),), "ok")
    assert (api_p.protocol, api_p.pick_host_name_from_settings) == ("https", True)
    assert api_p.match_status_codes == ((200, 399),)

    to_https, away = config.redirects["http-to-https"], config.redirects["to-new-site"]
    assert (to_https.status, to_https.target_listener) == (301, "www-https")
    assert (away.status, away.target_url, away.include_path) == (
        302,
        "https://new.contoso.com/",
        False,
    )

    rules = config.rewrite_rule_sets["api-headers"].rules
    assert [r.name for r in rules] == ["client-ip", "mobile"]
    assert rules[0].request_headers == (HeaderAction("X-Client-IP", "{var_client_ip}"),)
    assert rules[0].response_headers == (HeaderAction("Server", ""),)
    assert rules[1].conditions == (RewriteCondition("http_req_User-Agent", "(Android|iPhone)"),)
    assert rules[1].url == UrlAction(query_string="{var_query_string}&mobile=1")

    www_paths = config.path_maps["www-paths"]
    assert (www_paths.default_pool, www_paths.default_setting) == ("static-pool", "static-settings")
    assert [(r.name, r.paths, r.pool, r.setting, r.redirect) for r in www_paths.rules] == [
        ("api", ("/api/*",), "api-pool", "api-settings", None),
        ("live", ("/live", "/live/*"), "chat-pool", "chat-settings", None),
        ("old", ("/old/*",), None, None, "to-new-site"),
    ]
    assert www_paths.rules[0].rewrite_rule_set == "api-headers"

    assert (config.rules["chat-rule"].kind, config.rules["chat-rule"].priority) == ("basic", 10)
    assert (config.rules["www-rule"].kind, config.rules["www-rule"].path_map) == (
        "path",
        "www-paths",
    )
    assert config.rules["redirect-rule"].redirect == "http-to-https"


# -- a small gateway to vary -------------------------------------------------


def ref(collection: str, name: str) -> dict[str, str]:
    return {"id": f"{GW}/{collection}/{name}"}


def gateway() -> dict[str, Any]:
    """An `az ... show`-shaped gateway: one http listener, pool, setting, rule."""
    return {
        "name": "gw",
        "type": "Microsoft.Network/applicationGateways",
        "properties": {
            "sku": {"name": "Standard_v2"},
            "frontendPorts": [{"name": "p80", "properties": {"port": 80}}],
            "httpListeners": [
                {
                    "name": "web",
                    "properties": {
                        "frontendPort": ref("frontendPorts", "p80"),
                        "protocol": "Http",
                    },
                }
            ],
            "backendAddressPools": [
                {"name": "pool", "properties": {"backendAddresses": [{"ipAddress": "127.0.0.2"}]}}
            ],
            "backendHttpSettingsCollection": [
                {"name": "set", "properties": {"port": 8080, "protocol": "Http"}}
            ],
            "requestRoutingRules": [
                {
                    "name": "rule",
                    "properties": {
                        "ruleType": "Basic",
                        "priority": 10,
                        "httpListener": ref("httpListeners", "web"),
                        "backendAddressPool": ref("backendAddressPools", "pool"),
                        "backendHttpSettings": ref("backendHttpSettingsCollection", "set"),
                    },
                }
            ],
        },
    }


def template(resource: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"$schema": "x", "contentVersion": "1.0.0.0", "resources": [resource], **extra}


def write(tmp_path: Path, document: Any, name: str = "gw.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


def errors_of(path: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(path)
    return info.value.errors


def props(doc: dict[str, Any], collection: str, index: int = 0) -> dict[str, Any]:
    return doc["properties"][collection][index]["properties"]


def test_small_gateway_loads(tmp_path: Path) -> None:
    config = load(write(tmp_path, gateway()))
    assert config.listeners["web"].port == 80
    assert config.rules["rule"].pool == "pool"


@pytest.mark.parametrize(
    "value",
    [
        f"{GW}/frontendPorts/p80",
        f"{GW}/frontendPorts/p80'",
        f"{GW}/frontendPorts/p80')]",
        f"{GW}/frontendPorts/p80' )] ",
        "p80",
        "[resourceId('Microsoft.Network/applicationGateways/frontendPorts', 'gw', 'p80')]",
        "[concat(variables('gwId'), '/frontendPorts/p80')]",
        "[resourceId('Microsoft.Network/applicationGateways/frontendPorts', 'gw', "
        "variables('portName'))]",
    ],
)
def test_resource_ids_resolve_by_last_segment(value: str) -> None:
    names = Template({}, {"gwId": "/subscriptions/x/.../gw", "portName": "p80"})
    assert id_name(value, "frontendPorts", names) == "p80"


@pytest.mark.parametrize(
    "value",
    [
        f"{GW}/backendAddressPools/p80",  # an id of the wrong collection
        "[format('{0}/backendAddressPools/{1}', 'gw', 'p80')]",
        "[frobnicate('p80')]",
        "')]",
    ],
)
def test_bad_resource_ids(value: str) -> None:
    with pytest.raises(Invalid):
        id_name(value, "frontendPorts", Template({}, {}))


def test_id_punctuation_in_a_whole_file(tmp_path: Path) -> None:
    doc = gateway()
    listener = props(doc, "httpListeners")
    listener["frontendPort"]["id"] += "'"
    rule = props(doc, "requestRoutingRules")
    for key in ("httpListener", "backendAddressPool", "backendHttpSettings"):
        rule[key]["id"] += "')]"
    config = load(write(tmp_path, doc))
    assert config.listeners["web"].port == 80
    assert (config.rules["rule"].listener, config.rules["rule"].pool) == ("web", "pool")


def test_property_names_are_case_insensitive(tmp_path: Path) -> None:
    doc = gateway()
    doc["Properties"] = doc.pop("properties")
    ports = doc["Properties"].pop("frontendPorts")
    doc["Properties"]["FrontendPorts"] = [{"Name": "p80", "Properties": {"Port": 80}}]
    assert ports
    listener = doc["Properties"]["httpListeners"][0]["properties"]
    listener["FrontendPort"] = {"ID": listener.pop("frontendPort")["id"]}
    listener["PROTOCOL"] = listener.pop("protocol")
    doc["Properties"]["backendHttpSettingsCollection"][0]["properties"]["RequestTimeout"] = 33
    config = load(write(tmp_path, doc))
    assert (config.listeners["web"].port, config.listeners["web"].protocol) == (80, "http")
    assert config.settings["set"].request_timeout == 33


def test_parameters_and_variables_resolve(tmp_path: Path) -> None:
    doc = gateway()
    doc["properties"]["frontendPorts"][0] = {
        "name": "[variables('portName')]",
        "properties": {"port": "[parameters('httpPort')]"},
    }
    props(doc, "backendHttpSettingsCollection")["requestTimeout"] = "[parameters('timeout')]"
    props(doc, "backendAddressPools")["backendAddresses"] = "[parameters('backends')]"
    document = template(
        doc,
        parameters={
            "httpPort": {"type": "int", "defaultValue": 8081},
            "TIMEOUT": {"type": "int", "defaultValue": "[variables('timeout')]"},
            "backends": {"type": "array", "defaultValue": [{"fqdn": "localhost"}]},
        },
        variables={"portName": "p80", "timeout": 99},
    )
    config = load(write(tmp_path, document))
    assert config.listeners["web"].port == 8081
    assert config.settings["set"].request_timeout == 99
    assert config.pools["pool"].servers == (Server("localhost"),)


def test_unresolvable_expressions_name_the_key(tmp_path: Path) -> None:
    doc = gateway()
    props(doc, "frontendPorts")["port"] = "[parameters('noDefault')]"
    props(doc, "backendHttpSettingsCollection")["port"] = "[frobnicate(8000, 80)]"
    props(doc, "backendHttpSettingsCollection")["hostName"] = "[variables('missing')]"
    document = template(doc, parameters={"noDefault": {"type": "int"}})
    errors = errors_of(write(tmp_path, document))
    assert errors[0] == (
        "frontendPorts.p80.port: parameter 'noDefault' has no value and no defaultValue: "
        "give it with --parameters noDefault=..."
    )
    assert errors[1] == (
        "backendHttpSettingsCollection.set.port: unknown template function frobnicate()"
    )
    assert errors[2] == "backendHttpSettingsCollection.set.hostName: no variable named 'missing'"
    assert len(errors) == 3  # the listener's port stays quiet: its frontend port was reported


def test_escaped_bracket_is_a_literal(tmp_path: Path) -> None:
    doc = gateway()
    props(doc, "backendHttpSettingsCollection")["path"] = "[[v2]/"
    document = template(doc)
    errors = errors_of(write(tmp_path, document))
    assert errors == ["backendHttpSettingsCollection.set.path: must start with '/'"]


def make_pfx(password: bytes | None) -> tuple[bytes, trustme.LeafCert]:
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost")
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    cert = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    pfx = pkcs12.serialize_key_and_certificates(b"x", key, cert, [ca_cert], encryption)
    return pfx, leaf


def https_gateway(certificate: dict[str, Any]) -> dict[str, Any]:
    doc = gateway()
    p = doc["properties"]
    p["frontendPorts"].append({"name": "p443", "properties": {"port": 443}})
    p["sslCertificates"] = [{"name": "cert", "properties": certificate}]
    listener = props(doc, "httpListeners")
    listener.update(
        protocol="Https",
        frontendPort=ref("frontendPorts", "p443"),
        sslCertificate=ref("sslCertificates", "cert"),
    )
    return doc


@pytest.mark.parametrize("password", [b"Passw0rd1", None])
def test_pfx_certificate(tmp_path: Path, password: bytes | None) -> None:
    pfx, leaf = make_pfx(password)
    data = {"data": base64.b64encode(pfx).decode()}
    if password:
        data["password"] = password.decode()
    config = load(write(tmp_path, https_gateway(data)))
    cert = config.certificates["cert"]
    assert cert.cert_pem.startswith(leaf.cert_chain_pems[0].bytes())
    assert cert.cert_pem.count(b"BEGIN CERTIFICATE") == 2
    assert pair_problem(cert.cert_pem, cert.key_pem) is None
    assert config.listeners["web"].certificate == "cert"


def test_bad_pfx_and_key_vault(tmp_path: Path) -> None:
    pfx, _ = make_pfx(b"right")
    wrong = {"data": base64.b64encode(pfx).decode(), "password": "wrong"}
    assert errors_of(write(tmp_path, https_gateway(wrong))) == [
        "sslCertificates.cert.data: not PFX data, or a wrong password"
    ]
    garbage = {"data": "not base64!"}
    assert errors_of(write(tmp_path, https_gateway(garbage))) == [
        "sslCertificates.cert.data: not valid base64"
    ]
    vault = {"keyVaultSecretId": "https://vault.vault.azure.net/secrets/cert"}
    assert errors_of(write(tmp_path, https_gateway(vault))) == [
        "sslCertificates.cert.keyVaultSecretId: read only in Azure: give the certificate "
        "with --certificate cert=FILE[:PASSWORD] (PFX, or PEM with its key)"
    ]
    public_only = {"publicCertData": "MIIB"}
    assert errors_of(write(tmp_path, https_gateway(public_only))) == [
        "sslCertificates.cert.data: has no private key (publicCertData only): give the "
        "certificate with --certificate cert=FILE[:PASSWORD] (PFX, or PEM with its key)"
    ]


def test_trusted_root_as_pem_or_der(tmp_path: Path) -> None:
    ca = trustme.CA()
    der = x509.load_pem_x509_certificate(ca.cert_pem.bytes()).public_bytes(
        serialization.Encoding.DER
    )
    doc = gateway()
    doc["properties"]["trustedRootCertificates"] = [
        {"name": "der", "properties": {"data": base64.b64encode(der).decode()}},
        {"name": "pem", "properties": {"data": ca.cert_pem.bytes().decode()}},
        {"name": "b64pem", "properties": {"data": base64.b64encode(ca.cert_pem.bytes()).decode()}},
    ]
    props(doc, "backendHttpSettingsCollection")["trustedRootCertificates"] = [
        ref("trustedRootCertificates", "der"),
        ref("trustedRootCertificates", "pem"),
    ]
    config = load(write(tmp_path, doc))
    roots = config.trusted_root_certificates
    assert roots["der"] == roots["pem"] == roots["b64pem"] == ca.cert_pem.bytes()
    assert config.settings["set"].trusted_root_certificates == ("der", "pem")


def test_unknown_keys_are_errors(tmp_path: Path) -> None:
    doc = gateway()
    doc["properties"]["httpListener"] = []
    props(doc, "httpListeners")["prot"] = "Http"
    props(doc, "backendHttpSettingsCollection")["requestTimeouts"] = 3
    props(doc, "backendAddressPools")["backendAddresses"][0]["ip"] = "127.0.0.3"
    doc["properties"]["frontendPorts"][0]["colour"] = "red"
    errors = errors_of(write(tmp_path, doc))
    assert sorted(errors) == sorted(
        [
            "httpListener: unknown key (did you mean httpListeners?)",
            "httpListeners.web.prot: unknown key (did you mean protocol?)",
            "backendHttpSettingsCollection.set.requestTimeouts: unknown key"
            " (did you mean requestTimeout?)",
            "backendAddressPools.pool.backendAddresses[0].ip: unknown key",
            "frontendPorts[0].colour: unknown key",
        ]
    )


def test_azure_keys_are_accepted_or_warned_about(tmp_path: Path) -> None:
    doc = gateway()
    doc.update(location="westeurope", tags={"a": "b"}, zones=["1"], etag="x", id=GW)
    p = doc["properties"]
    p.update(
        provisioningState="Succeeded",
        autoscaleConfiguration={"minCapacity": 1},
        gatewayIPConfigurations=[{"name": "ip"}],
        enableHttp2=True,
        sslPolicy={"policyType": "Predefined"},
        customErrorConfigurations=[],  # empty: nothing to warn about
        routingRules=[{"name": "tcp"}],
    )
    listener = doc["properties"]["httpListeners"][0]
    listener["etag"] = "x"
    listener["properties"]["provisioningState"] = "Succeeded"
    config = load(write(tmp_path, doc))
    assert sorted(config.warnings) == ["routingRules: not implemented by appgw, ignored"]
    assert config.gateway.http2.enabled


def test_validation_errors_use_arm_names(tmp_path: Path) -> None:
    doc = gateway()
    props(doc, "backendHttpSettingsCollection")["requestTimeout"] = 0
    props(doc, "backendHttpSettingsCollection")["probe"] = ref("probes", "nope")
    props(doc, "requestRoutingRules")["ruleType"] = "Weighted"
    props(doc, "requestRoutingRules")["backendAddressPool"] = ref("backendAddressPools", "wbe")
    props(doc, "httpListeners")["frontendPort"] = ref("frontendPorts", "p81")
    props(doc, "httpListeners")["protocol"] = "Tcp"
    assert errors_of(write(tmp_path, doc)) == [
        "httpListeners.web.frontendPort: no frontendPorts entry named 'p81'",
        "httpListeners.web.protocol: must be Http or Https, not 'tcp'",
        "backendHttpSettingsCollection.set.requestTimeout: must be 1..86400",
        "backendHttpSettingsCollection.set.probe: no probes entry named 'nope'",
        "requestRoutingRules.rule.ruleType: must be Basic or PathBasedRouting, not 'Weighted'",
    ]
    props(doc, "requestRoutingRules")["ruleType"] = "basic"
    assert errors_of(write(tmp_path, doc))[-1] == (
        "requestRoutingRules.rule.backendAddressPool: no backendAddressPools entry named 'wbe'"
    )


def test_flattened_az_output(tmp_path: Path) -> None:
    doc = gateway()
    flat = {k: v for k, v in doc.items() if k != "properties"}
    for key, value in doc["properties"].items():
        if isinstance(value, list):
            value = [
                {**{k: v for k, v in i.items() if k != "properties"}, **i["properties"]}
                for i in value
            ]
        flat[key] = value
    flat["resourceGroup"] = "rg"
    config = load(write(tmp_path, flat))
    assert config.listeners["web"].port == 80
    assert config.rules["rule"].setting == "set"


def test_private_ip_becomes_the_bind_address(tmp_path: Path) -> None:
    doc = gateway()
    doc["properties"]["frontendIPConfigurations"] = [
        {"name": "private", "properties": {"privateIPAddress": "127.0.0.9"}},
        {"name": "public", "properties": {"publicIPAddress": {"id": "x"}}},
    ]
    props(doc, "httpListeners")["frontendIPConfiguration"] = ref(
        "frontendIPConfigurations", "private"
    )
    config = load(write(tmp_path, doc))
    assert config.listeners["web"].address == "127.0.0.9"


def test_shapes_that_are_not_a_gateway(tmp_path: Path) -> None:
    other = {"type": "Microsoft.Network/publicIPAddresses", "name": "ip"}
    assert errors_of(write(tmp_path, template(other))) == [
        "resources: no resource of type Microsoft.Network/applicationGateways"
    ]
    assert errors_of(write(tmp_path, {"hello": 1}))[0].startswith("neither an ARM template")
    two = template(gateway())
    two["resources"].append(copy.deepcopy(two["resources"][0]))
    assert errors_of(write(tmp_path, two)) == ["resources: 2 application gateways; give one a file"]


def test_template_resource_type_is_case_insensitive(tmp_path: Path) -> None:
    doc = gateway()
    doc["type"] = "microsoft.network/APPLICATIONGATEWAYS"
    doc["apiVersion"] = "2023-09-01"
    doc["dependsOn"] = ["[resourceId('Microsoft.Network/publicIPAddresses', 'ip')]"]
    config = load(write(tmp_path, template(doc)))
    assert list(config.listeners) == ["web"]


def test_json_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "gw.json"
    path.write_text('{\n  "properties": {\n    "frontendPorts": [,]\n  }\n}\n')
    with pytest.raises(ConfigError) as info:
        load(str(path))
    assert info.value.errors[0].startswith("line 3, column 23: not valid JSON")
    assert str(path) in str(info.value)


def test_utf16_file_from_powershell(tmp_path: Path) -> None:
    path = tmp_path / "gw.json"
    path.write_bytes(json.dumps(gateway()).encode("utf-16"))
    assert list(load(str(path)).listeners) == ["web"]


def test_backend_addresses(tmp_path: Path) -> None:
    doc = gateway()
    props(doc, "backendAddressPools")["backendAddresses"] = [
        {"ipAddress": "127.0.0.2", "fqdn": None},
        {"ipAddress": "", "fqdn": "localhost"},
        {},
    ]
    assert errors_of(write(tmp_path, doc)) == [
        "backendAddressPools.pool.backendAddresses[2]: needs ipAddress or fqdn"
    ]
    del props(doc, "backendAddressPools")["backendAddresses"][2]
    config = load(write(tmp_path, doc))
    assert config.pools["pool"].servers == (Server("127.0.0.2"), Server("localhost"))


def test_rule_target_errors_use_arm_names(tmp_path: Path) -> None:
    doc = gateway()
    rule = props(doc, "requestRoutingRules")
    del rule["backendAddressPool"], rule["backendHttpSettings"]
    assert errors_of(write(tmp_path, doc)) == [
        "requestRoutingRules.rule: needs backendAddressPool and backendHttpSettings,"
        " or redirectConfiguration"
    ]


@pytest.mark.parametrize(
    "key", ["pickHostNameFromBackendSettings", "pickHostNameFromBackendHttpSettings"]
)
def test_probe_host_with_a_picked_host_names_the_key_used(tmp_path: Path, key: str) -> None:
    doc = gateway()
    probe = {"protocol": "Http", "path": "/", "host": "probe.contoso.com", key: True}
    doc["properties"]["probes"] = [{"name": "p", "properties": probe}]
    props(doc, "backendHttpSettingsCollection")["probe"] = ref("probes", "p")
    assert errors_of(write(tmp_path, doc)) == [f"probes.p.host: cannot be set with {key}"]
