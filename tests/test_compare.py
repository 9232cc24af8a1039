"""``iff compare``: differences of totals on paired draws, P(A > B), refusals of bad input.

Two forward Monte Carlo runs of one config: the base and a scenario whose throughput prior is the
base's scaled by 2 (same seed, same log-width), so every draw of the scenario's flows is exactly
twice the base's: A - B equals B draw by draw and P(A > B) is 1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml

from iff.compare import COLUMNS, compare, compare_results
from iff.errors import IffInputError
from iff.flows import FLOW_UNITS
from iff.results import load_tree

IFF = Path(sys.executable).parent / "iff"
CONFIG = {
    "name": "cmp",
    "countries": ["COL", "PER"],
    "years": [2016, 2017],
    "markets": {"drugs": {"drugs": {"cocaine": {"role": "producer"}},
                          "priors": {"throughput": {"between": [80_000, 120_000]}}}},
    "sampler": {"draws": 300, "chains": 2, "seed": 11, "progressbar": False},
    "scenarios": {
        "double": {"markets": {"drugs": {"priors": {"throughput": {"between": [160_000,
                                                                               240_000]}}}}},
        "fewer_draws": {"sampler": {"draws": 200}},
        "col_only": {"countries": ["COL"]},
    },
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    from iff import run

    tmp = tmp_path_factory.mktemp("compare")
    path = tmp / "cmp.yaml"
    path.write_text(yaml.safe_dump(CONFIG, sort_keys=False), encoding="utf-8")
    out = {}
    for scenario in (None, "double", "fewer_draws", "col_only"):
        name = scenario or "base"
        out[name] = run(path, scenario=scenario, out=tmp / name).out_dir
    return out


def paired_total(folder: Path, country: str, year: int, direction: str | None) -> np.ndarray:
    """Total of one country-year on every draw (chain-major), computed here independently."""
    flows = load_tree(folder)["posterior"]["flows"].sel(country=country, year=year)
    if direction:
        flows = flows.sel(direction=direction)
    summed = flows.sum([d for d in flows.dims if d not in ("chain", "draw")])
    return summed.values.reshape(-1)


def test_difference_is_computed_on_paired_draws(runs):
    comp = compare_results(runs["double"], runs["base"])
    assert list(comp.table.columns) == list(COLUMNS)
    for country, year, direction in (("COL", 2016, None), ("PER", 2017, "inward"),
                                     ("COL", 2017, "outward")):
        diff = (paired_total(runs["double"], country, year, direction)
                - paired_total(runs["base"], country, year, direction))
        row = comp.table[(comp.table["country"] == country) & (comp.table["year"] == year)
                         & (comp.table["market"] == "all")
                         & (comp.table["direction"] == (direction or "all"))]
        assert len(row) == 1
        np.testing.assert_allclose(row["median"].iloc[0], np.median(diff), rtol=1e-12)
        np.testing.assert_allclose(row["mean"].iloc[0], diff.mean(), rtol=1e-12)
        lo, hi = np.quantile(diff, [0.05, 0.95])
        np.testing.assert_allclose(row[["lower", "upper"]].iloc[0], [lo, hi], rtol=1e-12)
        assert row["p_a_gt_b"].iloc[0] == pytest.approx((diff > 0).mean())
    assert comp.draws == 600 and comp.notes == []
    assert set(comp.table["unit"]) == {FLOW_UNITS}
    assert set(comp.table["interval"]) == {"eti"} and set(comp.table["prob"]) == {0.9}


def test_scaled_prior_gives_a_greater_on_every_draw(runs):
    """Throughput x 2 with the same seed: A = 2 B on every draw, so A - B = B and P(A>B) = 1."""
    up = compare_results(runs["double"], runs["base"])
    down = compare_results(runs["base"], runs["double"])
    assert (up.table["p_a_gt_b"] == 1.0).all()
    assert (down.table["p_a_gt_b"] == 0.0).all()
    assert up.table["p_a_gt_b"].between(0, 1).all()
    total = paired_total(runs["base"], "COL", 2016, None)
    row = up.table[(up.table["country"] == "COL") & (up.table["year"] == 2016)
                   & (up.table["market"] == "all") & (up.table["direction"] == "all")]
    np.testing.assert_allclose(row["median"].iloc[0], np.median(total), rtol=1e-9)
    np.testing.assert_allclose(down.table["median"], -up.table["median"], rtol=1e-9)


def test_rows_cover_totals_directions_markets_and_countries(runs):
    table = compare_results(runs["double"], runs["base"]).table
    assert set(table["country"]) == {"all", "COL", "PER"}
    assert set(table["market"]) == {"all", "drugs"}
    assert set(table["direction"]) == {"all", "inward", "outward"}
    assert len(table) == 3 * 2 * 2 * 3  # countries x years x markets x directions
    sel = table[(table["market"] == "all") & (table["year"] == 2016)]
    by = sel.set_index(["country", "direction"])["mean"]
    # means add up (sums on each draw): all countries = COL + PER; total = inward + outward
    assert by[("all", "all")] == pytest.approx(by[("COL", "all")] + by[("PER", "all")])
    assert by[("COL", "all")] == pytest.approx(by[("COL", "inward")] + by[("COL", "outward")])


def test_different_draw_counts_are_subsampled_and_said(runs):
    comp = compare_results(runs["double"], runs["fewer_draws"], "hdi", 0.8)
    assert comp.draws == 400
    assert comp.notes and "subsampled to 400" in comp.notes[0] and "seed 0" in comp.notes[0]
    assert set(comp.table["interval"]) == {"hdi"} and set(comp.table["prob"]) == {0.8}
    again = compare_results(runs["double"], runs["fewer_draws"], "hdi", 0.8)
    assert again.table.equals(comp.table)  # fixed seed


def test_different_countries_are_refused(runs):
    with pytest.raises(IffInputError, match=r"different country values: A .* has COL, PER; "
                                            r"B .* has COL"):
        compare_results(runs["base"], runs["col_only"])


def test_different_units_are_refused(runs):
    a, b = load_tree(runs["base"]), load_tree(runs["double"])
    b["posterior"]["flows"].attrs["units"] = "EUR"
    with pytest.raises(IffInputError, match="different units"):
        compare(a, b)


@pytest.mark.slow
def test_cli_json_and_bad_input_exit_2(runs, tmp_path):
    a, b = str(runs["double"]), str(runs["base"])
    cases = [
        ["compare", a, b, "--json", "--prob", "0.5"],
        ["compare", a, str(runs["col_only"])],
        ["compare", a, str(tmp_path / "missing")],
        ["compare", a, b, "--prob", "1.5"],
    ]
    with ThreadPoolExecutor(len(cases)) as pool:
        procs = list(pool.map(lambda args: subprocess.run(
            [str(IFF), *args], capture_output=True, text=True, timeout=300), cases))
    ok, countries, missing, prob = procs
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert data["unit"] == FLOW_UNITS and data["difference"] == "A - B"
    assert data["interval"] == "eti" and data["prob"] == 0.5 and data["paired_draws"] == 600
    assert data["a"]["scenario"] == "double" and data["b"]["scenario"] == ""
    assert all(r["p_a_gt_b"] == 1.0 for r in data["rows"])
    for proc, fragment in ((countries, "different country values"),
                           (missing, "results not found"), (prob, "must be between 0 and 1")):
        assert proc.returncode == 2, proc.stderr
        assert fragment in proc.stderr and "Traceback" not in proc.stderr


def test_same_results_differ_by_zero(runs):
    comp = compare_results(runs["base"], runs["base"])
    assert (comp.table[["mean", "median", "lower", "upper"]] == 0).all().all()
    assert (comp.table["p_a_gt_b"] == 0).all()

