"""nutpie on PyTensor's cached log density (iff/nutpie_cached.py): exact posterior recovered,
same seed same draws, and the engine path used by ``nuts_sampler: nutpie``."""

from __future__ import annotations

import numpy as np
import pymc as pm

from iff import load_config
from iff.engine import build_model, prepare, sample
from iff.nutpie_cached import _compiled_functions, _mode, sample_nutpie_cached

SETTINGS = dict(draws=500, tune=500, chains=2, seed=11, target_accept=0.9,
                low_rank=True, progressbar=False)


def _conjugate_model(y: np.ndarray) -> pm.Model:
    """Normal mean with known sd and a normal prior, plus a positive scale with a known prior."""
    with pm.Model(coords={"group": ["a", "b"]}) as model:
        mu = pm.Normal("mu", 0.0, 10.0, dims="group")
        pm.Normal("y", mu[:, None], 1.0, observed=y)
        pm.LogNormal("scale", 0.5, 0.3)  # unconditioned: its posterior is its prior
    return model


def test_recovers_the_exact_conjugate_posterior():
    rng = np.random.default_rng(5)
    y = rng.normal([[3.0], [-1.0]], 1.0, size=(2, 40))
    idata = sample_nutpie_cached(_conjugate_model(y), ["mu", "scale"], **SETTINGS)
    post = idata["posterior"]
    # Exact posterior of each mean: precision 1/100 + 40, mean sum(y) / precision.
    precision = 1 / 100 + y.shape[1]
    exact_mean, exact_sd = y.sum(axis=1) / precision, precision ** -0.5
    draws = post["mu"].values.reshape(-1, 2)
    assert post["mu"].dims == ("chain", "draw", "group")
    np.testing.assert_allclose(draws.mean(axis=0), exact_mean, atol=4 * exact_sd / np.sqrt(300))
    np.testing.assert_allclose(draws.std(axis=0), exact_sd, rtol=0.15)
    log_scale = np.log(post["scale"].values.ravel())
    assert abs(log_scale.mean() - 0.5) < 0.05 and abs(log_scale.std() - 0.3) < 0.05
    assert int(idata["sample_stats"]["diverging"].sum()) == 0
    assert "observed_data" in idata.children and "y" in idata["observed_data"]
    assert set(post.data_vars) == {"mu", "scale"}  # not the unconstrained log(scale)


def test_same_seed_same_draws():
    y = np.random.default_rng(1).normal(size=(2, 10))
    first = sample_nutpie_cached(_conjugate_model(y), ["mu"], **SETTINGS)
    again = sample_nutpie_cached(_conjugate_model(y), ["mu"], **SETTINGS)
    other = sample_nutpie_cached(_conjugate_model(y), ["mu"], **{**SETTINGS, "seed": 12})
    np.testing.assert_array_equal(first["posterior"]["mu"].values,
                                  again["posterior"]["mu"].values)
    assert not np.array_equal(first["posterior"]["mu"].values, other["posterior"]["mu"].values)


def test_engine_runs_the_demo_with_nutpie_on_the_cached_density():
    loaded = load_config("configs/demo.yaml")  # nutpie, cached backend, 4 x 500 draws
    assert loaded.config.sampler.nuts_sampler == "nutpie"
    assert loaded.config.sampler.nutpie_backend == "cached"
    plan = prepare(loaded)
    model, _ = build_model(plan)
    tree, convergence = sample(plan, model, progressbar=False)
    assert convergence.passed, convergence
    post = tree["posterior"]
    assert {"flows", "drugs_seizures_z", "drugs_throughput", "drugs_exports"} <= set(post.data_vars)
    assert post.sizes["chain"] == 4 and post.sizes["draw"] == 500
    assert "nutpie" in tree["sample_stats"].attrs.get("inference_library", "")
    # deterministics are recomputed from the draws: the balance holds on every draw
    d = post
    np.testing.assert_allclose(
        (d["drugs_production"] + d["drugs_imports"]).values,
        (d["drugs_consumption"] + d["drugs_seizures"] + d["drugs_exports"]).values, rtol=1e-10)


def test_same_draws_as_nutpie_compiling_its_own_function():
    """Same sampler, same seed, same log density: only who compiled it differs."""
    import nutpie

    y = np.random.default_rng(2).normal([[3.0], [-1.0]], 1.0, size=(2, 40))
    model = _conjugate_model(y)
    own = nutpie.sample(nutpie.compile_pymc_model(model, var_names=["mu", "scale"]),
                        draws=200, tune=200, chains=2, seed=11, save_warmup=False,
                        progress_bar=False, adaptation="low_rank", target_accept=0.9)
    cached = sample_nutpie_cached(model, ["mu", "scale"], **{**SETTINGS, "draws": 200,
                                                             "tune": 200},
                                  init="jittered_support_point")  # nutpie's own start
    for name in ("mu", "scale"):
        np.testing.assert_allclose(cached["posterior"][name].values,
                                   own["posterior"][name].values, rtol=1e-9)


def test_chains_start_near_the_mode_of_the_unconstrained_density():
    """The default start: the exact mode of the log density plus U(-0.3, 0.3) jitter."""
    y = np.random.default_rng(4).normal([[3.0], [-1.0]], 1.0, size=(2, 40))
    model = _conjugate_model(y)
    _, logp_dlogp, *_ = _compiled_functions(model, ["mu", "scale"])
    shared = [np.asarray(v.get_value()) for v in logp_dlogp.get_shared()]
    mode = _mode(lambda x: logp_dlogp.vm.jit_fn(x, *shared), np.zeros(3))
    # mu: posterior mean of a normal with known sd; log(scale): the LogNormal(0.5, 0.3) density
    # of log(scale) with the Jacobian is Normal(0.5, 0.3), mode 0.5
    precision = 1 / 100 + y.shape[1]
    np.testing.assert_allclose(mode, [*(y.sum(axis=1) / precision), 0.5], atol=1e-5)
    # and a start that fails (non-finite log density everywhere) falls back to the start given
    assert np.array_equal(_mode(lambda x: (np.nan, np.zeros(3)), np.ones(3)), np.ones(3))
