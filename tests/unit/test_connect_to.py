"""--connect-to HOST[:PORT]=HOST[:PORT]: parsing and where a connection goes."""

from __future__ import annotations

from pathlib import Path

import pytest

from appgw.config import ConfigError, Inputs, load
from appgw.config.connect_to import dial, parse_connect_to
from tests.support.gateway import gateway_toml


def test_parse_and_dial() -> None:
    table = parse_connect_to(
        ["10.0.0.4:80=127.0.0.2:8080", "Backend.Contoso.com=127.0.0.3", "[fd00::4]:443=[::1]:8443"]
    )
    assert dial(table, "10.0.0.4", 80) == ("127.0.0.2", 8080)
    assert dial(table, "10.0.0.4", 443) == ("10.0.0.4", 443)  # another port: untouched
    assert dial(table, "backend.contoso.com", 8000) == ("127.0.0.3", 8000)  # any port, kept
    assert dial(table, "fd00::4", 443) == ("::1", 8443)
    assert dial({}, "x", 1) == ("x", 1)


@pytest.mark.parametrize("item", ["10.0.0.4", "=127.0.0.2", "a:0=b", "a=b:99999", "a=b:80:80"])
def test_bad_items_are_named(item: str) -> None:
    with pytest.raises(ValueError, match=f"--connect-to {item}: expected HOST"):
        parse_connect_to([item])


def test_toml_gateway_connect_to(tmp_path: Path) -> None:
    text = gateway_toml(
        servers=["10.0.0.4"],
        backend_port=80,
        http_port=8080,
        gateway={"connect_to": ["10.0.0.4:80=127.0.0.2:8081"]},
    )
    path = tmp_path / "appgw.toml"
    path.write_text(text)
    config = load(str(path), Inputs(connect_to=("10.0.0.5=127.0.0.3",)))
    assert config.connect_to == {
        ("10.0.0.4", 80): ("127.0.0.2", 8081),
        ("10.0.0.5", None): ("127.0.0.3", None),
    }
    path.write_text(text.replace("127.0.0.2:8081", "127.0.0.2:x"))
    with pytest.raises(ConfigError, match="gateway.connect_to: 10.0.0.4:80=127.0.0.2:x: expected"):
        load(str(path))
    with pytest.raises(ConfigError, match="not appgw's TOML"):
        load(str(path), Inputs(parameters=("a=1",)))
