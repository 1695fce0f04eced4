"""v1 authenticationCertificates: an allow-list of backend certificates.

The 2vms-iis-ssl quickstart's idiom: the gateway lists the backend's own
certificate (a .cer's base64) and its HTTPS setting names it. A backend that
presents that certificate is accepted whoever issued it and whatever its
name; any other is refused."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme

from appgw.config import load
from appgw.config.model import Setting
from appgw.tls import backend_client_context, backend_context
from tests.unit.test_arm_gallery import gateway, write


def der_base64(pem: bytes) -> str:
    return base64.b64encode(ssl.PEM_cert_to_DER_cert(pem.decode())).decode()


def v1_gateway(cert_b64: str) -> dict[str, Any]:
    resource = gateway()
    props = resource["properties"]
    props["authenticationCertificates"] = [
        {"name": "backendCert", "properties": {"data": cert_b64}}
    ]
    auth_id = (
        "[resourceId('Microsoft.Network/applicationGateways/authenticationCertificates', "
        "'gw', 'backendCert')]"
    )
    props["backendHttpSettingsCollection"][0]["properties"] = {
        "port": 443,
        "protocol": "Https",
        "authenticationCertificates": [{"id": auth_id}],
    }
    return resource


def handshake(client: ssl.SSLContext, server: ssl.SSLContext, name: str) -> None:
    """A TLS handshake in memory; raises what the client's verification raises."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=name)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (c, s):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if c.version() and s.version():
            return


def backend_server(ca: trustme.CA) -> tuple[ssl.SSLContext, bytes]:
    leaf = ca.issue_cert("backend.internal")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(server)
    return server, leaf.cert_chain_pems[0].bytes()


def test_authentication_certificates_load_as_an_allow_list(tmp_path: Path) -> None:
    _, leaf = backend_server(trustme.CA())
    config = load(str(write(tmp_path, [v1_gateway(der_base64(leaf))])))
    setting = config.settings["s"]
    assert setting.trusted_root_certificates == ("backendCert",)
    assert setting.pinned
    assert config.trusted_root_certificates["backendCert"].startswith(b"-----BEGIN CERTIFICATE")
    assert not [w for w in config.warnings if "authenticationCertificates" in w]


def test_a_pinned_backend_certificate_is_accepted_as_it_is() -> None:
    server, leaf = backend_server(trustme.CA())
    setting = Setting("s", protocol="https", trusted_root_certificates=("c",), pinned=True)
    # the listed leaf is enough: no issuer, and the name is not checked
    handshake(backend_context(setting, {"c": leaf}), server, "10.0.0.4")
    _, other = backend_server(trustme.CA())
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(backend_context(setting, {"c": other}), server, "10.0.0.4")


def test_a_trusted_root_is_not_an_allow_list() -> None:
    """The same leaf as a v2 trusted root: not a CA, so the chain fails."""
    server, leaf = backend_server(trustme.CA())
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(backend_client_context([leaf], validate_name=False), server, "10.0.0.4")
