"""WAF policies in ARM: policy resources, `firewallPolicy` references, and the
gateway's older `webApplicationFirewallConfiguration`.

A template holds its policies as resources of type
Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies beside
the gateway; `firewallPolicy: {id}` on the gateway, a listener or a path
rule names one. `az network application-gateway show` output holds no
policy: such a reference is an error that says how to bring the policy in
(a template whose resources[] hold the gateway and the policy's
`az network application-gateway waf-policy show` output). Error paths name
a policy "firewallPolicies.NAME.policySettings.mode".
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from appgw.config import waf_checks as checks
from appgw.config.arm_deployments import deployed
from appgw.config.arm_template import Template
from appgw.config.arm_waf_legacy import LEGACY, legacy_policy
from appgw.config.fields import Section, join
from appgw.config.model import Config
from appgw.config.waf import (
    CUSTOM_ACTIONS,
    EXCLUSION_VARIABLES,
    GROUP_BY,
    MATCH_VARIABLES,
    OPERATORS,
    RATE_LIMIT_DURATIONS,
    RULE_ACTIONS,
    SELECTOR_OPERATORS,
    TRANSFORMS,
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

if TYPE_CHECKING:
    from appgw.config.arm_reader import ArmReader

POLICY_TYPE = "microsoft.network/applicationgatewaywebapplicationfirewallpolicies"
COLLECTION = "ApplicationGatewayWebApplicationFirewallPolicies"
# Accepted and ignored: Azure's bookkeeping, and what only Azure's portal shows.
_QUIET = frozenset(
    k.lower()
    for k in (
        "name id etag type resourceGroup provisioningState resourceState applicationGateways"
        " httpListeners pathBasedRules location tags apiVersion dependsOn comments"
        " systemData logScrubbing jsChallengeCookieExpirationInMins"
        " requestBodyInspectLimitInKB condition"
    ).split()
)


def policy_ref(arm: ArmReader, s: Section) -> str | None:
    """The policy a `firewallPolicy` reference names (a listener's, a path rule's)."""
    return arm.ref(s, "firewallPolicy", COLLECTION)


def apply(arm: ArmReader, document: Any, p: Section, config: Config) -> Config:
    """The config with the document's policies and the gateway's attachments."""
    policies: dict[str, WafPolicy] = {}
    for resource in _policy_resources(document, arm.template):
        s = arm.section(resource, "")
        name = s.get_str("name", "", required=True)
        path = f"firewallPolicies.{name}"
        props = s.get_section("properties")
        _finish(s)
        if props is None or not name:
            continue
        props.path = path
        policies[name] = _policy(arm, name, props)
    gateway = policy_ref(arm, p)
    legacy = p.get_section(LEGACY)
    if legacy is not None:
        old = legacy_policy(legacy, _finish)
        if old is not None and gateway is None:
            policies.setdefault(LEGACY, old)
            gateway = LEGACY
    config = attrs.evolve(config, waf_policies=policies, firewall_policy=gateway)
    _check_refs(arm, config, document)
    return config


def _policy_resources(document: Any, template: Template | None) -> list[Mapping[str, Any]]:
    if not isinstance(document, Mapping):
        return []
    if template is not None:  # a template: the policies a deployment would create
        return deployed(document, template, POLICY_TYPE)
    resources = next((v for k, v in document.items() if str(k).lower() == "resources"), None)
    if not isinstance(resources, list):
        return []
    found = []
    for r in resources:
        if isinstance(r, Mapping):
            kind = next((v for k, v in r.items() if str(k).lower() == "type"), "")
            if str(kind).lower() == POLICY_TYPE:
                found.append(r)
    return found


def _check_refs(arm: ArmReader, config: Config, document: Any) -> None:
    hint = (
        "; this file holds no such policy (put the gateway and the output of"
        " `az network application-gateway waf-policy show` in one template's resources[])"
    )
    refs = [("firewallPolicy", config.firewall_policy)]
    refs += [
        (f"httpListeners.{n}.firewallPolicy", li.firewall_policy)
        for n, li in config.listeners.items()
    ]
    for map_name, path_map in config.path_maps.items():
        refs += [
            (f"urlPathMaps.{map_name}.pathRules.{r.name}.firewallPolicy", r.firewall_policy)
            for r in path_map.rules
        ]
    for path, name in refs:
        if name and name not in config.waf_policies:
            arm.errors.append(f"{path}: no {COLLECTION} resource named {name!r}{hint}")
    if config.waf_policies:
        problem = checks.engine_problem()
        if problem:
            arm.errors.append(f"firewallPolicies: {problem}")
        elif not arm.errors:
            for name, message in checks.compile_problems(config.waf_policies):
                arm.errors.append(f"firewallPolicies.{name}: {message}")
    for name, rule, message in checks.geo_problems(config):
        arm.errors.append(f"firewallPolicies.{name}.customRules.{rule}: {message}")


def _finish(s: Section) -> None:
    for key in s.unused():
        if key.lower() not in _QUIET:
            s.error(key, "unknown key")


def _enabled(s: Section, key: str, default: bool) -> bool:
    value = s.get_str(key, "Enabled" if default else "Disabled")
    if value.lower() not in ("enabled", "disabled"):
        s.error(key, "must be Enabled or Disabled")
        return default
    return value.lower() == "enabled"


def _policy(arm: ArmReader, name: str, p: Section) -> WafPolicy:
    d = WafPolicy(name)
    settings = p.get_section("policySettings")
    values: dict[str, Any] = {}
    if settings is not None:
        values = _settings(settings, d)
        _finish(settings)
    rule_sets: tuple[ManagedRuleSet, ...] = ()
    exclusions: tuple[Exclusion, ...] = ()
    m = p.get_section("managedRules")
    if m is not None:
        rule_sets = tuple(_rule_set(r) for r in m.get_sections("managedRuleSets"))
        exclusions = tuple(_exclusion(e) for e in m.get_sections("exclusions"))
        _finish(m)
    custom = tuple(
        sorted((_custom_rule(c) for c in p.get_sections("customRules")), key=lambda r: r.priority)
    )
    _finish(p)
    return WafPolicy(
        name=name,
        policy_id=f"/{COLLECTION}/{name}",
        managed_rule_sets=rule_sets,
        exclusions=exclusions,
        custom_rules=custom,
        **values,
    )


def _settings(s: Section, d: WafPolicy) -> dict[str, Any]:
    mode = checks.one_of(
        s,
        "mode",
        s.get_str("mode", "Detection"),
        ("detection", "prevention"),
        "Detection, Prevention",
    )
    status = s.get_int("customBlockResponseStatusCode", d.custom_block_status)
    if not 200 <= status <= 599:
        s.error("customBlockResponseStatusCode", "must be 200..599")
    body = s.get_opt_str("customBlockResponseBody")
    raw = None
    if body:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            s.error("customBlockResponseBody", "must be base64 (as in Azure)")
    size = s.get_int("maxRequestBodySizeInKb", d.max_request_body_size_kb)
    if not 8 <= size <= 2000:
        s.error("maxRequestBodySizeInKb", "must be 8..2000")
    upload = s.get_int("fileUploadLimitInMb", d.file_upload_limit_mb)
    if not 1 <= upload <= 4000:
        s.error("fileUploadLimitInMb", "must be 1..4000")
    return {
        "enabled": _enabled(s, "state", True),
        "mode": mode,
        "request_body_check": s.get_bool("requestBodyCheck", True),
        "request_body_enforcement": s.get_bool("requestBodyEnforcement", True),
        "max_request_body_size_kb": size,
        "file_upload_enforcement": s.get_bool("fileUploadEnforcement", True),
        "file_upload_limit_mb": upload,
        "custom_block_status": status,
        "custom_block_body": raw,
    }


def _rule_set(s: Section) -> ManagedRuleSet:
    groups = []
    for g in s.get_sections("ruleGroupOverrides"):
        rules = []
        for r in g.get_sections("rules"):
            action = r.get_opt_str("action")
            if action is not None:
                action = checks.one_of(
                    r, "action", action, RULE_ACTIONS, "AnomalyScoring, Block, Log, Allow"
                )
            rules.append(RuleOverride(_rule_id(r, "ruleId"), _enabled(r, "state", True), action))
            _finish(r)
        groups.append(
            RuleGroupOverride(g.get_str("ruleGroupName", "", required=True), tuple(rules))
        )
        _finish(g)
    rs = ManagedRuleSet(
        s.get_str("ruleSetType", "OWASP", required=True),
        s.get_str("ruleSetVersion", "3.2", required=True),
        tuple(groups),
    )
    _finish(s)
    checks.rule_set(s, None, rs)
    return rs


def _rule_id(s: Section, key: str) -> str:
    value = s.raw(key)
    if isinstance(value, bool) or not isinstance(value, str | int):
        s.error(key, "required: a rule id")
        return ""
    return str(value)


def _exclusion(s: Section) -> Exclusion:
    variable = checks.one_of(
        s,
        "matchVariable",
        s.get_str("matchVariable", "", required=True),
        EXCLUSION_VARIABLES,
        "Request{Header,Cookie,Arg}{Names,Keys,Values}",
    )
    operator = checks.one_of(
        s,
        "selectorMatchOperator",
        s.get_str("selectorMatchOperator", "Equals"),
        SELECTOR_OPERATORS,
        "Equals, StartsWith, EndsWith, Contains, EqualsAny",
    )
    scopes = []
    for m in s.get_sections("exclusionManagedRuleSets"):
        kind, version = m.get_str("ruleSetType", "OWASP"), m.get_str("ruleSetVersion", "3.2")
        groups = m.get_sections("ruleGroups")
        if not groups:
            scopes.append(ExclusionScope(kind, version))
        for g in groups:
            rules = g.get_sections("rules")
            ids = tuple(_rule_id(r, "ruleId") for r in rules)
            scopes.append(ExclusionScope(kind, version, g.get_str("ruleGroupName", ""), ids))
            for r in rules:
                _finish(r)
            _finish(g)
        _finish(m)
    e = Exclusion(variable, operator, s.get_str("selector", ""), tuple(scopes))
    _finish(s)
    checks.exclusion(s, None, e)
    return e


def _custom_rule(s: Section) -> CustomRule:
    reported = len(s.errors)
    name = s.get_str("name", "", required=True)
    if name:
        s.path = join(s.path.rsplit("[", 1)[0], name)
    conditions = []
    for c in s.get_sections("matchConditions"):
        variables = []
        for v in c.get_sections("matchVariables"):
            variable = MatchVariable(
                v.get_str("variableName", "", required=True).lower(), v.get_opt_str("selector")
            )
            if variable.name not in MATCH_VARIABLES:
                v.error("variableName", f"unknown match variable {variable.name!r}")
            variables.append(variable)
            _finish(v)
        transforms = tuple(t.lower() for t in c.get_strs("transforms"))
        for t in transforms:
            if t not in TRANSFORMS:
                c.error("transforms", f"unknown transform {t!r}")
        operator = checks.one_of(
            c, "operator", c.get_str("operator", "", required=True), OPERATORS, ", ".join(OPERATORS)
        )
        # "negationConditon" is the REST API's own spelling.
        negate = c.get_bool("negationConditon", False) or c.get_bool("negationCondition", False)
        conditions.append(
            MatchCondition(
                tuple(variables), operator, c.get_strs("matchValues"), negate, transforms
            )
        )
        _finish(c)
    duration = s.get_str("rateLimitDuration", "OneMin").lower()
    if duration not in RATE_LIMIT_DURATIONS:
        s.error("rateLimitDuration", "must be OneMin or FiveMins")
    group_by = "clientaddr"
    for g in s.get_sections("groupByUserSession"):
        for v in g.get_sections("groupByVariables"):
            group_by = v.get_str("variableName", "ClientAddr").lower()
            if group_by not in GROUP_BY:
                v.error("variableName", "must be ClientAddr, GeoLocation or None")
            _finish(v)
        _finish(g)
    rule = CustomRule(
        name=name,
        priority=s.get_int("priority", 0, required=True),
        action=checks.one_of(
            s, "action", s.get_str("action", "", required=True), CUSTOM_ACTIONS, "Allow, Block, Log"
        ),
        conditions=tuple(conditions),
        rule_type=checks.one_of(
            s,
            "ruleType",
            s.get_str("ruleType", "MatchRule"),
            ("matchrule", "ratelimitrule"),
            "MatchRule, RateLimitRule",
        ),
        enabled=_enabled(s, "state", True),
        rate_limit_seconds=RATE_LIMIT_DURATIONS.get(duration, 60),
        rate_limit_threshold=s.get_int("rateLimitThreshold", 0),
        group_by=group_by,
    )
    _finish(s)
    if len(s.errors) == reported:  # else a value is missing: its error says so
        checks.custom_rule(s, None, rule)
    return rule
