"""Web Application Firewall policies, as frozen values.

One `WafPolicy` is what Application Gateway calls a WAF policy
(`Microsoft.Network/ApplicationGatewayWebApplicationFirewallPolicies`);
the gateway's older `webApplicationFirewallConfiguration` is read into one
too. A policy attaches to the gateway, a listener or a path rule
(`firewall_policy` on each); the most specific one wins. Both loaders
(toml_waf.py, arm_waf.py) build these; validate_waf.py checks them.
"""

from __future__ import annotations

from attrs import frozen

MODES = ("detection", "prevention")
# Managed rule actions of CRS 3.x rule sets (Azure's ActionType).
RULE_ACTIONS = ("anomalyscoring", "block", "log", "allow")
CUSTOM_ACTIONS = ("allow", "block", "log")
# Exclusion match variables (Azure's names, lowercased).
EXCLUSION_VARIABLES = (
    "requestheadernames",
    "requestheaderkeys",
    "requestheadervalues",
    "requestcookienames",
    "requestcookiekeys",
    "requestcookievalues",
    "requestargnames",
    "requestargkeys",
    "requestargvalues",
)
SELECTOR_OPERATORS = ("equals", "startswith", "endswith", "contains", "equalsany")
MATCH_VARIABLES = (
    "remoteaddr",
    "socketaddr",
    "requestmethod",
    "querystring",
    "postargs",
    "requesturi",
    "requestheaders",
    "requestbody",
    "requestcookies",
)
OPERATORS = (
    "any",
    "ipmatch",
    "equal",
    "contains",
    "lessthan",
    "greaterthan",
    "lessthanorequal",
    "greaterthanorequal",
    "beginswith",
    "endswith",
    "regex",
    "geomatch",
)
# The variables GeoMatch looks up: client addresses.
GEO_VARIABLES = ("remoteaddr", "socketaddr")
TRANSFORMS = (
    "lowercase",
    "uppercase",
    "trim",
    "urldecode",
    "urlencode",
    "removenulls",
    "htmlentitydecode",
)
# Debian's GeoIP country databases (geoip-database): IPv4, IPv6.
GEOIP_DATABASES = ("/usr/share/GeoIP/GeoIP.dat", "/usr/share/GeoIP/GeoIPv6.dat")
RATE_LIMIT_DURATIONS = {"onemin": 60, "fivemins": 300}
GROUP_BY = ("clientaddr", "geolocation", "none")


@frozen
class RuleOverride:
    """One managed rule turned off or given another action."""

    rule_id: str
    enabled: bool = True
    action: str | None = None  # one of RULE_ACTIONS; None: the rule set's (anomaly scoring)


@frozen
class RuleGroupOverride:
    """A managed rule group: every rule off (no rules listed, disabled), or some rules."""

    name: str
    rules: tuple[RuleOverride, ...] = ()
    disabled: bool = False  # the whole group


@frozen
class ManagedRuleSet:
    rule_set_type: str = "OWASP"  # "OWASP" | "Microsoft_DefaultRuleSet"
    version: str = "3.2"
    groups: tuple[RuleGroupOverride, ...] = ()


@frozen
class ExclusionScope:
    """Where an exclusion applies: a rule set, one of its groups, or some rules."""

    rule_set_type: str
    version: str
    group: str | None = None
    rule_ids: tuple[str, ...] = ()


@frozen
class Exclusion:
    match_variable: str  # one of EXCLUSION_VARIABLES
    selector_match_operator: str  # one of SELECTOR_OPERATORS
    selector: str
    scopes: tuple[ExclusionScope, ...] = ()  # empty: every managed rule


@frozen
class MatchVariable:
    name: str  # one of MATCH_VARIABLES
    selector: str | None = None  # a header or cookie name, a post argument


@frozen
class MatchCondition:
    variables: tuple[MatchVariable, ...]
    operator: str  # one of OPERATORS
    values: tuple[str, ...] = ()
    negate: bool = False
    transforms: tuple[str, ...] = ()


@frozen
class CustomRule:
    name: str
    priority: int
    action: str  # one of CUSTOM_ACTIONS
    conditions: tuple[MatchCondition, ...] = ()
    rule_type: str = "matchrule"  # "matchrule" | "ratelimitrule"
    enabled: bool = True
    rate_limit_seconds: int = 60
    rate_limit_threshold: int = 0
    group_by: str = "clientaddr"

    @property
    def uses_countries(self) -> bool:
        """GeoMatch conditions, or rate limits counted per country."""
        geo = any(c.operator == "geomatch" for c in self.conditions)
        return geo or (self.rule_type == "ratelimitrule" and self.group_by == "geolocation")


@frozen
class WafPolicy:
    """A WAF policy. The defaults are Application Gateway's."""

    name: str
    policy_id: str = ""  # the resource id, for the firewall log
    enabled: bool = True
    mode: str = "detection"  # one of MODES
    request_body_check: bool = True
    request_body_enforcement: bool = True
    max_request_body_size_kb: int = 128
    file_upload_enforcement: bool = True
    file_upload_limit_mb: int = 100
    custom_block_status: int = 403
    custom_block_body: bytes | None = None
    managed_rule_sets: tuple[ManagedRuleSet, ...] = (ManagedRuleSet(),)
    exclusions: tuple[Exclusion, ...] = ()
    custom_rules: tuple[CustomRule, ...] = ()  # sorted by priority
