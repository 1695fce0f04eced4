"""The access-log entry and its error_info, from an observe.Exchanged record."""

from __future__ import annotations

import json

import pytest

from appgw.errors import BackendAborted, BadGateway, BadRequest, ClientGone, GatewayTimeout
from appgw.worker.exchange.observe import Exchanged, access_entry, error_info
from appgw.worker.tunnel.tunnel import TunnelEnd


def record(**fields) -> Exchanged:
    base = {
        "time": 1700000000.25,
        "client_ip": "10.1.2.3",
        "client_port": 50000,
        "status": 200,
        "seconds": 0.0123,
    }
    return Exchanged(**(base | fields))


def test_an_entry_has_azures_fields_in_json() -> None:
    entry = access_entry(
        record(
            method="GET",
            uri="/a?b=1",
            server="10.0.0.4:80",
            server_status=200,
            server_latency=0.0101,
            upstream_port=40000,
            tls_protocol="TLSv1.3",
            tls_cipher="TLS_AES_256_GCM_SHA384",
            listener="https",
            rule="r",
            pool="p",
            setting="s",
            trace_id="t-1",
        ),
        "ERRORINFO_NO_ERROR",
    )
    assert entry["timeStamp"] == "2023-11-14T22:13:20.250000Z"
    assert entry["sslEnabled"] == "on"
    assert entry["serverStatus"] == "200"
    assert entry["serverResponseLatency"] == "0.010"
    assert entry["upstreamSourcePort"] == "40000"
    assert entry["timeTaken"] == 0.0123
    assert entry["transactionId"] == "t-1"
    assert "tunnelDuration" not in entry
    json.dumps(entry)


def test_a_tunnel_entry_adds_its_account() -> None:
    tunnel = TunnelEnd(
        duration=12.5,
        client_bytes=10,
        backend_bytes=20,
        closed_by="backend",
        code=1000,
        reason="close handshake",
    )
    entry = access_entry(record(status=101, tunnel=tunnel), "ERRORINFO_NO_ERROR")
    assert entry["tunnelDuration"] == 12.5
    assert entry["tunnelClosedBy"] == "backend"
    assert entry["tunnelCloseCode"] == 1000
    assert entry["tunnelCloseReason"] == "close handshake"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({}, "ERRORINFO_NO_ERROR"),
        ({"status": 502, "failure": BadGateway("no healthy server")}, "ERRORINFO_UPSTREAM_NO_LIVE"),
        (
            {"status": 502, "server": "10.0.0.4:80", "failure": BadGateway("garbage")},
            "ERRORINFO_UPSTREAM_CLOSED_CONNECTION",
        ),
        (
            {"status": 504, "server": "10.0.0.4:80", "failure": GatewayTimeout("slow")},
            "ERRORINFO_UPSTREAM_TIMED_OUT",
        ),
        ({"status": 400, "failure": BadRequest("bad")}, "ERRORINFO_INVALID_REQUEST"),
        ({"status": 200, "failure": BackendAborted("cut")}, "ERRORINFO_UPSTREAM_CLOSED_CONNECTION"),
        ({"status": 0, "failure": ClientGone("gone")}, "ERRORINFO_CLIENT_CLOSED_REQUEST"),
    ],
)
def test_error_info(fields, code) -> None:
    assert error_info(record(**fields)) == code
