"""WAF policies in appgw's TOML: `[waf_policies.NAME]` and `firewall_policy`.

    firewall_policy = "strict"          # the gateway's (top level)
    [waf_policies.strict]
    mode = "prevention"
    [[waf_policies.strict.managed_rule_sets]]
    type = "OWASP"
    version = "3.2"

Listeners and path rules name theirs with `firewall_policy` too. The full
format is in docs/waf.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appgw.config import waf_checks as checks
from appgw.config.fields import Section, join
from appgw.config.model import Config
from appgw.config.waf import (
    CUSTOM_ACTIONS,
    EXCLUSION_VARIABLES,
    GEOIP_DATABASES,
    GROUP_BY,
    MATCH_VARIABLES,
    MODES,
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


def read(root: Section, base: Path) -> dict[str, Any]:
    """`waf_policies`, the gateway's `firewall_policy` and the `firewall_log`
    (relative to the configuration's directory), as Config fields."""
    policies: dict[str, WafPolicy] = {}
    table = root.get_section("waf_policies")
    if table is not None:
        for name in table.keys():
            s = table.sub(table.data[name], join("waf_policies", name))
            if s is not None:
                policies[name] = policy(name, s)
    log = root.get_opt_str("firewall_log")
    if log not in (None, "", "-"):
        log = str(base / Path(log).expanduser())
    v4, v6 = GEOIP_DATABASES
    geoip = (
        str(base / Path(root.get_str("geoip_database", v4)).expanduser()),
        str(base / Path(root.get_str("geoip_database_v6", v6)).expanduser()),
    )
    return {
        "waf_policies": policies,
        "firewall_policy": root.get_opt_str("firewall_policy"),
        "firewall_log": log or None,
        "geoip_databases": geoip,
    }


def check(config: Config, errors: list[str]) -> None:
    """References to policies resolve, and the machine can run them."""
    refs = [("firewall_policy", config.firewall_policy)]
    refs += [
        (f"listeners.{n}.firewall_policy", li.firewall_policy) for n, li in config.listeners.items()
    ]
    for map_name, path_map in config.path_maps.items():
        refs += [
            (f"path_maps.{map_name}.rules.{r.name}.firewall_policy", r.firewall_policy)
            for r in path_map.rules
        ]
    for path, name in refs:
        if name is not None and name not in config.waf_policies:
            errors.append(f"{path}: no waf_policies entry named {name!r}")
    if config.waf_policies:
        problem = checks.engine_problem()
        if problem:
            errors.append(f"waf_policies: {problem}")
        elif not errors:
            for name, message in checks.compile_problems(config.waf_policies):
                errors.append(f"waf_policies.{name}: {message}")
    for name, rule, message in checks.geo_problems(config):
        errors.append(f"waf_policies.{name}.custom_rules.{rule}: {message}")


def policy(name: str, s: Section) -> WafPolicy:
    d = WafPolicy(name)
    body = s.get_opt_str("custom_block_body")
    mode = checks.one_of(s, "mode", s.get_str("mode", d.mode), MODES, "detection, prevention")
    status = s.get_int("custom_block_status", d.custom_block_status)
    if not 200 <= status <= 599:
        s.error("custom_block_status", "must be 200..599")
    size = s.get_int("max_request_body_size_kb", d.max_request_body_size_kb)
    if not 8 <= size <= 2000:
        s.error("max_request_body_size_kb", "must be 8..2000")
    upload = s.get_int("file_upload_limit_mb", d.file_upload_limit_mb)
    if not 1 <= upload <= 4000:
        s.error("file_upload_limit_mb", "must be 1..4000")
    rule_sets = d.managed_rule_sets
    if s.has("managed_rule_sets"):
        rule_sets = tuple(_rule_set(r) for r in s.get_sections("managed_rule_sets"))
    result = WafPolicy(
        name=name,
        policy_id=f"waf_policies.{name}",
        enabled=s.get_bool("enabled", True),
        mode=mode,
        request_body_check=s.get_bool("request_body_check", d.request_body_check),
        request_body_enforcement=s.get_bool("request_body_enforcement", True),
        max_request_body_size_kb=size,
        file_upload_enforcement=s.get_bool("file_upload_enforcement", True),
        file_upload_limit_mb=upload,
        custom_block_status=status,
        custom_block_body=None if body is None else body.encode(),
        managed_rule_sets=rule_sets,
        exclusions=tuple(_exclusion(e) for e in s.get_sections("exclusions")),
        custom_rules=tuple(
            sorted(
                (_custom_rule(c) for c in s.get_sections("custom_rules")), key=lambda r: r.priority
            )
        ),
    )
    s.reject_unused()
    return result


def _rule_set(s: Section) -> ManagedRuleSet:
    groups = []
    for g in s.get_sections("rule_groups"):
        rules = []
        for r in g.get_sections("rules"):
            action = r.get_opt_str("action")
            if action is not None:
                action = checks.one_of(
                    r, "action", action, RULE_ACTIONS, "AnomalyScoring, Block, Log, Allow"
                )
            rule_id = r.raw("id")
            if not isinstance(rule_id, str | int) or isinstance(rule_id, bool):
                r.error("id", "required: a rule id")
                rule_id = ""
            rules.append(RuleOverride(str(rule_id), r.get_bool("enabled", True), action))
            r.reject_unused()
        groups.append(
            RuleGroupOverride(
                g.get_str("name", "", required=True), tuple(rules), g.get_bool("disabled", False)
            )
        )
        g.reject_unused()
    rs = ManagedRuleSet(s.get_str("type", "OWASP"), s.get_str("version", "3.2"), tuple(groups))
    s.reject_unused()
    checks.rule_set(s, None, rs)
    return rs


def _exclusion(s: Section) -> Exclusion:
    variable = checks.one_of(
        s,
        "match_variable",
        s.get_str("match_variable", "", required=True),
        EXCLUSION_VARIABLES,
        "Request{Header,Cookie,Arg}{Names,Keys,Values}",
    )
    operator = checks.one_of(
        s,
        "selector_match_operator",
        s.get_str("selector_match_operator", "Equals"),
        SELECTOR_OPERATORS,
        "Equals, StartsWith, EndsWith, Contains, EqualsAny",
    )
    scopes = []
    for c in s.get_sections("scopes"):
        group = c.get_opt_str("group")
        scopes.append(
            ExclusionScope(
                c.get_str("rule_set_type", "OWASP"),
                c.get_str("version", "3.2"),
                group,
                tuple(str(x) for x in c.get_list("rules")),
            )
        )
        c.reject_unused()
    e = Exclusion(variable, operator, s.get_str("selector", ""), tuple(scopes))
    s.reject_unused()
    checks.exclusion(s, None, e)
    return e


def _variable(s: Section, i: int, item: Any) -> MatchVariable | None:
    if isinstance(item, str):
        name, _, selector = item.partition(":")
        result = MatchVariable(name.lower(), selector or None)
    elif isinstance(item, dict):
        v = s.sub(item, s.key_path(f"variables[{i}]"))
        if v is None:
            return None
        result = MatchVariable(
            v.get_str("name", "", required=True).lower(), v.get_opt_str("selector")
        )
        v.reject_unused()
    else:
        s.error(f"variables[{i}]", "must be a string or a table")
        return None
    if result.name not in MATCH_VARIABLES:
        s.error(f"variables[{i}]", f"unknown match variable {result.name!r}")
    return result


def _custom_rule(s: Section) -> CustomRule:
    name = s.get_str("name", "", required=True)
    conditions = []
    for c in s.get_sections("match_conditions"):
        variables = [_variable(c, i, v) for i, v in enumerate(c.get_list("variables"))]
        transforms = tuple(t.lower() for t in c.get_strs("transforms"))
        for t in transforms:
            if t not in TRANSFORMS:
                c.error("transforms", f"unknown transform {t!r}")
        operator = checks.one_of(
            c, "operator", c.get_str("operator", "", required=True), OPERATORS, ", ".join(OPERATORS)
        )
        conditions.append(
            MatchCondition(
                tuple(v for v in variables if v is not None),
                operator,
                tuple(str(x) for x in c.get_list("values")),
                c.get_bool("negate", False),
                transforms,
            )
        )
        c.reject_unused()
    kind = checks.one_of(
        s,
        "rule_type",
        s.get_str("rule_type", "MatchRule"),
        ("matchrule", "ratelimitrule"),
        "MatchRule, RateLimitRule",
    )
    duration = s.get_str("rate_limit_duration", "OneMin").lower()
    if duration not in RATE_LIMIT_DURATIONS:
        s.error("rate_limit_duration", "must be OneMin or FiveMins")
    rule = CustomRule(
        name=name,
        priority=s.get_int("priority", 0, required=True),
        action=checks.one_of(
            s, "action", s.get_str("action", "", required=True), CUSTOM_ACTIONS, "Allow, Block, Log"
        ),
        conditions=tuple(conditions),
        rule_type=kind,
        enabled=s.get_bool("enabled", True),
        rate_limit_seconds=RATE_LIMIT_DURATIONS.get(duration, 60),
        rate_limit_threshold=s.get_int("rate_limit_threshold", 0),
        group_by=checks.one_of(
            s,
            "group_by",
            s.get_str("group_by", "ClientAddr"),
            GROUP_BY,
            "ClientAddr, GeoLocation, None",
        ),
    )
    s.reject_unused()
    checks.custom_rule(s, None, rule)
    return rule
