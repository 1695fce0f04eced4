"""Listener contexts are kept across reloads while what they are built from
is unchanged (their ticket keys with them), and rebuilt when it changes."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import attrs
import pytest
import trustme

from appgw.config import load
from appgw.config.model import Config
from appgw.master import tls_contexts
from appgw.tls import listener_contexts


def config_with(tmp_path: Path, ca: trustme.CA, policy: str = "AppGwSslPolicy20220101") -> Config:
    issued = ca.issue_cert("localhost")
    (tmp_path / "site.pem").write_bytes(b"".join(b.bytes() for b in issued.cert_chain_pems))
    (tmp_path / "site-key.pem").write_bytes(issued.private_key_pem.bytes())
    path = tmp_path / "gw.toml"
    path.write_text(
        f"""
[ssl_policy]
policy_name = "{policy}"
[certificates.site]
cert = "site.pem"
key = "site-key.pem"
[listeners.https]
protocol = "https"
port = 8443
certificate = "site"
[listeners.http]
protocol = "http"
port = 8080
[pools.web]
servers = ["127.0.0.2"]
[settings.web]
port = 9000
[rules.https]
listener = "https"
pool = "web"
setting = "web"
priority = 10
[rules.http]
listener = "http"
pool = "web"
setting = "web"
priority = 20
"""
    )
    return load(str(path))


def test_unchanged_inputs_keep_the_context_and_changes_rebuild_it(tmp_path: Path) -> None:
    ca = trustme.CA()
    first = listener_contexts(config_with(tmp_path, ca), {})
    assert list(first) == [("0.0.0.0", 8443)]  # the plain listener has none
    # The same files read again (a reload): the very same context.
    again = listener_contexts(load(str(tmp_path / "gw.toml")), first)
    assert again[("0.0.0.0", 8443)].context is first[("0.0.0.0", 8443)].context
    # A new certificate in the same files, or another policy: a new context.
    rotated = listener_contexts(config_with(tmp_path, trustme.CA()), again)
    assert rotated[("0.0.0.0", 8443)].context is not again[("0.0.0.0", 8443)].context
    policy = listener_contexts(config_with(tmp_path, ca, "AppGwSslPolicy20170401S"), rotated)
    assert policy[("0.0.0.0", 8443)].context is not rotated[("0.0.0.0", 8443)].context


def test_key_material_that_does_not_load_names_the_socket_and_files(tmp_path: Path) -> None:
    config = config_with(tmp_path, trustme.CA())
    site = config.certificates["site"]
    broken = attrs.evolve(
        site, key_pem=b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    )
    config = attrs.evolve(config, certificates={"site": broken})
    with pytest.raises(ValueError, match=r"TLS on 0\.0\.0\.0:8443 \(.*site\.pem.*\)"):
        listener_contexts(config, {})


def test_the_master_shares_one_session_store_and_keeps_a_kept_contexts_sessions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attached: list[tuple[ssl.SSLContext, object, bytes]] = []
    monkeypatch.setattr(
        tls_contexts, "attach", lambda context, store, space: attached.append((context, store, space))
    )
    sessions = tls_contexts.SharedSessions()
    ca = trustme.CA()
    first = sessions.contexts(config_with(tmp_path, ca), {})
    again = sessions.contexts(load(str(tmp_path / "gw.toml")), first)  # a reload, unchanged
    assert again == first and len(attached) == 1  # the kept context keeps its namespace
    rotated = sessions.contexts(config_with(tmp_path, trustme.CA()), again)
    assert len(attached) == 2
    (context, store, space), (new_context, new_store, new_space) = attached
    assert context is first[("0.0.0.0", 8443)].context
    assert new_context is rotated[("0.0.0.0", 8443)].context
    assert store is new_store is sessions.store and space != new_space
    sessions.store.close()


def test_a_session_store_that_cannot_be_attached_is_off_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    reasons = ["libssl 0x0 is not OpenSSL 3"]
    monkeypatch.setattr(tls_contexts, "attach", lambda *_: reasons.pop())
    sessions = tls_contexts.SharedSessions()
    ca = trustme.CA()
    with caplog.at_level(logging.WARNING, logger="appgw"):
        built = sessions.contexts(config_with(tmp_path, ca), {})
        sessions.contexts(config_with(tmp_path, trustme.CA()), built)  # not tried again
    assert list(built) == [("0.0.0.0", 8443)]  # the listener serves all the same
    assert sessions.off == "libssl 0x0 is not OpenSSL 3"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "TLS session IDs resume only on the worker that made them (0.0.0.0:8443): "
        "libssl 0x0 is not OpenSSL 3"
    ]
