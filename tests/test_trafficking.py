"""Trafficking in persons: flow identities, list-table inputs and their errors, recovery of known
victims and flows from simulated data."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from iff import load_config, run
from iff.engine import prepare
from iff.errors import IffInputError
from iff.models.list_table import all_patterns
from tests.conftest import write_csv

FORWARD = {
    "name": "tip",
    "countries": ["GBR", "NLD"],
    "years": [2013, 2014],
    "markets": {"trafficking_in_persons": {}},
    "sampler": {"method": "forward", "draws": 400, "chains": 1, "seed": 3},
}


def write_config(tmp_path, conf: dict, name: str = "tip.yaml"):
    conf = {**conf, "output": {"dir": str(tmp_path / "results")}}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(conf, sort_keys=False))
    return path


def write_table(path, counts: dict[str, int], lists=("A", "B", "C")):
    lines = [",".join([*lists, "count"])]
    lines += [",".join([*pattern, str(n)]) for pattern, n in counts.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_flows_follow_the_residency_identities_on_every_draw(tmp_path):
    out = run(write_config(tmp_path, FORWARD), write=False)
    post = out.tree["posterior"]
    p = post["trafficking_in_persons_proceeds"]
    n = post["trafficking_in_persons_share_nonresident_exploiters"]
    a = post["trafficking_in_persons_proceeds_abroad_ratio"]
    m = post["trafficking_in_persons_share_income_abroad"]
    v = post["trafficking_in_persons_share_nonresident_invested"]
    f = post["flows"].sel(market="trafficking_in_persons")
    expect = {("inward", "generation"): a * p, ("outward", "generation"): n * p,
              ("outward", "management"): m * (1 - n + a) * p,
              ("inward", "management"): v * n * p}
    for (d, ph), value in expect.items():
        np.testing.assert_allclose(f.sel(direction=d, phase=ph), value.transpose(*f.sel(
            direction=d, phase=ph).dims), rtol=1e-9)
    # proceeds = victims x sum over forms of share x proceeds per victim; shares sum to 1
    shares = post["trafficking_in_persons_form_share"]
    np.testing.assert_allclose(shares.sum("form"), 1.0, rtol=1e-12)
    by_form = post["trafficking_in_persons_proceeds_by_form"]
    np.testing.assert_allclose(by_form.sum("form"), p, rtol=1e-12)
    # the default prior of proceeds per victim of sexual exploitation centres on ILO 2024's
    # USD 27,252 (methodology.md C6)
    sexual = post["trafficking_in_persons_proceeds_per_victim"].sel(form="sexual_exploitation")
    assert float(sexual.median()) == pytest.approx(27_252, rel=0.15)


def test_list_table_makes_the_run_use_nuts_and_is_hashed(tmp_path):
    table = write_table(tmp_path / "lists.csv", {"100": 50, "010": 40, "001": 30, "110": 10,
                                                "101": 8, "011": 6, "111": 2})
    conf = {**FORWARD, "countries": ["GBR"], "years": [2013],
            "sampler": {"draws": 50, "tune": 50, "chains": 1, "seed": 1},
            "markets": {"trafficking_in_persons": {"list_tables": {"GBR": {2013: "lists.csv"}}}}}
    loaded = load_config(write_config(tmp_path, conf))
    assert loaded.input_files["markets.trafficking_in_persons.list_tables.GBR.2013"] == table
    plan = prepare(loaded)
    assert plan.method == "nuts"


def test_missing_list_table_names_the_config_line(tmp_path):
    conf = {**FORWARD, "markets": {"trafficking_in_persons": {
        "list_tables": {"GBR": {2013: "nowhere.csv"}}}}}
    with pytest.raises(IffInputError) as err:
        load_config(write_config(tmp_path, conf))
    text = err.value.render()
    assert "markets.trafficking_in_persons.list_tables.GBR.2013" in text
    assert "file not found" in text and "tip.yaml:" in text


def test_bad_list_table_and_wrong_year_are_reported_before_sampling(tmp_path):
    write_table(tmp_path / "bad.csv", {"100": 5, "012": 3})
    write_table(tmp_path / "ok.csv", {"100": 5, "010": 3, "001": 2, "110": 1})
    conf = {**FORWARD, "markets": {"trafficking_in_persons": {"list_tables": {
        "GBR": {2013: "bad.csv"}, "NLD": {2013: "ok.csv"}}}}}
    with pytest.raises(IffInputError) as err:
        prepare(load_config(write_config(tmp_path, conf)))
    assert "bad.csv:3" in err.value.render() and "'2' is not 0 or 1" in err.value.render()
    conf["markets"]["trafficking_in_persons"]["list_tables"] = {"NLD": {2019: "ok.csv"}}
    with pytest.raises(IffInputError) as err:
        prepare(load_config(write_config(tmp_path, conf, "tip2.yaml")))
    assert "year 2019" in err.value.render()
    assert "list_tables.NLD.2019" in err.value.render()


def test_never_overlapping_lists_warn_in_provenance(tmp_path):
    write_table(tmp_path / "art.csv", {"110": 6, "100": 40, "010": 30, "001": 20})
    conf = {**FORWARD, "countries": ["GBR"], "years": [2013],
            "sampler": {"draws": 20, "tune": 20, "chains": 1, "seed": 1},
            "markets": {"trafficking_in_persons": {"list_tables": {"GBR": {2013: "art.csv"}}}}}
    plan = prepare(load_config(write_config(tmp_path, conf)))
    assert any("never overlap (A-C, B-C)" in w for w in plan.warnings)
    assert any("no finite estimate" in w for w in plan.warnings)


def simulated_lists(rng: np.random.Generator, n: int) -> dict[str, int]:
    """Four independent lists with capture probabilities 0.3, 0.25, 0.2, 0.35."""
    on = rng.random((n, 4)) < np.array([0.3, 0.25, 0.2, 0.35])
    codes = on.astype(int) @ np.array([8, 4, 2, 1])
    counts = np.bincount(codes, minlength=16)[1:]
    return {"".join(map(str, p)): int(c) for p, c in zip(all_patterns(4), counts, strict=True)
            if c}


@pytest.mark.slow
def test_recovers_victims_and_flows_from_simulated_data(tmp_path):
    rng = np.random.default_rng(7)
    n_true = 4000
    write_table(tmp_path / "lists.csv", simulated_lists(rng, n_true), lists=("A", "B", "C",
                                                                              "D"))
    truth = {"sexual_exploitation": 30_000.0, "forced_labour": 4_000.0, "other": 6_000.0}
    share_sexual, share_other = 0.3, 0.1
    rows = [{"country": "GBR", "year": 2013, "market": "trafficking_in_persons",
             "quantity": "proceeds_per_victim", "item": form, "value": value, "unit": "USD",
             "lower": value / 1.1, "upper": value * 1.1, "source": "simulated"}
            for form, value in truth.items()]
    rows.append({"country": "GBR", "year": 2013, "market": "trafficking_in_persons",
                 "quantity": "form_share", "item": "sexual_exploitation", "value": share_sexual,
                 "unit": "fraction", "se": 0.01, "source": "simulated"})
    rows.append({"country": "GBR", "year": 2013, "market": "trafficking_in_persons",
                 "quantity": "form_share", "item": "other", "value": 0.7 * share_other,
                 "unit": "fraction", "se": 0.005, "source": "simulated"})
    write_csv(tmp_path / "obs.csv", rows, header=["country", "year", "market", "quantity",
                                                  "item", "value", "unit", "se", "lower",
                                                  "upper", "source"])
    fixed = {"share_nonresident_exploiters": 0.3, "proceeds_abroad_ratio": 0.1,
             "share_income_abroad": 0.2, "share_nonresident_invested": 0.05}
    conf = {"name": "tip-recovery", "countries": ["GBR"], "years": [2013],
            "observations": {"file": "obs.csv", "interval_prob": 0.9},
            "markets": {"trafficking_in_persons": {
                "list_tables": {"GBR": {2013: "lists.csv"}},
                "priors": {k: {"fixed": v} for k, v in fixed.items()}}},
            # Independent lists put the interaction scale near 0, where a few divergences
            # appear at target_accept 0.95; smaller steps remove them.
            "sampler": {"draws": 1000, "tune": 1000, "chains": 4, "cores": 2, "seed": 5,
                        "target_accept": 0.99, "progressbar": False}}
    out = run(write_config(tmp_path, conf), write=False)
    assert out.convergence.passed, out.convergence.failures
    post = out.tree["posterior"]
    victims = post["trafficking_in_persons_victims"].values.ravel()
    lo, hi = np.quantile(victims, [0.05, 0.95])
    assert lo < n_true < hi
    proceeds = n_true * (share_sexual * truth["sexual_exploitation"]
                         + 0.7 * 0.9 * truth["forced_labour"] + 0.7 * 0.1 * truth["other"])
    flows = post["flows"].sel(market="trafficking_in_persons", country="GBR", year=2013)
    expect = {("outward", "generation"): 0.3 * proceeds, ("inward", "generation"): 0.1 * proceeds,
              ("outward", "management"): 0.2 * (1 - 0.3 + 0.1) * proceeds,
              ("inward", "management"): 0.05 * 0.3 * proceeds}
    for (d, ph), true in expect.items():
        draws = flows.sel(direction=d, phase=ph).values.ravel()
        lo, hi = np.quantile(draws, [0.05, 0.95])
        assert lo < true < hi, (d, ph, lo, true, hi)
        assert np.median(draws) == pytest.approx(true, rel=0.2)
