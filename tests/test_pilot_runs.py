"""Shipped pilot configs: every one validates; the trafficking and smuggling pilots run end to
end through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from iff import load_results
from tests.conftest import REPO

PILOTS = sorted((REPO / "configs" / "pilots").glob("*.yaml"))


def iff_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "iff", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=900)


@pytest.mark.parametrize("config", PILOTS, ids=lambda p: p.stem)
def test_every_pilot_validates(config):
    proc = iff_cli("validate", str(config))
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout


@pytest.mark.slow
def test_uk_trafficking_pilot_runs_and_reproduces_the_victim_count(tmp_path):
    out = tmp_path / "gbr"
    proc = iff_cli("run", "configs/pilots/gbr-2013-trafficking.yaml", "--out", str(out),
                   "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "illustrative" in proc.stderr.lower()  # residency priors are illustrative
    assert "never overlap" in proc.stderr  # LA-GP and LA-NCA
    tree = load_results(out)
    victims = tree["posterior"]["trafficking_in_persons_victims"].sel(country="GBR", year=2013)
    # Silverman (2014): "between 10,000 and 13,000" potential victims in the UK in 2013
    assert 10_000 <= float(np.median(victims)) <= 13_000
    summary = pd.read_csv(out / "summary.csv")
    assert (summary["convergence"] == "passed").all()
    assert json.loads(tree.attrs["warnings"])


@pytest.mark.slow
def test_mexico_smuggling_pilot_runs(tmp_path):
    out = tmp_path / "mex"
    proc = iff_cli("run", "configs/pilots/mex-2019-smuggling.yaml", "--out", str(out),
                   "--no-progress")
    assert proc.returncode == 0, proc.stderr
    summary = pd.read_csv(out / "summary.csv")
    total = summary[(summary["market"] == "all") & (summary["country"] == "MEX")
                    & (summary["direction"] == "all")
                    & (summary["phase"] == "all")]
    assert len(total) == 1 and total["median"].iloc[0] > 0
    assert (summary["unit"].str.contains("USD")).all()
