"""GeoMatch custom rules: countries from Debian's GeoIP databases, "ZZ" for the unplaced."""

from __future__ import annotations

from pathlib import Path

import pytest

from appgw.config.model import Config
from appgw.config.waf import CustomRule, MatchCondition, MatchVariable, WafPolicy
from appgw.waf import custom, geo
from appgw.waf.firewall import Firewall
from tests.unit.test_config_waf import TOML, _errors, _load

needs_geo = pytest.mark.skipif(geo.problem() is not None, reason="needs geoip-database")


def _facts(addr: str, socket: str = "127.0.0.1") -> custom.Facts:
    return custom.Facts(addr, socket, "GET", "/", "", {"host": "app.example"}, {})


def _geo(name: str, codes: tuple[str, ...], **kwargs: object) -> CustomRule:
    condition = MatchCondition((MatchVariable("remoteaddr"),), "geomatch", codes)
    return CustomRule(name, 1, "block", (condition,), **kwargs)  # type: ignore[arg-type]


@needs_geo
def test_countries_of_addresses_from_the_database() -> None:
    countries = geo.Countries()
    assert countries.country("8.8.8.8") == "US"
    assert countries.country("81.2.69.160") == "GB"
    assert countries.country("2001:4860:4860::8888") == "US"
    for unplaced in ("127.0.0.1", "10.1.2.3", "192.168.0.1", "::1", "not an address"):
        assert countries.country(unplaced) == "ZZ"


@needs_geo
def test_geomatch_rule_blocks_a_country_and_zz_matches_private_addresses() -> None:
    policy = WafPolicy(
        "geo", mode="prevention", managed_rule_sets=(), custom_rules=(_geo("nogb", ("GB",)),)
    )
    fw = Firewall(Config(source="t", waf_policies={"geo": policy}, firewall_policy="geo"))
    at = fw.attached("r", "l", None)
    assert at is not None
    inspect = fw.inspect
    assert inspect(at, None, _facts("81.2.69.160")).blocked  # type: ignore[arg-type]
    assert not inspect(at, None, _facts("8.8.8.8")).blocked  # type: ignore[arg-type]
    private = [custom.CompiledRule(_geo("zz", ("ZZ",)), "p", geo.Countries())]
    assert custom.evaluate(private, _facts("10.0.0.7"), 0.0, "l")
    assert not custom.evaluate(private, _facts("8.8.8.8"), 0.0, "l")


@needs_geo
def test_rate_limit_grouped_by_country() -> None:
    rule = CustomRule(
        "per-country",
        1,
        "block",
        (MatchCondition((MatchVariable("requesturi"),), "beginswith", ("/",)),),
        rule_type="ratelimitrule",
        rate_limit_threshold=2,
        group_by="geolocation",
    )
    rules = custom.compile_rules([rule], "geo-rate", geo.Countries)
    # Two American addresses share one count; a British one has its own.
    hits = [custom.evaluate(rules, _facts(a), 5.0, "l") != [] for a in ("8.8.8.8", "8.8.4.4")]
    assert hits == [False, False]
    assert custom.evaluate(rules, _facts("8.8.8.8"), 5.0, "l")
    assert not custom.evaluate(rules, _facts("81.2.69.160"), 5.0, "l")


GEO_RULE = """
[[waf_policies.api.custom_rules]]
name = "geo"
priority = 9
action = "Block"
[[waf_policies.api.custom_rules.match_conditions]]
variables = ["RemoteAddr"]
operator = "GeoMatch"
values = ["GB", "ZZ"]
"""


@needs_geo
def test_toml_geomatch_and_the_database_keys(tmp_path: Path) -> None:
    config = _load(tmp_path, TOML + GEO_RULE)
    assert config.geoip_databases == geo.DATABASES
    assert config.waf_policies["api"].custom_rules[-1].conditions[0].operator == "geomatch"


def test_geomatch_without_a_database_is_an_error_naming_the_package(tmp_path: Path) -> None:
    text = f'geoip_database = "{tmp_path}/none.dat"\n' + TOML + GEO_RULE
    errors = _errors(tmp_path, text)
    assert f"GeoIP country database {tmp_path}/none.dat not found" in errors[-1]
    assert errors[-1].startswith("waf_policies.api.custom_rules.geo: GeoMatch needs countries")
    assert "apt-get install geoip-database" in errors[-1]


def test_geomatch_values_and_variables_are_checked(tmp_path: Path) -> None:
    text = TOML + GEO_RULE.replace('"GB", "ZZ"', '"Britain"').replace(
        '"RemoteAddr"', '"RequestUri"'
    )
    errors = _errors(tmp_path, text)
    assert any("GeoMatch looks at RemoteAddr or SocketAddr only" in e for e in errors)
    text = TOML + GEO_RULE.replace('"GB", "ZZ"', '"Britain"')
    errors = _errors(tmp_path, text)
    assert any("two-letter country codes, not 'Britain'" in e for e in errors)


@needs_geo
def test_arm_geomatch_and_group_by_geolocation(tmp_path: Path) -> None:
    from tests.unit.test_config_arm import gateway, template, write
    from tests.unit.test_config_waf import POLICY, POLICY_ID, copy, load_file

    gw = gateway()
    gw["properties"]["firewallPolicy"] = {"id": POLICY_ID}
    doc = template(gw, parameters={"wafName": {"type": "string", "defaultValue": "waf1"}})
    policy = copy.deepcopy(POLICY)
    rules = policy["properties"]["customRules"]
    rules[0]["matchConditions"][0].update(operator="GeoMatch", matchValues=["DE", "ZZ"])
    rules[1]["groupByUserSession"][0]["groupByVariables"][0]["variableName"] = "GeoLocation"
    doc["resources"].append(policy)
    config = load_file(write(tmp_path, doc))
    office, burst = config.waf_policies["waf1"].custom_rules
    assert office.conditions[0].operator == "geomatch" and burst.group_by == "geolocation"
