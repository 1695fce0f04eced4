"""A real browser through the demo: two Chromium tabs chat over wss://.

They chat, the gateway reloads (`appgw reload`, as the demo suggests), and
they chat on.

Chromium on Linux takes extra root CAs only from an NSS database (made with
certutil, which is not installed everywhere), so instead of trusting the
demo CA the browser is told to accept exactly one public key: the demo
server certificate's (`--ignore-certificate-errors-spki-list`). Any other
certificate still fails, so a wrong one served by the gateway fails the test.

The screenshot of the first tab is kept in <repo>/test-artifacts/.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import trio

from appgw.certs import spki_sha256
from tests.integration.cdp import Browser, Page, chromium_missing, open_browser
from tests.integration.test_demo import open_demo, reload

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


async def chat_in_two_tabs(
    browser: Browser,
    url: str,
    screenshot: Path,
    between: Callable[[], Awaitable[None]] | None = None,
) -> list[str]:
    """Open the chat page at `url` twice, exchange messages; the lines tab one shows.

    `between` runs after the first exchange (a gateway reload); the tabs then
    exchange another pair of messages.
    """
    alice = await browser.new_page(url)
    bob = await browser.new_page(url)
    for page, name in ((alice, "Alice"), (bob, "Bob")):
        await connected(page)
        await page.type_into("#name", name)
        await page.evaluate("document.querySelector('#message').focus(), true")  # name: change
    await wait_online(alice, 2)
    await wait_online(bob, 2)

    await say(alice, "hello from Alice")
    await heard(bob, "Alice", "hello from Alice")
    await say(bob, "hi Alice, Bob here")
    await heard(alice, "Bob", "hi Alice, Bob here")
    if between is not None:
        await between()
        await say(alice, "still there?")
        await heard(bob, "Alice", "still there?")
        await say(bob, "yes, still here")
        await heard(alice, "Bob", "yes, still here")

    scheme = await alice.evaluate("location.protocol")
    protocol = await alice.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol")
    assert protocol == ("h2" if scheme == "https:" else "http/1.1"), protocol
    socket_url = await alice.evaluate("document.querySelector('#status').title")
    assert socket_url.startswith("wss://" if scheme == "https:" else "ws://"), socket_url
    await alice.screenshot(screenshot)
    return await lines(alice)


async def connected(page: Page) -> None:
    await page.wait_for("document.querySelector('#status').dataset.state === 'open'")


async def wait_online(page: Page, count: int) -> None:
    await page.wait_for(f"document.querySelector('#status').textContent.includes('{count} online')")


async def say(page: Page, text: str) -> None:
    await page.type_into("#message", text)
    await page.click("#send")
    await page.wait_for("document.querySelector('#message').value === ''")


async def heard(page: Page, sender: str, text: str) -> None:
    await page.wait_for(
        "[...document.querySelectorAll('#messages li.message')].some(li => "
        f"li.querySelector('.from').textContent === {json.dumps(sender)} && "
        f"li.querySelector('.text').textContent === {json.dumps(text)})"
    )


async def lines(page: Page) -> list[str]:
    return await page.evaluate(
        "[...document.querySelectorAll('#messages li.message')].map(li =>"
        " li.querySelector('.from').textContent + ': ' + li.querySelector('.text').textContent)"
    )


async def test_two_browser_tabs_chat_through_the_gateway_over_wss(tmp_path):
    problem = chromium_missing()
    assert problem is None, problem
    with trio.fail_after(90):
        async with open_demo(tmp_path, tmp_path / "demo") as demo:
            pin = spki_sha256(demo.directory / "localhost.pem")
            flags = [f"--ignore-certificate-errors-spki-list={pin}"]
            async with open_browser(tmp_path / "profile", flags) as browser:
                url = f"https://localhost:{demo.https_port}/chat/"
                try:
                    shown = await chat_in_two_tabs(
                        browser,
                        url,
                        ARTIFACTS / "browser-chat-through-gateway.png",
                        between=partial(reload, demo),
                    )
                except Exception as exc:
                    raise AssertionError(
                        f"{exc}\nbrowser console:\n" + "\n".join(browser.console)
                    ) from exc
    assert shown == [
        "Alice: hello from Alice",
        "Bob: hi Alice, Bob here",
        "Alice: still there?",
        "Bob: yes, still here",
    ]
    assert (ARTIFACTS / "browser-chat-through-gateway.png").stat().st_size > 1000
