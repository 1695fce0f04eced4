"""Which rule serves a request (pure).

A request arrives on a listening socket (address, port). Several listeners
may share that socket (multi-site: each with its own host names). The
listener is chosen by the Host header: rules are tried by priority (rules
without one after every numbered rule, multi-site listeners before basic
ones), and the first whose listener matches the host wins. A listener's host
names may hold `*` (any run of characters) and `?` (one character).

A basic rule names a pool and setting, or a redirect. A path-based rule
names a path map, whose rules are tried as Application Gateway v2 documents
them: in list order, the first match wins (a wildcard listed first takes
precedence over a more specific path listed after it), case-insensitively,
on the path without the query. A pattern is an exact path ("/live") or ends
with `*` ("/api/*", "/images*": any rest, including none). Nothing matched
falls to the map's defaults.

The tables are built once per configuration; a lookup walks only the few
listeners that share one socket.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from attrs import frozen

from appgw.config.model import (
    Config,
    Listener,
    PathMap,
    PathRule,
    Pool,
    Redirect,
    RewriteRuleSet,
    Rule,
    Setting,
)

BoundAddress = tuple[str, int]


@frozen
class Route:
    """What to do with one request."""

    rule: str
    listener: Listener
    pool: Pool | None = None
    setting: Setting | None = None
    redirect: Redirect | None = None
    rewrite_rule_set: RewriteRuleSet | None = None
    path_rule: str | None = None
    matched_prefix: str | None = None  # the part of the path a path rule matched


def host_pattern(names: Sequence[str]) -> re.Pattern[str] | None:
    """One regular expression for a listener's host names; None: any host."""
    if not names:
        return None
    parts = []
    for name in names:
        escaped = re.escape(name.lower()).replace(r"\*", ".*").replace(r"\?", ".")
        parts.append(escaped)
    return re.compile("(?:" + "|".join(parts) + ")")


def request_host(host: bytes | None) -> str:
    """The Host header without its port, lowercased."""
    if not host:
        return ""
    text = host.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[: text.find("]") + 1]
    return text.rsplit(":", 1)[0] if ":" in text else text


class PathTable:
    """A path map's rules, indexed for lookup.

    Exact paths are one dictionary lookup; wildcards are tried in list order
    only up to the position of an exact hit, so the first rule in the list
    that matches wins either way.
    """

    def __init__(self, path_map: PathMap) -> None:
        self.path_map = path_map
        self.exact: dict[str, tuple[int, PathRule]] = {}
        self.wildcards: list[tuple[int, str, PathRule]] = []
        position = 0
        for rule in path_map.rules:
            for pattern in rule.paths:
                folded = pattern.lower()
                if folded.endswith("*"):
                    self.wildcards.append((position, folded[:-1], rule))
                else:
                    self.exact.setdefault(folded, (position, rule))
                position += 1

    def match(self, path: str) -> tuple[PathRule | None, str | None]:
        """The first rule whose pattern matches `path`, and the part of the
        path it matched (the whole path for an exact pattern)."""
        folded = path.lower()
        exact = self.exact.get(folded)
        limit = exact[0] if exact is not None else float("inf")
        for position, prefix, rule in self.wildcards:
            if position > limit:
                break
            if folded.startswith(prefix):
                return rule, path[: len(prefix)]
        if exact is not None:
            return exact[1], path
        return None, None


@frozen
class _Entry:
    rule: Rule
    listener: Listener
    hosts: re.Pattern[str] | None


_ROUTES_KEPT = 4096  # distinct routes kept built; more (wildcard prefixes) start over
_ANSWERS_KEPT = 4096  # (socket, host, path) lookups kept answered; more start over
_ANSWER_KEY_BYTES = 1024  # longer host and path: answered, not kept


class Router:
    """Routes requests for every listening socket of one configuration."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.paths = {name: PathTable(m) for name, m in config.path_maps.items()}
        by_listener: dict[str, Rule] = {}
        for rule in sorted(config.rules.values(), key=_rule_order):
            by_listener.setdefault(rule.listener, rule)
        entries: dict[BoundAddress, list[tuple[tuple[float, int, int], _Entry]]] = {}
        for index, (name, rule) in enumerate(by_listener.items()):
            listener = config.listeners[name]
            key = (
                float(rule.priority) if rule.priority is not None else float("inf"),
                0 if listener.host_names else 1,
                index,
            )
            entry = _Entry(rule, listener, host_pattern(listener.host_names))
            entries.setdefault((listener.address, listener.port), []).append((key, entry))
        self.sockets = {
            bound: [entry for _, entry in sorted(items, key=lambda item: item[0])]
            for bound, items in entries.items()
        }
        # Built routes by (entry, path rule, prefix); both objects live as
        # long as this router, so their ids stay theirs.
        self._routes: dict[tuple[int, int, str | None], Route] = {}
        self._answers: dict[tuple[BoundAddress, bytes | None, str], Route | None] = {}

    def route(self, bound: BoundAddress, host: bytes | None, path: str) -> Route | None:
        """The route for a request, or None when no listener takes its host.

        The answers for the last few thousand (socket, host, path) asked are
        kept: most requests ask again what an earlier one asked.
        """
        key = (bound, host, path)
        try:
            return self._answers[key]
        except KeyError:
            pass
        entry = self._entry(bound, host)
        route = None if entry is None else self._target(entry, path)
        if len(path) + len(host or b"") <= _ANSWER_KEY_BYTES:
            if len(self._answers) >= _ANSWERS_KEPT:
                self._answers.clear()
            self._answers[key] = route
        return route

    def listener(self, bound: BoundAddress, host: bytes | None) -> Listener | None:
        """The listener that takes a request for `host` on a socket, if any."""
        entry = self._entry(bound, host)
        return None if entry is None else entry.listener

    def _entry(self, bound: BoundAddress, host: bytes | None) -> _Entry | None:
        name = request_host(host)
        for entry in self.sockets.get(bound, ()):
            if entry.hosts is None or entry.hosts.fullmatch(name):
                return entry
        return None

    def _target(self, entry: _Entry, path: str) -> Route:
        """The route of a path on an entry; the same few come again and again.

        Routes are values: each one is built once per (entry, path rule,
        matched prefix) and kept while this router lives.
        """
        rule = entry.rule
        path_rule: PathRule | None = None
        prefix: str | None = None
        if rule.kind == "path" and rule.path_map:
            path_rule, prefix = self.paths[rule.path_map].match(path)
        key = (id(entry), id(path_rule), prefix)
        route = self._routes.get(key)
        if route is None:
            if len(self._routes) >= _ROUTES_KEPT:
                self._routes.clear()
            route = self._routes[key] = self._build(entry, path_rule, prefix)
        return route

    def _build(self, entry: _Entry, path_rule: PathRule | None, prefix: str | None) -> Route:
        config = self.config
        rule = entry.rule
        rewrites = config.rewrite_rule_sets.get(rule.rewrite_rule_set or "")
        if rule.kind == "path" and rule.path_map:
            path_map = self.paths[rule.path_map].path_map
            if path_rule is None:
                return _route(
                    config,
                    rule.name,
                    entry.listener,
                    path_map.default_pool,
                    path_map.default_setting,
                    path_map.default_redirect,
                    path_map.default_rewrite_rule_set or rule.rewrite_rule_set,
                    None,
                    None,
                )
            return _route(
                config,
                rule.name,
                entry.listener,
                path_rule.pool,
                path_rule.setting,
                path_rule.redirect,
                path_rule.rewrite_rule_set or rule.rewrite_rule_set,
                path_rule.name,
                prefix,
            )
        return Route(
            rule=rule.name,
            listener=entry.listener,
            pool=config.pools.get(rule.pool or ""),
            setting=config.settings.get(rule.setting or ""),
            redirect=config.redirects.get(rule.redirect or ""),
            rewrite_rule_set=rewrites,
        )


def _route(
    config: Config,
    rule: str,
    listener: Listener,
    pool: str | None,
    setting: str | None,
    redirect: str | None,
    rewrites: str | None,
    path_rule: str | None,
    prefix: str | None,
) -> Route:
    return Route(
        rule=rule,
        listener=listener,
        pool=config.pools.get(pool or ""),
        setting=config.settings.get(setting or ""),
        redirect=config.redirects.get(redirect or ""),
        rewrite_rule_set=config.rewrite_rule_sets.get(rewrites or ""),
        path_rule=path_rule,
        matched_prefix=prefix,
    )


def _rule_order(rule: Rule) -> tuple[float, str]:
    return (float(rule.priority) if rule.priority is not None else float("inf"), rule.name)


def backend_target(route: Route, target: str) -> str:
    """The request target sent to the backend, after the setting's path override.

    As in Application Gateway: the part of the path a path rule matched is
    replaced by the override ("/images/*" or "/images*" with override "/s/":
    "/images/a.png" -> "/s/a.png"; an exact path: the whole path), and a
    basic rule or a map's default keeps the path after the override
    ("/home/" -> "/s/home/"). The two parts are joined by one "/".
    """
    setting = route.setting
    if setting is None or not setting.path:
        return target
    path, sep, query = target.partition("?")
    matched = route.matched_prefix
    if matched is not None and len(path) >= len(matched):
        rest = path[len(matched) :]
    else:
        rest = path
    override = setting.path
    if rest:
        override = override.rstrip("/") + "/" + rest.lstrip("/")
    return override + (sep + query if sep else "")


def redirect_location(
    route: Route, redirect: Redirect, config: Config, host: bytes | None, target: str
) -> str:
    """The Location of a redirect."""
    path, sep, query = target.partition("?")
    if redirect.target_url:
        location = redirect.target_url
        if redirect.include_path:
            location = location.rstrip("/") + path
    else:
        listener = config.listeners[redirect.target_listener or route.listener.name]
        scheme = listener.protocol
        name = request_host(host) or "localhost"
        default_port = 443 if scheme == "https" else 80
        authority = name if listener.port == default_port else f"{name}:{listener.port}"
        location = f"{scheme}://{authority}" + (path if redirect.include_path else "/")
    if redirect.include_query_string and sep and query:
        location += ("&" if "?" in location else "?") + query
    return location
