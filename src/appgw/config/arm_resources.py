"""ARM resources of an application gateway -> the model's resources.

One function per ARM collection. Each reads the properties it maps, then
lets ArmReader.finish sort out the rest (see arm.py). A broken reference
becomes "" and a broken value a placeholder, already reported; validation
checks ranges and references on the result.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from appgw.config.arm_backend_trust import backend_trust, trusted_certificates
from appgw.config.arm_certificates import certificate
from appgw.config.arm_tls import ssl_policy, ssl_profile, trusted_client_certificate
from appgw.config.arm_waf import policy_ref
from appgw.config.error_pages import read_arm as read_error_pages
from appgw.config.fields import Section, join, read_status_codes
from appgw.config.model import (
    Config,
    Gateway,
    HeaderAction,
    Http2,
    Limits,
    Listener,
    PathMap,
    PathRule,
    Pool,
    Probe,
    Redirect,
    RewriteCondition,
    RewriteRule,
    RewriteRuleSet,
    Rule,
    Server,
    Setting,
    UrlAction,
    ValueMatcher,
)

if TYPE_CHECKING:
    from appgw.config.arm_reader import ArmReader

RULE_TYPES = {"basic": "basic", "pathbasedrouting": "path"}


def build_config(arm: ArmReader, p: Section, source: str) -> Config:
    """The gateway's properties -> Config (without warnings)."""
    ports = {n: _frontend_port(arm, s) for n, s in arm.resources(p, "frontendPorts")}
    ips = {n: _frontend_ip(arm, s) for n, s in arm.resources(p, "frontendIPConfigurations")}
    base = Path(source).absolute().parent  # file paths of custom error pages
    return Config(
        source=source,
        certificates={n: certificate(arm, n, s) for n, s in arm.resources(p, "sslCertificates")},
        trusted_root_certificates=trusted_certificates(arm, p),  # arm_backend_trust.py
        ssl_policy=ssl_policy(arm, p.get_section("sslPolicy")),
        trusted_client_certificates={
            n: trusted_client_certificate(arm, n, s)
            for n, s in arm.resources(p, "trustedClientCertificates")
        },
        ssl_profiles={n: ssl_profile(arm, n, s) for n, s in arm.resources(p, "sslProfiles")},
        listeners={
            n: _listener(arm, n, s, ports, ips, base) for n, s in arm.resources(p, "httpListeners")
        },
        pools={n: _pool(arm, n, s) for n, s in arm.resources(p, "backendAddressPools")},
        settings={
            n: _setting(arm, n, s) for n, s in arm.resources(p, "backendHttpSettingsCollection")
        },
        probes={n: _probe(arm, n, s) for n, s in arm.resources(p, "probes")},
        redirects={n: _redirect(arm, n, s) for n, s in arm.resources(p, "redirectConfigurations")},
        rewrite_rule_sets={
            n: _rewrite_rule_set(arm, n, s) for n, s in arm.resources(p, "rewriteRuleSets")
        },
        path_maps={n: _path_map(arm, n, s) for n, s in arm.resources(p, "urlPathMaps")},
        rules={n: _rule(arm, n, s) for n, s in arm.resources(p, "requestRoutingRules")},
        error_pages=read_error_pages(arm, p, base),
        gateway=_gateway(arm, p),
    )


def _gateway(arm: ArmReader, p: Section) -> Gateway:
    """enableHttp2, and globalConfiguration: request and response buffering (on unless false)."""
    http2 = Http2(enabled=p.get_bool("enableHttp2", False))
    if (s := p.get_section("globalConfiguration")) is None:
        return Gateway(http2=http2)
    limits = Limits(
        request_buffering=s.get_bool("enableRequestBuffering", True),
        response_buffering=s.get_bool("enableResponseBuffering", True),
    )
    arm.finish(s, "globalConfiguration")
    return Gateway(limits=limits, http2=http2)


def _frontend_port(arm: ArmReader, s: Section) -> int | None:
    port = s.get_opt_int("port")
    if port is None and not s.has("port"):
        s.error("port", "required")
    arm.finish(s, "frontendPorts")
    return port


def _frontend_ip(arm: ArmReader, s: Section) -> str:
    address = s.get_opt_str("privateIPAddress") or arm.public_address(s.raw("publicIPAddress"))
    arm.finish(s, "frontendIPConfigurations")
    return address


def _listener(
    arm: ArmReader,
    name: str,
    s: Section,
    ports: dict[str, int | None],
    ips: dict[str, str],
    base: Path,
) -> Listener:
    port = 0
    port_name = arm.ref(s, "frontendPort", "frontendPorts")
    if port_name is None:
        s.error("frontendPort", "required", placeholder=True)
    elif port_name and port_name not in ports:
        message = f"no frontendPorts entry named {port_name!r}"
        s.error("frontendPort", message, placeholder=True)
    elif port_name:
        port = ports[port_name] or 0
        if not port:
            arm.quiet.add(s.key_path("frontendPort"))
    address = "0.0.0.0"
    ip_name = arm.ref(s, "frontendIPConfiguration", "frontendIPConfigurations")
    if ip_name and ip_name not in ips:
        s.error("frontendIPConfiguration", f"no frontendIPConfigurations entry named {ip_name!r}")
    elif ip_name:
        address = ips[ip_name]
    host_names = s.get_strs("hostNames")
    host_name = s.get_opt_str("hostName")
    if host_name and host_name not in host_names:
        host_names = (host_name, *host_names)
    listener = Listener(
        name=name,
        protocol=s.get_str("protocol", "", required=True).lower(),
        port=port,
        address=address,
        host_names=host_names,
        certificate=arm.ref(s, "sslCertificate", "sslCertificates"),
        require_sni=s.get_bool("requireServerNameIndication", False),
        ssl_profile=arm.ref(s, "sslProfile", "sslProfiles"),
        error_pages=read_error_pages(arm, s, base),
        firewall_policy=policy_ref(arm, s),
    )
    arm.finish(s, "httpListeners")
    return listener


def _pool(arm: ArmReader, name: str, s: Section) -> Pool:
    servers = []
    for a in s.get_sections("backendAddresses"):
        ip_address, fqdn = a.get_opt_str("ipAddress"), a.get_opt_str("fqdn")
        if ip_address or fqdn:
            servers.append(Server(ip_address or fqdn or ""))
        elif not {a.key_path("ipAddress"), a.key_path("fqdn")} & arm.quiet:
            a.error(None, "needs ipAddress or fqdn")
        arm.finish(a, "backendAddresses")
    arm.finish(s, "backendAddressPools")
    if not servers and not s.has("backendAddresses"):
        servers = [Server(address) for address in arm.nic_members(s, name)]
    return Pool(name, tuple(servers))


def _enabled(s: Section, key: str, default: bool) -> bool:
    value = s.get_str(key, "Enabled" if default else "Disabled").lower()
    if value not in ("enabled", "disabled"):
        s.error(key, "must be Enabled or Disabled")
        return default
    return value == "enabled"


def _setting(arm: ArmReader, name: str, s: Section) -> Setting:
    d = Setting(name)
    draining, drain_timeout = False, d.drain_timeout
    c = s.get_section("connectionDraining")
    if c is not None:
        draining = c.get_bool("enabled", False)
        drain_timeout = c.get_int("drainTimeoutInSec", d.drain_timeout)
        arm.finish(c, "connectionDraining")
    setting = Setting(
        name=name,
        port=s.get_int("port", d.port),
        protocol=s.get_str("protocol", d.protocol).lower(),
        request_timeout=s.get_int("requestTimeout", d.request_timeout),
        host_name=s.get_opt_str("hostName"),
        pick_host_name_from_backend_address=s.get_bool("pickHostNameFromBackendAddress", False),
        path=s.get_opt_str("path"),
        cookie_based_affinity=_enabled(s, "cookieBasedAffinity", False),
        affinity_cookie_name=s.get_str("affinityCookieName", d.affinity_cookie_name),
        connection_draining=draining,
        drain_timeout=drain_timeout,
        probe=arm.ref(s, "probe", "probes"),
        **backend_trust(arm, s),
        validate_cert_chain_and_expiry=s.get_bool("validateCertChainAndExpiry", True),
        validate_sni=s.get_bool("validateSNI", True),
        sni_name=s.get_opt_str("sniName") or None,
    )
    arm.finish(s, "backendHttpSettingsCollection")
    return setting


def _probe(arm: ArmReader, name: str, s: Section) -> Probe:
    d = Probe(name)
    codes, body = d.match_status_codes, None
    m = s.get_section("match")
    if m is not None:
        codes = read_status_codes(m, "statusCodes", m.get_strs("statusCodes"), codes)
        body = m.get_opt_str("body")
        arm.finish(m, "match")
    host = s.get_opt_str("host") or None
    # pickHostNameFromBackendSettings: the name in API versions with backendSettingsCollection.
    pick_http = s.get_bool("pickHostNameFromBackendHttpSettings", False)
    pick = s.get_bool("pickHostNameFromBackendSettings", False)
    if host is not None and pick and not pick_http:
        # Validation would name pickHostNameFromBackendHttpSettings: name the key in the file.
        s.error("host", "cannot be set with pickHostNameFromBackendSettings", placeholder=True)
    probe = Probe(
        name=name,
        protocol=s.get_str("protocol", d.protocol).lower(),
        host=host,
        pick_host_name_from_settings=pick_http or pick,
        path=s.get_str("path", d.path),
        port=s.get_opt_int("port"),
        interval=s.get_int("interval", d.interval),
        timeout=s.get_int("timeout", d.timeout),
        unhealthy_threshold=s.get_int("unhealthyThreshold", d.unhealthy_threshold),
        match_status_codes=codes,
        match_body=body or None,
        min_servers=s.get_int("minServers", d.min_servers),
    )
    arm.finish(s, "probes")
    return probe


def _redirect(arm: ArmReader, name: str, s: Section) -> Redirect:
    redirect = Redirect(
        name=name,
        redirect_type=s.get_str("redirectType", "Permanent").lower(),
        target_listener=arm.ref(s, "targetListener", "httpListeners"),
        target_url=s.get_opt_str("targetUrl"),
        include_path=s.get_bool("includePath", False),
        include_query_string=s.get_bool("includeQueryString", False),
    )
    arm.finish(s, "redirectConfigurations")
    return redirect


def _headers(arm: ArmReader, s: Section, key: str) -> tuple[HeaderAction, ...]:
    actions = []
    for h in s.get_sections(key):
        matcher = None
        m = h.get_section("headerValueMatcher")
        if m is not None:
            matcher = ValueMatcher(
                pattern=m.get_str("pattern", "", required=True),
                ignore_case=m.get_bool("ignoreCase", False),
                negate=m.get_bool("negate", False),
            )
            arm.finish(m, "headerValueMatcher")
        actions.append(
            HeaderAction(
                h.get_str("headerName", "", required=True), h.get_str("headerValue", ""), matcher
            )
        )
        arm.finish(h, "headerConfigurations")
    return tuple(actions)


def _rewrite_rule(arm: ArmReader, s: Section, parent: str) -> RewriteRule:
    name = s.get_str("name", "", required=True)
    if name:
        s.path = join(parent, f"rewriteRules.{name}")
    conditions = []
    for c in s.get_sections("conditions"):
        conditions.append(
            RewriteCondition(
                variable=c.get_str("variable", "", required=True),
                pattern=c.get_str("pattern", "", required=True),
                ignore_case=c.get_bool("ignoreCase", True),
                negate=c.get_bool("negate", False),
            )
        )
        arm.finish(c, "conditions")
    request_headers: tuple[HeaderAction, ...] = ()
    response_headers: tuple[HeaderAction, ...] = ()
    url = None
    a = s.get_section("actionSet")
    if a is not None:
        request_headers = _headers(arm, a, "requestHeaderConfigurations")
        response_headers = _headers(arm, a, "responseHeaderConfigurations")
        u = a.get_section("urlConfiguration")
        if u is not None:
            url = UrlAction(
                path=u.get_opt_str("modifiedPath"),
                query_string=u.get_opt_str("modifiedQueryString"),
                reroute=u.get_bool("reroute", False),
            )
            arm.finish(u, "urlConfiguration")
        arm.finish(a, "actionSet")
    rule = RewriteRule(
        name=name,
        sequence=s.get_int("ruleSequence", 100),
        conditions=tuple(conditions),
        request_headers=request_headers,
        response_headers=response_headers,
        url=url,
    )
    arm.finish(s, "rewriteRules")
    return rule


def _rewrite_rule_set(arm: ArmReader, name: str, s: Section) -> RewriteRuleSet:
    rules = [_rewrite_rule(arm, r, s.path) for r in s.get_sections("rewriteRules")]
    arm.finish(s, "rewriteRuleSets")
    return RewriteRuleSet(name, tuple(sorted(rules, key=lambda r: r.sequence)))


def _path_map(arm: ArmReader, name: str, s: Section) -> PathMap:
    rules = []
    for rule_name, r in arm.resources(s, "pathRules"):
        rules.append(
            PathRule(
                name=rule_name,
                paths=r.get_strs("paths"),
                pool=arm.ref(r, "backendAddressPool", "backendAddressPools"),
                setting=arm.ref(r, "backendHttpSettings", "backendHttpSettingsCollection"),
                redirect=arm.ref(r, "redirectConfiguration", "redirectConfigurations"),
                rewrite_rule_set=arm.ref(r, "rewriteRuleSet", "rewriteRuleSets"),
                firewall_policy=policy_ref(arm, r),
            )
        )
        arm.finish(r, "pathRules")
    path_map = PathMap(
        name=name,
        rules=tuple(rules),
        default_pool=arm.ref(s, "defaultBackendAddressPool", "backendAddressPools"),
        default_setting=arm.ref(s, "defaultBackendHttpSettings", "backendHttpSettingsCollection"),
        default_redirect=arm.ref(s, "defaultRedirectConfiguration", "redirectConfigurations"),
        default_rewrite_rule_set=arm.ref(s, "defaultRewriteRuleSet", "rewriteRuleSets"),
    )
    arm.finish(s, "urlPathMaps")
    return path_map


def _rule(arm: ArmReader, name: str, s: Section) -> Rule:
    rule_type = s.get_str("ruleType", "Basic")
    rule = Rule(
        name=name,
        listener=arm.ref(s, "httpListener", "httpListeners") or "",
        kind=RULE_TYPES.get(rule_type.lower(), rule_type),
        priority=s.get_opt_int("priority"),
        pool=arm.ref(s, "backendAddressPool", "backendAddressPools"),
        setting=arm.ref(s, "backendHttpSettings", "backendHttpSettingsCollection"),
        redirect=arm.ref(s, "redirectConfiguration", "redirectConfigurations"),
        path_map=arm.ref(s, "urlPathMap", "urlPathMaps"),
        rewrite_rule_set=arm.ref(s, "rewriteRuleSet", "rewriteRuleSets"),
    )
    arm.finish(s, "requestRoutingRules")
    return rule
