"""The command line end to end: the demo run, summarize, validate, markets, schema, scenarios."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from iff.results import load_tree
from iff.summary import COLUMNS
from tests.conftest import DEMO, REPO

IFF = str(Path(sys.executable).parent / "iff")


def iff(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([IFF, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "results"
    proc = iff("run", str(DEMO), "--out", str(out), "--no-progress")
    return proc, out


@pytest.mark.slow
def test_demo_run_end_to_end(demo_run):
    proc, out = demo_run
    assert proc.returncode == 0, proc.stderr
    assert "SDG 16.4.1" in proc.stdout and "total (inward + outward)" in proc.stdout
    assert "illustrative" in proc.stderr.lower()
    table = pd.read_csv(out / "summary.csv")
    assert list(table.columns) == list(COLUMNS)
    assert set(table["convergence"]) == {"passed"}
    tree = load_tree(out)
    assert tree.attrs["convergence_verdict"] == "passed"
    assert tree["posterior"]["flows"].sizes["year"] == 4
    conv = json.loads((out / "convergence.json").read_text())
    assert conv["max_rhat"] <= 1.01 and conv["min_ess_bulk"] >= 400 and conv["divergences"] == 0


@pytest.mark.slow
def test_demo_rerun_refused_without_force(demo_run):
    _, out = demo_run
    before = (out / "posterior.nc").stat().st_mtime_ns
    again = iff("run", str(DEMO), "--out", str(out))
    assert again.returncode == 2
    assert "exists" in again.stderr and "--force" in again.stderr
    assert (out / "posterior.nc").stat().st_mtime_ns == before


@pytest.mark.slow
def test_summarize_again_with_other_interval(demo_run):
    _, out = demo_run
    proc = iff("summarize", str(out), "--prob", "0.5", "--interval", "hdi")
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out / "summary_hdi50.csv")
    assert set(table["interval"]) == {"hdi"} and set(table["prob"]) == {0.5}
    wide = pd.read_csv(out / "summary.csv")
    assert ((table["upper"] - table["lower"]) <= (wide["upper"] - wide["lower"]) + 1e-6).all()


def test_validate_demo_and_its_scenarios():
    proc = iff("validate", str(DEMO))
    assert proc.returncode == 0, proc.stderr
    assert "base config" in proc.stdout
    assert "high_interdiction" in proc.stdout and "border_valuation" in proc.stdout


def test_markets_lists_parameters_and_quantities():
    proc = iff("markets", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    drugs = data["drugs"]
    assert drugs["typology"] == "illegal_market" and drugs["iccs"] == ["060132"]
    assert "interdiction_rate" in {p["name"] for p in drugs["parameters"]}
    assert {"production", "seizures", "price_wholesale"} <= {q["code"] for q in drugs["quantities"]}
    assert all(p["unit"] and p["meaning"] and p["default_prior"] for p in drugs["parameters"])


def test_schema_is_generated_from_models():
    proc = iff("schema")
    assert proc.returncode == 0, proc.stderr
    schema = json.loads(proc.stdout)
    assert schema["additionalProperties"] is False
    assert {"countries", "years", "markets", "sampler"} <= set(schema["properties"])
    text = proc.stdout
    assert "interdiction_rate" in text and "export_valuation" in text


def test_unconverged_run_exits_3_and_is_marked(make_config, tmp_path):
    cfg = make_config({"sampler": {"draws": 10, "tune": 10}})
    proc = iff("run", str(cfg), "--no-progress")
    assert proc.returncode == 3, proc.stderr
    assert "convergence checks failed" in proc.stderr and "Traceback" not in proc.stderr
    table = pd.read_csv(tmp_path / "results" / "summary.csv")
    assert set(table["convergence"]) == {"FAILED"}
    accepted = iff("run", str(cfg), "--no-progress", "--force", "--allow-unconverged")
    assert accepted.returncode == 0, accepted.stderr
    assert "warning" in accepted.stderr


def test_scenario_run_goes_to_its_own_folder(make_config, tmp_path):
    cfg = make_config({"scenarios": {"tight": {"markets": {"drugs": {"priors": {
        "interdiction_rate": {"fixed": 0.3}}}}}}})
    proc = iff("run", str(cfg), "--scenario", "tight", "--no-progress", "--allow-unconverged")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "results--tight"
    tree = load_tree(out)
    config = json.loads(tree.attrs["config_json"])
    assert config["scenario"] == "tight"
    assert config["markets"]["drugs"]["priors"]["interdiction_rate"] == {"fixed": 0.3}
    assert "drugs_interdiction_rate" not in tree["posterior"]  # fixed: a constant
    assert not (tmp_path / "results").exists()


def test_quick_start_commands_are_in_readme():
    readme = (REPO / "README.md").read_text()
    assert "bin/iff run configs/demo.yaml" in readme and "bin/test" in readme


@pytest.mark.slow
def test_same_seed_byte_identical_summary_across_processes(make_config, tmp_path):
    cfg = make_config()
    a = iff("run", str(cfg), "--no-progress", "--allow-unconverged", "--out", str(tmp_path / "a"))
    b = iff("run", str(cfg), "--no-progress", "--allow-unconverged", "--out", str(tmp_path / "b"))
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert (tmp_path / "a" / "summary.csv").read_bytes() == (tmp_path / "b" / "summary.csv"
                                                              ).read_bytes()


def _python_stdout(code: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=True)
    return proc.stdout.split()


def test_sampling_commands_import_arviz_without_pyplot():
    """`iff run` and `iff mse` import ArviZ (through nutpie) without matplotlib's pyplot, which
    stays importable afterwards; a process that imported pyplot first keeps ArviZ's styles."""
    assert _python_stdout(
        "import sys\n"
        "from iff.console import import_arviz_without_pyplot\n"
        "import_arviz_without_pyplot()\n"
        "import nutpie\n"
        "print('matplotlib.pyplot' in sys.modules, 'arviz_plots' in sys.modules)\n"
        "import matplotlib.pyplot\n"
        "print(type(sys.modules['matplotlib.pyplot']).__name__)\n") == ["False", "True", "module"]
    assert _python_stdout(
        "import sys, matplotlib.pyplot\n"
        "from iff.console import import_arviz_without_pyplot\n"
        "import_arviz_without_pyplot()\n"
        "import arviz, matplotlib.style\n"
        "print('arviz-variat' in matplotlib.style.available)\n") == ["True"]
