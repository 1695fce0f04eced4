"""A gateway without WAF policies pays nothing for the WAF: no engine imported,
no firewall built, no step taken per request."""

from __future__ import annotations

import subprocess
import sys

from appgw.config.model import Config
from appgw.worker.exchange import firewall_step


def test_no_policy_no_firewall() -> None:
    assert firewall_step.build(Config(source="t")) is None


def test_worker_and_config_do_not_import_the_engine() -> None:
    code = (
        "import sys, appgw.cli, appgw.worker.main, appgw.config.loader\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('appgw.waf') or m == 'cffi')\n"
        "print(loaded)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_missing_rule_set_is_named(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    from appgw.config import waf_checks
    from appgw.waf import crs

    monkeypatch.setattr(crs, "CRS_RULES", Path("/nonexistent/crs/rules"))
    problem = waf_checks.engine_problem()
    assert problem is not None
    assert "apt-get install libmodsecurity3 modsecurity-crs" in problem
