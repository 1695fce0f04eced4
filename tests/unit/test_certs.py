"""The local CA of `appgw certs` and `appgw demo`."""

from __future__ import annotations

import datetime
import os
import ssl
import stat

import pytest
import trio
import trustme
from cryptography import x509

from appgw.certs import cmd_certs, make_local_ca, spki_sha256, trust_instructions


def server_context(paths) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(paths.cert, paths.key)
    return context


def client_context(paths) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(paths.ca))


async def handshake(paths, server_name: str) -> str:
    """A TLS handshake over a socket pair; the name the client checked."""
    client_sock, server_sock = trio.socket.socketpair()
    server = trio.SSLStream(trio.SocketStream(server_sock), server_context(paths), server_side=True)
    client = trio.SSLStream(
        trio.SocketStream(client_sock), client_context(paths), server_hostname=server_name
    )
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.do_handshake)
            await client.do_handshake()
        peer = client.getpeercert()
        await client.aclose()
        await server.aclose()
    return dict(item[0] for item in peer["subject"]).get("organizationName", "")


async def test_files_serve_tls_verified_by_the_ca(tmp_path):
    paths = make_local_ca(tmp_path / "ca")
    assert paths.created_ca and paths.issued_cert
    assert {p.name for p in (tmp_path / "ca").iterdir()} == {
        "ca.pem",
        "ca-key.pem",
        "localhost.pem",
        "localhost-key.pem",
    }
    for key in (paths.key, paths.ca_key):
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    for name in ("localhost", "127.0.0.1", "::1"):
        assert await handshake(paths, name) == "appgw"


def verification_error(error: BaseException | None) -> ssl.SSLCertVerificationError | None:
    """The certificate verification error somewhere in a trio error."""
    while error is not None:
        if isinstance(error, ssl.SSLCertVerificationError):
            return error
        if isinstance(error, BaseExceptionGroup):
            found = [verification_error(e) for e in error.exceptions]
            return next((e for e in found if e is not None), None)
        error = error.__cause__
    return None


async def test_a_name_it_does_not_cover_fails_verification(tmp_path):
    paths = make_local_ca(tmp_path)
    with pytest.raises(BaseException) as info:
        await handshake(paths, "example.com")
    error = verification_error(info.value)
    assert error is not None, info.value
    assert "example.com" in error.verify_message


def test_second_call_reuses_everything(tmp_path):
    first = make_local_ca(tmp_path)
    files = {p: p.read_bytes() for p in (first.ca, first.ca_key, first.cert, first.key)}
    second = make_local_ca(tmp_path)
    assert not second.created_ca and not second.issued_cert
    assert {p: p.read_bytes() for p in files} == files


def test_other_names_reissue_the_cert_from_the_same_ca(tmp_path):
    first = make_local_ca(tmp_path)
    ca_pem = first.ca.read_bytes()
    second = make_local_ca(tmp_path, names=("localhost", "demo.test"))
    assert not second.created_ca and second.issued_cert
    assert second.ca.read_bytes() == ca_pem
    leaf = x509.load_pem_x509_certificate(second.cert.read_bytes())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "demo.test" in san.get_values_for_type(x509.DNSName)
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))


def test_an_expiring_cert_is_reissued(tmp_path):
    first = make_local_ca(tmp_path)
    ca = trustme.CA.from_pem(first.ca.read_bytes(), first.ca_key.read_bytes())
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=3)
    leaf = ca.issue_cert("localhost", "127.0.0.1", "::1", not_after=soon)
    first.cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    first.key.write_bytes(leaf.private_key_pem.bytes())
    second = make_local_ca(tmp_path)
    assert not second.created_ca and second.issued_cert
    renewed = x509.load_pem_x509_certificate(second.cert.read_bytes())
    assert renewed.not_valid_after_utc > soon + datetime.timedelta(days=300)


def test_a_broken_ca_is_replaced(tmp_path):
    first = make_local_ca(tmp_path)
    first.ca_key.write_bytes(b"not a key")
    second = make_local_ca(tmp_path)
    assert second.created_ca and second.issued_cert
    assert stat.S_IMODE(os.stat(second.ca_key).st_mode) == 0o600
    server_context(second)  # the new pair loads


def test_spki_pin_is_the_servers_key(tmp_path):
    paths = make_local_ca(tmp_path)
    pin = spki_sha256(paths.cert)
    assert len(pin) == 44 and pin.endswith("=")
    assert pin != spki_sha256(paths.ca)


def test_trust_instructions_name_the_ca_everywhere(tmp_path):
    paths = make_local_ca(tmp_path)
    text = trust_instructions(paths.ca)
    ca = str(paths.ca)
    assert f"curl --cacert {ca}" in text
    assert f"SSL_CERT_FILE={ca}" in text and f"REQUESTS_CA_BUNDLE={ca}" in text
    assert f"cp {ca} /usr/local/share/ca-certificates/appgw-local-ca.crt" in text
    assert "update-ca-certificates" in text
    assert "security add-trusted-cert" in text
    assert "Firefox" in text and "Chrome" in text


def test_cmd_certs_prints_paths_and_instructions(tmp_path, capsys):
    assert cmd_certs(str(tmp_path / "certs")) == 0
    out = capsys.readouterr().out
    assert "made a new local CA" in out
    for name in ("ca.pem", "ca-key.pem", "localhost.pem", "localhost-key.pem"):
        assert str(tmp_path / "certs" / name) in out
    assert "update-ca-certificates" in out
    assert cmd_certs(str(tmp_path / "certs")) == 0
    assert "reused the local CA and server certificate" in capsys.readouterr().out
