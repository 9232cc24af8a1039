"""Figures: every file is produced, valid PNG/SVG, drawn from the summary layer, and flagged."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from iff.plots import figures, save_figures
from iff.summary import summarize

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STEMS = ["fan_chart", "inward_outward", "total_density_2018", "prior_posterior_drugs",
         "convergence"]


def _check_files(folder, stems):
    for stem in stems:
        png = folder / f"{stem}.png"
        svg = folder / f"{stem}.svg"
        assert png.stat().st_size > 10_000, png
        assert png.read_bytes()[:8] == PNG_MAGIC
        root = ET.parse(svg).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert svg.stat().st_size > 5_000


def test_plot_command_writes_every_figure(demo_forward, run_iff):
    code, _out, err = run_iff("plot", demo_forward.out_dir)
    assert code == 0, err
    folder = demo_forward.out_dir / "figures"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{s}.{ext}" for s in STEMS for ext in ("png", "svg"))
    _check_files(folder, STEMS)
    fan = (folder / "fan_chart.svg").read_text()
    for text in ("ILLUSTRATIVE", "USD millions", "90%", "ETI"):
        assert text in fan  # SVG keeps text as text: titles and notes can be checked
    assert "NOT CONVERGED" not in fan


def test_fan_chart_draws_the_summary_medians_and_intervals(demo_forward):
    tree = demo_forward.tree
    figs = figures(tree, "eti", 0.9)
    summary = summarize(tree, "eti", 0.9)
    total = summary[(summary.market == "all") & (summary.country == "COL")
                    & (summary.direction == "all") & (summary.phase == "all")]
    ax = figs["fan_chart"].axes[0]
    median_line = next(ln for ln in ax.lines if ln.get_label() == "median")
    np.testing.assert_allclose(np.asarray(median_line.get_ydata()) * 1e6, total["median"],
                               rtol=1e-12)
    bands = {c.get_label(): c for c in ax.collections}
    assert set(bands) == {"50% ETI", "80% ETI", "90% ETI", "95% ETI"}
    verts = bands["90% ETI"].get_paths()[0].vertices[:, 1] * 1e6
    for lo, hi in zip(total["lower"], total["upper"], strict=True):
        assert np.isclose(verts, lo, rtol=1e-9).any() and np.isclose(verts, hi, rtol=1e-9).any()
    # density figure: its median line is the summary's median of the chosen year
    dens = figs["total_density_2018"].axes[0]
    med = next(ln for ln in dens.lines if ln.get_label().startswith("median"))
    ref = summary[(summary.market == "all") & (summary.country == "all")
                  & (summary.direction == "all") & (summary.phase == "all")
                  & (summary.year == 2018)]["median"].iloc[0]
    assert med.get_xdata()[0] * 1e6 == pytest.approx(ref, rel=1e-12)


def test_stacked_bars_are_means_of_inward_and_outward(demo_forward):
    figs = figures(demo_forward.tree, "eti", 0.9, year=2016)
    assert "total_density_2016" in figs
    summary = summarize(demo_forward.tree, "eti", 0.9)
    ax = figs["inward_outward"].axes[0]
    inward, outward = ax.containers[0], ax.containers[1]
    sel = summary[(summary.market == "drugs") & (summary.country == "all")
                  & (summary.phase == "all")]
    for bars, direction in ((inward, "inward"), (outward, "outward")):
        heights = np.array([b.get_height() for b in bars]) * 1e6
        np.testing.assert_allclose(heights, sel[sel.direction == direction]["mean"], rtol=1e-12)


def test_unconverged_figures_say_so(failed_results, run_iff, tmp_path):
    code, _, err = run_iff("plot", failed_results, "--out", tmp_path)
    assert code == 3 and "NOT CONVERGED" in err
    _check_files(tmp_path, STEMS)
    for svg in tmp_path.glob("*.svg"):
        assert "NOT CONVERGED" in svg.read_text(), svg.name


def test_nuts_convergence_figure_shows_rhat_and_ess(smoke_results, tmp_path):
    figs = figures(smoke_results.tree, "eti", 0.9)
    save_figures({"convergence": figs["convergence"]}, tmp_path)
    text = (tmp_path / "convergence.svg").read_text()
    assert "max R-hat per variable" in text and "min bulk ESS per variable" in text
    assert "trace of the 16.4.1 total" in text
    _check_files(tmp_path, ["convergence"])


def test_existing_figures_are_not_overwritten(demo_forward, run_iff, tmp_path):
    (tmp_path / "fan_chart.png").write_bytes(b"sentinel")
    code, _, err = run_iff("plot", demo_forward.out_dir, "--out", tmp_path)
    assert code == 2 and "--force" in err
    assert (tmp_path / "fan_chart.png").read_bytes() == b"sentinel"
    assert len(list(tmp_path.iterdir())) == 1


def test_bad_year_exit_2(demo_forward, run_iff, tmp_path):
    code, _, err = run_iff("plot", demo_forward.out_dir, "--year", "1999", "--out", tmp_path)
    assert code == 2 and "1999" in err and "2015" in err
