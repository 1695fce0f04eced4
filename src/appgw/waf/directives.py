"""A WAF policy's managed rules as ModSecurity directives (pure).

What ModSecurity runs for one policy: the engine in DetectionOnly (appgw
decides, as Azure does, from the rules that matched: scoring.py), the
request body inspected or not (`request_body_check`), CRS's own blocking
threshold out of reach so that its evaluation rules never fire, CRS's
request rules, then the policy's disabled rules and groups
(`SecRuleRemoveById`) and its exclusions (`SecRuleUpdateTargetById` for
every rule in scope). Responses are not inspected (Azure does not).

Two policies with the same text share one compiled rule set.
"""

from __future__ import annotations

import re

from appgw.config.waf import Exclusion, WafPolicy
from appgw.waf.crs import CRS_RULES, CRS_SETUP, RuleSetTable

# Exclusion match variable -> ModSecurity collection (Names: the legacy form,
# which excludes the value of the named field; Keys: the name itself).
COLLECTIONS = {
    "requestheadernames": "REQUEST_HEADERS",
    "requestheaderkeys": "REQUEST_HEADERS_NAMES",
    "requestheadervalues": "REQUEST_HEADERS",
    "requestcookienames": "REQUEST_COOKIES",
    "requestcookiekeys": "REQUEST_COOKIES_NAMES",
    "requestcookievalues": "REQUEST_COOKIES",
    "requestargnames": "ARGS",
    "requestargkeys": "ARGS_NAMES",
    "requestargvalues": "ARGS",
}
# Characters a selector may hold: what a directive can carry without quoting trouble.
SELECTOR = re.compile(r"^[^\s\"',|\\/:]{1,256}$")

_BASE = f"""\
SecRuleEngine DetectionOnly
SecRequestBodyAccess @BODY@
SecRequestBodyLimit @LIMIT@
SecRequestBodyNoFilesLimit @LIMIT@
SecRequestBodyLimitAction ProcessPartial
SecResponseBodyAccess Off
SecAuditEngine Off
SecPcreMatchLimit 100000
SecPcreMatchLimitRecursion 100000
SecRule REQUEST_HEADERS:Content-Type "@rx (?:application(?:/soap\\+|/)|text/)xml" \
 "id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"
SecRule REQUEST_HEADERS:Content-Type "@rx application/json" \
 "id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"
SecRule REQBODY_ERROR "!@eq 0" \
 "id:200002,phase:2,t:none,log,pass,severity:2,msg:'Failed to parse request body.',\
logdata:'%{{reqbody_error_msg}}'"
SecRule MULTIPART_STRICT_ERROR "!@eq 0" \
 "id:200003,phase:2,t:none,log,pass,severity:2,\
msg:'Multipart request body failed strict validation'"
Include {CRS_SETUP}
SecAction "id:900110,phase:1,nolog,pass,t:none,\
setvar:tx.inbound_anomaly_score_threshold=1000000,\
setvar:tx.outbound_anomaly_score_threshold=1000000"
Include {CRS_RULES}/REQUEST-*.conf
"""


def rules_text(policy: WafPolicy, table: RuleSetTable) -> str:
    """The directives of a policy's managed rules."""
    limit = max(policy.max_request_body_size_kb, 1) * 1024
    if policy.file_upload_limit_mb * 1024 * 1024 > limit:
        limit = policy.file_upload_limit_mb * 1024 * 1024
    body = "On" if policy.request_body_check else "Off"
    lines = [_BASE.replace("@BODY@", body).replace("@LIMIT@", str(limit))]
    removed: list[str] = []
    for rule_set in policy.managed_rule_sets:
        for group in rule_set.groups:
            ids = table.group_ids(rule_set.rule_set_type, group.name) or ()
            if group.disabled:
                removed += ids
            removed += [r.rule_id for r in group.rules if not r.enabled]
    for start in range(0, len(removed), 50):
        lines.append("SecRuleRemoveById " + " ".join(removed[start : start + 50]))
    for exclusion in policy.exclusions:
        target = exclusion_target(exclusion)
        for rule_id in exclusion_rules(exclusion, table):
            if rule_id not in removed:
                lines.append(f'SecRuleUpdateTargetById {rule_id} "!{target}"')
    return "\n".join(lines) + "\n"


def exclusion_target(exclusion: Exclusion) -> str:
    """`ARGS:name`, `ARGS:/^prefix/`, or the whole collection for EqualsAny."""
    collection = COLLECTIONS[exclusion.match_variable.lower()]
    operator = exclusion.selector_match_operator.lower()
    selector = exclusion.selector
    if operator == "equalsany":
        return collection
    if operator == "equals":
        return f"{collection}:{selector}"
    escaped = re.escape(selector)
    pattern = {"startswith": f"^{escaped}", "endswith": f"{escaped}$"}.get(operator, escaped)
    return f"{collection}:/{pattern}/"


def exclusion_rules(exclusion: Exclusion, table: RuleSetTable) -> tuple[str, ...]:
    """The rule ids an exclusion applies to: its scopes, or every managed rule."""
    if not exclusion.scopes:
        return table.all_ids()
    ids: list[str] = []
    for scope in exclusion.scopes:
        if scope.rule_ids:
            ids += scope.rule_ids
        elif scope.group is not None:
            ids += table.group_ids(scope.rule_set_type, scope.group) or ()
        else:
            ids += table.all_ids()
    return tuple(dict.fromkeys(ids))
