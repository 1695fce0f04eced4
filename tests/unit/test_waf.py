"""The WAF's engine and decisions: ModSecurity with Debian's CRS, Azure's scoring."""

from __future__ import annotations

import pytest

from appgw.config.model import Config
from appgw.config.waf import (
    CustomRule,
    Exclusion,
    ExclusionScope,
    ManagedRuleSet,
    MatchCondition,
    MatchVariable,
    RuleGroupOverride,
    RuleOverride,
    WafPolicy,
)
from appgw.waf import crs, custom, scoring
from appgw.waf.directives import exclusion_target
from appgw.waf.engine import RuleMatch, Transaction, parse_message
from appgw.waf.firewall import Firewall

pytestmark = pytest.mark.skipif(not crs.installed(), reason="needs modsecurity-crs")

HEADERS = ((b"Host", b"app.example"), (b"User-Agent", b"curl/8.0"), (b"Accept", b"*/*"))


def _facts(
    uri: str, headers: dict[str, str] | None = None, addr: str = "127.0.0.1"
) -> custom.Facts:
    path, _, query = uri.partition("?")
    return custom.Facts(addr, addr, "GET", uri, query, headers or {"host": "app.example"}, {})


def _transaction(uri: str, body: bytes | None = None, headers=HEADERS) -> Transaction:
    return Transaction(
        ("127.0.0.1", 5000), ("127.0.0.1", 80), b"GET", uri.encode(), b"1.1", headers, body
    )


def _firewall(policy: WafPolicy, clock=lambda: 0.0) -> tuple[Firewall, object]:
    config = Config(source="t", waf_policies={policy.name: policy}, firewall_policy=policy.name)
    fw = Firewall(config, clock=clock)
    attached = fw.attached("r", "l", None)
    assert attached is not None
    return fw, attached


def _ids(decision) -> list[str]:
    return [e.rule_id for e in decision.entries]


SQLI = "/?id=1%27%20or%20%271%27=%271"
XSS = "/?q=%3Cscript%3Ealert(1)%3C/script%3E"


def test_sqli_blocked_in_prevention_with_rule_ids() -> None:
    fw, at = _firewall(WafPolicy("p", mode="prevention"))
    d = fw.inspect(at, _transaction(SQLI), _facts(SQLI))
    assert d.blocked and d.status == 403
    assert "942100" in _ids(d) and _ids(d)[-1] == "949110"
    first = d.entries[0]
    assert first.action == "Matched" and "SQL Injection" in first.message
    assert "ARGS:id" in first.data
    assert d.entries[-1].action == "Blocked"


def test_detection_logs_without_blocking() -> None:
    fw, at = _firewall(WafPolicy("p", mode="detection"))
    d = fw.inspect(at, _transaction(XSS), _facts(XSS))
    assert not d.blocked
    assert "941100" in _ids(d) and d.entries[-1].action == "Detected"


def test_clean_request_matches_nothing() -> None:
    fw, at = _firewall(WafPolicy("p", mode="prevention"))
    d = fw.inspect(at, _transaction("/index.html?page=2"), _facts("/index.html?page=2"))
    assert not d.blocked and d.entries == ()


def test_disabled_rule_and_exclusion_stop_a_false_positive() -> None:
    plain = WafPolicy("p", mode="prevention")
    fw, at = _firewall(plain)
    assert fw.inspect(at, _transaction(SQLI), _facts(SQLI)).blocked
    excluded = WafPolicy(
        "p",
        mode="prevention",
        exclusions=(Exclusion("RequestArgNames", "Equals", "id"),),
    )
    fw, at = _firewall(excluded)
    assert not fw.inspect(at, _transaction(SQLI), _facts(SQLI)).blocked
    # Scoped to one rule: only that rule stops looking at the argument.
    scoped = Exclusion(
        "RequestArgNames",
        "StartsWith",
        "i",
        (ExclusionScope("OWASP", "3.2", rule_ids=("942100",)),),
    )
    fw, at = _firewall(WafPolicy("p", mode="prevention", exclusions=(scoped,)))
    assert "942100" not in _ids(fw.inspect(at, _transaction(SQLI), _facts(SQLI)))
    off = RuleGroupOverride(
        "REQUEST-942-APPLICATION-ATTACK-SQLI", (RuleOverride("942100", enabled=False),)
    )
    disabled = WafPolicy("p", mode="prevention", managed_rule_sets=(ManagedRuleSet(groups=(off,)),))
    fw, at = _firewall(disabled)
    d = fw.inspect(at, _transaction(SQLI), _facts(SQLI))
    assert "942100" not in _ids(d)


def test_rule_action_log_only_logs() -> None:
    group = RuleGroupOverride(
        "REQUEST-941-APPLICATION-ATTACK-XSS",
        (
            RuleOverride(i, action="Log")
            for i in crs.table().group_ids("OWASP", "REQUEST-941-APPLICATION-ATTACK-XSS")
        ),
    )
    group = RuleGroupOverride(group.name, tuple(group.rules))
    policy = WafPolicy("p", mode="prevention", managed_rule_sets=(ManagedRuleSet(groups=(group,)),))
    fw, at = _firewall(policy)
    d = fw.inspect(at, _transaction(XSS), _facts(XSS))
    assert "941100" in _ids(d) and "949110" not in _ids(d) and not d.blocked


def test_microsoft_default_rule_set_groups() -> None:
    table = crs.table()
    assert table.group_ids("Microsoft_DefaultRuleSet", "SQLI") == table.group_ids(
        "OWASP", "REQUEST-942-APPLICATION-ATTACK-SQLI"
    )
    assert table.group_of("Microsoft_DefaultRuleSet", "942100") == "SQLI"
    assert "942100" in table.group_ids("OWASP", "REQUEST-942-APPLICATION-ATTACK-SQLI")


def test_body_inspected_when_checked() -> None:
    body = b"comment=1%27%20or%20%271%27%3D%271"
    headers = HEADERS + (
        (b"Content-Type", b"application/x-www-form-urlencoded"),
        (b"Content-Length", str(len(body)).encode()),
    )
    t = Transaction(("127.0.0.1", 1), ("127.0.0.1", 80), b"POST", b"/form", b"1.1", headers, body)
    fw, at = _firewall(WafPolicy("p", mode="prevention"))
    assert fw.inspect(at, t, _facts("/form")).blocked
    fw, at = _firewall(WafPolicy("p", mode="prevention", request_body_check=False))
    assert not fw.inspect(at, t, _facts("/form")).blocked


def test_custom_rules_allow_block_rate_limit() -> None:
    allow = CustomRule(
        "office",
        1,
        "Allow",
        (MatchCondition((MatchVariable("RemoteAddr"),), "IPMatch", ("10.1.0.0/16",)),),
    )
    block = CustomRule(
        "nobots",
        2,
        "Block",
        (
            MatchCondition(
                (MatchVariable("RequestHeaders", "User-Agent"),),
                "Contains",
                ("evilbot",),
                transforms=("Lowercase",),
            ),
        ),
    )
    rate = CustomRule(
        "burst",
        3,
        "Block",
        (MatchCondition((MatchVariable("RequestUri"),), "BeginsWith", ("/api",)),),
        rule_type="RateLimitRule",
        rate_limit_threshold=2,
    )
    now = [0.0]
    fw, at = _firewall(
        WafPolicy("p", mode="prevention", custom_rules=(allow, block, rate)), clock=lambda: now[0]
    )
    d = fw.inspect(at, _transaction(SQLI), _facts(SQLI, addr="10.1.2.3"))
    assert not d.blocked and _ids(d) == ["office"] and d.entries[0].action == "Allowed"
    d = fw.inspect(at, _transaction("/"), _facts("/", {"user-agent": "EvilBot/1"}))
    assert d.blocked and _ids(d) == ["nobots"]
    results = [fw.inspect(at, _transaction("/api"), _facts("/api")).blocked for _ in range(3)]
    assert results == [False, False, True]
    now[0] = 61.0  # the window slides: the previous window's two still count
    assert fw.inspect(at, _transaction("/api"), _facts("/api")).blocked
    now[0] = 120.0
    assert not fw.inspect(at, _transaction("/api"), _facts("/api")).blocked


def test_negated_condition_and_regex() -> None:
    rule = CustomRule(
        "onlyget",
        1,
        "Block",
        (
            MatchCondition(
                (MatchVariable("RequestMethod"),), "Regex", ("^(GET|HEAD)$",), negate=True
            ),
        ),
    )
    compiled = custom.compile_rules([rule], "p")
    post = custom.Facts("1.2.3.4", "1.2.3.4", "POST", "/", "", {}, {})
    get = custom.Facts("1.2.3.4", "1.2.3.4", "GET", "/", "", {}, {})
    assert custom.evaluate(compiled, post, 0.0, "l") and not custom.evaluate(compiled, get, 0.0, "l")


def test_scoring_threshold_and_block_action() -> None:
    warning = RuleMatch("920350", "Host header is a numeric IP address", "", 4)
    notice = RuleMatch("920230", "Multiple URL Encoding Detected", "", 5)
    v = scoring.managed([warning], {}, {}, ("OWASP", "3.2"), True)
    assert not v.blocked and v.score == 3
    v = scoring.managed([warning, notice], {}, {}, ("OWASP", "3.2"), True)
    assert v.blocked and v.score == 5 and v.entries[-1].rule_id == "949110"
    v = scoring.managed([notice], {"920230": "block"}, {}, ("OWASP", "3.2"), True)
    assert v.blocked and v.entries[0].action == "Blocked"


def test_parse_message_and_targets() -> None:
    line = (
        'ModSecurity: Warning. x [file "/r.conf"] [line "4"] [id "942100"] '
        '[msg "SQL \\"Injection\\""] [data "Matched Data: s&1 found"] [severity "2"]'
    )
    m = parse_message(line)
    assert m == RuleMatch("942100", 'SQL "Injection"', "Matched Data: s&1 found", 2, "/r.conf")
    assert parse_message("no rule here") is None
    assert exclusion_target(Exclusion("RequestHeaderKeys", "Equals", "x-a")) == (
        "REQUEST_HEADERS_NAMES:x-a"
    )
    assert exclusion_target(Exclusion("RequestCookieValues", "EndsWith", "id")) == (
        "REQUEST_COOKIES:/id$/"
    )
    assert exclusion_target(Exclusion("RequestArgValues", "EqualsAny", "")) == "ARGS"
