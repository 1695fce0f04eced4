"""The WAF through a real gateway: ModSecurity with the OWASP CRS, Azure's semantics.

Attacks are blocked in Prevention and only logged in Detection; exclusions
and disabled rules stop false positives; custom rules allow, block and rate
limit; body limits answer 413; a WebSocket handshake is screened; policies
attach per listener and per path rule; the firewall log carries Azure's
fields with the request's trace id.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import trio

from appgw.waf import crs
from tests.support.admin import admin_json, sample, wait_for_metrics
from tests.support.backends import start_http_backends
from tests.support.clients import open_http
from tests.support.gateway import open_gateway
from tests.support.ports import free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.skipif(not crs.installed(), reason="needs modsecurity-crs")

GATEWAY = "127.0.0.1"
A = "127.0.0.2"
SQLI = "/echo?id=1%27%20or%20%271%27=%271"
XSS = "/echo?q=%3Cscript%3Ealert(1)%3C/script%3E"
HOST = [("Host", "app.example"), ("User-Agent", "test-client/1.0"), ("Accept", "*/*")]


def config(
    gateway_port: int,
    backend_port: int,
    log: Path,
    policies: str,
    admin_port: int = 0,
    **attach: str,
) -> str:
    site = f'firewall_policy = "{attach["site"]}"' if "site" in attach else ""
    admin = f'firewall_policy = "{attach["admin"]}"' if "admin" in attach else ""
    top = f'firewall_policy = "{attach["gateway"]}"' if "gateway" in attach else ""
    admin_table = f"[gateway.admin]\nport = {admin_port}" if admin_port else ""
    return f"""
{top}
firewall_log = "{log}"
{admin_table}

[listeners.site]
protocol = "http"
address = "{GATEWAY}"
port = {gateway_port}
{site}

[pools.web]
servers = ["{A}"]
[settings.web]
port = {backend_port}

[path_maps.m]
default_pool = "web"
default_setting = "web"
[[path_maps.m.rules]]
name = "admin"
paths = ["/admin/*"]
pool = "web"
setting = "web"
{admin}

[rules.site]
listener = "site"
kind = "path"
path_map = "m"
{policies}
"""


def firewall_lines(log: Path) -> list[dict[str, object]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


async def _get(port: int, target: str, headers=HOST):  # type: ignore[no-untyped-def]
    async with open_http(GATEWAY, port) as client:
        return await client.get(target, headers=headers)


async def _upgrade(port: int, target: str, headers: list[tuple[str, str]]) -> bytes:
    """The response head to a WebSocket handshake (the connection then closed)."""
    lines = [f"GET {target} HTTP/1.1", *(f"{k}: {v}" for k, v in headers)]
    stream = await trio.open_tcp_stream(GATEWAY, port)
    async with stream:
        await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            data = await stream.receive_some(4096)
            if not data:
                break
            head += data
    return head


async def test_prevention_blocks_and_detection_logs(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    log = tmp_path / "firewall.log"
    policies = """
[waf_policies.strict]
mode = "prevention"
[waf_policies.watch]
mode = "detection"
"""
    with trio.fail_after(60):
        [backend] = await start_http_backends(nursery, [A], backend_port)
        admin_port = free_port(GATEWAY)
        text = config(
            gateway_port, backend_port, log, policies, admin_port, site="strict", admin="watch"
        )
        async with open_gateway(text, tmp_path, workers=1):
            clean = await _get(gateway_port, "/echo?page=2")
            sqli = await _get(gateway_port, SQLI)
            xss = await _get(gateway_port, XSS)
            detected = await _get(gateway_port, "/admin/x?id=1%27%20or%20%271%27=%271")
            await wait_until(
                lambda: len({e["transactionId"] for e in firewall_lines(log)}) >= 3, 20
            )
            samples = await wait_for_metrics(
                admin_port,
                lambda s: (
                    sample(
                        s,
                        "appgw_AzwafTotalRequests",
                        policy="strict",
                        scope="Listener",
                        mode="Prevention",
                        action="Block",
                    )
                    == 2
                ),
            )
            status = await admin_json(admin_port, "/status.json")
    assert (
        sample(
            samples,
            "appgw_AzwafTotalRequests",
            policy="watch",
            scope="Location",
            mode="Detection",
            action="Log",
        )
        == 1
    )
    assert (
        sample(
            samples,
            "appgw_AzwafSecRule",
            policy="strict",
            mode="Prevention",
            action="Log",
            rule_set="OWASP_3.2",
            rule_group="REQUEST-942-APPLICATION-ATTACK-SQLI",
            rule_id="942100",
        )
        == 1
    )
    rows = {row["policy"]: row for row in status["firewall"]}
    assert rows["strict"]["blocked"] == 2 and rows["strict"]["screened"] == 3
    assert clean.status == 200
    assert sqli.status == 403 and xss.status == 403
    # The path rule's Detection policy wins over the listener's: the backend
    # got it (and has no page there).
    assert detected.status == 404 and detected.header("x-backend") == A
    assert [r.path for r in backend.requests if r.path != "/"] == ["/echo", "/admin/x"]
    lines = firewall_lines(log)
    blocked = [e for e in lines if e["action"] == "Blocked"]
    assert {e["ruleId"] for e in blocked} == {"949110"}
    assert any(e["ruleId"] == "942100" and e["action"] == "Matched" for e in lines)
    assert any(e["ruleId"] == "941100" for e in lines)
    sqli_line = next(e for e in lines if e["ruleId"] == "942100" and e["policyScope"] == "Listener")
    assert sqli_line["ruleSetType"] == "OWASP" and sqli_line["hostname"] == "app.example"
    assert "ARGS:id" in sqli_line["details"]["data"]  # type: ignore[index]
    assert len(str(sqli_line["transactionId"])) == 32
    detected_lines = [e for e in lines if e["policyScope"] == "Location"]
    assert detected_lines and detected_lines[-1]["action"] == "Detected"
    assert detected_lines[-1]["policyScopeName"] == "m/admin"


async def test_exclusion_disabled_rule_and_custom_rules(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    log = tmp_path / "firewall.log"
    policies = """
[waf_policies.tuned]
mode = "prevention"
custom_block_status = 429
custom_block_body = "slow down"
[[waf_policies.tuned.managed_rule_sets]]
type = "OWASP"
version = "3.2"
[[waf_policies.tuned.managed_rule_sets.rule_groups]]
name = "REQUEST-941-APPLICATION-ATTACK-XSS"
disabled = true
[[waf_policies.tuned.exclusions]]
match_variable = "RequestArgNames"
selector_match_operator = "Equals"
selector = "id"
[[waf_policies.tuned.custom_rules]]
name = "office"
priority = 1
action = "Allow"
[[waf_policies.tuned.custom_rules.match_conditions]]
variables = ["RequestHeaders:X-Office"]
operator = "Equal"
values = ["yes"]
[[waf_policies.tuned.custom_rules.match_conditions]]
variables = ["RemoteAddr"]
operator = "IPMatch"
values = ["127.0.0.0/8"]
[[waf_policies.tuned.custom_rules]]
name = "nobots"
priority = 2
action = "Block"
[[waf_policies.tuned.custom_rules.match_conditions]]
variables = ["RequestHeaders:User-Agent"]
operator = "Contains"
values = ["evilbot"]
transforms = ["Lowercase"]
[[waf_policies.tuned.custom_rules]]
name = "burst"
priority = 3
action = "Block"
rule_type = "RateLimitRule"
rate_limit_threshold = 3
[[waf_policies.tuned.custom_rules.match_conditions]]
variables = ["RequestUri"]
operator = "BeginsWith"
values = ["/echo?burst=1"]
"""
    office = [*HOST, ("X-Office", "yes")]
    with trio.fail_after(60):
        await start_http_backends(nursery, [A], backend_port)
        text = config(gateway_port, backend_port, log, policies, gateway="tuned")
        async with open_gateway(text, tmp_path, workers=1):
            excluded = await _get(gateway_port, SQLI)
            disabled = await _get(gateway_port, XSS)
            other_arg = await _get(gateway_port, "/echo?name=1%27%20or%20%271%27=%271")
            allowed = await _get(gateway_port, "/echo?name=1%27%20or%20%271%27=%271", office)
            bot = await _get(gateway_port, "/echo", [*HOST[:1], ("User-Agent", "EvilBot/2")])
            burst = [(await _get(gateway_port, "/echo?burst=1")).status for _ in range(5)]
    assert excluded.status == 200  # the exclusion: rule 942100 no longer sees ?id
    assert disabled.status == 200  # the XSS group is off
    assert other_arg.status == 429 and other_arg.body == b"slow down"
    assert allowed.status == 200  # the allow list skips the managed rules
    assert bot.status == 429
    assert burst == [200, 200, 200, 429, 429]
    actions = {(e["ruleId"], e["action"]) for e in firewall_lines(log)}
    assert ("office", "Allowed") in actions and ("nobots", "Blocked") in actions
    assert ("burst", "Blocked") in actions


async def test_body_inspection_limits_and_websocket_handshake(
    nursery: trio.Nursery, tmp_path: Path, gateway_port: int, backend_port: int
) -> None:
    log = tmp_path / "firewall.log"
    policies = """
[waf_policies.strict]
mode = "prevention"
max_request_body_size_kb = 8
"""
    form = [*HOST, ("Content-Type", "application/x-www-form-urlencoded")]
    with trio.fail_after(60):
        [backend] = await start_http_backends(nursery, [A], backend_port, websocket=True)
        text = config(gateway_port, backend_port, log, policies, gateway="strict")
        async with open_gateway(text, tmp_path, workers=1):
            async with open_http(GATEWAY, gateway_port) as client:
                fine = await client.request("POST", "/echo", headers=form, body=b"name=alice&n=1")
                attack = await client.request(
                    "POST", "/echo", headers=form, body=b"comment=1%27%20or%20%271%27%3D%271"
                )
            async with open_http(GATEWAY, gateway_port) as client:
                chunked = await client.request(
                    "POST", "/echo", headers=form, body=[b"name=", b"bob"], chunked=True
                )
            async with open_http(GATEWAY, gateway_port) as client:
                big = await client.request("POST", "/echo", headers=form, body=b"a=" + b"x" * 9000)
            boundary = "----appgwtest"
            part = (
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                    f'filename="notes.txt"\r\nContent-Type: text/plain\r\n\r\n'
                ).encode()
                + b"y" * 50_000
                + f"\r\n--{boundary}--\r\n".encode()
            )
            multipart = [*HOST, ("Content-Type", f"multipart/form-data; boundary={boundary}")]
            async with open_http(GATEWAY, gateway_port) as client:
                upload = await client.request(
                    "POST",
                    "/upload",
                    headers=multipart,
                    body=[part[:3000], part[3000:]],
                    chunked=True,
                )
            handshake = [
                *HOST,
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("Sec-WebSocket-Version", "13"),
            ]
            upgrade = await _get(gateway_port, "/ws?q=%3Cscript%3Ealert(1)%3C/script%3E", handshake)
            clean_upgrade = await _upgrade(gateway_port, "/ws/chat", handshake)
    assert fine.status == 200 and json.loads(fine.body)["body_bytes"] == 14
    assert attack.status == 403
    assert chunked.status == 200 and json.loads(chunked.body)["body_bytes"] == 8
    assert big.status == 413
    # An upload past max_request_body_size_kb is inspected in its first part,
    # then streamed whole (the file upload limit applies to it).
    assert upload.status == 200
    assert json.loads(upload.body)["bytes"] == len(part)
    assert json.loads(upload.body)["sha256"] == hashlib.sha256(part).hexdigest()
    assert upgrade.status == 403
    assert clean_upgrade.startswith(b"HTTP/1.1 101 ")  # a clean handshake goes through
    assert [r.path for r in backend.requests if r.path.startswith("/ws")] == ["/ws/chat"]
