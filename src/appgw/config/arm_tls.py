"""ARM resources for TLS: sslPolicy, sslProfiles, trustedClientCertificates.

Part of the ARM loader (arm_resources.py builds the rest of the gateway).
`sslPolicy` sits in the gateway's properties and in each SSL profile;
listeners refer to a profile through `sslProfile`. Values keep ARM's
spelling except the case of policyType and the client authentication enums,
which the model keeps in lower case.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from appgw.config.certs import CertError, ca_to_pem
from appgw.config.fields import Section
from appgw.config.model import ClientAuth, SslPolicy, SslProfile
from appgw.tls_policy import PREDEFINED

if TYPE_CHECKING:
    from appgw.config.arm_reader import ArmReader


# Azure's default policy when a gateway names none depends on the API version
# it was created with (the TLS policy overview): AppGwSslPolicy20220101 from
# 2023-02-01 on, AppGwSslPolicy20150501 before.
NEW_DEFAULT_FROM = "2023-02-01"


def default_policy_name(api_version: str | None, printed: str | None) -> str | None:
    """The predefined policy a gateway without sslPolicy runs: the one az show
    prints (defaultPredefinedSslPolicy), else by the template's apiVersion;
    None is appgw's default (AppGwSslPolicy20220101)."""
    if printed in PREDEFINED:
        return printed
    if api_version and api_version[:10] < NEW_DEFAULT_FROM:
        return "AppGwSslPolicy20150501"
    return None


def ssl_policy(arm: ArmReader, s: Section | None) -> SslPolicy:
    """An `sslPolicy` object; absent: the default predefined policy."""
    if s is None:
        return SslPolicy(policy_name=arm.default_policy)
    disabled = s.get_strs("disabledSslProtocols")
    policy_type = s.get_opt_str("policyType")
    policy = SslPolicy(
        policy_type=(policy_type or ("" if disabled else "predefined")).lower(),
        policy_name=s.get_opt_str("policyName"),
        min_protocol_version=s.get_opt_str("minProtocolVersion"),
        cipher_suites=s.get_strs("cipherSuites"),
        disabled_protocols=disabled,
    )
    arm.finish(s, "sslPolicy")
    return policy


def ssl_profile(arm: ArmReader, name: str, s: Section) -> SslProfile:
    policy_section = s.get_section("sslPolicy")
    client_auth = ClientAuth()
    c = s.get_section("clientAuthConfiguration")
    if c is not None:
        client_auth = ClientAuth(
            mode=c.get_str("verifyClientAuthMode", "Strict").lower(),
            verify_issuer_dn=c.get_bool("verifyClientCertIssuerDN", False),
            verify_revocation=c.get_str("verifyClientRevocation", "None").lower(),
        )
        arm.finish(c, "clientAuthConfiguration")
    profile = SslProfile(
        name=name,
        ssl_policy=None if policy_section is None else ssl_policy(arm, policy_section),
        trusted_client_certificates=arm.refs(
            s, "trustedClientCertificates", "trustedClientCertificates"
        ),
        client_auth=client_auth,
    )
    arm.finish(s, "sslProfiles")
    return profile


def trusted_client_certificate(arm: ArmReader, name: str, s: Section) -> bytes:
    """A trusted client CA chain: base64 of a PEM or DER file (PEM text also taken)."""
    data = s.get_opt_str("data")
    key_vault = s.get_opt_str("keyVaultSecretId")
    arm.finish(s, "trustedClientCertificates")
    if key_vault:
        s.error("keyVaultSecretId", "not supported locally, export the CA chain as base64 data")
    elif data is None:
        if not s.has("data"):
            s.error("data", "required")
    else:
        raw: bytes | None = data.encode() if "-----BEGIN" in data else None
        if raw is None:
            try:
                raw = base64.b64decode("".join(data.split()), validate=True)
            except (binascii.Error, ValueError):
                s.error("data", "not valid base64")
        if raw is not None:
            try:
                return ca_to_pem(raw)
            except CertError as e:
                s.error("data", str(e))
    arm.quiet.add(s.key_path("data"))
    return b""
