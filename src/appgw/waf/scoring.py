"""From matched rules to a decision, as Azure's CRS 3.x rule sets decide (pure).

Anomaly scoring: each managed rule that matches adds its severity's score
(critical 5, error 4, warning 3, notice 2); a request whose total reaches 5
is blocked by rule 949110 in Prevention mode and only logged ("Detected")
in Detection mode. A rule given the action Block blocks on its own, Log
only logs, Allow lets the request through whatever the score. Custom rules
decide first (custom.py): their Allow skips the managed rules, their Block
blocks (in Detection mode, it is logged).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from attrs import frozen

from appgw.waf.engine import RuleMatch

THRESHOLD = 5
SCORES = {0: 5, 1: 5, 2: 5, 3: 4, 4: 3, 5: 2}
EVALUATION_RULE = "949110"
EVALUATION_MESSAGE = "Mandatory rule. Cannot be disabled. Inbound Anomaly Score Exceeded"


@frozen
class Entry:
    """One line of the firewall log."""

    rule_set_type: str  # "OWASP", "Microsoft_DefaultRuleSet", "Custom"
    rule_set_version: str
    rule_id: str
    rule_group: str
    message: str
    action: str  # "Matched" | "Blocked" | "Detected" | "Allowed"
    data: str = ""
    file: str = ""


@frozen
class Verdict:
    blocked: bool
    entries: tuple[Entry, ...]
    score: int = 0


def managed(
    matches: Sequence[RuleMatch],
    actions: Mapping[str, str],
    groups: Mapping[str, str],
    rule_set: tuple[str, str],
    prevention: bool,
) -> Verdict:
    """The verdict of the managed rules that matched a request.

    `actions`: rule id -> action override; `groups`: rule id -> group name;
    `rule_set`: (type, version) for the log.
    """
    kind, version = rule_set
    outcome = "Blocked" if prevention else "Detected"
    entries: list[Entry] = []
    score, block, allow = 0, False, False
    seen: set[str] = set()
    for m in matches:
        if m.rule_id in seen or m.rule_id.startswith(("949", "959", "980")):
            continue
        seen.add(m.rule_id)
        action = actions.get(m.rule_id, "anomalyscoring")
        label = "Matched"
        if action == "anomalyscoring":
            score += SCORES.get(m.severity, 0)
        elif action == "block":
            block, label = True, outcome
        elif action == "allow":
            allow, label = True, "Allowed"
        entries.append(
            Entry(
                kind,
                version,
                m.rule_id,
                groups.get(m.rule_id, ""),
                m.message,
                label,
                m.data,
                m.file,
            )
        )
    if allow:
        return Verdict(False, tuple(entries), score)
    if score >= THRESHOLD:
        block = True
        entries.append(
            Entry(
                kind,
                version,
                EVALUATION_RULE,
                "BLOCKING-EVALUATION",
                f"{EVALUATION_MESSAGE} (Total Score: {score})",
                outcome,
            )
        )
    return Verdict(block and prevention, tuple(entries), score)
