"""Reproducibility: the same config and seed give byte-identical summary.csv and identical flows
draws across fresh processes, whatever the caller's PYTHONHASHSEED and working directory.

Each run is the installed ``iff`` console script in its own subprocess, from another working
directory and with another ``PYTHONHASHSEED`` (the CLI keeps a hash seed the user set, so this
also checks that the draws do not depend on it). A different seed must change the summary, so
the comparison can fail.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import BASE_CONFIG, BASE_ROWS, write_csv

from iff.results import load_tree

IFF = Path(sys.executable).parent / "iff"

#: Small NUTS run (observations present): 2 chains x 100 draws after 100 tuning steps.
NUTS: dict[str, Any] = {**copy.deepcopy(BASE_CONFIG),
                        "sampler": {"draws": 100, "tune": 100, "chains": 2, "cores": 1,
                                    "seed": 11, "progressbar": False}}

#: Forward Monte Carlo (no observations).
FORWARD: dict[str, Any] = {
    "name": "fw",
    "countries": ["COL", "PER"],
    "years": [2016, 2017],
    "markets": {"drugs": {"drugs": {"cocaine": {"role": "producer"}},
                          "priors": {"throughput": {"between": [80_000, 120_000]}}}},
    "sampler": {"draws": 200, "chains": 2, "seed": 5, "progressbar": False},
}


def _write(folder: Path, cfg: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    if "observations" in cfg:
        write_csv(folder / "obs.csv", BASE_ROWS)
    return path


def _run(config: Path, out: Path, cwd: Path, hash_seed: str) -> None:
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    proc = subprocess.run([str(IFF), "run", str(config), "--out", str(out), "--no-progress",
                           "--allow-unconverged"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr


def _check_identical(tmp_path: Path, cfg: dict[str, Any]) -> tuple[Path, Path]:
    config = _write(tmp_path / "cfg", cfg)
    a, b = tmp_path / "a" / "results", tmp_path / "b" / "nested" / "results"
    _run(config, a, tmp_path / "cwd1", "1")
    _run(config, b, tmp_path / "cwd2" / "deeper", "2")
    assert (a / "summary.csv").read_bytes() == (b / "summary.csv").read_bytes()
    ta, tb = load_tree(a), load_tree(b)
    np.testing.assert_array_equal(ta["posterior"]["flows"].values,
                                  tb["posterior"]["flows"].values)
    assert ta.attrs["flows_sha256"] == tb.attrs["flows_sha256"]
    assert ta.attrs["config_sha256"] == tb.attrs["config_sha256"]
    for name in ("config.yaml", "convergence.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    return config, a


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["nuts", "forward"])
def test_same_seed_gives_byte_identical_summary_in_fresh_processes(tmp_path, kind):
    cfg = NUTS if kind == "nuts" else FORWARD
    _, a = _check_identical(tmp_path, cfg)
    method = load_tree(a).attrs["method"]
    assert method == kind

    other = copy.deepcopy(cfg)
    other["sampler"]["seed"] += 1
    config = _write(tmp_path / "cfg_other", other)
    c = tmp_path / "c" / "results"
    _run(config, c, tmp_path / "cwd1", "1")
    assert (a / "summary.csv").read_bytes() != (c / "summary.csv").read_bytes()
