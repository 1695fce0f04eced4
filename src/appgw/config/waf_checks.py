"""Checks shared by both WAF readers: allowed values, rule set tables, the engine.

Each check reports through a Section, so the message names the key path in
the user's own file.
"""

from __future__ import annotations

import ctypes.util
import ipaddress
from collections.abc import Iterable, Mapping

from appgw.config.fields import Section
from appgw.config.model import Config
from appgw.config.waf import (
    GEO_VARIABLES,
    CustomRule,
    Exclusion,
    ManagedRuleSet,
    MatchCondition,
    WafPolicy,
)
from appgw.patterns import PatternError, compile_pattern


def one_of(s: Section, key: str, value: str, allowed: Iterable[str], shown: str) -> str:
    """`value` lowercased if allowed, else reported ("must be one of ...")."""
    if value.lower() not in tuple(allowed):
        s.error(key, f"must be one of {shown}", placeholder=True)
    return value.lower()


def engine_problem() -> str | None:
    """Why this machine cannot run a WAF, or None."""
    from appgw.waf import crs

    if ctypes.util.find_library("modsecurity") is None:
        try:
            ctypes.CDLL(crs.LIBRARY)
        except OSError:
            return f"the WAF needs ModSecurity v3 ({crs.LIBRARY} not found; {crs.INSTALL_HINT})"
    if not crs.installed():
        return (
            f"the WAF needs the OWASP Core Rule Set ({crs.CRS_RULES} not found; {crs.INSTALL_HINT})"
        )
    try:
        import cffi  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return "the WAF needs the cffi package (pip install cffi)"
    return None


def compile_problems(policies: Mapping[str, WafPolicy]) -> list[tuple[str, str]]:
    """(policy name, ModSecurity's complaint) for each policy whose rules it refuses,
    so that a worker never starts on rules it cannot load."""
    from appgw.waf import crs
    from appgw.waf.directives import rules_text
    from appgw.waf.engine import EngineUnavailable, RulesError, engine

    problems = []
    seen: set[str] = set()
    for name, policy in policies.items():
        if not policy.managed_rule_sets:
            continue
        text = rules_text(policy, crs.table())
        if text in seen:
            continue
        seen.add(text)
        try:
            engine().compile(text)
        except (RulesError, EngineUnavailable) as e:
            problems.append((name, f"ModSecurity refused the policy's rules: {e}"))
    return problems


def rule_set(s: Section, key: str | None, rs: ManagedRuleSet) -> None:
    """The type and version exist, and every group and rule overridden is in them."""
    from appgw.waf import crs

    versions = crs.VERSIONS.get(rs.rule_set_type.lower())
    why = crs.MICROSOFT_ONLY.get(rs.rule_set_type.lower())
    if why is not None:
        s.error(
            key,
            f"rule set type {rs.rule_set_type!r}: not available in appgw ({why});"
            " remove it from the policy to run its other rule sets locally",
        )
        return
    if versions is None:
        s.error(
            key, f"rule set type {rs.rule_set_type!r}: must be OWASP or Microsoft_DefaultRuleSet"
        )
        return
    if rs.version not in versions:
        s.error(
            key, f"{rs.rule_set_type} version {rs.version!r}: must be one of {', '.join(versions)}"
        )
    if not crs.installed():
        return
    table = crs.table()
    for group in rs.groups:
        if group.name.lower() in crs.UNAVAILABLE_GROUPS:
            s.error(key, f"rule group {group.name!r} is Microsoft's own and not available locally")
            continue
        ids = table.group_ids(rs.rule_set_type, group.name)
        if ids is None:
            s.error(key, f"no rule group {group.name!r} in {rs.rule_set_type} {rs.version}")
            continue
        for rule in group.rules:
            if rule.rule_id not in ids:
                s.error(key, f"no rule {rule.rule_id} in group {group.name}")


def exclusion(s: Section, key: str | None, e: Exclusion) -> None:
    from appgw.waf import crs
    from appgw.waf.directives import SELECTOR

    if e.selector_match_operator.lower() != "equalsany" and not SELECTOR.match(e.selector):
        s.error(
            key,
            f"selector {e.selector!r}: 1..256 characters without spaces, quotes,"
            " commas, colons, slashes or |",
        )
    if not crs.installed():
        return
    table = crs.table()
    for scope in e.scopes:
        if scope.group is not None and table.group_ids(scope.rule_set_type, scope.group) is None:
            s.error(key, f"no rule group {scope.group!r} in {scope.rule_set_type}")


def geo_problems(config: Config) -> list[tuple[str, str, str]]:
    """(policy, custom rule, why) for each rule that needs countries this machine
    cannot look up: never a GeoMatch rule that silently matches nothing."""
    from appgw.waf import geo

    wanted = [
        (name, rule.name)
        for name, policy in config.waf_policies.items()
        for rule in policy.custom_rules
        if rule.uses_countries
    ]
    problem = geo.problem(config.geoip_databases) if wanted else None
    if problem is None:
        return []
    return [(name, rule, f"GeoMatch needs countries: {problem}") for name, rule in wanted]


def custom_rule(s: Section, key: str | None, rule: CustomRule) -> None:
    if not 1 <= rule.priority <= 100:
        s.error(key, f"custom rule {rule.name}: priority must be 1..100")
    if rule.rule_type == "ratelimitrule" and rule.rate_limit_threshold < 1:
        s.error(key, f"custom rule {rule.name}: a rate limit rule needs a threshold of 1 or more")
    if not rule.conditions:
        s.error(key, f"custom rule {rule.name}: needs at least one match condition")
    for i, c in enumerate(rule.conditions):
        problem = condition_problem(c)
        if problem:
            s.error(key, f"custom rule {rule.name}: match condition {i}: {problem}")


def condition_problem(c: MatchCondition) -> str | None:
    op = c.operator
    if op != "any" and not c.values:
        return "needs match values"
    if op == "geomatch":
        if any(v.name not in GEO_VARIABLES for v in c.variables):
            return "GeoMatch looks at RemoteAddr or SocketAddr only"
        codes = [v for v in c.values if not (len(v) == 2 and v.isascii() and v.isalpha())]
        if codes:
            return f"GeoMatch values are two-letter country codes, not {codes[0]!r}"
    try:
        if op == "ipmatch":
            for value in c.values:
                ipaddress.ip_network(value.strip(), strict=False)
        elif op == "regex":
            for value in c.values:
                compile_pattern(value)
        elif op.startswith(("lessthan", "greaterthan")):
            for value in c.values:
                float(value)
    except PatternError as e:
        return f"bad regular expression: {e}"
    except ValueError as e:
        return f"bad match value: {e}"
    return None
