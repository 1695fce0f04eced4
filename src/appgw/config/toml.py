"""appgw's own TOML format -> a Draft configuration.

The format is shown in full in conf/appgw.toml. Reading is strict: an
unknown key or a value of the wrong type is an error naming its key path
("listeners.web.prot: unknown key"), and reading goes on to find the rest.
File paths (certificates, pid file, logs) are relative to the directory of
the configuration file. Checks across resources (references, ranges,
conflicts) belong to validate.py.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from appgw.config import toml_tls, toml_waf
from appgw.config.certs import CertError, ca_to_pem, pem_pair, pfx_to_pem
from appgw.config.draft import Draft
from appgw.config.error_pages import read_toml as read_error_pages
from appgw.config.fields import Invalid, Section, join, read_status_codes
from appgw.config.model import (
    Admin,
    Certificate,
    Config,
    Gateway,
    Http2,
    Limits,
    Listener,
    PathMap,
    PathRule,
    Pool,
    Probe,
    Redirect,
    Rule,
    Server,
    Setting,
)
from appgw.config.toml_rewrites import rewrite_rule_set, sub_name


def build(data: Mapping[str, Any], source: str) -> Draft:
    """A parsed TOML document (tomllib's dict) -> Draft; `source` is its file."""
    reader = _Reader(source)
    root = Section(data, "", reader.errors, quiet=reader.quiet)
    gateway = reader.gateway(root.get_section("gateway"))
    policy = toml_tls.ssl_policy(root.get_section("ssl_policy"))
    error_pages = read_error_pages(root.get_section("error_pages"), reader.base)
    collections: dict[str, Any] = {}
    for key, read in reader.collections().items():
        collections[key] = {name: read(name, s) for name, s in reader.named(root, key)}
    waf = toml_waf.read(root, reader.base)
    root.reject_unused()
    config = Config(
        source=source,
        gateway=gateway,
        ssl_policy=policy,
        error_pages=error_pages,
        files=tuple(dict.fromkeys(reader.files)),
        **collections,
        **waf,
    )
    toml_waf.check(config, reader.errors)
    return Draft(config, tuple(reader.errors), frozenset(reader.quiet))


def parse_server(text: str) -> Server:
    """ "host", "host:port", "[v6]:port" or a bare IPv6 address -> Server."""
    text = text.strip()
    port: str | None = None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise Invalid(f"{text!r} is not host, host:port or [IPv6]:port")
        port = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host = text
    if not host:
        raise Invalid(f"no host in {text!r}")
    if port is None:
        return Server(host)
    if not port.isdigit():
        raise Invalid(f"bad port in {text!r}")
    return Server(host, int(port))


class _Reader:
    def __init__(self, source: str) -> None:
        self.base = Path(source).absolute().parent
        self.errors: list[str] = []
        self.quiet: set[str] = set()  # shared with every Section of this load
        self.files: list[str] = []  # every file read besides the configuration

    def collections(self) -> dict[str, Any]:
        return {
            "certificates": self.certificate,
            "trusted_root_certificates": self.trusted_root,
            "trusted_client_certificates": lambda name, s: toml_tls.trusted_client_certificate(
                self, name, s
            ),
            "ssl_profiles": toml_tls.ssl_profile,
            "listeners": self.listener,
            "pools": self.pool,
            "settings": self.setting,
            "probes": self.probe,
            "redirects": self.redirect,
            "rewrite_rule_sets": rewrite_rule_set,
            "path_maps": self.path_map,
            "rules": self.rule,
        }

    def named(self, root: Section, key: str) -> Iterator[tuple[str, Section]]:
        table = root.get_section(key)
        if table is None:
            return
        for name in table.keys():
            section = table.sub(table.data[name], join(key, name))
            if section is not None:
                yield name, section

    def path(self, value: str) -> str:
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else self.base / path)

    def opt_path(self, s: Section, key: str) -> str | None:
        value = s.get_opt_str(key)
        return value if value in (None, "", "-") else self.path(value)

    def read(self, s: Section, key: str, value: str) -> bytes | None:
        path = self.path(value)
        self.files.append(path)
        try:
            return Path(path).read_bytes()
        except OSError as e:
            s.error(key, f"cannot read {path}: {e.strerror or e}")
            return None

    # -- resources ----------------------------------------------------------

    def gateway(self, s: Section | None) -> Gateway:
        d = Gateway()
        if s is None:
            return d
        gateway = Gateway(
            workers=s.get_int("workers", d.workers),
            pid_file=self.opt_path(s, "pid_file"),
            user=s.get_opt_str("user"),
            group=s.get_opt_str("group"),
            error_log=self.opt_path(s, "error_log"),
            access_log=self.opt_path(s, "access_log"),
            drain_grace=s.get_float("drain_grace", d.drain_grace),
            stall_timeout=s.get_float("stall_timeout", d.stall_timeout),
            watch=s.get_bool("watch", d.watch),
            affinity_secret=s.get_str("affinity_secret", d.affinity_secret),
            limits=self.limits(s.get_section("limits")),
            http2=self.typed(Http2, s.get_section("http2")),
            admin=self.admin(s.get_section("admin")),
        )
        s.reject_unused()
        return gateway

    def admin(self, s: Section | None) -> Admin | None:
        if s is None:
            return None
        admin = Admin(
            port=s.get_int("port", 0, required=True),
            address=s.get_str("address", "127.0.0.1"),
            public=s.get_bool("public", False),
        )
        s.reject_unused()
        return admin

    def limits(self, s: Section | None) -> Limits:
        return self.typed(Limits, s)

    def typed(self, kind: Any, s: Section | None) -> Any:
        """A section of plain values (booleans, numbers) read as the fields of `kind`."""
        if s is None:
            return kind()
        values: dict[str, Any] = {}
        for field in attrs.fields(kind):
            default = field.default
            if isinstance(default, bool):
                values[field.name] = s.get_bool(field.name, default)
            elif isinstance(default, int):
                values[field.name] = s.get_int(field.name, default)
            elif isinstance(default, float):
                values[field.name] = s.get_float(field.name, default)
        s.reject_unused()
        return kind(**values)

    def certificate(self, name: str, s: Section) -> Certificate:
        cert, key = s.get_opt_str("cert"), s.get_opt_str("key")
        pfx, password = s.get_opt_str("pfx"), s.get_opt_str("password")
        s.reject_unused()
        pems = None
        try:
            if pfx is not None and (cert is not None or key is not None):
                s.error(None, "give cert and key, or pfx, not both")
            elif pfx is not None:
                data = self.read(s, "pfx", pfx)
                pems = None if data is None else pfx_to_pem(data, password)
            elif cert is not None:
                cert_data = self.read(s, "cert", cert)
                key_data = None if key is None else self.read(s, "key", key)
                if cert_data is not None and (key is None or key_data is not None):
                    pems = pem_pair(cert_data, key_data, password)
            elif not s.has("cert") and not s.has("pfx"):
                s.error(None, "needs cert and key, or pfx")
        except CertError as e:
            s.error("pfx" if pfx is not None else e.part, str(e))
        if pems is None:
            self.quiet.update({s.key_path("cert"), s.key_path("key")})
            pems = (b"", b"")
        return Certificate(name, pems[0], pems[1], source=pfx or cert or "")

    def trusted_root(self, name: str, s: Section) -> bytes:
        cert = s.get_str("cert", "", required=True)
        s.reject_unused()
        data = self.read(s, "cert", cert) if cert else None
        if data is not None:
            try:
                return ca_to_pem(data)
            except CertError as e:
                s.error("cert", str(e))
        self.quiet.add(s.key_path("cert"))
        return b""

    def listener(self, name: str, s: Section) -> Listener:
        listener = Listener(
            name=name,
            protocol=s.get_str("protocol", "", required=True),
            port=s.get_int("port", 0, required=True),
            address=s.get_str("address", "0.0.0.0"),
            host_names=s.get_strs("host_names"),
            certificate=s.get_opt_str("certificate"),
            require_sni=s.get_bool("require_sni", False),
            ssl_profile=s.get_opt_str("ssl_profile"),
            error_pages=read_error_pages(s.get_section("error_pages"), self.base),
            proxy_protocol=s.get_bool("proxy_protocol", False),
            proxy_protocol_trusted=s.get_strs("proxy_protocol_trusted"),
            firewall_policy=s.get_opt_str("firewall_policy"),
        )
        s.reject_unused()
        return listener

    def pool(self, name: str, s: Section) -> Pool:
        servers = []
        for i, text in enumerate(s.get_strs("servers")):
            try:
                servers.append(parse_server(text))
            except Invalid as e:
                s.error(f"servers[{i}]", str(e))
        s.reject_unused()
        return Pool(name, tuple(servers))

    def setting(self, name: str, s: Section) -> Setting:
        d = Setting(name)
        setting = Setting(
            name=name,
            port=s.get_int("port", d.port),
            protocol=s.get_str("protocol", d.protocol),
            request_timeout=s.get_int("request_timeout", d.request_timeout),
            host_name=s.get_opt_str("host_name"),
            pick_host_name_from_backend_address=s.get_bool(
                "pick_host_name_from_backend_address", False
            ),
            path=s.get_opt_str("path"),
            cookie_based_affinity=s.get_bool("cookie_based_affinity", False),
            affinity_cookie_name=s.get_str("affinity_cookie_name", d.affinity_cookie_name),
            connection_draining=s.get_bool("connection_draining", False),
            drain_timeout=s.get_int("drain_timeout", d.drain_timeout),
            probe=s.get_opt_str("probe"),
            trusted_root_certificates=s.get_strs("trusted_root_certificates"),
            validate_cert_chain_and_expiry=s.get_bool("validate_cert_chain_and_expiry", True),
            validate_sni=s.get_bool("validate_sni", True),
            sni_name=s.get_opt_str("sni_name"),
            close_on_peer_loss=s.get_bool("close_on_peer_loss", False),
        )
        s.reject_unused()
        return setting

    def probe(self, name: str, s: Section) -> Probe:
        d = Probe(name)
        codes = read_status_codes(
            s, "match_status_codes", s.get_list("match_status_codes"), d.match_status_codes
        )
        probe = Probe(
            name=name,
            protocol=s.get_str("protocol", d.protocol),
            host=s.get_opt_str("host"),
            pick_host_name_from_settings=s.get_bool("pick_host_name_from_settings", False),
            path=s.get_str("path", d.path),
            port=s.get_opt_int("port"),
            interval=s.get_int("interval", d.interval),
            timeout=s.get_int("timeout", d.timeout),
            unhealthy_threshold=s.get_int("unhealthy_threshold", d.unhealthy_threshold),
            match_status_codes=codes,
            match_body=s.get_opt_str("match_body"),
            min_servers=s.get_int("min_servers", d.min_servers),
        )
        s.reject_unused()
        return probe

    def redirect(self, name: str, s: Section) -> Redirect:
        redirect = Redirect(
            name=name,
            redirect_type=s.get_str("redirect_type", "permanent"),
            target_listener=s.get_opt_str("target_listener"),
            target_url=s.get_opt_str("target_url"),
            include_path=s.get_bool("include_path", True),
            include_query_string=s.get_bool("include_query_string", True),
        )
        s.reject_unused()
        return redirect

    def path_map(self, name: str, s: Section) -> PathMap:
        rules = []
        for rs in s.get_sections("rules"):
            rules.append(
                PathRule(
                    name=sub_name(rs, s.path, "rules"),
                    paths=rs.get_strs("paths"),
                    pool=rs.get_opt_str("pool"),
                    setting=rs.get_opt_str("setting"),
                    redirect=rs.get_opt_str("redirect"),
                    rewrite_rule_set=rs.get_opt_str("rewrite_rule_set"),
                    firewall_policy=rs.get_opt_str("firewall_policy"),
                )
            )
            rs.reject_unused()
        path_map = PathMap(
            name=name,
            rules=tuple(rules),
            default_pool=s.get_opt_str("default_pool"),
            default_setting=s.get_opt_str("default_setting"),
            default_redirect=s.get_opt_str("default_redirect"),
            default_rewrite_rule_set=s.get_opt_str("default_rewrite_rule_set"),
        )
        s.reject_unused()
        return path_map

    def rule(self, name: str, s: Section) -> Rule:
        rule = Rule(
            name=name,
            listener=s.get_str("listener", "", required=True),
            kind=s.get_str("kind", "basic"),
            priority=s.get_opt_int("priority"),
            pool=s.get_opt_str("pool"),
            setting=s.get_opt_str("setting"),
            redirect=s.get_opt_str("redirect"),
            path_map=s.get_opt_str("path_map"),
            rewrite_rule_set=s.get_opt_str("rewrite_rule_set"),
        )
        s.reject_unused()
        return rule
