"""Benchmark: the first load of a compiled forward function in a fresh process, with and
without g++'s ``-march`` flags kept by an earlier process (``iff/march_flags.py``).

Run from the repository root::

    .venv/bin/python benchmarks/bench_first_load.py [--rounds 4] [--out PATH]

The function: ``flows`` of the multi-country demo without observations, 40,000 draws a call
(what ``bench_forward.py`` draws in chunks), built into the function cache first. Then
``--rounds`` pairs of fresh processes, in turn: ``detect`` (this machine's flags file removed
first, so PyTensor runs g++ to detect the flags, and the process keeps them again) and ``kept``
(the file there). Each process builds the model, then times ``iff.forward._prior_function``
(load from the cache, the C modules linked) and counts the compiler runs PyTensor made. Writes
``benchmarks/results/first_load.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from bench_forward import SETUPS  # this folder is on sys.path when run as a script
from results_io import command_line, created_at, machine, write_result

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "first_load.json"
DRAWS = 40_000

PROBE = """
import json, sys, time
import pytensor.link.c.cmodule as cmodule
runs = []
popen = cmodule.subprocess_Popen
def counted(*args, **kwargs):
    runs.append(args[0][0] if args and args[0] else "?")
    return popen(*args, **kwargs)
cmodule.subprocess_Popen = counted
from iff import forward
from iff.config import load_config
from iff.engine import build_model, prepare
model, _ = build_model(prepare(load_config(sys.argv[1])))
start = time.perf_counter()
forward._prior_function(model, ["flows"], int(sys.argv[2]))
print(json.dumps({"first_load_s": round(time.perf_counter() - start, 3),
                  "compiler_runs": len(runs)}))
"""


def _config(tmp: Path) -> Path:
    """The multi-country demo without observations, as ``bench_forward.py`` draws it."""
    path = tmp / "multi-country-forward.yaml"
    path.write_text(yaml.safe_dump(SETUPS["multi_country"][1](), sort_keys=False),
                    encoding="utf-8")
    return path


def _probe(config: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, str(config), str(DRAWS)],
                         capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0:
        sys.exit(f"the probe process failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    from iff import march_flags
    from iff.results import library_versions

    entry = march_flags._entry()
    if entry is None:
        sys.exit("no CPU identity or no g++ here: iff keeps no flags, nothing to compare")
    result: dict = {
        "benchmark": "first load of a compiled forward function in a fresh process",
        "command": command_line("bench_first_load.py"),
        "definition": "seconds of iff.forward._prior_function in a fresh process (model "
                      "built): multi-country demo, flows, 40,000 draws a call, from the "
                      "function cache; detect: no kept -march flags (PyTensor runs g++), kept: "
                      "flags kept by an earlier process",
        "machine": machine(),
        "versions": library_versions(),
        "created_at": created_at(),
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(Path(tmp))
        _probe(config)  # the function into the cache (built if missing), the flags kept
        for r in range(args.rounds):
            for variant in ("detect", "kept"):
                if variant == "detect":
                    entry.unlink(missing_ok=True)
                row = {"round": r + 1, "variant": variant, **_probe(config)}
                result["runs"].append(row)
                print(f"round {r + 1} {variant:6s} {row['first_load_s']:6.3f} s, "
                      f"{row['compiler_runs']} compiler runs", flush=True)
    for variant in ("detect", "kept"):
        result[f"median_{variant}_s"] = round(statistics.median(
            r["first_load_s"] for r in result["runs"] if r["variant"] == variant), 3)
    write_result(result, args.out)
    print(f"medians: detect {result['median_detect_s']} s, kept {result['median_kept_s']} s"
          f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
