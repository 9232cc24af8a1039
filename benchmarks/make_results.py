"""Generate ``benchmarks/RESULTS.md`` from every ``benchmarks/results/*.json``.

Run from the repository root::

    .venv/bin/python benchmarks/make_results.py          # write benchmarks/RESULTS.md
    .venv/bin/python benchmarks/make_results.py --check  # exit 1 if RESULTS.md is stale

One section per JSON file: the command that produced it, machine, library versions and load
average, a table, and each figure against its target (PASS / FAIL / n.a.). Known benchmarks
have their own tables; any other JSON gets a generic one. Old JSON files without a ``command``
key get theirs from :data:`COMMANDS`. The output depends only on the JSON files (no clock), so
``--check`` is exact.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
OUT = REPO / "benchmarks" / "RESULTS.md"

#: Commands of result files that do not record their own (``command`` key).
COMMANDS = {
    "demo_and_samplers.json": "python benchmarks/bench_demo_and_samplers.py --repeats 2",
    "multicountry.json": "python benchmarks/bench_multicountry.py",
    "multicountry_nutpie_low_rank.json": (
        "python benchmarks/bench_multicountry.py --sampler nutpie --mass-matrix low_rank "
        "--out benchmarks/results/multicountry_nutpie_low_rank.json"),
    "sweep.json": "python benchmarks/bench_sweep.py",
    "mse_reference.json": "python benchmarks/bench_mse.py",
    "sbc.json": "python benchmarks/bench_sbc.py",
}
#: Order of sections (others follow alphabetically).
ORDER = ["samplers.json", "forward.json", "rng.json", "first_load.json", "demo_and_samplers.json",
         "scaling.json",
         "multicountry.json", "multicountry_nutpie_low_rank.json", "sweep.json",
         "mse_reference.json", "sbc.json"]
#: Issue 7 speed targets (2 cores).
DEMO_COLD_S, DEMO_WARM_S = 30.0, 10.0
FORWARD_DRAWS_PER_S = 100_000
RHAT_MAX, ESS_MIN = 1.01, 400.0
VERSION_KEYS = ("python", "pymc", "pytensor", "numba", "nutpie", "numpyro", "jax", "arviz",
                "numpy")


def command_of(name: str, data: Any) -> str | None:
    """The command that produced a result file (its own key, else :data:`COMMANDS`)."""
    if isinstance(data, dict):
        for key in ("command", "commands"):
            if data.get(key):
                value = data[key]
                return "; ".join(value) if isinstance(value, list) else str(value)
    return COMMANDS.get(name)


def fmt(x: Any, digits: int = 2) -> str:
    """A table cell."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        if abs(x) >= 100:
            return f"{x:.1f}"
        return f"{x:.{digits}f}" if abs(x) >= 0.01 or x == 0 else f"{x:.2g}"
    if isinstance(x, int):
        return f"{x:,}" if abs(x) >= 10_000 else str(x)
    if isinstance(x, list | tuple):
        return ", ".join(fmt(v) for v in x)
    return str(x).replace("|", "\\|").replace("\n", " ")


def rhat(x: Any) -> str:
    """R-hat with 4 decimals (1.0138 must not read as 1.01)."""
    return "—" if x is None else f"{x:.4f}"


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return [*out, ""]


def pass_fail(ok: bool | None) -> str:
    return "n.a." if ok is None else ("PASS" if ok else "FAIL")


def find(data: Any, *keys: str) -> Any:
    """First present key of a dict (searched one level into nested dicts too)."""
    if not isinstance(data, dict):
        return None
    for k in keys:
        if k in data:
            return data[k]
    for v in data.values():
        if isinstance(v, dict):
            for k in keys:
                if k in v:
                    return v[k]
    return None


def machine_lines(data: dict) -> list[str]:
    """Machine, load average and versions, as far as the file records them."""
    out = []
    cpus = find(data, "cpu_count", "cpus")
    plat = find(data, "platform")
    if cpus is not None or plat:
        out.append(f"- Machine: {fmt(cpus)} CPUs" + (f", {plat}" if plat else ""))
    loads = []
    for key in ("load_avg_at_start", "load_avg_1min_before", "load_avg_at_end"):
        v = find(data, key)
        if v is not None:
            loads.append(f"{key.replace('_', ' ')}: {fmt(v)}")
    out.append("- Load average: " + ("; ".join(loads) if loads else "not recorded")
               + (" (1, 5, 15 min)" if any(isinstance(find(data, k), list) for k in
                                            ("load_avg_at_start", "load_avg_at_end")) else ""))
    versions = data.get("versions") if isinstance(data, dict) else None
    if isinstance(versions, dict):
        out.append("- Versions: " + ", ".join(f"{k} {versions[k]}" for k in VERSION_KEYS
                                                if k in versions))
    elif find(data, "python"):
        out.append(f"- Versions: python {find(data, 'python')}")
    created = find(data, "created_at")
    if created:
        out.append(f"- Measured: {created}")
    return [*out, ""]


# --------------------------------------------------------------------------------------------
# one renderer per benchmark
# --------------------------------------------------------------------------------------------

def render_samplers(data: dict) -> list[str]:
    out = [f"Target: {data.get('target')}. Each sampler in a fresh process, the model's own "
           "draws/tune/chains, cores = " + fmt(data.get("settings", {}).get("cores")) + ". "
           "`sample s`: the library's sampling time (numpyro: includes its JIT); `setup s`: "
           "the rest of `engine.sample` (prior draws, compilation, initialisation, conversion, "
           "checks); ESS/s = min bulk ESS over free parameters and flows / sample s; ratios "
           "are ESS/s over PyMC's NUTS and over numpyro. Medians over repeats. PyMC's sampling "
           "time includes starting its worker processes (cores = 2), which load the compiled "
           "functions.", ""]
    overrides = data.get("settings", {}).get("overrides")
    if overrides:
        out += [f"**Smoke settings** (draws/tune overridden: {overrides}): not a measurement.",
                ""]
    rows, verdicts = [], []
    for model, m in data.get("models", {}).items():
        for label, e in m.get("samplers", {}).items():
            if "error" in e:
                rows.append([model, label, "error", None, None, None, None, None, None, None,
                             None, "n.a."])
                continue
            rows.append([model, label, e["sample_s"], e["setup_s"], e["min_ess_bulk"],
                         rhat(e["max_rhat"]), e["divergences"], e["ess_per_s"],
                         e.get("ratio_vs_pymc"), e.get("ratio_vs_numpyro"),
                         pass_fail(e["max_rhat"] <= RHAT_MAX and e["min_ess_bulk"] >= ESS_MIN
                                   and e["divergences"] == 0),
                         _verdict_of(m, label)])
        d, b = m.get("default", {}), m.get("best", {})
        verdicts.append([model, f"{d.get('settings', {}).get('nuts_sampler')}"
                         + (f" ({d['settings'].get('mass_matrix')})"
                            if d.get("settings", {}).get("nuts_sampler") == "nutpie" else ""),
                         d.get("verdict"), ", ".join(d.get("failed", [])) or d.get("why", ""),
                         b.get("sampler"), b.get("verdict"),
                         ", ".join(b.get("failed", [])) or b.get("why", "")])
    out += table(["model", "sampler", "sample s", "setup s", "min ESS", "max R-hat", "div",
                  "ESS/s", "vs pymc", "vs numpyro", "converged (R-hat, ESS ≥ 400, no div)",
                  "speed target"], rows)
    out += ["Verdict per model (speed target) for the project's default settings and for the "
            "best sampler:", ""]
    out += table(["model", "default sampler", "default", "failed", "best sampler", "best",
                  "failed"], verdicts)
    dates: dict[str, set[str]] = {}
    for r in data.get("rows", []):
        dates.setdefault(r["model"], set()).add(
            str(r.get("measured_at") or data.get("created_at"))[:10])
    if len({d for ds in dates.values() for d in ds}) > 1:  # a merged file: say which is which
        out += ["Measured on (a merged file; the header's machine and versions are the last "
                "run's): " + "; ".join(f"{m} {', '.join(sorted(ds))}"
                                        for m, ds in dates.items()) + ".", ""]
    loads = [r["load_avg_before"][0] for r in data.get("rows", []) if "load_avg_before" in r]
    if loads:
        out += [f"1-minute load average before the measurements: {min(loads):.1f} to "
                f"{max(loads):.1f} on {fmt(find(data, 'cpu_count'))} CPUs.", ""]
    errors = [r for r in data.get("rows", []) if "error" in r]
    for r in errors:
        out.append(f"- error: {r['model']} / {r['sampler']}: "
                   f"{fmt(r['error'].strip().splitlines()[-1])}")
    return out + ([""] if errors else [])


def _verdict_of(m: dict, label: str) -> str:
    """The speed-target verdict of one sampler of a model (computed like bench_samplers)."""
    s = m.get("samplers", {})
    e, p, n = s.get(label), s.get("pymc"), s.get("numpyro")
    if not e or "error" in e or not p or "error" in p or not n or "error" in n:
        return "n.a."
    return pass_fail(e["ess_per_s"] >= 2 * p["ess_per_s"] and e["ess_per_s"] >= n["ess_per_s"]
                     and e["max_rhat"] <= RHAT_MAX)


def render_forward(data: dict) -> list[str]:
    out = [f"Target: {data.get('target')}. {data.get('definition', '')}. The marginal rate "
           "excludes the fixed cost of a call (slope between the smallest and the largest "
           "size).", ""]
    rows, summary = [], []
    for s in data.get("setups", []):
        if "error" in s:
            rows.append([s["setup"], "error", None, None, None, "n.a."])
            continue
        for r in s.get("runs", []):
            if "skipped" in r:
                rows.append([s["setup"], r["draws"], "skipped", None, None, "n.a."])
            else:
                rows.append([s["setup"], r["draws"], r["wall_s"], r["draws_per_s"],
                             r.get("load_avg_before"), r["verdict"]])
        m = s.get("marginal_draws_per_s")
        flows = s.get("flows_only_rate", {})
        fm = flows.get("marginal_draws_per_s")
        summary.append([s["setup"], s.get("workers", 1), s.get("flow_values_per_draw"),
                        s.get("random_values_per_draw"), s.get("numpy_floor_draws_per_s"),
                        s.get("warmup_s"), s.get("fixed_cost_s"), m,
                        pass_fail(None if m is None else m >= FORWARD_DRAWS_PER_S),
                        flows.get("fixed_cost_s"), fm,
                        pass_fail(None if fm is None else fm >= FORWARD_DRAWS_PER_S)])
    out += table(["setup", "draws", "wall s", "draws/s", "load (1 min)", "≥ 100,000/s"], rows)
    flows_only = [[s["setup"], r["draws"], r["wall_s"], r["draws_per_s"], r["verdict"]]
                  for s in data.get("setups", []) for r in s.get("flows_only", [])]
    if flows_only:
        out += ["Drawing `flows` alone (no other variable computed or returned):", ""]
        out += table(["setup", "draws", "wall s", "draws/s", "≥ 100,000/s"], flows_only)
    out += table(["setup", "worker processes", "flow values per draw", "random values per draw",
                  "numpy's normals alone (one process), draws/s", "first call s (warm-up)",
                  "fixed cost per call s", "marginal draws/s", "marginal ≥ 100,000/s",
                  "`flows` alone: fixed cost s", "`flows` alone: marginal draws/s",
                  "`flows` alone: marginal ≥ 100,000/s"], summary)
    if data.get("numpy_standard_normals_per_s"):
        out += [f"numpy's default generator drew {fmt(data['numpy_standard_normals_per_s'])} "
                "standard normal values per second here. \"numpy's normals alone\" divides it by "
                "the random values one draw takes: the draws per second of the setup on this "
                "machine if each value cost one normal (beta and gamma values cost more) and "
                "nothing else were computed.", ""]
    for s in data.get("setups", []):
        if "error" in s:
            out.append(f"- error: {s['setup']}: {fmt(s['error'].strip().splitlines()[-1])}")
    return [*out, ""]


def render_demo_and_samplers(data: dict) -> list[str]:
    out = [f"Model: {data.get('model')}.", ""]
    demo = data.get("demo_end_to_end")
    if demo and demo.get("load_avg_before"):
        out += [f"Load average before / after the demo runs: {demo['load_avg_before'][0]:.2f} / "
                f"{demo['load_avg_after'][0]:.2f} (1 min).", ""]
    if demo and demo.get("python_loop_s_before_after"):
        before, after = demo["python_loop_s_before_after"]
        out += [f"Machine speed: a fixed pure-Python loop took {before} s before and {after} s "
                "after the demo runs (the machine is shared: the same loop, the same code, "
                "runs at different speeds from minute to minute).", ""]
    if demo:
        statistic = demo.get("statistic", "best of the warm runs; one cold run")

        def runs(kind: str) -> str:
            return ", ".join(str(v) for v in demo.get(f"{kind}_runs_s", [])) or "n.a."

        out += [f"Value: {statistic}.", ""]
        out += table(["figure", "value s", "every run s", "target (issue 7)", "verdict"], [
            ["demo end to end, cold compile cache", demo["cold_s"], runs("cold"),
             f"≤ {DEMO_COLD_S:.0f} s", pass_fail(demo["cold_s"] <= DEMO_COLD_S)],
            ["demo end to end, warm compile cache", demo["warm_s"], runs("warm"),
             f"≤ {DEMO_WARM_S:.0f} s", pass_fail(demo["warm_s"] <= DEMO_WARM_S)]])
    rows = [[r["sampler"], r.get("repeat"), r.get("wall_s"), r.get("min_ess_bulk"),
             rhat(r.get("max_rhat")), r.get("divergences"), r.get("ess_per_s"),
             pass_fail(r.get("converged")) if "skipped" not in r else "n.a."]
            for r in data.get("samplers", [])]
    if data.get("samplers_model") and data.get("samplers_model") != data.get("model"):
        out += [f"Samplers measured on: {data['samplers_model']}.", ""]
    out += ["Samplers (wall of `engine.sample` in one process, compiled before timing; "
            "convergence: R-hat ≤ 1.01, ESS ≥ 400, no divergences):", ""]
    return out + table(["sampler", "repeat", "wall s", "min ESS", "max R-hat", "div", "ESS/s",
                        "converged"], rows)


def render_multicountry(data: dict) -> list[str]:
    run, conv = data.get("run", {}), data.get("convergence", {})
    rows = [[k, v] for k, v in run.items()]
    rows += [["build s", data.get("build_s")], ["sampling s", data.get("sample_s")],
             ["mean tree depth", data.get("mean_tree_depth")], ["inputs", data.get("inputs")]]
    if data.get("conditions"):
        rows.append(["conditions", data["conditions"]])
    out = table(["figure", "value"], rows)
    out += table(["check", "value", "target", "verdict"], [
        ["max R-hat", rhat(conv.get("max_rhat")), f"≤ {RHAT_MAX}",
         pass_fail(None if conv.get("max_rhat") is None else conv["max_rhat"] <= RHAT_MAX)],
        ["min bulk ESS", conv.get("min_ess_bulk"), f"≥ {ESS_MIN:.0f}",
         pass_fail(None if conv.get("min_ess_bulk") is None else conv["min_ess_bulk"] >= ESS_MIN)],
        ["divergences", conv.get("divergences"), "0",
         pass_fail(None if conv.get("divergences") is None else conv["divergences"] == 0)],
        ["sampling time", data.get("sample_s"), "none set", "n.a."]])
    return out


def render_scaling(data: dict) -> list[str]:
    s = data.get("settings", {})
    out = [f"Sampler {s.get('sampler')}, {s.get('chains')} chains x {s.get('draws')} draws "
           f"after {s.get('tune')} tuning steps, cores {s.get('cores')}: {s.get('note', '')}. "
           "No speed target is set for these points (n.a.); convergence is shown.", ""]
    rows = []
    for p in data.get("points", []):
        if "error" in p:
            rows.append([p["countries"], p["years"], "error"] + [None] * 8 + ["n.a."])
            continue
        rows.append([p["countries"], p["years"], p["free_parameters"], p["observations"],
                     p["build_s"], p["sample_s"], p["min_ess_bulk"], rhat(p["max_rhat"]),
                     p["divergences"], p["ess_per_s"], p.get("load_avg_before"),
                     pass_fail(p["verdict"] == "passed")])
    out += table(["countries", "years", "free params", "obs", "build s", "sample s", "min ESS",
                  "max R-hat", "div", "ESS/s", "load before", "converged"], rows)
    for p in data.get("points", []):
        if "error" in p:
            out.append(f"- error: {p['countries']} x {p['years']}: "
                       f"{fmt(p['error'].strip().splitlines()[-1])}")
    return [*out, ""]


def render_sweep(data: dict) -> list[str]:
    rows = [["cold cache", data["cold_cache_2_workers"]["workers"],
             data["cold_cache_2_workers"]["wall_s"],
             data["cold_cache_2_workers"].get("load_avg_1min_after")]]
    rows += [["warm cache", r["workers"], r["wall_s"], r.get("load_avg_1min_after")]
             for r in data.get("runs", [])]
    out = [f"{data.get('benchmark')}; {data.get('tasks')} tasks; sampler {data.get('sampler')}.",
           ""]
    out += table(["cache", "workers", "wall s", "load after (1 min)"], rows)
    return out + table(["figure", "value", "target", "verdict"], [
        ["speed-up 2 vs 1 worker", data.get("speedup_2_vs_1"), "none set", "n.a."]])


def render_mse(data: dict) -> list[str]:
    rows = [[r["table"], r["lists"], r["observed"], r["median"], f"[{fmt(r['lower'])}, "
             f"{fmt(r['upper'])}]", r["published"], pass_fail(r["median_matches_published"]),
             rhat(r["max_rhat"]), r["min_ess_bulk"], r["divergences"], pass_fail(r["converged"]),
             r["wall_s"]] for r in data.get("results", [])]
    out = [f"Seed {data.get('seed')}; 95 % equal-tailed intervals of the total population. "
           "Targets: the median within the published range; convergence.", ""]
    return out + table(["table", "lists", "observed", "median", "95 % interval", "published",
                        "median in range", "max R-hat", "min ESS", "div", "converged",
                        "wall s"], rows)


def _scalar_columns(items: list[dict], limit: int = 12) -> list[str]:
    """Scalar keys of the items, except the verdict keys (shown as the last column)."""
    cols: list[str] = []
    for it in items:
        for k, v in it.items():
            if k in ("verdict", "passed", "pass", "ok"):
                continue
            if k not in cols and (v is None or isinstance(v, str | int | float | bool)):
                cols.append(k)
    return cols[:limit]


def _verdict_cell(item: dict) -> str:
    for key in ("verdict", "passed", "pass", "ok", "converged", "covered"):
        if key in item:
            v = item[key]
            if isinstance(v, bool):
                return pass_fail(v)
            if isinstance(v, str):
                up = v.upper()
                return "PASS" if up in ("PASS", "PASSED") else "FAIL" if up in (
                    "FAIL", "FAILED") else v
    return "n.a."


def render_generic(data: Any) -> list[str]:
    """Any other JSON: a table of its per-item results (e.g. SBC per model) and its scalars."""
    out: list[str] = []
    if isinstance(data, dict):
        scalars = [[k, v] for k, v in data.items()
                   if isinstance(v, str | int | float | bool) and k not in (
                       "command", "created_at")]
        if scalars:
            out += table(["key", "value"], scalars)
        for key, value in data.items():
            items = None
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                items = value
            elif isinstance(value, dict) and value and all(isinstance(v, dict)
                                                           for v in value.values()):
                items = [{"name": k, **v} for k, v in value.items()]
            if items and key not in ("machine", "versions", "settings"):
                cols = _scalar_columns(items)
                out += [f"`{key}`:", ""]
                out += table([*cols, "verdict"], [[it.get(c) for c in cols] + [_verdict_cell(it)]
                                                  for it in items])
    elif isinstance(data, list) and data and all(isinstance(v, dict) for v in data):
        cols = _scalar_columns(data)
        out += table([*cols, "verdict"], [[it.get(c) for c in cols] + [_verdict_cell(it)]
                                          for it in data])
    return out or ["(no table: unrecognised layout)", ""]


RENDERERS = {
    "samplers.json": ("NUTS samplers on every market model", render_samplers),
    "forward.json": ("Forward Monte Carlo throughput", render_forward),
    "rng.json": ("Random number generators on one forward call's variates", render_generic),
    "first_load.json": ("First load of a compiled function in a fresh process",
                        render_generic),
    "demo_and_samplers.json": ("Demo end to end and samplers on the demo",
                               render_demo_and_samplers),
    "scaling.json": ("Scaling with countries and years", render_scaling),
    "multicountry.json": ("30-country run (PyMC NUTS)", render_multicountry),
    "multicountry_nutpie_low_rank.json": ("30-country run (nutpie, low-rank mass matrix)",
                                          render_multicountry),
    "sweep.json": ("Sweep with 1 and 2 Dask workers", render_sweep),
    "mse_reference.json": ("MSE on the reference list tables", render_mse),
    "sbc.json": ("Simulation-based calibration", render_generic),
}


def load_all(folder: Path = RESULTS) -> dict[str, Any]:
    """Every JSON result file, by name, in section order."""
    files = {p.name: p for p in folder.glob("*.json")}
    names = [n for n in ORDER if n in files] + sorted(n for n in files if n not in ORDER)
    return {n: json.loads(files[n].read_text(encoding="utf-8")) for n in names}


def generate(folder: Path = RESULTS) -> str:
    data = load_all(folder)
    lines = ["<!-- generated by benchmarks/make_results.py — do not edit -->", "",
             "# Benchmark results", "",
             "Generated by `benchmarks/make_results.py` — do not edit; change the JSON files in "
             "`benchmarks/results/` (by running the benchmarks) and regenerate with "
             "`python benchmarks/make_results.py`. `benchmarks/run_all.sh` runs every benchmark "
             "and then this script.", "",
             "Timings depend on the machine and on what else runs on it: each section gives the "
             "CPU count and the load average recorded with the measurement. A load average "
             "above the CPU count means other processes shared the cores and every time is "
             "inflated.", "",
             "Speed targets (issue 7, 2 cores): demo end to end ≤ 30 s cold and ≤ 10 s warm "
             "compile cache; on every market model min-ESS/s ≥ 2x PyMC's NUTS and ≥ numpyro "
             "with R-hat ≤ 1.01; forward Monte Carlo ≥ 100,000 draws of all flows per second.",
             "", "## Contents", ""]
    titles = {n: RENDERERS.get(n, (n.removesuffix(".json"), None))[0] for n in data}
    lines += [f"- [{titles[n]}](#{_anchor(titles[n])}) (`{n}`)" for n in data] + [""]
    for name, content in data.items():
        title, renderer = RENDERERS.get(name, (name.removesuffix(".json"), render_generic))
        cmd = command_of(name, content)
        lines += [f"## {title}", "", f"- File: `benchmarks/results/{name}`",
                  f"- Command: `{cmd}`" if cmd else "- Command: not recorded"]
        for key in ("interrupted", "conditions"):
            if isinstance(content, dict) and content.get(key):
                lines.append(f"- **{key.capitalize()}:** {fmt(content[key])}")
        lines += machine_lines(content) if isinstance(content, dict) else [""]
        lines += renderer(content)
    return "\n".join(lines).rstrip() + "\n"


def _anchor(title: str) -> str:
    keep = "".join(c for c in title.lower() if c.isalnum() or c in " -")
    return keep.replace(" ", "-")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if RESULTS.md is stale")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    text = generate(args.results)
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else None
        if current != text:
            print(f"{args.out} is stale: run python benchmarks/make_results.py",
                  file=sys.stderr)
            sys.exit(1)
        print(f"{args.out} is up to date")
        return
    args.out.write_text(text, encoding="utf-8")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
