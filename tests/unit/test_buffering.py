"""Request and response buffering: configuration, budgets, the strict edges of reading.

The behaviour end to end is in tests/integration/test_buffering.py; here the
pure parts: the settings (TOML, ARM's globalConfiguration, validation), the
per-worker budget, how a buffered body is framed for the backend, and the
request reader's refusals before a request line.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from appgw.config import ConfigError, load
from appgw.config.model import Limits
from appgw.errors import BadRequest, GatewayError
from appgw.worker.codec import strict
from appgw.worker.codec.request_reader import END, RequestHead, RequestReader
from appgw.worker.exchange.request_buffer import Budget, BufferedBody

TOML = """
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
GW = "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Network/applicationGateways/gw"


def _ref(collection: str, name: str) -> dict[str, str]:
    return {"id": f"{GW}/{collection}/{name}"}


def _arm(**properties: Any) -> dict[str, Any]:
    return {
        "name": "gw",
        "type": "Microsoft.Network/applicationGateways",
        "properties": {
            "frontendPorts": [{"name": "p80", "properties": {"port": 80}}],
            "httpListeners": [
                {
                    "name": "web",
                    "properties": {
                        "frontendPort": _ref("frontendPorts", "p80"),
                        "protocol": "Http",
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
                        "httpListener": _ref("httpListeners", "web"),
                        "backendAddressPool": _ref("backendAddressPools", "pool"),
                        "backendHttpSettings": _ref("backendHttpSettingsCollection", "set"),
                    },
                }
            ],
            **properties,
        },
    }


def _load_toml(tmp_path: Path, limits: str) -> Limits:
    path = tmp_path / "appgw.toml"
    path.write_text("[gateway.limits]\n" + limits + textwrap.dedent(TOML))
    return load(str(path)).gateway.limits


def _load_arm(tmp_path: Path, document: dict[str, Any]) -> Any:
    path = tmp_path / "gw.json"
    path.write_text(json.dumps(document))
    return load(str(path))


# -- configuration -------------------------------------------------------------


def test_both_buffers_are_on_by_default() -> None:
    limits = Limits()
    assert limits.request_buffering and limits.response_buffering
    assert 64 * 1024 <= limits.request_buffer_bytes <= 1024 * 1024
    assert limits.request_buffer_bytes <= limits.worker_request_buffer_bytes
    assert limits.response_buffer_bytes <= limits.worker_response_buffer_bytes


def test_toml_keys(tmp_path: Path) -> None:
    limits = _load_toml(
        tmp_path,
        "request_buffering = false\nresponse_buffering = false\n"
        "request_buffer_bytes = 65536\nworker_response_buffer_bytes = 1048576\n",
    )
    assert (limits.request_buffering, limits.response_buffering) == (False, False)
    assert limits.request_buffer_bytes == 65536
    assert limits.worker_response_buffer_bytes == 1048576


def test_toml_errors_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "appgw.toml"
    path.write_text(
        '[gateway.limits]\nrequest_buffering = "yes"\nresponse_buffer_bytes = 0\n'
        "request_buffer_bytes = 2048\nworker_request_buffer_bytes = 1024\n" + textwrap.dedent(TOML)
    )
    with pytest.raises(ConfigError) as info:
        load(str(path))
    text = "\n".join(info.value.errors)
    assert "gateway.limits.request_buffering" in text
    assert "gateway.limits.response_buffer_bytes: must be > 0" in text
    assert (
        "gateway.limits.request_buffer_bytes: must be at most worker_request_buffer_bytes" in text
    )


def test_arm_global_configuration(tmp_path: Path) -> None:
    assert _load_arm(tmp_path, _arm()).gateway.limits.request_buffering is True
    config = _load_arm(
        tmp_path,
        _arm(
            globalConfiguration={
                "enableRequestBuffering": False,
                "enableResponseBuffering": True,
            }
        ),
    )
    limits = config.gateway.limits
    assert (limits.request_buffering, limits.response_buffering) == (False, True)
    assert not any("globalConfiguration" in warning for warning in config.warnings)
    # Either unset: on, as in Application Gateway.
    config = _load_arm(tmp_path, _arm(globalConfiguration={"enableResponseBuffering": False}))
    limits = config.gateway.limits
    assert (limits.request_buffering, limits.response_buffering) == (True, False)


def test_arm_global_configuration_errors_name_the_key(tmp_path: Path) -> None:
    document = _arm(globalConfiguration={"enableRequestBuffering": "no", "somethingElse": 1})
    with pytest.raises(ConfigError) as info:
        _load_arm(tmp_path, document)
    text = "\n".join(info.value.errors)
    assert "globalConfiguration.enableRequestBuffering" in text
    assert "globalConfiguration.somethingElse: unknown key" in text


# -- budgets and buffered bodies ---------------------------------------------


def test_a_budget_grants_what_is_left() -> None:
    budget = Budget(100)
    assert budget.take(60) == 60
    assert budget.take(60) == 40
    assert budget.take(1) == 0
    budget.give(60)
    assert budget.take(10) == 10
    assert budget.used == 50


def test_a_buffered_body_gives_its_room_back_once() -> None:
    budget = Budget(100)
    body = BufferedBody(budget, budget.take(80))
    body.pieces = [b"abc", b"de"]
    body.release()
    body.release()
    assert budget.used == 0 and body.pieces == []


@pytest.mark.parametrize(
    ("chunked", "complete", "wire"),
    [
        (False, True, b"abcde"),
        (False, False, b"abcde"),
        (True, True, b"5\r\nabcde\r\n0\r\n\r\n"),
        (True, False, b"5\r\nabcde\r\n"),
    ],
)
def test_a_buffered_body_is_framed_for_the_backend(
    chunked: bool, complete: bool, wire: bytes
) -> None:
    body = BufferedBody(Budget(10), 0)
    body.pieces = [b"abc", b"de"]
    body.complete = complete
    assert body.framed(chunked) == wire


def test_an_empty_chunked_body_is_its_end() -> None:
    body = BufferedBody(Budget(10), 0)
    body.complete = True
    assert body.framed(True) == b"0\r\n\r\n"


# -- before and in the request line -------------------------------------------

REQUEST = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def _first(*feeds: bytes) -> object:
    reader = RequestReader(8192, 8192)
    for data in feeds:
        reader.feed(data)
    return reader.next_event()


@pytest.mark.parametrize(
    "feeds",
    [
        (b"\r\r\r" + REQUEST,),
        (b"\r" + REQUEST,),
        (b"\r\r\n" + REQUEST,),
        (b"\r\n\r" + REQUEST,),
        (b"\r", b"\r\n" + REQUEST),  # the CR's next byte in the next read
    ],
)
def test_bare_crs_before_a_request_line_are_refused(feeds: tuple[bytes, ...]) -> None:
    event = _first(*feeds)
    assert isinstance(event, BadRequest) and not event.keep_alive


@pytest.mark.parametrize(
    "feeds", [(b"\r\n" + REQUEST,), (b"\n\r\n" + REQUEST,), (b"\r", b"\n" + REQUEST)]
)
def test_empty_lines_before_a_request_line_are_skipped(feeds: tuple[bytes, ...]) -> None:
    assert isinstance(_first(*feeds), RequestHead)


def test_bare_crs_before_the_next_request_are_refused() -> None:
    reader = RequestReader(8192, 8192)
    reader.feed(REQUEST)
    assert isinstance(reader.next_event(), RequestHead) and reader.next_event() is END
    reader.feed(b"\r\r" + REQUEST)
    assert isinstance(reader.next_event(), BadRequest)


def test_a_request_line_without_a_version_is_a_bad_request() -> None:
    for data in (b"GET /x\r\n\r\n", b"GET /x\r\nHost: a\r\n\r\n"):
        event = _first(data)
        assert isinstance(event, GatewayError) and event.status == 400, data
    # HTTP/0.9 written out is a version the gateway does not speak (request.py: 505).
    head = _first(b"GET /x HTTP/0.9\r\n\r\n")
    assert isinstance(head, RequestHead) and head.version == "0.9"


@pytest.mark.parametrize(
    ("authority", "host", "refused"),
    [
        (b"example.com", b"example.com", False),
        (b"example.com:8080", None, False),
        (b"example.com", b"", True),  # blank after OWS is stripped
        (b"", b"example.com", True),
        (b"exa mple.com", b"example.com", True),
        (b"user@example.com", b"example.com", True),
        (b"example.com:x", b"example.com", True),
    ],
)
def test_absolute_form_authority(authority: bytes, host: bytes | None, refused: bool) -> None:
    assert (strict.authority_problem(authority, host) is not None) is refused
