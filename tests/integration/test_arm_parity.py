"""An ARM template using every Application Gateway property appgw took over
from Azure's feature list: it loads with no "not implemented" warning but
HTTP/2's, and the gateway answers through it as docs/azure.md says.

tests/data/arm-template-parity.json holds no certificate: the test makes
them with trustme and puts them into the template's parameters (base64 PFX
for the listeners, base64 DER for the backend's CA and the partners' client
CA), with the backend ports and the custom error pages' URLs, then runs the
result with `--bind` and `--port FRONT=LOCAL` on loopback addresses.

What the template has, and what the test asks of it:
- gateway sslPolicy AppGwSslPolicy20220101S; an SSL profile with a CustomV2
  policy and clientAuthConfiguration (issuer DN checked) over a trusted
  client CA: a client without a certificate is refused in the handshake, a
  partner's certificate passes and a rewrite hands its subject to the backend;
- path rules `/api/*` and `/images*`, matched case-insensitively, with
  path overrides;
- an HTTPS backend setting with validateCertChainAndExpiry, validateSNI and
  sniName (the backend's certificate names only the SNI name, not the Host),
  and its probe with pickHostNameFromBackendSettings;
- cookie-based affinity with a custom cookie name, its CORS twin, and a
  response rewrite whose headerValueMatcher edits only the main cookie;
- customErrorConfigurations on the gateway and on the http listener: a 502
  for a pool with no server up gets the listener's page there and the
  gateway's page on the https listener;
- enableHttp2: true, HTTP/2 offered on the HTTPS listeners; no warning.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
from functools import partial
from pathlib import Path

import attrs
import pytest
import trio
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from appgw.certs import ClientCert, issue_client_cert
from tests.support.backends import (
    HttpBackend,
    RecordedRequest,
    serve_http_backend,
    start_http_backends,
)
from tests.support.clients import IncompleteResponse, get, open_http
from tests.support.gateway import open_gateway, run_cli
from tests.support.ports import free_port
from tests.support.waiting import wait_until

TEMPLATE = Path(__file__).resolve().parents[1] / "data" / "arm-template-parity.json"
FRONTEND = "127.0.0.10"
# The template's pools.
STATIC, IMAGES, CHAT_A, CHAT_B = "127.0.4.4", "127.0.4.5", "127.0.4.6", "127.0.4.7"
API = "127.0.4.3"  # HTTPS, certificate for api.internal only
HTTP_BACKENDS = {STATIC: "static", IMAGES: "images", CHAT_A: "chat-a", CHAT_B: "chat-b"}
PFX_PASSWORD = "parity-pass"
LISTENER_PAGE = b"<h1>http listener: the site is down</h1>\n"
GATEWAY_PAGE = b"<h1>gateway: the site is down</h1>\n"
HANDSHAKE_REFUSED = (ssl.SSLError, trio.BrokenResourceError, OSError, IncompleteResponse)
HEX32 = re.compile(r"[0-9a-f]{32}")


@attrs.frozen
class Deployment:
    """The template with its parameters filled in, and what the test needs to talk to it."""

    path: Path
    site_ca: trustme.CA  # issued the listeners' certificate (localhost)
    backend_ca: trustme.CA  # issued the HTTPS backend's certificate (api.internal)
    partner: ClientCert  # a client certificate from the trusted client CA
    stranger: ClientCert  # a client certificate from another CA
    backend_port: int
    backend_tls_port: int


def _der_b64(ca: trustme.CA) -> str:
    cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def _pfx_b64(ca: trustme.CA, *names: str) -> str:
    leaf = ca.issue_cert(*names)
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    cert = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    encryption = serialization.BestAvailableEncryption(PFX_PASSWORD.encode())
    pfx = pkcs12.serialize_key_and_certificates(b"site", key, cert, [ca_cert], encryption)  # type: ignore[arg-type]
    return base64.b64encode(pfx).decode()


def deploy(directory: Path) -> Deployment:
    """Fill the template's parameters with fresh certificates, ports and pages."""
    site_ca, backend_ca, partner_ca, stranger_ca = (trustme.CA() for _ in range(4))
    pages = directory / "pages"
    pages.mkdir()
    (pages / "listener-502.html").write_bytes(LISTENER_PAGE)
    (pages / "gateway-502.html").write_bytes(GATEWAY_PAGE)
    deployment = Deployment(
        path=directory / "arm-template-parity.json",
        site_ca=site_ca,
        backend_ca=backend_ca,
        partner=issue_client_cert(partner_ca, "partner"),
        stranger=issue_client_cert(stranger_ca, "stranger"),
        backend_port=free_port(*HTTP_BACKENDS),
        backend_tls_port=free_port(API),
    )
    values: dict[str, object] = {
        "siteCertificateData": _pfx_b64(site_ca, "localhost"),
        "siteCertificatePassword": PFX_PASSWORD,
        "backendRootCertificateData": _der_b64(backend_ca),
        "partnerCaCertificateData": _der_b64(partner_ca),
        "backendPort": deployment.backend_port,
        "backendTlsPort": deployment.backend_tls_port,
        "gatewayErrorPage502Url": (pages / "gateway-502.html").as_uri(),
        "listenerErrorPage502Url": (pages / "listener-502.html").as_uri(),
    }
    document = json.loads(TEMPLATE.read_text())
    for name, value in values.items():
        document["parameters"][name]["defaultValue"] = value
    deployment.path.write_text(json.dumps(document, indent=2))
    return deployment


def client_context(d: Deployment, cert: ClientCert | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    d.site_ca.configure_trust(context)
    if cert is not None:
        pem = d.path.parent / f"client-{cert.serial:x}.pem"
        pem.write_bytes(cert.cert_pem + cert.key_pem)
        context.load_cert_chain(pem)
    return context


def probes_of(backend: HttpBackend) -> list[RecordedRequest]:
    return [
        r
        for r in backend.requests
        if (r.header("user-agent") or "").startswith("appgw-health-probe")
    ]


def headers_of(echo: dict[str, object]) -> dict[str, str]:
    return {k: v for k, v in echo["headers"]}  # type: ignore[attr-defined]


async def test_template_check_warns_about_nothing(tmp_path: Path) -> None:
    d = deploy(tmp_path)
    with trio.fail_after(30):
        result = await run_cli("check", "-c", str(d.path), cwd=tmp_path)
    assert result.returncode == 0, result
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert warnings == [], result.output
    lines = result.output.splitlines()
    assert any(
        line.startswith("  listener https-listener: TLS policy AppGwSslPolicy20220101S: TLS 1.2")
        for line in lines
    ), result.output
    assert any(
        line.startswith("  listener partners-listener: TLS policy CustomV2: TLS 1.2 to TLS 1.3")
        for line in lines
    ), result.output
    assert (
        "  listener partners-listener: mutual TLS, strict client certificates, issuer DN checked"
        in lines
    ), result.output
    assert (
        "  listener https-listener: ALPN h2 then http/1.1, WebSocket over HTTP/2" in lines
    ), result.output


async def start_backends(nursery: trio.Nursery, d: Deployment) -> dict[str, HttpBackend]:
    started = await start_http_backends(
        nursery, list(HTTP_BACKENDS), d.backend_port, names=list(HTTP_BACKENDS.values())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    d.backend_ca.issue_cert("api.internal").configure_cert(context)
    api = await nursery.start(
        partial(serve_http_backend, API, d.backend_tls_port, name="api", ssl_context=context)
    )
    return {b.name: b for b in [*started, api]}


async def test_template_runs_as_documented(nursery: trio.Nursery, tmp_path: Path) -> None:
    d = deploy(tmp_path)
    ports = {front: free_port(FRONTEND) for front in (80, 443, 8443)}
    assert len(set(ports.values())) == 3
    args = ["--bind", FRONTEND] + [a for f, p in ports.items() for a in ("--port", f"{f}={p}")]
    http, https, partners = ports[80], ports[443], ports[8443]
    with trio.fail_after(60):
        backends = await start_backends(nursery, d)
        api = backends["api"]
        async with open_gateway(d.path, tmp_path, extra_args=args) as gw:
            assert "not implemented by appgw" not in gw.log()
            site = client_context(d)

            # Path rules: "/api/*" matches "/API/..." (case-insensitive), "/images*"
            # matches "/IMAGES/..."; each path override "/" replaces the matched part.
            async with open_http(
                FRONTEND, https, ssl_context=site, server_hostname="localhost"
            ) as c:
                to_api = await c.get("/API/echo?x=1")
                to_images = await c.get("/IMAGES/echo")
                to_default = await c.get("/echo")
            assert (to_api.status, to_api.header("x-backend")) == (200, "api")
            echo = to_api.json()
            assert echo["target"] == "/echo?x=1"
            seen = headers_of(echo)
            # The setting's hostName goes out as Host; the backend's certificate
            # names only api.internal, the sniName, which the gateway validated.
            assert seen["host"] == "api.contoso.com"
            assert seen["x-original-url"] == "/API/echo?x=1"
            assert HEX32.fullmatch(seen["x-appgw-trace-id"])
            assert (to_images.header("x-backend"), to_images.json()["target"]) == (
                "images",
                "/echo",
            )
            assert to_default.header("x-backend") == "static"

            # The probe takes its Host from the backend setting (with the port,
            # not the default one for https).
            probe = await wait_until(lambda: probes_of(api), 20, "a probe reaches the api backend")
            assert probe[0].header("host") == f"api.contoso.com:{d.backend_tls_port}"

            # Affinity: ChatAffinity and its CORS twin; the rewrite's value
            # matcher selects "ChatAffinity=..." only, so the twin keeps SameSite=None.
            async with open_http(FRONTEND, http) as c:
                first = await c.get("/chat/echo")
                cookies = first.header_values("set-cookie")
                value = cookies[0].split(";")[0].split("=", 1)[1]
                by_twin = [
                    await c.get("/chat/echo", headers=[("Cookie", f"ChatAffinityCORS={value}")])
                    for _ in range(4)
                ]
            assert first.status == 200
            assert cookies == [
                f"ChatAffinity={value}; Path=/; HttpOnly; SameSite=Lax",
                f"ChatAffinityCORS={value}; Path=/; HttpOnly; SameSite=None; Secure",
            ]
            assert {r.header("x-backend") for r in by_twin} == {first.header("x-backend")}

            # A 502 from the pool with no server up: the http listener's own
            # page, the gateway's page on the https listener.
            async with open_http(FRONTEND, http) as c:
                down_http = await c.get("/down/x")
            down_https = await get(
                FRONTEND, https, "/Down/x", ssl_context=site, server_hostname="localhost"
            )
            assert (down_http.status, down_http.body) == (502, LISTENER_PAGE)
            assert (down_https.status, down_https.body) == (502, GATEWAY_PAGE)
            assert down_https.header("content-type") == "text/html; charset=utf-8"

            # Mutual TLS: no client certificate, or one from another CA, is
            # refused in the handshake; a partner's passes, and the rewrite rule
            # set tells the backend who it is.
            for context in (client_context(d), client_context(d, d.stranger)):
                with pytest.raises(HANDSHAKE_REFUSED):
                    await get(
                        FRONTEND,
                        partners,
                        "/echo",
                        ssl_context=context,
                        server_hostname="localhost",
                    )
            answer = await get(
                FRONTEND,
                partners,
                "/echo",
                ssl_context=client_context(d, d.partner),
                server_hostname="localhost",
            )
            assert (answer.status, answer.header("x-backend")) == (200, "static")
            seen = headers_of(answer.json())
            assert seen["x-client-subject"] == "CN=partner,O=appgw"
            assert seen["x-client-verify"] == "SUCCESS"
