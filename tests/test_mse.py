"""Multiple systems estimation: reading tables, identifiability, published reproductions,
recovery of a known population from simulated lists with dependence."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from iff.errors import IffInputError
from iff.models.list_table import all_patterns, read_list_table
from iff.models.mse import Terms, estimate, identifiability_warnings, unbounded_cells

# Copies of ../shared/data/mse shipped with the repository (sources in their README.md).
DATA = Path(__file__).resolve().parents[1] / "configs" / "data" / "mse"

# Published results (../shared/data/README.md): Silverman (2014) for UKdat; Silverman, Chan &
# Vincent (2024), Statistics & Computing 34:44, Table 6 for UKdat_5 and Korea.
UK_RANGE = (10_000, 13_000)
UK5_INTERVALS = ((10_652, 13_947), (11_456, 43_894))
KOREA_INTERVAL = (128, 349)


def table(name: str):
    return read_list_table(DATA / f"{name}.csv", name)


def test_reads_reference_tables():
    uk = table("UKdat")
    assert uk.lists == ("LA", "NG", "PF", "GO", "GP", "NCA")
    assert uk.observed == 2744
    assert len(uk.counts) == 2**6 - 1
    assert table("UKdat_5").observed == 2744
    assert table("Korea").observed == 123
    assert table("Artificial_3").observed == 96


def test_never_overlapping_lists_are_named():
    art = table("Artificial_3")
    warnings = identifiability_warnings(art, Terms.up_to(3))
    assert any("never overlap (A-C, B-C)" in w for w in warnings)
    assert any("no finite estimate" in w for w in warnings)
    # Without interactions the independence model has a finite estimate.
    assert unbounded_cells(art, Terms.up_to(3, order=1)) == []
    uk = table("UKdat")
    warnings = identifiability_warnings(uk, Terms.up_to(6))
    assert any("LA-GP" in w and "LA-NCA" in w for w in warnings)
    assert not any("no finite estimate" in w for w in warnings)


def test_empty_cell_that_breaks_the_estimate_is_named():
    # Korea: cell 011 is empty, so with all three two-list terms (a saturated model but for
    # the three-list term) the maximum-likelihood dark figure is infinite.
    assert unbounded_cells(table("Korea"), Terms.up_to(3)) == ["011"]


@pytest.mark.parametrize(("text", "reason"), [
    ("A,count\n1,5\n", "at least 2 lists"),
    ("A,B,count\n1,2,5\n0,1,3\n", "'2' is not 0 or 1"),
    ("A,B,count\n1,1,-5\n0,1,3\n", "non-negative whole number"),
    ("A,B,count\n1,1,2.5\n0,1,3\n", "non-negative whole number"),
    ("A,B,count\n0,0,5\n0,1,3\n1,0,1\n", "all-zero pattern"),
    ("A,B,count\n1,0,5\n1,0,3\n0,1,1\n", "duplicates line 2"),
    ("A,B,n\n1,0,5\n", "last column must be 'count'"),
    ("A,B,count\n1,0,5\n", "no case is on this list"),
    ("", "empty file"),
    ("A,B,count\n1,0\n", "2 values, the header has 3"),
])
def test_bad_tables_are_refused_with_line_and_reason(tmp_path, text, reason):
    path = tmp_path / "lists.csv"
    path.write_text(text)
    with pytest.raises(IffInputError) as err:
        read_list_table(path, "lists.csv")
    message = err.value.render()
    assert reason in message
    assert "lists.csv" in message


def test_cli_bad_table_exits_2_without_traceback(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("A,B,count\n1,3,5\n0,1,2\n")
    proc = subprocess.run([sys.executable, "-m", "iff", "mse", str(path), "--json"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "bad.csv:2" in proc.stderr and "'3' is not 0 or 1" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


@pytest.mark.slow
def test_cli_json_reproduces_korea():
    proc = subprocess.run(
        [sys.executable, "-m", "iff", "mse", str(DATA / "Korea.csv"), "--json", "--seed", "1"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert {"observed", "mean", "median", "lower", "upper", "prob"} <= set(result)
    assert result["observed"] == 123 and result["prob"] == 0.95
    assert KOREA_INTERVAL[0] <= result["median"] <= KOREA_INTERVAL[1]
    assert result["lower"] < result["median"] < result["upper"]
    assert "011" in proc.stderr  # the identifiability warning names the empty cell


@pytest.mark.slow
@pytest.mark.parametrize("name", ["UKdat", "UKdat_5"])
def test_reproduces_published_uk_estimates(name):
    result = estimate(table(name), prob=0.95, seed=2)
    assert result.convergence.passed, result.convergence.failures
    median = result.summary()["median"]
    if name == "UKdat":
        assert UK_RANGE[0] <= median <= UK_RANGE[1]
    else:
        assert any(lo <= median <= hi for lo, hi in UK5_INTERVALS)


def simulate_lists(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Capture histories of ``n`` people on 4 lists; lists 0 and 1 are positively dependent
    (being on list 0 triples the odds of being on list 1), list 3 is independent."""
    p = np.array([0.25, 0.2, 0.3, 0.15])
    on0 = rng.random(n) < p[0]
    odds1 = p[1] / (1 - p[1]) * np.where(on0, 3.0, 1.0)
    on1 = rng.random(n) < odds1 / (1 + odds1)
    on2 = rng.random(n) < p[2]
    on3 = rng.random(n) < p[3]
    hist = np.column_stack([on0, on1, on2, on3]).astype(int)
    patterns = all_patterns(4)
    codes = hist @ (2 ** np.arange(3, -1, -1))
    counts = np.bincount(codes, minlength=16)[1:]
    return patterns, counts


@pytest.mark.slow
def test_recovers_known_population_with_dependent_lists():
    from iff.models.list_table import ListTable

    rng = np.random.default_rng(20261122)
    truth, covered, medians = 3000, 0, []
    n_sims = 10
    for i in range(n_sims):
        patterns, counts = simulate_lists(rng, truth)
        sim = ListTable(lists=("L0", "L1", "L2", "L3"), patterns=patterns, counts=counts,
                        file=f"sim{i}")
        res = estimate(sim, prob=0.9, seed=i, draws=600, tune=600, chains=2, cores=1)
        s = res.summary()
        covered += s["lower"] <= truth <= s["upper"]
        medians.append(s["median"])
    # A 90 % interval should cover the truth in most simulations (binomial(10, 0.9): >= 7
    # with probability 0.99); the medians are centred near the truth.
    assert covered >= 7, (covered, medians)
    assert abs(np.median(medians) / truth - 1) < 0.1, medians
