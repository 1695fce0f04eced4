"""Rewrite patterns are RE2's, and Set-Cookie value matchers (headerValueMatcher)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from appgw.config import ConfigError, load
from appgw.config.model import (
    HeaderAction,
    RewriteCondition,
    RewriteRule,
    RewriteRuleSet,
    ValueMatcher,
)
from appgw.config.validate import validate
from appgw.patterns import PatternError, compile_pattern
from appgw.worker.policy.rewrite import compile_rule_set
from appgw.worker.policy.variables import RequestContext
from tests.unit.test_config_validate import base


def ctx(headers: list[tuple[bytes, bytes]] = ()) -> RequestContext:
    return RequestContext(
        client_ip="10.0.0.1",
        client_port=5000,
        server_port=80,
        scheme="http",
        method="GET",
        path="/",
        query="",
        host="a.example",
        headers=list(headers),
    )


@pytest.mark.parametrize(
    "pattern",
    ["(?=look)ahead", "(?<!x)y", r"(a)\1", "a++", "(?P<n>a)(?P=n)"],
)
def test_patterns_re2_refuses_are_configuration_errors(pattern: str) -> None:
    with pytest.raises(PatternError):
        compile_pattern(pattern)
    rule_set = RewriteRuleSet(
        "rw",
        (
            RewriteRule(
                "r",
                conditions=(RewriteCondition("http_req_User-Agent", pattern),),
                request_headers=(HeaderAction("X-A", "1"),),
            ),
        ),
    )
    [error] = validate(base(rewrite_rule_sets={"rw": rule_set}))
    assert error.startswith(
        "rewrite_rule_sets.rw.rules.r.conditions[0].pattern: not an RE2 regular expression: "
    )


def test_matching_a_hostile_header_takes_linear_time() -> None:
    # (a+)+$ backtracks exponentially in a backtracking engine on "aaaa...!".
    rule_set = compile_rule_set(
        RewriteRuleSet(
            "rw",
            (
                RewriteRule(
                    "r",
                    conditions=(RewriteCondition("http_req_X-Evil", "(a+)+$"),),
                    request_headers=(HeaderAction("X-Hit", "1"),),
                ),
            ),
        )
    )
    started = time.perf_counter()
    result = rule_set.rewrite_request(ctx([(b"x-evil", b"a" * 20000 + b"!")]))
    assert time.perf_counter() - started < 1.0
    assert result.header_edits == ()


def cookie_rule(matcher: ValueMatcher, value: str) -> RewriteRuleSet:
    return RewriteRuleSet(
        "rw",
        (
            RewriteRule(
                "cookies",
                response_headers=(HeaderAction("Set-Cookie", value, matcher),),
            ),
        ),
    )


RESPONSE = [
    (b"content-type", b"text/html"),
    (b"set-cookie", b"session=abc; Path=/"),
    (b"set-cookie", b"theme=dark; Path=/"),
]


def test_value_matcher_rewrites_only_the_fields_it_selects() -> None:
    rule_set = compile_rule_set(
        cookie_rule(
            ValueMatcher("^(session=[^;]*)(.*)$"), "{http_resp_Set-Cookie_1}; Secure; HttpOnly"
        )
    )
    out = rule_set.rewrite_response(ctx(), 200, RESPONSE)
    assert out == [
        (b"content-type", b"text/html"),
        (b"set-cookie", b"session=abc; Secure; HttpOnly"),
        (b"set-cookie", b"theme=dark; Path=/"),
    ]


def test_value_matcher_negate_ignore_case_and_removal() -> None:
    removed = compile_rule_set(cookie_rule(ValueMatcher("^SESSION=", ignore_case=True), ""))
    assert removed.rewrite_response(ctx(), 200, RESPONSE) == [RESPONSE[0], RESPONSE[2]]
    negated = compile_rule_set(cookie_rule(ValueMatcher("^session=", negate=True), "gone=1"))
    assert negated.rewrite_response(ctx(), 200, RESPONSE) == [
        RESPONSE[0],
        RESPONSE[1],
        (b"set-cookie", b"gone=1"),
    ]


def test_value_matcher_is_for_set_cookie_responses_only() -> None:
    rule_set = RewriteRuleSet(
        "rw",
        (
            RewriteRule(
                "r",
                request_headers=(HeaderAction("X-A", "1", ValueMatcher("a")),),
                response_headers=(HeaderAction("Set-Cookie", "x", ValueMatcher("(")),),
            ),
        ),
    )
    errors = validate(base(rewrite_rule_sets={"rw": rule_set}))
    assert errors == [
        "rewrite_rule_sets.rw.rules.r.request_headers: X-A: a value matcher is for the "
        "Set-Cookie response header only",
        "rewrite_rule_sets.rw.rules.r.response_headers: Set-Cookie: value matcher: not an RE2 "
        "regular expression: missing ): (",
    ]


def test_value_matcher_in_toml(tmp_path: Path) -> None:
    path = tmp_path / "appgw.toml"
    path.write_text(
        """
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
name = "secure-session"
response_headers = { "Set-Cookie" = { value = "{http_resp_Set-Cookie_1}; Secure", matcher = { pattern = "^(session=.*)$", ignore_case = true } }, "X-A" = "1" }
"""
    )
    rule = load(str(path)).rewrite_rule_sets["rw"].rules[0]
    assert rule.response_headers == (
        HeaderAction(
            "Set-Cookie",
            "{http_resp_Set-Cookie_1}; Secure",
            ValueMatcher("^(session=.*)$", ignore_case=True),
        ),
        HeaderAction("X-A", "1"),
    )


def test_value_matcher_in_arm(tmp_path: Path) -> None:
    from tests.unit.test_config_arm import gateway, ref

    doc = gateway()
    doc["properties"]["rewriteRuleSets"] = [
        {
            "name": "rw",
            "properties": {
                "rewriteRules": [
                    {
                        "name": "secure-session",
                        "ruleSequence": 100,
                        "actionSet": {
                            "responseHeaderConfigurations": [
                                {
                                    "headerName": "Set-Cookie",
                                    "headerValue": "{http_resp_Set-Cookie_1}; Secure",
                                    "headerValueMatcher": {
                                        "pattern": "^(session=.*)$",
                                        "ignoreCase": True,
                                        "negate": False,
                                    },
                                }
                            ]
                        },
                    }
                ]
            },
        }
    ]
    doc["properties"]["requestRoutingRules"][0]["properties"]["rewriteRuleSet"] = ref(
        "rewriteRuleSets", "rw"
    )
    path = tmp_path / "gw.json"
    path.write_text(json.dumps(doc))
    config = load(str(path))
    assert config.warnings == ()
    [action] = config.rewrite_rule_sets["rw"].rules[0].response_headers
    assert action.matcher == ValueMatcher("^(session=.*)$", ignore_case=True)
    doc["properties"]["rewriteRuleSets"][0]["properties"]["rewriteRules"][0]["actionSet"][
        "responseHeaderConfigurations"
    ][0]["headerValueMatcher"]["pattern"] = "(?=x)"
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError) as info:
        load(str(path))
    assert "not an RE2 regular expression" in info.value.errors[0]
    assert info.value.errors[0].startswith("rewriteRuleSets.rw.")
