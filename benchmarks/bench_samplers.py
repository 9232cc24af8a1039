"""Benchmark: NUTS samplers on every market model, each measurement in a fresh process.

Run from the repository root::

    .venv/bin/python benchmarks/bench_samplers.py [--models drugs,mse] [--samplers pymc,numpyro]
        [--repeats 1] [--cores 2] [--timeout 600] [--cold] [--merge] [--out PATH]

Models (``--models``, default all): ``drugs`` (configs/demo.yaml), ``smuggling_of_migrants``
(configs/pilots/mex-2019-smuggling.yaml), ``trafficking_in_persons``
(configs/pilots/gbr-2013-trafficking.yaml, victims by MSE inside the run), ``corruption``
(configs/pilots/nga-2016-bribery.yaml), ``theft`` (configs/pilots/theft-illustrative.yaml),
``mse`` (models/mse.py alone on configs/data/mse/UKdat.csv, the settings of ``iff mse``) and
``multi_country`` (configs/multi-country-demo.yaml).

Samplers (``--samplers``, default all): ``pymc`` (PyMC's own NUTS), ``nutpie-diagonal``,
``nutpie-low-rank`` (low-rank modified mass matrix; both with nutpie's own numba compile,
``nutpie_backend: numba``), ``nutpie-cached-low-rank`` (low-rank, on the log density PyTensor
compiles and caches, ``nutpie_backend: cached``, iff/nutpie_cached.py), ``numpyro``; and
``default``, the model's
own settings (the config's ``sampler`` section as ``iff run`` uses it), measured only where they
differ from the four above (otherwise the matching measurement is reused).

Every sampler runs with the model's own draws, tune, chains, seed and target_accept, and the same
``--cores`` (default 2), in a fresh Python process (imports, compile and JIT paid honestly), with a
per-process time limit. The compile cache is ``PYTENSOR_FLAGS``'s if set, else the checkout's
``.pytensor_cache`` (warm after the first run, as for ``bin/iff``); ``--cold`` gives every process
an empty one. Figures per process:

* ``sample_s``: the sampler library's own sampling time (PyMC: its chain loop; nutpie:
  ``nutpie.sample``; numpyro: the sampler call, which includes its JIT compilation);
* ``setup_s``: the rest of ``engine.sample`` (prior draws, graph compilation, initial points,
  conversion to a DataTree, convergence checks); ``build_s`` and ``import_s`` before it;
* ``min_ess_bulk`` over all free parameters and ``flows`` (MSE: free parameters and the dark
  figure), ``max_rhat``, ``divergences``; ``ess_per_s`` = min bulk ESS / ``sample_s`` and
  ``ess_per_total_s`` = min bulk ESS / (setup + sampling);
* the 1-minute load average before and after (other processes slow every figure).

Per model, the ESS/s ratios against PyMC's NUTS and numpyro (medians over repeats), and the
verdict of the speed target -- min-ESS/s >= 2x PyMC's NUTS and >= numpyro, with R-hat <= 1.01 --
for the default settings and for the best sampler. Writes ``benchmarks/results/samplers.json``
after every measurement (a partial file survives an interruption).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from results_io import command_line, created_at, machine, write_result

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "samplers.json"
TARGET = "min-ESS/s >= 2x PyMC's NUTS and >= numpyro on the same model, R-hat <= 1.01"
RHAT_MAX = 1.01

#: model label -> config (relative to the repository root) or the MSE list table.
MODELS: dict[str, dict[str, str]] = {
    "drugs": {"config": "configs/demo.yaml"},
    "smuggling_of_migrants": {"config": "configs/pilots/mex-2019-smuggling.yaml"},
    "trafficking_in_persons": {"config": "configs/pilots/gbr-2013-trafficking.yaml"},
    "corruption": {"config": "configs/pilots/nga-2016-bribery.yaml"},
    "theft": {"config": "configs/pilots/theft-illustrative.yaml"},
    "mse": {"table": "configs/data/mse/UKdat.csv"},
    "multi_country": {"config": "configs/multi-country-demo.yaml"},
}
#: sampler label -> settings applied to the config's ``sampler`` section.
SAMPLERS: dict[str, dict[str, str]] = {
    "pymc": {"nuts_sampler": "pymc"},
    "nutpie-diagonal": {"nuts_sampler": "nutpie", "mass_matrix": "diagonal",
                        "nutpie_backend": "numba"},
    "nutpie-low-rank": {"nuts_sampler": "nutpie", "mass_matrix": "low_rank",
                        "nutpie_backend": "numba"},
    "nutpie-cached-low-rank": {"nuts_sampler": "nutpie", "mass_matrix": "low_rank",
                               "nutpie_backend": "cached"},
    "numpyro": {"nuts_sampler": "numpyro"},
}
VERSION_LIBS = ("pymc", "pytensor", "numba", "nutpie", "numpyro", "jax", "jaxlib", "arviz",
                "arviz-stats", "xarray", "numpy", "scipy")


# --------------------------------------------------------------------------------------------
# worker side: one measurement in this (fresh) process
# --------------------------------------------------------------------------------------------

def _timed_pm_sample(record: dict):
    """Wrap ``pymc.sample`` to time each call (engine.sample looks it up at call time)."""
    import pymc as pm

    original = pm.sample

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            record["pm_sample_s"] = record.get("pm_sample_s", 0.0) + time.perf_counter() - start

    pm.sample = wrapper


def _sampling_time(tree) -> float | None:
    """The library's own sampling seconds, stored by PyMC in the attrs of ``sample_stats`` (its
    own NUTS) or ``posterior`` (nutpie, numpyro)."""
    for group in ("sample_stats", "posterior"):
        if group in tree.children and tree[group].attrs.get("sampling_time") is not None:
            return float(tree[group].attrs["sampling_time"])
    return None


def _tree_depth(tree) -> float | None:
    stats = tree["sample_stats"].to_dataset() if "sample_stats" in tree.children else None
    for name in ("tree_depth", "depth"):
        if stats is not None and name in stats.data_vars:
            return round(float(stats[name].mean()), 2)
    return None


def _n_free(model) -> int:
    point = model.initial_point()
    return int(sum(point[v.name].size for v in model.value_vars))


def worker_config(config: Path, settings: dict, seed_offset: int, cores: int) -> dict:
    """Load, build and sample one config with the sampler ``settings``."""
    t0 = time.perf_counter()
    from iff.config import load_config
    from iff.engine import build_model, prepare, sample

    t_import = time.perf_counter()
    loaded = load_config(config)
    base = loaded.config.sampler
    update = {**settings, "cores": cores, "progressbar": False, "seed": base.seed + seed_offset}
    loaded.config = loaded.config.model_copy(update={"sampler": base.model_copy(update=update)})
    plan = prepare(loaded)
    if plan.method != "nuts":
        raise RuntimeError(f"{config}: method {plan.method!r}, not NUTS")
    model, _ = build_model(plan)
    record: dict = {}
    _timed_pm_sample(record)
    t_build = time.perf_counter()
    tree, conv = sample(plan, model, progressbar=False)
    t_done = time.perf_counter()
    s = loaded.config.sampler
    return _measurement((t0, t_import, t_build, t_done), record, tree, conv, model, {
        "nuts_sampler": s.nuts_sampler, "mass_matrix": s.mass_matrix,
        "nutpie_backend": s.nutpie_backend, "draws": s.draws,
        "tune": s.tune, "chains": s.chains, "cores": s.cores,
        "target_accept": s.target_accept, "seed": s.seed})


def _measurement(times: tuple[float, float, float, float], record: dict, tree, conv, model,
                 settings: dict) -> dict:
    """One worker's figures: stage seconds (start, imported, built, sampled), convergence and
    the sampler settings used."""
    t0, t_import, t_build, t_done = times
    return {
        "import_s": t_import - t0, "build_s": t_build - t_import,
        "engine_sample_s": t_done - t_build,
        "pm_sample_s": record.get("pm_sample_s"), "library_sampling_s": _sampling_time(tree),
        "min_ess_bulk": conv.min_ess_bulk, "max_rhat": conv.max_rhat,
        "divergences": conv.divergences, "worst_ess": conv.worst_ess, "worst_rhat": conv.worst_rhat,
        "converged": conv.passed, "mean_tree_depth": _tree_depth(tree), "n_free": _n_free(model),
        "settings": settings,
    }


def _mse_defaults() -> dict:
    """The settings ``iff mse`` uses (``models.mse.estimate``'s defaults)."""
    import inspect

    from iff.models.mse import estimate

    params = inspect.signature(estimate).parameters
    out = {k: params[k].default for k in ("draws", "tune", "chains", "target_accept", "seed")}
    out["nuts_sampler"] = (params["nuts_sampler"].default if "nuts_sampler" in params
                           else "pymc")
    out["mass_matrix"] = (params["mass_matrix"].default if "mass_matrix" in params
                          else "low_rank")
    out["nutpie_backend"] = "cached"  # iff mse samples nutpie via iff.nutpie_cached
    return out


def worker_mse(table_path: Path, settings: dict, seed_offset: int, cores: int) -> dict:
    """Sample the MSE model alone (as ``iff mse``) with the sampler ``settings``."""
    t0 = time.perf_counter()
    import pymc as pm

    from iff.diagnostics import check_convergence
    from iff.models.list_table import read_list_table
    from iff.models.mse import Terms, add_mse

    t_import = time.perf_counter()
    s = {**_mse_defaults(), **settings}
    s["seed"] += seed_offset
    table = read_list_table(table_path, table_path.name)
    with pm.Model() as model:
        variables = add_mse("mse", table, Terms.up_to(len(table.lists), 2))
    kwargs: dict = {}
    if s["nuts_sampler"] == "nutpie":
        kwargs["nuts"] = {"adaptation": "low_rank" if s["mass_matrix"] == "low_rank" else "diag"}
    record: dict = {}
    _timed_pm_sample(record)
    t_build = time.perf_counter()
    if s["nuts_sampler"] == "nutpie" and s["nutpie_backend"] == "cached":
        from iff.nutpie_cached import sample_nutpie_cached

        tree = sample_nutpie_cached(
            model, [*variables.free, "mse_dark_rate"], draws=s["draws"], tune=s["tune"],
            chains=s["chains"], seed=s["seed"], target_accept=s["target_accept"],
            low_rank=s["mass_matrix"] == "low_rank", progressbar=False)
    else:
        with model:
            tree = pm.sample(draws=s["draws"], tune=s["tune"], chains=s["chains"], cores=cores,
                             target_accept=s["target_accept"], random_seed=s["seed"],
                             nuts_sampler=s["nuts_sampler"], progressbar=False,
                             compute_convergence_checks=False, **kwargs)
    conv = check_convergence(tree, [*variables.free, "mse_dark_rate"])
    t_done = time.perf_counter()
    return _measurement((t0, t_import, t_build, t_done), record, tree, conv, model, {
        **{k: s[k] for k in ("nuts_sampler", "mass_matrix", "nutpie_backend", "draws", "tune",
                             "chains",
                             "target_accept", "seed")}, "cores": cores})


def worker_main(args: argparse.Namespace) -> None:
    spec = MODELS[args.worker_model]
    settings = json.loads(args.worker_settings)
    try:
        if "table" in spec:
            res = worker_mse(REPO / spec["table"], settings, args.worker_seed_offset, args.cores)
        else:
            res = worker_config(REPO / spec["config"], settings, args.worker_seed_offset,
                                args.cores)
    except Exception:  # reported to the parent as data
        res = {"error": traceback.format_exc()[-3000:]}
    Path(args.worker_result).write_text(json.dumps(res), encoding="utf-8")


# --------------------------------------------------------------------------------------------
# parent side
# --------------------------------------------------------------------------------------------

def default_settings(model: str) -> dict:
    """The model's own sampler settings (nuts_sampler, mass_matrix) as ``iff run`` uses them."""
    spec = MODELS[model]
    if "table" in spec:
        d = _mse_defaults()
    else:
        from iff.config import load_config

        d = load_config(REPO / spec["config"]).config.sampler.model_dump()
    return {"nuts_sampler": d["nuts_sampler"], "mass_matrix": d.get("mass_matrix"),
            "nutpie_backend": d.get("nutpie_backend")}


def matching_label(settings: dict) -> str | None:
    """The sampler label whose settings equal the model's default (mass matrix: nutpie only)."""
    for label, s in SAMPLERS.items():
        if s["nuts_sampler"] != settings["nuts_sampler"]:
            continue
        if s["nuts_sampler"] != "nutpie" or all(
                s.get(k) == settings.get(k) for k in ("mass_matrix", "nutpie_backend")):
            return label
    return None


def compile_env(cold_dir: Path | None) -> tuple[dict, str]:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    flags = env.get("PYTENSOR_FLAGS", "")
    if cold_dir is not None:
        flags = ",".join(f for f in [flags, f"base_compiledir={cold_dir}"] if f)
    elif "base_compiledir" not in flags:
        flags = ",".join(f for f in [flags, f"base_compiledir={REPO / '.pytensor_cache'}"] if f)
    env["PYTENSOR_FLAGS"] = flags
    return env, flags


def measure(model: str, label: str, settings: dict, rep: int, args: argparse.Namespace) -> dict:
    """One measurement in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        env, flags = compile_env(Path(tmp) / "cache" if args.cold else None)
        result_file = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--cores", str(args.cores),
               "--worker-model", model, "--worker-settings", json.dumps(settings),
               "--worker-seed-offset", str(rep), "--worker-result", str(result_file)]
        load_before = os.getloadavg()
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True,
                                  timeout=args.timeout)
            rc, err = proc.returncode, proc.stderr
        except subprocess.TimeoutExpired as e:
            rc, err = None, f"timed out after {args.timeout} s: {(e.stderr or b'')[-2000:]!r}"
        process_s = time.perf_counter() - start
        load_after = os.getloadavg()
        row = {"model": model, "sampler": label, "repeat": rep, "measured_at": created_at(),
               "process_s": round(process_s, 2),
               "load_avg_before": [round(x, 2) for x in load_before],
               "load_avg_after": [round(x, 2) for x in load_after],
               "compile_cache": "cold (empty per process)" if args.cold else flags}
        if result_file.exists():
            res = json.loads(result_file.read_text(encoding="utf-8"))
        else:
            res = {"error": f"worker exit code {rc}: {err[-3000:]}"}
    if "error" in res:
        row["error"] = res["error"]
        return row
    sample_s = res["library_sampling_s"] or res["engine_sample_s"]
    setup_s = (res["engine_sample_s"] - res["library_sampling_s"]
               if res["library_sampling_s"] else None)
    row.update({
        "sample_s": round(sample_s, 2),
        "setup_s": None if setup_s is None else round(setup_s, 2),
        "build_s": round(res["build_s"], 2), "import_s": round(res["import_s"], 2),
        "engine_sample_s": round(res["engine_sample_s"], 2),
        "pm_sample_s": None if res["pm_sample_s"] is None else round(res["pm_sample_s"], 2),
        "sample_s_source": "library sampling_time" if res["library_sampling_s"] else
        "engine.sample wall (library gave no sampling_time)",
        "min_ess_bulk": round(res["min_ess_bulk"], 1), "max_rhat": round(res["max_rhat"], 4),
        "divergences": res["divergences"], "worst_ess": res["worst_ess"],
        "worst_rhat": res["worst_rhat"], "converged": res["converged"],
        "ess_per_s": round(res["min_ess_bulk"] / sample_s, 2),
        "ess_per_total_s": round(res["min_ess_bulk"] / res["engine_sample_s"], 2),
        "mean_tree_depth": res["mean_tree_depth"], "n_free": res["n_free"],
        "settings": res["settings"],
    })
    return row


def aggregate(rows: list[dict]) -> dict:
    """Medians over repeats (max R-hat: the worst; divergences: the sum)."""
    ok = [r for r in rows if "error" not in r]
    if not ok:
        return {"error": rows[-1].get("error", "no measurement") if rows else "not measured"}

    def med(key):
        vals = [r[key] for r in ok if r.get(key) is not None]
        return round(statistics.median(vals), 2) if vals else None

    return {"repeats": len(ok), "sample_s": med("sample_s"), "setup_s": med("setup_s"),
            "build_s": med("build_s"), "min_ess_bulk": med("min_ess_bulk"),
            "max_rhat": max(r["max_rhat"] for r in ok),
            "divergences": sum(r["divergences"] for r in ok), "ess_per_s": med("ess_per_s"),
            "ess_per_total_s": med("ess_per_total_s"),
            "converged": all(r["converged"] for r in ok)}


def verdict(entry: dict, ref_pymc: dict | None, ref_numpyro: dict | None) -> dict:
    """The speed target for one sampler's aggregate against the references."""
    if "error" in entry:
        return {"verdict": "n.a.", "why": "sampler failed"}
    if not ref_pymc or "error" in ref_pymc or not ref_numpyro or "error" in ref_numpyro:
        return {"verdict": "n.a.", "why": "PyMC NUTS or numpyro not measured"}
    checks = {
        ">= 2x pymc": entry["ess_per_s"] >= 2 * ref_pymc["ess_per_s"],
        ">= numpyro": entry["ess_per_s"] >= ref_numpyro["ess_per_s"],
        "R-hat <= 1.01": entry["max_rhat"] <= RHAT_MAX,
    }
    failed = [k for k, v in checks.items() if not v]
    return {"verdict": "FAIL" if failed else "PASS", "failed": failed}


def summarize(model: str, rows: list[dict], default: dict) -> dict:
    by_label = {}
    for label in [*SAMPLERS, "default"]:
        mine = [r for r in rows if r["model"] == model and r["sampler"] == label]
        if mine:
            by_label[label] = aggregate(mine)
    pymc, numpyro = by_label.get("pymc"), by_label.get("numpyro")
    for entry in by_label.values():
        if "error" in entry:
            continue
        if pymc and "error" not in pymc:
            entry["ratio_vs_pymc"] = round(entry["ess_per_s"] / pymc["ess_per_s"], 2)
        if numpyro and "error" not in numpyro:
            entry["ratio_vs_numpyro"] = round(entry["ess_per_s"] / numpyro["ess_per_s"], 2)
    default_label = default.get("measured_as")
    default_entry = by_label.get(default_label) if default_label else None
    candidates = {k: v for k, v in by_label.items() if "error" not in v}
    passing = {k: v for k, v in candidates.items() if v["max_rhat"] <= RHAT_MAX}
    pool = passing or candidates
    best = max(pool, key=lambda k: pool[k]["ess_per_s"]) if pool else None
    return {
        "samplers": by_label,
        "default": {**default, **(verdict(default_entry, pymc, numpyro) if default_entry
                                  else {"verdict": "n.a.", "why": "default not measured"})},
        "best": {"sampler": best, "rule": "highest median ESS/s among samplers with R-hat <= "
                 "1.01 (any sampler if none)",
                 **(verdict(by_label[best], pymc, numpyro) if best else {"verdict": "n.a."})},
    }


def versions() -> dict:
    """iff's provenance versions plus the samplers' own libraries."""
    from importlib.metadata import PackageNotFoundError, version

    from iff.results import library_versions

    out = library_versions()
    for lib in VERSION_LIBS:
        if lib not in out:
            try:
                out[lib] = version(lib)
            except PackageNotFoundError:
                out[lib] = "not installed"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS),
                    help=f"comma-separated, from: {', '.join(MODELS)}")
    ap.add_argument("--samplers", default=",".join([*SAMPLERS, "default"]),
                    help=f"comma-separated, from: {', '.join(SAMPLERS)}, default")
    ap.add_argument("--repeats", type=int, default=1, help="fresh processes per sampler")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=600, help="seconds per process")
    ap.add_argument("--cold", action="store_true", help="empty compile cache per process")
    ap.add_argument("--draws", type=int, help="override every model's draws (smoke tests only)")
    ap.add_argument("--tune", type=int, help="override every model's tune (smoke tests only)")
    ap.add_argument("--merge", action="store_true",
                    help="keep the entries of an existing --out file for the models and "
                         "samplers not measured now")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--worker-model", help=argparse.SUPPRESS)
    ap.add_argument("--worker-settings", help=argparse.SUPPRESS)
    ap.add_argument("--worker-seed-offset", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--worker-result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker_model:
        worker_main(args)
        return
    models = [m for m in args.models.split(",") if m]
    labels = [s for s in args.samplers.split(",") if s]
    bad = [m for m in models if m not in MODELS] + [
        s for s in labels if s not in SAMPLERS and s != "default"]
    if bad:
        ap.error(f"unknown model or sampler: {', '.join(bad)}")

    result: dict = {
        "benchmark": "NUTS samplers on every market model (fresh process per measurement)",
        "command": command_line("bench_samplers.py"),
        "target": TARGET,
        "machine": machine(),
        "versions": versions(),
        "settings": {"cores": args.cores, "repeats": args.repeats, "timeout_s": args.timeout,
                     "compile_cache": "cold" if args.cold else "shared (warm after first use)",
                     "draws/tune/chains/seed/target_accept": "each model's own (config; MSE: "
                     "the defaults of iff mse)",
                     "overrides": {"draws": args.draws, "tune": args.tune}
                     if args.draws or args.tune else None},
        "definitions": {
            "sample_s": "the sampler library's own sampling time (numpyro: includes its JIT)",
            "setup_s": "engine.sample wall minus sample_s: prior draws, compile, init, "
                       "conversion, checks",
            "ess_per_s": "min bulk ESS over free parameters and flows / sample_s",
            "ess_per_total_s": "min bulk ESS / (setup_s + sample_s)",
            "ratios": "median ESS/s over the reference's median ESS/s",
        },
        "created_at": created_at(),
        "rows": [],
        "models": {},
    }
    if args.merge and args.out.exists():
        old = json.loads(args.out.read_text(encoding="utf-8"))
        measured_now = {lbl for lbl in labels if lbl in SAMPLERS}
        # rows kept from an earlier run say when they were measured (that run's created_at)
        result["rows"] = [{"measured_at": old.get("created_at"), **r}
                          for r in old.get("rows", [])
                          if r["model"] not in models or r["sampler"] not in measured_now]
        result["models"] = {k: v for k, v in old.get("models", {}).items() if k not in models}
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        write_result(result, args.out)

    for model in models:
        own = default_settings(model)
        match = matching_label(own)
        default = {"settings": own, "measured_as": match or "default"}
        plan = [(lbl, SAMPLERS[lbl]) for lbl in labels if lbl in SAMPLERS]
        if "default" in labels and match is None:
            plan.append(("default", {}))
        overrides = {k: v for k, v in (("draws", args.draws), ("tune", args.tune)) if v}
        for label, settings in plan:
            settings = {**settings, **overrides}
            for rep in range(args.repeats):
                row = measure(model, label, settings, rep, args)
                result["rows"].append(row)
                if "error" in row:
                    print(f"{model:24s} {label:16s} ERROR {row['error'].splitlines()[-1]}",
                          flush=True)
                else:
                    print(f"{model:24s} {label:16s} sample {row['sample_s']:7.1f} s  setup "
                          f"{row['setup_s'] or float('nan'):6.1f} s  ESS "
                          f"{row['min_ess_bulk']:7.0f}  R-hat "
                          f"{row['max_rhat']:.4f}  div {row['divergences']:3d}  ESS/s "
                          f"{row['ess_per_s']:7.1f}  load {row['load_avg_before'][0]:.1f}",
                          flush=True)
                result["models"][model] = summarize(model, result["rows"], default)
                save()
        s = result["models"].get(model)
        if s:
            print(f"{model}: default ({s['default']['measured_as']}) {s['default']['verdict']}; "
                  f"best {s['best']['sampler']} {s['best']['verdict']}", flush=True)
    save()
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
