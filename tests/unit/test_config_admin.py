"""gateway.admin and the --admin / --access-log overrides."""

from __future__ import annotations

import pytest

from appgw.config.admin import parse_admin
from appgw.config.errors import ConfigError
from appgw.config.loader import load_file
from appgw.config.overrides import apply

BASE = """
[listeners.http]
protocol = "http"
address = "127.0.0.1"
port = 8080
[pools.web]
servers = ["10.0.0.4"]
[settings.web]
port = 80
[rules.http]
listener = "http"
pool = "web"
setting = "web"
"""


def load(tmp_path, text: str):
    path = tmp_path / "appgw.toml"
    path.write_text(text + BASE)
    return load_file(str(path))


def errors(tmp_path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return info.value.errors


def test_admin_is_off_unless_configured(tmp_path) -> None:
    assert load(tmp_path, "").gateway.admin is None


def test_admin_on_loopback(tmp_path) -> None:
    admin = load(tmp_path, "[gateway.admin]\nport = 9090\n").gateway.admin
    assert (admin.address, admin.port, admin.public) == ("127.0.0.1", 9090, False)


def test_a_public_address_needs_public_true(tmp_path) -> None:
    [error] = errors(tmp_path, '[gateway.admin]\naddress = "0.0.0.0"\nport = 9090\n')
    assert error.startswith("gateway.admin.address: 0.0.0.0 is not a loopback address")
    text = '[gateway.admin]\naddress = "0.0.0.0"\nport = 9090\npublic = true\n'
    assert load(tmp_path, text).gateway.admin.public


def test_admin_errors_name_their_keys(tmp_path) -> None:
    assert errors(tmp_path, "[gateway.admin]\nport = 8080\n") == [
        "gateway.admin.port: 127.0.0.1:8080 is also listener http's"
    ]
    assert errors(tmp_path, "[gateway.admin]\nport = 99999\n") == [
        "gateway.admin.port: must be 1..65535"
    ]
    assert any("gateway.admin.port" in e for e in errors(tmp_path, "[gateway.admin]\n"))
    assert any(
        "gateway.admin.colour" in e
        for e in errors(tmp_path, "[gateway.admin]\nport = 1\ncolour = 1\n")
    )


def test_admin_and_access_log_overrides(tmp_path) -> None:
    config = apply(load(tmp_path, ""), admin="[::1]:9100", access_log="-")
    assert (config.gateway.admin.address, config.gateway.admin.port) == ("::1", 9100)
    assert config.gateway.access_log == "-"
    with pytest.raises(ConfigError) as info:
        apply(load(tmp_path, ""), admin="10.0.0.1:9100")
    assert info.value.errors[0].startswith("--admin 10.0.0.1:9100: 10.0.0.1 is not a loopback")
    with pytest.raises(ConfigError, match="expected ADDRESS:PORT"):
        apply(load(tmp_path, ""), admin="localhost")


def test_parse_admin() -> None:
    assert parse_admin("127.0.0.1:1") == ("127.0.0.1", 1)
    for bad in ("", "9090", ":9090", "host:9090", "127.0.0.1:x"):
        with pytest.raises(ValueError):
            parse_admin(bad)
