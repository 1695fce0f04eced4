"""conf/k8s/appgw.yaml's configuration, run as its pod runs it.

The Secret's appgw.toml and a certificate, laid out as the kubelet lays out
the Deployment's projected volume (timestamped directory, `..data`
symlink, one symlink per file), run with the container's own flags: the
readiness probe's path answers 200 on the admin listener, the HTTPS
listener serves the certificate, and when only the certificate Secret
changes (cert-manager renewing it) the kubelet's `..data` swap makes the
gateway reload by itself and serve the new certificate.

Only the addresses change: listeners on 127.0.0.1 through --bind and
--port, the admin listener through --admin, the pool's DNS name replaced by
127.0.0.2 (no traffic leaves the machine).
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import trio
import trustme

from tests.support.admin import admin_get
from tests.support.gateway import open_gateway
from tests.support.k8s import documents
from tests.support.ports import free_port

GATEWAY = "127.0.0.1"
POOL_HOST = "web.default.svc.cluster.local"
APPLIED = "reload complete: generation 2 ready"


def pod() -> tuple[str, list[str], str, dict[str, str]]:
    """The configuration text, the container's args, the readiness path, the projection."""
    kinds = {d["kind"]: d for d in documents()}
    text = kinds["Secret"]["stringData"]["appgw.toml"]
    spec = kinds["Deployment"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    projection = {}
    for volume in spec["volumes"]:
        for source in volume.get("projected", {}).get("sources", ()):
            for item in source["secret"].get("items", ()):
                projection[item["key"]] = item["path"]
    return text, container["args"], container["readinessProbe"]["httpGet"]["path"], projection


def kubelet_write(volume: Path, stamp: str, files: dict[str, bytes]) -> None:
    """What the kubelet's atomic writer does: a new timestamped directory with
    every file of the volume, then `..data` re-pointed at it in one rename."""
    (volume / stamp).mkdir(parents=True)
    for name, data in files.items():
        (volume / stamp / name).write_bytes(data)
        if not (volume / name).is_symlink():
            os.symlink(f"..data/{name}", volume / name)
    os.symlink(stamp, volume / "..data_tmp")
    os.replace(volume / "..data_tmp", volume / "..data")


def certificate(ca: trustme.CA) -> dict[str, bytes]:
    issued = ca.issue_cert("localhost", "127.0.0.1")
    chain = b"".join(blob.bytes() for blob in issued.cert_chain_pems)
    return {"tls.crt": chain, "tls.key": issued.private_key_pem.bytes()}


async def verifies(port: int, ca: trustme.CA) -> bool:
    """Does a new TLS connection to the listener verify against `ca`?"""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    stream = await trio.open_tcp_stream(GATEWAY, port)
    tls = trio.SSLStream(stream, context, server_hostname="localhost")
    try:
        await tls.do_handshake()
    except trio.BrokenResourceError as exc:
        if "CERTIFICATE_VERIFY_FAILED" in str(exc.__cause__):
            return False
        raise
    finally:
        await stream.aclose()
    return True


async def test_the_example_pod_serves_and_reloads_a_renewed_certificate(
    tmp_path: Path, gateway_port: int, https_port: int
) -> None:
    text, args, ready_path, projection = pod()
    config_in_pod = Path(args[args.index("-c") + 1])
    volume = tmp_path / "config"
    assert POOL_HOST in text
    text = text.replace(str(config_in_pod.parent), str(volume)).replace(POOL_HOST, "127.0.0.2")
    # The container's flags, less the configuration and pid file open_gateway gives.
    given = ("-c", "--pid-file")
    flags = [
        a
        for a, before in zip(args[1:], args, strict=False)
        if a not in given and before not in given
    ]
    assert args[0] == "run" and flags == ["--watch"], args
    while (admin_port := free_port(GATEWAY)) in (gateway_port, https_port):
        pass
    old_ca, new_ca = trustme.CA(), trustme.CA()
    files = {projection["appgw.toml"]: text.encode()}
    kubelet_write(volume, "..2026_12_01_10_00_00.000000001", files | certificate(old_ca))
    flags += ["--bind", GATEWAY, "--port", f"80={gateway_port}", "--port", f"443={https_port}"]
    flags += ["--admin", f"{GATEWAY}:{admin_port}"]
    with trio.fail_after(60):
        async with open_gateway(volume / config_in_pod.name, tmp_path, extra_args=flags) as gw:
            ready = await admin_get(admin_port, ready_path)
            assert (ready.status, ready.text().strip()) == (200, "serving"), ready
            assert await verifies(https_port, old_ca)
            offset = len(gw.log())
            # Only the certificate Secret changed: appgw.toml is the same bytes.
            kubelet_write(volume, "..2026_12_02_10_00_00.000000002", files | certificate(new_ca))
            await gw.wait_for_log(APPLIED, 20, start=offset)
            assert await verifies(https_port, new_ca)
            assert not await verifies(https_port, old_ca)
            assert (await admin_get(admin_port, ready_path)).status == 200
