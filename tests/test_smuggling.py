"""Smuggling of migrants: the four-type residency scheme on every draw, bad rows, recovery of
known flows from simulated data."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from iff import load_config, run
from iff.engine import prepare
from iff.errors import IffInputError
from tests.conftest import write_csv

MARKET = "smuggling_of_migrants"
HEADER = ["country", "year", "market", "quantity", "item", "value", "unit", "se", "lower",
          "upper", "source"]


def write_config(tmp_path, conf: dict):
    conf = {**conf, "output": {"dir": str(tmp_path / "results")}}
    path = tmp_path / "som.yaml"
    path.write_text(yaml.safe_dump(conf, sort_keys=False))
    return path


def test_four_type_scheme_on_every_draw(tmp_path):
    conf = {"name": "som", "countries": ["MEX", "GTM"], "years": [2018, 2019],
            "markets": {MARKET: {}},
            "sampler": {"method": "forward", "draws": 300, "chains": 1, "seed": 2}}
    post = run(write_config(tmp_path, conf), write=False).tree["posterior"]
    revenue = post[f"{MARKET}_revenue"]
    s_res = post[f"{MARKET}_share_resident_smugglers"]
    m = post[f"{MARKET}_share_income_abroad"]
    v = post[f"{MARKET}_share_nonresident_invested"]
    r_res, r_non = revenue.sel(migrant_group="resident"), revenue.sel(migrant_group="nonresident")
    s_r, s_n = s_res.sel(migrant_group="resident"), s_res.sel(migrant_group="nonresident")
    type2, type3 = r_non * s_n, r_res * (1 - s_r)
    f = post["flows"].sel(market=MARKET)
    expect = {("inward", "generation"): type2, ("outward", "generation"): type3,
              ("outward", "management"): m * (type2 + r_res * s_r),
              ("inward", "management"): v * type3}
    for (d, ph), value in expect.items():
        got = f.sel(direction=d, phase=ph)
        np.testing.assert_allclose(got, value.transpose(*got.dims), rtol=1e-9)
    # revenue = attempts x share paying x fee
    attempts = post[f"{MARKET}_attempts"]
    paying = post[f"{MARKET}_share_paying"]
    fee = post[f"{MARKET}_fee"]
    np.testing.assert_allclose(revenue, (attempts * paying * fee).transpose(*revenue.dims),
                               rtol=1e-9)


@pytest.mark.parametrize(("row", "reason"), [
    ({"quantity": "share_paying", "item": "resident", "value": 1.3, "unit": "fraction"},
     "must be below 1"),
    ({"quantity": "fee", "item": "tourists", "value": 4000, "unit": "USD"}, "tourists"),
    ({"quantity": "fee", "item": "resident", "value": -5, "unit": "USD"}, "value"),
    ({"quantity": "apprehensions", "item": "resident", "value": 10, "unit": "USD"}, "unit"),
    ({"quantity": "fees", "item": "resident", "value": 4000, "unit": "USD"}, "fee"),
])
def test_bad_rows_name_line_and_reason(tmp_path, row, reason):
    write_csv(tmp_path / "obs.csv", [{"country": "MEX", "year": 2019, "market": MARKET,
                                      "source": "test", **row}], header=HEADER)
    conf = {"name": "som", "countries": ["MEX"], "years": [2019],
            "observations": {"file": "obs.csv"}, "markets": {MARKET: {}},
            "sampler": {"draws": 10, "tune": 10, "chains": 1, "seed": 2}}
    with pytest.raises(IffInputError) as err:
        prepare(load_config(write_config(tmp_path, conf)))
    text = err.value.render()
    assert "obs.csv:2" in text and reason in text, text


@pytest.mark.slow
def test_recovers_known_flows_from_simulated_data(tmp_path):
    rng = np.random.default_rng(11)
    truth = {"attempts": {"resident": 300_000.0, "nonresident": 450_000.0},
             "p_app": {"resident": 0.5, "nonresident": 0.4},
             "paying": {"resident": 0.55, "nonresident": 0.75},
             "fee": {"resident": 5_000.0, "nonresident": 4_500.0}}
    rows = []
    for g in ("resident", "nonresident"):
        appr = truth["attempts"][g] * truth["p_app"][g] * np.exp(rng.normal(0, 0.02))
        rows += [
            {"quantity": "apprehensions", "item": g, "value": round(appr), "unit": "persons"},
            {"quantity": "apprehension_probability", "item": g, "value": truth["p_app"][g],
             "unit": "fraction", "se": 0.03},
            {"quantity": "share_paying", "item": g, "value": truth["paying"][g],
             "unit": "fraction", "se": 0.03},
            {"quantity": "fee", "item": g, "value": truth["fee"][g], "unit": "USD",
             "lower": truth["fee"][g] / 1.15, "upper": truth["fee"][g] * 1.15},
        ]
    write_csv(tmp_path / "obs.csv", [{"country": "MEX", "year": 2019, "market": MARKET,
                                      "source": "simulated", **r} for r in rows], header=HEADER)
    fixed = {"share_resident_smugglers": 0.6, "share_income_abroad": 0.2,
             "share_nonresident_invested": 0.1}
    conf = {"name": "som-recovery", "countries": ["MEX"], "years": [2019],
            "observations": {"file": "obs.csv", "interval_prob": 0.9},
            "markets": {MARKET: {"priors": {k: {"fixed": v} for k, v in fixed.items()}}},
            "sampler": {"draws": 1000, "tune": 1000, "chains": 2, "cores": 1, "seed": 4,
                        "progressbar": False}}
    out = run(write_config(tmp_path, conf), write=False)
    assert out.convergence.passed, out.convergence.failures
    rev = {g: truth["attempts"][g] * truth["paying"][g] * truth["fee"][g]
           for g in ("resident", "nonresident")}
    type2, type3 = rev["nonresident"] * 0.6, rev["resident"] * 0.4
    expect = {("inward", "generation"): type2, ("outward", "generation"): type3,
              ("outward", "management"): 0.2 * (type2 + rev["resident"] * 0.6),
              ("inward", "management"): 0.1 * type3}
    flows = out.tree["posterior"]["flows"].sel(market=MARKET, country="MEX", year=2019)
    for (d, ph), true in expect.items():
        draws = flows.sel(direction=d, phase=ph).values.ravel()
        lo, hi = np.quantile(draws, [0.05, 0.95])
        assert lo < true < hi, (d, ph, lo, true, hi)
        assert np.median(draws) == pytest.approx(true, rel=0.2)


def test_smoothed_attempts_keep_their_prior_with_measured_years_first():
    """The multi-country demo lacks GTM's and HND's resident apprehensions of 2018: their year
    loadings take the measured years first, so 2018's innovation moves 2018 alone, and the
    attempts keep the AR(1) prior (correlation 0.9**|dt| of log attempts over years)."""
    from iff.engine import build_model
    from iff.forward import forward_draws
    from iff.markets.smuggling import GROUPS, attempt_loadings
    from iff.models.structure import YEAR_CORRELATION
    from tests.conftest import REPO

    plan = prepare(load_config(REPO / "configs" / "multi-country-demo.yaml"))
    model, ctx = build_model(plan)
    years = [int(y) for y in ctx.coord("year")]
    countries = list(ctx.coord("country"))
    loadings = attempt_loadings(ctx, years)
    y = np.array(years, dtype=float)
    corr = YEAR_CORRELATION ** np.abs(y[:, None] - y[None, :])
    for loading in loadings.reshape(-1, len(years), len(years)):
        np.testing.assert_allclose(loading @ loading.T, corr, atol=1e-12)
    k = years.index(2018)
    for country in ("GTM", "HND"):
        column = loadings[countries.index(country), GROUPS.index("resident"), :, k]
        assert column[k] > 0 and np.all(np.delete(column, k) == 0.0)
    mex = loadings[countries.index("MEX"), GROUPS.index("resident")]  # every year measured
    np.testing.assert_allclose(mex, np.linalg.cholesky(corr), atol=1e-12)

    name = f"{MARKET}_attempts"
    log_attempts = np.log(forward_draws(model, [name], 20_000, 7)[name])
    draws = log_attempts[:, countries.index("GTM"), :, GROUPS.index("resident")]
    np.testing.assert_allclose(np.corrcoef(draws.T), corr, atol=0.02)
