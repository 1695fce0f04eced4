"""A listener's PROXY protocol keys: TOML, validation with key paths."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from appgw.config import ConfigError, load


def config(listener_lines: str, extra: str = "") -> str:
    return textwrap.dedent(
        """
        [listeners.web]
        protocol = "http"
        port = 8080
        """
        + textwrap.dedent(listener_lines)
        + """
        [pools.p]
        servers = ["127.0.0.2"]
        [settings.s]
        [rules.r]
        listener = "web"
        pool = "p"
        setting = "s"
        """
        + textwrap.dedent(extra)
    )


def load_text(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "appgw.toml"
    path.write_text(text)
    return load(str(path))


def errors_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    return info.value.errors


def test_off_by_default(tmp_path: Path) -> None:
    listener = load_text(tmp_path, config("")).listeners["web"]
    assert listener.proxy_protocol is False
    assert listener.proxy_protocol_trusted == ()


def test_on_with_trusted_sources(tmp_path: Path) -> None:
    text = config(
        """
        proxy_protocol = true
        proxy_protocol_trusted = ["10.0.0.0/8", "127.0.0.1", "2001:db8::/32", "::1"]
        """
    )
    listener = load_text(tmp_path, text).listeners["web"]
    assert listener.proxy_protocol is True
    assert listener.proxy_protocol_trusted == ("10.0.0.0/8", "127.0.0.1", "2001:db8::/32", "::1")


def test_on_needs_trusted_sources(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, config("proxy_protocol = true\n"))
    assert len(errors) == 1
    assert errors[0].startswith(
        "listeners.web.proxy_protocol_trusted: required with proxy_protocol"
    )


def test_trusted_sources_only_with_proxy_protocol(tmp_path: Path) -> None:
    errors = errors_of(tmp_path, config('proxy_protocol_trusted = ["10.0.0.0/8"]\n'))
    assert errors == ["listeners.web.proxy_protocol_trusted: only with proxy_protocol = true"]


def test_bad_sources_name_their_index(tmp_path: Path) -> None:
    text = config(
        """
        proxy_protocol = true
        proxy_protocol_trusted = ["10.0.0.0/8", "10.1.2.3/8", "balancer.local", "10.0.0.0/33"]
        """
    )
    assert errors_of(tmp_path, text) == [
        "listeners.web.proxy_protocol_trusted[1]: '10.1.2.3/8' has host bits set"
        " (did you mean '10.0.0.0/8'?)",
        "listeners.web.proxy_protocol_trusted[2]: 'balancer.local' is not an IP address or network",
        "listeners.web.proxy_protocol_trusted[3]: '10.0.0.0/33' is not an IP address or network",
    ]


def test_wrong_types_name_the_key(tmp_path: Path) -> None:
    text = config('proxy_protocol = "yes"\nproxy_protocol_trusted = "10.0.0.0/8"\n')
    errors = errors_of(tmp_path, text)
    assert any(e.startswith("listeners.web.proxy_protocol:") for e in errors), errors
    assert any(e.startswith("listeners.web.proxy_protocol_trusted:") for e in errors), errors


def test_listeners_sharing_a_socket_agree(tmp_path: Path) -> None:
    text = config(
        """
        host_names = ["a.example"]
        proxy_protocol = true
        proxy_protocol_trusted = ["127.0.0.1"]
        """,
        """
        [listeners.other]
        protocol = "http"
        port = 8080
        host_names = ["b.example"]
        [rules.r2]
        listener = "other"
        pool = "p"
        setting = "s"
        """,
    )
    errors = errors_of(tmp_path, text)
    assert errors == [
        "listeners.other.proxy_protocol: differs from listener 'web' on 0.0.0.0:8080,"
        " which shares its socket"
    ]
    agreeing = text.replace(
        'host_names = ["b.example"]',
        'host_names = ["b.example"]\nproxy_protocol = true\nproxy_protocol_trusted = ["127.0.0.1"]',
    )
    assert load_text(tmp_path, agreeing).listeners["other"].proxy_protocol is True
