"""Published tables: SDG values equal the summary layer's, units and caveats, writers, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from iff.publish import SDG_COLUMNS, publication, sdg_table, write
from iff.results import load_tree
from iff.summary import summarize, summarize_typologies

IFF = str(Path(sys.executable).parent / "iff")


def iff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([IFF, *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def pub(demo_forward):
    return publication(demo_forward.tree, "eti", 0.9)


def test_sdg_values_equal_the_summary(demo_forward, pub):
    summary = summarize(demo_forward.tree, "eti", 0.9)
    sdg = pub.sdg
    assert list(sdg.columns) == list(SDG_COLUMNS)
    series = {"IFF_CRIME_TOTAL": "all", "IFF_CRIME_INWARD": "inward",
              "IFF_CRIME_OUTWARD": "outward"}
    years = [2015, 2016, 2017, 2018]
    for code, direction in series.items():
        for year in years:
            row = sdg[(sdg["SERIES"] == code) & (sdg["TIME_PERIOD"] == year)]
            assert len(row) == 1
            ref = summary[(summary.market == "all") & (summary.country == "COL")
                          & (summary.year == year) & (summary.direction == direction)
                          & (summary.phase == "all")].iloc[0]
            r = row.iloc[0]
            scale = 10.0 ** r.UNIT_MULT
            assert r.OBS_VALUE * scale == pytest.approx(ref["median"], rel=1e-12)
            assert r.LOWER_BOUND * scale == pytest.approx(ref["lower"], rel=1e-12)
            assert r.UPPER_BOUND * scale == pytest.approx(ref["upper"], rel=1e-12)
    # the only market is drugs (an illegal market): its typology series equals the drugs rows
    typ = sdg[sdg.SERIES == "IFF_CRIME_ILLEGAL_MARKET"].set_index("TIME_PERIOD")
    drugs = summary[(summary.market == "drugs") & (summary.country == "COL")
                    & (summary.direction == "all") & (summary.phase == "all")].set_index("year")
    np.testing.assert_allclose(typ.OBS_VALUE * 1e6, drugs.loc[years, "median"], rtol=1e-12)
    assert set(sdg.SERIES) == {*series, "IFF_CRIME_ILLEGAL_MARKET"}
    assert len(sdg) == 4 * len(years)


def test_units_nature_and_comment(pub):
    sdg = pub.sdg
    assert set(sdg.UNIT_MEASURE) == {"current USD"} and set(sdg.UNIT_MULT) == {6}
    assert set(sdg.NATURE) == {"M"} and set(sdg.INDICATOR) == {"16.4.1"}
    assert set(sdg.REF_AREA) == {"COL"}
    comment = sdg.COMMENT.iloc[0]
    for text in ("posterior median", "90% equal-tailed interval (ETI)", "current USD",
                 "UNIT_MULT 6", "exact forward Monte Carlo", "ILLUSTRATIVE INPUTS", "never netted"):
        assert text in comment
    assert "NOT CONVERGED" not in comment
    rep = pub.report
    assert set(rep.unit_mult) == {6} and rep.unit.str.contains("current USD").all()
    # market x direction x phase, each with its aggregate 'all', per year
    assert len(rep) == 4 * 2 * 3 * 3
    assert set(rep.typology) == {"all", "illegal_market"}


def test_report_table_equals_summary(demo_forward, pub):
    summary = summarize(demo_forward.tree, "eti", 0.9)
    s = summary[summary.country != "all"].reset_index(drop=True)
    for col in ("mean", "median", "sd", "lower", "upper"):
        np.testing.assert_allclose(pub.report[col] * 1e6, s[col], rtol=1e-12)
    assert (pub.report[["market", "direction", "phase", "year"]].values
            == s[["market", "direction", "phase", "year"]].values).all()


def test_typologies_sum_markets_draw_by_draw():
    """Synthetic flows: two markets of one typology are summed on each draw, then summarised."""
    rng = np.random.default_rng(1)
    dims = ("chain", "draw", "market", "country", "year", "direction", "phase")
    flows = xr.DataArray(
        rng.lognormal(10, 1, size=(2, 300, 3, 1, 1, 2, 2)), dims=dims,
        coords={"market": ["a", "b", "c"], "country": ["COL"], "year": [2020],
                "direction": ["inward", "outward"], "phase": ["generation", "management"]})
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset({"flows": flows})})
    tree.attrs = {"convergence_verdict": "exact", "overlap_corrections": json.dumps({"b": "x"})}
    table = summarize_typologies(tree, "hdi", 0.8, {"a": "t1", "b": "t1", "c": "t2"})
    row = table[(table.typology == "t1") & (table.country == "COL") & (table.direction == "all")
                & (table.phase == "all")].iloc[0]
    per_draw = flows.sel(market=["a", "b"]).sum(["market", "direction", "phase"]).values.ravel()
    assert row["mean"] == pytest.approx(per_draw.mean(), rel=1e-12)
    assert row["median"] == pytest.approx(np.median(per_draw), rel=1e-12)
    assert row["interval"] == "hdi" and row["prob"] == 0.8 and row["corrections"] == "b: x"
    total = table[(table.typology == "all") & (table.country == "all")]
    ref = summarize(tree, "hdi", 0.8)
    ref = ref[(ref.market == "all") & (ref.country == "all")]
    np.testing.assert_allclose(total["median"].to_numpy(), ref["median"].to_numpy())


def test_cli_writes_every_format_readably(demo_forward, pub):
    out = demo_forward.out_dir.parent / "pub_all"
    proc = iff("publish", str(demo_forward.out_dir), "--format", "csv", "--format", "xlsx",
               "--format", "json", "--format", "sdg", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "illustrative" in proc.stderr.lower()
    names = sorted(p.name for p in out.iterdir())
    assert names == ["iff_eti90.json", "iff_eti90.xlsx", "report_eti90.csv",
                     "sdg_16.4.1_eti90.csv"]
    sdg = pd.read_csv(out / "sdg_16.4.1_eti90.csv")
    for col in ("OBS_VALUE", "LOWER_BOUND", "UPPER_BOUND"):  # CSV holds exactly the numbers
        np.testing.assert_array_equal(sdg[col].to_numpy(), pub.sdg[col].to_numpy())
    assert (sdg.COMMENT == pub.sdg.COMMENT).all()
    report = pd.read_csv(out / "report_eti90.csv")
    np.testing.assert_array_equal(report["median"].to_numpy(), pub.report["median"].to_numpy())
    book = pd.read_excel(out / "iff_eti90.xlsx", sheet_name=None)
    assert list(book) == ["About", "SDG 16.4.1", "Report"]
    np.testing.assert_allclose(book["SDG 16.4.1"].OBS_VALUE, pub.sdg.OBS_VALUE, rtol=1e-15)
    about = dict(zip(book["About"].field, book["About"].value, strict=True))
    assert about["unit_measure"] == "current USD" and about["interval"] == "eti"
    doc = json.loads((out / "iff_eti90.json").read_text())
    assert doc["metadata"]["prob"] == 0.9 and doc["metadata"]["convergence"] == "exact"
    assert [r["OBS_VALUE"] for r in doc["sdg"]] == pub.sdg.OBS_VALUE.tolist()
    assert any("ILLUSTRATIVE" in a for a in doc["alerts"])


def test_other_interval_and_default_folder(demo_forward, run_iff):
    code, _, err = run_iff("publish", demo_forward.out_dir, "--prob", "0.5", "--interval",
                           "hdi")
    assert code == 0, err
    path = demo_forward.out_dir / "published" / "sdg_16.4.1_hdi50.csv"
    sdg = pd.read_csv(path)
    assert sdg.COMMENT.str.contains("50% highest-density interval").all()
    ref = summarize(load_tree(demo_forward.out_dir), "hdi", 0.5)
    r = ref[(ref.market == "all") & (ref.country == "COL") & (ref.year == 2016)
            & (ref.direction == "all") & (ref.phase == "all")].iloc[0]
    row = sdg[(sdg.SERIES == "IFF_CRIME_TOTAL") & (sdg.TIME_PERIOD == 2016)].iloc[0]
    assert row["LOWER_BOUND"] * 1e6 == pytest.approx(r["lower"], rel=1e-12)


def test_existing_files_are_not_overwritten_without_force(demo_forward, pub, tmp_path, run_iff):
    write(pub, tmp_path, ["sdg"])
    target = tmp_path / "sdg_16.4.1_eti90.csv"
    target.write_text("sentinel")
    code, _, err = run_iff("publish", demo_forward.out_dir, "--out", tmp_path)
    assert code == 2
    assert "exist" in err and "--force" in err
    assert target.read_text() == "sentinel"
    code, _, err = run_iff("publish", demo_forward.out_dir, "--out", tmp_path, "--force")
    assert code == 0, err
    assert target.read_text().startswith("INDICATOR,SERIES")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_unconverged_results_carry_the_warning_everywhere(failed_results, tmp_path, run_iff):
    code, _, err = run_iff("publish", failed_results, "--format", "csv", "--format", "json",
                           "--format", "xlsx", "--out", tmp_path)
    assert code == 3
    assert "NOT CONVERGED" in err and "--allow-unconverged" in err
    sdg = pd.read_csv(tmp_path / "sdg_16.4.1_eti90.csv")
    assert sdg.COMMENT.str.startswith("WARNING: NOT CONVERGED").all()
    assert sdg.COMMENT.str.contains("R-hat 1.080 > 1.01").all()
    assert set(pd.read_csv(tmp_path / "report_eti90.csv").convergence) == {"FAILED"}
    doc = json.loads((tmp_path / "iff_eti90.json").read_text())
    assert doc["alerts"][0].startswith("WARNING: NOT CONVERGED")
    about = pd.read_excel(tmp_path / "iff_eti90.xlsx", sheet_name="About")
    assert about.field.iloc[0] == "ALERT" and "NOT CONVERGED" in about.value.iloc[0]
    code, _, err = run_iff("publish", failed_results, "--out", tmp_path / "b",
                           "--allow-unconverged")
    assert code == 0, err
    assert "NOT CONVERGED" in err


def test_sdg_table_of_several_countries_and_typologies():
    """Two countries, three markets in two typologies: one row per series x country x year."""
    rng = np.random.default_rng(2)
    dims = ("chain", "draw", "market", "country", "year", "direction", "phase")
    flows = xr.DataArray(
        rng.lognormal(15, 1, size=(1, 200, 3, 2, 2, 2, 2)), dims=dims,
        coords={"market": ["drugs", "smuggling_of_migrants", "corruption"],
                "country": ["MEX", "USA"], "year": [2019, 2020],
                "direction": ["inward", "outward"], "phase": ["generation", "management"]})
    tree = xr.DataTree.from_dict({"posterior": xr.Dataset({"flows": flows})})
    tree.attrs = {"convergence_verdict": "passed"}
    pub = publication(tree, "eti", 0.9)
    assert set(pub.sdg.SERIES) == {"IFF_CRIME_TOTAL", "IFF_CRIME_INWARD", "IFF_CRIME_OUTWARD",
                                   "IFF_CRIME_ILLEGAL_MARKET", "IFF_CRIME_CORRUPTION"}
    assert len(pub.sdg) == 5 * 2 * 2
    summary = summarize(tree, "eti", 0.9)
    typ = summarize_typologies(tree, "eti", 0.9)
    again = sdg_table(summary, typ, pub.caveats)
    pd.testing.assert_frame_equal(again, pub.sdg)
    row = pub.sdg[(pub.sdg.SERIES == "IFF_CRIME_ILLEGAL_MARKET") & (pub.sdg.REF_AREA == "USA")
                  & (pub.sdg.TIME_PERIOD == 2020)].iloc[0]
    per_draw = flows.sel(market=["drugs", "smuggling_of_migrants"], country="USA", year=2020)
    per_draw = per_draw.sum(["market", "direction", "phase"]).values.ravel()
    assert row["OBS_VALUE"] * 1e6 == pytest.approx(np.median(per_draw), rel=1e-12)
    assert "all" in set(pub.report.country)  # several countries: their sum is reported too


@pytest.mark.parametrize("command", ["publish", "plot", "report"])
def test_missing_or_invalid_results_exit_2(command, tmp_path, run_iff):
    code, _, err = run_iff(command, tmp_path / "nowhere")
    assert code == 2 and "results not found" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_iff(command, empty)
    assert code == 2 and "no posterior.nc" in err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "posterior.nc").write_text("not netcdf")
    code, _, err = run_iff(command, bad)
    assert code == 2 and "cannot be read as iff results" in err


def test_missing_results_exit_2_from_the_installed_command(tmp_path):
    proc = iff("publish", str(tmp_path / "nowhere"))
    assert proc.returncode == 2
    assert "results not found" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_options_exit_2(demo_forward, run_iff):
    code, _, err = run_iff("publish", demo_forward.out_dir, "--format", "pdf")
    assert code == 2 and "--format" in err
    code, _, err = run_iff("publish", demo_forward.out_dir, "--prob", "1.5")
    assert code == 2 and "--prob" in err
