"""Compiled functions cached between processes (iff/function_cache.py): the key changes with
everything the functions depend on, a hit skips the build, a bad entry is rebuilt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pymc as pm
import pytest

from iff import function_cache
from iff.function_cache import load_or_build, model_digest
from iff.nutpie_cached import _compiled_functions


def _model(y: np.ndarray, prior_sd: float = 10.0, observed_sd: float = 1.0) -> pm.Model:
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, prior_sd, shape=2)
        scale = pm.HalfNormal("scale", 1.0)
        pm.Normal("y", mu[:, None], observed_sd * scale, observed=y)
    return model


@pytest.fixture
def cache_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(function_cache, "cache_dir", lambda: tmp_path / "iff_functions")
    return tmp_path / "iff_functions"


def test_key_is_stable_and_changes_with_data_priors_and_builder():
    y = np.arange(10.0).reshape(2, 5)
    key = model_digest(_model(y), "builder")
    assert model_digest(_model(y.copy()), "builder") == key  # rebuilt in the same process
    y_changed = y.copy()
    y_changed[1, 3] += 1e-9
    assert model_digest(_model(y_changed), "builder") != key
    assert model_digest(_model(y, prior_sd=10.5), "builder") != key
    assert model_digest(_model(y, observed_sd=2.0), "builder") != key
    assert model_digest(_model(y), "other builder") != key


_DIGEST_IN_A_NEW_PROCESS = """
import numpy as np, pymc as pm
from iff.function_cache import model_digest
with pm.Model() as model:
    mu = pm.Normal("mu", 0.0, 10.0, shape=2)
    scale = pm.HalfNormal("scale", 1.0)  # scalar: its size input is the object constant None
    pm.Normal("y", mu[:, None], scale, observed=np.arange(10.0).reshape(2, 5))
print(model_digest(model, "builder"))
"""


def test_key_is_the_same_in_another_process():
    """Object constants (``None`` sizes) entered the key as memory addresses, so every new
    process missed the cache for models with a scalar variable (the UK trafficking pilot)."""
    keys = {subprocess.run([sys.executable, "-c", _DIGEST_IN_A_NEW_PROCESS], check=True,
                           capture_output=True, text=True).stdout.strip() for _ in range(2)}
    assert len(keys) == 1 and len(keys.pop()) == 64


def test_hit_skips_the_build_and_a_broken_entry_is_rebuilt(cache_in: Path):
    calls: list[int] = []

    def build() -> dict[str, int]:
        calls.append(1)
        return {"value": 42}

    assert load_or_build("abc", build) == {"value": 42}
    assert load_or_build("abc", build) == {"value": 42}
    assert len(calls) == 1
    assert [p.name for p in cache_in.iterdir()] == ["abc.pkl"]  # no temporary file left
    (cache_in / "abc.pkl").write_bytes(b"truncated")
    assert load_or_build("abc", build) == {"value": 42}
    assert len(calls) == 2


def test_cached_functions_give_the_same_log_density(cache_in: Path):
    y = np.random.default_rng(3).normal(size=(2, 8))
    model = _model(y)
    n_dim, fresh, *_ = _compiled_functions(model, ["mu", "scale"])
    assert len(list(cache_in.glob("*.pkl"))) == 1
    n_dim_again, loaded, *_ = _compiled_functions(_model(y), ["mu", "scale"])
    assert loaded is not fresh and n_dim_again == n_dim == 3
    x = np.array([0.3, -0.2, 0.1])
    shared = [np.asarray(v.get_value()) for v in fresh.get_shared()]
    value, grad = fresh.vm.jit_fn(x, *shared)
    value_loaded, grad_loaded = loaded.vm.jit_fn(x, *shared)
    assert value == value_loaded and np.array_equal(grad, grad_loaded)
    # and both equal PyMC's own log density at that point (log-transformed scale)
    point = {"mu": x[:2], "scale_log__": x[2:3].reshape(())}
    np.testing.assert_allclose(value, model.compile_logp()(point), rtol=1e-12)
