"""Rewrite rule sets in appgw's TOML: `[rewrite_rule_sets.NAME]` with
`[[rewrite_rule_sets.NAME.rules]]`, their conditions, header actions (a
value, or a value with a matcher for Set-Cookie) and URL action."""

from __future__ import annotations

from collections.abc import Mapping

from appgw.config.fields import Section, join
from appgw.config.model import (
    HeaderAction,
    RewriteCondition,
    RewriteRule,
    RewriteRuleSet,
    UrlAction,
    ValueMatcher,
)


def rewrite_rule_set(name: str, s: Section) -> RewriteRuleSet:
    rules = [_rewrite_rule(rs, s.path) for rs in s.get_sections("rules")]
    s.reject_unused()
    return RewriteRuleSet(name, tuple(sorted(rules, key=lambda r: r.sequence)))

def _rewrite_rule(s: Section, parent: str) -> RewriteRule:
    name = sub_name(s, parent, "rules")
    conditions = []
    for c in s.get_sections("conditions"):
        conditions.append(
            RewriteCondition(
                variable=c.get_str("variable", "", required=True),
                pattern=c.get_str("pattern", "", required=True),
                ignore_case=c.get_bool("ignore_case", True),
                negate=c.get_bool("negate", False),
            )
        )
        c.reject_unused()
    url = None
    u = s.get_section("url")
    if u is not None:
        url = UrlAction(
            path=u.get_opt_str("path"),
            query_string=u.get_opt_str("query_string"),
            reroute=u.get_bool("reroute", False),
        )
        u.reject_unused()
    rule = RewriteRule(
        name=name,
        sequence=s.get_int("sequence", 100),
        conditions=tuple(conditions),
        request_headers=_headers(s.get_section("request_headers")),
        response_headers=_headers(s.get_section("response_headers")),
        url=url,
    )
    s.reject_unused()
    return rule


def sub_name(s: Section, parent: str, key: str) -> str:
    """The `name` of an entry of an array of tables; later errors name it."""
    name = s.get_str("name", "", required=True)
    if name:
        s.path = join(parent, f"{key}.{name}")
    return name


def _headers(s: Section | None) -> tuple[HeaderAction, ...]:
    """Header name = value, or = { value = ..., matcher = { pattern = ... } }."""
    if s is None:
        return ()
    actions = []
    for name in s.keys():
        if not isinstance(s.data[name], Mapping):
            actions.append(HeaderAction(name, s.get_str(name, "")))
            continue
        h = s.sub(s.data[name], s.key_path(name))
        if h is None:
            continue
        value = h.get_str("value", "")
        matcher = None
        m = h.get_section("matcher")
        if m is not None:
            matcher = ValueMatcher(
                pattern=m.get_str("pattern", "", required=True),
                ignore_case=m.get_bool("ignore_case", False),
                negate=m.get_bool("negate", False),
            )
            m.reject_unused()
        h.reject_unused()
        actions.append(HeaderAction(name, value, matcher))
    return tuple(actions)
