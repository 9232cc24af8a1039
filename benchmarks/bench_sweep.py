"""Benchmark: ``iff sweep`` of the demo's scenarios with 1 and with 2 local Dask workers.

The demo (NUTS with the sampler settings of configs/demo.yaml) has the base config and two
scenarios; the benchmark adds a fourth task (``low_interdiction``) so that 2 workers have 2 tasks
each. Every sweep is the real command in a fresh process, into a fresh folder, timed end to end
(cluster start-up, worker imports, sampling, writing, collecting). Each task samples its chains
one after another on one core, so 2 workers use both cores of a 2-core machine.

Order: one warm-up sweep fills the compile cache (its time is the cold figure, with both workers
compiling into one shared cache at once), then ``--repeats`` sweeps with 1 worker and with 2,
alternating, each with the warm cache. Run from the repository root::

    .venv/bin/python benchmarks/bench_sweep.py [--repeats 1] [--draws 1000 --tune 1000]

Prints a table and writes ``benchmarks/results/sweep.json`` (wall times, per-task seconds, task
count, CPU count, load average: other processes on the machine slow every figure).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs" / "demo.yaml"
OUT = REPO / "benchmarks" / "results"
IFF = str(Path(sys.executable).parent / "iff")


def bench_config(folder: Path, draws: int | None, tune: int | None) -> Path:
    """The demo with a fourth task (and optionally fewer draws); its data file is referenced
    where the demo keeps it."""
    cfg = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    if draws:
        cfg["sampler"]["draws"] = draws
    if tune is not None:
        cfg["sampler"]["tune"] = tune
    cfg["observations"]["file"] = str(DEMO.parent / cfg["observations"]["file"])
    cfg["scenarios"]["low_interdiction"] = {
        "markets": {"drugs": {"priors": {"interdiction_rate": {"between": [0.05, 0.25]}}}}}
    path = folder / "demo-sweep.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def time_sweep(config: Path, out: Path, workers: int, env: dict[str, str]) -> dict:
    start = time.perf_counter()
    proc = subprocess.run([IFF, "sweep", str(config), "--workers", str(workers), "--out",
                           str(out), "--no-progress", "--allow-unconverged"], env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    status = json.loads((out / "sweep.json").read_text(encoding="utf-8"))
    return {"workers": workers, "wall_s": round(wall, 2),
            "tasks_s": {t["task"]: t["seconds"] for t in status["tasks"]},
            "convergence": sorted({t["convergence"] for t in status["tasks"]}),
            "load_avg_1min_after": round(os.getloadavg()[0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--draws", type=int, help="draws per chain (default: the demo's)")
    ap.add_argument("--tune", type=int, help="tuning steps per chain (default: the demo's)")
    args = ap.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        config = bench_config(tmp, args.draws, args.tune)
        sampler = yaml.safe_load(config.read_text(encoding="utf-8"))["sampler"]
        env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={tmp / 'cache'}",
               "PYTHONHASHSEED": "0"}
        load_before = round(os.getloadavg()[0], 2)
        cold = time_sweep(config, tmp / "cold", 2, env)
        for i in range(args.repeats):
            for workers in (1, 2):
                runs.append(time_sweep(config, tmp / f"w{workers}-{i}", workers, env))
    best = {w: min(r["wall_s"] for r in runs if r["workers"] == w) for w in (1, 2)}
    result = {
        "benchmark": "iff sweep of configs/demo.yaml scenarios + 1 (NUTS, chains sequential "
                     "in each task; timing only: convergence is recorded, not required)",
        "tasks": len(cold["tasks_s"]),
        "sampler": {k: sampler[k] for k in ("draws", "tune", "chains", "nuts_sampler")},
        "cold_cache_2_workers": cold,
        "runs": runs,
        "best_wall_s": {f"{w}_worker{'s' if w > 1 else ''}": s for w, s in best.items()},
        "speedup_2_vs_1": round(best[1] / best[2], 2),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "load_avg_1min_before": load_before},
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "sweep.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{result['tasks']} tasks on {os.cpu_count()} CPUs")
    print(f"cold compile cache, 2 workers: {cold['wall_s']:.1f} s")
    for r in runs:
        print(f"{r['workers']} worker(s): {r['wall_s']:.1f} s  (tasks: "
              + ", ".join(f"{k} {v:.1f}" for k, v in r["tasks_s"].items()) + ")")
    print(f"speed-up 2 vs 1 worker: {result['speedup_2_vs_1']}x; written "
          f"{OUT / 'sweep.json'}")


if __name__ == "__main__":
    main()
