"""SSL contexts for HTTPS listeners and HTTPS backends.

Certificates live in the configuration as PEM bytes (TOML files and ARM PFX
data alike), and the ssl module loads key material only from files, so the
PEM is handed over through an anonymous in-memory file (memfd) that never
touches the disk.

Listener contexts are built by the master before it forks its workers
(`listener_contexts`), so every worker inherits the same contexts and with
them the same session ticket keys: a TLS session issued by one worker
resumes on any other. A reload keeps a socket's context (and its ticket
keys) while what it is built from (certificates, TLS policy, client
authentication, SNI choices) is unchanged, so returning clients resume
across reloads too; a changed certificate or policy gets a new context.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Iterable, Mapping, Sequence

import attrs

from appgw.config.model import Certificate, Config, Setting
from appgw.config.validate_tls import effective_policy
from appgw.mtls import ClientAuthSetup, client_auth_setup
from appgw.tls_policy import DEFAULT_POLICY, EffectivePolicy, effective


def _load_chain(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    if hasattr(os, "memfd_create"):
        cert_fd = os.memfd_create("appgw-cert")
        key_fd = os.memfd_create("appgw-key")
        try:
            os.write(cert_fd, cert_pem)
            os.write(key_fd, key_pem)
            context.load_cert_chain(f"/proc/self/fd/{cert_fd}", f"/proc/self/fd/{key_fd}")
        finally:
            os.close(cert_fd)
            os.close(key_fd)
        return
    with tempfile.TemporaryDirectory() as directory:  # pragma: no cover - non-Linux
        cert_path = os.path.join(directory, "cert.pem")
        key_path = os.path.join(directory, "key.pem")
        with open(os.open(cert_path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(cert_pem)
        with open(os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(key_pem)
        context.load_cert_chain(cert_path, key_path)


def listener_context(
    certificate: Certificate,
    policy: EffectivePolicy | None = None,
    client_auth: ClientAuthSetup | None = None,
    http2: bool = False,
) -> ssl.SSLContext:
    """A server context for one certificate, under a TLS policy (default:
    AppGwSslPolicy20220101), asking for client certificates when the
    listener's SSL profile says so (see mtls.py); ALPN offers h2 first with
    HTTP/2 on (never h2c: that is not a TLS protocol)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    (policy or effective("predefined", DEFAULT_POLICY, None, ())).apply(context)
    context.set_alpn_protocols(["h2", "http/1.1"] if http2 else ["http/1.1"])
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE  # the policy's order decides
    _load_chain(context, certificate.cert_pem, certificate.key_pem)
    if client_auth is not None:
        if client_auth.ca_pem:
            context.load_verify_locations(cadata=client_auth.ca_pem.decode("ascii"))
        context.verify_mode = client_auth.verify_mode
    return context


def _host_matches(pattern: str, server_name: str) -> bool:
    pattern = pattern.lower()
    if pattern.startswith("*."):
        return server_name.endswith(pattern[1:]) and server_name.count(".") >= pattern.count(".")
    return pattern == server_name


def socket_context(
    certificates: Mapping[str, Certificate],
    choices: Iterable[tuple[tuple[str, ...], str]],
    *,
    require_sni: bool = False,
    policy: EffectivePolicy | None = None,
    client_auth: ClientAuthSetup | None = None,
    http2: bool = False,
) -> ssl.SSLContext:
    """A server context for one listening socket shared by several listeners.

    `choices` lists (host names, certificate name) per listener on the socket,
    most specific first. The first listener's certificate is the default; an
    SNI server name that matches another listener's host names switches to
    that listener's certificate. The listeners share one TLS policy and
    client authentication (validation makes sure): OpenSSL keeps the first
    context's protocol range, ciphers and verify mode when SNI switches.
    """
    choices = list(choices)
    contexts = {
        name: listener_context(certificates[name], policy, client_auth, http2)
        for _, name in choices
    }
    default = contexts[choices[0][1]]
    if len(contexts) > 1 or require_sni:

        def pick(sock: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> int | None:
            if server_name is None:
                return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME if require_sni else None
            name = server_name.lower()
            for host_names, cert_name in choices:
                if any(_host_matches(pattern, name) for pattern in host_names):
                    sock.context = contexts[cert_name]
                    return None
            return None

        default.sni_callback = pick
    return default


@attrs.frozen
class SocketTlsInputs:
    """Everything an HTTPS socket's context is built from (compared on reload)."""

    choices: tuple[tuple[tuple[str, ...], str], ...]  # (host names, certificate name)
    certificates: tuple[Certificate, ...]  # those the choices name, in order
    require_sni: bool
    policy: EffectivePolicy
    client_auth: ClientAuthSetup | None
    http2: bool = False  # ALPN offers h2 ([gateway.http2] enabled, ARM enableHttp2)


@attrs.frozen
class SocketTls:
    """An HTTPS socket's server context, with what it was built from."""

    inputs: SocketTlsInputs
    context: ssl.SSLContext = attrs.field(eq=False)

    @property
    def client_auth(self) -> ClientAuthSetup | None:
        return self.inputs.client_auth


Bound = tuple[str, int]  # (address, port)


def socket_tls_inputs(config: Config, bound: Bound) -> SocketTlsInputs | None:
    """What the socket at `bound` serves TLS with; None for a plain socket."""
    listeners = [
        listener
        for listener in config.listeners.values()
        if (listener.address, listener.port) == bound
        and listener.protocol == "https"
        and listener.certificate
    ]
    if not listeners:
        return None
    # The first is the default certificate (clients without SNI): the basic
    # listener's, when the socket has one.
    listeners.sort(key=lambda listener: 1 if listener.host_names else 0)
    choices = tuple((listener.host_names, listener.certificate or "") for listener in listeners)
    names = list(dict.fromkeys(name for _, name in choices))
    # Listeners sharing a socket share their TLS policy and client
    # authentication (validate_tls.py): the first listener's apply.
    return SocketTlsInputs(
        choices=choices,
        certificates=tuple(config.certificates[name] for name in names),
        require_sni=any(listener.require_sni for listener in listeners),
        policy=effective_policy(config, listeners[0]),
        client_auth=client_auth_setup(config, listeners[0]),
        http2=config.gateway.http2.enabled,
    )


def listener_contexts(
    config: Config, previous: Mapping[Bound, SocketTls]
) -> dict[Bound, SocketTls]:
    """The server context of each HTTPS socket of `config`, by (address, port).

    A socket whose inputs equal those of its `previous` context keeps that
    context (its ticket keys and session cache: sessions resume across the
    reload). Raises ssl.SSLError / OSError / ValueError for key material
    that does not load.
    """
    built: dict[Bound, SocketTls] = {}
    for listener in config.listeners.values():
        bound = (listener.address, listener.port)
        if bound in built:
            continue
        inputs = socket_tls_inputs(config, bound)
        if inputs is None:
            continue
        kept = previous.get(bound)
        if kept is not None and kept.inputs == inputs:
            built[bound] = kept
            continue
        certificates = {c.name: c for c in inputs.certificates}
        try:
            context = socket_context(
                certificates,
                inputs.choices,
                require_sni=inputs.require_sni,
                policy=inputs.policy,
                client_auth=inputs.client_auth,
                http2=inputs.http2,
            )
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            sources = ", ".join(c.source for c in inputs.certificates)
            raise ValueError(f"TLS on {bound[0]}:{bound[1]} ({sources}): {exc}") from None
        built[bound] = SocketTls(inputs, context)
    return built


def backend_context(setting: Setting, trusted_roots: Mapping[str, bytes]) -> ssl.SSLContext:
    """A client context for a setting's HTTPS backends.

    With trusted root certificates configured, backends must present a chain
    to one of them (Application Gateway's end-to-end TLS); otherwise the
    system's trust store applies. validateCertChainAndExpiry off accepts any
    certificate (its name is then not checked either: Python's ssl module
    checks names only on verified chains); validateSNI off keeps the chain
    check and skips the name. A pinned setting's certificates are v1
    authenticationCertificates (see backend_client_context).
    """
    roots = [trusted_roots[name] for name in setting.trusted_root_certificates]
    return backend_client_context(
        roots, setting.validate_cert_chain_and_expiry, setting.validate_sni, setting.pinned
    )


def backend_client_context(
    trusted_root_pems: Sequence[bytes] = (),
    validate_chain: bool = True,
    validate_name: bool = True,
    pinned: bool = False,
) -> ssl.SSLContext:
    """A client context toward backends (the worker's and the prober's).

    `pinned`: the certificates are an allow-list (v1 authenticationCertificates):
    a chain that ends at any of them verifies (a listed leaf as it is), and
    names are not checked."""
    cadata = "\n".join(pem.decode("ascii") for pem in trusted_root_pems) or None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=cadata)
    if pinned and cadata:
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if not validate_chain or not validate_name or pinned:
        context.check_hostname = False
    if not validate_chain:
        context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    return context
