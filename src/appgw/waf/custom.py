"""Custom rules: match conditions, transforms, rate limits, countries.

Azure's custom rules run before the managed rules, lowest priority first.
A rule matches when all its conditions match; a condition matches when one
of its values matches one of its variables (after its transforms), or, with
`negate`, when none does. GeoMatch compares the country of an address
(waf/geo.py; "ZZ" when unknown) with its values. The first Allow or Block
that matches ends the evaluation; a Log rule is logged and evaluation goes
on. A rate-limit rule acts once the requests it matches from one client
address (or from every client: group by None, or per country: GeoLocation)
pass its threshold within its sliding window, counted for the whole gateway
(waf/rates.py).
"""

from __future__ import annotations

import html
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import parse_qsl, quote, unquote_plus

from attrs import frozen

from appgw.config.waf import CustomRule, MatchCondition
from appgw.patterns import Pattern, compile_pattern
from appgw.waf import rates
from appgw.waf.geo import Countries


@frozen
class Facts:
    """What custom rules can look at in one request (text, decoded as latin-1)."""

    remote_addr: str
    socket_addr: str
    method: str
    uri: str
    query: str
    headers: Mapping[str, str]  # lowercased names
    cookies: Mapping[str, str]
    body: str = ""
    post_args: Mapping[str, str] = {}


_TRANSFORMS: dict[str, Callable[[str], str]] = {
    "lowercase": str.lower,
    "uppercase": str.upper,
    "trim": str.strip,
    "urldecode": unquote_plus,
    "urlencode": lambda v: quote(v, safe=""),
    "removenulls": lambda v: v.replace("\0", ""),
    "htmlentitydecode": html.unescape,
}


def form_args(body: str) -> dict[str, str]:
    return dict(parse_qsl(body, keep_blank_values=True))


class CompiledCondition:
    def __init__(self, condition: MatchCondition, countries: Countries | None = None) -> None:
        self.condition = condition
        self.operator = condition.operator.lower()
        self.transforms = [_TRANSFORMS[t.lower()] for t in condition.transforms]
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.patterns: list[Pattern] = []
        self.numbers: list[float] = []
        self.countries = countries
        self.codes = frozenset(v.upper() for v in condition.values)
        if self.operator == "ipmatch":
            self.networks = [
                ipaddress.ip_network(v.strip(), strict=False) for v in condition.values
            ]
        elif self.operator == "regex":
            self.patterns = [compile_pattern(v) for v in condition.values]
        elif self.operator.startswith(("lessthan", "greaterthan")):
            self.numbers = [float(v) for v in condition.values]

    def values_of(self, facts: Facts) -> list[str]:
        found: list[str] = []
        for variable in self.condition.variables:
            name, selector = variable.name.lower(), variable.selector
            if name == "remoteaddr":
                found.append(facts.remote_addr)
            elif name == "socketaddr":
                found.append(facts.socket_addr)
            elif name == "requestmethod":
                found.append(facts.method)
            elif name == "querystring":
                found.append(facts.query)
            elif name == "requesturi":
                found.append(facts.uri)
            elif name == "requestbody":
                found.append(facts.body)
            else:
                table = {
                    "requestheaders": facts.headers,
                    "requestcookies": facts.cookies,
                    "postargs": facts.post_args,
                }[name]
                if selector is None:
                    found += table.values()
                else:
                    key = selector.lower() if name == "requestheaders" else selector
                    if key in table:
                        found.append(table[key])
        return found

    def matches(self, facts: Facts) -> bool:
        values = self.values_of(facts)
        for transform in self.transforms:
            values = [transform(v) for v in values]
        hit = any(self._one(v) for v in values) if self.operator != "any" else True
        return hit != self.condition.negate

    def _one(self, value: str) -> bool:
        op, wanted = self.operator, self.condition.values
        if op == "ipmatch":
            try:
                address = ipaddress.ip_address(value.strip())
            except ValueError:
                return False
            return any(address in n for n in self.networks if n.version == address.version)
        if op == "geomatch":
            assert self.countries is not None  # a rule that uses countries is given them
            return self.countries.country(value.strip()) in self.codes
        if op == "equal":
            return value in wanted
        if op == "contains":
            return any(w in value for w in wanted)
        if op == "beginswith":
            return any(value.startswith(w) for w in wanted)
        if op == "endswith":
            return any(value.endswith(w) for w in wanted)
        if op == "regex":
            return any(p.search(value) is not None for p in self.patterns)
        try:
            number = float(value)
        except ValueError:
            return False
        compare = {
            "lessthan": number.__lt__,
            "greaterthan": number.__gt__,
            "lessthanorequal": number.__le__,
            "greaterthanorequal": number.__ge__,
        }[op]
        return any(compare(n) for n in self.numbers)


class CompiledRule:
    def __init__(self, rule: CustomRule, policy: str, countries: Countries | None = None) -> None:
        self.rule = rule
        self.policy = policy
        self.countries = countries
        self.action = rule.action.lower()
        self.conditions = [CompiledCondition(c, countries) for c in rule.conditions]
        self.rate_limit = rule.rule_type.lower() == "ratelimitrule"

    def matches(self, facts: Facts, now: float, listener: str) -> bool:
        if not all(c.matches(facts) for c in self.conditions):
            return False
        if not self.rate_limit:
            return True
        rule = self.rule
        client = ""
        if rule.group_by == "clientaddr":
            client = facts.remote_addr
        elif rule.group_by == "geolocation" and self.countries is not None:
            client = self.countries.country(facts.remote_addr)
        key = rates.key_of(self.policy, rule.name, listener, rule.group_by, client)
        return rates.table().over(key, now, rule.rate_limit_seconds, rule.rate_limit_threshold)


def compile_rules(
    rules: Sequence[CustomRule], policy: str, countries: Callable[[], Countries] | None = None
) -> list[CompiledRule]:
    """The enabled rules by priority; `countries` gives the lookup to those that need it."""
    ordered = sorted((r for r in rules if r.enabled), key=lambda r: r.priority)
    return [
        CompiledRule(r, policy, countries() if countries and r.uses_countries else None)
        for r in ordered
    ]


def evaluate(
    rules: Sequence[CompiledRule], facts: Facts, now: float, listener: str
) -> list[CompiledRule]:
    """The rules that matched, in order; the last is an Allow or Block if one matched.

    Rate limits count per listener, as Azure's do per endpoint (waf/rates.py)."""
    matched = []
    for rule in rules:
        if rule.matches(facts, now, listener):
            matched.append(rule)
            if rule.action in ("allow", "block"):
                break
    return matched
