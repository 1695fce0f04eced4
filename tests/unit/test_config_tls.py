"""TLS resources in both formats: sslPolicy, sslProfiles with client
authentication, trustedClientCertificates, backend TLS options; the
effective policies and the errors that name their key."""

from __future__ import annotations

import base64
import copy
import textwrap
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    NoEncryption,
    load_pem_private_key,
    pkcs12,
)

from appgw import tls_policy
from appgw.config import load
from appgw.config.model import Certificate, ClientAuth, SslPolicy
from appgw.config.validate_tls import effective_policy
from appgw.tls import listener_context
from tests.unit.test_config_arm import errors_of, gateway, props, ref, write

CA = trustme.CA()
LEAF = CA.issue_cert("localhost")


def pfx() -> str:
    cert = x509.load_pem_x509_certificate(LEAF.cert_chain_pems[0].bytes())
    key = load_pem_private_key(LEAF.private_key_pem.bytes(), None)
    data = pkcs12.serialize_key_and_certificates(b"site", key, cert, None, NoEncryption())  # type: ignore[arg-type]
    return base64.b64encode(data).decode()


def https_gateway(**extra: Any) -> dict[str, Any]:
    doc = gateway()
    p = doc["properties"]
    p["frontendPorts"].append({"name": "p443", "properties": {"port": 443}})
    p["sslCertificates"] = [{"name": "site", "properties": {"data": pfx()}}]
    p["httpListeners"].append(
        {
            "name": "secure",
            "properties": {
                "frontendPort": ref("frontendPorts", "p443"),
                "protocol": "Https",
                "sslCertificate": ref("sslCertificates", "site"),
            },
        }
    )
    rule = copy.deepcopy(p["requestRoutingRules"][0])
    rule["name"] = "secure"
    rule["properties"]["priority"] = 20
    rule["properties"]["httpListener"] = ref("httpListeners", "secure")
    p["requestRoutingRules"].append(rule)
    p.update(extra)
    return doc


def mtls_arm() -> dict[str, Any]:
    doc = https_gateway(
        sslPolicy={"policyType": "Predefined", "policyName": "AppGwSslPolicy20220101S"},
        trustedClientCertificates=[
            {
                "name": "partners",
                "properties": {"data": base64.b64encode(CA.cert_pem.bytes()).decode()},
            }
        ],
        sslProfiles=[
            {
                "name": "mtls",
                "properties": {
                    "sslPolicy": {
                        "policyType": "CustomV2",
                        "minProtocolVersion": "TLSv1_2",
                        "cipherSuites": ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"],
                    },
                    "trustedClientCertificates": [ref("trustedClientCertificates", "partners")],
                    "clientAuthConfiguration": {
                        "verifyClientCertIssuerDN": True,
                        "verifyClientRevocation": "OCSP",
                        "verifyClientAuthMode": "Passthrough",
                    },
                },
            }
        ],
    )
    props(doc, "httpListeners", 1)["sslProfile"] = ref("sslProfiles", "mtls")
    setting = props(doc, "backendHttpSettingsCollection")
    setting.update(
        protocol="Https",
        validateCertChainAndExpiry=False,
        validateSNI=False,
        sniName="backend.contoso.com",
    )
    doc["properties"]["probes"] = [
        {
            "name": "probe",
            "properties": {
                "protocol": "Https",
                "path": "/",
                "interval": 30,
                "timeout": 30,
                "unhealthyThreshold": 3,
                "pickHostNameFromBackendSettings": True,
            },
        }
    ]
    setting["probe"] = ref("probes", "probe")
    setting["hostName"] = "www.contoso.com"
    return doc


def test_arm_tls_resources_load_without_warnings(tmp_path: Path) -> None:
    config = load(write(tmp_path, mtls_arm()))
    assert config.warnings == ()
    assert config.ssl_policy == SslPolicy("predefined", "AppGwSslPolicy20220101S")
    profile = config.ssl_profiles["mtls"]
    assert profile.trusted_client_certificates == ("partners",)
    assert profile.client_auth == ClientAuth("passthrough", True, "ocsp")
    assert config.trusted_client_certificates["partners"] == CA.cert_pem.bytes()
    assert config.listeners["secure"].ssl_profile == "mtls"
    setting = config.settings["set"]
    assert (setting.validate_cert_chain_and_expiry, setting.validate_sni) == (False, False)
    assert setting.sni_name == "backend.contoso.com"
    assert config.probes["probe"].pick_host_name_from_settings
    policy = effective_policy(config, config.listeners["secure"])
    assert policy.name == "CustomV2" and policy.max_protocol == "TLSv1_3"
    assert policy.ciphers == (*tls_policy.TLS13_CIPHERS, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")


TOML = """
    [ssl_policy]
    policy_name = "AppGwSslPolicy20170401S"

    [certificates.site]
    cert = "site.pem"
    key = "site-key.pem"

    [trusted_client_certificates.partners]
    cert = "partners.pem"

    [ssl_profiles.mtls]
    trusted_client_certificates = ["partners"]
    ssl_policy = {{ policy_type = "custom", min_protocol_version = "TLSv1_1", cipher_suites = {ciphers} }}
    client_auth = {{ mode = "strict", verify_issuer_dn = true, verify_revocation = "none" }}

    [listeners.secure]
    protocol = "https"
    port = 8443
    certificate = "site"
    ssl_profile = "mtls"

    [pools.web]
    servers = ["127.0.0.2"]

    [settings.web]
    port = 443
    protocol = "https"
    validate_cert_chain_and_expiry = true
    validate_sni = false
    sni_name = "backend.contoso.com"

    [rules.secure]
    listener = "secure"
    pool = "web"
    setting = "web"
"""


def write_toml(tmp_path: Path, ciphers: str) -> str:
    LEAF.cert_chain_pems[0].write_to_path(str(tmp_path / "site.pem"))
    LEAF.private_key_pem.write_to_path(str(tmp_path / "site-key.pem"))
    CA.cert_pem.write_to_path(str(tmp_path / "partners.pem"))
    path = tmp_path / "appgw.toml"
    path.write_text(textwrap.dedent(TOML.format(ciphers=ciphers)))
    return str(path)


def test_toml_tls_resources(tmp_path: Path) -> None:
    config = load(write_toml(tmp_path, '["TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"]'))
    assert config.ssl_policy.policy_name == "AppGwSslPolicy20170401S"
    assert config.ssl_profiles["mtls"].client_auth == ClientAuth("strict", True, "none")
    setting = config.settings["web"]
    assert (setting.validate_sni, setting.sni_name) == (False, "backend.contoso.com")
    policy = effective_policy(config, config.listeners["secure"])
    assert (policy.name, policy.min_protocol, policy.max_protocol) == (
        "Custom",
        "TLSv1_1",
        "TLSv1_2",
    )
    assert policy.openssl_ciphers == "ECDHE-ECDSA-AES256-SHA:@SECLEVEL=0"
    context = listener_context(config.certificates["site"], policy)
    assert [c["name"] for c in context.get_ciphers() if c["protocol"] != "TLSv1.3"] == [
        "ECDHE-ECDSA-AES256-SHA"
    ]


def test_an_unknown_cipher_is_an_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(Exception) as info:
        load(write_toml(tmp_path, '["TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "TLS_FANCY"]'))
    assert info.value.errors == [  # type: ignore[attr-defined]
        "ssl_profiles.mtls.ssl_policy.cipher_suites: 'TLS_FANCY' is not a cipher suite"
        " Application Gateway knows"
    ]
    doc = mtls_arm()
    doc["properties"]["sslPolicy"] = {
        "policyType": "Custom",
        "minProtocolVersion": "TLSv1_3",
        "cipherSuites": ["TLS_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_AES_128_GCM_SHA256"],
    }
    errors = errors_of(write(tmp_path, doc))
    assert "sslPolicy.minProtocolVersion: must be TLSv1_0, TLSv1_1, TLSv1_2 for Custom" in errors
    assert (
        "sslPolicy.cipherSuites: 'TLS_AES_128_GCM_SHA256' is a TLS 1.3 suite, only for"
        " CustomV2 policies"
    ) in errors
    if not tls_policy.openssl_offers("TLS_RSA_WITH_3DES_EDE_CBC_SHA"):
        assert any("TLS_RSA_WITH_3DES_EDE_CBC_SHA' is not offered" in e for e in errors)


def test_tls_reference_and_mode_errors(tmp_path: Path) -> None:
    doc = mtls_arm()
    profile = doc["properties"]["sslProfiles"][0]["properties"]
    profile["trustedClientCertificates"] = [ref("trustedClientCertificates", "nobody")]
    profile["clientAuthConfiguration"]["verifyClientAuthMode"] = "Lenient"
    profile["clientAuthConfiguration"]["verifyClientRevocation"] = "CRL"
    doc["properties"]["sslPolicy"] = {"policyType": "Predefined", "policyName": "Modern"}
    props(doc, "httpListeners", 0)["sslProfile"] = ref("sslProfiles", "mtls")
    errors = errors_of(write(tmp_path, doc))
    assert sorted(errors) == sorted(
        [
            "sslProfiles.mtls.trustedClientCertificates: no trustedClientCertificates entry"
            " named 'nobody'",
            "sslProfiles.mtls.clientAuthConfiguration.verifyClientAuthMode: must be Strict or"
            " Passthrough, not 'lenient'",
            "sslProfiles.mtls.clientAuthConfiguration.verifyClientRevocation: must be None or"
            " OCSP, not 'crl'",
            "sslPolicy.policyName: must be one of " + ", ".join(tls_policy.PREDEFINED),
            "httpListeners.web.sslProfile: only for https listeners",
        ]
    )


def test_old_and_2022_policies_cannot_share_a_gateway(tmp_path: Path) -> None:
    doc = mtls_arm()
    doc["properties"]["sslPolicy"] = {"policyName": "AppGwSslPolicy20170401S"}
    errors = errors_of(write(tmp_path, doc))
    assert errors == [
        "sslProfiles.mtls.sslPolicy: 2022 predefined and CustomV2 policies cannot share a"
        " gateway with older ones (Application Gateway's rule)"
    ]


@pytest.mark.parametrize(
    ("name", "floor", "ceiling"),
    [
        ("AppGwSslPolicy20150501", "TLSv1_0", "TLSv1_2"),
        ("AppGwSslPolicy20170401", "TLSv1_1", "TLSv1_2"),
        ("AppGwSslPolicy20170401S", "TLSv1_2", "TLSv1_2"),
        ("AppGwSslPolicy20220101", "TLSv1_2", "TLSv1_3"),
        ("AppGwSslPolicy20220101S", "TLSv1_2", "TLSv1_3"),
    ],
)
def test_predefined_policies(name: str, floor: str, ceiling: str) -> None:
    policy = tls_policy.effective("predefined", name, None, ())
    assert (policy.min_protocol, policy.max_protocol) == (floor, ceiling)
    documented = tls_policy.PREDEFINED[name].ciphers
    assert set(policy.ciphers) <= set(documented)
    assert not any("_DHE_" in c for c in policy.ciphers)  # v2 uses no DHE suites
    # Every suite left is one this OpenSSL offers, in the documented order.
    assert list(policy.ciphers) == [c for c in documented if c in policy.ciphers]
    assert all(tls_policy.openssl_offers(c) for c in policy.ciphers)
    context = listener_context(trustme_certificate(), policy)  # OpenSSL takes the cipher string
    assert context.minimum_version == tls_policy.PROTOCOLS[floor]


def trustme_certificate() -> Certificate:
    return Certificate(
        "site",
        b"".join(b.bytes() for b in LEAF.cert_chain_pems),
        LEAF.private_key_pem.bytes(),
        "test",
    )


def test_default_policy_is_20220101() -> None:
    policy = tls_policy.effective("predefined", None, None, ())
    assert policy.name == "AppGwSslPolicy20220101"
    assert "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA" not in policy.ciphers
