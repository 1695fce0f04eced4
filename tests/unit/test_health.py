"""The health state table, the worker's view of it, response matching and reports."""

from __future__ import annotations

import json

import pytest

from appgw.config.model import Config, Pool, Probe, Rule, Server, Setting
from appgw.prober import report, results
from appgw.prober.health import Change, HealthTable, HealthView, State
from appgw.prober.probe import match_response
from appgw.prober.targets import probe_targets

OK = results.success(200)
DOWN = results.connect_failed("Connection refused")
SLOW = results.timed_out()


def make_config(servers=("10.0.0.4", "10.0.0.5", "10.0.0.6"), **probe_fields) -> Config:
    return Config(
        source="test.toml",
        pools={"web": Pool("web", tuple(Server(s) for s in servers))},
        settings={"web": Setting("web", port=8080, probe="p")},
        probes={"p": Probe("p", **probe_fields)},
        rules={"r": Rule("r", listener="l", pool="web", setting="web")},
    )


def table_for(**probe_fields) -> tuple[HealthTable, list[tuple[str, str, str, int]]]:
    targets = probe_targets(make_config(**probe_fields))
    return HealthTable(targets, now=1000.0), [t.key for t in targets]


def test_everything_starts_unknown_and_routable():
    table, keys = table_for()
    for key in keys:
        assert table.state(key) is State.UNKNOWN
        assert table.is_routable(key)
        assert table.reason(key) == results.PENDING


def test_one_success_makes_healthy():
    table, [a, *_] = table_for()
    change = table.record(a, OK, now=1001.0)
    assert table.state(a) is State.HEALTHY
    assert change == Change.STATE | Change.REASON  # routable before and after
    assert table.reason(a) == "Success. Received 200 status code"
    # The same result again changes nothing anyone can see.
    assert table.record(a, OK, now=1031.0) == Change.NONE
    assert table.snapshot(1031.0)["servers"][0]["since"] == 1001.0


def test_threshold_failures_make_unhealthy_from_healthy():
    table, [a, *_] = table_for(unhealthy_threshold=3)
    table.record(a, OK, now=1.0)
    assert table.record(a, DOWN, now=2.0) == Change.REASON
    assert table.record(a, DOWN, now=3.0) == Change.NONE
    assert table.state(a) is State.HEALTHY and table.is_routable(a)
    change = table.record(a, DOWN, now=4.0)
    assert change == Change.STATE | Change.ROUTING
    assert table.state(a) is State.UNHEALTHY and not table.is_routable(a)
    assert table.snapshot(5.0)["servers"][0]["since"] == 4.0


def test_failures_count_from_the_start():
    table, [a, *_] = table_for(unhealthy_threshold=2)
    table.record(a, DOWN, now=1.0)
    assert table.state(a) is State.UNKNOWN and table.is_routable(a)
    assert table.reason(a).startswith("Application Gateway could not connect to the backend.")
    table.record(a, DOWN, now=2.0)
    assert table.state(a) is State.UNHEALTHY and not table.is_routable(a)


def test_threshold_one():
    table, [a, *_] = table_for(unhealthy_threshold=1)
    table.record(a, SLOW, now=1.0)
    assert table.state(a) is State.UNHEALTHY


def test_a_success_resets_the_count():
    table, [a, *_] = table_for(unhealthy_threshold=2)
    table.record(a, DOWN, now=1.0)
    table.record(a, OK, now=2.0)
    table.record(a, DOWN, now=3.0)
    assert table.state(a) is State.HEALTHY


def test_recovery_after_one_success():
    table, [a, *_] = table_for(unhealthy_threshold=1)
    table.record(a, DOWN, now=1.0)
    assert table.state(a) is State.UNHEALTHY
    change = table.record(a, OK, now=2.0)
    assert change == Change.STATE | Change.REASON | Change.ROUTING
    assert table.state(a) is State.HEALTHY and table.is_routable(a)


def test_reason_follows_the_latest_probe_state_only_changes_since():
    table, [a, *_] = table_for(unhealthy_threshold=1)
    table.record(a, DOWN, now=1.0)
    assert table.record(a, SLOW, now=2.0) == Change.REASON
    entry = table.snapshot(3.0)["servers"][0]
    assert entry["reason"] == SLOW.reason and entry["since"] == 1.0


def test_min_servers_keeps_the_most_recently_healthy():
    table, [a, b, c] = table_for(unhealthy_threshold=1, min_servers=1)
    table.record(a, OK, now=1.0)
    table.record(b, OK, now=2.0)
    table.record(c, OK, now=1.5)
    table.record(b, DOWN, now=3.0)
    assert [table.is_routable(k) for k in (a, b, c)] == [True, False, True]
    table.record(a, DOWN, now=4.0)
    assert [table.is_routable(k) for k in (a, b, c)] == [False, False, True]
    # All down: b had the most recent success.
    change = table.record(c, DOWN, now=5.0)
    assert change == Change.STATE | Change.REASON | Change.ROUTING
    assert [table.is_routable(k) for k in (a, b, c)] == [False, True, False]
    assert table.state(b) is State.UNHEALTHY
    # a recovers: b is no longer needed.
    change = table.record(a, OK, now=6.0)
    assert Change.ROUTING in change
    assert [table.is_routable(k) for k in (a, b, c)] == [True, False, False]


def test_min_servers_two():
    table, [a, b, c] = table_for(unhealthy_threshold=1, min_servers=2)
    table.record(a, OK, now=1.0)
    table.record(b, OK, now=2.0)
    table.record(c, DOWN, now=2.5)
    assert [table.is_routable(k) for k in (a, b, c)] == [True, True, False]
    table.record(b, DOWN, now=3.0)
    assert [table.is_routable(k) for k in (a, b, c)] == [True, True, False]
    table.record(a, DOWN, now=4.0)
    assert [table.is_routable(k) for k in (a, b, c)] == [True, True, False]


def test_min_servers_never_healthy_in_pool_order():
    table, [a, b, c] = table_for(unhealthy_threshold=1, min_servers=1)
    for key in (c, b, a):
        table.record(key, DOWN, now=1.0)
    assert [table.is_routable(k) for k in (a, b, c)] == [True, False, False]
    snapshot = table.snapshot(2.0)
    assert [s["state"] for s in snapshot["servers"]] == ["Unhealthy"] * 3
    assert [s["routable"] for s in snapshot["servers"]] == [True, False, False]


def test_min_servers_counts_unknown_servers_as_routable():
    table, [a, b, c] = table_for(unhealthy_threshold=1, min_servers=2)
    table.record(a, DOWN, now=1.0)  # b and c still Unknown: two routable
    assert not table.is_routable(a)


def test_min_servers_larger_than_the_pool():
    table, keys = table_for(unhealthy_threshold=1, min_servers=10)
    for key in keys:
        table.record(key, DOWN, now=1.0)
    assert all(table.is_routable(k) for k in keys)


def test_snapshot_is_json_and_complete():
    table, [a, b, c] = table_for()
    table.record(a, OK, now=1.0)
    snapshot = json.loads(json.dumps(table.snapshot(now=7.0)))
    assert snapshot["time"] == 7.0
    assert snapshot["servers"][0] == {
        "pool": "web",
        "setting": "web",
        "host": "10.0.0.4",
        "port": 8080,
        "state": "Healthy",
        "routable": True,
        "since": 1.0,
        "reason": "Success. Received 200 status code",
    }
    assert [s["host"] for s in snapshot["servers"]] == ["10.0.0.4", "10.0.0.5", "10.0.0.6"]


def test_health_view_from_snapshot():
    table, [a, b, c] = table_for(unhealthy_threshold=1)
    table.record(a, OK, now=1.0)
    table.record(b, DOWN, now=1.0)
    view = HealthView(json.loads(json.dumps(table.snapshot(now=2.0))))
    assert view.is_routable("web", "web", "10.0.0.4", 8080)
    assert not view.is_routable("web", "web", "10.0.0.5", 8080)
    assert view.is_routable("web", "web", "10.0.0.6", 8080)  # Unknown
    assert view.is_routable("web", "web", "10.0.0.5", 9999)  # not in the snapshot
    assert view.is_routable("other", "web", "10.0.0.5", 8080)
    assert view.is_routable_key(c) and not view.is_routable_key(b)
    assert view.time == 2.0


def test_empty_view_routes_everything():
    view = HealthView()
    assert view.is_routable("web", "web", "10.0.0.4", 80)
    assert view.time is None


def test_view_without_routable_field_uses_state():
    view = HealthView(
        {"servers": [{"pool": "p", "setting": "s", "host": "h", "port": 1, "state": "Unhealthy"}]}
    )
    assert not view.is_routable("p", "s", "h", 1)


@pytest.mark.parametrize("bad", [{}, {"servers": [{"pool": "p"}]}, {"servers": None}, []])
def test_malformed_snapshot(bad):
    with pytest.raises(ValueError):
        HealthView(bad)


# --- matching responses (pure part of probe.py) ---


def test_status_ranges():
    probe = Probe("p")
    assert match_response(probe, 200).ok
    assert match_response(probe, 399).ok
    result = match_response(probe, 503)
    assert not result.ok and result.status == 503
    assert result.reason == (
        "Status code of the backend's HTTP response did not match the probe setting."
        " Expected:200-399 Received:503."
    )
    probe = Probe("p", match_status_codes=((200, 200), (301, 302)))
    assert match_response(probe, 302).ok
    assert match_response(probe, 404).reason.endswith("Expected:200,301-302 Received:404.")


def test_body_match():
    probe = Probe("p", match_body="healthy")
    assert match_response(probe, 200, b"status: healthy\n").ok
    result = match_response(probe, 200, b"status: degraded\n")
    assert result.reason == (
        "Body of the backend's HTTP response did not match the probe setting."
        " Received response body doesn't contain healthy."
    )
    # Status is judged first.
    assert "Status code" in match_response(probe, 500, b"healthy").reason


# --- reports ---


def test_report_text_and_az_shape():
    cfg = make_config(unhealthy_threshold=1, path="/healthz", interval=5, min_servers=1)
    targets = probe_targets(cfg)
    table = HealthTable(targets, now=1000.0)
    table.record(targets[0].key, DOWN, now=1010.0)
    table.record(targets[1].key, results.status_mismatch("200-399", 503), now=1020.0)
    table.record(targets[2].key, OK, now=1030.0)
    snapshot = json.loads(json.dumps(table.snapshot(now=1100.0)))

    text = report.format_text(snapshot, cfg)
    assert "pool web, setting web (probe p: http GET /healthz every 5 s" in text
    lines = text.splitlines()
    [line_a] = [line for line in lines if "10.0.0.4:8080" in line]
    assert "Unhealthy" in line_a and "(1m 30s)" in line_a
    assert "could not connect to the backend" in line_a
    [line_b] = [line for line in lines if "10.0.0.5:8080" in line]
    assert "Expected:200-399 Received:503." in line_b
    [line_c] = [line for line in lines if "10.0.0.6:8080" in line]
    assert "Healthy" in line_c and "Success. Received 200 status code" in line_c
    assert "Healthy" in report.format_text(snapshot)  # without a config too

    az = report.as_backend_health(snapshot)
    json.dumps(az)
    [pool] = az["backendAddressPools"]
    assert pool["backendAddressPool"]["id"].endswith("/backendAddressPools/web")
    [setting] = pool["backendHttpSettingsCollection"]
    assert setting["backendHttpSettings"]["id"].endswith("/backendHttpSettingsCollection/web")
    assert [(s["address"], s["health"]) for s in setting["servers"]] == [
        ("10.0.0.4", "Unhealthy"),
        ("10.0.0.5", "Unhealthy"),
        ("10.0.0.6", "Healthy"),
    ]
    assert setting["servers"][2]["healthProbeLog"] == "Success. Received 200 status code"
    assert setting["servers"][2]["port"] == 8080
    assert setting["servers"][2]["since"].endswith("Z")


def test_report_with_min_servers_and_nothing_probed():
    text = report.format_text({"time": 5.0, "servers": []})
    assert "No backend server is probed" in text
    snapshot = {
        "time": 5.0,
        "servers": [
            {
                "pool": "p",
                "setting": "s",
                "host": "h",
                "port": 1,
                "state": "Unhealthy",
                "routable": True,
                "since": 1.0,
                "reason": "x",
            },
        ],
    }
    assert "kept in rotation by min_servers" in report.format_text(snapshot)
    assert report.as_backend_health({"servers": []}) == {"backendAddressPools": []}
