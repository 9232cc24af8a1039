"""Pooling across countries and smoothing across years (iff.models.structure): the structured
field keeps every element's prior, pooling beats no pooling on sparse simulated data, and a year
without data gets an estimate from its neighbours."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
import yaml
from scipy import integrate, stats

from iff import run
from iff.models.structure import (
    along_years,
    ar1_loading,
    logit_moments,
    measured_first_loadings,
    standard_field,
)
from tests.conftest import write_csv

MARKET = "smuggling_of_migrants"


def test_ar1_loading_gives_the_stationary_correlation_with_gaps():
    years = [2010, 2011, 2013, 2016]
    rho = 0.8
    loading = ar1_loading(years, rho)
    y = np.array(years, dtype=float)
    np.testing.assert_allclose(loading @ loading.T, rho ** np.abs(y[:, None] - y[None, :]),
                               rtol=1e-12)


def test_measured_first_loadings_are_square_roots_with_unmeasured_years_alone():
    years = [2015, 2016, 2018, 2019, 2020]  # a gap: correlation 0.9**|dt| all the same
    measured = np.array([[True, False, True, False, True], [True] * 5, [False] * 5])
    loadings = measured_first_loadings(years, measured)
    y = np.array(years, dtype=float)
    corr = 0.9 ** np.abs(y[:, None] - y[None, :])
    for loading in loadings:
        np.testing.assert_allclose(loading @ loading.T, corr, atol=1e-12)
    # measured years of the first series load on measured years' innovations only; an
    # unmeasured year loads on its own innovation
    seen, unseen = np.flatnonzero(measured[0]), np.flatnonzero(~measured[0])
    assert np.all(loadings[0][np.ix_(seen, unseen)] == 0.0)
    assert np.all(np.diag(loadings[0])[unseen] > 0)
    np.testing.assert_allclose(loadings[1], np.linalg.cholesky(corr), atol=1e-12)
    np.testing.assert_allclose(loadings[2], np.linalg.cholesky(corr), atol=1e-12)


@pytest.mark.parametrize("year_axis", [0, 1, 2])
def test_along_years_applies_each_series_its_own_matrix(year_axis):
    rng = np.random.default_rng(3)
    dims = [2, 3]
    shape = list(dims)
    shape.insert(year_axis, 4)
    t = rng.normal(size=shape)
    matrices = rng.normal(size=(*dims, 4, 4))
    got = along_years(pt.as_tensor_variable(t), matrices, year_axis).eval()
    moved = np.moveaxis(t, year_axis, -1)  # (*dims, year)
    expect = np.moveaxis(np.einsum("abyk,abk->aby", matrices, moved), -1, year_axis)
    np.testing.assert_allclose(got, expect, atol=1e-12)


def test_structured_field_keeps_unit_marginals_and_correlates():
    coords = {"country": ["A", "B", "C"], "year": [2015, 2016, 2017, 2019]}
    with pm.Model(coords=coords):
        x = standard_field("p", ("country", "year"), coords, pool=True, smooth=True)
        pm.Deterministic("x", x, dims=("country", "year"))
        draws = pm.sample_prior_predictive(draws=20_000, random_seed=3)["prior"]["x"]
    flat = draws.values.reshape(-1, 3, 4)
    np.testing.assert_allclose(flat.mean(axis=0), 0.0, atol=0.03)
    np.testing.assert_allclose(flat.std(axis=0), 1.0, atol=0.03)
    for element in (flat[:, 0, 0], flat[:, 2, 3]):  # exactly standard normal, not just 2 moments
        assert stats.kstest(element, "norm").pvalue > 0.001
    corr_years = np.corrcoef(flat[:, 0, 0], flat[:, 0, 1])[0, 1]
    corr_countries = np.corrcoef(flat[:, 0, 0], flat[:, 1, 0])[0, 1]
    assert corr_years > 0.4 and corr_countries > 0.2


def test_pooled_field_has_the_stated_law_across_countries():
    """x_c = (g' + tau eta_c) / sqrt(1 + tau^2), sampled through the country mean and contrasts:
    unit normal marginals and a correlation of E[1 / (1 + tau^2)] with tau ~ HalfNormal(1)."""
    coords = {"country": ["A", "B", "C", "D", "E"]}
    with pm.Model(coords=coords):
        x = standard_field("p", ("country",), coords, pool=True, smooth=False)
        pm.Deterministic("x", x, dims=("country",))
        draws = pm.sample_prior_predictive(draws=40_000, random_seed=5)["prior"]["x"]
    flat = draws.values.reshape(-1, 5)
    for c in range(5):
        assert stats.kstest(flat[:, c], "norm").pvalue > 0.001
    density = stats.halfnorm(scale=1.0).pdf
    expected = integrate.quad(lambda t: density(t) / (1.0 + t**2), 0.0, np.inf)[0]  # 0.656
    corr = np.corrcoef(flat.T)[np.triu_indices(5, 1)]
    np.testing.assert_allclose(corr, expected, atol=0.02)
    # the country mean of x has variance (1 + 4 E[1 / (1 + tau^2)]) / 5, as the law implies
    np.testing.assert_allclose(flat.mean(axis=1).var(), (1.0 + 4.0 * expected) / 5.0, rtol=0.03)


def test_logit_moments_match_beta_draws():
    rng = np.random.default_rng(0)
    x = rng.beta(3.0, 7.0, 400_000)
    mean, sd = logit_moments(np.array(3.0), np.array(7.0))
    logit = np.log(x / (1 - x))
    assert abs(logit.mean() - mean) < 0.01 and abs(logit.std() - sd) < 0.01


def _write(tmp_path, name, conf, rows):
    conf = {**conf, "name": name, "observations": {"file": f"{name}.csv"},
            "output": {"dir": str(tmp_path / name)}}
    write_csv(tmp_path / f"{name}.csv", rows)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(conf, sort_keys=False))
    return path


SAMPLER = {"draws": 1000, "tune": 1000, "chains": 2, "cores": 2, "seed": 11,
           "target_accept": 0.95, "progressbar": False}


@pytest.mark.slow
def test_pooling_recovers_country_fees_better_than_no_pooling(tmp_path):
    """Ten countries with similar true fees; six report one noisy mean fee, four none."""
    rng = np.random.default_rng(2024)
    countries = ["MEX", "GTM", "HND", "SLV", "NIC", "CRI", "PAN", "BLZ", "COL", "ECU"]
    truth = np.exp(np.log(4_000) + 0.1 * rng.standard_normal(len(countries)))
    rows = [{"country": c, "year": 2019, "market": MARKET, "quantity": "fee",
             "item": "resident", "value": round(float(t * np.exp(0.4 * rng.standard_normal())),
                                                1),
             "unit": "USD", "se": round(float(0.4 * t), 1), "source": "simulated"}
            for c, t in zip(countries[:6], truth[:6], strict=True)]
    base = {"countries": countries, "years": [2019], "sampler": {**SAMPLER, "chains": 4}}
    # only the fee differs between the two runs (other parameters are prior-only here)
    others = {p: False for p in ("apprehension_probability", "share_paying",
                                 "share_resident_smugglers", "share_income_abroad",
                                 "share_nonresident_invested")}
    errors = {}
    for label, fee_pooled in (("pooled", True), ("unpooled", False)):
        market = {"pool": {**others, "fee": fee_pooled}}
        path = _write(tmp_path, label, {**base, "markets": {MARKET: market}}, rows)
        outcome = run(path, write=False)
        assert outcome.convergence.passed, outcome.convergence.failures
        fee = outcome.tree["posterior"][f"{MARKET}_fee"].sel(year=2019, migrant_group="resident")
        est = fee.median(("chain", "draw")).sel(country=countries).values
        errors[label] = float(np.sqrt(np.mean((np.log(est) - np.log(truth)) ** 2)))
        if label == "pooled":
            assert "smuggling_of_migrants_fee" in outcome.tree.attrs["structure"]
    assert errors["pooled"] < 0.75 * errors["unpooled"], errors


@pytest.mark.slow
def test_a_year_without_data_is_smoothed_from_its_neighbours(tmp_path):
    years = list(range(2015, 2022))
    counts = {y: 100_000 * 1.1 ** (y - 2015) for y in years}
    rows = [{"country": "MEX", "year": y, "market": MARKET, "quantity": "apprehensions",
             "item": "resident", "value": round(v), "unit": "persons", "source": "simulated"}
            for y, v in counts.items() if y != 2018]
    conf = {"countries": ["MEX"], "years": years, "sampler": SAMPLER,
            "markets": {MARKET: {"priors": {"apprehension_probability": {"fixed": 0.5}}}}}
    widths, medians = {}, {}
    for label, extra in (("smoothed", {}), ("independent", {"smooth": {"attempts": False}})):
        conf["markets"][MARKET].update(extra)
        outcome = run(_write(tmp_path, label, conf, rows), write=False)
        assert outcome.convergence.passed, outcome.convergence.failures
        attempts = outcome.tree["posterior"][f"{MARKET}_attempts"].sel(
            country="MEX", migrant_group="resident")
        lo, med, hi = (attempts.quantile(q, ("chain", "draw")) for q in (0.05, 0.5, 0.95))
        widths[label] = np.log(hi / lo).to_series()
        medians[label] = med.to_series()
    smooth = widths["smoothed"]
    # the gap year is estimated, more uncertain than observed years, far less than the prior
    assert smooth[2018] > 2 * max(smooth[2017], smooth[2019])
    assert smooth[2018] < 0.5 * widths["independent"][2018]
    expected = 2 * counts[2018]  # attempts = apprehensions / 0.5
    assert abs(np.log(medians["smoothed"][2018] / expected)) < 0.25
