"""Which servers the prober probes, and how: ports, Host header, TLS name."""

from __future__ import annotations

from appgw.config.model import (
    Config,
    PathMap,
    PathRule,
    Pool,
    Probe,
    Redirect,
    Rule,
    Server,
    Setting,
)
from appgw.prober.targets import (
    DEFAULT_PROBE_HOST,
    default_probe,
    probe_targets,
    target_key,
    used_pairs,
)


def config(**resources: object) -> Config:
    return Config(source="test.toml", **resources)  # type: ignore[arg-type]


def basic_config(setting: Setting, probe: Probe | None = None, servers=("10.0.0.4",)) -> Config:
    return config(
        pools={"web": Pool("web", tuple(_server(s) for s in servers))},
        settings={setting.name: setting},
        probes={probe.name: probe} if probe else {},
        rules={"r": Rule("r", listener="l", pool="web", setting=setting.name)},
    )


def _server(text: str) -> Server:
    host, _, port = text.partition(":")
    return Server(host, int(port) if port else None)


def test_default_probe_is_application_gateways():
    probe = default_probe(Setting("s", port=8443, protocol="https"))
    assert probe.protocol == "https"
    assert probe.path == "/"
    assert (probe.interval, probe.timeout, probe.unhealthy_threshold) == (30, 30, 3)
    assert probe.match_status_codes == ((200, 399),)
    assert probe.port is None and probe.match_body is None and probe.min_servers == 0


def test_default_probe_target():
    [target] = probe_targets(basic_config(Setting("s", port=8080)))
    assert target.is_default_probe
    assert (target.host, target.port, target.protocol, target.path) == (
        "10.0.0.4",
        8080,
        "http",
        "/",
    )
    assert target.host_name == DEFAULT_PROBE_HOST == "127.0.0.1"
    assert target.host_header == "127.0.0.1:8080"
    assert target.key == ("web", "s", "10.0.0.4", 8080)
    assert target.tls_server_name is None


def test_default_port_is_left_out_of_the_host_header():
    [target] = probe_targets(basic_config(Setting("s", port=80)))
    assert target.host_header == "127.0.0.1"


def test_default_probe_uses_the_settings_host_name():
    [target] = probe_targets(basic_config(Setting("s", host_name="app.contoso.com")))
    assert target.host_name == "app.contoso.com"


def test_default_probe_picks_the_backend_address():
    setting = Setting("s", pick_host_name_from_backend_address=True)
    [target] = probe_targets(basic_config(setting, servers=("app.internal",)))
    assert target.host_name == "app.internal"


def test_custom_probe_host_wins():
    setting = Setting("s", host_name="app.contoso.com", probe="p")
    probe = Probe("p", host="probe.contoso.com", pick_host_name_from_settings=False)
    [target] = probe_targets(basic_config(setting, probe))
    assert not target.is_default_probe
    assert target.host_name == "probe.contoso.com"


def test_custom_probe_picks_host_from_settings():
    setting = Setting("s", host_name="app.contoso.com", probe="p")
    [target] = probe_targets(basic_config(setting, Probe("p", pick_host_name_from_settings=True)))
    assert target.host_name == "app.contoso.com"

    setting = Setting("s", pick_host_name_from_backend_address=True, probe="p")
    [target] = probe_targets(basic_config(setting, Probe("p", pick_host_name_from_settings=True)))
    assert target.host_name == "10.0.0.4"


def test_custom_probe_without_host_sends_loopback():
    setting = Setting("s", host_name="app.contoso.com", probe="p")
    [target] = probe_targets(basic_config(setting, Probe("p")))
    assert target.host_name == "127.0.0.1"


def test_ports_probe_then_server_then_setting():
    setting = Setting("s", port=8080, probe="p")
    targets = probe_targets(
        basic_config(setting, Probe("p"), servers=("10.0.0.4", "10.0.0.5:9000"))
    )
    assert [(t.port, t.traffic_port) for t in targets] == [(8080, 8080), (9000, 9000)]

    targets = probe_targets(
        basic_config(setting, Probe("p", port=9999), servers=("10.0.0.4", "10.0.0.5:9000"))
    )
    assert [(t.port, t.traffic_port) for t in targets] == [(9999, 8080), (9999, 9000)]
    # The key is where traffic goes, not where the probe goes.
    assert targets[1].key == ("web", "s", "10.0.0.5", 9000)


def test_custom_probe_fields_carry_over():
    probe = Probe(
        "p",
        protocol="https",
        path="/healthz",
        host="app.contoso.com",
        interval=5,
        timeout=2,
        unhealthy_threshold=4,
        match_status_codes=((200, 200),),
        match_body="ok",
    )
    [target] = probe_targets(basic_config(Setting("s", protocol="https", probe="p"), probe))
    assert target.probe is probe
    assert (target.protocol, target.path) == ("https", "/healthz")
    assert target.tls_server_name == "app.contoso.com"


def test_tls_name_and_trusted_roots():
    setting = Setting("s", protocol="https", port=443, trusted_root_certificates=("corp",))
    cfg = basic_config(setting)
    cfg = Config(
        source=cfg.source,
        pools=cfg.pools,
        settings=cfg.settings,
        rules=cfg.rules,
        trusted_root_certificates={"corp": b"-----BEGIN CERTIFICATE-----\n"},
    )
    [target] = probe_targets(cfg)
    assert target.uses_tls
    assert target.host_header == "127.0.0.1"
    # The loopback fallback is no name to verify: the server's address is.
    assert target.tls_server_name == "10.0.0.4"
    assert target.trusted_root_certificates == (b"-----BEGIN CERTIFICATE-----\n",)


def test_websocket_probe_protocols():
    probe = Probe("p", protocol="wss", host="chat.contoso.com")
    [target] = probe_targets(
        basic_config(Setting("s", protocol="https", port=443, probe="p"), probe)
    )
    assert target.is_websocket and target.uses_tls
    assert target.host_header == "chat.contoso.com"


def test_every_used_pair_once_and_redirects_probe_nothing():
    cfg = config(
        pools={
            "web": Pool("web", (Server("10.0.0.4"), Server("10.0.0.5"))),
            "api": Pool("api", (Server("10.0.1.4"),)),
            "unused": Pool("unused", (Server("10.9.9.9"),)),
        },
        settings={"web": Setting("web"), "api": Setting("api", port=8080)},
        redirects={"to-https": Redirect("to-https", target_url="https://example.com/")},
        path_maps={
            "www": PathMap(
                "www",
                rules=(
                    PathRule("api", ("/api/*",), pool="api", setting="api"),
                    PathRule("old", ("/old/*",), redirect="to-https"),
                ),
                default_pool="web",
                default_setting="web",
            )
        },
        rules={
            "redirect": Rule("redirect", listener="l80", redirect="to-https"),
            "path": Rule("path", listener="l443", kind="path", path_map="www"),
            "basic": Rule("basic", listener="l8080", pool="web", setting="web"),
            "again": Rule("again", listener="l8081", pool="api", setting="web"),
        },
    )
    assert used_pairs(cfg) == [("api", "api"), ("web", "web"), ("api", "web")]
    keys = [t.key for t in probe_targets(cfg)]
    assert keys == [
        ("api", "api", "10.0.1.4", 8080),
        ("web", "web", "10.0.0.4", 80),
        ("web", "web", "10.0.0.5", 80),
        ("api", "web", "10.0.1.4", 80),
    ]


def test_a_server_listed_twice_is_probed_once():
    cfg = basic_config(
        Setting("s", port=8080), servers=("10.0.0.4", "10.0.0.4:8080", "10.0.0.4:9000")
    )
    assert [t.key[2:] for t in probe_targets(cfg)] == [("10.0.0.4", 8080), ("10.0.0.4", 9000)]


def test_target_key_matches_what_the_worker_computes():
    setting = Setting("s", port=8080)
    assert target_key("web", setting, Server("10.0.0.4")) == ("web", "s", "10.0.0.4", 8080)
    assert target_key("web", setting, Server("10.0.0.4", 81)) == ("web", "s", "10.0.0.4", 81)


def test_no_rules_no_targets():
    assert probe_targets(config(pools={"web": Pool("web", (Server("10.0.0.4"),))})) == []
