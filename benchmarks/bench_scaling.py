"""Benchmark: how wall time and ESS per second grow with countries and with years.

Run from the repository root::

    .venv/bin/python benchmarks/bench_scaling.py [--countries 1,5,10,30] [--years 4,10,20]
        [--draws 500] [--tune 500] [--chains 2] [--cores 2] [--sampler pymc]
        [--timeout 1200] [--out PATH]

Each point is one run of ``benchmarks/bench_multicountry.py`` (its simulated, ILLUSTRATIVE
drugs + smuggling model with partners; the whole pipeline in memory) in a fresh process:
countries 1, 5, 10, 30 at 10 years, and years 4, 10, 20 at 5 countries (5 x 10 is shared).
Fewer draws than a real run (default 2 chains x 500 draws after 500 tuning steps) keep the
30-country point to minutes; the JSON says which. Per point: free parameters, observations,
build and sampling seconds, min bulk ESS (free parameters and flows), max R-hat, divergences,
ESS per sampling second, tree depth and the load average before and after. Writes
``benchmarks/results/scaling.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_io import command_line, created_at, machine, write_result

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "scaling.json"
MULTI = REPO / "benchmarks" / "bench_multicountry.py"


def point(countries: int, years: int, args: argparse.Namespace, tmp: Path) -> dict:
    """One bench_multicountry.py run in a fresh process."""
    out = tmp / f"c{countries}-y{years}.json"
    cmd = [sys.executable, str(MULTI), "--countries", str(countries), "--years", str(years),
           "--draws", str(args.draws), "--tune", str(args.tune), "--chains", str(args.chains),
           "--cores", str(args.cores), "--sampler", args.sampler, "--out", str(out)]
    row = {"countries": countries, "years": years,
           "load_avg_before": [round(x, 2) for x in os.getloadavg()]}
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                              timeout=args.timeout, env={**os.environ, "PYTHONHASHSEED": "0"})
        err = proc.stderr if proc.returncode else ""
    except subprocess.TimeoutExpired:
        err = f"timed out after {args.timeout} s"
    row["process_s"] = round(time.perf_counter() - start, 1)
    row["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    if err or not out.exists():
        row["error"] = (err or "no result written")[-3000:]
        print(f"{countries:3d} countries x {years:2d} years: ERROR {row['error'][-300:]}",
              flush=True)
        return row
    res = json.loads(out.read_text(encoding="utf-8"))
    conv = res["convergence"]
    row.update({
        "free_parameters": res["run"]["free_parameters"],
        "observations": res["run"]["observations"], "build_s": res["build_s"],
        "sample_s": res["sample_s"], "wall_s": res["wall_s"],
        "min_ess_bulk": round(conv["min_ess_bulk"], 1), "max_rhat": round(conv["max_rhat"], 4),
        "divergences": conv["divergences"], "verdict": conv["verdict"],
        "ess_per_s": round(conv["min_ess_bulk"] / res["sample_s"], 2) if res["sample_s"] else None,
        "mean_tree_depth": res["mean_tree_depth"]})
    print(f"{countries:3d} countries x {years:2d} years: {row['free_parameters']:5d} free, "
          f"sample {row['sample_s']:7.1f} s, ESS {row['min_ess_bulk']:6.0f}, R-hat "
          f"{row['max_rhat']:.3f}, ESS/s {row['ess_per_s']}", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--countries", default="1,5,10,30", help="at 10 years")
    ap.add_argument("--years", default="4,10,20", help="at 5 countries")
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--tune", type=int, default=500)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--sampler", choices=["pymc", "nutpie"], default="pymc")
    ap.add_argument("--timeout", type=int, default=1200, help="seconds per point")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    grid = [(int(c), 10) for c in args.countries.split(",") if c]
    grid += [(5, int(y)) for y in args.years.split(",") if y and (5, int(y)) not in grid]
    grid.sort(key=lambda cy: cy[0] * cy[1])  # smallest first: an interrupted run keeps most
    from iff.results import library_versions

    result = {
        "benchmark": "scaling of sampling time and ESS/s with countries and years "
                     "(bench_multicountry.py's simulated illustrative model)",
        "command": command_line("bench_scaling.py"),
        "settings": {"draws": args.draws, "tune": args.tune, "chains": args.chains,
                     "cores": args.cores, "sampler": args.sampler,
                     "note": "fewer draws than a real run (1000 + 1000) to keep the largest "
                             "point to minutes; ESS scales with draws, ESS/s roughly does not"},
        "machine": machine(),
        "versions": library_versions(),
        "created_at": created_at(),
        "points": [],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for countries, years in grid:
            result["points"].append(point(countries, years, args, Path(tmp)))
            write_result(result, args.out)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
