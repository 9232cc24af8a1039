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
