"""Client certificates of mutual TLS listeners: the issuer DN Application
Gateway extracts, the server variables, and OCSP against a local responder."""

from __future__ import annotations

import trio
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from appgw.certs import issue_client_cert
from appgw.mtls import ClientAuthSetup, check, describe, issuer_name
from appgw.ocsp import OcspChecker
from appgw.worker.policy.variables import RequestContext, Scope
from tests.support.ocsp_responder import OcspResponder, serve_ocsp


def chain(*cas: trustme.CA) -> bytes:
    return b"".join(ca.cert_pem.bytes() for ca in cas)


def subject(ca: trustme.CA) -> x509.Name:
    return x509.load_pem_x509_certificate(ca.cert_pem.bytes()).subject


def der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def test_issuer_dn_is_the_ca_furthest_from_the_root() -> None:
    root = trustme.CA()
    one = root.create_child_ca()
    two = one.create_child_ca()
    other = root.create_child_ca()
    assert issuer_name(chain(root)) == subject(root)  # scenario 3: root only
    assert issuer_name(chain(root, one)) == subject(one)  # scenario 1
    assert issuer_name(chain(two, root, one)) == subject(two)  # scenario 2, any order
    assert issuer_name(chain(root, one, other)) == subject(one)  # scenario 4: the first
    assert issuer_name(chain(root, other, one, two)) == subject(two)  # scenario 5: the longest


def test_server_variables_describe_the_certificate() -> None:
    ca = trustme.CA()
    client = issue_client_cert(ca, "alice")
    cert = describe(der(client.cert_pem), "SUCCESS")
    parsed = x509.load_pem_x509_certificate(client.cert_pem)
    assert cert.subject == "CN=alice,O=appgw"
    assert cert.issuer == parsed.issuer.rfc4514_string()
    assert cert.serial == f"{client.serial:X}"
    assert len(cert.fingerprint) == 40 and int(cert.fingerprint, 16) >= 0
    assert cert.pem.startswith("-----BEGIN CERTIFICATE----- ") and "\n" not in cert.pem
    assert cert.end_date.endswith(" GMT") and str(parsed.not_valid_after_utc.year) in cert.end_date
    assert cert.verification == "SUCCESS" and not cert.refused


async def test_issuer_dn_check() -> None:
    root = trustme.CA()
    partners = root.create_child_ca()
    others = root.create_child_ca()
    setup = ClientAuthSetup(
        mode="strict",
        ca_pem=chain(root, partners),
        issuer_names=frozenset({issuer_name(chain(root, partners))}),
        ocsp=False,
    )
    good = issue_client_cert(partners, "good")
    bad = issue_client_cert(others, "bad")
    with trio.fail_after(5):
        assert await check(der(good.cert_pem), setup, OcspChecker()) is None
        problem = await check(der(bad.cert_pem), setup, OcspChecker())
    assert problem == "certificate issuer does not match"


async def test_ocsp_good_revoked_and_cached(nursery: trio.Nursery) -> None:
    ca = trustme.CA()
    responder = await nursery.start(serve_ocsp, OcspResponder(ca))
    good = issue_client_cert(ca, "good", ocsp_url=responder.url)
    revoked = issue_client_cert(ca, "revoked", ocsp_url=responder.url)
    responder.revoked.add(revoked.serial)
    authority = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    checker = OcspChecker()
    with trio.fail_after(10):
        good_cert = x509.load_pem_x509_certificate(good.cert_pem)
        assert await checker.check(good_cert, [authority]) is None
        assert await checker.check(good_cert, [authority]) is None
        assert responder.requests == 1  # the second answer came from the cache
        revoked_cert = x509.load_pem_x509_certificate(revoked.cert_pem)
        assert await checker.check(revoked_cert, [authority]) == "certificate revoked"


async def test_ocsp_failures_are_failures(nursery: trio.Nursery) -> None:
    ca, stranger = trustme.CA(), trustme.CA()
    authority = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    # A responder signing with another CA's key is not believed.
    forger = await nursery.start(serve_ocsp, OcspResponder(stranger))
    forged = issue_client_cert(ca, "c", ocsp_url=forger.url)
    # Nobody listens on port 9 of 127.0.0.1 (discard): unreachable.
    unreachable = issue_client_cert(ca, "d", ocsp_url="http://127.0.0.1:9/")
    silent = issue_client_cert(ca, "e")
    checker = OcspChecker(timeout=3)
    with trio.fail_after(15):
        cert = x509.load_pem_x509_certificate(forged.cert_pem)
        assert await checker.check(cert, [authority]) == "OCSP: response not signed by the issuer"
        cert = x509.load_pem_x509_certificate(unreachable.cert_pem)
        assert await checker.check(cert, [authority]) == "OCSP: responder unreachable"
        cert = x509.load_pem_x509_certificate(silent.cert_pem)
        assert await checker.check(cert, [authority]) == "OCSP: no responder in the certificate"
        other = x509.load_pem_x509_certificate(stranger.cert_pem.bytes())
        assert await checker.check(cert, [other]) == "OCSP: the issuer is not a trusted client CA"


def test_rewrite_variables_read_the_connection_certificate() -> None:
    ca = trustme.CA()
    client = issue_client_cert(ca, "bob")
    base = dict(
        client_ip="127.0.0.1",
        client_port=5000,
        server_port=443,
        scheme="https",
        method="GET",
        path="/",
        query="",
        host="localhost",
        headers=[],
    )
    with_cert = Scope(
        RequestContext(**base, client_certificate=describe(der(client.cert_pem), "SUCCESS"))
    )  # type: ignore[arg-type]
    assert with_cert.server("client_certificate_subject") == "CN=bob,O=appgw"
    assert with_cert.server("client_certificate_verification") == "SUCCESS"
    assert with_cert.server("client_certificate_serial") == f"{client.serial:X}"
    without = Scope(RequestContext(**base))  # type: ignore[arg-type]
    assert without.server("client_certificate_verification") == ""
    assert without.server("client_certificate") == ""
