"""Benchmark: forward Monte Carlo throughput (draws of all flows per second).

Run from the repository root::

    .venv/bin/python benchmarks/bench_forward.py [--draws 4000,40000,400000] [--repeats 2]
        [--setups demo,three_markets,multi_country] [--max-gb 4] [--out PATH]

With no observation conditioning the model, the engine samples the priors exactly
(``plan.method == "forward"``). Setups, each without observations:

* ``demo``: configs/demo.yaml (drugs, COL, 4 years);
* ``three_markets``: drugs, trafficking in persons and smuggling of migrants for MEX, 2019-2020
  (the markets of tests/test_combined.py that need no observations: corruption and theft need
  exchange_rate rows, which condition the model, so the engine picks NUTS);
* ``multi_country``: configs/multi-country-demo.yaml (5 countries x 4 years, drugs and smuggling
  with partners).

For each setup: one warm-up call (draws = 4 chains x 10; its time includes building the forward
function, the compile cache state as found), then ``engine.sample`` timed for each total number of
draws (4 chains x draws/4), ``--repeats`` times (best kept). Draws per second = total draws / wall
of ``engine.sample``; the marginal rate excludes the fixed cost per call (slope between the
smallest and largest size). A size whose draws would exceed ``--max-gb`` of memory is skipped.
``flows_only``: the same sizes drawing only the ``flows`` variable (``iff.forward.forward_draws``),
so that the other variables a run stores (e.g. flows by partner, 18 MB per 1,000 draws on the
multi-country demo) are neither computed nor counted; ``flows_only_rate``: its marginal rate.
Both draw more than 40,000 draws in chunks, in as many processes as there are CPUs
(``workers``, what a run does when ``sampler.cores`` is unset).
Per setup, ``random_values_per_draw`` (elements of the free variables) and
``numpy_floor_draws_per_s``: numpy's standard normal values per second divided by it, the rate
of a forward draw of the setup in one process on this machine if each random value cost one
standard normal (beta and gamma values cost more) and nothing else were computed.
Target (issue 7): >= 100,000 draws of all flows per second. Writes
``benchmarks/results/forward.json``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import traceback
from pathlib import Path

import yaml
from results_io import command_line, created_at, machine, write_result

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "forward.json"
TARGET_DRAWS_PER_S = 100_000
CHAINS = 4
#: the markets of tests/test_combined.py that can run without observations: corruption and
#: theft need exchange_rate rows (observations), which make the engine choose NUTS.
THREE_MARKETS = {
    "drugs": {"drugs": {"cocaine": {"roles": {"MEX": "transit"}}}},
    "trafficking_in_persons": {},
    "smuggling_of_migrants": {},
}


def _without_observations(path: Path) -> dict:
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    cfg.pop("observations", None)
    cfg.pop("scenarios", None)
    cfg["sampler"]["method"] = "auto"
    return cfg


SETUPS = {
    "demo": ("configs/demo.yaml without observations (drugs, COL, 4 years)",
             lambda: _without_observations(REPO / "configs" / "demo.yaml")),
    "three_markets": ("drugs, trafficking in persons and smuggling of migrants, MEX, 2019-2020, "
                      "no observations (corruption and theft need exchange_rate rows, which are "
                      "observations: no forward run possible)",
                      lambda: {"name": "three-markets-forward", "countries": ["MEX"],
                               "years": [2019, 2020], "markets": THREE_MARKETS,
                               "sampler": {"seed": 17}}),
    "multi_country": ("configs/multi-country-demo.yaml without observations (5 countries x "
                      "4 years, drugs and smuggling with partners)",
                      lambda: _without_observations(REPO / "configs" / "multi-country-demo.yaml")),
}


def run_setup(name: str, sizes: list[int], repeats: int, max_gb: float, tmp: Path) -> dict:
    from iff.chunked import usable_cpus
    from iff.config import load_config
    from iff.engine import build_model, prepare, sample

    description, make = SETUPS[name]
    cfg = make()
    cfg["sampler"] = {**cfg.get("sampler", {}), "chains": CHAINS, "progressbar": False}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")

    def timed(draws_per_chain: int) -> tuple[float, object]:
        loaded = load_config(path)
        s = loaded.config.sampler.model_copy(update={"draws": draws_per_chain})
        loaded.config = loaded.config.model_copy(update={"sampler": s})
        plan = prepare(loaded)
        if plan.method != "forward":
            raise RuntimeError(f"{name}: the engine chose {plan.method!r}, not forward")
        model, _ = build_model(plan)
        start = time.perf_counter()
        tree, _ = sample(plan, model, progressbar=False)
        return time.perf_counter() - start, tree

    # sampler.cores is unset: a run draws its chunks in as many processes as there are CPUs
    out: dict = {"setup": name, "description": description, "chains": CHAINS,
                 "workers": usable_cpus(), "runs": []}
    warm_s, tree = timed(10)
    post = tree["posterior"].to_dataset()
    bytes_per_draw = sum(v.nbytes for v in post.data_vars.values()) / (CHAINS * 10)
    flows = post["flows"]
    out.update({"warmup_s": round(warm_s, 2), "warmup_draws": CHAINS * 10,
                "flow_values_per_draw": int(flows.size // (CHAINS * 10)),
                "variables": len(post.data_vars),
                "mb_per_1000_draws": round(bytes_per_draw * 1000 / 1e6, 2)})
    for n in sizes:
        if bytes_per_draw * n > max_gb * 1e9:
            out["runs"].append({"draws": n, "skipped": f"would need "
                                f"{bytes_per_draw * n / 1e9:.1f} GB > --max-gb {max_gb}"})
            continue
        load_before = os.getloadavg()[0]
        walls = [timed(n // CHAINS)[0] for _ in range(repeats)]
        wall = min(walls)
        rate = n / wall
        out["runs"].append({
            "draws": n, "wall_s": round(wall, 3), "walls_s": [round(w, 3) for w in walls],
            "draws_per_s": round(rate), "target": TARGET_DRAWS_PER_S,
            "verdict": "PASS" if rate >= TARGET_DRAWS_PER_S else "FAIL",
            "load_avg_before": round(load_before, 2),
            "load_avg_after": round(os.getloadavg()[0], 2)})
        print(f"{name:14s} {n:8d} draws  {wall:8.2f} s  {rate:10.0f} draws/s", flush=True)
    out["random_values_per_draw"], out["flows_only"] = _flows_only(
        path, sizes, repeats, max_gb, out["flow_values_per_draw"])
    out["flows_only_rate"] = marginal_rate(out["flows_only"])
    done = [r for r in out["runs"] if "wall_s" in r]
    out.update(marginal_rate(done))
    if done:
        largest = done[-1]
        out["headline"] = {"draws": largest["draws"], "draws_per_s": largest["draws_per_s"],
                           "verdict": largest["verdict"]}
    return out


def _flows_only(path: Path, sizes: list[int], repeats: int, max_gb: float,
                values_per_draw: int) -> tuple[int, list[dict]]:
    """Random values per draw, and draws per second of ``flows`` alone (every market's flows,
    nothing else returned)."""
    from iff.chunked import usable_cpus
    from iff.config import load_config
    from iff.engine import build_model, prepare
    from iff.forward import forward_draws

    model, _ = build_model(prepare(load_config(path)))
    runs = []
    for n in sizes:
        if 8 * values_per_draw * n > max_gb * 1e9:
            continue
        walls = []
        for _ in range(repeats):
            start = time.perf_counter()
            forward_draws(model, ["flows"], n, seed=1, workers=usable_cpus())
            walls.append(time.perf_counter() - start)
        rate = n / min(walls)
        runs.append({"draws": n, "wall_s": round(min(walls), 3), "draws_per_s": round(rate),
                     "verdict": "PASS" if rate >= TARGET_DRAWS_PER_S else "FAIL"})
        print(f"{'  flows only':14s} {n:8d} draws  {min(walls):8.2f} s  {rate:10.0f} draws/s",
              flush=True)
    return random_values_per_draw(model), runs


def marginal_rate(runs: list[dict]) -> dict:
    """Draws per second net of the fixed cost of a call (loading the function, starting the
    worker processes): the slope between the smallest and the largest size timed."""
    if len(runs) < 2:
        return {}
    a, b = runs[0], runs[-1]
    slope = (b["wall_s"] - a["wall_s"]) / (b["draws"] - a["draws"])
    return {"marginal_draws_per_s": round(1 / slope) if slope > 0 else None,
            "marginal_verdict": ("PASS" if slope <= 0 or 1 / slope >= TARGET_DRAWS_PER_S
                                 else "FAIL"),
            "fixed_cost_s": round(a["wall_s"] - slope * a["draws"], 3)}


def random_values_per_draw(model) -> int:
    """How many random numbers one joint prior draw of ``model`` takes (its free variables)."""
    import numpy as np

    return int(sum(np.prod(rv.shape.eval(), dtype="int64") for rv in model.free_RVs))


def numpy_normal_rate(values: int = 10_000_000, repeats: int = 3) -> float:
    """Standard normal values per second from numpy's default generator (best of repeats):
    ``rate / random values per draw`` is the draws per second of a setup if each random value
    cost one standard normal and nothing else were computed."""
    import numpy as np

    rng = np.random.default_rng(0)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        rng.standard_normal(values)
        best = min(best, time.perf_counter() - start)
    return values / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", default="4000,40000,400000",
                    help="comma-separated total draws (multiples of 4)")
    ap.add_argument("--setups", default=",".join(SETUPS))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--max-gb", type=float, default=4.0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    sizes = sorted(int(x) for x in args.draws.split(",") if x)
    setups = [s for s in args.setups.split(",") if s]
    bad = [s for s in setups if s not in SETUPS]
    if bad or any(n % CHAINS or n <= 0 for n in sizes):
        ap.error(f"unknown setup {bad} or draws not a positive multiple of {CHAINS}")
    from iff.results import library_versions

    result = {
        "benchmark": "forward Monte Carlo throughput (draws of all flows per second)",
        "command": command_line("bench_forward.py"),
        "target": f">= {TARGET_DRAWS_PER_S:,} draws of all flows per second",
        "definition": "total draws / wall of engine.sample (prior predictive of the whole model, "
                      "every variable and flows; best of repeats); headline: the largest size",
        "machine": machine(),
        "versions": library_versions(),
        "created_at": created_at(),
        "setups": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name in setups:
            try:
                result["setups"].append(run_setup(name, sizes, args.repeats, args.max_gb,
                                                  Path(tmp)))
            except Exception:  # recorded, the other setups still run
                result["setups"].append({"setup": name, "error": traceback.format_exc()[-3000:]})
                print(f"{name}: ERROR\n{result['setups'][-1]['error']}", flush=True)
    rate = numpy_normal_rate()
    result["numpy_standard_normals_per_s"] = round(rate)
    for setup in result["setups"]:
        if setup.get("random_values_per_draw"):
            setup["numpy_floor_draws_per_s"] = round(rate / setup["random_values_per_draw"])
    write_result(result, args.out)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
