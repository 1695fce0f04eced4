"""Custom error pages in both formats: read, fetched at load, errors naming the key."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from appgw.config import ConfigError, load
from appgw.config.error_pages import MAX_PAGE_BYTES

GW = "/subscriptions/<subid>/resourceGroups/rg/providers/Microsoft.Network/applicationGateways/gw"

TOML = """
[listeners.web]
protocol = "http"
port = 8080
{listener_pages}

[pools.p]
servers = ["127.0.0.2"]
[settings.s]
port = 80
[rules.r]
listener = "web"
pool = "p"
setting = "s"
{gateway_pages}
"""


def toml(tmp_path: Path, gateway_pages: str = "", listener_pages: str = "") -> str:
    path = tmp_path / "appgw.toml"
    path.write_text(
        textwrap.dedent(TOML).format(gateway_pages=gateway_pages, listener_pages=listener_pages)
    )
    return str(path)


def errors_of(path: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(path)
    return info.value.errors


def test_toml_pages_are_read_when_the_configuration_loads(tmp_path: Path) -> None:
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "502.html").write_text("<h1>down</h1>")
    (tmp_path / "403.txt").write_text("no")
    absolute = tmp_path / "500.html"
    absolute.write_text("oops")
    gateway_pages = (
        f'[error_pages]\n502 = "pages/502.html"\n403 = "file:403.txt"\n500 = "file://{absolute}"\n'
    )
    listener_pages = '[listeners.web.error_pages]\n502 = "file:pages/502.html"'
    config = load(toml(tmp_path, gateway_pages, listener_pages))
    pages = {page.status: page for page in config.error_pages}
    assert pages[502].body == b"<h1>down</h1>"
    assert pages[502].content_type == "text/html; charset=utf-8"
    assert pages[403].content_type == "text/plain; charset=utf-8"
    assert pages[500].body == b"oops"
    assert [p.status for p in config.listeners["web"].error_pages] == [502]


def test_toml_page_problems_name_the_key(tmp_path: Path) -> None:
    (tmp_path / "big.html").write_bytes(b"x" * (MAX_PAGE_BYTES + 1))
    (tmp_path / "empty.html").write_bytes(b"")
    gateway_pages = (
        '[error_pages]\n404 = "a.html"\n502 = "missing.html"\n503 = "big.html"\n'
        '504 = "empty.html"\n500 = "ftp://host/x"\n400 = 3'
    )
    errors = errors_of(toml(tmp_path, gateway_pages))
    assert errors[0].startswith("error_pages.404: not a status with a custom error page (400,")
    assert errors[1].startswith("error_pages.502: cannot read ")
    assert errors[1].endswith("missing.html: No such file or directory")
    assert errors[2] == "error_pages.503: the page is larger than 1024 KB"
    assert errors[3] == "error_pages.504: the page is empty"
    assert errors[4] == "error_pages.500: 'ftp://host/x' is not an http://, https:// or file: URL"
    assert errors[5] == "error_pages.400: must be a URL or a file path"
    assert len(errors) == 6


def test_unreachable_http_page_is_an_error(tmp_path: Path) -> None:
    # Port 9 on 127.0.0.1: nothing listens (discard is not run here).
    path = toml(
        tmp_path, listener_pages='[listeners.web.error_pages]\n502 = "http://127.0.0.1:9/x"'
    )
    [error] = errors_of(path)
    assert error.startswith("listeners.web.error_pages.502: cannot fetch http://127.0.0.1:9/x: ")


def ref(collection: str, name: str) -> dict[str, str]:
    return {"id": f"{GW}/{collection}/{name}"}


def arm_gateway(pages: list[Any], listener_pages: list[Any]) -> dict[str, Any]:
    return {
        "name": "gw",
        "properties": {
            "frontendPorts": [{"name": "p80", "properties": {"port": 80}}],
            "httpListeners": [
                {
                    "name": "web",
                    "properties": {
                        "frontendPort": ref("frontendPorts", "p80"),
                        "protocol": "Http",
                        "customErrorConfigurations": listener_pages,
                    },
                }
            ],
            "backendAddressPools": [
                {"name": "pool", "properties": {"backendAddresses": [{"ipAddress": "127.0.0.2"}]}}
            ],
            "backendHttpSettingsCollection": [
                {"name": "set", "properties": {"port": 8080, "protocol": "Http"}}
            ],
            "requestRoutingRules": [
                {
                    "name": "rule",
                    "properties": {
                        "ruleType": "Basic",
                        "priority": 10,
                        "httpListener": ref("httpListeners", "web"),
                        "backendAddressPool": ref("backendAddressPools", "pool"),
                        "backendHttpSettings": ref("backendHttpSettingsCollection", "set"),
                    },
                }
            ],
            "customErrorConfigurations": pages,
        },
    }


def arm(tmp_path: Path, pages: list[Any], listener_pages: list[Any]) -> str:
    path = tmp_path / "gw.json"
    path.write_text(json.dumps(arm_gateway(pages, listener_pages)))
    return str(path)


def test_arm_custom_error_configurations(tmp_path: Path) -> None:
    (tmp_path / "502.html").write_text("gateway 502")
    (tmp_path / "l502.html").write_text("listener 502")
    pages = [{"statusCode": "HttpStatus502", "customErrorPageUrl": "file:502.html"}]
    listener = [{"statusCode": "HttpStatus502", "customErrorPageUrl": "file:l502.html"}]
    config = load(arm(tmp_path, pages, listener))
    assert config.warnings == ()
    assert [(p.status, p.body) for p in config.error_pages] == [(502, b"gateway 502")]
    assert [(p.status, p.body) for p in config.listeners["web"].error_pages] == [
        (502, b"listener 502")
    ]


def test_arm_custom_error_problems_name_the_key(tmp_path: Path) -> None:
    pages = [
        {"statusCode": "HttpStatus404", "customErrorPageUrl": "file:x.html"},
        {"statusCode": "HttpStatus502"},
        {"statusCode": "HttpStatus503", "customErrorPageUrl": "file:missing.html", "extra": 1},
    ]
    errors = errors_of(arm(tmp_path, pages, []))
    assert errors[0].startswith(
        "customErrorConfigurations[0].statusCode: must be one of HttpStatus400,"
    )
    assert errors[1] == "customErrorConfigurations[1].customErrorPageUrl: required"
    assert errors[2] == "customErrorConfigurations[2].extra: unknown key"
    assert errors[3].startswith("customErrorConfigurations[2].customErrorPageUrl: cannot read ")
