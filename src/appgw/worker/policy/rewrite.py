"""Rewrite rule sets: Application Gateway's header and URL rewrites (pure).

A rule set is compiled once per configuration (`compile_rule_set`): patterns
are compiled and every value is parsed into literal text, variables and
capture references, so a request only matches and joins strings.

How a rule set runs, as Application Gateway documents it:

- Rules run in sequence order, lowest first. A rule applies when all of its
  conditions hold. A condition searches its variable for the pattern
  (anywhere in the value, like `re.search`), ignoring case when
  `ignore_case`; `negate` inverts the outcome.
- Variables: `http_req_<Header>` and `http_resp_<Header>` (names in any case;
  several fields of one name are joined with ", ", Cookie with "; "; a
  missing header is ""), and `var_<server variable>` (see `variables.py`, plus
  `var_cookie_<name>`). Anything unknown is "".
- Values are text with `{variable}` references. `{<variable>_<n>}` is group n
  of the rule's own condition on `<variable>` (spelled exactly as in the
  condition; group 0 is the whole match). A group that took no part, or a
  condition that holds through `negate`, gives "".
- Every variable reads the request as the client sent it and the response as
  the backend sent it: an action never changes what a later rule sees.
  Actions add up; when two rules set the same header or URL part, the later
  rule wins.
- Requests: rules with request-header or URL actions and no condition on the
  response. Responses: rules with response-header actions; their conditions
  may read the response headers, `var_http_status` and the whole request.
- Setting a header replaces every field of that name (at the first one's
  place, else appended); an empty value removes it. Connection, Upgrade,
  Content-Length and Transfer-Encoding are never rewritten (the gateway owns
  the framing), and Host is never removed (`header_errors` reports both).
- Header values are sanitised: control characters other than tab (CR, LF,
  NUL, ...) become spaces, as RFC 9110 section 5.5 allows, then surrounding
  blanks are trimmed; a value left empty removes the header.
- URL: a path of None or "" keeps the path, a query string of None keeps it
  and "" clears it. The path gets a leading "/"; characters a request target
  cannot hold (and "?", "#" in the path) are percent-encoded as UTF-8.
  `reroute` tells the caller to match the path map again with the new path.
- A response header action with a value matcher (Application Gateway's
  `headerValueMatcher`, for Set-Cookie) rewrites only the fields whose value
  the matcher selects, each on its own; `{http_resp_<Header>_<n>}` in its
  value is group n of the matcher's match on that field. An empty value
  removes the selected fields; the others stay as they are.
- Patterns are RE2's (appgw.patterns), as in Application Gateway: matching
  takes linear time whatever the pattern and the value. A pattern that
  does not compile makes its condition false; it never raises here.
  Configuration validation reports it first.

Use:

    plan = compile_rule_set(rule_set)            # once per configuration
    rw = plan.rewrite_request(ctx)               # path, query, reroute ...
    headers = rw.apply(backend_headers)          # ... and the header edits
    headers = plan.rewrite_response(ctx, status, response_headers)

Request header edits come back separately because they belong on the
headers the gateway sends (after it added X-Forwarded-For and the rest, so
a rule can replace those), while the URL is needed before routing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import quote

from attrs import field, frozen

from appgw.config.model import (
    UNREWRITABLE_HEADERS,
    HeaderAction,
    RewriteRule,
    RewriteRuleSet,
)
from appgw.patterns import Match, Pattern, PatternError, compile_pattern
from appgw.worker.policy.rewrite_values import (
    RESP,
    Template,
    Variable,
    parse_template,
    parse_variable,
    render,
    variable_value,
)
from appgw.worker.policy.variables import RequestContext, Scope

Headers = list[tuple[bytes, bytes]]

# Headers no action may touch: the gateway alone frames messages.
UNREWRITABLE = frozenset(name.encode() for name in UNREWRITABLE_HEADERS)

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_PATH_SAFE = "/!$&'()*+,;=:@%"  # RFC 3986 pchar besides the unreserved, and "%"
_QUERY_SAFE = _PATH_SAFE + "?"


@frozen
class RequestRewrite:
    """What a rule set does to a request.

    `header_edits` are (name, value) in the order first set; value None
    removes the header. `reroute`: match the path map again with `path`.
    """

    path: str
    query: str
    reroute: bool = False
    url_rewritten: bool = False
    header_edits: tuple[tuple[bytes, bytes | None], ...] = ()

    @property
    def target(self) -> str:
        """The origin-form request target: path, then "?query" if any."""
        return f"{self.path}?{self.query}" if self.query else self.path

    def apply(self, headers: Sequence[tuple[bytes, bytes]]) -> Headers:
        """`headers` with the edits made (a new list)."""
        return apply_header_edits(headers, self.header_edits)


# --- compiled form -------------------------------------------------------------------


@frozen
class _Condition:
    source: Variable
    regex: Pattern | None  # None: the pattern did not compile
    negate: bool


@frozen
class _MatchedAction:
    """A header action with a value matcher: it rewrites the fields it selects."""

    name: bytes
    template: Template  # group references to the matcher: Capture(len(conditions), n)
    regex: Pattern | None
    negate: bool


@frozen
class _Rule:
    name: str
    conditions: tuple[_Condition, ...]
    request_headers: tuple[tuple[bytes, Template], ...]
    response_headers: tuple[tuple[bytes, Template], ...]
    matched_headers: tuple[_MatchedAction, ...]
    path: Template | None
    query: Template | None
    reroute: bool
    reads_response: bool


@frozen
class CompiledRuleSet:
    """A rule set ready to run; build it with `compile_rule_set`."""

    name: str
    request_rules: tuple[_Rule, ...] = field(repr=False)
    response_rules: tuple[_Rule, ...] = field(repr=False)

    def rewrite_request(self, ctx: RequestContext) -> RequestRewrite:
        """Run the request rules on a request."""
        if not self.request_rules:
            return RequestRewrite(ctx.path, ctx.query)
        scope = Scope(ctx)
        edits: dict[bytes, bytes | None] = {}
        path = query = None
        reroute = False
        for rule in self.request_rules:
            matches = _matches(rule, scope)
            if matches is None:
                continue
            _edit(edits, rule.request_headers, scope, matches)
            if rule.path is not None:
                path = render(rule.path, scope, matches)
            if rule.query is not None:
                query = render(rule.query, scope, matches)
            reroute = reroute or rule.reroute
        return RequestRewrite(
            path=ctx.path if path is None else _target_path(path),
            query=ctx.query if query is None else _target_query(query),
            reroute=reroute,
            url_rewritten=path is not None or query is not None,
            header_edits=tuple(edits.items()),
        )

    def rewrite_response(
        self, ctx: RequestContext, status: int, headers: Sequence[tuple[bytes, bytes]]
    ) -> Headers:
        """The backend's response headers after the response rules ran."""
        if not self.response_rules:
            return list(headers)
        scope = Scope(ctx, status, headers)
        edits: dict[bytes, bytes | None] = {}
        matched: list[tuple[_MatchedAction, list[Match | None]]] = []
        for rule in self.response_rules:
            matches = _matches(rule, scope)
            if matches is not None:
                _edit(edits, rule.response_headers, scope, matches)
                matched.extend((action, matches) for action in rule.matched_headers)
        out = apply_header_edits(headers, tuple(edits.items()))
        for action, matches in matched:
            out = _edit_matching(out, action, scope, matches)
        return out


def compile_rule_set(rule_set: RewriteRuleSet) -> CompiledRuleSet:
    """Compile a rule set once; the result is immutable and shared freely."""
    rules = [_compile_rule(rule) for rule in sorted(rule_set.rules, key=lambda r: r.sequence)]
    return CompiledRuleSet(
        name=rule_set.name,
        request_rules=tuple(
            r
            for r in rules
            if (r.request_headers or r.path is not None or r.query is not None)
            and not r.reads_response
        ),
        response_rules=tuple(r for r in rules if r.response_headers or r.matched_headers),
    )


def apply_header_edits(
    headers: Sequence[tuple[bytes, bytes]], edits: Sequence[tuple[bytes, bytes | None]]
) -> Headers:
    """Replace or remove every field named in `edits` (value None removes)."""
    if not edits:
        return list(headers)
    wanted = dict(edits)
    placed: set[bytes] = set()
    out: Headers = []
    for name, value in headers:
        key = name.lower()
        if key not in wanted:
            out.append((name, value))
        elif key not in placed:
            placed.add(key)
            new = wanted[key]
            if new is not None:
                out.append((key, new))
    for key, new in wanted.items():
        if key not in placed and new is not None:
            out.append((key, new))
    return out


# --- compiling -----------------------------------------------------------------------


def _pattern(pattern: str, ignore_case: bool) -> Pattern | None:
    try:
        return compile_pattern(pattern, ignore_case)
    except PatternError:
        return None


def _compile_rule(rule: RewriteRule) -> _Rule:
    conditions = []
    captures: dict[str, int] = {}  # condition variable as written -> its last condition
    for i, c in enumerate(rule.conditions):
        regex = _pattern(c.pattern, c.ignore_case)
        conditions.append(_Condition(parse_variable(c.variable), regex, c.negate))
        captures[c.variable] = i
    url = rule.url
    plain = [a for a in rule.response_headers if a.matcher is None]
    return _Rule(
        name=rule.name,
        conditions=tuple(conditions),
        request_headers=_header_actions(rule.request_headers, captures),
        response_headers=_header_actions(plain, captures),
        matched_headers=_matched_actions(rule.response_headers, captures, len(conditions)),
        path=parse_template(url.path, captures) if url is not None and url.path else None,
        query=(
            parse_template(url.query_string, captures)
            if url is not None and url.query_string is not None
            else None
        ),
        reroute=url is not None and url.reroute,
        reads_response=any(
            c.source.kind == RESP or c.source.key == "http_status" for c in conditions
        ),
    )


def _header_actions(
    actions: Sequence[HeaderAction], captures: dict[str, int]
) -> tuple[tuple[bytes, Template], ...]:
    out = []
    for action in actions:
        if not _TOKEN.fullmatch(action.name):
            continue
        name = action.name.lower().encode("ascii")
        if name in UNREWRITABLE or (name == b"host" and not action.value):
            continue
        out.append((name, parse_template(action.value, captures)))
    return tuple(out)


def _matched_actions(
    actions: Sequence[HeaderAction], captures: dict[str, int], index: int
) -> tuple[_MatchedAction, ...]:
    out = []
    for action in actions:
        matcher = action.matcher
        if matcher is None or not _TOKEN.fullmatch(action.name):
            continue
        name = action.name.lower().encode("ascii")
        if name in UNREWRITABLE or name == b"host":
            continue
        own = captures | {f"http_resp_{action.name}": index}
        regex = _pattern(matcher.pattern, matcher.ignore_case)
        out.append(_MatchedAction(name, parse_template(action.value, own), regex, matcher.negate))
    return tuple(out)


# --- running -------------------------------------------------------------------------


def _matches(rule: _Rule, scope: Scope) -> list[Match | None] | None:
    """Each condition's match (None where it holds by negate), or None: no apply."""
    matches: list[Match | None] = []
    for condition in rule.conditions:
        if condition.regex is None:
            return None
        m = condition.regex.search(variable_value(scope, condition.source))
        if condition.negate:
            if m is not None:
                return None
            matches.append(None)
        elif m is None:
            return None
        else:
            matches.append(m)
    return matches


def _edit(
    edits: dict[bytes, bytes | None],
    actions: tuple[tuple[bytes, Template], ...],
    scope: Scope,
    matches: list[Match | None],
) -> None:
    for name, template in actions:
        value = _CONTROL.sub(" ", render(template, scope, matches)).strip(" \t")
        if value:
            edits[name] = value.encode("latin-1")
        elif name != b"host":
            edits[name] = None


def _edit_matching(
    headers: Headers, action: _MatchedAction, scope: Scope, matches: list[Match | None]
) -> Headers:
    """`headers` with each field the action's matcher selects rewritten."""
    if action.regex is None:
        return headers
    out: Headers = []
    for name, value in headers:
        if name.lower() != action.name:
            out.append((name, value))
            continue
        m = action.regex.search(value.decode("latin-1"))
        if (m is None) != action.negate:
            out.append((name, value))
            continue
        new = _CONTROL.sub(" ", render(action.template, scope, [*matches, m])).strip(" \t")
        if new:
            out.append((name, new.encode("latin-1")))
    return out


def _target_path(value: str) -> str:
    path = quote(value.encode("latin-1"), safe=_PATH_SAFE)
    return path if path.startswith("/") else "/" + path


def _target_query(value: str) -> str:
    return quote(value.encode("latin-1").removeprefix(b"?"), safe=_QUERY_SAFE)
