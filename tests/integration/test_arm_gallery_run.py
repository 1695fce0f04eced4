"""A gallery-style template run as the gallery deploys it: scripts/appgw run
with its inputs as az takes them (`--parameters NAME=VALUE`, the listener's
certificate as `--parameters certData=@FILE`, the backend's trusted root the
same way), and `--connect-to` serving the template's 10.0.0.x backends
locally. One gateway: an HTTP listener to an HTTP pool, and an HTTPS listener
to an HTTPS pool with end-to-end TLS (v2 trustedRootCertificates: the
backend's chain and its name are checked; under another root, 502)."""

from __future__ import annotations

import base64
import json
import ssl
from functools import partial
from pathlib import Path
from typing import Any

import trio
import trustme

from tests.support.backends import serve_http_backend
from tests.support.clients import open_http
from tests.support.gateway import open_gateway, run_cli
from tests.support.ports import free_port
from tests.support.waiting import wait_until
from tests.unit.test_arm_templates import site_certificate

FRONTEND = "127.0.0.1"
GW = "Microsoft.Network/applicationGateways"


def child(kind: str, name: str) -> dict[str, str]:
    """The multihosting quickstart's idiom: a child's id from the gateway's id."""
    return {"id": f"[resourceId(variables('applicationGatewayID'), '/{kind}/{name}')]"}


def slashed(kind: str, name: str) -> dict[str, str]:
    """The redirect quickstart's idiom: the child's type with a trailing '/'."""
    return {"id": f"[resourceId('{GW}/{kind}/', variables('applicationGatewayName'), '{name}')]"}


def setting(name: str, protocol: str, port: str, extra: dict[str, Any]) -> dict[str, Any]:
    props = {"Port": port, "Protocol": protocol, "CookieBasedAffinity": "Disabled", **extra}
    return {"name": name, "properties": props}


def listener(name: str, port: str, protocol: str, extra: dict[str, Any]) -> dict[str, Any]:
    props = {
        "FrontendIPConfiguration": child("frontendIPConfigurations", "appGatewayFrontendIP"),
        "FrontendPort": child("frontendPorts", port),
        "Protocol": protocol,
        **extra,
    }
    return {"name": name, "properties": props}


def rule(name: str, priority: int, listener: str, pool: str, settings: str) -> dict[str, Any]:
    props = {
        "RuleType": "Basic",
        "priority": priority,
        "httpListener": slashed("httpListeners", listener),
        "backendAddressPool": slashed("backendAddressPools", pool),
        "backendHttpSettings": slashed("backendHttpSettingsCollection", settings),
    }
    return {"Name": name, "properties": props}


def pool(name: str, parameter: str) -> dict[str, Any]:
    return {
        "name": name,
        "properties": {"BackendAddresses": [{"IpAddress": f"[parameters('{parameter}')]"}]},
    }


def template() -> dict[str, Any]:
    secure = {"type": "securestring"}
    gateway = {
        "apiVersion": "2023-09-01",
        "name": "[variables('applicationGatewayName')]",
        "type": GW,
        "location": "[parameters('location')]",
        "properties": {
            "sku": {"name": "Standard_v2", "tier": "Standard_v2", "capacity": 2},
            "sslCertificates": [
                {
                    "name": "appGatewaySslCert",
                    "properties": {
                        "data": "[parameters('certData')]",
                        "password": "[parameters('certPassword')]",
                    },
                }
            ],
            "trustedRootCertificates": [
                {"name": "backendRoot", "properties": {"data": "[parameters('backendRootData')]"}}
            ],
            "frontendIPConfigurations": [
                {
                    "name": "appGatewayFrontendIP",
                    "properties": {
                        "PublicIPAddress": {"id": "[variables('publicIPRef')]"},
                    },
                }
            ],
            "frontendPorts": [
                {"name": "httpPort", "properties": {"Port": 80}},
                {"name": "httpsPort", "properties": {"Port": 443}},
            ],
            "backendAddressPools": [
                pool("webPool", "backendIpAddress1"),
                pool("securePool", "backendIpAddress2"),
            ],
            "backendHttpSettingsCollection": [
                setting("webSettings", "Http", "80", {}),
                setting(
                    "secureSettings",
                    "Https",
                    "443",
                    {
                        "HostName": "[parameters('backendHostName')]",
                        "trustedRootCertificates": [
                            child("trustedRootCertificates", "backendRoot")
                        ],
                    },
                ),
            ],
            "httpListeners": [
                listener("httpListener", "httpPort", "Http", {}),
                listener(
                    "httpsListener",
                    "httpsPort",
                    "Https",
                    {"SslCertificate": child("sslCertificates", "appGatewaySslCert")},
                ),
            ],
            "requestRoutingRules": [
                rule("httpRule", 100, "httpListener", "webPool", "webSettings"),
                rule("httpsRule", 110, "httpsListener", "securePool", "secureSettings"),
            ],
        },
    }
    return {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/"
        "deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {
            "location": {"type": "string", "defaultValue": "[resourceGroup().location]"},
            "backendIpAddress1": {"type": "string"},
            "backendIpAddress2": {"type": "string"},
            "backendHostName": {"type": "string"},
            "certData": secure,
            "certPassword": secure,
            "backendRootData": {"type": "string"},
        },
        "variables": {
            "applicationGatewayName": "applicationGateway1",
            "publicIPRef": "[resourceId('Microsoft.Network/publicIPAddresses', 'publicIp1')]",
            "applicationGatewayID": f"[resourceId('{GW}', variables('applicationGatewayName'))]",
        },
        "resources": [
            {
                "apiVersion": "2023-09-01",
                "type": "Microsoft.Network/publicIPAddresses",
                "name": "publicIp1",
                "location": "[parameters('location')]",
                "properties": {"publicIPAllocationMethod": "Static"},
            },
            gateway,
        ],
    }


def backend_context(backend_ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    backend_ca.issue_cert("backend.contoso.com").configure_cert(context)
    return context


async def test_a_gallery_template_serves_http_and_https_with_end_to_end_tls(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    site_pfx, site_ca = site_certificate()
    backend_ca = trustme.CA()
    path = tmp_path / "azuredeploy.json"
    path.write_text(json.dumps(template()))
    (tmp_path / "site.pfx.b64").write_text(site_pfx)
    root_der = ssl.PEM_cert_to_DER_cert(backend_ca.cert_pem.bytes().decode())
    (tmp_path / "root.cer.b64").write_text(base64.b64encode(root_der).decode())
    http_port = free_port(FRONTEND)
    while (https_port := free_port(FRONTEND)) == http_port:
        pass
    with trio.fail_after(90):
        web = await nursery.start(partial(serve_http_backend, "127.0.0.2", name="web"))
        secure = await nursery.start(
            partial(
                serve_http_backend,
                "127.0.0.3",
                name="secure",
                ssl_context=backend_context(backend_ca),
            )
        )
        args = [
            "--bind", FRONTEND, "--port", f"80={http_port}", "--port", f"443={https_port}",
            "--parameters", "backendIpAddress1=10.0.0.4", "backendIpAddress2=10.0.0.5",
            "backendHostName=backend.contoso.com", "certData=@site.pfx.b64",
            "certPassword=", "backendRootData=@root.cer.b64",
            "--connect-to", f"10.0.0.4:80=127.0.0.2:{web.port}",
            "--connect-to", f"10.0.0.5:443=127.0.0.3:{secure.port}",
        ]  # fmt: skip
        async with open_gateway(path, tmp_path, workers=1, extra_args=args) as gw:
            await gw.wait_for_log(
                "server 10.0.0.5:443 of pool securePool (setting secureSettings) is Healthy", 30
            )
            async with open_http(FRONTEND, http_port) as client:
                plain = await client.get("/", headers=[("Host", "www.contoso.com")])
            trust = ssl.create_default_context()
            site_ca.configure_trust(trust)

            async def https_get() -> tuple[int, str]:
                async with open_http(
                    FRONTEND, https_port, ssl_context=trust, server_hostname="www.contoso.com"
                ) as client:
                    response = await client.get("/", headers=[("Host", "www.contoso.com")])
                return response.status, response.text().strip()

            tls = await https_get()
            # another root: the backend's chain no longer verifies
            other = ssl.PEM_cert_to_DER_cert(trustme.CA().cert_pem.bytes().decode())
            (tmp_path / "other.cer.b64").write_text(base64.b64encode(other).decode())
            given = [a.replace("@root.cer.b64", "@other.cer.b64") for a in args[6:]]
            reload = await run_cli("reload", "--pid-file", str(gw.pid_file), *given, cwd=tmp_path)
            assert reload.returncode == 0, reload.output

            async def refused() -> bool:
                return (await https_get())[0] == 502

            await wait_until(refused, 30, "the backend refused under another root")
    assert (plain.status, plain.text().strip()) == (200, "backend web")
    assert tls == (200, "backend secure")
    assert [r.header("host") for r in secure.requests_to("/")][-1] == "backend.contoso.com"


def v1_template(backend_cert: str) -> dict[str, Any]:
    """The 2vms-iis-ssl quickstart's shape: v1, the HTTPS setting names the
    backend's own certificate in authenticationCertificates."""
    document = template()
    gateway = document["resources"][1]["properties"]
    gateway["sku"] = {"name": "Standard_Small", "tier": "Standard", "capacity": 2}
    del gateway["trustedRootCertificates"]
    gateway["authenticationCertificates"] = [
        {"name": "backendCert", "properties": {"data": backend_cert}}
    ]
    secure = gateway["backendHttpSettingsCollection"][1]["properties"]
    del secure["trustedRootCertificates"], secure["HostName"]
    secure["authenticationCertificates"] = [child("authenticationCertificates", "backendCert")]
    for rule in gateway["requestRoutingRules"]:
        del rule["properties"]["priority"]
    return document


async def test_v1_authentication_certificates_admit_only_the_listed_backend(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    site_pfx, site_ca = site_certificate()
    listed, unlisted = trustme.CA().issue_cert("a.internal"), trustme.CA().issue_cert("b")
    pem = listed.cert_chain_pems[0].bytes().decode()
    path = tmp_path / "azuredeploy.json"
    der = base64.b64encode(ssl.PEM_cert_to_DER_cert(pem)).decode()
    path.write_text(json.dumps(v1_template(der)))
    (tmp_path / "site.pfx.b64").write_text(site_pfx)
    https_port = free_port(FRONTEND)
    with trio.fail_after(90):
        backends = []
        for host, leaf in (("127.0.0.2", listed), ("127.0.0.3", unlisted)):
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            leaf.configure_cert(context)
            backends.append(
                await nursery.start(
                    partial(serve_http_backend, host, name=host, ssl_context=context)
                )
            )
        args = [
            "--bind", FRONTEND, "--port", f"80={free_port(FRONTEND)}",
            "--port", f"443={https_port}",
            "--parameters", "backendIpAddress1=10.0.0.4", "backendIpAddress2=10.0.0.5",
            "backendHostName=unused", "certData=@site.pfx.b64", "certPassword=",
            "backendRootData=unused",
            "--connect-to", f"10.0.0.5:443=127.0.0.2:{backends[0].port}",
        ]  # fmt: skip
        trust = ssl.create_default_context()
        site_ca.configure_trust(trust)

        async def https_get() -> int:
            async with open_http(
                FRONTEND, https_port, ssl_context=trust, server_hostname="www.contoso.com"
            ) as client:
                return (await client.get("/", headers=[("Host", "www.contoso.com")])).status

        async with open_gateway(path, tmp_path, workers=1, extra_args=args) as gw:
            await gw.wait_for_log("server 10.0.0.5:443 of pool securePool", 30)
            admitted = await https_get()
            # the same address, served now by a backend with another certificate
            args[-1] = f"10.0.0.5:443=127.0.0.3:{backends[1].port}"
            pid = ["--pid-file", str(gw.pid_file)]
            reload = await run_cli("reload", *pid, *args[6:], cwd=tmp_path)
            assert reload.returncode == 0, reload.output

            async def refused() -> bool:
                return await https_get() == 502

            await wait_until(refused, 30, "the unlisted backend certificate refused")
    assert admitted == 200
    assert not backends[1].requests_to("/")
