"""Shared fixtures: small configs and observation tables written into a temporary folder."""

from __future__ import annotations

import copy
import csv
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from iff.config import deep_merge

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
DEMO = REPO / "configs" / "demo.yaml"

os.environ.setdefault("MPLBACKEND", "Agg")

#: Smoke sampler settings: exercise the whole NUTS path (chains, R-hat) in seconds.
SMOKE_SAMPLER = {"draws": 50, "tune": 50, "chains": 2, "cores": 1, "seed": 1,
                 "progressbar": False}

BASE_CONFIG: dict[str, Any] = {
    "name": "t",
    "countries": ["COL"],
    "years": [2016, 2017],
    "observations": {"file": "obs.csv"},
    "markets": {"drugs": {"drugs": {"cocaine": {"roles": {"COL": "producer"}}}}},
    "sampler": dict(SMOKE_SAMPLER),
}

OBS_HEADER = ["country", "year", "market", "quantity", "item", "value", "unit", "se", "lower",
              "upper", "source"]
BASE_ROWS: list[dict[str, Any]] = [
    {"country": "COL", "year": 2016, "market": "drugs", "quantity": "production",
     "item": "cocaine", "value": 300000, "unit": "kg", "se": 30000, "source": "test"},
    {"country": "COL", "year": 2017, "market": "drugs", "quantity": "production",
     "item": "cocaine", "value": 350000, "unit": "kg", "se": 35000, "source": "test"},
    {"country": "COL", "year": 2016, "market": "drugs", "quantity": "seizures",
     "item": "cocaine", "value": 130000, "unit": "kg", "se": 6000, "source": "test"},
    {"country": "COL", "year": 2017, "market": "drugs", "quantity": "price_wholesale",
     "item": "cocaine", "value": 1500, "unit": "USD/kg", "lower": 1000, "upper": 2200,
     "source": "test"},
]


def write_csv(path: Path, rows: list[dict[str, Any]], header: list[str] | None = None) -> Path:
    """Write observation rows (missing columns left empty)."""
    header = header or OBS_HEADER
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in header})
    return path


@pytest.fixture
def make_config(tmp_path: Path):
    """Factory: ``make_config(overlay=None, rows=None, raw_yaml=None) -> config path``.

    Writes ``BASE_CONFIG`` merged with ``overlay`` (or the literal ``raw_yaml``) and the
    observation rows (default ``BASE_ROWS``) into ``tmp_path``. Results go to
    ``tmp_path/results``.
    """

    def make(overlay: dict[str, Any] | None = None, rows: list[dict[str, Any]] | None = None,
             raw_yaml: str | None = None, name: str = "config.yaml") -> Path:
        cfg = deep_merge(copy.deepcopy(BASE_CONFIG), overlay or {})
        cfg.setdefault("output", {})["dir"] = str(tmp_path / "results")
        path = tmp_path / name
        if raw_yaml is not None:
            path.write_text(raw_yaml, encoding="utf-8")
        else:
            path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
        write_csv(tmp_path / "obs.csv", BASE_ROWS if rows is None else rows)
        return path

    return make


@pytest.fixture(scope="session")
def smoke_results(tmp_path_factory):
    """One NUTS run of the base test config with smoke settings, written to a results folder."""
    from iff import run

    tmp = tmp_path_factory.mktemp("smoke")
    cfg = dict(copy.deepcopy(BASE_CONFIG))
    cfg["output"] = {"dir": str(tmp / "results")}
    (tmp / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    write_csv(tmp / "obs.csv", BASE_ROWS)
    return run(tmp / "config.yaml")


@pytest.fixture(scope="session")
def demo_forward(tmp_path_factory):
    """The demo's priors without its observations: exact forward Monte Carlo (seconds), flagged
    illustrative, written to a results folder (publishing tests)."""
    from iff import run

    tmp = tmp_path_factory.mktemp("demo_forward")
    cfg = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    cfg.pop("observations")
    cfg["illustrative_priors"] = True
    cfg["sampler"] = {"draws": 500, "chains": 2, "seed": 3, "progressbar": False}
    cfg["output"] = {"dir": str(tmp / "results")}
    (tmp / "demo.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return run(tmp / "demo.yaml")


@pytest.fixture(scope="session")
def failed_results(demo_forward, tmp_path_factory):
    """The same draws marked as a NUTS run that FAILED its convergence checks."""
    import json

    from iff.results import write_results
    from iff.summary import summarize

    tree = demo_forward.tree.copy()
    conv = {"method": "nuts", "passed": False, "max_rhat": 1.08, "min_ess_bulk": 35.0,
            "divergences": 3, "worst_rhat": "flows", "worst_ess": "flows",
            "thresholds": {"rhat_max": 1.01, "ess_bulk_min": 400.0, "divergences_max": 0},
            "failures": ["R-hat 1.080 > 1.01 (flows)", "bulk ESS 35 < 400 (flows)",
                         "3 divergent transitions"], "verdict": "FAILED"}
    tree.attrs = {**tree.attrs, "method": "nuts", "convergence": json.dumps(conv),
                  "convergence_verdict": "FAILED"}
    out = tmp_path_factory.mktemp("failed") / "results"
    return write_results(out, tree, summarize(tree, "eti", 0.9), force=False)


@pytest.fixture
def run_iff(capsys, monkeypatch):
    """Run the ``iff`` command in this process: ``run_iff(*args) -> (exit code, stdout,
    stderr)`` (exit codes mapped as by the installed command, without its start-up time)."""
    from iff import cli

    monkeypatch.setenv("PYTHONHASHSEED", os.environ.get("PYTHONHASHSEED", "0"))

    def run_cli(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        monkeypatch.setattr("sys.argv", ["iff", *map(str, args)])
        with pytest.raises(SystemExit) as exc:
            cli.main()
        captured = capsys.readouterr()
        return int(exc.value.code or 0), captured.out, captured.err

    return run_cli
