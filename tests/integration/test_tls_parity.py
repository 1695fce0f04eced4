"""Application Gateway's TLS features end to end, with real TLS clients
(the ssl module) and trustme certificates: TLS policy floors and cipher
suites, mutual TLS in strict and passthrough mode with the client
certificate's server variables passed to the backend by a rewrite rule set,
OCSP revocation against a local responder, and backend TLS options."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trio
import trustme

from appgw.certs import ClientCert, issue_client_cert
from tests.support.backends import HttpBackend, serve_http_backend, start_http_backends
from tests.support.clients import IncompleteResponse, get
from tests.support.gateway import CertFiles, open_gateway, write_certificates
from tests.support.ocsp_responder import OcspResponder, serve_ocsp
from tests.support.ports import free_port

# Old protocol versions are what these tests are about.
pytestmark = pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
# A refused handshake surfaces as one of these, on the handshake or the first read.
REFUSED = (
    ssl.SSLError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    OSError,
    IncompleteResponse,
)


def client_context(
    server_ca: trustme.CA,
    cert: ClientCert | None = None,
    directory: Path | None = None,
    *,
    maximum: ssl.TLSVersion | None = None,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    context = ssl.create_default_context()
    server_ca.configure_trust(context)
    if cert is not None:
        assert directory is not None
        path = directory / f"client-{cert.serial:x}.pem"
        path.write_bytes(cert.cert_pem + cert.key_pem)
        context.load_cert_chain(path)
    if maximum is not None:
        context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = maximum
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    if ciphers is not None:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(ciphers)
    return context


REWRITE = """
[rewrite_rule_sets.identity]
[[rewrite_rule_sets.identity.rules]]
name = "client"
[rewrite_rule_sets.identity.rules.request_headers]
X-Client-Subject = "{var_client_certificate_subject}"
X-Client-Serial = "{var_client_certificate_serial}"
X-Client-Verify = "{var_client_certificate_verification}"
X-Client-Cert = "{var_client_certificate}"
"""


def mtls_config(directory: Path, ports: dict[str, int], backend_port: int, certs: CertFiles) -> str:
    return f"""
[certificates.site]
cert = "{certs.cert}"
key = "{certs.key}"

[trusted_client_certificates.partners]
cert = "{directory / "partners.pem"}"

[ssl_profiles.strict]
trusted_client_certificates = ["partners"]
ssl_policy = {{ policy_name = "AppGwSslPolicy20220101S" }}
client_auth = {{ mode = "strict", verify_issuer_dn = true, verify_revocation = "ocsp" }}

[ssl_profiles.passthrough]
trusted_client_certificates = ["partners"]
client_auth = {{ mode = "passthrough", verify_revocation = "ocsp" }}

[listeners.strict]
protocol = "https"
address = "{GATEWAY}"
port = {ports["strict"]}
certificate = "site"
ssl_profile = "strict"

[listeners.passthrough]
protocol = "https"
address = "{GATEWAY}"
port = {ports["passthrough"]}
certificate = "site"
ssl_profile = "passthrough"

[listeners.plain]
protocol = "https"
address = "{GATEWAY}"
port = {ports["plain"]}
certificate = "site"

[pools.web]
servers = ["{A}"]

[settings.web]
port = {backend_port}

{REWRITE}
[rules.strict]
listener = "strict"
pool = "web"
setting = "web"
rewrite_rule_set = "identity"

[rules.passthrough]
listener = "passthrough"
pool = "web"
setting = "web"
rewrite_rule_set = "identity"

[rules.plain]
listener = "plain"
pool = "web"
setting = "web"
"""


async def test_mutual_tls_policies_and_client_variables(
    nursery: trio.Nursery, tmp_path: Path, backend_port: int
) -> None:
    server_ca, partners_ca, stranger_ca = trustme.CA(), trustme.CA(), trustme.CA()
    ports = {name: free_port() for name in ("strict", "passthrough", "plain")}
    certs = write_certificates(server_ca, tmp_path / "site")
    config = mtls_config(tmp_path, ports, backend_port, certs)
    (tmp_path / "partners.pem").write_bytes(partners_ca.cert_pem.bytes())
    with trio.fail_after(90):
        responder = await nursery.start(serve_ocsp, OcspResponder(partners_ca))
        alice = issue_client_cert(partners_ca, "alice", ocsp_url=responder.url)
        mallory = issue_client_cert(partners_ca, "mallory", ocsp_url=responder.url)
        responder.revoked.add(mallory.serial)
        stranger = issue_client_cert(stranger_ca, "stranger")
        (backend,) = await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(config, tmp_path):

            async def fetch(port: int, context: ssl.SSLContext) -> tuple[int, HttpBackend]:
                response = await get(
                    GATEWAY, port, "/echo", ssl_context=context, server_hostname="localhost"
                )
                return response.status, backend

            # Strict: a trusted, unrevoked certificate passes, and the rewrite
            # rule set hands the client's identity to the backend.
            status, _ = await fetch(ports["strict"], client_context(server_ca, alice, tmp_path))
            assert status == 200
            seen = backend.requests[-1]
            assert seen.header("x-client-subject") == "CN=alice,O=appgw"
            assert seen.header("x-client-serial") == f"{alice.serial:X}"
            assert seen.header("x-client-verify") == "SUCCESS"
            pem = seen.header("x-client-cert") or ""
            assert pem.startswith("-----BEGIN CERTIFICATE----- MI")
            count = len(backend.requests)

            # Strict: no certificate, or one from another CA: refused in the handshake.
            for context in (
                client_context(server_ca),
                client_context(server_ca, stranger, tmp_path),
            ):
                with pytest.raises(REFUSED):
                    await fetch(ports["strict"], context)
            # Strict: a revoked certificate is answered 400 (Application Gateway's answer).
            status, _ = await fetch(ports["strict"], client_context(server_ca, mallory, tmp_path))
            assert status == 400
            assert len(backend.requests) == count

            # Passthrough: no certificate passes with NONE, a revoked one with FAILED.
            status, _ = await fetch(ports["passthrough"], client_context(server_ca))
            assert status == 200
            assert backend.requests[-1].header("x-client-verify") == "NONE"
            assert backend.requests[-1].header("x-client-subject") is None
            mallory_context = client_context(server_ca, mallory, tmp_path)
            status, _ = await fetch(ports["passthrough"], mallory_context)
            assert status == 200
            assert backend.requests[-1].header("x-client-verify") == "FAILED:certificate revoked"
            assert backend.requests[-1].header("x-client-subject") == "CN=mallory,O=appgw"

            # Policy floors: AppGwSslPolicy20220101 (the default) and 20220101S
            # refuse TLS 1.1; both speak TLS 1.3.
            old = client_context(server_ca, alice, tmp_path, maximum=ssl.TLSVersion.TLSv1_1)
            for port in (ports["plain"], ports["strict"]):
                with pytest.raises(REFUSED):
                    await fetch(port, old)
            # Cipher suites: 20220101 offers ECDHE-ECDSA with AES-CBC-SHA256, 20220101S does not.
            cbc = "ECDHE-ECDSA-AES128-SHA256"
            status, _ = await fetch(ports["plain"], client_context(server_ca, ciphers=cbc))
            assert status == 200
            with pytest.raises(REFUSED):
                await fetch(
                    ports["strict"], client_context(server_ca, alice, tmp_path, ciphers=cbc)
                )
            gcm = "ECDHE-ECDSA-AES128-GCM-SHA256"
            context = client_context(server_ca, alice, tmp_path, ciphers=gcm)
            status, _ = await fetch(ports["strict"], context)
            assert status == 200


async def test_a_tls_1_0_floor_lets_old_clients_in(
    nursery: trio.Nursery, tmp_path: Path, https_port: int, backend_port: int
) -> None:
    """The other side of the floor: the refusal above is the policy's doing."""
    server_ca = trustme.CA()
    certs = write_certificates(server_ca, tmp_path / "site")
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.maximum_version = ssl.TLSVersion.TLSv1_1
        probe.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot speak TLS 1.1 at all")
    config = f"""
[ssl_policy]
policy_type = "custom"
min_protocol_version = "TLSv1_0"
cipher_suites = ["TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]

[certificates.site]
cert = "{certs.cert}"
key = "{certs.key}"

[listeners.old]
protocol = "https"
address = "{GATEWAY}"
port = {https_port}
certificate = "site"

[pools.web]
servers = ["{A}"]

[settings.web]
port = {backend_port}

[rules.old]
listener = "old"
pool = "web"
setting = "web"
"""
    with trio.fail_after(60):
        await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(config, tmp_path):
            context = client_context(server_ca, maximum=ssl.TLSVersion.TLSv1_1)
            response = await get(
                GATEWAY, https_port, "/echo", ssl_context=context, server_hostname="localhost"
            )
            assert response.status == 200


async def test_backend_sni_and_validation(
    nursery: trio.Nursery, tmp_path: Path, backend_port: int
) -> None:
    backend_ca = trustme.CA()
    (tmp_path / "backend-ca.pem").write_bytes(backend_ca.cert_pem.bytes())
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    backend_ca.issue_cert("backend.test").configure_cert(server_context)
    names = ("sni", "strict", "nosni", "nochain")
    ports = {name: free_port() for name in names}
    settings = {
        "sni": 'trusted_root_certificates = ["backend"]\nsni_name = "backend.test"',
        "strict": 'trusted_root_certificates = ["backend"]',
        "nosni": 'trusted_root_certificates = ["backend"]\nvalidate_sni = false',
        "nochain": "validate_cert_chain_and_expiry = false",
    }
    parts = [
        f'[trusted_root_certificates.backend]\ncert = "{tmp_path / "backend-ca.pem"}"\n',
        f'[pools.web]\nservers = ["{A}"]\n',
    ]
    for name in names:
        parts.append(
            f'[listeners.{name}]\nprotocol = "http"\naddress = "{GATEWAY}"\nport = {ports[name]}\n'
        )
        parts.append(
            f'[settings.{name}]\nport = {backend_port}\nprotocol = "https"\n{settings[name]}\n'
        )
        parts.append(f'[rules.{name}]\nlistener = "{name}"\npool = "web"\nsetting = "{name}"\n')
    with trio.fail_after(60):
        await nursery.start(
            lambda task_status: serve_http_backend(
                A, backend_port, ssl_context=server_context, task_status=task_status
            )
        )
        async with open_gateway("\n".join(parts), tmp_path) as gw:
            expected = {"sni": 200, "strict": 502, "nosni": 200, "nochain": 200}
            for name, status in expected.items():
                response = await get(GATEWAY, ports[name], "/echo")
                assert response.status == status, (name, gw.log_tail())
