"""The same config and seed give the same numbers with a cold or a warm compile cache."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytensor
import pytest

import iff  # noqa: F401  (importing iff applies iff.numerics)

ROOT = Path(__file__).resolve().parents[1]

# Log density and gradient of the demo model at fixed points, printed as hex bytes: run once
# with an empty PyTensor cache (everything compiled) and once loading the same functions from it.
_GRADIENTS = textwrap.dedent("""
    import hashlib, numpy as np
    from iff.config import load_config
    from iff.engine import build_model, prepare
    from nutpie.compile_pymc import _make_functions
    plan = prepare(load_config("configs/demo.yaml"))
    model, _ = build_model(plan)
    n_dim, _, logp_dlogp, *_ = _make_functions(
        model, mode="NUMBA", compute_grad=True, join_expanded=False, pymc_initial_point_fn=None,
        var_names=[rv.name for rv in model.free_RVs])
    shared = [np.asarray(v.get_value()) for v in logp_dlogp.get_shared()]
    points = np.random.default_rng(7).normal(scale=1.5, size=(200, n_dim))
    h = hashlib.sha256()
    for x in points:
        value, grad = logp_dlogp.vm.jit_fn(x, *shared)
        h.update(np.float64(value).tobytes() + np.asarray(grad, dtype="float64").tobytes())
    print("DIGEST", h.hexdigest())
""")


def test_importing_iff_turns_numba_fastmath_off_here_and_for_worker_processes() -> None:
    if "numba__fastmath=True" in os.environ.get("PYTENSOR_FLAGS", ""):
        pytest.skip("PYTENSOR_FLAGS turns numba__fastmath on explicitly")
    assert pytensor.config.numba__fastmath is False
    # processes started from this one (PyMC's chain workers) read it from the environment
    assert "numba__fastmath=False" in os.environ["PYTENSOR_FLAGS"]
    env = {**os.environ}
    code = "import pytensor; print(pytensor.config.numba__fastmath)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, timeout=120).stdout.strip()
    assert out == "False"


def _digest(compiledir: Path) -> str:
    env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={compiledir}",
           "PYTHONHASHSEED": "0"}
    proc = subprocess.run([sys.executable, "-c", _GRADIENTS], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return next(line.split()[1] for line in proc.stdout.splitlines()
                if line.startswith("DIGEST"))


@pytest.mark.slow
def test_log_density_gradients_are_bit_identical_with_cold_and_warm_cache(tmp_path: Path
                                                                         ) -> None:
    # With numba's fastmath the cold compile and the cached functions differed in the last bit
    # of the gradient, and NUTS turned that into a different posterior for the same seed.
    cold = _digest(tmp_path / "cache")
    warm = _digest(tmp_path / "cache")
    assert cold == warm
