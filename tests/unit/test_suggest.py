"""config/suggest.py: the closest known key for an unknown one, and where it shows."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from appgw.config import ConfigError, load
from appgw.config.suggest import closest, unknown_key

SETTING_KEYS = ("port", "protocol", "request_timeout", "cookie_based_affinity", "probe")


@pytest.mark.parametrize(
    ("word", "meant"),
    [
        ("prot", "port"),
        ("protcol", "protocol"),
        ("request-timeout", "request_timeout"),  # separators do not count
        ("RequestTimeout", "request_timeout"),  # nor does case
        ("requst_timout", "request_timeout"),
        ("cookie_affinity", "cookie_based_affinity"),
        ("probes", "probe"),
    ],
)
def test_closest_known_key(word: str, meant: str) -> None:
    assert closest(word, SETTING_KEYS) == meant


@pytest.mark.parametrize("word", ["colour", "x", "", "zzzzzzzz"])
def test_no_suggestion_when_nothing_is_close(word: str) -> None:
    assert closest(word, SETTING_KEYS) is None
    assert unknown_key(word, SETTING_KEYS) == "unknown key"


def test_the_known_spelling_is_kept_and_the_word_itself_is_no_candidate() -> None:
    assert closest("requesttimeout", ["requestTimeout"]) == "requestTimeout"
    assert closest("port", ["port"]) is None
    assert closest("prot", []) is None
    assert unknown_key("prot", SETTING_KEYS) == "unknown key (did you mean port?)"


def test_toml_unknown_keys_name_the_closest_key_of_their_table(tmp_path: Path) -> None:
    path = tmp_path / "appgw.toml"
    path.write_text(
        textwrap.dedent(
            """
            [gateway]
            wrokers = 2
            [listeners.web]
            protocol = "http"
            port = 8080
            [pools.web]
            servers = ["127.0.0.2"]
            [settings.web]
            port = 8080
            prot = 8081
            [rules.r]
            listener = "web"
            pool = "web"
            setting = "web"
            priorty = 10
            [porbes.p]
            """
        )
    )
    with pytest.raises(ConfigError) as info:
        load(str(path))
    assert sorted(info.value.errors) == [
        "gateway.wrokers: unknown key (did you mean workers?)",
        "porbes: unknown key (did you mean probes?)",
        "rules.r.priorty: unknown key (did you mean priority?)",
        "settings.web.prot: unknown key (did you mean port?)",
    ]


def test_arm_unknown_property_names_name_the_closest_property(tmp_path: Path) -> None:
    def ref(collection: str, name: str) -> dict[str, str]:
        return {"id": f"/subscriptions/s/resourceGroups/g/providers/x/{collection}/{name}"}

    gateway = {
        "type": "Microsoft.Network/applicationGateways",
        "name": "gw",
        "properties": {
            "frontendPorts": [{"name": "p80", "properties": {"port": 80}}],
            "httpListeners": [
                {
                    "name": "web",
                    "properties": {
                        "frontendPort": ref("frontendPorts", "p80"),
                        "protocol": "Http",
                        "hostNames": [],
                        "requireServerNameIndicaton": False,
                    },
                }
            ],
            "backendAddressPools": [
                {"name": "pool", "properties": {"backendAddresses": [{"ipAdress": "10.0.0.4"}]}}
            ],
            "backendHttpSettingsCollection": [
                {
                    "name": "set",
                    "properties": {"port": 80, "protocol": "Http", "requesttimeout": 20},
                    "propertes": {},
                }
            ],
            "requestRoutingRules": [
                {
                    "name": "rule",
                    "properties": {
                        "ruleType": "Basic",
                        "priority": 100,
                        "httpListener": ref("httpListeners", "web"),
                        "backendAddressPool": {**ref("backendAddressPools", "pool"), "ide": "x"},
                        "backendHttpSettings": ref("backendHttpSettingsCollection", "set"),
                    },
                }
            ],
        },
    }
    path = tmp_path / "gw.json"
    path.write_text(json.dumps(gateway))
    with pytest.raises(ConfigError) as info:
        load(str(path))
    errors = info.value.errors
    assert "backendHttpSettingsCollection[0].propertes: unknown key (did you mean properties?)" in (
        errors
    ), errors
    assert (
        "httpListeners.web.requireServerNameIndicaton: unknown key"
        " (did you mean requireServerNameIndication?)" in errors
    ), errors
    assert (
        "backendAddressPools.pool.backendAddresses[0].ipAdress: unknown key"
        " (did you mean ipAddress?)" in errors
    ), errors
    assert (
        "requestRoutingRules.rule.backendAddressPool.ide: unknown key (did you mean id?)" in errors
    ), errors
