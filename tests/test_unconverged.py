"""A genuinely unconverged run (NUTS, 2 chains x 20 draws after 5 tuning steps) can leave no
output path without its warning.

Every path a user can publish from is checked on one such run: the Python API (``iff.run``,
``iff.summarize``, ``publication``), ``summary.csv``, ``iff summarize``, ``iff publish`` (every
format), ``iff plot``, ``iff report``, ``iff compare`` and ``iff sweep`` (a finished unconverged
task that a rerun skips). Publishing commands exit 3 without ``--allow-unconverged``.
(``tests/test_publish.py``, ``test_plots.py`` and ``test_report.py`` check the same on draws
marked FAILED by hand.)
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import BASE_CONFIG, BASE_ROWS, write_csv

from iff.errors import ConvergenceWarning

IFF = Path(sys.executable).parent / "iff"
UNCONVERGED_SAMPLER = {"draws": 20, "tune": 5, "chains": 2, "cores": 1, "seed": 3,
                       "progressbar": False}


@pytest.fixture(scope="module")
def unconverged(tmp_path_factory):
    """(config path, results folder) of an unconverged run, written as the ``base`` task of a
    sweep folder (so a sweep rerun finds it finished and skips it)."""
    import iff
    from iff.sweep import BASE, task_config

    tmp = tmp_path_factory.mktemp("unconverged")
    cfg = copy.deepcopy(BASE_CONFIG)
    cfg["sampler"] = dict(UNCONVERGED_SAMPLER)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    write_csv(tmp / "obs.csv", BASE_ROWS)
    out = tmp / "sweep" / BASE
    with pytest.warns(ConvergenceWarning, match="NOT CONVERGED"):
        outcome = iff.run(task_config(path, BASE, None), out=out)
    assert not outcome.convergence.passed, "the tiny run converged: it cannot test anything"
    assert outcome.tree.attrs["convergence_verdict"] == "FAILED"
    return path, out


def test_summary_csv_says_failed_on_every_row(unconverged):
    _, out = unconverged
    table = pd.read_csv(out / "summary.csv")
    assert set(table["convergence"]) == {"FAILED"}
    assert json.loads((out / "convergence.json").read_text())["verdict"] == "FAILED"


def test_public_summarize_warns(unconverged):
    import iff

    tree = iff.load_results(unconverged[1])
    with pytest.warns(ConvergenceWarning, match="NOT CONVERGED"):
        table = iff.summarize(tree, "hdi", 0.8)
    assert set(table["convergence"]) == {"FAILED"}


def test_publication_api_carries_the_warning(unconverged):
    import iff
    from iff.publish import publication

    pub = publication(iff.load_results(unconverged[1]))
    assert pub.sdg["COMMENT"].str.startswith("WARNING: NOT CONVERGED").all()
    assert pub.caveats.alerts()[0].startswith("WARNING: NOT CONVERGED")
    assert pub.metadata["convergence"] == "FAILED"


def test_cli_summarize_exits_3_with_the_warning(unconverged, run_iff):
    _, out = unconverged
    code, stdout, err = run_iff("summarize", out, "--prob", "0.8")
    assert code == 3, err
    assert "NOT CONVERGED" in stdout and "NOT CONVERGED" in err
    assert "--allow-unconverged" in err
    assert set(pd.read_csv(out / "summary_eti80.csv")["convergence"]) == {"FAILED"}
    code, stdout, err = run_iff("summarize", out, "--prob", "0.7", "--allow-unconverged")
    assert code == 0, err
    assert "NOT CONVERGED" in stdout and "NOT CONVERGED" in err


@pytest.mark.slow
def test_cli_publish_plot_report_exit_3_and_every_file_warns(unconverged, run_iff, tmp_path):
    _, out = unconverged
    pub = tmp_path / "pub"
    code, _, err = run_iff("publish", out, "--out", pub, *[a for f in ("sdg", "csv", "xlsx", "json")
                                                          for a in ("--format", f)])
    assert code == 3 and "NOT CONVERGED" in err, err
    for f in pub.glob("sdg_*.csv"):
        assert pd.read_csv(f)["COMMENT"].str.startswith("WARNING: NOT CONVERGED").all(), f
    report_csv = next(pub.glob("report_*.csv"))
    assert set(pd.read_csv(report_csv)["convergence"]) == {"FAILED"}
    doc = json.loads(next(pub.glob("*.json")).read_text())
    assert doc["alerts"][0].startswith("WARNING: NOT CONVERGED")
    about = pd.read_excel(next(pub.glob("*.xlsx")), sheet_name="About")
    assert "NOT CONVERGED" in about["value"].iloc[0]

    figs = tmp_path / "figs"
    code, _, err = run_iff("plot", out, "--out", figs)
    assert code == 3 and "NOT CONVERGED" in err, err
    svgs = list(figs.glob("*.svg"))
    assert svgs and all("NOT CONVERGED" in s.read_text() for s in svgs)

    html = tmp_path / "report.html"
    code, _, err = run_iff("report", out, "--out", html)
    assert code == 3 and "NOT CONVERGED" in err, err
    assert "NOT CONVERGED" in html.read_text()
    code, _, err = run_iff("report", out, "--out", html, "--force", "--allow-unconverged")
    assert code == 0 and "NOT CONVERGED" in err, err


def test_cli_compare_warns_and_exits_3(unconverged, run_iff, demo_forward):
    _, out = unconverged
    code, stdout, err = run_iff("compare", out, out)
    assert code == 3, err
    assert "NOT CONVERGED" in stdout and "NOT CONVERGED - A" in err and "NOT CONVERGED - B" in err
    code, stdout, err = run_iff("compare", out, out, "--json", "--allow-unconverged")
    assert code == 0, err
    alerts = json.loads(stdout)["alerts"]
    assert [a[:26] for a in alerts] == ["WARNING: NOT CONVERGED - A", "WARNING: NOT CONVERGED - B"]
    # Sound results compare without alerts.
    from iff.compare import compare

    assert compare(demo_forward.tree, demo_forward.tree).alerts == []


@pytest.mark.slow
def test_sweep_with_an_unconverged_finished_task_exits_3(unconverged):
    """A rerun skips the finished task, yet its rows in sweep_summary.csv say FAILED and the
    sweep exits 3 (no cluster starts: nothing is left to run)."""
    path, out = unconverged
    sweep_dir = out.parent
    proc = subprocess.run([str(IFF), "sweep", str(path), "--out", str(sweep_dir),
                           "--no-progress"], capture_output=True, text=True, timeout=600,
                          cwd=path.parent)
    assert proc.returncode == 3, proc.stderr
    assert "NOT CONVERGED" in proc.stderr and "--allow-unconverged" in proc.stderr
    rows = pd.read_csv(sweep_dir / "sweep_summary.csv")
    assert set(rows["convergence"]) == {"FAILED"} and set(rows["scenario"]) == {"base"}
    status = json.loads((sweep_dir / "sweep.json").read_text())
    assert [(t["status"], t["convergence"]) for t in status["tasks"]] == [("skipped", "FAILED")]
