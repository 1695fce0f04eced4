"""Passive health: back-off after failed connects, the balancer's order, the
log lines and what `appgw health` shows."""

from __future__ import annotations

from appgw.config.model import Config, Pool, Server, Setting
from appgw.prober import report
from appgw.worker.policy.balancer import Balancer, EveryoneHealthy
from appgw.worker.policy.passive import PassiveHealth

REFUSED = "connect to 10.0.0.2:80 failed: [Errno 111] Connection refused"


def test_a_failed_connect_backs_off_until_the_time_passes_or_a_connect_succeeds():
    passive = PassiveHealth(backoff=10, log_interval=10)
    assert not passive.any_failing
    assert passive.connect_failed("10.0.0.2", 80, REFUSED, now=100.0) == (
        REFUSED + "; passed over for 10s"
    )
    assert passive.backed_off("10.0.0.2", 80, 105.0)
    assert not passive.backed_off("10.0.0.2", 8080, 105.0)  # another port, another server
    assert not passive.backed_off("10.0.0.2", 80, 110.0)
    # Each failure restarts the back-off.
    passive.connect_failed("10.0.0.2", 80, REFUSED, now=109.0)
    assert passive.backed_off("10.0.0.2", 80, 118.0)
    assert passive.connected("10.0.0.2", 80, now=120.0) is not None
    assert not passive.backed_off("10.0.0.2", 80, 120.0)
    assert not passive.any_failing
    assert passive.connected("10.0.0.2", 80, now=121.0) is None


def test_failures_are_logged_once_per_interval_with_a_count():
    passive = PassiveHealth(backoff=10, log_interval=10)
    lines = [passive.connect_failed("h", 1, "refused", now=float(t)) for t in range(0, 25)]
    logged = [(t, line) for t, line in enumerate(lines) if line is not None]
    assert logged == [
        (0, "refused; passed over for 10s"),
        (10, "refused; failed 10 more times in the last 10s"),
        (20, "refused; failed 10 more times in the last 10s"),
    ]
    assert passive.connected("h", 1, now=30.0) == (
        "h:1: connected again after 25 failed connects (4 not logged: refused)"
    )


def test_snapshot_lists_servers_in_back_off_with_wall_time():
    passive = PassiveHealth(backoff=10)
    passive.connect_failed("h", 1, "timed out", now=50.0)
    passive.connect_failed("h", 1, "timed out", now=52.0)
    assert passive.snapshot(now=55.0, wall=1000.0) == [
        {"host": "h", "port": 1, "reason": "timed out", "failures": 2, "until": 1007.0}
    ]
    assert passive.snapshot(now=62.0, wall=1000.0) == []


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_balancer_tries_a_backed_off_server_last():
    servers = (Server("10.0.0.1"), Server("10.0.0.2"), Server("10.0.0.3"))
    pool, setting = Pool("p", servers), Setting("s", 80)
    config = Config(source="t", pools={"p": pool}, settings={"s": setting})
    clock = Clock()
    balancer = Balancer(config, clock=clock)
    balancer.connect_failed(pool, "10.0.0.2", 80, REFUSED)
    orders = [balancer.candidates(pool, setting, EveryoneHealthy()) for _ in range(3)]
    # Still a failover candidate, but after every other server, whatever the turn.
    assert all(order[-1] == servers[1] for order in orders)
    assert {order[0] for order in orders} == {servers[0], servers[2]}
    # Even the server an affinity cookie pins goes last while backed off.
    sticky = balancer.cookie_value(pool, servers[1])
    assert balancer.candidates(pool, setting, EveryoneHealthy(), sticky)[-1] == servers[1]
    clock.now = 11.0
    assert balancer.candidates(pool, setting, EveryoneHealthy(), sticky)[0] == servers[1]


def test_health_report_shows_passive_back_off():
    snapshot = {
        "time": 1000.0,
        "servers": [
            {
                "pool": "web",
                "setting": "web",
                "host": "10.0.0.2",
                "port": 80,
                "state": "Healthy",
                "since": 900.0,
                "reason": "Success. Received 200 status code",
            }
        ],
    }
    far = 4_000_000_000.0
    passive = [
        {"host": "10.0.0.2", "port": 80, "reason": REFUSED, "failures": 2, "until": far - 5},
        {"host": "10.0.0.2", "port": 80, "reason": REFUSED, "failures": 3, "until": far},
        {"host": "10.0.0.9", "port": 80, "reason": "x", "failures": 1, "until": 1.0},  # over
        {"broken": True},
    ]
    text = report.format_text(snapshot, passive=passive)
    [line] = [line for line in text.splitlines() if "10.0.0.2:80" in line]
    assert "passed over until " in line and "after 5 failed connects: " + REFUSED in line
    [server] = report.as_backend_health(snapshot, passive=passive)["backendAddressPools"][0][
        "backendHttpSettingsCollection"
    ][0]["servers"]
    assert server["passive"]["failures"] == 5 and server["passive"]["reason"] == REFUSED
    assert server["passive"]["until"].endswith("Z")
    assert (
        report.as_backend_health(snapshot)["backendAddressPools"][0][
            "backendHttpSettingsCollection"
        ][0]["servers"][0]["passive"]
        is None
    )
