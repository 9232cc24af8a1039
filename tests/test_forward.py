"""Forward Monte Carlo (no observations): chosen automatically, exact, matches analytic moments."""

from __future__ import annotations

import numpy as np
import pytest

from iff import load_config, run
from iff.build import as_prior
from iff.priors import Support, scipy_distribution

PRIORS = {
    "throughput": {"between": [80_000, 120_000]},
    "interdiction_rate": {"between": [0.2, 0.4]},
    "production_share": {"between": [0.8, 0.95]},
    "domestic_share": {"between": [0.05, 0.15]},
    "pure_price_border": {"between": [1_500, 2_500]},
    "pure_price_wholesale": {"between": [2_000, 3_000]},
    "pure_price_destination_wholesale": {"between": [30_000, 45_000]},
    "share_income_abroad": {"between": [0.1, 0.3]},
    "share_nonresident_invested": {"between": [0.05, 0.2]},
}
SUPPORT = {k: (Support.POSITIVE if k.startswith(("throughput", "pure_price")) else Support.UNIT)
           for k in PRIORS}


def _moment(name: str, k: int = 1, complement: bool = False) -> float:
    """E[X^k] (or E[(1-X)^k]) of a prior, by numerical integration of its SciPy distribution."""
    dist = scipy_distribution(as_prior(PRIORS[name]), SUPPORT[name])
    return float(dist.expect(lambda x: ((1 - x) if complement else x) ** k))


@pytest.fixture(scope="module")
def forward_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("forward")
    cfg = tmp / "fwd.yaml"
    import yaml

    cfg.write_text(yaml.safe_dump({
        "name": "fwd", "countries": ["COL"], "years": [2017],
        "markets": {"drugs": {"drugs": {"cocaine": {"role": "producer"}}, "priors": PRIORS}},
        "sampler": {"draws": 4000, "chains": 4, "seed": 7, "progressbar": False},
    }))
    return run(load_config(cfg), write=False)


def test_forward_is_chosen_without_observations(forward_run):
    assert forward_run.tree.attrs["method"] == "forward"
    assert forward_run.convergence.verdict == "exact"
    flows = forward_run.tree["posterior"]["flows"]
    assert flows.sizes["chain"] == 4 and flows.sizes["draw"] == 4000


@pytest.mark.parametrize("k", [1, 2])
def test_forward_matches_analytic_moments(forward_run, k):
    """Generation flows are products of independent priors: E[prod^k] = prod E[X^k]."""
    f = forward_run.tree["posterior"]["flows"].sel(market="drugs", country="COL", year=2017)
    inward = f.sel(direction="inward", phase="generation").values.ravel()
    outward = f.sel(direction="outward", phase="generation").values.ravel()
    # inward = T (1-d)(1-r) p_dest ; outward = T (1-p) p_border
    exp_in = (_moment("throughput", k) * _moment("domestic_share", k, True)
              * _moment("interdiction_rate", k, True)
              * _moment("pure_price_destination_wholesale", k))
    exp_out = (_moment("throughput", k) * _moment("production_share", k, True)
               * _moment("pure_price_border", k))
    for draws, expected in ((inward, exp_in), (outward, exp_out)):
        mc = draws**k
        se = mc.std(ddof=1) / np.sqrt(mc.size)
        assert abs(mc.mean() - expected) < 4 * se, (mc.mean(), expected, se)


def test_forward_management_mean(forward_run):
    """Outward management = share_abroad x (exports value + domestic sales at wholesale)."""
    f = forward_run.tree["posterior"]["flows"].sel(market="drugs", country="COL", year=2017)
    mgmt = f.sel(direction="outward", phase="management").values.ravel()
    t, r = _moment("throughput"), _moment("interdiction_rate", complement=True)
    d, d1 = _moment("domestic_share"), _moment("domestic_share", complement=True)
    revenue = t * r * (d1 * _moment("pure_price_destination_wholesale")
                       + d * _moment("pure_price_wholesale"))
    expected = _moment("share_income_abroad") * revenue
    se = mgmt.std(ddof=1) / np.sqrt(mgmt.size)
    assert abs(mgmt.mean() - expected) < 4 * se


def test_forward_same_seed_same_numbers(forward_run):
    again = run(forward_run.loaded, write=False)
    np.testing.assert_array_equal(again.tree["posterior"]["flows"].values,
                                  forward_run.tree["posterior"]["flows"].values)


# -- the vectorised machinery itself (iff.forward), on small models --------------------------------
def test_batched_dirichlet_matches_pymc_draws():
    """Dirichlet draws are normalised Gammas in forward runs: same law as PyMC's own draws."""
    import pymc as pm
    from scipy import stats

    from iff.forward import forward_draws

    alpha = np.array([[2.0, 5.0, 3.0], [1.0, 1.0, 8.0]])
    with pm.Model() as model:
        shares = pm.Dirichlet("shares", a=alpha, shape=alpha.shape)
        pm.Deterministic("doubled", 2 * shares)
    out = forward_draws(model, ["shares", "doubled"], 20_000, seed=3)
    assert out["shares"].shape == (20_000, 2, 3)
    np.testing.assert_allclose(out["shares"].sum(axis=-1), 1.0)
    np.testing.assert_allclose(out["doubled"], 2 * out["shares"])
    reference = pm.draw(shares, draws=20_000, random_seed=1)
    for i, j in np.ndindex(2, 3):
        assert stats.ks_2samp(out["shares"][:, i, j], reference[:, i, j]).pvalue > 1e-3


def test_interpreted_and_compiled_forward_give_the_same_draws(monkeypatch):
    """Few draws run interpreted (no compile), many compiled: the mode must not change draws."""
    import pymc as pm

    import iff.forward as forward

    with pm.Model() as model:
        scale = pm.LogNormal("scale", 0.0, 1.0)
        x = pm.Gamma("x", alpha=np.full(3, 2.0), beta=1.0 / scale)  # depends on a prior
        pm.Deterministic("total", x.sum() * scale)
    interpreted = forward.forward_draws(model, ["scale", "x", "total"], 500, seed=9)
    monkeypatch.setattr(forward, "COMPILE_FROM_DRAWS", 1)
    compiled = forward.forward_draws(model, ["scale", "x", "total"], 500, seed=9)
    for name in interpreted:
        np.testing.assert_allclose(interpreted[name], compiled[name], rtol=1e-12)


def test_deterministics_from_draws_equal_pymc_per_draw_values():
    """Deterministics recomputed from posterior draws in one call equal those PyMC records per
    draw, including one that reads an observed value and one that depends on no draw."""
    import pymc as pm

    from iff.forward import deterministics_from_draws

    rng = np.random.default_rng(4)
    with pm.Model(coords={"year": [2015, 2016, 2017]}) as model:
        level = pm.Normal("level", 0.0, 1.0)
        rate = pm.Beta("rate", 2.0, 5.0, dims="year")
        seen = pm.Normal("seen", level + rate, 0.5, observed=rng.normal(0.3, 0.5, 3), dims="year")
        pm.Deterministic("value", pt_exp(level) * rate, dims="year")
        pm.Deterministic("residual", seen - level, dims="year")
        pm.Deterministic("constant", pt_exp(np.ones(2)))
        idata = pm.sample(draws=30, tune=30, chains=2, cores=1, random_seed=2,
                          progressbar=False, compute_convergence_checks=False)
    posterior = idata.posterior.to_dataset()
    recomputed = deterministics_from_draws(model, posterior[["level", "rate"]])
    assert set(recomputed.data_vars) == {"value", "residual", "constant"}
    for name in recomputed.data_vars:
        assert recomputed[name].dims == posterior[name].dims
        np.testing.assert_allclose(recomputed[name].values, posterior[name].values, rtol=1e-12)


def pt_exp(x):
    """``exp`` of a tensor or array, as a PyTensor expression."""
    import pytensor.tensor as pt

    return pt.exp(x)


def test_prior_function_from_the_cache_draws_as_a_fresh_one(tmp_path, monkeypatch):
    """The vectorised prior function is kept in iff.function_cache: loaded, it draws exactly
    what the fresh build drew for the same seed (its generators are reseeded), another seed
    draws otherwise, and a model differing only in its observations shares the entry."""
    import pymc as pm

    import iff.forward as forward
    import iff.function_cache as function_cache

    monkeypatch.setattr(function_cache, "cache_dir", lambda: tmp_path / "cache")

    def model_with(observed: np.ndarray) -> pm.Model:
        with pm.Model() as model:
            scale = pm.LogNormal("scale", 0.0, 1.0)
            x = pm.Gamma("x", alpha=np.full(3, 2.0), beta=1.0 / scale)
            pm.Normal("seen", x.sum(), 1.0, observed=observed)
        return model

    fresh = forward.forward_draws(model_with(np.array([1.0])), ["scale", "x"], 500, seed=9)
    assert len(list((tmp_path / "cache").glob("*.pkl"))) == 1

    def no_build(*args, **kwargs):
        raise AssertionError("the prior function was built again instead of loaded")

    monkeypatch.setattr(forward, "vectorize_graph", no_build)
    other_data = model_with(np.array([5.0, 6.0]))
    loaded = forward.forward_draws(other_data, ["scale", "x"], 500, seed=9)
    other_seed = forward.forward_draws(other_data, ["scale", "x"], 500, seed=10)
    for name in fresh:
        np.testing.assert_array_equal(loaded[name], fresh[name])
    assert not np.array_equal(other_seed["x"], fresh["x"])


def test_draws_beyond_one_call_come_in_equal_chunks_of_fresh_draws(monkeypatch):
    """More draws than CHUNK_DRAWS are drawn by several calls of one function: every draw is
    kept once, none repeats across calls, the law is the same and the seed fixes the numbers."""
    import pymc as pm
    from scipy import stats

    import iff.forward as forward

    with pm.Model() as model:
        scale = pm.HalfNormal("scale", 2.0)
        x = pm.Normal("x", mu=np.array([1.0, -3.0]), sigma=np.array([0.5, 2.0]))
        pm.Deterministic("scaled", x * scale)
    one_call = forward.forward_draws(model, ["x", "scale", "scaled"], 3_000, seed=4)
    monkeypatch.setattr(forward, "CHUNK_DRAWS", 700)  # 3,000 draws: 5 calls of 600
    chunked = forward.forward_draws(model, ["x", "scale", "scaled"], 3_000, seed=4)
    again = forward.forward_draws(model, ["x", "scale", "scaled"], 3_000, seed=4)
    for name in chunked:
        assert chunked[name].shape == one_call[name].shape
        np.testing.assert_array_equal(chunked[name], again[name])
    np.testing.assert_allclose(chunked["scaled"], chunked["x"] * chunked["scale"][:, None])
    assert len(np.unique(chunked["x"][:, 0])) == 3_000  # no call repeated another's draws
    for j in range(2):
        assert stats.ks_2samp(chunked["x"][:, j], one_call["x"][:, j]).pvalue > 1e-3
    with pytest.raises(ValueError, match="at least one draw"):
        forward.forward_draws(model, ["x"], 0, seed=4)


def test_normal_priors_drawn_from_one_standard_normal_block_keep_their_law():
    """Root normal variables are ``loc + scale * z`` with ``z`` slices of one standard normal
    draw: each keeps its mean and scale, and the variables are independent of one another."""
    import pymc as pm
    from scipy import stats

    from iff.forward import forward_draws

    loc = np.array([[0.0, 10.0, -5.0], [2.0, 3.0, 4.0]])
    scale = np.array([[1.0, 0.1, 3.0], [0.5, 2.0, 1.0]])
    with pm.Model(coords={"country": ["A", "B"], "year": [1, 2, 3]}) as model:
        a = pm.Normal("a", mu=loc, sigma=scale, dims=("country", "year"))
        pm.Normal("b", 0.0, 1.0)
        pm.Normal("c", mu=a.sum(), sigma=1.0)  # not a root: drawn given its parent
    out = forward_draws(model, ["a", "b", "c"], 20_000, seed=11)
    assert out["a"].shape == (20_000, 2, 3) and out["b"].shape == (20_000,)
    for i, j in np.ndindex(2, 3):
        z = (out["a"][:, i, j] - loc[i, j]) / scale[i, j]
        assert stats.kstest(z, "norm").pvalue > 1e-3
    assert stats.kstest(out["b"], "norm").pvalue > 1e-3
    assert stats.kstest(out["c"] - out["a"].sum(axis=(1, 2)), "norm").pvalue > 1e-3
    flat = np.column_stack([out["a"].reshape(20_000, -1), out["b"]])
    corr = np.corrcoef(flat, rowvar=False)
    assert np.abs(corr - np.eye(7)).max() < 0.05  # independent blocks, not one reused


def test_normals_with_drawn_parameters_come_from_the_standard_normal_block():
    """A normal whose loc and scale depend on other variables is ``loc + scale * z`` too, with
    its parameters taken from the same draws of those variables: given them it is normal with
    that loc and scale, and its ``z`` is independent of them. A normal below a variable that
    PyTensor vectorises (here a gamma with a drawn rate) is left to PyTensor."""
    import pymc as pm
    from scipy import stats

    from iff.forward import _batched_free_rvs, forward_draws

    with pm.Model() as model:
        tau = pm.HalfNormal("tau", 1.0)
        m = pm.Normal("m", 0.0, 1.0, shape=3)
        pm.Normal("x", mu=m, sigma=tau, shape=(2, 3))  # loc (3,) broadcast to (2, 3)
        g = pm.Gamma("g", 2.0, 1.0 / tau)
        pm.Normal("y", mu=g, sigma=1.0)
    replaced = {rv.name for rv in _batched_free_rvs(model.free_RVs, 10)}
    assert replaced == {"tau", "m", "x"}
    out = forward_draws(model, ["tau", "m", "x", "g", "y"], 20_000, seed=5)
    z = (out["x"] - out["m"][:, None, :]) / out["tau"][:, None, None]
    for i, j in np.ndindex(2, 3):
        assert stats.kstest(z[:, i, j], "norm").pvalue > 1e-3
        assert abs(np.corrcoef(z[:, i, j], out["m"][:, j])[0, 1]) < 0.05
        assert abs(np.corrcoef(np.abs(z[:, i, j]), out["tau"])[0, 1]) < 0.05
    assert stats.kstest(out["y"] - out["g"], "norm").pvalue > 1e-3
    assert stats.kstest(out["g"] / out["tau"], stats.gamma(2.0).cdf).pvalue > 1e-3
