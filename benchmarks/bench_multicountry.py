"""Benchmark: one multi-country run (default 30 countries x 10 years x 2 partner markets).

Run from the repository root::

    .venv/bin/python benchmarks/bench_multicountry.py [--countries 30] [--years 10]
        [--draws 1000] [--tune 1000] [--chains 2] [--cores 2] [--sampler pymc|nutpie]
        [--mass-matrix diagonal|low_rank]

It simulates an ILLUSTRATIVE data set (seed 0): cocaine (drugs market: producers, transit and
consumer countries; seizures every year, production and prices in some, a third of the years
missing at random) and smuggling of migrants (apprehensions of both groups, fees and shares
paying in a few years), with partner shares to two or three other run countries per market.
Prices, purities, fees and shares are pooled across countries and volumes smoothed over years,
as each market declares. It runs the whole pipeline (validate, build, NUTS, checks, summary) in
memory and prints and writes ``benchmarks/results/multicountry.json``: wall seconds of build and
sampling, the model's size, tree depth, max R-hat, min bulk ESS, divergences and the verdict.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from iff.config import load_config
from iff.engine import build_model, prepare, sample
from iff.summary import summarize

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "multicountry.json"
#: 30 countries of the Americas and Europe (the first ``--countries`` are used).
COUNTRIES = ["COL", "PER", "BOL", "ECU", "VEN", "BRA", "PRY", "ARG", "CHL", "URY", "PAN", "CRI",
             "NIC", "HND", "SLV", "GTM", "BLZ", "MEX", "USA", "CAN", "DOM", "JAM", "HTI", "ESP",
             "PRT", "NLD", "BEL", "FRA", "DEU", "ITA"]
PRODUCERS = {"COL", "PER", "BOL"}
CONSUMERS = {"USA", "CAN", "ESP", "PRT", "NLD", "BEL", "FRA", "DEU", "ITA", "BRA", "ARG", "CHL"}
SMUGGLING = "smuggling_of_migrants"


def simulate(countries: list[str], years: list[int], rng: np.random.Generator
             ) -> tuple[dict, list[dict]]:
    """Markets section and observation rows (all illustrative)."""
    rows: list[dict] = []

    def add(c, y, market, q, item, v, unit, cv):
        rows.append({"country": c, "year": y, "market": market, "quantity": q, "item": item,
                     "value": round(float(v), 4), "unit": unit, "se": round(float(cv * v), 4),
                     "source": "illustrative (simulated)"})

    roles = {c: "producer" if c in PRODUCERS else "consumer" if c in CONSUMERS else "transit"
             for c in countries}
    for i, c in enumerate(countries):
        size = np.exp(rng.normal(np.log(20_000), 1.0))
        for t, y in enumerate(years):
            if rng.random() < 1 / 3:
                continue  # sparse years: smoothing fills them in
            trend = 1.05 ** t
            add(c, y, "drugs", "seizures", "cocaine", size * trend, "kg", 0.1)
            if roles[c] == "producer":
                add(c, y, "drugs", "production", "cocaine", 8 * size * trend, "kg", 0.2)
            if t % 3 == 0:
                add(c, y, "drugs", "price_wholesale", "cocaine",
                    np.exp(rng.normal(np.log(10_000), 0.5)), "USD/kg", 0.3)
            for group, base in (("resident", 30_000), ("nonresident", 50_000)):
                add(c, y, SMUGGLING, "apprehensions", group,
                    base * np.exp(0.5 * (i % 5) / 5) * trend, "persons", 0.05)
                if t % 4 == 1:
                    add(c, y, SMUGGLING, "fee", group, np.exp(rng.normal(np.log(4_000), 0.3)),
                        "USD", 0.2)
                    add(c, y, SMUGGLING, "share_paying", group, 0.6, "fraction", 0.1)

    def partners() -> dict:
        shares = {}
        for i, c in enumerate(countries):
            others = [countries[(i + k) % len(countries)] for k in (1, 2, 5)]
            others = [o for o in dict.fromkeys(others) if o != c]
            shares[c] = {d: {o: round(0.6 / len(others), 3) for o in others}
                         for d in ("outward", "inward")}
        return {"shares": shares, "concentration": 20}

    markets = {
        "drugs": {"drugs": {"cocaine": {"roles": roles}}, "partners": partners()},
        SMUGGLING: {"partners": partners()},
    }
    return markets, rows


def write_rows(path: Path, rows: list[dict]) -> None:
    """The observation table as CSV."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--countries", type=int, default=30)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--sampler", choices=["pymc", "nutpie"], default="pymc")
    parser.add_argument("--mass-matrix", choices=["diagonal", "low_rank"], default="diagonal")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    countries = COUNTRIES[: args.countries]
    years = list(range(2011, 2011 + args.years))
    markets, rows = simulate(countries, years, np.random.default_rng(0))
    with tempfile.TemporaryDirectory() as tmp:
        conf = {"name": "bench-multicountry", "countries": countries, "years": years,
                "illustrative_priors": True, "observations": {"file": "obs.csv"},
                "markets": markets,
                "sampler": {"draws": args.draws, "tune": args.tune, "chains": args.chains,
                            "cores": args.cores, "seed": 1, "nuts_sampler": args.sampler,
                            "mass_matrix": args.mass_matrix, "progressbar": False}}
        (Path(tmp) / "c.yaml").write_text(yaml.safe_dump(conf, sort_keys=False))
        write_rows(Path(tmp) / "obs.csv", rows)
        start = time.perf_counter()
        plan = prepare(load_config(Path(tmp) / "c.yaml"))
        model, _ = build_model(plan)
        built = time.perf_counter()
        tree, conv = sample(plan, model, progressbar=False)
        sampled = time.perf_counter()
        summarize(tree)
    stats = tree["sample_stats"]
    point = model.initial_point()
    n_free = int(sum(point[v.name].size for v in model.value_vars))
    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "run": {"countries": len(countries), "years": len(years), "markets": list(markets),
                "observations": len(rows), "free_parameters": n_free,
                "draws": args.draws, "tune": args.tune, "chains": args.chains,
                "cores": args.cores, "sampler": args.sampler, "mass_matrix": args.mass_matrix},
        "build_s": round(built - start, 1),
        "sample_s": round(sampled - built, 1),
        "wall_s": round(sampled - start, 1),
        "mean_tree_depth": round(float(stats["tree_depth"].mean()), 2)
        if "tree_depth" in stats else None,
        "convergence": conv.to_dict(),
        "inputs": "illustrative (simulated, seed 0)",
    }
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
