"""Certificate rotation: with config watch, a changed certificate or key file
that the configuration names is applied like an edit of the configuration.

The files live as a Kubernetes Secret volume lays them out (`site.pem` ->
`..data/site.pem`, `..data` re-pointed at a new directory atomically), which
is also what cert-manager and a Key Vault sync end up doing. New handshakes
get the new certificate; a connection opened before the rotation keeps
working; a key that does not belong to its certificate is refused with the
key path and the running certificate stays.
"""

from __future__ import annotations

import os
import socket
import ssl
from pathlib import Path

import trio
import trustme

from tests.support.backends import start_http_backends
from tests.support.clients import open_http
from tests.support.gateway import CertFiles, gateway_toml, open_gateway

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
APPLIED = "reload complete"


def secret_volume(directory: Path, version: str, cert: bytes, key: bytes) -> CertFiles:
    """`directory/version/` with the PEM files, `..data` pointed at it
    atomically; the stable paths a configuration names."""
    (directory / version).mkdir(parents=True)
    (directory / version / "site.pem").write_bytes(cert)
    (directory / version / "site-key.pem").write_bytes(key)
    os.symlink(version, directory / "..data_tmp")
    os.replace(directory / "..data_tmp", directory / "..data")
    for name in ("site.pem", "site-key.pem"):
        if not (directory / name).is_symlink():
            os.symlink(f"..data/{name}", directory / name)
    return CertFiles(directory / "site.pem", directory / "site-key.pem", directory / "ca.pem")


def issued(ca: trustme.CA) -> tuple[bytes, bytes]:
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    return b"".join(b.bytes() for b in leaf.cert_chain_pems), leaf.private_key_pem.bytes()


def served_certificate(port: int) -> bytes:
    """The DER of the leaf certificate a new handshake gets."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((GATEWAY, port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def leaf_der(chain_pem: bytes) -> bytes:
    first = chain_pem.decode("ascii").split("-----END CERTIFICATE-----")[0]
    return ssl.PEM_cert_to_DER_cert(first + "-----END CERTIFICATE-----\n")


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_a_rotated_certificate_is_served_to_new_handshakes_and_a_bad_one_refused(
    nursery: trio.Nursery, tmp_path: Path, https_port: int, backend_port: int
) -> None:
    old_ca, new_ca = trustme.CA(), trustme.CA()
    old_cert, old_key = issued(old_ca)
    new_cert, new_key = issued(new_ca)
    volume = tmp_path / "secret"
    files = secret_volume(volume, "..v1", old_cert, old_key)
    config = gateway_toml(servers=[A], backend_port=backend_port, https_port=https_port, cert=files)
    with trio.fail_after(90):
        await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(config, tmp_path, workers=2, extra_args=["--watch"]) as gw:
            assert await trio.to_thread.run_sync(served_certificate, https_port) == leaf_der(
                old_cert
            )
            async with open_http(
                GATEWAY, https_port, ssl_context=trusting(old_ca), server_hostname="localhost"
            ) as kept:
                assert (await kept.get("/echo")).status == 200
                offset = len(gw.log())
                secret_volume(volume, "..v2", new_cert, new_key)
                await gw.wait_for_log(APPLIED, 30, start=offset)
                assert f"{files.cert}, {files.key} changed" in gw.log()[offset:]
                # New handshakes: the new certificate (a client trusting only
                # the new CA verifies it).
                assert await trio.to_thread.run_sync(served_certificate, https_port) == leaf_der(
                    new_cert
                )
                async with open_http(
                    GATEWAY, https_port, ssl_context=trusting(new_ca), server_hostname="localhost"
                ) as fresh:
                    assert (await fresh.get("/echo")).status == 200
                # The connection made before the rotation stays.
                assert (await kept.get("/echo")).status == 200

            # A key that is not the certificate's: refused, naming the key
            # path; the running certificate stays.
            offset = len(gw.log())
            _, stray_key = issued(new_ca)
            secret_volume(volume, "..v3", new_cert, stray_key)
            await gw.wait_for_log("reload refused", 30, start=offset)
            refusal = gw.log()[offset:]
            assert "certificates.site" in refusal, refusal
            assert "generation 3" not in gw.log()[offset:]
            assert await trio.to_thread.run_sync(served_certificate, https_port) == leaf_der(
                new_cert
            )

            # Repaired: the next change is applied.
            offset = len(gw.log())
            third_cert, third_key = issued(old_ca)
            secret_volume(volume, "..v4", third_cert, third_key)
            await gw.wait_for_log(APPLIED, 30, start=offset)
            assert await trio.to_thread.run_sync(served_certificate, https_port) == leaf_der(
                third_cert
            )
