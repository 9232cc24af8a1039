"""The drugs model recovers known flows from data simulated by the model itself.

True parameters are one draw from the prior; observations are drawn from the model's own
measurement terms at that draw (prior predictive), written to a CSV with the same measurement
uncertainty, and fitted with NUTS.
"""

from __future__ import annotations

import copy

import numpy as np
import pymc as pm
import pytest
import yaml
from scipy import stats

from iff import load_config, run
from iff.engine import build_model, prepare
from tests.conftest import write_csv

Z90 = float(stats.norm.ppf(0.95))
YEARS = [2016, 2017, 2018]
CONFIG = {
    "name": "recovery",
    "countries": ["COL"],
    "years": YEARS,
    "observations": {"file": "obs.csv", "interval_prob": 0.9},
    "markets": {"drugs": {
        "drugs": {"cocaine": {"roles": {"COL": "producer"}}},
        "priors": {
            "throughput": {"between": [50_000, 500_000]},
            "interdiction_rate": {"between": [0.25, 0.35]},
            "domestic_share": {"between": [0.01, 0.2]},
            "pure_price_destination_wholesale": {"between": [10_000, 80_000]},
        },
    }},
    "sampler": {"draws": 1000, "tune": 1000, "chains": 4, "cores": 1, "seed": 11,
                "progressbar": False},
}
# placeholders: only their uncertainty matters (relative intervals; se for shares)
PLACEHOLDER = {
    "production": (200_000, 1.1), "seizures": (80_000, 1.05), "users": (200_000, 1.1),
    "quantity_per_user": (20, 1.3), "price_wholesale": (2_000, 1.1),
    "price_border": (1_500, 1.1), "price_destination_wholesale": (25_000, 1.1),
}


def _placeholder_rows() -> list[dict]:
    rows = []
    for year in YEARS:
        for q, (v, k) in PLACEHOLDER.items():
            rows.append({"country": "COL", "year": year, "market": "drugs", "quantity": q,
                         "item": "cocaine", "value": v, "unit": _unit(q), "lower": v / k,
                         "upper": v * k, "source": "simulated"})
    rows.append({"country": "COL", "year": 2017, "market": "drugs", "quantity":
                 "purity_wholesale", "item": "cocaine", "value": 0.6, "unit": "fraction",
                 "se": 0.03, "source": "simulated"})
    return rows


def _unit(q: str) -> str:
    return {"production": "kg", "seizures": "kg", "users": "persons", "quantity_per_user": "g"
            }.get(q, "USD/kg")


def simulate(tmp_path, seed: int):
    """Write a config and a CSV simulated from the model; return (config path, truth)."""
    cfg = tmp_path / "recovery.yaml"
    conf = copy.deepcopy(CONFIG)
    conf["output"] = {"dir": str(tmp_path / "results")}
    cfg.write_text(yaml.safe_dump(conf))
    rows = _placeholder_rows()
    write_csv(tmp_path / "obs.csv", rows)
    plan = prepare(load_config(cfg))
    model, _ = build_model(plan)
    with model:
        sim = pm.sample_prior_predictive(draws=1, random_seed=seed)
    prior = sim["prior"].isel(chain=0, draw=0)
    pp = sim["prior_predictive"].isel(chain=0, draw=0)
    by_line = {}
    for name in pp.data_vars:
        line_dim = f"{name}_line"
        for line, value in zip(pp[line_dim].values, pp[name].values, strict=True):
            by_line[(name, int(line))] = float(value)
    new_rows = []
    for line, row in enumerate(rows, start=2):
        row = dict(row)
        q = row["quantity"]
        if q == "quantity_per_user":
            pass  # keep the dose; users carry the simulated demand
        elif q == "users":
            demand = by_line[("drugs_demand_obs", line)]  # street kg
            row["value"] = demand * 1000 / PLACEHOLDER["quantity_per_user"][0]
        elif q == "purity_wholesale":
            v = by_line[(f"drugs_{q}_obs", line)]
            sigma = row["se"] / (row["value"] * (1 - row["value"]))
            row["value"], row["se"] = v, sigma * v * (1 - v)
        else:
            row["value"] = by_line[(f"drugs_{q}_obs", line)]
        if "lower" in row:
            k = PLACEHOLDER[q][1]
            row["lower"], row["upper"] = row["value"] / k, row["value"] * k
        new_rows.append(row)
    write_csv(tmp_path / "obs.csv", new_rows)
    return cfg, prior


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, 4])
def test_drugs_recovers_simulated_flows(tmp_path, seed):
    cfg, truth = simulate(tmp_path, seed)
    outcome = run(cfg, write=False)
    assert outcome.convergence.passed, outcome.convergence.failures
    post = outcome.tree["posterior"]
    flows = post["flows"].sel(market="drugs", country="COL")
    true_flows = truth["flows"].sel(market="drugs", country="COL")
    for direction in ("inward", "outward"):
        for year in YEARS:
            draws = flows.sel(direction=direction, phase="generation", year=year).values.ravel()
            true = float(true_flows.sel(direction=direction, phase="generation", year=year))
            lo, hi = np.quantile(draws, [0.005, 0.995])
            assert lo < true < hi, (direction, year, lo, true, hi)
            if direction == "inward":  # exports: identified by seizures, production, demand
                assert np.median(draws) == pytest.approx(true, rel=0.25)
    # imports are T - P, a small difference of two uncertain numbers: only coverage is checked
    # quantities measured directly are recovered tightly
    for var in ("drugs_production", "drugs_seizures"):
        med = post[var].median(("chain", "draw")).values
        np.testing.assert_allclose(med, truth[var].values, rtol=0.15)
    # the data shrink uncertainty well below the prior's
    prior_sd = outcome.tree["prior"]["flows"].sel(market="drugs", direction="inward",
                                                  phase="generation").std(("chain", "draw"))
    post_sd = flows.sel(direction="inward", phase="generation").std(("chain", "draw"))
    assert (post_sd.values < 0.5 * prior_sd.values).all()
