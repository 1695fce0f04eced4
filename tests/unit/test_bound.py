"""--bind and --port: listeners they bring onto one socket are checked again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appgw.config import ConfigError, load
from appgw.config.overrides import apply
from tests.unit.test_arm_templates import dual_stack_template
from tests.unit.test_config_arm import gateway, ref


def two_private_frontends(tmp_path: Path) -> str:
    doc = gateway()
    p = doc["properties"]
    p["frontendIPConfigurations"] = [
        {"name": f"f{n}", "properties": {"privateIPAddress": f"10.0.0.{n}"}} for n in (1, 2)
    ]
    p["httpListeners"][0]["properties"]["frontendIPConfiguration"] = ref(
        "frontendIPConfigurations", "f1"
    )
    second = json.loads(json.dumps(p["httpListeners"][0]))
    second["name"] = "web2"
    second["properties"]["frontendIPConfiguration"] = ref("frontendIPConfigurations", "f2")
    p["httpListeners"].append(second)
    rule = json.loads(json.dumps(p["requestRoutingRules"][0]))
    rule["name"], rule["properties"]["priority"] = "rule2", 20
    rule["properties"]["httpListener"] = ref("httpListeners", "web2")
    p["requestRoutingRules"].append(rule)
    path = tmp_path / "gw.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_listeners_brought_together_are_checked_at_the_bound_address(tmp_path: Path) -> None:
    config = load(two_private_frontends(tmp_path))
    with pytest.raises(ConfigError) as caught:
        apply(config, bind="127.0.0.1", ports={80: 8080})
    assert caught.value.errors == [
        "httpListeners.web2.hostNames: listener 'web' already takes every host name on "
        "127.0.0.1:8080 (with --bind 127.0.0.1 --port 80=8080)"
    ]
    assert apply(config, ports={80: 8080}).listeners["web2"].port == 8080  # still apart


def test_dual_stack_twins_share_a_socket_under_bind(tmp_path: Path) -> None:
    path = tmp_path / "dual.json"
    path.write_text(json.dumps(dual_stack_template()))
    config = apply(load(str(path)), bind="127.0.0.1")
    assert {(lis.address, lis.port) for lis in config.listeners.values()} == {("127.0.0.1", 80)}
