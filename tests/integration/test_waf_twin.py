"""appgw's WAF and nginx + ModSecurity log the same rule ids for the CRS's own tests.

A bounded run of scripts/waf-twin on a few of CRS v3.3.4's regression test
files (tests/data/crs-regression): every request goes to both, and the rule
ids in appgw's firewall log and nginx's error log must be the same.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from appgw.waf import crs

ROOT = Path(__file__).resolve().parents[2]
MODULE = Path("/usr/share/nginx/modules-available/mod-http-modsecurity.conf")

def test_same_rule_ids_as_nginx_modsecurity() -> None:
    # scripts/test installs all three (as root); missing, the comparison fails.
    assert crs.installed(), "modsecurity-crs is missing (Debian: apt-get install modsecurity-crs)"
    assert shutil.which("nginx"), "nginx is missing (Debian: apt-get install nginx)"
    assert MODULE.exists(), "apt-get install libnginx-mod-http-modsecurity"
    out = subprocess.run(
        [sys.executable, "-m", "tests.twin.waf_twin", str(ROOT / "tests/data/crs-regression")],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    same = re.search(r"same rule ids in both logs: (\d+) of (\d+)", out.stdout)
    fired = re.search(r"expected rule fired: appgw (\d+), nginx (\d+)", out.stdout)
    assert same and fired, out.stdout
    assert int(same.group(2)) >= 15
    assert same.group(1) == same.group(2), out.stdout
    assert int(fired.group(1)) >= 4 and fired.group(1) == fired.group(2)
