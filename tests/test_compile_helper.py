"""The compile helper (iff/compile_helper.py): its node order is a topological order from the
other end, the node functions it compiles are the ones this process then loads instead of
compiling, and it never outlives its context or changes what the function computes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.fg import FunctionGraph

from iff import compile_helper
from iff.compile_helper import CompileHelper, reversed_priority_order

REPO = Path(__file__).resolve().parents[1]


def _two_chains() -> FunctionGraph:
    x = pt.vector("x")
    y = pt.vector("y")
    left = pt.exp(pt.sin(x))
    right = pt.log1p(pt.cos(y) ** 2)
    return FunctionGraph([x, y], [(left * right).sum()], clone=False)


def test_reversed_priority_order_is_topological_and_starts_from_the_other_end():
    fgraph = _two_chains()
    base = fgraph.toposort()
    order = reversed_priority_order(fgraph)
    assert sorted(map(id, order)) == sorted(map(id, base))  # every node once
    seen: set = set()
    for node in order:
        assert all(inp.owner is None or inp.owner in seen for inp in node.inputs)
        seen.add(node)
    position = {node: i for i, node in enumerate(base)}
    sources = [node for node in base if all(inp.owner is None for inp in node.inputs)]
    assert order[0] is max(sources, key=position.get)
    assert order != base


def test_no_helper_process_when_switched_off(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(compile_helper.ENV_SWITCH, "0")
    assert not compile_helper.helper_wanted()
    x = pt.vector("x")
    fn = pytensor.function([x], pt.exp(x).sum(), mode="NUMBA")
    with CompileHelper() as helper:
        assert helper._process is None
        value = helper.first_call(fn, [np.array([0.0, 1.0])])
    np.testing.assert_allclose(value, 1.0 + np.e)


def test_helper_is_stopped_on_leaving_and_values_are_unchanged(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(compile_helper, "_usable_cpus", lambda: 2)
    monkeypatch.delenv(compile_helper.ENV_SWITCH, raising=False)
    x = pt.vector("x")
    out = (pt.exp(pt.sin(x)) * pt.log1p(x**2)).sum()
    fn = pytensor.function([x], out, mode="NUMBA")
    args = [np.linspace(0.0, 2.0, 7)]
    with CompileHelper() as helper:
        process = helper._process
        assert process is not None
        value = helper.first_call(fn, args)
    assert helper._process is None and process.returncode is not None
    expected = (np.exp(np.sin(args[0])) * np.log1p(args[0] ** 2)).sum()
    np.testing.assert_allclose(value, expected, rtol=1e-12)


# Builds a small model's log density and gradient, as iff.nutpie_cached does, in a process of
# its own (the compile directory is fixed when PyTensor is imported). "payload" writes the graph
# and inputs the helper is handed; "call" compiles by calling, as the parent does.
_SCRIPT = r"""
import pickle, sys
import numpy as np
import pymc as pm
from iff.nutpie_cached import _logp_dlogp, _values
with pm.Model() as model:
    mu = pm.Normal("mu", 0.0, 10.0, shape=3)
    scale = pm.HalfNormal("scale", 1.0)
    share = pm.Beta("share", 2.0, 5.0)
    pm.Normal("y", mu * share, scale, observed=np.arange(3.0))
n_dim, fn, _, _ = _logp_dlogp(model)
args = [np.full(n_dim, 0.1), *_values(fn)]
if sys.argv[1] == "payload":
    with open(sys.argv[2], "wb") as fh:
        pickle.dump((fn.maker.fgraph, args), fh, protocol=5)
else:
    print(repr(float(fn.vm.jit_fn(*args)[0])))
"""


def test_parent_loads_the_node_functions_the_helper_compiled(tmp_path: Path):
    env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={tmp_path / 'cache'}",
           "PYTHONPATH": str(REPO)}
    script = tmp_path / "script.py"
    script.write_text(_SCRIPT)
    payload = tmp_path / "payload.pkl"
    subprocess.run([sys.executable, str(script), "payload", str(payload)], env=env, check=True)
    numba_dir = tmp_path / "cache" / "numba"

    def indexes() -> set[str]:
        return {p.name for p in numba_dir.glob("*.nbi")}

    before = indexes()
    with payload.open("rb") as stdin:  # the helper, run to completion
        subprocess.run([sys.executable, "-m", "iff.compile_helper"], stdin=stdin, env=env,
                       check=True, timeout=600)
    by_helper = indexes() - before
    assert len(by_helper) >= 5  # node functions it compiled and saved
    value = subprocess.run([sys.executable, str(script), "call"], env=env, check=True,
                           capture_output=True, text=True).stdout.strip()
    # the parent's only new entry is its own outer function (nodes visited in another order
    # than the helper's): every node function was loaded from what the helper saved
    assert len(indexes() - before - by_helper) <= 1
    assert np.isfinite(float(value))
