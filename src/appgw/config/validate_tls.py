"""Validation of TLS: policies, SSL profiles, trusted client certificates,
and backend TLS options.

Part of validate.py's checks (see there), on the same Checks object. Beyond
Application Gateway's own rules (valid names, the 2022/CustomV2 generation
not mixed with older policies on one gateway), one rule comes from how
OpenSSL works: HTTPS listeners that share a socket (an address and port)
share one TLS policy and one client authentication setup, because the server
name indication only switches the certificate, once the handshake has begun.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from appgw import tls_policy
from appgw.config.certs import ca_problem
from appgw.config.model import Config, Listener, SslPolicy

if TYPE_CHECKING:
    from appgw.config.checks import Checks

SNI_NAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9_.])?$")
CLIENT_AUTH_MODES = ("strict", "passthrough")
REVOCATION_CHECKS = ("none", "ocsp")
_CUSTOM_FLOORS = {"custom": ("TLSv1_0", "TLSv1_1", "TLSv1_2"), "customv2": ("TLSv1_2", "TLSv1_3")}


def check_tls(c: Checks) -> None:
    config = c.config
    before = len(c.errors)
    _policy(c, "ssl_policy", (), config.ssl_policy)
    for name, profile in config.ssl_profiles.items():
        if profile.ssl_policy is not None:
            _policy(c, "ssl_profiles.*.ssl_policy", (name,), profile.ssl_policy)
    policies_usable = len(c.errors) == before
    for name, pem in config.trusted_client_certificates.items():
        message = ca_problem(pem)
        if message is not None:
            c.error("trusted_client_certificates.*.cert", (name,), message)
    for name, profile in config.ssl_profiles.items():
        names = (name,)
        for ref in profile.trusted_client_certificates:
            c.ref(
                "ssl_profiles.*.trusted_client_certificates",
                names,
                ref,
                "trusted_client_certificates",
            )
        auth = profile.client_auth
        c.choice("ssl_profiles.*.client_auth.mode", names, auth.mode, CLIENT_AUTH_MODES)
        c.choice(
            "ssl_profiles.*.client_auth.verify_revocation",
            names,
            auth.verify_revocation,
            REVOCATION_CHECKS,
        )
        needs_cas = auth.verify_issuer_dn or auth.verify_revocation == "ocsp"
        if needs_cas and not profile.trusted_client_certificates:
            key = c.key("ssl_profiles.*.trusted_client_certificates")
            c.error("ssl_profiles.*.client_auth", names, f"needs {key}")
    for name, listener in config.listeners.items():
        c.ref("listeners.*.ssl_profile", (name,), listener.ssl_profile, "ssl_profiles")
        if listener.ssl_profile is not None and listener.protocol == "http":
            c.error("listeners.*.ssl_profile", (name,), "only for https listeners")
    profiles_resolve = all(
        listener.ssl_profile is None or listener.ssl_profile in config.ssl_profiles
        for listener in config.listeners.values()
    )
    if policies_usable:
        _generations(c)
        if profiles_resolve:
            _shared_sockets(c)
    for name, setting in config.settings.items():
        if setting.sni_name is not None and not SNI_NAME.match(setting.sni_name):
            c.error("settings.*.sni_name", (name,), f"{setting.sni_name!r} is not a host name")


def _policy(c: Checks, base: str, names: tuple[str, ...], p: SslPolicy) -> None:
    before = len(c.errors)
    if p.policy_type == "":
        for protocol in p.disabled_protocols:
            if protocol not in tls_policy.PROTOCOLS:
                c.error(f"{base}", names, f"disabledSslProtocols: {protocol!r} is not a protocol")
        return
    c.choice(f"{base}.policy_type", names, p.policy_type, tls_policy.POLICY_TYPES)
    if p.policy_type == "predefined":
        if p.policy_name is not None and p.policy_name not in tls_policy.PREDEFINED:
            choices = ", ".join(tls_policy.PREDEFINED)
            c.error(f"{base}.policy_name", names, f"must be one of {choices}")
        for key, value in (
            ("min_protocol_version", p.min_protocol_version),
            ("cipher_suites", p.cipher_suites),
        ):
            if value:
                c.error(f"{base}.{key}", names, "only for Custom and CustomV2 policies")
        return
    if p.policy_type not in _CUSTOM_FLOORS:
        return
    floors = _CUSTOM_FLOORS[p.policy_type]
    if p.min_protocol_version is not None and p.min_protocol_version not in floors:
        kind = c.naming.show(f"{base}.policy_type", p.policy_type)
        c.error(f"{base}.min_protocol_version", names, f"must be {', '.join(floors)} for {kind}")
    for cipher in p.cipher_suites:
        problem = tls_policy.cipher_problem(cipher, p.policy_type)
        if problem is not None:
            c.error(f"{base}.cipher_suites", names, problem)
    if len(c.errors) > before:
        return
    policy = tls_policy.effective(
        p.policy_type, p.policy_name, p.min_protocol_version, p.cipher_suites
    )
    if policy.min_protocol != "TLSv1_3" and not policy.openssl_ciphers:
        c.error(f"{base}.cipher_suites", names, "needs a TLS 1.2 cipher suite this gateway can use")


def effective_policy(config: Config, listener: Listener) -> tls_policy.EffectivePolicy:
    """The TLS policy an HTTPS listener runs: its profile's, else the gateway's."""
    policy = config.ssl_policy
    if listener.ssl_profile is not None:
        profile = config.ssl_profiles.get(listener.ssl_profile)
        if profile is not None and profile.ssl_policy is not None:
            policy = profile.ssl_policy
    return _effective(policy)


def _effective(p: SslPolicy) -> tls_policy.EffectivePolicy:
    return tls_policy.effective(
        p.policy_type, p.policy_name, p.min_protocol_version, p.cipher_suites, p.disabled_protocols
    )


def _generations(c: Checks) -> None:
    config = c.config
    policies: list[tuple[str, tuple[str, ...], SslPolicy]] = [("ssl_policy", (), config.ssl_policy)]
    for name, profile in config.ssl_profiles.items():
        if profile.ssl_policy is not None:
            policies.append(("ssl_profiles.*.ssl_policy", (name,), profile.ssl_policy))
    kinds: dict[tuple[str, tuple[str, ...]], bool] = {}
    for base, names, p in policies:
        kinds[(base, names)] = _effective(p).new_generation
    if len(set(kinds.values())) > 1:
        gateway_new = kinds[("ssl_policy", ())]
        for (base, names), new in kinds.items():
            if new != gateway_new:
                c.error(
                    base,
                    names,
                    "2022 predefined and CustomV2 policies cannot share a gateway with older"
                    " ones (Application Gateway's rule)",
                )


def _tls_setup(config: Config, listener: Listener) -> tuple[object, ...]:
    """What must be equal for listeners that share a socket."""
    profile = config.ssl_profiles.get(listener.ssl_profile or "")
    auth = None
    if profile is not None and profile.mutual_tls:
        auth = (profile.client_auth, tuple(sorted(profile.trusted_client_certificates)))
    return (effective_policy(config, listener), auth)


def _shared_sockets(c: Checks) -> None:
    config = c.config
    first: dict[tuple[str, int], Listener] = {}
    for listener in config.listeners.values():
        if listener.protocol != "https":
            continue
        bound = (listener.address, listener.port)
        other = first.setdefault(bound, listener)
        if other is listener:
            continue
        if _tls_setup(config, listener) != _tls_setup(config, other):
            c.error(
                "listeners.*.ssl_profile",
                (listener.name,),
                f"its TLS policy or client authentication differs from listener"
                f" {other.name!r} on {bound[0]}:{bound[1]}; listeners sharing a port"
                " share them in appgw",
            )
