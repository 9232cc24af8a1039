"""Corruption market: recovery of known values from simulated survey data, the Nigeria 2016
reproduction, the drugs overlap correction, and bad inputs (exit 2 with file, row, reason)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pymc as pm
import pytest
import xarray as xr
import yaml

from iff import load_config, run
from iff.engine import build_model, prepare
from iff.errors import IffInputError
from iff.summary import summarize
from tests.conftest import REPO, write_csv

PILOT = REPO / "configs" / "pilots" / "nga-2016-bribery.yaml"
IFF = Path(sys.executable).parent / "iff"
COUNTRIES = ["NGA", "KEN"]
YEARS = [2016, 2017]
SIM_CONFIG = {
    "name": "corruption-recovery",
    "countries": COUNTRIES,
    "years": YEARS,
    "observations": {"file": "obs.csv"},
    "markets": {"corruption": {"priors": {  # plausible ranges: the truth is drawn from them
        "adults": {"between": [5e6, 1e8]},
        "contact_rate": {"between": [0.3, 0.7]},
        "prevalence": {"between": [0.1, 0.5]},
        "bribes_per_payer": {"between": [2, 10]},
        "cash_share": {"between": [0.7, 0.98]},
        "mean_cash_bribe": {"between": [1_000, 20_000]},
        "exchange_rate": {"between": [50, 500]},
    }}},
    "sampler": {"draws": 1000, "tune": 700, "chains": 2, "cores": 1, "seed": 7,
                "progressbar": False},
}
# quantity -> (placeholder value, unit); only the placeholder's uncertainty matters
PLACEHOLDER = {
    "adults": (3e7, "persons"), "contact_rate": (0.5, "fraction"),
    "prevalence": (0.3, "fraction"), "bribes_per_payer": (5, "bribes"),
    "cash_share": (0.9, "fraction"), "mean_cash_bribe": (5_000, "LCU"),
    "total_bribes": (5e7, "bribes"), "bribes_per_adult": (0.8, "bribes"),
}


def corruption_rows(country: str, year: int, skip: tuple[str, ...] = ()) -> list[dict]:
    """One country-year of survey rows (placeholder values) plus its market exchange rate."""
    rows = [{"country": country, "year": year, "market": "corruption", "quantity": q,
             "value": v, "unit": u, "source": "simulated"}
            for q, (v, u) in PLACEHOLDER.items() if q not in skip]
    rows.append({"country": country, "year": year, "market": "corruption",
                 "quantity": "exchange_rate", "item": "market", "value": 150, "unit": "LCU/USD",
                 "source": "simulated"})
    return rows


def write_config(tmp_path: Path, conf: dict, rows: list[dict], name: str = "c.yaml") -> Path:
    conf = copy.deepcopy(conf)
    conf["output"] = {"dir": str(tmp_path / "results")}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(conf, sort_keys=False))
    write_csv(tmp_path / "obs.csv", rows)
    return path


def simulate(tmp_path: Path, seed: int) -> tuple[Path, xr.Dataset]:
    """Write a config and observations simulated from the model at one prior draw.

    A share's measurement error is stated on the logit scale at the observed value, so the
    draw is made twice with the same seed: the second time the rows hold the first draw's
    values, and the noise is simulated at (nearly) the values the fit sees.
    """
    rows = [r for c in COUNTRIES for y in YEARS
            for r in corruption_rows(c, y, skip=("adults",) if c == "NGA" else ())]
    cfg = write_config(tmp_path, SIM_CONFIG, rows)
    truths = []
    for _ in range(2):
        model, _ = build_model(prepare(load_config(cfg)))
        with model:
            sim = pm.sample_prior_predictive(draws=1, random_seed=seed)
        truths.append(sim["prior"].isel(chain=0, draw=0))
        pp = sim["prior_predictive"].isel(chain=0, draw=0)
        by_line = {int(line): float(v) for name in pp.data_vars
                   for line, v in zip(pp[f"{name}_line"].values, pp[name].values, strict=True)}
        for line, row in enumerate(rows, start=2):
            row["value"] = by_line[line]
        write_csv(tmp_path / "obs.csv", rows)
    xr.testing.assert_allclose(truths[0]["flows"], truths[1]["flows"])  # same truth
    return cfg, truths[1]


@pytest.mark.slow
def test_recovers_known_bribery_values_from_simulated_surveys(tmp_path):
    cfg, truth = simulate(tmp_path, seed=21)
    out = run(cfg, write=False)
    assert out.convergence.passed, out.convergence.failures
    post = out.tree["posterior"]
    for var in ("bribes_value_lcu", "bribes_value_usd", "corruption_bribes",
                "corruption_surveyed_bribes_usd"):
        draws = np.log(post[var].stack(s=("chain", "draw")).transpose("s", ...).values)
        true = np.log(truth[var].values)
        z = (np.median(draws, axis=0) - true) / draws.std(axis=0)
        assert (np.abs(z) < 3).all(), (var, z)
        # the 5 % measurement error of each component bounds the posterior's width
        assert (draws.std(axis=0) < 0.15).all(), (var, draws.std(axis=0))
    prior_sd = np.log(out.tree["prior"]["bribes_value_lcu"]).std(("chain", "draw"))
    post_sd = np.log(post["bribes_value_lcu"]).std(("chain", "draw"))
    assert (post_sd < 0.3 * prior_sd).all()
    # flows also rest on cross-border shares that no survey informs (their posterior is their
    # prior), so only the surveyed base of the flows is checked against the truth (above)


@pytest.mark.slow
def test_nigeria_2016_total_of_cash_bribes_is_reproduced():
    """NBS/UNODC 2017: NGN 400 bn (also 402 bn) of cash bribes, USD 4.6 bn at PPP."""
    out = run(PILOT, write=False)
    assert out.convergence.passed, out.convergence.failures
    post = out.tree["posterior"]
    lcu = post["bribes_value_lcu"].sel(country="NGA", year=2016).values.ravel()
    usd = post["bribes_value_usd"].sel(country="NGA", year=2016).values.ravel()
    assert np.median(lcu) == pytest.approx(400e9, rel=0.05)
    assert np.median(usd) == pytest.approx(4.6e9, rel=0.05)
    lo, hi = np.quantile(lcu, [0.05, 0.95])
    assert lo < 400e9 < 402e9 < hi
    # the interval is at least as wide as the ~5 % disagreement of the published components
    assert (hi - lo) / np.median(lcu) > 0.1
    # reconciled, not picked: bribes per adult lies between the published 0.93 and the
    # 0.522 x 0.323 x 5.8 = 0.978 that the other components multiply out to
    per_adult = (post["corruption_contact_rate"] * post["corruption_prevalence"]
                 * post["corruption_bribes_per_payer"]).values.ravel()
    assert 0.93 < np.median(per_adult) < 0.978
    payers = post["corruption_bribe_payers"].values.ravel()
    assert 82.3e6 / 5.8 * 0.97 < np.median(payers) < 88.5e6 * 0.522 * 0.323 * 1.03
    assert "ppp" in post["bribes_value_usd"].attrs["units"].lower()
    assert "NGN" in post["bribes_value_lcu"].attrs["units"]
    assert out.tree.attrs["illustrative_inputs"] == 1  # the cross-border shares
    assert set(out.summary["corrections"]) == {"none"}  # no drugs in the run


# -- overlap with drugs (prior draws: the identities hold on every draw) -------------------------
DRUGS = {"drugs": {"drugs": {"cocaine": {"roles": {"NGA": "transit"}}}}}


def prior_draws(tmp_path: Path, markets: dict, draws: int = 300):
    conf = copy.deepcopy(SIM_CONFIG)
    conf["countries"] = ["NGA"]
    conf["markets"] = markets
    cfg = write_config(tmp_path, conf, corruption_rows("NGA", 2016) + corruption_rows(
        "NGA", 2017))
    model, ctx = build_model(prepare(load_config(cfg)))
    with model:
        sim = pm.sample_prior_predictive(draws=draws, random_seed=5)
    return sim["prior"], ctx


def test_bribes_paid_from_drug_proceeds_are_removed_once(tmp_path):
    prior, ctx = prior_draws(tmp_path, {**DRUGS, "corruption": {}})
    assert "drugs overlap" in ctx.corrections["corruption"]
    flows = prior["flows"]
    gen = flows.sel(market="corruption", phase="generation")
    drugs_mgmt = flows.sel(market="drugs", phase="management")
    overlap = prior["corruption_drug_overlap"]
    share = prior["corruption_share_bribes_from_drug_proceeds"]
    raw = gen + overlap  # before the correction
    np.testing.assert_allclose(overlap, np.minimum(share * raw, drugs_mgmt), rtol=1e-9)
    assert (overlap <= drugs_mgmt + 1e-6).all() and (gen >= 0).all()
    assert (overlap > 0).any()
    # the summary says which correction applied, to corruption rows and totals only
    tree = xr.DataTree.from_dict({"posterior": prior})
    tree.attrs["overlap_corrections"] = json.dumps(ctx.corrections)
    table = summarize(tree)
    notes = table.groupby("market")["corrections"].agg(set)
    assert notes["drugs"] == {"none"}
    assert all(n.startswith("corruption: drugs overlap") for n in notes["corruption"])
    assert all("corruption: drugs overlap" in n for n in notes["all"])


def test_no_overlap_correction_without_drugs_or_with_share_fixed_at_zero(tmp_path):
    prior, ctx = prior_draws(tmp_path, {"corruption": {}})
    assert ctx.corrections == {} and "corruption_drug_overlap" not in prior
    zero = {"priors": {"share_bribes_from_drug_proceeds": {"fixed": 0}}}
    prior, ctx = prior_draws(tmp_path, {**DRUGS, "corruption": zero})
    assert "none" in ctx.corrections["corruption"]
    assert "corruption_drug_overlap" not in prior


def test_flow_identities_with_business_and_grand_corruption(tmp_path):
    conf = {"business": True, "grand_corruption": True, "usd_basis": "ppp"}
    rows = corruption_rows("NGA", 2016) + corruption_rows("NGA", 2017) + [
        {"country": "NGA", "year": y, "market": "corruption", "quantity": "exchange_rate",
         "item": "ppp", "value": 90, "unit": "LCU/USD", "source": "t"} for y in YEARS]
    base = copy.deepcopy(SIM_CONFIG)
    base["countries"] = ["NGA"]
    base["markets"] = {"corruption": conf}
    cfg = write_config(tmp_path, base, rows)
    model, _ = build_model(prepare(load_config(cfg)))
    with model:
        p = pm.sample_prior_predictive(draws=200, random_seed=2)["prior"]
    f = p["flows"].sel(market="corruption")
    v = p["corruption_surveyed_bribes_usd"]
    rate = p["corruption_exchange_rate"]
    np.testing.assert_allclose(
        v, (p["bribes_value_lcu"] + p["corruption_business_bribes_value_lcu"]) / rate, rtol=1e-9)
    s_n, s_f, s_a = (p[f"corruption_{n}"] for n in (
        "share_nonresident_payers", "share_foreign_officials", "share_income_abroad"))
    g = p["corruption_grand_corruption_usd"]
    g_n, g_a = p["corruption_share_grand_from_nonresidents"], p["corruption_share_grand_abroad"]
    petty_in = v * s_n / (1 - s_n)
    expect = {("inward", "generation"): petty_in + g_n * g,
              ("outward", "generation"): v * s_f / (1 - s_f),
              ("outward", "management"): s_a * (v + petty_in) + g_a * g,
              ("inward", "management"): 0 * v}
    for (d, ph), value in expect.items():
        got = f.sel(direction=d, phase=ph)
        np.testing.assert_allclose(got, value.transpose(*got.dims), rtol=1e-9, atol=1e-6)
    # bribes_value_usd is at PPP here; flows are at the market rate
    np.testing.assert_allclose(p["bribes_value_usd"],
                               p["bribes_value_lcu"] / p["corruption_ppp_rate"], rtol=1e-9)


# -- bad inputs ---------------------------------------------------------------------------------
def bad_case(tmp_path: Path, change, overlay: dict | None = None) -> Path:
    rows = corruption_rows("NGA", 2016)
    change(rows)
    conf = copy.deepcopy(SIM_CONFIG)
    conf["countries"], conf["years"] = ["NGA"], [2016]
    conf["markets"] = {"corruption": overlay or {}}
    tmp_path.mkdir(parents=True, exist_ok=True)
    return write_config(tmp_path, conf, rows)


def _set(quantity: str, **values):
    def change(rows):
        for r in rows:
            if r["quantity"] == quantity:
                r.update(values)
    return change


def _drop(quantity: str):
    def change(rows):
        rows[:] = [r for r in rows if r["quantity"] != quantity]
    return change


# case -> (change of the rows, config overlay, (line, column), fragments of the reason)
BAD = {
    "prevalence above 1": (_set("prevalence", value=1.3), None, (4, "value"),
                           ("1.3 must be below 1", "prevalence is a share")),
    "negative mean cash bribe": (_set("mean_cash_bribe", value=-5300), None, (7, "value"),
                                 ("-5300 is negative", "mean_cash_bribe must be > 0")),
    "missing exchange rate": (_drop("exchange_rate"), None, (None, "quantity"),
                              ("missing exchange rate", "basis 'market' for NGA 2016",
                               "flows are current USD at market exchange rates")),
    "currency without a basis": (_set("exchange_rate", item=""), None, (10, "item"),
                                 ("'exchange_rate' needs its basis in the item column",
                                  "market", "ppp")),
    "unknown basis": (_set("exchange_rate", item="official"), None, (10, "item"),
                      ("'official' is not valid for 'exchange_rate'", "market", "ppp")),
    "ppp basis without ppp rate": (lambda rows: None, {"usd_basis": "ppp"}, (None, "quantity"),
                                   ("no exchange_rate row with basis 'ppp' for NGA 2016",)),
    "fewer than one bribe per payer": (_set("bribes_per_payer", value=0.8), None, (5, "value"),
                                       ("below 1", "at least 1 by definition")),
    "business rows without business": (
        lambda rows: rows.append({**rows[0], "quantity": "firms", "value": 1000,
                                  "unit": "firms"}), None, (11, "quantity"),
        ("firms is read only with business: true",)),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_corruption_input_names_file_row_and_reason(tmp_path, case):
    change, overlay, (line, column), fragments = BAD[case]
    cfg = bad_case(tmp_path, change, overlay)
    with pytest.raises(IffInputError) as exc:
        prepare(load_config(cfg))
    (problem,) = exc.value.problems
    assert problem.file == str(tmp_path / "obs.csv"), str(exc.value)
    assert (problem.row, problem.field) == (line, column), str(exc.value)
    for fragment in fragments:
        assert fragment in problem.reason, str(exc.value)


#: case -> commands run on it (each process mostly imports PyMC: keep them few)
CLI_CASES = {"prevalence above 1": ("validate",), "negative mean cash bribe": ("run",),
             "missing exchange rate": ("validate", "run"),
             "currency without a basis": ("validate", "run")}


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    """``iff validate`` and ``iff run`` on each bad input, run concurrently."""
    root = tmp_path_factory.mktemp("bad")
    jobs = []
    for i, case in enumerate(CLI_CASES):
        change, overlay, _, _ = BAD[case]
        cfg = bad_case(root / f"case{i}", change, overlay)
        jobs += [(case, command, cfg) for command in CLI_CASES[case]]
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}

    def one(job):
        case, command, cfg = job
        return (case, command), subprocess.run(
            [str(IFF), command, str(cfg)], cwd=cfg.parent, env=env, capture_output=True,
            text=True, timeout=300)

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return dict(pool.map(one, jobs))


@pytest.mark.parametrize(("case", "command"),
                         [(case, c) for case, commands in CLI_CASES.items() for c in commands])
def test_bad_corruption_input_exits_2_without_traceback(cli_runs, case, command):
    proc = cli_runs[(case, command)]
    report = f"rc={proc.returncode}\n{proc.stderr}"
    assert proc.returncode == 2, report
    assert "Traceback" not in proc.stderr + proc.stdout, report
    assert "obs.csv" in proc.stderr and BAD[case][3][0] in proc.stderr, report
    assert not (Path(proc.args[2]).parent / "results").exists()
