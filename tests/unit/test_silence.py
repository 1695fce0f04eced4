"""config/silence.py: each rule's WebSocket silence limit, and slower heartbeats."""

from __future__ import annotations

import logging

from appgw.config.model import Config, PathMap, PathRule, Rule, Setting
from appgw.config.silence import config_notes, silence_limits


def config() -> Config:
    return Config(
        source="test.toml",
        settings={"web": Setting("web"), "chat": Setting("chat", request_timeout=60)},
        path_maps={
            "paths": PathMap(
                "paths",
                rules=(
                    PathRule("live", ("/live/*",), pool="p", setting="chat"),
                    PathRule("old", ("/old/*",), redirect="r"),
                ),
                default_pool="p",
                default_setting="web",
            )
        },
        rules={
            "site": Rule("site", "http", kind="path", path_map="paths"),
            "api": Rule("api", "http", pool="p", setting="web"),
            "moved": Rule("moved", "http", redirect="r"),
        },
        warnings=("something ignored",),
    )


def test_every_rule_and_path_rule_is_named_with_its_limit() -> None:
    limits = silence_limits(config())
    assert [(x.rule, x.setting, x.seconds) for x in limits] == [
        ("rule 'api'", "web", 20),
        ("rule 'site', default of path map 'paths'", "web", 20),
        ("rule 'site', path rule 'live'", "chat", 60),
    ]


def test_the_default_20s_is_shorter_than_socket_io_jupyter_and_streamlit() -> None:
    api = silence_limits(config())[0]
    assert [name for name, _ in api.slower] == ["Socket.IO", "Jupyter", "Streamlit"]
    assert api.describe() == (
        "rule 'api': WebSocket traffic is cut after 20 s of silence "
        "(requestTimeout of settings 'web'); slower heartbeats, whose idle sessions "
        "will be cut: Socket.IO (25 s), Jupyter (30 s), Streamlit (30 s); "
        "raise settings.web.request_timeout above them if those run here"
    )


def test_a_limit_above_every_heartbeat_is_only_named() -> None:
    live = silence_limits(config())[2]
    assert live.slower == ()
    assert live.describe() == (
        "rule 'site', path rule 'live': WebSocket traffic is cut after 60 s of silence "
        "(requestTimeout of settings 'chat')"
    )


def test_a_heartbeat_as_long_as_the_limit_counts_as_slower() -> None:
    cfg = Config(
        source="t",
        settings={"s": Setting("s", request_timeout=30)},
        rules={"r": Rule("r", "http", pool="p", setting="s")},
    )
    assert [name for name, _ in silence_limits(cfg)[0].slower] == ["Jupyter", "Streamlit"]


def test_config_notes_are_the_warnings_then_the_limits() -> None:
    notes = list(config_notes(config()))
    assert notes[0] == (logging.WARNING, "test.toml: something ignored")
    assert [level for level, _ in notes[1:]] == [logging.WARNING, logging.WARNING, logging.INFO]
