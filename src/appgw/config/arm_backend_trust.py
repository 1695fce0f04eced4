"""What a gateway trusts of its HTTPS backends: v2 trustedRootCertificates and
v1 authenticationCertificates.

A trusted root (v2) is a CA the backend's chain must reach; the backend's
name is checked against the SNI name. An authentication certificate (v1) is
an allow-list entry: Application Gateway v1 accepts a backend whose
certificate is one of its setting's authentication certificates. appgw
keeps both in Config.trusted_root_certificates (names are unique across
the two collections) and marks a setting that lists authentication
certificates `pinned`: its TLS context accepts a chain that ends at any
listed certificate (OpenSSL's partial-chain verification, so a listed leaf
is accepted as it is, and so is what a listed CA issued) and does not check
names. Both are base64 DER (a .cer file's content) or PEM text.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from appgw.config.certs import CertError, ca_to_pem
from appgw.config.fields import Section

if TYPE_CHECKING:
    from appgw.config.arm_reader import ArmReader

KEY_VAULT = "not supported locally, export the certificate as PFX data"


def trusted_certificates(arm: ArmReader, p: Section) -> dict[str, bytes]:
    """name -> PEM of the gateway's trustedRootCertificates and authenticationCertificates."""
    out = {
        n: _certificate(arm, s, "trustedRootCertificates")
        for n, s in arm.resources(p, "trustedRootCertificates")
    }
    for name, s in arm.resources(p, "authenticationCertificates"):
        if name in out:
            s.error(None, f"{name!r} is also the name of a trusted root certificate")
            continue
        out[name] = _certificate(arm, s, "authenticationCertificates")
    return out


def backend_trust(arm: ArmReader, s: Section) -> dict[str, Any]:
    """A backend setting's Setting fields for what it trusts."""
    roots = arm.refs(s, "trustedRootCertificates", "trustedRootCertificates")
    pinned = arm.refs(s, "authenticationCertificates", "authenticationCertificates")
    return {"trusted_root_certificates": roots + pinned, "pinned": bool(pinned) and not roots}


def _certificate(arm: ArmReader, s: Section, kind: str) -> bytes:
    data = s.get_opt_str("data")
    key_vault = s.get_opt_str("keyVaultSecretId")
    arm.finish(s, kind)
    if key_vault:
        s.error("keyVaultSecretId", KEY_VAULT.replace("as PFX data", "as base64 data"))
    elif data is None:
        if not s.has("data"):
            s.error("data", "required")
    else:
        raw = data.encode() if "-----BEGIN" in data else _decode(s, "data", data)
        if raw is not None and b"-----BEGIN" not in raw:
            try:
                raw = ca_to_pem(raw)
            except CertError as e:
                s.error("data", str(e))
                raw = None
        if raw is not None:
            return raw
    arm.quiet.add(s.key_path("data"))
    return b""


def _decode(s: Section, key: str, data: str) -> bytes | None:
    try:
        return base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        if data.startswith("GEN-"):  # the gallery's parameters files: GEN-SELFSIGNED-CERT-CERDATA
            s.error(
                key,
                f"{data} is a placeholder: give the certificate's base64 (a .cer file's "
                "content) with --parameters NAME=@FILE",
            )
        else:
            s.error(key, "not valid base64")
        return None
