"""Benchmark: Bayesian MSE on the shipped reference tables, against the published results.

Run from the repository root::

    .venv/bin/python benchmarks/bench_mse.py [--seed 0]

For each table in ``configs/data/mse`` it fits the model of :mod:`iff.models.mse` (defaults:
all two-list interactions, 4 chains x 2000 draws after 2000 tuning steps, PyMC's NUTS), then
prints and writes to ``benchmarks/results/mse_reference.json``: observed total, posterior mean,
median and 95 % equal-tailed interval of the total population, the published figure, whether the
median lies where the published results say, convergence (max R-hat, min bulk ESS,
divergences), the identifiability warnings, and wall seconds (compile + sampling).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from iff.models.list_table import read_list_table
from iff.models.mse import estimate

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "configs" / "data" / "mse"
OUT = REPO / "benchmarks" / "results" / "mse_reference.json"

#: Published results (configs/data/mse/README.md): ranges the posterior median should fall in.
PUBLISHED = {
    "UKdat": ("Silverman (2014): between 10,000 and 13,000", [(10_000, 13_000)]),
    "UKdat_5": ("Silverman, Chan & Vincent (2024) Table 6: 12,188 [10,652, 13,947] (Bayesian "
                "thresholding); 22,991 [11,456, 43,894] (min BIC)",
                [(10_652, 13_947), (11_456, 43_894)]),
    "Korea": ("Silverman, Chan & Vincent (2024) Table 6: 157 [128, 349] (min BIC)",
              [(128, 349)]),
    "Artificial_3": ("none: not identifiable with all two-list terms (Chan, Silverman & "
                     "Vincent 2021)", []),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = []
    for name, (published, ranges) in PUBLISHED.items():
        table = read_list_table(DATA / f"{name}.csv", f"{name}.csv")
        start = time.perf_counter()
        result = estimate(table, prob=0.95, seed=args.seed)
        wall = time.perf_counter() - start
        s = result.summary()
        conv = result.convergence
        rows.append({
            "table": name, "lists": len(table.lists), **s, "unit": "persons",
            "interval": "eti", "published": published,
            "median_matches_published": (any(lo <= s["median"] <= hi for lo, hi in ranges)
                                         if ranges else None),
            "max_rhat": conv.max_rhat, "min_ess_bulk": conv.min_ess_bulk,
            "divergences": conv.divergences, "converged": conv.passed,
            "warnings": result.warnings, "wall_s": round(wall, 1)})
        r = rows[-1]
        print(f"{name:13s} observed {r['observed']:6d}  median {r['median']:9.0f}  95% "
              f"[{r['lower']:9.0f}, {r['upper']:9.0f}]  match {r['median_matches_published']}"
              f"  R-hat {r['max_rhat']:.3f}  ESS {r['min_ess_bulk']:.0f}  div "
              f"{r['divergences']}  {r['wall_s']} s", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"cpu_count": os.cpu_count(), "python": platform.python_version(),
                               "seed": args.seed, "results": rows}, indent=2) + "\n")
    print(f"written {OUT}")


if __name__ == "__main__":
    main()
