"""An ARM sslCertificate, or the file `--certificate NAME=FILE[:PASSWORD]` gives for it.

`properties.data` is base64 PFX (with `password`).
`az network application-gateway show` prints an sslCertificate's public part
only (publicCertData), and a template may point at Key Vault
(keyVaultSecretId): neither holds the private key a local listener needs,
unless the secret is one the template itself writes (arm_key_vault.py).
The flag gives it: a PFX file (with its password), or a PEM file holding
the certificate chain and its key (an encrypted key is decrypted with the
password).
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import TYPE_CHECKING

from appgw.config.arm_key_vault import declared_secret
from appgw.config.certs import CertError, pem_pair, pfx_to_pem
from appgw.config.fields import Invalid, Section
from appgw.config.model import Certificate

if TYPE_CHECKING:
    from appgw.config.arm_reader import ArmReader

FLAG = "--certificate {name}=FILE[:PASSWORD]"


def hint(name: str) -> str:
    """The flag that supplies certificate `name`, as error messages write it."""
    return FLAG.format(name=name) + " (PFX, or PEM with its key)"


def read_flag_certificate(name: str, path: str, password: str | None) -> tuple[bytes, bytes]:
    """(certificate chain PEM, key PEM) from the file `--certificate` names;
    CertError names the flag and the file."""
    where = f"--certificate {name}={path}"
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise CertError(f"{where}: cannot read: {e.strerror or e}") from None
    try:
        if b"-----BEGIN" in data:
            return pem_pair(data, None, password)
        return pfx_to_pem(data, password)
    except CertError as e:
        raise CertError(f"{where}: {e}") from None


def certificate(arm: ArmReader, name: str, s: Section) -> Certificate:
    given = arm.certificates.get(name.lower())
    if given is not None:  # --certificate NAME=FILE[:PASSWORD] wins over the document
        s.keys()
        try:
            cert_pem, key_pem = read_flag_certificate(name, *given)
        except CertError as e:
            s.error(None, str(e))
            cert_pem = key_pem = b""
        return Certificate(name, cert_pem, key_pem, source=s.path)
    data, password = s.get_opt_str("data"), s.get_opt_str("password")
    key_vault = s.get_opt_str("keyVaultSecretId")
    has_public = s.has("publicCertData")
    arm.finish(s, "sslCertificates")
    pems = None
    if key_vault and arm.template is not None:  # a secret the template itself writes
        try:
            data = declared_secret(arm.template.shared.resources, key_vault)
        except Invalid as e:  # its value cannot be evaluated
            s.error("keyVaultSecretId", f"the secret's value: {e}")
            arm.quiet.add(s.key_path("data"))
            return Certificate(name, b"", b"", source=s.path)
        key_vault = None if data is not None else key_vault
    if key_vault:
        s.error("keyVaultSecretId", f"read only in Azure: give the certificate with {hint(name)}")
    elif data is None:
        # an unresolved keyVaultSecretId was reported at its own key already
        if not s.has("data") and not s.has("keyVaultSecretId"):
            what = "has no private key (publicCertData only)" if has_public else "required"
            s.error("data", f"{what}: give the certificate with {hint(name)}")
    else:
        pfx = _decode(s, data, name)
        if pfx is not None:
            try:
                pems = pfx_to_pem(pfx, password)
            except CertError as e:
                s.error("data", str(e))
    if pems is None:
        arm.quiet.add(s.key_path("data"))
        pems = (b"", b"")
    return Certificate(name, pems[0], pems[1], source=s.path)


def _decode(s: Section, data: str, name: str) -> bytes | None:
    try:
        return base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        if data.startswith("GEN-"):  # the gallery's parameters files: GEN-SELFSIGNED-CERT-PFXDATA
            s.error("data", f"{data} is a placeholder: give the certificate with {hint(name)}")
        else:
            s.error("data", "not valid base64")
        return None
