"""HTTP/2 enabled on a machine without libnghttp2 is a configuration error
that names the Debian package, found before any worker starts."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from appgw import nghttp2_library
from appgw.config import ConfigError, load

CONFIG = """
[gateway.http2]
enabled = {enabled}

[listeners.web]
protocol = "http"
port = 8080
[pools.p]
servers = ["127.0.0.2"]
[settings.s]
[rules.r]
listener = "web"
pool = "p"
setting = "s"
"""


def _write(tmp_path: Path, enabled: str) -> Path:
    path = tmp_path / f"{enabled}.toml"
    path.write_text(textwrap.dedent(CONFIG.format(enabled=enabled)))
    return path


def test_the_library_is_found_here():
    assert nghttp2_library.problem() is None


def test_http2_without_the_library_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(nghttp2_library, "SONAME", "libnghttp2.so.0-not-here")
    monkeypatch.setattr(nghttp2_library, "names", lambda soname=None: ["libnghttp2.so.0-not-here"])
    with pytest.raises(ConfigError) as raised:
        load(_write(tmp_path, "true"))
    assert "gateway.http2.enabled: HTTP/2 needs libnghttp2" in str(raised.value)
    assert "apt-get install libnghttp2-14" in str(raised.value)
    # Off, the library is not asked for.
    assert load(_write(tmp_path, "false")).gateway.http2.enabled is False
