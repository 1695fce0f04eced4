"""Rewrite rule sets that could not work are configuration errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from appgw.config import ConfigError, load

BASE = """
[listeners.web]
protocol = "http"
port = 8080
[pools.p]
servers = ["127.0.0.2"]
[settings.s]
port = 80
[rules.r]
listener = "web"
pool = "p"
setting = "s"
rewrite_rule_set = "rw"
[rewrite_rule_sets.rw]
[[rewrite_rule_sets.rw.rules]]
name = "one"
sequence = 100
"""


def errors_of(tmp_path: Path, rule: str) -> list[str]:
    path = tmp_path / "appgw.toml"
    path.write_text(BASE + rule)
    with pytest.raises(ConfigError) as caught:
        load(str(path))
    return caught.value.errors


@pytest.mark.parametrize("header", ["Connection", "Transfer-Encoding", "Content-Length", "Upgrade"])
def test_framing_and_connection_headers_cannot_be_rewritten(tmp_path, header):
    errors = errors_of(tmp_path, f'request_headers = {{ "{header}" = "x" }}\n')
    assert any(
        "rewrite_rule_sets.rw.rules.one.request_headers" in e and header in e for e in errors
    )


def test_host_cannot_be_removed(tmp_path):
    errors = errors_of(tmp_path, 'request_headers = { "Host" = "" }\n')
    assert any("Host cannot be removed" in e for e in errors)


def test_a_condition_pattern_must_compile(tmp_path):
    rule = 'conditions = [{ variable = "http_req_User-Agent", pattern = "(unclosed" }]\n'
    errors = errors_of(tmp_path, rule)
    assert any("conditions" in e and "pattern" in e and "regular expression" in e for e in errors)


def test_a_good_rule_set_loads(tmp_path):
    path = tmp_path / "appgw.toml"
    path.write_text(BASE + 'request_headers = { "X-Client-IP" = "{var_client_ip}" }\n')
    assert load(str(path)).rewrite_rule_sets["rw"].rules[0].request_headers[0].name == "X-Client-IP"
