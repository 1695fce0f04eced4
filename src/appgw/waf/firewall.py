"""A worker's firewall: every policy compiled once, and one request's decision.

`Firewall(config)` compiles each WAF policy of the configuration (its
managed rules into a ModSecurity rule set shared by policies with the same
directives, its custom rules) and knows which policy applies to a route:
the path rule's, else the listener's, else the gateway's. `inspect` is
sans-I/O: given what was read of a request (its head, and its body when the
policy inspects bodies) it returns a `Decision`; the request path
(worker/exchange/firewall_step.py) reads the body, answers a block and writes the log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from attrs import frozen

from appgw.config.model import Config
from appgw.config.waf import WafPolicy
from appgw.waf import crs, custom, geo, scoring
from appgw.waf.directives import rules_text
from appgw.waf.engine import RuleSet, Transaction, engine
from appgw.waf.scoring import Entry

# Azure's policyScope values.
SCOPES = {"gateway": "Global", "listener": "Listener", "path": "Location"}


@frozen
class Decision:
    blocked: bool
    status: int  # the answer when blocked
    body: bytes | None  # the custom block body, or None: the gateway's 403 page
    entries: tuple[Entry, ...]
    policy: WafPolicy
    scope: str  # "Global" | "Listener" | "Location"
    scope_name: str
    reason: str = ""  # why a request was refused before inspection (a body limit)


@frozen
class Attached:
    """The policy that applies to a route, and where it is attached."""

    policy: CompiledPolicy
    scope: str
    scope_name: str
    listener: str  # rate limits count per listener


class CompiledPolicy:
    def __init__(
        self,
        policy: WafPolicy,
        rules: RuleSet | None,
        table: crs.RuleSetTable,
        countries: Callable[[], geo.Countries],
    ) -> None:
        self.policy = policy
        self.rules = rules
        self.prevention = policy.mode.lower() == "prevention"
        self.custom = custom.compile_rules(policy.custom_rules, policy.name, countries)
        self.actions: dict[str, str] = {}
        self.groups: dict[str, str] = {}
        first = policy.managed_rule_sets[0] if policy.managed_rule_sets else None
        self.rule_set = (
            (first.rule_set_type, first.version) if first is not None else ("OWASP", "3.2")
        )
        for rule_set in policy.managed_rule_sets:
            for group in rule_set.groups:
                for rule in group.rules:
                    if rule.action is not None:
                        self.actions[rule.rule_id] = rule.action.lower()
        for rule_id in table.all_ids():
            self.groups[rule_id] = table.group_of(self.rule_set[0], rule_id)

    @property
    def inspects_body(self) -> bool:
        return self.policy.request_body_check and self.rules is not None


class Firewall:
    """The compiled policies of one configuration."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        table = crs.table()
        waf = engine()
        compiled: dict[str, RuleSet] = {}
        self.policies: dict[str, CompiledPolicy] = {}
        self._countries: geo.Countries | None = None
        self._geoip = config.geoip_databases
        for name, policy in config.waf_policies.items():
            rules = None
            if policy.managed_rule_sets:
                text = rules_text(policy, table)
                if text not in compiled:
                    compiled[text] = waf.compile(text)
                rules = compiled[text]
            self.policies[name] = CompiledPolicy(policy, rules, table, self.countries)
        self.gateway = config.firewall_policy
        self.listeners = {
            n: li.firewall_policy for n, li in config.listeners.items() if li.firewall_policy
        }
        self.paths: dict[tuple[str, str], str] = {}
        for map_name, path_map in config.path_maps.items():
            for rule in path_map.rules:
                if rule.firewall_policy:
                    self.paths[(map_name, rule.name)] = rule.firewall_policy
        self.path_map_of = {n: r.path_map for n, r in config.rules.items() if r.path_map}

    def countries(self) -> geo.Countries:
        """The country lookup, opened for the first policy that needs it."""
        if self._countries is None:
            self._countries = geo.Countries(self._geoip)
        return self._countries

    def attached(self, rule: str, listener: str, path_rule: str | None) -> Attached | None:
        """The policy for a route: the path rule's, the listener's, the gateway's."""
        path_map = self.path_map_of.get(rule)
        if path_rule is not None and path_map is not None:
            name = self.paths.get((path_map, path_rule))
            if name is not None:
                return self._found(name, "path", f"{path_map}/{path_rule}", listener)
        name = self.listeners.get(listener)
        if name is not None:
            return self._found(name, "listener", listener, listener)
        if self.gateway is not None:
            return self._found(self.gateway, "gateway", self.gateway, listener)
        return None

    def _found(self, name: str, scope: str, scope_name: str, listener: str) -> Attached | None:
        compiled = self.policies[name]
        if not compiled.policy.enabled:
            return None
        return Attached(compiled, SCOPES[scope], scope_name, listener)

    def inspect(
        self, attached: Attached, transaction: Transaction, facts: custom.Facts | None
    ) -> Decision:
        """The decision on one request (its body in `transaction.body` if inspected).

        `facts` may be None only for a policy without custom rules."""
        compiled = attached.policy
        entries: list[Entry] = []
        outcome = "Blocked" if compiled.prevention else "Detected"
        matched = []
        if compiled.custom:
            if facts is None:
                raise ValueError(f"policy {compiled.policy.name} has custom rules: facts needed")
            matched = custom.evaluate(compiled.custom, facts, self.clock(), attached.listener)
        for rule in matched:
            label = {"allow": "Allowed", "block": outcome}.get(rule.action, "Matched")
            entries.append(
                Entry("Custom", "", rule.rule.name, "", f"Custom rule {rule.rule.name}", label)
            )
            if rule.action == "allow":
                return self._decision(attached, False, entries)
            if rule.action == "block":
                return self._decision(attached, compiled.prevention, entries)
        if compiled.rules is not None:
            matches = compiled.rules.evaluate(transaction)
            if transaction.partial:  # a body cut at the limit does not parse: not its fault
                matches = [m for m in matches if m.rule_id not in crs.GENERAL_RULES]
            verdict = scoring.managed(
                matches, compiled.actions, compiled.groups, compiled.rule_set, compiled.prevention
            )
            entries += verdict.entries
            return self._decision(attached, verdict.blocked, entries)
        return self._decision(attached, False, entries)

    def refuse(self, attached: Attached, reason: str, status: int = 413) -> Decision:
        """A request refused before inspection (a body over the policy's limits)."""
        return Decision(
            True,
            status,
            None,
            (),
            attached.policy.policy,
            attached.scope,
            attached.scope_name,
            reason,
        )

    @staticmethod
    def _decision(attached: Attached, blocked: bool, entries: Sequence[Entry]) -> Decision:
        policy = attached.policy.policy
        return Decision(
            blocked,
            policy.custom_block_status,
            policy.custom_block_body,
            tuple(entries),
            policy,
            attached.scope,
            attached.scope_name,
        )
