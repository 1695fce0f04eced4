#!/usr/bin/env python3
"""How long loading an ARM template takes: a 50-rule gateway, written the way
templates are (parameters, variables, resourceId() references, copy loops).

    .venv/bin/python scripts/bench_arm_load.py [RULES] [RUNS]

Prints the median and the slowest of RUNS loads (parse, evaluate, map and
validate: what `appgw check` and every reload do).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from appgw.config import Inputs, load

GATEWAY = "Microsoft.Network/applicationGateways"


def _id(kind: str, name: str) -> dict[str, str]:
    return {"id": f"[resourceId('{GATEWAY}/{kind}', variables('gw'), {name})]"}


def template(rules: int) -> dict[str, object]:
    site = "concat('site', copyIndex('{0}'))"
    return {
        "parameters": {
            "sites": {"type": "int", "defaultValue": rules},
            "backendPort": {"type": "int", "defaultValue": 8080},
        },
        "variables": {"gw": "[toLower(concat('GW-', uniqueString(resourceGroup().id)))]"},
        "resources": [
            {
                "type": GATEWAY,
                "apiVersion": "2023-09-01",
                "name": "[variables('gw')]",
                "properties": {
                    "frontendPorts": [{"name": "p80", "properties": {"port": 80}}],
                    "copy": [
                        {
                            "name": "httpListeners",
                            "count": "[parameters('sites')]",
                            "input": {
                                "name": f"[{site.format('httpListeners')}]",
                                "properties": {
                                    "frontendPort": _id("frontendPorts", "'p80'"),
                                    "protocol": "Http",
                                    "hostName": "[format('site{0}.contoso.com', "
                                    "copyIndex('httpListeners'))]",
                                },
                            },
                        },
                        {
                            "name": "backendAddressPools",
                            "count": "[parameters('sites')]",
                            "input": {
                                "name": f"[{site.format('backendAddressPools')}]",
                                "properties": {
                                    "backendAddresses": [
                                        {
                                            "ipAddress": "[concat('10.0.1.', "
                                            "add(4, copyIndex('backendAddressPools')))]"
                                        }
                                    ]
                                },
                            },
                        },
                        {
                            "name": "requestRoutingRules",
                            "count": "[parameters('sites')]",
                            "input": {
                                "name": f"[{site.format('requestRoutingRules')}]",
                                "properties": {
                                    "ruleType": "Basic",
                                    "priority": "[add(100, copyIndex('requestRoutingRules'))]",
                                    "httpListener": _id(
                                        "httpListeners", site.format("requestRoutingRules")
                                    ),
                                    "backendAddressPool": _id(
                                        "backendAddressPools", site.format("requestRoutingRules")
                                    ),
                                    "backendHttpSettings": _id(
                                        "backendHttpSettingsCollection", "'settings'"
                                    ),
                                },
                            },
                        },
                    ],
                    "backendHttpSettingsCollection": [
                        {
                            "name": "settings",
                            "properties": {
                                "port": "[parameters('backendPort')]",
                                "protocol": "Http",
                            },
                        }
                    ],
                },
            }
        ],
    }


def main() -> None:
    rules = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "azuredeploy.json"
        path.write_text(json.dumps(template(rules), indent=2))
        config = load(str(path), Inputs(parameters=(f"sites={rules}",)))
        assert len(config.rules) == rules
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            load(str(path), Inputs(parameters=(f"sites={rules}",)))
            times.append(time.perf_counter() - start)
    print(
        f"{rules} rules: median {statistics.median(times) * 1000:.1f} ms, "
        f"slowest {max(times) * 1000:.1f} ms over {runs} loads"
    )


if __name__ == "__main__":
    main()
