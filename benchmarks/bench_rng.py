"""Benchmark: numpy's bit generators on the random numbers a forward draw takes.

Run from the repository root::

    .venv/bin/python benchmarks/bench_rng.py [--repeats 7] [--out PATH]

Forward Monte Carlo (``iff.forward``) spends about half of each call drawing random numbers
(multi-country demo, ``flows``, 40,000 draws: PyTensor's profiler). Per bit generator, the best
of ``--repeats`` timings of the variates one such call draws, in the same sizes:

* ``standard_normal``: 7,760,000 values (194 normal values a draw x 40,000; every normal
  variable of the model comes from one block of standard normals);
* ``beta``: a (40,000, 16) array of Beta(1.21, 9.41) (parameters of one of the demo's beta
  priors, as its compiled function holds them);
* ``standard_gamma``: a (40,000, 20) array of Gamma(3) (Dirichlet partner shares are normalised
  gammas; their shapes there run from 1 to 18, 3 stands for them).

``iff.forward.reseed_rngs`` gives the forward function SFC64 generators, the fastest here; PyMC's
own default is PCG64. Writes ``benchmarks/results/rng.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from results_io import command_line, created_at, machine, write_result

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "rng.json"
GENERATORS = ("PCG64", "SFC64", "PCG64DXSM", "Philox", "MT19937")
DRAWS = 40_000
VARIATES = {
    "standard_normal": lambda g: g.standard_normal(194 * DRAWS),
    "beta": lambda g: g.beta(1.21, 9.41, size=(DRAWS, 16)),
    "standard_gamma": lambda g: g.standard_gamma(3.0, size=(DRAWS, 20)),
}


def best_ms(draw, generator: np.random.Generator, repeats: int) -> float:
    """Fastest of ``repeats`` calls of ``draw(generator)``, in milliseconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        draw(generator)
        times.append(time.perf_counter() - start)
    return round(min(times) * 1e3, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from iff.results import library_versions

    result: dict = {
        "benchmark": "numpy bit generators on one forward call's random numbers",
        "command": command_line("bench_rng.py"),
        "definition": "milliseconds, best of repeats, for the variates of one 40,000-draw call "
                      "of the multi-country demo's forward function: 7.76 million standard "
                      "normals, (40,000, 16) Beta(1.21, 9.41), (40,000, 20) Gamma(3); "
                      "relative_to_pcg64: time / PCG64's time (PyMC's default generator)",
        "machine": machine(),
        "versions": library_versions(),
        "created_at": created_at(),
        "generators": [],
    }
    for name in GENERATORS:
        generator = np.random.Generator(getattr(np.random, name)(20261201))
        row: dict = {"generator": name}
        for variate, draw in VARIATES.items():
            row[f"{variate}_ms"] = best_ms(draw, generator, args.repeats)
        result["generators"].append(row)
    base = result["generators"][0]
    for row in result["generators"]:
        for variate in VARIATES:
            row[f"{variate}_relative_to_pcg64"] = round(
                row[f"{variate}_ms"] / base[f"{variate}_ms"], 3)
        print("  ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    write_result(result, args.out)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
