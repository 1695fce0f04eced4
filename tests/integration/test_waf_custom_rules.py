"""WAF custom rules through a gateway of two workers: rate limits, countries.

A rate-limit rule counts for the whole gateway, not per worker: one client
connection held open on each worker (found through /proc), requests
alternating between them, and the threshold holds over their sum, as
Application Gateway counts across its instances (waf/rates.py). GeoMatch
rules look up RemoteAddr's country (the first X-Forwarded-For address, as
in Azure) in Debian's GeoIP database; loopback clients are in "ZZ".
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import trio

from appgw.waf import crs, geo
from tests.integration.test_waf import GATEWAY, HOST, A, config, firewall_lines
from tests.support.backends import start_http_backends
from tests.support.clients import HttpClient, open_http
from tests.support.gateway import connection_holder, open_gateway

pytestmark = pytest.mark.skipif(
    not crs.installed() or geo.problem() is not None, reason="needs modsecurity-crs, geoip-database"
)

POLICY = """
[waf_policies.limited]
mode = "prevention"
custom_block_status = 429
custom_block_body = "slow down"
[[waf_policies.limited.custom_rules]]
name = "burst"
priority = 1
action = "Block"
rule_type = "RateLimitRule"
rate_limit_threshold = 4
[[waf_policies.limited.custom_rules.match_conditions]]
variables = ["RequestUri"]
operator = "BeginsWith"
values = ["/echo?burst"]
[[waf_policies.limited.custom_rules]]
name = "nogb"
priority = 2
action = "Block"
[[waf_policies.limited.custom_rules.match_conditions]]
variables = ["RemoteAddr"]
operator = "GeoMatch"
values = ["GB"]
[[waf_policies.limited.custom_rules]]
name = "unplaced"
priority = 3
action = "Log"
[[waf_policies.limited.custom_rules.match_conditions]]
variables = ["RemoteAddr"]
operator = "GeoMatch"
values = ["ZZ"]
[[waf_policies.limited.custom_rules.match_conditions]]
variables = ["RequestUri"]
operator = "BeginsWith"
values = ["/echo?geo"]
"""
MOST = 100  # connections tried, at most, to find one on each worker


async def test_rate_limit_holds_across_workers_and_geomatch(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    log = tmp_path / "firewall.log"
    text = config(gateway_port, backend_port, log, POLICY, site="limited")
    with trio.fail_after(60):
        await start_http_backends(nursery, [A], backend_port)
        async with open_gateway(text, tmp_path, workers=2) as gw, AsyncExitStack() as stack:
            pids = gw.worker_pids(GATEWAY, gateway_port)
            assert len(pids) == 2
            on: dict[int, HttpClient] = {}
            for _ in range(MOST):
                client = await stack.enter_async_context(open_http(GATEWAY, gateway_port))
                assert (await client.get("/echo", headers=HOST)).status == 200
                holder = connection_holder(pids, (GATEWAY, gateway_port), client.local_address)
                if holder is not None:
                    on.setdefault(holder, client)
                if len(on) == 2:
                    break
            assert len(on) == 2, "no connection reached the second worker"
            first, second = on.values()
            statuses = []
            for i in range(6):
                client = first if i % 2 == 0 else second
                statuses.append((await client.get(f"/echo?burst={i}", headers=HOST)).status)
            british = [*HOST, ("X-Forwarded-For", "81.2.69.160, 127.0.0.1")]
            american = [*HOST, ("X-Forwarded-For", "8.8.8.8")]
            geo_statuses = [
                (await first.get("/echo?geo=1", headers=headers)).status
                for headers in (british, american, HOST)
            ]
    # Counted per worker, each would have seen 3 and passed them all.
    assert statuses == [200, 200, 200, 200, 429, 429]
    assert geo_statuses == [429, 200, 200]
    actions = [(e["ruleId"], e["action"], e["clientIp"]) for e in firewall_lines(log)]
    assert ("nogb", "Blocked", "127.0.0.1") in actions
    # Only the loopback request without X-Forwarded-For is in no country.
    assert [a for a in actions if a[0] == "unplaced"] == [("unplaced", "Matched", "127.0.0.1")]
