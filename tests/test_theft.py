"""Theft, extortion and kidnapping: flow identities, recovery of known values from simulated
survey and police data, and bad inputs (exit 2 with file, row, reason)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pymc as pm
import pytest
import xarray as xr
import yaml

from iff import load_config, run
from iff.engine import build_model, prepare
from iff.errors import IffInputError
from tests.conftest import REPO, write_csv

IFF = Path(sys.executable).parent / "iff"
EXAMPLE = REPO / "configs" / "pilots" / "theft-illustrative.yaml"
YEARS = [2019, 2020]
CONFIG = {
    "name": "theft-recovery",
    "countries": ["MEX"],
    "years": YEARS,
    "observations": {"file": "obs.csv"},
    "markets": {"theft": {
        "crimes": {
            "extortion": {"priors": {"incidents": {"between": [1e5, 1e7]},
                                     "mean_amount": {"between": [1_000, 20_000]}}},
            "kidnapping": {"priors": {"incidents": {"between": [1e3, 3e4]},
                                      "mean_amount": {"between": [1e5, 2e6]}}},
        },
        "priors": {"reporting_rate": {"between": [0.05, 0.5]},
                   "exchange_rate": {"between": [10, 30]}},
    }},
    "sampler": {"draws": 1000, "tune": 700, "chains": 2, "cores": 1, "seed": 9,
                "progressbar": False},
}


def row(quantity: str, item: str, year: int, value: float, unit: str, **extra) -> dict:
    return {"country": "MEX", "year": year, "market": "theft", "quantity": quantity,
            "item": item, "value": value, "unit": unit, "source": "simulated", **extra}


def rows_for(year: int) -> list[dict]:
    """Extortion from a survey, kidnapping from police records; amounts; the exchange rate."""
    return [row("incidents", "extortion", year, 1e6, "incidents"),
            row("mean_amount", "extortion", year, 5_000, "LCU"),
            row("police_incidents", "kidnapping", year, 1_000, "incidents"),
            row("mean_amount", "kidnapping", year, 4e5, "LCU"),
            row("exchange_rate", "market", year, 20, "LCU/USD")]


def write_config(tmp_path: Path, conf: dict, rows: list[dict]) -> Path:
    conf = copy.deepcopy(conf)
    conf["output"] = {"dir": str(tmp_path / "results")}
    path = tmp_path / "theft.yaml"
    path.write_text(yaml.safe_dump(conf, sort_keys=False))
    write_csv(tmp_path / "obs.csv", rows)
    return path


def simulate(tmp_path: Path, seed: int) -> tuple[Path, xr.Dataset]:
    """Config and observations drawn from the model at one prior draw (twice with the same
    seed, so shares' logit-scale noise is simulated at the values the fit sees)."""
    rows = rows_for(2019) + rows_for(2020) + [
        row("reporting_rate", "kidnapping", 2019, 0.2, "fraction")]
    cfg = write_config(tmp_path, CONFIG, rows)
    truths = []
    for _ in range(2):
        model, _ = build_model(prepare(load_config(cfg)))
        with model:
            sim = pm.sample_prior_predictive(draws=1, random_seed=seed)
        truths.append(sim["prior"].isel(chain=0, draw=0))
        pp = sim["prior_predictive"].isel(chain=0, draw=0)
        by_line = {int(line): float(v) for name in pp.data_vars
                   for line, v in zip(pp[f"{name}_line"].values, pp[name].values, strict=True)}
        for line, r in enumerate(rows, start=2):
            r["value"] = by_line[line]
        write_csv(tmp_path / "obs.csv", rows)
    xr.testing.assert_allclose(truths[0]["flows"], truths[1]["flows"])
    return cfg, truths[1]


def test_flows_follow_the_residency_identities_on_every_draw(tmp_path):
    cfg = write_config(tmp_path, CONFIG, rows_for(2019) + rows_for(2020))
    model, _ = build_model(prepare(load_config(cfg)))
    with model:
        p = pm.sample_prior_predictive(draws=300, random_seed=4)["prior"]
    proceeds = p["theft_proceeds_usd"]
    np.testing.assert_allclose(
        proceeds, p["theft_incidents"] * p["theft_mean_amount"] / p["theft_exchange_rate"],
        rtol=1e-9)
    s_i, s_o, s_a, s_v = (p[f"theft_{n}"] for n in (
        "share_paid_from_abroad", "share_nonresident_offenders", "share_proceeds_abroad",
        "share_nonresident_invested"))
    out_gen = (1 - s_i) * s_o * proceeds
    expect = {("inward", "generation"): s_i * proceeds, ("outward", "generation"): out_gen,
              ("outward", "management"): s_a * (proceeds - out_gen),
              ("inward", "management"): s_v * out_gen}
    by_crime = p["theft_flows_by_crime"]
    for (d, ph), value in expect.items():
        got = by_crime.sel(direction=d, phase=ph)
        np.testing.assert_allclose(got, value.transpose(*got.dims), rtol=1e-9)
    np.testing.assert_allclose(p["flows"].sel(market="theft"), by_crime.sum("crime"), rtol=1e-9)


@pytest.mark.slow
def test_recovers_known_incidents_and_proceeds_from_simulated_data(tmp_path):
    cfg, truth = simulate(tmp_path, seed=8)
    out = run(cfg, write=False)
    assert out.convergence.passed, out.convergence.failures
    post = out.tree["posterior"]
    for var in ("theft_incidents", "theft_proceeds_lcu", "theft_proceeds_usd"):
        draws = np.log(post[var].stack(s=("chain", "draw")).transpose("s", ...).values)
        true = np.log(truth[var].values)
        z = (np.median(draws, axis=0) - true) / draws.std(axis=0)
        assert (np.abs(z) < 3).all(), (var, z)
    # police records and the reporting rate identify kidnappings; amounts are the weakest link
    prior_sd = np.log(out.tree["prior"]["theft_proceeds_usd"]).std(("chain", "draw"))
    post_sd = np.log(post["theft_proceeds_usd"]).std(("chain", "draw"))
    assert (post_sd < 0.5 * prior_sd).all()


@pytest.mark.slow
def test_illustrative_example_runs_and_is_flagged(tmp_path):
    out = run(EXAMPLE, out=tmp_path / "theft", progressbar=False)
    assert out.convergence.passed, out.convergence.failures
    assert out.tree.attrs["illustrative_inputs"] == 1
    assert "MXN" in out.tree["posterior"]["theft_proceeds_lcu"].attrs["units"]
    flows = out.tree["posterior"]["flows"].sel(market="theft")
    assert (flows > 0).all()  # every direction and phase applies to these crimes


# -- bad inputs ---------------------------------------------------------------------------------
def _set(quantity: str, of: str, **values):
    """Change the row of ``quantity`` whose item is ``of``."""
    def change(rows):
        for r in rows:
            if r["quantity"] == quantity and r["item"] == of:
                r.update(values)
    return change


BAD = {
    "negative mean amount": (_set("mean_amount", "kidnapping", value=-4e5), None, (5, "value"),
                             ("-400000 is negative", "mean_amount must be > 0")),
    "missing exchange rate": (lambda rows: rows.pop(), None, (None, "quantity"),
                              ("missing exchange rate", "basis 'market' for MEX 2019")),
    "ppp basis": (_set("exchange_rate", "market", item="ppp"), None, (6, "item"),
                  ("'ppp' is not valid for 'exchange_rate'", "market")),
    "currency without a basis": (_set("exchange_rate", "market", item=""), None, (6, "item"),
                                 ("'exchange_rate' needs its basis in the item column",)),
    "crime not configured": (_set("incidents", "extortion", item="robbery"), None,
                             (2, "item"), ("'robbery' is not configured for market 'theft'",)),
    "reporting rate of 1.2": (
        lambda rows: rows.append(row("reporting_rate", "kidnapping", 2019, 1.2, "fraction")),
        None, (7, "value"), ("1.2 must be below 1", "reporting_rate is a share")),
}


def bad_config(folder: Path, change) -> Path:
    conf = copy.deepcopy(CONFIG)
    conf["years"] = [2019]
    folder.mkdir(parents=True, exist_ok=True)
    rows = rows_for(2019)
    change(rows)
    return write_config(folder, conf, rows)


@pytest.mark.parametrize("case", list(BAD))
def test_bad_theft_input_names_file_row_and_reason(tmp_path, case):
    change, _, (line, column), fragments = BAD[case]
    with pytest.raises(IffInputError) as exc:
        prepare(load_config(bad_config(tmp_path, change)))
    (problem,) = exc.value.problems
    assert problem.file == str(tmp_path / "obs.csv"), str(exc.value)
    assert (problem.row, problem.field) == (line, column), str(exc.value)
    for fragment in fragments:
        assert fragment in problem.reason, str(exc.value)


def test_exchange_rate_prior_per_crime_is_refused(tmp_path):
    conf = copy.deepcopy(CONFIG)
    conf["markets"]["theft"]["crimes"]["kidnapping"]["priors"]["exchange_rate"] = {
        "between": [15, 25]}
    with pytest.raises(IffInputError) as exc:
        prepare(load_config(write_config(tmp_path, conf, rows_for(2019) + rows_for(2020))))
    (problem,) = exc.value.problems
    assert problem.field == "markets.theft.crimes.kidnapping.priors.exchange_rate"
    assert problem.row is not None and "same for every crime" in problem.reason


@pytest.mark.parametrize(("case", "command"), [("negative mean amount", "validate"),
                                               ("missing exchange rate", "run")])
def test_bad_theft_input_exits_2_without_traceback(tmp_path, case, command):
    cfg = bad_config(tmp_path, BAD[case][0])
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.run([str(IFF), command, str(cfg)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    report = f"rc={proc.returncode}\n{proc.stderr}"
    assert proc.returncode == 2, report
    assert "Traceback" not in proc.stderr + proc.stdout, report
    assert "obs.csv" in proc.stderr and BAD[case][3][0] in proc.stderr, report
    assert not (tmp_path / "results").exists()

