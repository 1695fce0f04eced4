"""Validation of routing: redirects, rewrite rule sets, path maps and rules.

Part of validate.py's checks (see there), on the same Checks object.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from appgw.config.model import REDIRECT_STATUS, UNREWRITABLE_HEADERS, HeaderAction
from appgw.patterns import PatternError, compile_pattern

# Rewrite rules are entries of a list, not resources with ids: Azure takes
# names such as "Set X-Forwarded-For" (its own example's).
RULE_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,80}$")

if TYPE_CHECKING:
    from appgw.config.checks import Checks

RULE_KINDS = ("basic", "path")
REDIRECT_TYPES = tuple(REDIRECT_STATUS)
# Rewrite conditions test a request header, a response header or a server variable.
VARIABLE = re.compile(r"^(http_req_|http_resp_)[!#$%&'*+.^_`|~0-9A-Za-z-]+$|^var_[a-z_]+$")
PATH = re.compile(r"^/[^*?#]*\*?$")


def check_routing(checks: Checks) -> None:
    _redirects(checks)
    _rewrite_rule_sets(checks)
    _path_maps(checks)
    _rules(checks)


def _redirects(c: Checks) -> None:
    for name, r in c.config.redirects.items():
        names = (name,)
        c.choice("redirects.*.redirect_type", names, r.redirect_type, REDIRECT_TYPES)
        listener_key, url_key = (
            c.key("redirects.*.target_listener"),
            c.key("redirects.*.target_url"),
        )
        if r.target_listener is not None and r.target_url is not None:
            c.error("redirects.*.target_url", names, f"excludes {listener_key}")
        elif r.target_listener is None and r.target_url is None:
            c.error("redirects.*", names, f"needs {listener_key} or {url_key}")
        c.ref("redirects.*.target_listener", names, r.target_listener, "listeners")
        if r.target_url is not None:
            url = urlsplit(r.target_url)
            if url.scheme not in ("http", "https") or not url.netloc:
                c.error(
                    "redirects.*.target_url", names, "must be an absolute http:// or https:// URL"
                )


def _rewrite_rule_sets(c: Checks) -> None:
    for name, rule_set in c.config.rewrite_rule_sets.items():
        c.unique_names("rewrite_rule_sets.*.rules", (name,), rule_set.rules, RULE_NAME)
        for rule in rule_set.rules:
            if not rule.name:
                continue
            names = (name, rule.name)
            c.range("rewrite_rule_sets.*.rules.*.sequence", names, rule.sequence, 1, 1000)
            for i, condition in enumerate(rule.conditions):
                at = (*names, str(i))
                if not VARIABLE.match(condition.variable):
                    message = (
                        f"{condition.variable!r} is not http_req_<header>, "
                        "http_resp_<header> or var_<server variable>"
                    )
                    c.error("rewrite_rule_sets.*.rules.*.conditions[*].variable", at, message)
                try:
                    compile_pattern(condition.pattern, condition.ignore_case)
                except PatternError as e:
                    message = f"not an RE2 regular expression: {e}"
                    c.error("rewrite_rule_sets.*.rules.*.conditions[*].pattern", at, message)
            for key, actions in (
                ("request_headers", rule.request_headers),
                ("response_headers", rule.response_headers),
            ):
                for action in actions:
                    problem: str | None = None
                    if not re.match(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", action.name):
                        problem = f"{action.name!r} is not a header name"
                    elif action.name.lower() in UNREWRITABLE_HEADERS:
                        problem = f"{action.name} is the gateway's and cannot be rewritten"
                    elif action.name.lower() == "host" and not action.value:
                        problem = "Host cannot be removed"
                    if problem is None and action.matcher is not None:
                        problem = _matcher_problem(key, action)
                    if problem:
                        c.error(f"rewrite_rule_sets.*.rules.*.{key}", names, problem)


def _matcher_problem(key: str, action: HeaderAction) -> str | None:
    """What is wrong with a header action's value matcher, or None."""
    assert action.matcher is not None
    if key != "response_headers" or action.name.lower() != "set-cookie":
        return f"{action.name}: a value matcher is for the Set-Cookie response header only"
    try:
        compile_pattern(action.matcher.pattern, action.matcher.ignore_case)
    except PatternError as e:
        return f"{action.name}: value matcher: not an RE2 regular expression: {e}"
    return None


def _path(c: Checks, names: tuple[str, ...], path: str) -> None:
    if not PATH.match(path):
        message = f"{path!r} must start with '/' and may only end with '*'"
        c.error("path_maps.*.rules.*.paths", names, message)


def _path_maps(c: Checks) -> None:
    for name, path_map in c.config.path_maps.items():
        c.target(
            "path_maps.*",
            (name,),
            path_map.default_pool,
            path_map.default_setting,
            path_map.default_redirect,
            keys=("default_pool", "default_setting", "default_redirect"),
        )
        c.ref(
            "path_maps.*.default_rewrite_rule_set",
            (name,),
            path_map.default_rewrite_rule_set,
            "rewrite_rule_sets",
        )
        c.unique_names("path_maps.*.rules", (name,), path_map.rules)
        owners: dict[str, str] = {}
        for rule in path_map.rules:
            if not rule.name:
                continue
            names = (name, rule.name)
            if not rule.paths:
                c.error("path_maps.*.rules.*.paths", names, "required")
            for path in rule.paths:
                _path(c, names, path)
                folded = path.lower()  # paths match case-insensitively
                if folded in owners and owners[folded] != rule.name:
                    message = f"{path!r} is already a path of rule {owners[folded]!r}"
                    c.error("path_maps.*.rules.*.paths", names, message)
                owners.setdefault(folded, rule.name)
            c.target("path_maps.*.rules.*", names, rule.pool, rule.setting, rule.redirect)
            c.ref(
                "path_maps.*.rules.*.rewrite_rule_set",
                names,
                rule.rewrite_rule_set,
                "rewrite_rule_sets",
            )


def _rules(c: Checks) -> None:
    listener_rules: dict[str, str] = {}
    priorities: dict[int, str] = {}
    for name, rule in c.config.rules.items():
        names = (name,)
        c.ref("rules.*.listener", names, rule.listener, "listeners")
        if rule.listener in listener_rules:
            other = listener_rules[rule.listener]
            message = f"listener {rule.listener!r} is already used by rule {other!r}"
            c.error("rules.*.listener", names, message)
        elif rule.listener:
            listener_rules[rule.listener] = name
        c.choice("rules.*.kind", names, rule.kind, RULE_KINDS)
        c.range("rules.*.priority", names, rule.priority, 1, 20000)
        if rule.priority is not None:
            if rule.priority in priorities:
                message = (
                    f"{rule.priority} is already the priority of rule {priorities[rule.priority]!r}"
                )
                c.error("rules.*.priority", names, message)
            priorities.setdefault(rule.priority, name)
        path_kind = c.naming.show("rules.*.kind", "path")
        if rule.kind == "basic":
            c.target("rules.*", names, rule.pool, rule.setting, rule.redirect)
            if rule.path_map is not None:
                c.error("rules.*.path_map", names, f"only for {path_kind} rules")
        elif rule.kind == "path":
            if rule.path_map is None:
                c.error("rules.*.path_map", names, f"required for {path_kind} rules")
            c.ref("rules.*.path_map", names, rule.path_map, "path_maps")
            for key, value in (
                ("pool", rule.pool),
                ("setting", rule.setting),
                ("redirect", rule.redirect),
            ):
                if value is not None:
                    message = f"not for {path_kind} rules: the path map names the targets"
                    c.error(f"rules.*.{key}", names, message)
        c.ref("rules.*.rewrite_rule_set", names, rule.rewrite_rule_set, "rewrite_rule_sets")
