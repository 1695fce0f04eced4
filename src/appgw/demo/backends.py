"""The demo's sample app: a small HTTP server that shows which instance answered.

Run two of them behind the gateway and reload the page to watch the gateway
balance between them:

    python -m appgw.demo.backends --name app-1 --bind 127.0.0.2 --port 9001

Paths: `/` an HTML page naming the instance and the request's Host and
X-Forwarded-* headers, `/api/whoami` the same as JSON, `/healthz` "ok" for
the gateway's probe.

Its HTTP server loop is http_server.py's, shared with the chat server.
"""

from __future__ import annotations

import argparse
import colorsys
import hashlib
import html
from functools import partial

import attrs
import trio
from attrs import frozen

from appgw.demo.http_server import (
    Request,
    Response,
    hostport,
    json_response,
    page,
    run_main,
    serve_http,
    text,
)

# --- the sample app ----------------------------------------------------------


@frozen
class App:
    """One instance of the sample app."""

    name: str

    def respond(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return attrs.evolve(text(405, "only GET and HEAD\n"), headers=(("Allow", "GET, HEAD"),))
        if request.path == "/healthz":
            return text(200, "ok")
        if request.path == "/api/whoami":
            return json_response(self.whoami(request))
        if request.path == "/":
            return page(self.render(request))
        return page(self.render(request, missing=True), status=404)

    def whoami(self, request: Request) -> dict[str, object]:
        return {
            "instance": self.name,
            "method": request.method,
            "path": request.target,
            "host": request.header("host"),
            "x_forwarded_for": request.header("x-forwarded-for"),
            "x_forwarded_proto": request.header("x-forwarded-proto"),
            "x_forwarded_port": request.header("x-forwarded-port"),
            "x_original_host": request.header("x-original-host"),
            "peer": request.peer,
            "headers": _joined(request.headers),
        }

    def render(self, request: Request, *, missing: bool = False) -> str:
        hue = int(hashlib.sha256(self.name.encode()).hexdigest()[:4], 16) % 360
        red, green, blue = colorsys.hls_to_rgb(hue / 360, 0.42, 0.55)
        color = f"#{int(red * 255):02x}{int(green * 255):02x}{int(blue * 255):02x}"
        rows = [
            ("Host", request.header("host")),
            ("X-Forwarded-For", request.header("x-forwarded-for")),
            ("X-Forwarded-Proto", request.header("x-forwarded-proto")),
            ("X-Forwarded-Port", request.header("x-forwarded-port")),
            ("X-Original-Host", request.header("x-original-host")),
            ("Connection from", request.peer),
            ("Request", f"{request.method} {request.target}"),
        ]
        table = "\n".join(
            f"<tr><th>{html.escape(key)}</th><td>{_cell(value)}</td></tr>" for key, value in rows
        )
        name = html.escape(self.name)
        note = (
            f"<p class=missing>Nothing at {html.escape(request.path)}; {name} answered anyway.</p>"
            if missing
            else ""
        )
        return f"""<!doctype html>
<html lang=en>
<head>
<meta charset=utf-8>
<meta name=viewport content="width=device-width, initial-scale=1">
<title>{name} · appgw demo</title>
<style>
  body {{ font: 16px/1.5 system-ui, sans-serif; margin: 0; background: #f5f6f8; color: #1d2330; }}
  header {{ background: {color}; color: #fff; padding: 2rem 1.5rem; }}
  header h1 {{ margin: 0; font-size: 2.4rem; }}
  header p {{ margin: .3rem 0 0; opacity: .9; }}
  main {{ max-width: 46rem; margin: 1.5rem auto; padding: 0 1.5rem; }}
  table {{ border-collapse: collapse; width: 100%; background: #fff; border-radius: 8px;
          box-shadow: 0 1px 3px rgba(0,0,0,.08); overflow: hidden; }}
  th, td {{ text-align: left; padding: .55rem .9rem; border-bottom: 1px solid #eceef2; }}
  th {{ width: 12rem; font-weight: 600; color: #4a5263; }}
  td {{ font-family: ui-monospace, monospace; word-break: break-all; }}
  .none {{ color: #9aa1ad; font-family: system-ui, sans-serif; }}
  .missing {{ color: #a23; }}
  a {{ color: {color}; }}
</style>
</head>
<body>
<header>
  <h1 id=instance>{name}</h1>
  <p>answered this request. Reload the page: the gateway balances between the instances.</p>
</header>
<main>
{note}
<table>
{table}
</table>
<p>As JSON: <a href="/api/whoami">/api/whoami</a> · The chat: <a href="/chat/">/chat/</a></p>
</main>
</body>
</html>
"""


def _joined(headers: tuple[tuple[str, str], ...]) -> dict[str, str]:
    joined: dict[str, str] = {}
    for name, value in headers:
        joined[name] = f"{joined[name]}, {value}" if name in joined else value
    return joined


def _cell(value: str | None) -> str:
    return "<span class=none>(not set)</span>" if value is None else html.escape(value)


async def serve_app(
    name: str,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the sample app named `name` until cancelled; reports the bound port."""
    await serve_http(App(name).respond, host, port, task_status=task_status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m appgw.demo.backends", description="The appgw demo's sample app."
    )
    parser.add_argument("--name", default="app-1", help="the instance name it shows")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=9001, help="port to listen on (0: any)")
    args = parser.parse_args(argv)
    return run_main(
        partial(serve_app, args.name, args.bind, args.port),
        lambda port: f"{args.name} listening on http://{hostport(args.bind, port)}/",
        f"{args.name}: cannot listen on {hostport(args.bind, args.port)}",
    )


if __name__ == "__main__":
    raise SystemExit(main())
