"""The shared TLS session store, and OpenSSL's session cache on it: a TLS 1.2
session ID issued in one process resumes in another forked from the same
parent (the master and its workers)."""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator

import pytest
import trustme

from appgw.session_hooks import attach
from appgw.session_store import CAPACITY, SLOT, WAYS, SessionStore

NOW = 1_000_000.0
SPACE = b"listener-socket1"  # a namespace: 16 bytes


@pytest.fixture
def store() -> Iterator[SessionStore]:
    made = SessionStore(64 * SLOT * WAYS)
    yield made
    made.close()


def test_a_session_is_found_by_namespace_and_id_until_it_expires(store: SessionStore) -> None:
    sid = os.urandom(32)
    assert store.put(SPACE, sid, b"session", int(NOW) + 10, NOW)
    assert store.get(SPACE, sid, NOW) == b"session"
    assert store.get(b"another-listener", sid, NOW) is None
    assert store.get(SPACE, os.urandom(32), NOW) is None
    assert store.get(SPACE, sid, NOW + 10) is None  # expired


def test_too_large_or_already_expired_is_not_stored(store: SessionStore) -> None:
    assert not store.put(SPACE, os.urandom(32), bytes(CAPACITY + 1), int(NOW) + 10, NOW)
    assert not store.put(SPACE, os.urandom(32), b"x", int(NOW), NOW)
    assert store.put(SPACE, os.urandom(32), bytes(CAPACITY), int(NOW) + 10, NOW)


def test_a_full_bucket_gives_up_the_session_that_expires_first(store: SessionStore) -> None:
    # Session IDs whose first 8 bytes are equal share a bucket.
    ids = [bytes(8) + os.urandom(24) for _ in range(WAYS + 1)]
    for n, sid in enumerate(ids[:WAYS]):
        assert store.put(SPACE, sid, b"%d" % n, int(NOW) + 100 - n, NOW)
    assert store.put(SPACE, ids[WAYS], b"new", int(NOW) + 100, NOW)
    assert store.get(SPACE, ids[WAYS - 1], NOW) is None  # expired soonest
    assert [store.get(SPACE, sid, NOW) for sid in ids[: WAYS - 1]] == [b"0", b"1", b"2"]
    assert store.get(SPACE, ids[WAYS], NOW) == b"new"


def test_a_torn_slot_fails_its_checksum(store: SessionStore) -> None:
    sid = bytes(8) + os.urandom(24)
    store.put(SPACE, sid, b"session bytes", int(NOW) + 10, NOW)
    store.memory[64 + 3] ^= 0xFF  # the first slot of bucket 0, inside its data
    assert store.get(SPACE, sid, NOW) is None


def test_a_child_process_reads_what_its_parent_wrote_and_back(store: SessionStore) -> None:
    first, second = os.urandom(32), os.urandom(32)
    store.put(SPACE, first, b"from the parent", int(NOW) + 10, NOW)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        found = store.get(SPACE, first, NOW) == b"from the parent"
        store.put(SPACE, second, b"from the child", int(NOW) + 10, NOW)
        os._exit(0 if found else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.get(SPACE, second, NOW) == b"from the child"


# -- OpenSSL's session cache on the store ---------------------------------------


def handshake(
    server: ssl.SSLContext, client: ssl.SSLContext, session: ssl.SSLSession | None
) -> tuple[ssl.SSLSession | None, bool]:
    """A handshake over memory BIOs: (the client's session, whether it resumed)."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    ours, theirs = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls_client = client.wrap_bio(to_client, to_server, server_hostname="localhost", session=session)
    tls_server = server.wrap_bio(ours, theirs, server_side=True)
    for _ in range(10):
        for end in (tls_client, tls_server):
            try:
                end.do_handshake()
            except ssl.SSLWantReadError:
                pass
        ours.write(to_server.read())
        to_client.write(theirs.read())
    assert tls_client.version() == "TLSv1.2" and tls_server.version() == "TLSv1.2"
    return tls_client.session, tls_server.session_reused


def test_a_session_id_resumes_in_a_forked_process(store: SessionStore) -> None:
    ca = trustme.CA()
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(server)
    assert attach(server, store, SPACE) is None
    client = ssl.create_default_context()
    ca.configure_trust(client)
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    client.options |= ssl.OP_NO_TICKET  # session IDs only
    session, reused = handshake(server, client, None)
    assert not reused and session is not None and not session.has_ticket
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: a worker that did not make it
        os._exit(0 if handshake(server, client, session)[1] else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "not resumed in the child"
    assert handshake(server, client, session)[1]
    # OpenSSL keeps no copy of its own: what resumed came from the store.
    assert server.session_stats()["number"] == 0


def test_a_context_that_fails_a_check_is_left_as_it_was(
    store: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with monkeypatch.context() as patch:  # Python built against another OpenSSL
        patch.setattr(ssl, "OPENSSL_VERSION_NUMBER", 0x10101000)
        assert ssl.OPENSSL_VERSION in (attach(server, store, SPACE) or "")
    assert attach(server, store, SPACE) is None
    # Callbacks installed already: the second attach refuses, with its reason.
    assert attach(server, store, SPACE) == "the SSL_CTX has session callbacks already"


@pytest.mark.parametrize("mode", [ssl.CERT_NONE, ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED])
def test_listeners_with_client_certificates_share_sessions_too(
    store: SessionStore, mode: ssl.VerifyMode
) -> None:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.verify_mode = mode  # mutual TLS (mtls.py)
    assert attach(server, store, SPACE) is None
