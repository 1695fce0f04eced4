"""appgw's TOML for TLS: [ssl_policy], [ssl_profiles.*], [trusted_client_certificates.*].

Part of the TOML loader (toml.py). The keys are ARM's in snake case:

    [ssl_policy]                      # the gateway's; absent: AppGwSslPolicy20220101
    policy_type = "custom"            # predefined | custom | customv2
    min_protocol_version = "TLSv1_2"
    cipher_suites = ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]

    [trusted_client_certificates.partners]
    cert = "certs/partners-ca.pem"    # a CA chain, PEM (or one DER certificate)

    [ssl_profiles.partners]
    trusted_client_certificates = ["partners"]
    ssl_policy = { policy_name = "AppGwSslPolicy20220101S" }
    client_auth = { mode = "strict", verify_issuer_dn = true, verify_revocation = "ocsp" }
"""

from __future__ import annotations

from typing import Protocol

from appgw.config.certs import CertError, ca_to_pem
from appgw.config.fields import Section
from appgw.config.model import ClientAuth, SslPolicy, SslProfile


class Reader(Protocol):
    """What reading a certificate needs of the TOML load (toml.py's reader)."""

    quiet: set[str]  # key paths read, not to be reported as unknown

    def read(self, s: Section, key: str, value: str) -> bytes | None:
        """The file `value` names (relative to the configuration), or None
        with an error at `key`."""
        ...


def ssl_policy(s: Section | None) -> SslPolicy:
    if s is None:
        return SslPolicy()
    policy = SslPolicy(
        policy_type=s.get_str("policy_type", "predefined").lower(),
        policy_name=s.get_opt_str("policy_name"),
        min_protocol_version=s.get_opt_str("min_protocol_version"),
        cipher_suites=s.get_strs("cipher_suites"),
    )
    s.reject_unused()
    return policy


def ssl_profile(name: str, s: Section) -> SslProfile:
    policy = s.get_section("ssl_policy")
    client_auth = ClientAuth()
    c = s.get_section("client_auth")
    if c is not None:
        client_auth = ClientAuth(
            mode=c.get_str("mode", "strict").lower(),
            verify_issuer_dn=c.get_bool("verify_issuer_dn", False),
            verify_revocation=c.get_str("verify_revocation", "none").lower(),
        )
        c.reject_unused()
    profile = SslProfile(
        name=name,
        ssl_policy=None if policy is None else ssl_policy(policy),
        trusted_client_certificates=s.get_strs("trusted_client_certificates"),
        client_auth=client_auth,
    )
    s.reject_unused()
    return profile


def trusted_client_certificate(reader: Reader, name: str, s: Section) -> bytes:
    cert = s.get_str("cert", "", required=True)
    s.reject_unused()
    data = reader.read(s, "cert", cert) if cert else None
    if data is not None:
        try:
            return ca_to_pem(data)
        except CertError as e:
            s.error("cert", str(e))
    reader.quiet.add(s.key_path("cert"))
    return b""
