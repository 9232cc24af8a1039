"""The summary layer: aggregation on draws, intervals, columns."""

from __future__ import annotations

import itertools

import arviz as az
import numpy as np
import pandas as pd
import pytest

from iff.summary import COLUMNS, interval, summarize


def _draws(tree, **sel):
    flows = tree["posterior"]["flows"]
    return flows.stack(sample=("chain", "draw")).transpose("sample", ...)


def test_columns_and_all_levels(smoke_results):
    table = smoke_results.summary
    assert list(table.columns) == list(COLUMNS)
    total = table[(table.market == "all") & (table.country == "all") & (table.direction == "all")
                  & (table.phase == "all")]
    assert sorted(total.year) == [2016, 2017]
    assert (table.unit.str.contains("USD")).all()
    assert set(table.interval) == {"eti"} and set(table.prob) == {0.9}
    assert (table["lower"] <= table["median"]).all() and (table["median"] <= table["upper"]).all()
    # 2 markets-levels x 2 country-levels x 3 directions x 3 phases x 2 years
    assert len(table) == 2 * 2 * 3 * 3 * 2


def test_totals_equal_sum_of_parts_on_every_draw(smoke_results):
    """Every aggregate row's mean/quantiles come from per-draw sums of its parts."""
    tree = smoke_results.tree
    flows = _draws(tree)
    table = summarize(tree, "eti", 0.9)
    for year, direction, phase in itertools.product([2016, 2017], ["inward", "outward", "all"],
                                                    ["generation", "management", "all"]):
        sel = flows.sel(year=year)
        if direction != "all":
            sel = sel.sel(direction=[direction])
        if phase != "all":
            sel = sel.sel(phase=[phase])
        per_draw = sel.sum(dim=["market", "country", "direction", "phase"]).values
        row = table[(table.market == "all") & (table.country == "all") & (table.year == year)
                    & (table.direction == direction) & (table.phase == phase)].iloc[0]
        assert row["mean"] == pytest.approx(per_draw.mean(), rel=1e-12)
        assert row["median"] == pytest.approx(np.median(per_draw), rel=1e-12)
        lo, hi = np.quantile(per_draw, [0.05, 0.95])
        assert (row["lower"], row["upper"]) == pytest.approx((lo, hi), rel=1e-12)
    # the indicator is inward + outward, draw by draw
    both = flows.sel(year=2016).sum(dim=["market", "country", "phase"])
    total = both.sum("direction").values
    np.testing.assert_allclose(total, both.sel(direction="inward") + both.sel(direction="outward"))


def test_median_of_total_is_not_sum_of_medians(smoke_results):
    """Why aggregation happens on draws: medians do not add up."""
    t = smoke_results.summary
    sel = t[(t.market == "all") & (t.country == "all") & (t.year == 2016) & (t.phase == "all")]
    med = sel.set_index("direction")["median"]
    assert med["all"] != pytest.approx(med["inward"] + med["outward"], rel=1e-9)


@pytest.mark.parametrize("prob", [0.5, 0.9, 0.95])
def test_hdi_is_the_narrowest_interval_holding_prob(prob):
    rng = np.random.default_rng(0)
    x = rng.lognormal(0.0, 1.0, size=(2000, 3))
    lo, hi = interval(x, "hdi", prob)
    for j in range(3):
        s = np.sort(x[:, j])
        k = int(np.ceil(prob * s.size))
        brute = min(s[i + k - 1] - s[i] for i in range(s.size - k + 1))
        assert hi[j] - lo[j] == pytest.approx(brute, rel=1e-12)
        assert np.mean((x[:, j] >= lo[j]) & (x[:, j] <= hi[j])) >= prob
        # ArviZ counts the draws slightly differently; widths agree closely.
        ref = np.asarray(az.hdi(x[:, j], prob=prob)).ravel()
        assert hi[j] - lo[j] == pytest.approx(ref[1] - ref[0], rel=0.02)


def test_hdi_is_narrower_than_eti_for_skewed_draws():
    x = np.random.default_rng(1).lognormal(0.0, 1.0, size=(20000, 1))
    lo_h, hi_h = interval(x, "hdi", 0.9)
    lo_e, hi_e = interval(x, "eti", 0.9)
    assert (hi_h - lo_h)[0] < (hi_e - lo_e)[0]


def test_summary_csv_written_matches(smoke_results):
    written = pd.read_csv(smoke_results.out_dir / "summary.csv")
    assert list(written.columns) == list(COLUMNS)
    assert len(written) == len(smoke_results.summary)
    np.testing.assert_allclose(written["median"], smoke_results.summary["median"], rtol=1e-5)
