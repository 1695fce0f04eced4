"""Tests for appgw.worker.policy.rewrite: rewrite rule sets as Application Gateway runs them.

The expected values follow Application Gateway's documentation of rewrites
(conditions, captures, server variables, URL rewrite and reroute); the
scenarios marked "documented" are the documentation's own examples.
"""

from __future__ import annotations

from pathlib import Path

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appgw.config import load
from appgw.config.model import (
    HeaderAction,
    RewriteCondition,
    RewriteRule,
    RewriteRuleSet,
    UrlAction,
)
from appgw.worker.codec import headers as forwarding
from appgw.worker.policy.rewrite import (
    RequestContext,
    apply_header_edits,
    compile_rule_set,
)

EXAMPLES = Path(__file__).parents[3] / "shared" / "examples"

Headers = list[tuple[bytes, bytes]]


def context(
    headers: Headers | None = None,
    *,
    path: str = "/",
    query: str = "",
    host: str = "www.contoso.com",
    scheme: str = "http",
    method: str = "GET",
    client_ip: str = "10.0.0.7",
    client_port: int = 51515,
    server_port: int = 80,
) -> RequestContext:
    if headers is None:
        headers = [(b"host", host.encode())]
    return RequestContext(
        client_ip=client_ip,
        client_port=client_port,
        server_port=server_port,
        scheme=scheme,
        method=method,
        path=path,
        query=query,
        host=host,
        headers=headers,
    )


def rule(
    name: str = "r",
    sequence: int = 100,
    conditions: tuple[RewriteCondition, ...] = (),
    request: dict[str, str] | None = None,
    response: dict[str, str] | None = None,
    url: UrlAction | None = None,
) -> RewriteRule:
    return RewriteRule(
        name=name,
        sequence=sequence,
        conditions=conditions,
        request_headers=tuple(HeaderAction(k, v) for k, v in (request or {}).items()),
        response_headers=tuple(HeaderAction(k, v) for k, v in (response or {}).items()),
        url=url,
    )


def cond(variable: str, pattern: str, ignore_case: bool = True, negate: bool = False):
    return RewriteCondition(variable, pattern, ignore_case=ignore_case, negate=negate)


def plan(*rules: RewriteRule):
    return compile_rule_set(RewriteRuleSet("set", rules))


def edits(rules_plan, ctx: RequestContext) -> dict[bytes, bytes | None]:
    return dict(rules_plan.rewrite_request(ctx).header_edits)


def request_value(value: str, ctx: RequestContext, *conditions: RewriteCondition) -> bytes | None:
    """What a request header set to `value` (under `conditions`) becomes."""
    return edits(plan(rule(conditions=conditions, request={"X-Out": value})), ctx).get(b"x-out")


# --- the example configuration --------------------------------------------------------


@pytest.fixture
def api_headers():
    path = EXAMPLES / "az-show-multisite.json"
    assert path.is_file(), f"missing example {path}"
    return compile_rule_set(load(str(path)).rewrite_rule_sets["api-headers"])


def test_example_adds_client_ip_to_every_request(api_headers):
    ctx = context(
        [(b"host", b"www.contoso.com"), (b"user-agent", b"curl/8.5")],
        client_ip="203.0.113.9",
        path="/api/items",
        query="page=2",
    )
    rw = api_headers.rewrite_request(ctx)
    assert rw.header_edits == ((b"x-client-ip", b"203.0.113.9"),)
    assert rw.apply(ctx.headers) == [*ctx.headers, (b"x-client-ip", b"203.0.113.9")]
    assert (rw.target, rw.url_rewritten, rw.reroute) == ("/api/items?page=2", False, False)


@pytest.mark.parametrize(
    ("agent", "device"),
    [
        (b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)", b"mobile-iPhone"),
        (b"Mozilla/5.0 (Linux; Android 14; Pixel 8)", b"mobile-Android"),
        (b"Mozilla/5.0 (linux; android 14)", b"mobile-android"),  # ignoreCase: true
    ],
)
def test_example_mobile_rule_captures_the_device_and_marks_the_query(api_headers, agent, device):
    ctx = context([(b"host", b"www.contoso.com"), (b"user-agent", agent)], query="q=shoes")
    rw = api_headers.rewrite_request(ctx)
    assert dict(rw.header_edits) == {b"x-client-ip": b"10.0.0.7", b"x-device": device}
    assert rw.query == "q=shoes&mobile=1"
    assert rw.path == "/"
    assert rw.target == "/?q=shoes&mobile=1"
    assert (rw.url_rewritten, rw.reroute) == (True, False)


def test_example_mobile_rule_on_a_request_without_query(api_headers):
    ctx = context([(b"user-agent", b"iPhone")], path="/app")
    # The value is "{var_query_string}&mobile=1", taken literally.
    assert api_headers.rewrite_request(ctx).target == "/app?&mobile=1"


def test_example_desktop_and_agentless_requests_are_not_mobile(api_headers):
    for headers in ([(b"user-agent", b"Mozilla/5.0 (Windows NT 10.0)")], []):
        rw = api_headers.rewrite_request(context(headers, query="a=b"))
        assert b"x-device" not in dict(rw.header_edits)
        assert (rw.target, rw.url_rewritten) == ("/?a=b", False)


def test_example_removes_every_server_header_from_responses(api_headers):
    response = [
        (b"server", b"Kestrel"),
        (b"content-type", b"text/plain"),
        (b"Server", b"again"),
        (b"content-length", b"2"),
    ]
    out = api_headers.rewrite_response(context(), 200, response)
    assert out == [(b"content-type", b"text/plain"), (b"content-length", b"2")]


# --- conditions -----------------------------------------------------------------------


def test_a_condition_searches_anywhere_in_the_value():
    ctx = context([(b"accept", b"text/html, */*")])
    assert request_value("yes", ctx, cond("http_req_Accept", "html")) == b"yes"
    assert request_value("yes", ctx, cond("http_req_Accept", "^html")) is None


def test_ignore_case():
    ctx = context([(b"x-env", b"Production")])
    assert request_value("1", ctx, cond("http_req_X-Env", "production")) == b"1"
    assert request_value("1", ctx, cond("http_req_X-Env", "production", ignore_case=False)) is None
    assert request_value("1", ctx, cond("http_req_X-Env", "Production", ignore_case=False)) == b"1"


def test_negate():
    ctx = context([(b"user-agent", b"curl/8")])
    assert request_value("1", ctx, cond("http_req_User-Agent", "Mozilla", negate=True)) == b"1"
    assert request_value("1", ctx, cond("http_req_User-Agent", "curl", negate=True)) is None


def test_a_negated_condition_has_no_captures():
    ctx = context([(b"user-agent", b"curl/8")])
    value = "[{http_req_User-Agent_0}{http_req_User-Agent_1}]"
    assert request_value(value, ctx, cond("http_req_User-Agent", "(Mozilla)", negate=True)) == b"[]"


def test_a_missing_header_is_the_empty_value():
    ctx = context([])
    assert request_value("1", ctx, cond("http_req_X-Flag", ".")) is None
    assert request_value("1", ctx, cond("http_req_X-Flag", "^$")) == b"1"
    assert request_value("1", ctx, cond("http_req_X-Flag", ".", negate=True)) == b"1"


def test_every_condition_must_hold():
    both = (cond("http_req_X-A", "^1$"), cond("var_uri_path", "^/api/"))
    assert request_value("ok", context([(b"x-a", b"1")], path="/api/x"), *both) == b"ok"
    assert request_value("ok", context([(b"x-a", b"2")], path="/api/x"), *both) is None
    assert request_value("ok", context([(b"x-a", b"1")], path="/web/x"), *both) is None
    assert request_value("ok", context([], path="/web/x"), *both) is None


def test_header_names_in_variables_ignore_case_and_fields_are_joined():
    ctx = context([(b"x-tag", b"a"), (b"X-Tag", b"b"), (b"cookie", b"a=1"), (b"cookie", b"b=2")])
    assert request_value("{http_req_x-TAG}", ctx) == b"a, b"
    assert request_value("{http_req_Cookie}", ctx) == b"a=1; b=2"


# --- captures -------------------------------------------------------------------------


def test_captures_of_server_variables_build_a_query_documented():
    # Condition uri_path "/(.+)/(.+)", query "category={var_uri_path_1}&product={var_uri_path_2}".
    rw = plan(
        rule(
            conditions=(cond("var_uri_path", "/(.+)/(.+)"),),
            url=UrlAction(
                path="buy.aspx",
                query_string="category={var_uri_path_1}&product={var_uri_path_2}",
            ),
        )
    ).rewrite_request(context(path="/fashion/shirts"))
    assert rw.target == "/buy.aspx?category=fashion&product=shirts"


def test_whole_match_unmatched_group_and_missing_group_are_text_or_empty():
    ctx = context([(b"x-v", b"id-42")])
    condition = cond("http_req_X-V", r"(\d+)|(never)")
    value = "{http_req_X-V_0}|{http_req_X-V_1}|{http_req_X-V_2}|{http_req_X-V_9}|{http_req_X-V}"
    assert request_value(value, ctx, condition) == b"42|42|||id-42"


def test_capture_references_spell_the_condition_variable_exactly():
    # As documented: the case of the capture must match the condition's variable.
    ctx = context([(b"user-agent", b"iPhone")])
    condition = cond("http_req_user-agent", "(iPhone)")
    assert request_value("{http_req_user-agent_1}", ctx, condition) == b"iPhone"
    assert request_value("<{http_req_User-Agent_1}>", ctx, condition) == b"<>"


def test_captures_belong_to_their_own_rule():
    rules = plan(
        rule("first", 1, (cond("var_uri_path", "^/(\\w+)"),), request={"X-A": "{var_uri_path_1}"}),
        rule("second", 2, request={"X-B": "<{var_uri_path_1}>"}),
    )
    assert edits(rules, context(path="/shop/x")) == {b"x-a": b"shop", b"x-b": b"<>"}


# --- values ---------------------------------------------------------------------------


def test_values_with_several_variables():
    ctx = context(
        [(b"host", b"WWW.Contoso.com:8443"), (b"user-agent", b"ua")],
        host="WWW.Contoso.com:8443",
        scheme="https",
        method="POST",
        path="/article.aspx",
        query="id=123&title=fabrikam",
        client_ip="192.0.2.1",
        client_port=40000,
        server_port=8443,
    )
    value = (
        "{var_request_scheme}://{var_host}{var_request_uri} from "
        "{var_client_ip}:{var_client_port} to {var_server_port} "
        "{var_http_method} {var_http_version} ssl={var_ssl_enabled} ua={http_req_User-Agent}"
    )
    assert request_value(value, ctx) == (
        b"https://www.contoso.com/article.aspx?id=123&title=fabrikam from "
        b"192.0.2.1:40000 to 8443 POST HTTP/1.1 ssl=on ua=ua"
    )


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        ("uri_path", b"/article.aspx"),
        ("query_string", b"id=123&title=fabrikam"),
        ("request_query", b"id=123&title=fabrikam"),
        ("request_uri", b"/article.aspx?id=123&title=fabrikam"),
        ("host", b"contoso.com"),
        ("request_scheme", b"http"),
        ("ssl_enabled", None),  # "" when not TLS: the header is removed
        ("add_x_forwarded_for_proxy", b"198.51.100.1, 10.0.0.7"),
        ("cookie_session", b"abc"),
        ("cookie_missing", None),
    ],
)
def test_server_variables_documented(variable, expected):
    # The documentation's request: http://contoso.com:8080/article.aspx?id=123&title=fabrikam
    ctx = context(
        [
            (b"host", b"contoso.com:8080"),
            (b"x-forwarded-for", b"198.51.100.1"),
            (b"cookie", b"theme=dark; session=abc"),
        ],
        host="contoso.com:8080",
        path="/article.aspx",
        query="id=123&title=fabrikam",
    )
    assert request_value("{var_" + variable + "}", ctx) == expected


def test_host_variable_of_an_ipv6_literal_and_forwarded_for_without_a_header():
    ctx = context([], host="[2001:db8::1]:8080", client_ip="2001:db8::9")
    assert request_value("{var_host} {var_add_x_forwarded_for_proxy}", ctx) == (
        b"[2001:db8::1] 2001:db8::9"
    )


def test_unknown_variables_are_empty():
    ctx = context([(b"user-agent", b"ua")])
    assert request_value("a{var_no_such_thing}b{http_req_X-Missing}c{http_resp_Server}d", ctx) == (
        b"abcd"
    )
    assert request_value("{var_client_certificate}{var_sent_bytes}", ctx) is None


def test_text_in_braces_that_is_not_a_variable_stays():
    assert request_value('{"a": 1} {var_ {unknown}', context()) == b'{"a": 1} {var_ {unknown}'


def test_non_latin1_text_is_sent_as_utf8():
    assert request_value("caf\u00e9 \u20ac", context()) == "caf\u00e9 \u20ac".encode()


def test_control_characters_in_values_become_spaces_and_blanks_are_trimmed():
    rules = plan(rule(request={"X-A": "  one\r\ntwo\x00three\tfour  ", "X-B": "\r\n"}))
    assert edits(rules, context()) == {b"x-a": b"one  two three\tfour", b"x-b": None}


# --- header actions -------------------------------------------------------------------


def test_set_replaces_every_field_of_the_name_in_place_and_empty_removes():
    rules = plan(rule(request={"X-Tag": "new", "X-Gone": "", "X-New": "added"}))
    headers = [
        (b"host", b"h"),
        (b"x-tag", b"1"),
        (b"x-gone", b"1"),
        (b"accept", b"*/*"),
        (b"X-Tag", b"2"),
    ]
    out = rules.rewrite_request(context(headers)).apply(headers)
    assert out == [(b"host", b"h"), (b"x-tag", b"new"), (b"accept", b"*/*"), (b"x-new", b"added")]


def test_rule_order_is_by_sequence_and_the_later_rule_wins():
    later = rule("later", 200, request={"X-Who": "later"}, url=UrlAction(path="/later"))
    earlier = rule(
        "earlier",
        100,
        request={"X-Who": "earlier", "X-Only": "earlier"},
        url=UrlAction(path="/earlier", query_string="e=1"),
    )
    for rules in (plan(later, earlier), plan(earlier, later)):
        rw = rules.rewrite_request(context())
        assert rw.header_edits == ((b"x-who", b"later"), (b"x-only", b"earlier"))
        assert rw.target == "/later?e=1"


def test_rules_see_the_request_as_the_client_sent_it():
    rules = plan(
        rule("set", 1, request={"X-A": "1"}, url=UrlAction(path="/moved")),
        rule("check", 2, (cond("http_req_X-A", "1"),), request={"X-Saw-A": "yes"}),
        rule("path", 3, request={"X-Path": "{var_uri_path}"}),
    )
    assert edits(rules, context(path="/orig")) == {b"x-a": b"1", b"x-path": b"/orig"}


def test_removing_host_connection_and_framing_headers_is_never_done():
    rules = plan(
        rule(
            request={
                "Host": "",
                "Connection": "close",
                "Upgrade": "h2c",
                "Content-Length": "0",
                "Transfer-Encoding": "chunked",
                "Bad Name": "x",
            }
        ),
        rule("empty-host", 2, request={"X-Keep": "k"}),
        rule("host-to-nothing", 3, request={"Host": "{var_nothing}"}),
    )
    assert edits(rules, context()) == {b"x-keep": b"k"}


def test_host_can_be_set():
    rules = plan(rule(request={"Host": "backend.internal"}))
    headers = [(b"host", b"www.contoso.com"), (b"accept", b"*/*")]
    assert rules.rewrite_request(context(headers)).apply(headers) == [
        (b"host", b"backend.internal"),
        (b"accept", b"*/*"),
    ]


def test_edits_apply_after_the_gateway_added_forwarding_headers():
    # Documented scenario: set X-Forwarded-For to the client address alone.
    rules = plan(rule(request={"X-Forwarded-For": "{var_client_ip}"}))
    client = [(b"host", b"www.contoso.com"), (b"x-forwarded-for", b"198.51.100.1:1234")]
    ctx = context(client, client_ip="10.9.8.7")
    built = forwarding.request_headers(
        client,
        client_ip="10.9.8.7",
        scheme="http",
        port=80,
        host=b"www.contoso.com",
        host_override=None,
        content_length=None,
        chunked=False,
        websocket=False,
    )
    out = rules.rewrite_request(ctx).apply(built)
    assert [v for k, v in out if k == b"x-forwarded-for"] == [b"10.9.8.7"]
    assert dict(out)[b"x-forwarded-proto"] == b"http"


def test_apply_header_edits_without_edits_copies():
    headers = [(b"a", b"1")]
    out = apply_header_edits(headers, ())
    assert out == headers and out is not headers


# --- responses ------------------------------------------------------------------------


def test_location_header_rewrite_documented():
    # Condition on the response's Location, value built from its captures.
    rules = plan(
        rule(
            conditions=(cond("http_resp_Location", r"(https?):\/\/.*azurewebsites\.net(.*)$"),),
            response={"Location": "{http_resp_Location_1}://contoso.com{http_resp_Location_2}"},
        )
    )
    moved = [(b"location", b"https://contoso.azurewebsites.net/path2?x=1"), (b"x-a", b"b")]
    assert rules.rewrite_response(context(), 302, moved) == [
        (b"location", b"https://contoso.com/path2?x=1"),
        (b"x-a", b"b"),
    ]
    elsewhere = [(b"location", b"https://example.org/")]
    assert rules.rewrite_response(context(), 302, elsewhere) == elsewhere


def test_response_conditions_may_read_status_request_and_response():
    rules = plan(
        rule(
            conditions=(
                cond("var_http_status", "^30[12]$"),
                cond("http_req_X-Debug", "on"),
                cond("http_resp_Content-Type", "^text/"),
            ),
            response={"X-Seen": "{var_http_status} {var_uri_path} {http_resp_Content-Type}"},
        )
    )
    ctx = context([(b"x-debug", b"on")], path="/p")
    response = [(b"content-type", b"text/html")]
    assert rules.rewrite_response(ctx, 302, response) == [
        (b"content-type", b"text/html"),
        (b"x-seen", b"302 /p text/html"),
    ]
    assert rules.rewrite_response(ctx, 200, response) == response
    assert rules.rewrite_response(context([]), 302, response) == response


def test_a_rule_with_a_response_condition_does_not_touch_requests():
    rules = plan(
        rule(
            conditions=(cond("http_resp_Server", "nothing", negate=True),),
            request={"X-Req": "1"},
            response={"X-Resp": "1"},
        )
    )
    assert rules.rewrite_request(context()).header_edits == ()
    assert rules.rewrite_response(context(), 200, []) == [(b"x-resp", b"1")]


def test_request_rules_leave_responses_alone_and_response_rules_requests():
    rules = plan(rule("req", 1, request={"X-A": "1"}), rule("resp", 2, response={"X-B": "2"}))
    assert edits(rules, context()) == {b"x-a": b"1"}
    assert rules.rewrite_response(context(), 204, [(b"x-a", b"0")]) == [
        (b"x-a", b"0"),
        (b"x-b", b"2"),
    ]


# --- URL ------------------------------------------------------------------------------


def test_path_rewrite_with_reroute_documented():
    # Query category=shoes -> path /listing1, path map evaluated again.
    rules = plan(
        rule(
            "shoes",
            1,
            (cond("var_query_string", "category=shoes"),),
            url=UrlAction(path="/listing1", reroute=True),
        ),
        rule(
            "bags",
            2,
            (cond("var_query_string", "category=bags"),),
            url=UrlAction(path="/listing2", reroute=True),
        ),
    )
    rw = rules.rewrite_request(context(path="/listing", query="category=shoes"))
    assert (rw.path, rw.query, rw.reroute, rw.url_rewritten) == (
        "/listing1",
        "category=shoes",
        True,
        True,
    )
    rw = rules.rewrite_request(context(path="/listing", query="category=any"))
    assert (rw.target, rw.reroute, rw.url_rewritten) == ("/listing?category=any", False, False)


def test_article_path_and_query_documented():
    rules = plan(
        rule(
            conditions=(cond("var_uri_path", ".*article/(.*)/(.*)"),),
            url=UrlAction(
                path="/article.aspx", query_string="id={var_uri_path_1}&title={var_uri_path_2}"
            ),
        )
    )
    rw = rules.rewrite_request(context(path="/article/123/fabrikam"))
    assert (rw.target, rw.reroute) == ("/article.aspx?id=123&title=fabrikam", False)


def test_url_parts_left_out_are_kept_and_an_empty_query_clears():
    ctx = context(path="/a/b", query="x=1")
    assert plan(rule(url=UrlAction(path="/c"))).rewrite_request(ctx).target == "/c?x=1"
    assert plan(rule(url=UrlAction(query_string="y=2"))).rewrite_request(ctx).target == "/a/b?y=2"
    assert plan(rule(url=UrlAction(path="", query_string=""))).rewrite_request(ctx).target == "/a/b"
    assert plan(rule(url=UrlAction(query_string="?z=3"))).rewrite_request(ctx).target == "/a/b?z=3"


def test_rewritten_url_is_a_valid_request_target():
    rules = plan(
        rule(
            conditions=(cond("http_req_X-Name", "(.*)"),),
            url=UrlAction(
                path="shop/{http_req_X-Name_1}#frag?", query_string="n={http_req_X-Name}&a=é"
            ),
        )
    )
    ctx = context([(b"x-name", b"a b\xe9%2F")])
    rw = rules.rewrite_request(ctx)
    assert rw.path == "/shop/a%20b%E9%2F%23frag%3F"
    assert rw.query == "n=a%20b%E9%2F&a=%C3%A9"
    h11.Connection(h11.CLIENT).send(
        h11.Request(method="GET", target=rw.target, headers=[(b"host", b"h")])
    )


def test_an_empty_rendered_path_is_the_root():
    rules = plan(rule(url=UrlAction(path="{var_nothing}")))
    assert rules.rewrite_request(context(path="/x")).path == "/"


# --- patterns that do not compile -----------------------------------------------------


def test_a_pattern_that_does_not_compile_never_matches_and_never_raises():
    rules = plan(
        rule(
            "bad",
            1,
            (cond("var_uri_path", "([", negate=True),),
            request={"X-Bad": "1"},
            response={"X-Bad": "1"},
        ),
        rule("good", 2, request={"X-Good": "1"}),
    )
    assert edits(rules, context()) == {b"x-good": b"1"}
    assert rules.rewrite_response(context(), 200, []) == []


def test_an_empty_rule_set_changes_nothing():
    rules = plan()
    ctx = context(path="/p", query="q")
    rw = rules.rewrite_request(ctx)
    assert (rw.target, rw.header_edits, rw.reroute) == ("/p?q", (), False)
    assert rules.rewrite_response(ctx, 200, [(b"a", b"b")]) == [(b"a", b"b")]


# --- properties -----------------------------------------------------------------------

# Everything a request can carry, and more: control characters, non-ASCII, odd names.
any_bytes = st.binary(max_size=40)
header_lists = st.lists(
    st.tuples(
        st.sampled_from([b"x-a", b"X-A", b"user-agent", b"cookie", b"x-forwarded-for"]) | any_bytes,
        any_bytes,
    ),
    max_size=8,
)
texts = st.text(max_size=30)

COPY_EVERYTHING = plan(
    rule(
        "copy",
        1,
        (cond("http_req_X-A", "(.*)(.?)"), cond("var_uri_path", "(.*)")),
        request={
            "X-A": "{http_req_X-A}",
            "X-Cap": "{http_req_X-A_1}|{http_req_X-A_2}|{var_uri_path_1}",
            "X-Vars": "{var_host}{var_request_uri}{var_client_ip}{var_http_method}"
            "{var_cookie_a}{var_add_x_forwarded_for_proxy}{http_req_User-Agent}",
            "Host": "{var_host}",
        },
        response={"X-Back": "{http_resp_X-A}{http_req_Cookie}", "X-A": "{http_resp_X-A_1}"},
        url=UrlAction(
            path="{var_uri_path}{http_req_X-A}", query_string="{var_query_string}&{http_req_X-A}"
        ),
    ),
    rule(
        "copy-response",
        2,
        (cond("http_resp_X-A", "(.+)"),),
        response={"X-Resp-Cap": "{http_resp_X-A_1}"},
    ),
)


def clean(name: bytes, value: bytes) -> bool:
    return (
        not any(c in value for c in b"\r\n\x00")
        and value == value.strip(b" \t")
        and value != b""
        and not any(c in name for c in b"\r\n\x00")
    )


@settings(max_examples=300, deadline=None)
@given(
    headers=header_lists,
    response=header_lists,
    path=texts,
    query=texts,
    host=texts,
    method=texts,
    client_ip=texts,
    status=st.integers(100, 599),
)
def test_random_requests_never_raise_and_written_headers_are_clean(
    headers, response, path, query, host, method, client_ip, status
):
    ctx = RequestContext(
        client_ip=client_ip,
        client_port=1,
        server_port=2,
        scheme="https",
        method=method,
        path=path,
        query=query,
        host=host,
        headers=headers,
    )
    rw = COPY_EVERYTHING.rewrite_request(ctx)
    written = [(name, value) for name, value in rw.header_edits if value is not None]
    assert all(clean(name, value) for name, value in written)
    # Whatever the request held, the gateway can send the rewritten URL and headers.
    h11.Connection(h11.CLIENT).send(
        h11.Request(
            method="GET", target=rw.target, headers=list(dict([(b"host", b"h"), *written]).items())
        )
    )
    out = rw.apply(headers)
    assert all(value is not None for _, value in out)
    replaced = {name for name, _ in rw.header_edits}
    assert [h for h in out if h[0].lower() not in replaced] == [
        h for h in headers if h[0].lower() not in replaced
    ]

    back = COPY_EVERYTHING.rewrite_response(ctx, status, response)
    edited = {b"x-back", b"x-a", b"x-resp-cap"}
    written = [(n, v) for n, v in back if n.lower() in edited]
    assert all(clean(n, v) for n, v in written)
    assert [h for h in back if h[0].lower() not in edited] == [
        h for h in response if h[0].lower() not in edited
    ]
    server = h11.Connection(h11.SERVER)
    server.receive_data(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n")
    server.next_event()
    server.send(h11.Response(status_code=status if status >= 200 else 200, headers=written))


@settings(max_examples=300, deadline=None)
@given(
    pattern=texts,
    value=texts,
    variable=st.sampled_from(["http_req_X-A", "http_resp_X-A", "var_uri_path", "var_host", "x"]),
    negate=st.booleans(),
    ignore_case=st.booleans(),
    headers=header_lists,
)
def test_random_rule_sets_never_raise(pattern, value, variable, negate, ignore_case, headers):
    rule_set = RewriteRuleSet(
        "s",
        (
            rule(
                conditions=(cond(variable, pattern, ignore_case, negate),),
                request={"X-Out": value, "X-Out2": pattern},
                response={"X-Out": value},
                url=UrlAction(path=value, query_string=pattern),
            ),
        ),
    )
    rules = compile_rule_set(rule_set)
    ctx = context(headers, path="/p", query="q")
    rw = rules.rewrite_request(ctx)
    for name, written in rw.header_edits:
        assert written is None or clean(name, written)
    assert rw.target.startswith("/")
    assert all(0x21 <= c <= 0x7E for c in rw.target.encode("ascii"))
    for name, written in rules.rewrite_response(ctx, 200, headers):
        if name == b"x-out":
            assert clean(name, written)
