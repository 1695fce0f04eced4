"""A decision as Azure reports it (pure): firewall log lines and metric labels.

The log lines carry ApplicationGatewayFirewallLog's fields: one per rule
that matched (action Matched, or Blocked/Detected/Allowed for the rule
that decided), with the matched data in `details`, the request's trace id
as `transactionId`, and the policy with its scope.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from appgw.waf.firewall import Decision

_ACTION = {"Blocked": "Block", "Detected": "Log", "Allowed": "Allow", "Matched": "Log"}


def firewall_entries(
    decision: Decision,
    client: tuple[str, int],
    host: str,
    uri: str,
    trace_id: str,
    instance: str = "appgw",
) -> Iterator[dict[str, object]]:
    if not decision.entries and not decision.reason:
        return  # a clean request: no line (and no clock read)
    policy = decision.policy
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"
    common = {
        "timeStamp": stamp,
        "instanceId": instance,
        "clientIp": client[0],
        "clientPort": client[1],
        "requestUri": uri,
        "hostname": host,
        "transactionId": trace_id,
        "policyId": policy.policy_id or policy.name,
        "policyScope": decision.scope,
        "policyScopeName": decision.scope_name,
        "engine": "ModSecurity",
        "policyMode": policy.mode.capitalize(),
    }
    if decision.reason:
        yield {
            **common,
            "ruleSetType": "",
            "ruleSetVersion": "",
            "ruleId": "",
            "ruleGroup": "",
            "message": f"Request body size limit exceeded: {decision.reason}",
            "action": "Blocked",
            "site": "Global",
            "details": {"message": decision.reason, "data": "", "file": "", "line": ""},
        }
        return
    for e in decision.entries:
        yield {
            **common,
            "ruleSetType": e.rule_set_type,
            "ruleSetVersion": e.rule_set_version,
            "ruleId": e.rule_id,
            "ruleGroup": e.rule_group,
            "message": e.message,
            "action": e.action,
            "site": "Global",
            "details": {"message": e.message, "data": e.data, "file": e.file, "line": ""},
        }


def metric_labels(
    decision: Decision,
) -> tuple[tuple[str, ...], list[tuple[str, ...]], list[tuple[str, ...]]]:
    """(AzwafTotalRequests labels, AzwafSecRule labels, AzwafCustomRule labels)."""
    policy = decision.policy
    mode = policy.mode.capitalize()
    if decision.blocked:
        action = "Block"
    elif any(e.action == "Allowed" for e in decision.entries):
        action = "Allow"
    elif decision.entries:
        action = "Log"
    else:
        action = "Allow"
    total: tuple[str, ...] = (policy.name, decision.scope, mode, action)
    sec: list[tuple[str, ...]] = []
    custom: list[tuple[str, ...]] = []
    for e in decision.entries:
        if e.rule_set_type == "Custom":
            custom.append((policy.name, mode, _ACTION[e.action], e.rule_id))
        else:
            sec.append(
                (
                    policy.name,
                    mode,
                    _ACTION[e.action],
                    f"{e.rule_set_type}_{e.rule_set_version}",
                    e.rule_group,
                    e.rule_id,
                )
            )
    return total, sec, custom
