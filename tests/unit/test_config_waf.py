"""WAF policies read from TOML and ARM: values, attachments, errors with key paths."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import pytest

from appgw.config.errors import ConfigError
from appgw.config.loader import load_file
from appgw.waf import crs
from tests.unit.test_config_arm import GW, gateway, ref, template, write

pytestmark = pytest.mark.skipif(not crs.installed(), reason="needs modsecurity-crs")

TOML = """
firewall_policy = "base"
[listeners.web]
protocol = "http"
port = 8080
firewall_policy = "api"
[pools.p]
servers = ["127.0.0.2"]
[settings.s]
[path_maps.m]
default_pool = "p"
default_setting = "s"
[[path_maps.m.rules]]
name = "admin"
paths = ["/admin/*"]
pool = "p"
setting = "s"
firewall_policy = "admin"
[rules.r]
listener = "web"
kind = "path"
path_map = "m"
[waf_policies.base]
[waf_policies.admin]
mode = "prevention"
[waf_policies.api]
mode = "Prevention"
request_body_check = false
max_request_body_size_kb = 64
custom_block_status = 429
custom_block_body = "no"
[[waf_policies.api.managed_rule_sets]]
type = "Microsoft_DefaultRuleSet"
version = "2.1"
[[waf_policies.api.managed_rule_sets.rule_groups]]
name = "SQLI"
rules = [{ id = "942100", enabled = false }, { id = 942110, action = "Log" }]
[[waf_policies.api.exclusions]]
match_variable = "RequestHeaderNames"
selector_match_operator = "StartsWith"
selector = "x-token"
scopes = [{ rule_set_type = "Microsoft_DefaultRuleSet", version = "2.1", group = "SQLI" }]
[[waf_policies.api.custom_rules]]
name = "nobots"
priority = 5
action = "Block"
[[waf_policies.api.custom_rules.match_conditions]]
variables = ["RequestHeaders:User-Agent", { name = "QueryString" }]
operator = "Contains"
values = ["bot"]
negate = true
transforms = ["Lowercase", "UrlDecode"]
"""


def _load(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "gw.toml"
    path.write_text(text)
    return load_file(str(path))


def _errors(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    return info.value.errors


def test_toml_policies_and_attachments(tmp_path: Path) -> None:
    config = _load(tmp_path, TOML)
    assert config.firewall_policy == "base"
    assert config.listeners["web"].firewall_policy == "api"
    assert config.path_maps["m"].rules[0].firewall_policy == "admin"
    base, api = config.waf_policies["base"], config.waf_policies["api"]
    assert base.mode == "detection" and base.max_request_body_size_kb == 128
    assert base.managed_rule_sets[0].rule_set_type == "OWASP"
    assert api.mode == "prevention" and not api.request_body_check
    assert api.custom_block_status == 429 and api.custom_block_body == b"no"
    group = api.managed_rule_sets[0].groups[0]
    assert [(r.rule_id, r.enabled, r.action) for r in group.rules] == [
        ("942100", False, None),
        ("942110", True, "log"),
    ]
    assert api.exclusions[0].scopes[0].group == "SQLI"
    rule = api.custom_rules[0]
    assert rule.conditions[0].negate and rule.conditions[0].variables[0].selector == "User-Agent"


def test_toml_errors_name_the_key(tmp_path: Path) -> None:
    text = TOML.replace('mode = "prevention"', 'mode = "block"').replace(
        'firewall_policy = "admin"', 'firewall_policy = "nope"'
    )
    text = text.replace('name = "SQLI"', 'name = "SQLX"').replace("priority = 5", "priority = 0")
    text = text.replace('operator = "Contains"', 'operator = "Like"')
    text += '\n[waf_policies.bad]\nmax_request_body_size_kb = 1\ncolour = "red"\n'
    errors = _errors(tmp_path, text)
    assert "waf_policies.admin.mode: must be one of detection, prevention" in errors
    assert "path_maps.m.rules.admin.firewall_policy: no waf_policies entry named 'nope'" in errors
    assert any("no rule group 'SQLX' in Microsoft_DefaultRuleSet 2.1" in e for e in errors)
    assert any("custom rule nobots: priority must be 1..100" in e for e in errors)
    assert any("match_conditions[0].operator: must be one of any, ipmatch" in e for e in errors)
    assert "waf_policies.bad.max_request_body_size_kb: must be 8..2000" in errors
    assert "waf_policies.bad.colour: unknown key" in errors


POLICY = {
    "type": "Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies",
    "apiVersion": "2023-09-01",
    "name": "[parameters('wafName')]",
    "location": "westeurope",
    "properties": {
        "policySettings": {
            "state": "Enabled",
            "mode": "Prevention",
            "requestBodyCheck": True,
            "maxRequestBodySizeInKb": 128,
            "fileUploadLimitInMb": 100,
            "customBlockResponseStatusCode": 403,
            "customBlockResponseBody": base64.b64encode(b"<h1>blocked</h1>").decode(),
        },
        "managedRules": {
            "managedRuleSets": [
                {
                    "ruleSetType": "OWASP",
                    "ruleSetVersion": "3.2",
                    "ruleGroupOverrides": [
                        {
                            "ruleGroupName": "REQUEST-942-APPLICATION-ATTACK-SQLI",
                            "rules": [{"ruleId": "942100", "state": "Disabled"}],
                        }
                    ],
                }
            ],
            "exclusions": [
                {
                    "matchVariable": "RequestArgNames",
                    "selectorMatchOperator": "Equals",
                    "selector": "comment",
                    "exclusionManagedRuleSets": [
                        {
                            "ruleSetType": "OWASP",
                            "ruleSetVersion": "3.2",
                            "ruleGroups": [
                                {
                                    "ruleGroupName": "REQUEST-941-APPLICATION-ATTACK-XSS",
                                    "rules": [{"ruleId": "941100"}],
                                }
                            ],
                        }
                    ],
                }
            ],
        },
        "customRules": [
            {
                "name": "office",
                "priority": 1,
                "ruleType": "MatchRule",
                "action": "Allow",
                "matchConditions": [
                    {
                        "matchVariables": [{"variableName": "RemoteAddr"}],
                        "operator": "IPMatch",
                        "negationConditon": False,
                        "matchValues": ["10.0.0.0/8"],
                    }
                ],
            },
            {
                "name": "burst",
                "priority": 2,
                "ruleType": "RateLimitRule",
                "rateLimitDuration": "FiveMins",
                "rateLimitThreshold": 100,
                "groupByUserSession": [{"groupByVariables": [{"variableName": "ClientAddr"}]}],
                "action": "Block",
                "matchConditions": [
                    {
                        "matchVariables": [{"variableName": "RequestUri"}],
                        "operator": "BeginsWith",
                        "matchValues": ["/api"],
                    }
                ],
            },
        ],
    },
}
POLICY_ID = (
    "[resourceId('Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies',"
    " parameters('wafName'))]"
)


def test_arm_policy_resource_attached_to_a_listener(tmp_path: Path) -> None:
    gw = gateway()
    gw["properties"]["httpListeners"][0]["properties"]["firewallPolicy"] = {"id": POLICY_ID}
    doc = template(gw, parameters={"wafName": {"type": "string", "defaultValue": "waf1"}})
    doc["resources"].append(copy.deepcopy(POLICY))
    config = load_file(write(tmp_path, doc))
    assert config.warnings == ()
    assert config.listeners["web"].firewall_policy == "waf1"
    policy = config.waf_policies["waf1"]
    assert policy.mode == "prevention" and policy.custom_block_body == b"<h1>blocked</h1>"
    assert policy.managed_rule_sets[0].groups[0].rules[0].enabled is False
    assert policy.exclusions[0].scopes[0].rule_ids == ("941100",)
    assert [r.name for r in policy.custom_rules] == ["office", "burst"]
    assert policy.custom_rules[1].rate_limit_seconds == 300


def test_arm_legacy_configuration_and_missing_policy(tmp_path: Path) -> None:
    gw = gateway()
    gw["properties"]["webApplicationFirewallConfiguration"] = {
        "enabled": True,
        "firewallMode": "Prevention",
        "ruleSetType": "OWASP",
        "ruleSetVersion": "3.1",
        "disabledRuleGroups": [
            {"ruleGroupName": "REQUEST-942-APPLICATION-ATTACK-SQLI", "rules": [942100]},
            {"ruleGroupName": "REQUEST-941-APPLICATION-ATTACK-XSS"},
        ],
        "requestBodyCheck": True,
        "maxRequestBodySizeInKb": 128,
        "fileUploadLimitInMb": 100,
        "exclusions": [
            {
                "matchVariable": "RequestCookieNames",
                "selectorMatchOperator": "Equals",
                "selector": "session",
            }
        ],
    }
    config = load_file(write(tmp_path, gw))
    policy = config.waf_policies[config.firewall_policy]
    assert policy.mode == "prevention" and policy.managed_rule_sets[0].version == "3.1"
    groups = policy.managed_rule_sets[0].groups
    assert groups[0].rules[0].rule_id == "942100" and groups[1].disabled
    gw["properties"]["firewallPolicy"] = {
        "id": f"{GW}/x/ApplicationGatewayWebApplicationFirewallPolicies/waf9"
    }
    errors = pytest.raises(ConfigError, load_file, write(tmp_path, gw)).value.errors
    assert errors[0].startswith(
        "firewallPolicy: no ApplicationGatewayWebApplicationFirewallPolicies resource named 'waf9'"
    )
    assert "waf-policy show" in errors[0]
    del gw["properties"]["firewallPolicy"]
    gw["properties"]["webApplicationFirewallConfiguration"]["firewallMode"] = "Block"
    errors = pytest.raises(ConfigError, load_file, write(tmp_path, gw)).value.errors
    assert errors == [
        "webApplicationFirewallConfiguration.firewallMode: must be one of Detection, Prevention"
    ]
    assert ref  # the helpers come from test_config_arm


def test_bot_manager_rule_set_is_an_error_that_says_why(tmp_path: Path) -> None:
    gw = gateway()
    gw["properties"]["firewallPolicy"] = {"id": POLICY_ID}
    doc = template(gw, parameters={"wafName": {"type": "string", "defaultValue": "waf1"}})
    policy = copy.deepcopy(POLICY)
    policy["properties"]["managedRules"]["managedRuleSets"].append(
        {"ruleSetType": "Microsoft_BotManagerRuleSet", "ruleSetVersion": "1.0"}
    )
    doc["resources"].append(policy)
    errors = pytest.raises(ConfigError, load_file, write(tmp_path, doc)).value.errors
    assert len(errors) == 1
    assert "managedRuleSets[1]" in errors[0]
    assert "'Microsoft_BotManagerRuleSet': not available in appgw" in errors[0]
    assert "remove it from the policy" in errors[0]
