"""``iff sweep``: scenarios x country groups as independent tasks on a local Dask cluster.

The sweeps run the real command in a subprocess (2 workers; a killed sweep resumed). Their
configs sample by forward Monte Carlo, so a task takes seconds once the compile cache is warm;
the cluster's start-up (each worker imports PyMC) dominates.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import BASE_CONFIG, BASE_ROWS, write_csv

from iff.errors import IffInputError, ResultsError
from iff.results import load_tree
from iff.summary import COLUMNS
from iff.sweep import BASE, plan_sweep, read_summary_text, task_config

IFF = Path(sys.executable).parent / "iff"

#: Forward Monte Carlo (no observations): exact and fast; scenarios scale the throughput prior.
FORWARD: dict[str, Any] = {
    "name": "fw",
    "countries": ["COL", "PER"],
    "years": [2016, 2017],
    "markets": {"drugs": {"drugs": {"cocaine": {"role": "producer"}},
                          "priors": {"throughput": {"between": [80_000, 120_000]}}}},
    "sampler": {"draws": 250, "chains": 2, "seed": 5, "progressbar": False},
    "scenarios": {
        "high": {"markets": {"drugs": {"priors": {"throughput": {"between": [160_000,
                                                                             240_000]}}}}},
    },
}


def write_config(folder: Path, cfg: dict[str, Any], name: str = "sweep.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def iff(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(IFF), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def digest(folder: Path) -> tuple[int, str]:
    f = folder / "posterior.nc"
    return f.stat().st_mtime_ns, hashlib.sha256(f.read_bytes()).hexdigest()


def task_dirs(sweep_dir: Path) -> list[Path]:
    """Every visible folder of a sweep folder (hidden ones are temporary or the lock)."""
    return sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


@pytest.fixture(scope="module")
def grouped_sweep(tmp_path_factory):
    """2 scenarios (base, high) x 2 groups on a local cluster with 2 workers."""
    tmp = tmp_path_factory.mktemp("sweep")
    cfg = copy.deepcopy(FORWARD)
    cfg["sweep"] = {"groups": {"col": ["COL"], "andean": ["COL", "PER"]}}
    path = write_config(tmp, cfg)
    start = time.perf_counter()
    proc = iff("sweep", str(path), "--workers", "2", "--out", "out", "--no-progress", cwd=tmp)
    return tmp, path, proc, time.perf_counter() - start


@pytest.mark.slow
def test_sweep_on_two_workers_writes_every_task(grouped_sweep):
    tmp, _, proc, _ = grouped_sweep
    assert proc.returncode == 0, proc.stderr
    out = tmp / "out"
    names = ["base--col", "base--andean", "high--col", "high--andean"]
    assert [p.name for p in task_dirs(out)] == sorted(names)
    for name in names:
        tree = load_tree(out / name, check=True)
        countries = list(tree["posterior"]["flows"].coords["country"].values)
        assert countries == (["COL"] if name.endswith("--col") else ["COL", "PER"])
        assert tree.attrs["scenario"] == ("" if name.startswith("base") else "high")
        assert json.loads(tree.attrs["config_json"])["sampler"]["cores"] == 1
    status = json.loads((out / "sweep.json").read_text())
    assert status["workers"] == 2 and status["scheduler"] == "local"
    assert [t["status"] for t in status["tasks"]] == ["ok"] * 4
    assert {t["worker_hash_seed"] for t in status["tasks"]} == {"0"}
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]


@pytest.mark.slow
def test_sweep_summary_rows_equal_each_task_summary(grouped_sweep):
    tmp, _, proc, _ = grouped_sweep
    assert proc.returncode == 0, proc.stderr
    out = tmp / "out"
    sweep = read_summary_text(out / "sweep_summary.csv")
    assert list(sweep.columns) == ["scenario", "group", *COLUMNS]
    assert sweep["unit"].unique().tolist() == ["USD (current prices of each year)"]
    assert set(sweep["interval"]) == {"eti"} and set(sweep["prob"]) == {"0.9"}
    for (scenario, group), rows in sweep.groupby(["scenario", "group"], sort=False):
        own = read_summary_text(out / f"{scenario}--{group}" / "summary.csv")
        assert rows.drop(columns=["scenario", "group"]).reset_index(drop=True).equals(own)
    assert list(dict.fromkeys(zip(sweep["scenario"], sweep["group"], strict=True))) == [
        ("base", "col"), ("base", "andean"), ("high", "col"), ("high", "andean")]


@pytest.mark.slow
def test_sweep_task_equals_a_plain_run_of_its_config(grouped_sweep):
    """A task is the same run as `iff run` of its config (PYTHONHASHSEED pinned in workers)."""
    from iff import run

    tmp, path, proc, _ = grouped_sweep
    assert proc.returncode == 0, proc.stderr
    direct = run(task_config(path, "high", ("COL",)), write=False)
    swept = load_tree(tmp / "out" / "high--col")
    np.testing.assert_array_equal(direct.tree["posterior"]["flows"].values,
                                  swept["posterior"]["flows"].values)


@pytest.mark.slow
def test_rerun_skips_every_finished_task(grouped_sweep):
    tmp, path, proc, _ = grouped_sweep
    assert proc.returncode == 0, proc.stderr
    out = tmp / "out"
    before = {p.name: digest(p) for p in task_dirs(out)}
    again = iff("sweep", str(path), "--out", "out", "--no-progress", cwd=tmp)
    assert again.returncode == 0, again.stderr
    assert {p.name: digest(p) for p in task_dirs(out)} == before
    status = json.loads((out / "sweep.json").read_text())
    assert [t["status"] for t in status["tasks"]] == ["skipped"] * 4


@pytest.mark.slow
def test_resume_after_killed_sweep(tmp_path):
    """SIGKILL the whole sweep after its first task: the rerun keeps that task and does the
    rest; no partial folder is ever visible under a task's name."""
    cfg = copy.deepcopy(FORWARD)
    cfg["countries"] = ["COL"]
    for i, hi in enumerate((130_000, 140_000)):
        cfg["scenarios"][f"s{i}"] = {"markets": {"drugs": {"priors": {
            "throughput": {"between": [hi // 2, hi]}}}}}
    path = write_config(tmp_path, cfg)
    out = tmp_path / "out"
    proc = subprocess.Popen([str(IFF), "sweep", str(path), "--workers", "1", "--out", "out",
                             "--no-progress"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if out.is_dir() and task_dirs(out):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep ended before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = {p.name: digest(p) for p in task_dirs(out)}
    assert 1 <= len(finished) < 4
    for name in finished:  # whatever is visible is complete results
        load_tree(out / name, check=True)
        assert {"summary.csv", "config.yaml", "convergence.json"} <= {
            f.name for f in (out / name).iterdir()}

    rerun = iff("sweep", str(path), "--workers", "1", "--out", "out", "--no-progress",
                cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    tasks = [BASE, "high", "s0", "s1"]
    assert [p.name for p in task_dirs(out)] == sorted(tasks)
    for name, before in finished.items():
        assert digest(out / name) == before, f"{name} was redone"
    status = {t["task"]: t["status"] for t in json.loads((out / "sweep.json").read_text())
              ["tasks"]}
    assert {n for n, s in status.items() if s == "skipped"} == set(finished)
    assert {n for n, s in status.items() if s == "ok"} == set(tasks) - set(finished)
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]
    assert set(read_summary_text(out / "sweep_summary.csv")["scenario"]) == set(tasks)


def test_changed_config_makes_a_finished_task_stale(tmp_path):
    """A finished folder of another config is refused (exit 2 in the CLI) unless --force."""
    from iff import run

    path = write_config(tmp_path, FORWARD)
    out = tmp_path / "out"
    run(task_config(path, BASE, None), out=out / BASE)
    plan = plan_sweep(path, "all", out)
    assert {n: s.state for n, s in plan.states.items()} == {BASE: "done", "high": "todo"}
    assert [t.name for t in plan.to_run] == ["high"]

    changed = copy.deepcopy(FORWARD)
    changed["markets"]["drugs"]["priors"]["throughput"] = {"between": [90_000, 120_000]}
    write_config(tmp_path, changed)
    with pytest.raises(ResultsError, match=r"out/base: its resolved config differs"):
        plan_sweep(path, "all", out)
    assert plan_sweep(path, "all", out, force=True).states[BASE].state == "stale"
    # Editing only another scenario leaves the base task finished.
    other = copy.deepcopy(FORWARD)
    other["scenarios"]["high"]["markets"]["drugs"]["priors"]["throughput"]["between"][0] = 1
    write_config(tmp_path, other)
    assert plan_sweep(path, "all", out).states[BASE].state == "done"

    (out / "high").mkdir()
    (out / "high" / "posterior.nc").write_text("not netcdf")
    with pytest.raises(ResultsError, match=r"out/high: does not load as results"):
        plan_sweep(path, "all", out)


def test_changed_data_file_makes_a_finished_task_stale(tmp_path):
    from iff import run

    cfg = copy.deepcopy(BASE_CONFIG)
    cfg["sampler"] = {**cfg["sampler"], "draws": 10, "tune": 10}
    path = write_config(tmp_path, cfg)
    write_csv(tmp_path / "obs.csv", BASE_ROWS)
    run(task_config(path, BASE, None), out=tmp_path / "out" / BASE)
    assert plan_sweep(path, None, tmp_path / "out").states[BASE].state == "done"
    rows = copy.deepcopy(BASE_ROWS)
    rows[0]["value"] = 310000
    write_csv(tmp_path / "obs.csv", rows)
    with pytest.raises(ResultsError, match=r"input file.*changed since: observations"):
        plan_sweep(path, None, tmp_path / "out")


def test_invalid_task_stops_the_sweep_before_anything_is_written(tmp_path):
    cfg = copy.deepcopy(BASE_CONFIG)
    cfg["scenarios"] = {"fwd": {"sampler": {"method": "forward"}}, "ok": {}}
    cfg["sweep"] = {"groups": {"one": ["COL"]}}
    path = write_config(tmp_path, cfg)
    write_csv(tmp_path / "obs.csv", BASE_ROWS)
    with pytest.raises(IffInputError) as e:
        plan_sweep(path, "all", tmp_path / "out")
    text = e.value.render()
    assert "sampler.method" in text and "[sweep: task fwd--one]" in text
    assert not (tmp_path / "out").exists()


def test_group_outside_the_config_countries(tmp_path):
    cfg = copy.deepcopy(FORWARD)
    cfg["sweep"] = {"groups": {"mixed": ["COL", "BOL"]}}
    path = write_config(tmp_path, cfg)
    with pytest.raises(IffInputError, match=r"sweep\.groups\.mixed: group 'mixed': BOL not "
                                            r"among the config's countries"):
        plan_sweep(path)


def test_cli_bad_input_exits_2_with_nothing_written(tmp_path):
    good = write_config(tmp_path, FORWARD)
    bad = copy.deepcopy(FORWARD)
    bad["sweep"] = {"groups": {"x": ["COX"]}, "dri": "x"}
    bad_path = write_config(tmp_path, bad, "bad.yaml")
    cases = [
        (["sweep", str(good), "--scenarios", "hihg", "--out", "o1"],
         ["unknown scenario 'hihg' (did you mean 'high'?)"]),
        (["sweep", str(bad_path), "--out", "o2"],
         ["sweep.groups.x.0", "'COX' is not an ISO 3166-1 alpha-3", "unknown key 'dri'"]),
        (["sweep", str(good), "--workers", "2", "--scheduler", "tcp://127.0.0.1:1",
          "--out", "o3"], ["cannot be combined with --scheduler"]),
    ]
    with ThreadPoolExecutor(len(cases)) as pool:
        procs = list(pool.map(lambda c: iff(*c[0], cwd=tmp_path), cases))
    for (args, expect), proc in zip(cases, procs, strict=True):
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        for fragment in expect:
            assert fragment in proc.stderr, (fragment, proc.stderr)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("o")]


def test_reserved_scenario_name(tmp_path):
    cfg = copy.deepcopy(FORWARD)
    cfg["scenarios"][BASE] = {}
    with pytest.raises(IffInputError, match="'base' is reserved"):
        plan_sweep(write_config(tmp_path, cfg))


@pytest.mark.slow
def test_a_failing_task_does_not_stop_the_others(tmp_path):
    """A task that fails while running (here: its folder appears after planning) is reported;
    the other tasks finish and the summary holds only theirs."""
    from iff.sweep import run_sweep

    cfg = copy.deepcopy(FORWARD)
    cfg["countries"] = ["COL"]
    cfg["scenarios"]["low"] = {"markets": {"drugs": {"priors": {"throughput": {
        "between": [40_000, 60_000]}}}}}
    path = write_config(tmp_path, cfg)
    plan = plan_sweep(path, "all", tmp_path / "out")
    (tmp_path / "out" / "high").mkdir(parents=True)
    done: list[str] = []
    report = run_sweep(plan, workers=1, on_done=lambda r: done.append(r.name))
    assert sorted(done) == ["base", "high", "low"]
    assert [r.name for r in report.failed] == ["high"]
    assert "exists" in report.results["high"].message
    assert {report.results[n].status for n in ("base", "low")} == {"ok"}
    status = {t["task"]: t for t in json.loads((tmp_path / "out" / "sweep.json").read_text())
              ["tasks"]}
    assert status["high"]["status"] == "failed" and "exists" in status["high"]["message"]
    assert set(read_summary_text(tmp_path / "out" / "sweep_summary.csv")["scenario"]) == {
        "base", "low"}
