"""Benchmark results: every JSON in benchmarks/results parses and says how it was produced,
and benchmarks/RESULTS.md is what benchmarks/make_results.py generates from them (fast)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
sys.path.insert(0, str(REPO / "benchmarks"))
import make_results  # noqa: E402

FILES = sorted(RESULTS.glob("*.json"))


def test_there_are_results():
    assert FILES, "no benchmarks/results/*.json"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_result_parses_and_has_provenance(path):
    data = json.loads(path.read_text(encoding="utf-8"))
    assert make_results.command_of(path.name, data), (
        f"{path.name}: add a 'command' key (or map it in make_results.COMMANDS)")


def test_results_md_is_up_to_date():
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "make_results.py"),
                           "--check"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_check_fails_on_a_stale_file(tmp_path):
    stale = tmp_path / "RESULTS.md"
    stale.write_text("old\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "make_results.py"),
                           "--check", "--out", str(stale)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 1
    assert "stale" in proc.stderr
