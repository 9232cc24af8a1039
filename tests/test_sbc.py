"""Simulation-based calibration: the rank, coverage and uniformity statistics (fast), a proof
that the check can fail (an overconfident posterior of a conjugate normal model), and a reduced
SBC of the drugs and MSE models (slow)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pymc as pm
import pytest

from iff.sbc import (
    QuantityResult,
    bonferroni,
    chi2_uniformity,
    coverage_summary,
    eti_covers,
    rank_histogram,
    rank_of_truth,
    run_sbc,
    split_rhat,
    thin_indices,
    verdict,
)

L = 99  # posterior draws per rank


def _conjugate_normal(n_datasets: int, sd_scale: float, seed: int = 0):
    """theta ~ N(0, 1), y | theta ~ N(theta, 1): the posterior is N(y / 2, 1 / 2). Returns the
    ranks among L draws and the coverage of 90 % intervals from 1000 draws of a posterior whose
    sd is ``sd_scale`` times the exact one (1: calibrated; < 1: overconfident)."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(0.0, 1.0, n_datasets)
    y = rng.normal(theta, 1.0)
    sd = math.sqrt(0.5) * sd_scale
    draws = rng.normal((y / 2)[:, None], sd, (n_datasets, 1000))
    ranks = rank_of_truth(draws[:, thin_indices(1000, L)], theta, rng)
    return ranks, eti_covers(draws, theta, 0.9), theta


# -- unit tests -------------------------------------------------------------------------------

def test_rank_counts_draws_below_and_splits_ties_at_random():
    rng = np.random.default_rng(1)
    draws = np.array([1.0, 2.0, 3.0, 4.0])
    assert rank_of_truth(draws, 2.5, rng) == 2
    assert rank_of_truth(draws, 0.0, rng) == 0
    assert rank_of_truth(draws, 9.0, rng) == 4
    # a discrete quantity: all draws tie with the truth -> rank uniform on 0..L
    tied = np.zeros(L)
    ranks = np.array([rank_of_truth(tied, 0.0, rng) for _ in range(5000)])
    assert ranks.min() == 0 and ranks.max() == L
    assert chi2_uniformity(ranks, L)[1] > 0.001
    # vectorised over quantities
    many = rank_of_truth(np.tile(draws, (3, 1)), np.array([0.0, 2.5, 9.0]), rng)
    assert many.tolist() == [0, 2, 4]


def test_eti_coverage():
    draws = np.linspace(0, 1, 1001)
    assert eti_covers(draws, 0.5, 0.9)
    assert not eti_covers(draws, 0.02, 0.9)  # below the 5 % quantile
    assert not eti_covers(draws, 0.97, 0.9)
    assert eti_covers(draws, 0.97, 0.95)


def test_histogram_bins_and_their_checks():
    assert rank_histogram(np.arange(100), 99, 10).tolist() == [10] * 10
    assert rank_histogram(np.array([0, 9, 10, 99]), 99, 10).tolist() == [2, 1, 0, 0, 0, 0, 0,
                                                                          0, 0, 1]
    with pytest.raises(ValueError, match="equally"):
        rank_histogram(np.arange(10), 99, 7)
    with pytest.raises(ValueError, match=r"0\.\.99"):
        rank_histogram(np.array([100]), 99, 10)


def test_chi_square_of_uniform_and_of_piled_up_ranks():
    stat, p, counts = chi2_uniformity(np.repeat(np.arange(100), 3), 99, 10)
    assert stat == 0 and p == pytest.approx(1.0) and counts.sum() == 300
    stat, p, _ = chi2_uniformity(np.r_[np.zeros(50, int), np.full(50, 99)], 99, 10)
    assert stat == pytest.approx(400.0) and p < 1e-12


def test_coverage_summary_and_binomial_se():
    s = coverage_summary(np.r_[np.ones(90, bool), np.zeros(10, bool)])
    assert s["coverage"] == 0.9 and s["se"] == pytest.approx(0.03) and s["in_band"]
    assert not coverage_summary(np.r_[np.ones(80, bool), np.zeros(20, bool)])["in_band"]
    assert coverage_summary(np.array([], bool))["coverage"] is None


def test_bonferroni_adjusts_the_smallest_p_value():
    b = bonferroni([0.5, 0.004, 0.9, float("nan")], alpha=0.05)
    assert b["m"] == 3 and b["adjusted_min_p"] == pytest.approx(0.012) and not b["uniform"]
    assert not bonferroni([0.02, 0.5])["uniform"]  # 2 x 0.02 = 0.04 < 0.05
    assert bonferroni([0.03, 0.5])["uniform"]  # 2 x 0.03 = 0.06


def test_split_rhat():
    rng = np.random.default_rng(2)
    assert split_rhat(rng.normal(size=(2, 500))) == pytest.approx(1.0, abs=0.02)
    stuck = np.stack([rng.normal(0, 1, 500), rng.normal(3, 1, 500)])
    assert split_rhat(stuck) > 1.5
    assert math.isnan(split_rhat(np.ones((2, 100))))


def test_calibrated_exact_posterior_passes():
    ranks, covered, truth = _conjugate_normal(1000, sd_scale=1.0)
    _, p, _ = chi2_uniformity(ranks, L)
    assert p > 0.001
    assert 0.87 <= covered.mean() <= 0.93
    v = verdict({"theta": QuantityResult(ranks.astype(float), covered, truth)}, ["theta"],
                n_ranks=L)
    assert v["verdict"] == "PASS", v["reasons"]


def test_overconfident_posterior_is_detected():
    """The check CAN fail: a posterior half as wide as the exact one undercovers and piles the
    ranks up at both ends (a U-shaped histogram)."""
    ranks, covered, truth = _conjugate_normal(1000, sd_scale=0.5)
    _, p, counts = chi2_uniformity(ranks, L)
    assert p < 1e-6
    assert counts[0] > 2 * counts[4] and counts[-1] > 2 * counts[5]  # U shape
    assert covered.mean() < 0.7
    v = verdict({"theta": QuantityResult(ranks.astype(float), covered, truth)}, ["theta"],
                n_ranks=L)
    assert v["verdict"] == "FAIL"
    assert any("coverage" in r for r in v["reasons"])
    assert any("not uniform" in r for r in v["reasons"])


def test_biased_posterior_is_detected_by_the_ranks():
    """A posterior shifted by half its sd still covers often but its ranks lean to one side."""
    rng = np.random.default_rng(3)
    theta = rng.normal(0.0, 1.0, 1000)
    y = rng.normal(theta, 1.0)
    draws = rng.normal((y / 2 + 0.5 * math.sqrt(0.5))[:, None], math.sqrt(0.5), (1000, L))
    _, p, counts = chi2_uniformity(rank_of_truth(draws, theta, rng), L)
    assert p < 1e-6 and counts[0] > counts[-1]


def test_failed_fits_are_left_out_by_the_mask_not_silently():
    ranks = np.r_[np.arange(0, 100, 1.0), [np.nan]]
    covered = np.r_[np.ones(90, bool), np.zeros(11, bool)]
    q = {"x": QuantityResult(ranks, covered, np.zeros(101))}
    v = verdict(q, ["x"], n_ranks=L)
    assert v["per_quantity"]["x"]["n"] == 100  # the NaN rank (a fit that raised) is left out
    mask = np.r_[np.zeros(50, bool), np.ones(51, bool)]
    assert verdict(q, ["x"], n_ranks=L, mask=mask)["per_quantity"]["x"]["n"] == 50


def test_constant_observed_values_are_refused():
    from iff.sbc import _observed_data

    with pm.Model() as m:
        mu = pm.Normal("mu")
        pm.Normal("y", mu, 1.0, observed=np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match=r"pm\.Data"):
        _observed_data(m)


def test_measurement_and_mse_observations_are_data():
    """Observed values are pm.Data, so a compiled model can be refitted to simulated data."""
    from iff.models.measurement import observe
    from iff.models.mse import ListTable, add_mse
    from iff.priors import Support
    from iff.sbc import _observed_data

    with pm.Model(coords={"line": [2, 3]}) as m:
        latent = pm.LogNormal("x", 0.0, 1.0)
        observe("x_obs", latent * np.ones(2), np.array([1.0, 2.0]), np.array([0.1, 0.1]),
                Support.POSITIVE, "line")
        patterns = np.array([[1, 0], [0, 1], [1, 1]])
        add_mse("mse", ListTable(("A", "B"), patterns, np.array([5, 7, 2])))
    names = {k: v.name for k, v in _observed_data(m).items()}
    assert names == {"x_obs": "x_obs_values", "mse_counts": "mse_counts_values"}
    pm.set_data({"x_obs_values": np.array([3.0, 4.0])}, model=m)
    assert m["x_obs_values"].get_value().tolist() == [3.0, 4.0]


# -- reduced SBC (slow) -----------------------------------------------------------------------

def _bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_sbc.py"
    spec = importlib.util.spec_from_file_location("bench_sbc", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("model", ["drugs", "mse"])
def test_reduced_sbc(model, tmp_path):
    """25 datasets, 2 chains x 300 draws: loose but failable bounds (headline coverage in
    [0.7, 1.0], chi-square p of each headline quantity above 0.001)."""
    bench = _bench()
    if model == "mse":
        builder, derived, headline = bench.mse_builder(), bench.mse_dark, ["dark_figure"]
    else:
        builder, derived = bench.market_builder(model, tmp_path), bench.market_flows
        headline = ["inward", "outward"]
    res = run_sbc(builder, 25, derived=derived, headline=headline, draws=300, tune=300,
                  chains=2, seed=11, target_accept=bench.TARGET_ACCEPT.get(model, 0.9))
    summary = res.summary()
    # fits whose sampler raised are counted, not dropped: at most a fifth may (MSE tables drawn
    # from the wide prior can hold counts of 1e5 and more, where nutpie's start can fail)
    assert summary["n_datasets"] >= 20, res.errors
    for name in headline:
        q = summary["per_quantity"][name]
        assert 0.7 <= q["coverage"] <= 1.0, (name, q)
        assert q["chi2_p"] > 0.001, (name, q)
    assert res.to_dict()["all_fits"]["verdict"] in ("PASS", "FAIL")  # serialisable
