"""TLS policies of HTTPS listeners, as Application Gateway names them (pure).

A policy is predefined (AppGwSslPolicy20150501 ... 20220101S), Custom or
CustomV2. Each fixes a protocol floor and an ordered list of cipher suites
in IANA spelling ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"). `effective`
turns a configured policy into what the listener runs: the floor, the
ceiling (TLS 1.2 for the 2015/2017 and Custom policies, TLS 1.3 for the 2022
and CustomV2 ones) and the OpenSSL cipher string.

What this OpenSSL cannot do is left out, never faked:
- Application Gateway v2 does not use the DHE suites that its older
  policies list; appgw does not either.
- Suites this OpenSSL does not offer (3DES and DSS in OpenSSL 3) are dropped
  from predefined policies; naming one in a custom policy is a configuration
  error.
- TLS 1.3 suites cannot be narrowed through Python's ssl module: with TLS 1.3
  on, OpenSSL's three defaults are offered (the two Application Gateway lists
  and TLS_CHACHA20_POLY1305_SHA256).
- TLS 1.0 and 1.1 need OpenSSL's security level 0 (SHA-1 handshake
  signatures); a policy that allows them sets it.
"""

from __future__ import annotations

import functools
import ssl
import warnings

from attrs import frozen

# Application Gateway's cipher suites, in its documentation's order, and
# their OpenSSL names. None: a TLS 1.3 suite (not set through a cipher string).
CIPHERS: dict[str, str | None] = {
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384": "ECDHE-RSA-AES256-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384": "DHE-RSA-AES256-GCM-SHA384",
    "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256": "DHE-RSA-AES128-GCM-SHA256",
    "TLS_DHE_RSA_WITH_AES_256_CBC_SHA": "DHE-RSA-AES256-SHA",
    "TLS_DHE_RSA_WITH_AES_128_CBC_SHA": "DHE-RSA-AES128-SHA",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_CBC_SHA256": "AES256-SHA256",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384": "ECDHE-ECDSA-AES256-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_DHE_DSS_WITH_AES_256_CBC_SHA256": "DHE-DSS-AES256-SHA256",
    "TLS_DHE_DSS_WITH_AES_128_CBC_SHA256": "DHE-DSS-AES128-SHA256",
    "TLS_DHE_DSS_WITH_AES_256_CBC_SHA": "DHE-DSS-AES256-SHA",
    "TLS_DHE_DSS_WITH_AES_128_CBC_SHA": "DHE-DSS-AES128-SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA": "EDH-DSS-DES-CBC3-SHA",
}
TLS13_CIPHERS = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384")

PROTOCOLS: dict[str, ssl.TLSVersion] = {
    "TLSv1_0": ssl.TLSVersion.TLSv1,
    "TLSv1_1": ssl.TLSVersion.TLSv1_1,
    "TLSv1_2": ssl.TLSVersion.TLSv1_2,
    "TLSv1_3": ssl.TLSVersion.TLSv1_3,
}

POLICY_TYPES = ("predefined", "custom", "customv2")
DEFAULT_POLICY = "AppGwSslPolicy20220101"


_GCM = (
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
)
_ECDSA_GCM = (
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
)
_ECDSA_CBC_SHA2 = (
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
)
_ECDSA_CBC_SHA1 = ("TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA")
_RSA_CBC_SHA1 = ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA")
_RSA_CBC_SHA2 = ("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256")
_STATIC_RSA = (
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
)


@frozen
class Predefined:
    min_protocol: str
    ciphers: tuple[str, ...]
    tls13: bool  # the 2022 generation: TLS 1.3 on


# Application Gateway's predefined policies ("TLS policy overview"): floors
# and suites as documented, in the order of its table.
PREDEFINED: dict[str, Predefined] = {
    "AppGwSslPolicy20150501": Predefined(
        "TLSv1_0",
        _GCM
        + _RSA_CBC_SHA2
        + _RSA_CBC_SHA1
        + (
            "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
            "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
            "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
        )
        + _STATIC_RSA
        + _ECDSA_GCM
        + _ECDSA_CBC_SHA2
        + _ECDSA_CBC_SHA1
        + (
            "TLS_DHE_DSS_WITH_AES_256_CBC_SHA256",
            "TLS_DHE_DSS_WITH_AES_128_CBC_SHA256",
            "TLS_DHE_DSS_WITH_AES_256_CBC_SHA",
            "TLS_DHE_DSS_WITH_AES_128_CBC_SHA",
            "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
            "TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA",
        ),
        tls13=False,
    ),
    "AppGwSslPolicy20170401": Predefined(
        "TLSv1_1",
        _GCM + _RSA_CBC_SHA1 + _STATIC_RSA + _ECDSA_GCM + _ECDSA_CBC_SHA2 + _ECDSA_CBC_SHA1,
        tls13=False,
    ),
    "AppGwSslPolicy20170401S": Predefined(
        "TLSv1_2",
        _GCM + _RSA_CBC_SHA1 + _STATIC_RSA + _ECDSA_GCM + _ECDSA_CBC_SHA2 + _ECDSA_CBC_SHA1,
        tls13=False,
    ),
    "AppGwSslPolicy20220101": Predefined(
        "TLSv1_2",
        TLS13_CIPHERS + _GCM + _RSA_CBC_SHA2 + _ECDSA_GCM + _ECDSA_CBC_SHA2,
        tls13=True,
    ),
    "AppGwSslPolicy20220101S": Predefined(
        "TLSv1_2",
        TLS13_CIPHERS + _GCM + _ECDSA_GCM,
        tls13=True,
    ),
}


@frozen
class EffectivePolicy:
    """What an HTTPS listener runs."""

    name: str  # "AppGwSslPolicy20220101", "Custom", "CustomV2"
    min_protocol: str  # a key of PROTOCOLS
    max_protocol: str  # "TLSv1_2" | "TLSv1_3"
    ciphers: tuple[str, ...]  # IANA names actually enabled, in order (TLS 1.3 ones included)
    openssl_ciphers: str  # the cipher string for TLS 1.0-1.2

    @property
    def new_generation(self) -> bool:
        """2022 predefined and CustomV2: they cannot share a gateway with older ones."""
        return self.max_protocol == "TLSv1_3"

    def describe(self) -> str:
        low = self.min_protocol.replace("_", ".").replace("TLSv", "TLS ")
        high = self.max_protocol.replace("_", ".").replace("TLSv", "TLS ")
        span = low if low == high else f"{low} to {high}"
        return f"{self.name}: {span}; " + ", ".join(self.ciphers)

    def apply(self, context: ssl.SSLContext) -> None:
        """Set the protocol range and cipher suites on a server context."""
        with warnings.catch_warnings():  # TLS 1.0 and 1.1 are deprecated: the policy asks for them
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = PROTOCOLS[self.min_protocol]
            context.maximum_version = PROTOCOLS[self.max_protocol]
        if self.openssl_ciphers:
            context.set_ciphers(self.openssl_ciphers)


@functools.cache
def openssl_offers(cipher: str) -> bool:
    """Whether this OpenSSL offers an Application Gateway cipher suite."""
    name = CIPHERS.get(cipher)
    if name is None:
        return cipher in TLS13_CIPHERS
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.set_ciphers(f"{name}:@SECLEVEL=0")
    except ssl.SSLError:
        return False
    return any(c["name"] == name for c in context.get_ciphers())


def usable(cipher: str) -> bool:
    """Offered by this OpenSSL and used by Application Gateway v2 (no DHE)."""
    return openssl_offers(cipher) and "_DHE_" not in cipher


def cipher_problem(cipher: str, policy_type: str) -> str | None:
    """Why a cipher suite cannot be named in a custom policy, or None."""
    if cipher not in CIPHERS:
        return f"{cipher!r} is not a cipher suite Application Gateway knows"
    if cipher in TLS13_CIPHERS and policy_type != "customv2":
        return f"{cipher!r} is a TLS 1.3 suite, only for CustomV2 policies"
    if not openssl_offers(cipher):
        return f"{cipher!r} is not offered by this OpenSSL ({ssl.OPENSSL_VERSION})"
    return None


def effective(
    policy_type: str,
    policy_name: str | None,
    min_protocol: str | None,
    cipher_suites: tuple[str, ...],
    disabled_protocols: tuple[str, ...] = (),
) -> EffectivePolicy:
    """A validated policy's settings -> what the listener runs."""
    if policy_type == "predefined" or (policy_type == "" and not disabled_protocols):
        name = policy_name or DEFAULT_POLICY
        predefined = PREDEFINED[name]
        low = predefined.min_protocol
        high = "TLSv1_3" if predefined.tls13 else "TLSv1_2"
        ciphers = predefined.ciphers
    elif policy_type == "":  # ARM's older form: only disabledSslProtocols
        name = "AppGwSslPolicy20150501"
        enabled = [p for p in ("TLSv1_0", "TLSv1_1", "TLSv1_2") if p not in disabled_protocols]
        low, high = (enabled[0], "TLSv1_2") if enabled else ("TLSv1_2", "TLSv1_2")
        ciphers = PREDEFINED[name].ciphers
    else:
        v2 = policy_type == "customv2"
        name = "CustomV2" if v2 else "Custom"
        low = min_protocol or ("TLSv1_2" if v2 else "TLSv1_0")
        high = "TLSv1_3" if v2 else "TLSv1_2"
        ciphers = cipher_suites
        if v2:  # TLS 1.3's suites are always on (Application Gateway's rule too)
            ciphers = TLS13_CIPHERS + tuple(c for c in cipher_suites if c not in TLS13_CIPHERS)
    if high == "TLSv1_2":
        ciphers = tuple(c for c in ciphers if c not in TLS13_CIPHERS)
    if low == "TLSv1_3":
        ciphers = tuple(c for c in ciphers if c in TLS13_CIPHERS)
    ciphers = tuple(c for c in ciphers if usable(c))
    names = [CIPHERS[c] for c in ciphers if CIPHERS[c] is not None]
    openssl = ":".join(str(n) for n in names)
    if openssl and PROTOCOLS[low] < ssl.TLSVersion.TLSv1_2:
        openssl += ":@SECLEVEL=0"
    return EffectivePolicy(name, low, high, ciphers, openssl)
