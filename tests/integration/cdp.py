"""Headless Chromium driven over the Chrome DevTools Protocol, for browser tests.

open_browser starts Chromium with `--remote-debugging-port=0` and a fresh
profile, reads the DevTools WebSocket address from its stderr, and connects
with trio-websocket. Commands are JSON messages with an id; the reader task
matches each reply to its caller. Pages are targets attached in "flatten"
mode, so one WebSocket carries every page's session.

Chromium is kept off the network beyond loopback: its host resolver maps
every name except localhost to "not found".
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import signal
import subprocess
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
import trio_websocket

CHROMIUM = "/usr/bin/chromium"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
MAX_MESSAGE = 64 * 1024 * 1024  # screenshots arrive as one base64 message

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
    "--no-default-browser-check",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-breakpad",
    "--disable-features=Translate,OptimizationHints,MediaRouter,InterestFeedContentSuggestions",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.*",
    "--window-size=1000,700",
    "--remote-debugging-port=0",
)


class CdpError(Exception):
    """Chromium answered a command with an error, or a page script threw."""


class BrowserFailed(Exception):
    """Chromium did not start, or went away."""


class Browser:
    """One Chromium process and its DevTools connection."""

    def __init__(self, ws: trio_websocket.WebSocketConnection, stderr: deque[str]) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, trio.MemorySendChannel[dict[str, Any]]] = {}
        self.stderr = stderr  # Chromium's last lines of stderr, for failure messages
        self.console: list[str] = []  # every page's console output and exceptions

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        """Run one DevTools command; its result."""
        command_id = next(self._ids)
        message: dict[str, Any] = {"id": command_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        reply_in, reply_out = trio.open_memory_channel[dict[str, Any]](1)
        self._waiting[command_id] = reply_in
        try:
            await self._ws.send_message(json.dumps(message))
            reply = await reply_out.receive()
        except (trio.EndOfChannel, trio_websocket.ConnectionClosed) as exc:
            raise BrowserFailed(f"Chromium went away during {method}") from exc
        finally:
            self._waiting.pop(command_id, None)
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    async def serve_replies(self) -> None:
        """Route replies to their commands and keep the console; runs until closed."""
        try:
            while True:
                message = json.loads(await self._ws.get_message())
                if "id" in message:
                    waiter = self._waiting.get(message["id"])
                    if waiter is not None:
                        waiter.send_nowait(message)
                else:
                    self._event(message)
        except trio_websocket.ConnectionClosed:
            for waiter in self._waiting.values():
                waiter.close()

    def _event(self, message: dict[str, Any]) -> None:
        params = message.get("params", {})
        if message.get("method") == "Runtime.consoleAPICalled":
            text = " ".join(
                str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", [])
            )
            self.console.append(f"console.{params.get('type')}: {text}")
        elif message.get("method") == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            description = details.get("exception", {}).get("description", details.get("text"))
            self.console.append(f"exception: {description}")

    async def new_page(self, url: str) -> Page:
        """A new tab showing `url`."""
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self, attached["sessionId"])
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        await page.navigate(url)
        return page

    async def close(self) -> None:
        try:
            with trio.move_on_after(3):
                await self.send("Browser.close")
        except (BrowserFailed, CdpError, trio.BrokenResourceError):
            pass


class Page:
    """One tab, driven through its DevTools session."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.browser.send(method, params, session=self.session)

    async def navigate(self, url: str) -> None:
        result = await self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CdpError(f"navigating to {url}: {result['errorText']}")
        await self.wait_for("document.readyState === 'complete'")

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description", details.get("text"))
            raise CdpError(f"{expression!r} threw: {text}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, within: float = 10.0) -> Any:
        """Wait until `expression` is truthy in the page; its value.

        The page itself re-checks on every animation-free tick (50 ms), so
        this is one round trip, not a polling loop over the wire.
        """
        script = f"""new Promise((resolve, reject) => {{
            const deadline = performance.now() + {within * 1000};
            (function check() {{
                let value;
                try {{ value = ({expression}); }} catch (e) {{ value = undefined; }}
                if (value) resolve(value);
                else if (performance.now() > deadline) reject(new Error("timed out"));
                else setTimeout(check, 50);
            }})();
        }})"""
        try:
            return await self.evaluate(script)
        except CdpError as exc:
            raise CdpError(f"waited {within} s for {expression}: {exc}") from None

    async def type_into(self, selector: str, text: str) -> None:
        """Replace the text of an input with `text`, as keyboard input."""
        await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.focus(); e.select(); return true; })()"
        )
        await self.send("Input.insertText", {"text": text})

    async def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element."""
        box = await self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
            )

    async def screenshot(self, path: Path) -> Path:
        result = await self.send("Page.captureScreenshot", {"format": "png"})
        await trio.Path(path.parent).mkdir(parents=True, exist_ok=True)
        await trio.Path(path).write_bytes(base64.b64decode(result["data"]))
        return path


def chromium_missing() -> str | None:
    """Why Chromium cannot run here, or None."""
    if not os.access(CHROMIUM, os.X_OK):
        return (
            f"{CHROMIUM} is missing: the browser test needs Debian's chromium "
            "(scripts/test installs it; or: apt-get install chromium)"
        )
    return None


@asynccontextmanager
async def open_browser(profile: Path, extra_flags: Sequence[str] = ()) -> AsyncIterator[Browser]:
    """Headless Chromium with a fresh profile in `profile`; closed on the way out."""
    problem = chromium_missing()
    if problem:
        raise BrowserFailed(problem)
    await trio.Path(profile).mkdir(parents=True, exist_ok=True)
    command = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra_flags, "about:blank"]
    process = await trio.lowlevel.open_process(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    stderr: deque[str] = deque(maxlen=40)
    try:
        async with trio.open_nursery() as nursery:
            address = await nursery.start(_read_stderr, process, stderr)
            async with trio_websocket.open_websocket_url(
                address, max_message_size=MAX_MESSAGE
            ) as ws:
                browser = Browser(ws, stderr)
                nursery.start_soon(browser.serve_replies)
                try:
                    yield browser
                finally:
                    await browser.close()
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await _stop(process)


async def _read_stderr(
    process: trio.Process, lines: deque[str], *, task_status: trio.TaskStatus[str]
) -> None:
    """Keep Chromium's stderr flowing; report the DevTools address once it is printed."""
    assert process.stderr is not None
    buffer = b""
    started = False
    with trio.move_on_after(START_TIMEOUT) as waiting:
        while True:
            data = await process.stderr.receive_some(65536)
            if not data:
                break
            buffer += data
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                line = raw.decode("utf-8", "replace")
                lines.append(line)
                if not started and line.startswith("DevTools listening on "):
                    started = True
                    waiting.deadline = float("inf")
                    task_status.started(line.split(" on ", 1)[1].strip())
    if not started:
        why = "did not start in time" if waiting.cancelled_caught else "exited"
        raise BrowserFailed(f"Chromium {why}:\n" + "\n".join(lines))


async def _stop(process: trio.Process) -> None:
    """Wait for Chromium to exit; kill its whole session if it does not."""
    with trio.move_on_after(STOP_TIMEOUT):
        await process.wait()
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    with trio.move_on_after(STOP_TIMEOUT):
        await process.wait()
