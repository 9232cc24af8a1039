"""Drug throughput sampled through the seizures it implies keeps its declared prior."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from scipy import stats

from iff import load_config
from iff.engine import build_model, prepare
from iff.priors import Support, resolve
from tests.conftest import REPO, write_csv


def test_throughput_through_seizures_keeps_its_prior_with_seized_years_first():
    """The multi-country demo lacks MEX's and HND's cocaine seizures of 2019: their year loadings
    take the seized years first, so 2019's innovation moves 2019 alone. Log throughput keeps its
    log-normal prior, the AR(1) correlation 0.9**|dt| over years and its independence of the
    interdiction rate and the wholesale purity, whose draws the sampled variable is shifted by."""
    from iff.forward import forward_draws
    from iff.markets.drugs import seizure_loadings
    from iff.models.structure import YEAR_CORRELATION

    plan = prepare(load_config(REPO / "configs" / "multi-country-demo.yaml"))
    model, ctx = build_model(plan)
    assert "drugs_seizures_z" in model.named_vars  # the seizures parameterisation is in use
    years = [int(y) for y in ctx.coord("year")]
    countries = list(ctx.coord("country"))
    loadings = seizure_loadings(ctx, years)
    y = np.array(years, dtype=float)
    corr = YEAR_CORRELATION ** np.abs(y[:, None] - y[None, :])
    for loading in loadings.reshape(-1, len(years), len(years)):
        np.testing.assert_allclose(loading @ loading.T, corr, atol=1e-12)
    k = years.index(2019)
    for country in ("MEX", "HND"):
        column = loadings[0, countries.index(country), :, k]
        assert column[k] > 0 and np.all(np.delete(column, k) == 0.0)
    np.testing.assert_allclose(loadings[0, countries.index("COL")], np.linalg.cholesky(corr),
                               atol=1e-12)

    names = ["drugs_throughput", "drugs_interdiction_rate", "drugs_purity_wholesale"]
    draws = forward_draws(model, names, 20_000, 11)
    market = plan.markets["drugs"]
    for country in ("MEX", "COL"):
        c = countries.index(country)
        family, params = resolve(market._prior("throughput", "cocaine", country),
                                 Support.POSITIVE)
        assert family == "LogNormal"
        log_t = np.log(draws["drugs_throughput"][:, 0, c, :])
        for j in range(len(years)):
            prior = stats.norm(params["mu"], params["sigma"]).cdf
            assert stats.kstest(log_t[:, j], prior).pvalue > 1e-3
        np.testing.assert_allclose(np.corrcoef(log_t.T), corr, atol=0.02)
        for other in ("drugs_interdiction_rate", "drugs_purity_wholesale"):
            x = np.log(draws[other][:, 0, c])
            for j in range(len(years)):
                assert abs(np.corrcoef(log_t[:, j], x)[0, 1]) < 0.03


@pytest.mark.parametrize("smooth", [False, True])
def test_throughput_keeps_its_prior_unsmoothed_and_with_one_year(tmp_path, smooth):
    """Without year smoothing (turned off, or one year only) the seizures parameterisation has
    no year loading: log throughput is still N(mu, sigma), independent of the interdiction rate
    and the purity."""
    from iff.forward import forward_draws

    years = [2016, 2017] if not smooth else [2017]
    conf = {"name": "t", "countries": ["COL"], "years": years,
            "observations": {"file": "obs.csv"},
            "markets": {"drugs": {"drugs": {"cocaine": {"roles": {"COL": "producer"}}},
                                  "smooth": {"throughput": smooth}}},
            "sampler": {"draws": 100, "seed": 1},
            "output": {"dir": str(tmp_path / "results")}}
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(conf))
    write_csv(tmp_path / "obs.csv", [
        {"country": "COL", "year": 2017, "market": "drugs", "quantity": "seizures",
         "item": "cocaine", "value": 130_000, "unit": "kg", "se": 6_500, "source": "test"}])
    plan = prepare(load_config(tmp_path / "t.yaml"))
    model, _ = build_model(plan)
    assert "drugs_seizures_z" in model.named_vars
    names = ["drugs_throughput", "drugs_interdiction_rate", "drugs_purity_wholesale"]
    draws = forward_draws(model, names, 20_000, 5)
    family, params = resolve(plan.markets["drugs"]._prior("throughput", "cocaine", "COL"),
                             Support.POSITIVE)
    assert family == "LogNormal"
    log_t = np.log(draws["drugs_throughput"][:, 0, 0, :])
    prior = stats.norm(params["mu"], params["sigma"]).cdf
    for j in range(len(years)):
        assert stats.kstest(log_t[:, j], prior).pvalue > 1e-3
        for other in names[1:]:
            assert abs(np.corrcoef(log_t[:, j], np.log(draws[other][:, 0, 0]))[0, 1]) < 0.03
    if len(years) > 1:  # smoothing off: years independent
        assert abs(np.corrcoef(log_t.T)[0, 1]) < 0.03
