"""The managed rule sets: where Debian's Core Rule Set lives, and its groups.

Application Gateway names its CRS 3.x rule sets by type and version
(OWASP 3.0, 3.1, 3.2; Microsoft_DefaultRuleSet 2.1, which Microsoft
derives from CRS 3.3). appgw runs every one of them on the CRS Debian
ships (`modsecurity-crs`, 3.3.x): the rule ids and groups are CRS's, and
Microsoft's own additions (the MS-ThreatIntel groups) are not available.
A rule group is one CRS file; `RuleSetTable` maps group names (CRS's for
OWASP, Microsoft's short ones for the default rule set) to the rule ids
the file holds, read once from the files themselves.
"""

from __future__ import annotations

import re
from pathlib import Path

from attrs import frozen

LIBRARY = "libmodsecurity.so.3"
CRS_SETUP = Path("/etc/modsecurity/crs/crs-setup.conf")
CRS_RULES = Path("/usr/share/modsecurity-crs/rules")
INSTALL_HINT = "Debian: apt-get install libmodsecurity3 modsecurity-crs"

# Versions accepted per type, and what each runs on.
VERSIONS = {
    "owasp": ("3.0", "3.1", "3.2"),
    "microsoft_defaultruleset": ("2.1",),
}
# Rule set types that are Microsoft's own, with why they cannot run here: an
# error (never a policy that runs without them unsaid).
MICROSOFT_ONLY = {
    "microsoft_botmanagerruleset": (
        "the Bot Manager rule set classifies clients by Microsoft's threat"
        " intelligence feeds, which are not available locally"
    ),
}
# Microsoft's group names for the default rule set -> the CRS file's number.
MICROSOFT_GROUPS = {
    "METHOD-ENFORCEMENT": "911",
    "PROTOCOL-ENFORCEMENT": "920",
    "PROTOCOL-ATTACK": "921",
    "LFI": "930",
    "RFI": "931",
    "RCE": "932",
    "PHP": "933",
    "NODEJS": "934",
    "XSS": "941",
    "SQLI": "942",
    "FIX": "943",
    "JAVA": "944",
}
# Groups that are Microsoft's own: accepted in overrides, never present here.
UNAVAILABLE_GROUPS = frozenset(
    {
        "ms-threatintel-webshells",
        "ms-threatintel-appsec",
        "ms-threatintel-sqli",
        "ms-threatintel-cves",
        "known-cves",
    }
)
# The "General" group: appgw's body parser rules (Azure's ids).
GENERAL = "General"
GENERAL_RULES = ("200002", "200003")
# CRS files whose rules are groups users can see and tune.
_GROUP_FILE = re.compile(r"^REQUEST-(9(?:1[13]|2[01]|3[0-4]|4[1-4]))-.*\.conf$")
_RULE_ID = re.compile(r"\bid:(\d+)")
_VERSION = re.compile(r"ver:.?OWASP_CRS/(\d+\.\d+\.\d+)")


@frozen
class RuleSetTable:
    """Group names and rule ids of the installed CRS."""

    crs_version: str
    groups: dict[str, tuple[str, ...]]  # CRS's group name -> rule ids
    by_number: dict[str, str]  # "942" -> "REQUEST-942-APPLICATION-ATTACK-SQLI"

    def group_ids(self, rule_set_type: str, name: str) -> tuple[str, ...] | None:
        """The rule ids of a group named as the rule set names it; None: no such group."""
        if name.lower() == GENERAL.lower():
            return GENERAL_RULES
        if rule_set_type.lower() == "microsoft_defaultruleset":
            number = MICROSOFT_GROUPS.get(name.upper())
            return None if number is None else self.groups[self.by_number[number]]
        for group, ids in self.groups.items():
            if group.lower() == name.lower():
                return ids
        return None

    def all_ids(self) -> tuple[str, ...]:
        return tuple(i for ids in self.groups.values() for i in ids) + GENERAL_RULES

    def group_of(self, rule_set_type: str, rule_id: str) -> str:
        """The group a rule belongs to, in the rule set's own names."""
        if rule_id in GENERAL_RULES:
            return GENERAL
        for group, ids in self.groups.items():
            if rule_id in ids:
                if rule_set_type.lower() == "microsoft_defaultruleset":
                    number = group.split("-")[1]
                    return next((n for n, v in MICROSOFT_GROUPS.items() if v == number), group)
                return group
        return ""


def installed() -> bool:
    return CRS_SETUP.is_file() and CRS_RULES.is_dir()


_TABLE: RuleSetTable | None = None


def table() -> RuleSetTable:
    """The installed CRS's groups (read once per process)."""
    global _TABLE
    if _TABLE is None:
        _TABLE = _read(CRS_RULES)
    return _TABLE


def _read(rules: Path) -> RuleSetTable:
    groups: dict[str, tuple[str, ...]] = {}
    by_number: dict[str, str] = {}
    version = ""
    for path in sorted(rules.glob("REQUEST-*.conf")):
        match = _GROUP_FILE.match(path.name)
        if match is None:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        ids = tuple(dict.fromkeys(i for i in _RULE_ID.findall(text) if i.startswith(match[1])))
        # The PL-skipping markers (9xx011..9xx018) are no rules of their own.
        ids = tuple(i for i in ids if not (i[3:5] == "01" and len(i) == 6))
        name = path.stem
        groups[name] = ids
        by_number[match[1]] = name
        found = _VERSION.search(text)
        if found and not version:
            version = found[1]
    return RuleSetTable(version or "3.3", groups, by_number)
