"""The gateway's older WAF settings, `webApplicationFirewallConfiguration`, as a policy.

It applies gateway-wide when the gateway names no `firewallPolicy`
(arm_waf.py). Its rule set, disabled rule groups (a group without rules is
disabled whole), exclusions (on every managed rule) and body settings map
onto a WafPolicy named after the key.
"""

from __future__ import annotations

from collections.abc import Callable

from appgw.config import waf_checks as checks
from appgw.config.fields import Section
from appgw.config.waf import (
    EXCLUSION_VARIABLES,
    SELECTOR_OPERATORS,
    Exclusion,
    ManagedRuleSet,
    RuleGroupOverride,
    RuleOverride,
    WafPolicy,
)

LEGACY = "webApplicationFirewallConfiguration"


def legacy_policy(s: Section, finish: Callable[[Section], None]) -> WafPolicy | None:
    """The gateway's webApplicationFirewallConfiguration, as a policy (None: disabled)."""
    d = WafPolicy(LEGACY)
    enabled = s.get_bool("enabled", False)
    mode = checks.one_of(
        s,
        "firewallMode",
        s.get_str("firewallMode", "Detection"),
        ("detection", "prevention"),
        "Detection, Prevention",
    )
    kind = s.get_str("ruleSetType", "OWASP")
    version = s.get_str("ruleSetVersion", "3.2")
    groups = []
    for g in s.get_sections("disabledRuleGroups"):
        ids = [str(i) for i in g.get_list("rules")]
        name = g.get_str("ruleGroupName", "", required=True)
        groups.append(
            RuleGroupOverride(
                name, tuple(RuleOverride(i, enabled=False) for i in ids), disabled=not ids
            )
        )
        finish(g)
    exclusions = []
    for e in s.get_sections("exclusions"):
        exclusion = Exclusion(
            checks.one_of(
                e,
                "matchVariable",
                e.get_str("matchVariable", "", required=True),
                EXCLUSION_VARIABLES,
                "Request{Header,Cookie,Arg}{Names,Keys,Values}",
            ),
            checks.one_of(
                e,
                "selectorMatchOperator",
                e.get_str("selectorMatchOperator", "Equals"),
                SELECTOR_OPERATORS,
                "Equals, StartsWith, EndsWith, Contains, EqualsAny",
            ),
            e.get_str("selector", ""),
        )
        checks.exclusion(e, None, exclusion)
        exclusions.append(exclusion)
        finish(e)
    size = s.get_int("maxRequestBodySizeInKb", s.get_int("maxRequestBodySize", 128))
    rs = ManagedRuleSet(kind, version, tuple(groups))
    checks.rule_set(s, None, rs)
    policy = WafPolicy(
        name=LEGACY,
        policy_id=LEGACY,
        enabled=enabled,
        mode=mode,
        request_body_check=s.get_bool("requestBodyCheck", True),
        max_request_body_size_kb=size,
        file_upload_limit_mb=s.get_int("fileUploadLimitInMb", d.file_upload_limit_mb),
        managed_rule_sets=(rs,),
        exclusions=tuple(exclusions),
    )
    finish(s)
    return policy if enabled else None
