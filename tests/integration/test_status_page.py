"""The status page in a real browser: headless Chromium on the admin listener.

It loads, lists every listener, pool and server, and, with no reload of the
page, shows a server turning unhealthy once its backend stops (the probe
runs every second). Its charts (inline SVG) exist and move as requests and
a WebSocket tunnel arrive, per pool where the traffic goes. The screenshots
are kept in <repo>/test-artifacts/.
"""

from __future__ import annotations

import json
from pathlib import Path

import trio

from tests.integration.cdp import Page, chromium_missing, open_browser
from tests.support.backends import start_http_backends
from tests.support.clients import get, open_ws_at
from tests.support.gateway import open_gateway, toml_table
from tests.support.ports import free_port

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
GATEWAY = "127.0.0.1"
A = "127.0.0.2"
B = "127.0.0.3"


def config(gateway_port: int, backend_port: int, admin_port: int) -> str:
    return "\n".join(
        [
            toml_table("gateway.admin", {"port": admin_port}),
            toml_table(
                "listeners.http", {"protocol": "http", "address": GATEWAY, "port": gateway_port}
            ),
            toml_table("pools.web", {"servers": [A, B]}),
            toml_table("pools.api", {"servers": [A]}),
            toml_table("probes.quick", {"interval": 1, "timeout": 1, "unhealthy_threshold": 1}),
            toml_table("settings.web", {"port": backend_port, "probe": "quick"}),
            toml_table("path_maps.site", {"default_pool": "web", "default_setting": "web"}),
            '[[path_maps.site.rules]]\nname = "api"\npaths = ["/api/*"]\n'
            'pool = "api"\nsetting = "web"\n',
            toml_table(
                "rules.site",
                {"listener": "http", "kind": "path", "path_map": "site", "priority": 10},
            ),
        ]
    )


def state_of(pool: str, server: str) -> str:
    """A JS expression: the health the page shows for `server` of `pool`."""
    return (
        f"(document.querySelector('[data-pool={json.dumps(pool)}] "
        f"tr[data-server={json.dumps(server)}]') || {{dataset: {{}}}}).dataset.state"
    )


async def shown(page: Page, pool: str, server: str, state: str, within: float = 15) -> None:
    await page.wait_for(f"{state_of(pool, server)} === {json.dumps(state)}", within)


async def test_status_page_shows_pools_and_a_server_going_down(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    problem = chromium_missing()
    assert problem is None, problem
    while (admin_port := free_port(GATEWAY)) == gateway_port:
        pass
    screenshot = ARTIFACTS / "status-page.png"
    with trio.fail_after(90):
        _, b_backend = await start_http_backends(nursery, [A, B], backend_port)
        async with open_gateway(config(gateway_port, backend_port, admin_port), tmp_path):
            async with open_browser(tmp_path / "profile") as browser:
                page = await browser.new_page(f"http://{GATEWAY}:{admin_port}/")
                try:
                    await page.wait_for("document.body.dataset.loaded === 'yes'")
                    await shown(page, "web", A, "Healthy")
                    await shown(page, "web", B, "Healthy")
                    await shown(page, "api", A, "Healthy")
                    pools = await page.evaluate(
                        "[...document.querySelectorAll('[data-pool]')].map(p => p.dataset.pool)"
                    )
                    assert pools == ["web", "api"]
                    listeners = await page.evaluate(
                        "[...document.querySelectorAll('[data-listener]')].map(l => l.textContent)"
                    )
                    assert len(listeners) == 1
                    assert "site" in listeners[0] and "/api/*" in listeners[0]
                    condition = await page.evaluate(
                        "document.querySelector('#condition').textContent"
                    )
                    assert condition == "serving"

                    b_backend.stop()  # no page reload from here on
                    await shown(page, "web", B, "Unhealthy")
                    reason = await page.evaluate(
                        f'document.querySelector(\'[data-pool="web"] tr[data-server="{B}"]'
                        " .reason').textContent"
                    )
                    assert reason.strip(), "the probe's reason is shown"
                    assert await page.evaluate(state_of("web", A)) == "Healthy"
                    await page.screenshot(screenshot)
                except Exception as exc:
                    raise AssertionError(
                        f"{exc}\nbrowser console:\n" + "\n".join(browser.console)
                    ) from exc
    assert screenshot.stat().st_size > 1000


def chart(name: str, pool: str | None = None) -> str:
    """A JS expression: the dataset of chart `name` (of `pool`'s card), or {}."""
    scope = f"[data-pool={json.dumps(pool)}] " if pool else "#charts "
    return f"(document.querySelector({json.dumps(scope + f'[data-chart={name}]')}) || {{dataset: {{}}}}).dataset"


def drawn(name: str, pool: str | None = None) -> str:
    """A JS expression: the SVG geometry of chart `name`, as text (line paths and dots)."""
    scope = f"[data-pool={json.dumps(pool)}] " if pool else "#charts "
    selector = json.dumps(scope + f"[data-chart={name}] svg")
    return (
        f"[...document.querySelector({selector}).querySelectorAll('path.line, circle.dot')]"
        ".map(e => e.getAttribute('d') || (e.getAttribute('cx') + ',' + e.getAttribute('cy')))"
        ".join(' | ')"
    )


async def test_status_page_charts_move_as_traffic_arrives(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    problem = chromium_missing()
    assert problem is None, problem
    while (admin_port := free_port(GATEWAY)) == gateway_port:
        pass
    with trio.fail_after(90):
        await start_http_backends(nursery, [A, B], backend_port, websocket=True)
        async with open_gateway(config(gateway_port, backend_port, admin_port), tmp_path):
            async with open_browser(tmp_path / "profile") as browser:
                page = await browser.new_page(f"http://{GATEWAY}:{admin_port}/")
                try:
                    await page.wait_for("document.body.dataset.loaded === 'yes'")
                    names = await page.evaluate(
                        "[...document.querySelectorAll('#charts [data-chart]')]"
                        ".map(c => c.dataset.chart + (c.querySelector('svg') ? ':svg' : ''))"
                    )
                    assert names == ["requests:svg", "failed:svg", "p95:svg", "tunnels:svg"]
                    for pool in ("web", "api"):
                        assert await page.evaluate(f"{chart('pool-requests', pool)}.chart")
                    # Nothing yet: the requests chart is empty or flat at zero.
                    assert await page.evaluate(f"{chart('requests')}.last") in ("", "0")
                    before = await page.evaluate(drawn("requests"))

                    for _ in range(40):  # all to pool web (the path map's default)
                        assert (await get(GATEWAY, gateway_port, "/")).status == 200
                    await page.wait_for(f"Number({chart('requests')}.last) > 0", 15)
                    await page.wait_for(f"Number({chart('pool-requests', 'web')}.last) > 0", 5)
                    assert await page.evaluate(drawn("requests")) != before
                    assert await page.evaluate(f"{chart('pool-requests', 'api')}.last") in ("", "0")
                    assert await page.evaluate(f"{chart('failed')}.last") in ("", "0")
                    await page.wait_for(f"Number({chart('p95')}.last) > 0", 5)

                    async with open_ws_at(GATEWAY, gateway_port, "/ws/chat") as ws:
                        await ws.send_message("hello")
                        assert await ws.get_message() == "hello"
                        await page.wait_for(f"{chart('tunnels')}.last === '1'", 15)
                        await page.screenshot(ARTIFACTS / "status-page-charts.png")
                    await page.wait_for(f"{chart('tunnels')}.last === '0'", 15)
                    assert "exception" not in "\n".join(browser.console)
                except Exception as exc:
                    raise AssertionError(
                        f"{exc}\nbrowser console:\n" + "\n".join(browser.console)
                    ) from exc
