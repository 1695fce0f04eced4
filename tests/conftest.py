"""Fixtures for the whole suite: TLS material from trustme.

Every test runs under pytest-timeout (120 s, pyproject.toml) and sets its own
tighter budget with trio.fail_after.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from tests.support.gateway import CertFiles, write_certificates


def pytest_report_header(config: pytest.Config) -> str:
    """The libnghttp2 the HTTP/2 codec was tested with, at the top of every run."""
    from appgw.worker.codec.nghttp2_lib import H2Unavailable, load

    try:
        return f"libnghttp2: {load().version}"
    except H2Unavailable as error:
        return f"libnghttp2: none ({error})"


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A throwaway certificate authority."""
    return trustme.CA()


@pytest.fixture
def cert_files(ca: trustme.CA, tmp_path: Path) -> CertFiles:
    """A server certificate for localhost and 127.0.0.1, as PEM files in tmp_path/certs."""
    return write_certificates(ca, tmp_path / "certs")


@pytest.fixture
def client_ssl_context(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts `ca` (and only it)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(context)
    return context


@pytest.fixture
def server_ssl_context(ca: trustme.CA) -> ssl.SSLContext:
    """A server context presenting a certificate for localhost and 127.0.0.1 from `ca`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context
