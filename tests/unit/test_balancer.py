from __future__ import annotations

from appgw.config.model import Config, Gateway, Pool, Server, Setting
from appgw.worker.policy.balancer import Balancer, EveryoneHealthy


class Down:
    def __init__(self, *hosts: str) -> None:
        self.hosts = set(hosts)

    def is_routable(self, pool: str, setting: str, host: str, port: int) -> bool:
        return host not in self.hosts


POOL = Pool("p", (Server("a"), Server("b"), Server("c")))
SETTING = Setting("s", 80, cookie_based_affinity=True)


def config(secret: str = "") -> Config:
    return Config(
        source="t",
        gateway=Gateway(affinity_secret=secret),
        pools={"p": POOL},
        settings={"s": SETTING},
    )


def first(balancer: Balancer, health) -> str:
    return balancer.candidates(POOL, SETTING, health)[0].host


def test_round_robin_cycles_the_pool():
    balancer = Balancer(config())
    assert [first(balancer, EveryoneHealthy()) for _ in range(6)] == list("abcabc")


def test_unhealthy_server_is_skipped_and_its_share_spreads():
    balancer = Balancer(config())
    picks = [first(balancer, Down("b")) for _ in range(6)]
    assert "b" not in picks
    assert picks.count("a") == picks.count("c") == 3


def test_failover_order_lists_the_other_routable_servers():
    balancer = Balancer(config())
    order = balancer.candidates(POOL, SETTING, Down("c"))
    assert [s.host for s in order] == ["a", "b"]


def test_nobody_routable_gives_no_candidates():
    assert Balancer(config()).candidates(POOL, SETTING, Down("a", "b", "c")) == []


def test_affinity_cookie_pins_a_server_and_is_shared_by_instances_with_one_secret():
    one, two = Balancer(config("s3cret")), Balancer(config("s3cret"))
    value = one.cookie_value(POOL, Server("c"))
    assert len(value) == 32 and int(value, 16) >= 0  # opaque: no address in it
    for _ in range(4):
        assert two.candidates(POOL, SETTING, EveryoneHealthy(), value)[0].host == "c"
    # A pinned server that is down is not used; a forged value is ignored.
    assert two.candidates(POOL, SETTING, Down("c"), value)[0].host != "c"
    assert len(two.candidates(POOL, SETTING, EveryoneHealthy(), "forged")) == 3
    assert Balancer(config("other")).cookie_value(POOL, Server("c")) != value
