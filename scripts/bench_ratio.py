"""appgw's cost as a multiple of trio-floor's, from one or more runs of the rig.

usage: python scripts/bench_ratio.py OUT.json RUN.json [RUN.json ...]

Each RUN.json is a result file of the rig's `compare` in which both `appgw`
and `trio-floor` were measured. Per scenario and run, the ratio is appgw's
CPU seconds per 10k operations divided by trio-floor's in the same run (for
ws-idle, KiB of RSS per open tunnel). Over several runs it reports the median
of the per-run ratios and their spread. Prints a table and writes OUT.json
(layout in docs/performance.md).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

APPGW = "appgw"
FLOOR = "trio-floor"

# scenario, figure compared, its unit, the ratio target of issue 10
# (for ws-idle the target is appgw's own KiB per tunnel, not a ratio).
SCENARIOS = [
    ("http-small", "cpu_per_10k", "cpu s/10k req", 2.0),
    ("http-big", "cpu_per_10k", "cpu s/10k req", 1.5),
    ("http-close", "cpu_per_10k", "cpu s/10k req", 1.5),
    ("ws-echo", "cpu_per_10k", "cpu s/10k msg", 1.15),
    ("ws-bulk", "cpu_per_10k", "cpu s/10k msg", 1.1),
    ("ws-handshake", "cpu_per_10k", "cpu s/10k hs", 1.3),
    ("ws-idle", "rss_delta_per_conn_kib", "KiB per tunnel", 12.0),
]
IDLE_EXTRA = "pss_delta_per_conn_kib"


def figure(run: dict, target: str, scenario: str, key: str) -> float | None:
    for r in run["results"]:
        if r["target"] == target and r["scenario"] == scenario:
            if r.get("error") or r.get("errors"):
                return None
            value = r.get(key)
            return float(value) if value is not None else None
    return None


def other_cpu(run: dict, target: str, scenario: str) -> float | None:
    for r in run["results"]:
        if r["target"] == target and r["scenario"] == scenario:
            return r.get("other_cpu_s")
    return None


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarise(runs: list[dict], scenario: str, key: str, unit: str, target: float) -> dict | None:
    floor = [figure(run, FLOOR, scenario, key) for run in runs]
    appgw = [figure(run, APPGW, scenario, key) for run in runs]
    if all(v is None for v in floor + appgw):
        return None
    ratios = [a / f if a is not None and f else None for a, f in zip(appgw, floor, strict=True)]
    present = [r for r in ratios if r is not None]
    mid = median(ratios)
    spread = (max(present) - min(present)) / mid if len(present) > 1 and mid else None
    out: dict = {
        "figure": key,
        "unit": unit,
        FLOOR: floor,
        APPGW: appgw,
        "ratio": [round(r, 3) if r is not None else None for r in ratios],
        "floor_median": median(floor),
        "appgw_median": median(appgw),
        "ratio_median": round(mid, 3) if mid is not None else None,
        "ratio_min": round(min(present), 3) if present else None,
        "ratio_max": round(max(present), 3) if present else None,
        "ratio_spread_pct": round(100 * spread, 1) if spread is not None else None,
        "other_cpu_s": {
            FLOOR: [other_cpu(run, FLOOR, scenario) for run in runs],
            APPGW: [other_cpu(run, APPGW, scenario) for run in runs],
        },
    }
    if scenario == "ws-idle":
        out["target"] = f"<= {target:g} KiB per tunnel (appgw)"
        mine = out["appgw_median"]
        out["meets_target"] = mine <= target if mine is not None else None
        out["pss"] = {
            FLOOR: [figure(run, FLOOR, scenario, IDLE_EXTRA) for run in runs],
            APPGW: [figure(run, APPGW, scenario, IDLE_EXTRA) for run in runs],
        }
    else:
        out["target"] = f"<= {target:g}"
        out["meets_target"] = mid <= target if mid is not None else None
    return out


def cell(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def busy(values: list[float | None]) -> str:
    return "/".join("-" if v is None else f"{v:.1f}" for v in values)


def table(summary: dict, nruns: int) -> str:
    how = "ratio = appgw / trio-floor"
    if nruns > 1:
        how = "medians; ratio = appgw / trio-floor within a run"
    lines = [
        f"appgw against trio-floor, {nruns} run{'s' if nruns > 1 else ''} ({how})",
        f"{'scenario':<14}{'unit':<16}{FLOOR:>11}{APPGW:>9}{'ratio':>8}{'range':>13}{'spread':>8}"
        f"  {'target':<10}{'met':<5}other s (floor; appgw)",
    ]
    for scenario, row in summary.items():
        spread = row["ratio_spread_pct"]
        rng = ""
        if nruns > 1 and row["ratio_min"] is not None:
            rng = f"{cell(row['ratio_min'])}-{cell(row['ratio_max'])}"
        target = row["target"].replace(" per tunnel (appgw)", "")
        met = {True: "yes", False: "no", None: "-"}[row["meets_target"]]
        others = f"{busy(row['other_cpu_s'][FLOOR])}; {busy(row['other_cpu_s'][APPGW])}"
        lines.append(
            f"{scenario:<14}{row['unit']:<16}{cell(row['floor_median']):>11}"
            f"{cell(row['appgw_median']):>9}{cell(row['ratio_median']):>8}{rng:>13}"
            f"{'' if spread is None else f'{spread:.0f}%':>8}  {target:<10}{met:<5}{others}"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out, files = Path(argv[0]), [Path(a) for a in argv[1:]]
    runs = [json.loads(f.read_text()) for f in files]
    summary = {}
    for scenario, key, unit, target in SCENARIOS:
        row = summarise(runs, scenario, key, unit, target)
        if row is not None:
            summary[scenario] = row
    if not summary:
        print(f"bench: no scenario measured both {APPGW} and {FLOOR}", file=sys.stderr)
        return 1
    doc = {
        "runs": [str(f) for f in files],
        "started": [run.get("started") for run in runs],
        "params": runs[0].get("params"),
        "scenarios": summary,
        "table": table(summary, len(runs)),
    }
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(doc["table"])
    print(f"\nratios: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
