"""Draws-last vectorisation (iff.draws_last): the same values as PyTensor's draws-first one."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.replace import vectorize_graph

from iff.draws_last import UnsupportedGraph, vectorize_draws_last

N = 6  # draws


def _both_ways(outputs, inputs, values):
    """Evaluate ``outputs`` at ``N`` draws of ``inputs`` (``values``: ``(N, *shape)`` arrays)
    vectorised draws first (PyTensor) and draws last (iff), the latter moved back to first."""
    first_in = [pt.tensor(dtype=v.dtype, shape=(N, *v.shape[1:])) for v in values]
    first = vectorize_graph(outputs, replace=dict(zip(inputs, first_in, strict=True)))
    last = vectorize_draws_last(
        outputs, {x: pt.moveaxis(f, 0, -1) for x, f in zip(inputs, first_in, strict=True)}, N)
    got_first = pytensor.function(first_in, first, on_unused_input="ignore")(*values)
    got_last = pytensor.function(first_in, last, on_unused_input="ignore")(*values)
    return got_first, [np.moveaxis(v, -1, 0) if v.ndim == out.ndim + 1 else v
                       for v, out in zip(got_last, outputs, strict=True)]


def test_every_rule_gives_the_draws_first_values():
    rng = np.random.default_rng(0)
    a = pt.tensor("a", shape=(3, 4))      # drawn
    b = pt.tensor("b", shape=(4,))        # drawn
    c = pt.tensor("c", shape=(4, 2))      # drawn
    m = pt.constant(rng.normal(size=(4, 5)))
    v = pt.constant(rng.normal(size=(3,)))
    idx = pt.constant(np.array([2, 0, 2]))
    outputs = [
        pt.exp(a) * b + 1.0,                                   # Elemwise with broadcasting
        a.T[1:, ::-1],                                         # DimShuffle, Subtensor
        a[idx],                                                # AdvancedSubtensor, axis 0
        a[:, idx],                                             # AdvancedSubtensor, inner axis
        a[idx, idx[:3] % 4],                                   # two advanced indices
        pt.set_subtensor(a[idx[:2]], b),                       # AdvancedIncSubtensor, x drawn
        pt.inc_subtensor(pt.zeros((5, 4))[idx], b),            # ... into a draw-free array
        pt.set_subtensor(a[idx[:2]], pt.constant(np.ones(4))),  # ... draw-free values
        a.reshape((2, 6)), a.reshape((-1,)),                   # Reshape
        pt.zeros(a.shape) + a.shape[0],                        # Shape of a drawn variable
        a.sum(), a.sum(axis=-1), a.max(axis=0), a.prod(axis=(0, 1)),  # CAReduce
        pt.join(0, a, pt.ones((2, 4))), pt.join(-1, a, a),     # Join, one part draw-free
        pt.alloc(b, 3, 4),                                     # Alloc of draws
        pt.dot(a, m), pt.dot(b, m), pt.dot(v, a), pt.dot(m.T, b),  # Dot: one side drawn
        pt.dot(a, c), pt.dot(b, c), pt.dot(a, b), pt.dot(b, b),   # Dot: both drawn
        pt.specify_shape(a, (3, 4)) * 2,                       # SpecifyShape
    ]
    values = [rng.normal(size=(N, 3, 4)), rng.normal(size=(N, 4)),
              rng.normal(size=(N, 4, 2))]
    first, last = _both_ways(outputs, [a, b, c], values)
    for i, (x, y) in enumerate(zip(first, last, strict=True)):
        if y.ndim == x.ndim - 1:  # depends on no draw (a shape): left without a draw dim
            y = np.broadcast_to(y, x.shape)
        assert x.shape == y.shape, i
        np.testing.assert_allclose(y, x, rtol=1e-12, atol=1e-12, err_msg=f"output {i}")


def test_a_variable_drawn_from_drawn_parameters_follows_its_law():
    """A gamma whose shape is drawn (the random-variable rule): draws with the given shape."""
    with pm.Model() as model:
        alpha = pm.HalfNormal("alpha", 3.0, shape=2)
        pm.Gamma("g", alpha=alpha + 1.0, beta=1.0, shape=(3, 2))
    alpha_rv, g_rv = model.free_RVs
    n = 20_000
    alpha_draws = pt.constant(np.tile([[0.5], [4.0]], (1, n)))  # (2, n): draws last
    [g] = vectorize_draws_last([g_rv], {alpha_rv: alpha_draws}, n)
    values = pytensor.function([], g)()
    assert values.shape == (3, 2, n)
    # Gamma(k, 1): mean k, variance k
    np.testing.assert_allclose(values.mean(axis=(0, 2)), [1.5, 5.0], rtol=0.02)
    np.testing.assert_allclose(values.var(axis=(0, 2)), [1.5, 5.0], rtol=0.05)


def test_an_op_without_a_rule_is_refused_and_forward_draws_fall_back():
    from iff.forward import _prior_function, forward_draws

    a = pt.tensor("a", shape=(3,))
    with pytest.raises(UnsupportedGraph, match="no draws-last rule"):
        vectorize_draws_last([pt.sort(a)], {a: pt.tensor(shape=(3, N))}, N)
    with pytest.raises(UnsupportedGraph, match="depends on the draws"):
        vectorize_draws_last([pt.arange(3)[a.astype("int64")]],
                             {a: pt.tensor(shape=(3, N))}, N)

    with pm.Model() as model:
        x = pm.Normal("x", 0.0, 1.0, shape=4)
        pm.Deterministic("sorted", pt.sort(x))
        pm.Deterministic("doubled", 2 * x)
    _fn, _rngs, last = _prior_function(model, ["sorted"], 100)
    assert not last
    out = forward_draws(model, ["sorted", "x"], 100, seed=2)
    np.testing.assert_array_equal(out["sorted"], np.sort(out["x"], axis=1))
    _fn, _rngs, last = _prior_function(model, ["doubled"], 100)
    assert last
    out = forward_draws(model, ["doubled", "x"], 100, seed=2)
    # returned with the draw dim first, held as computed: draws last in memory, no copy
    assert out["doubled"].shape == (100, 4) and out["doubled"].T.flags.c_contiguous
    np.testing.assert_array_equal(out["doubled"], 2 * out["x"])


@pytest.mark.parametrize("setup", ["multi_country", "three_markets"])
def test_market_models_give_the_draws_first_values(setup, tmp_path):
    """Every free variable and deterministic of the shipped multi-country demo and of three
    markets, from the same draws of the free variables, both ways; and the forward function of
    each takes the draws-last path."""
    import sys
    from pathlib import Path

    import yaml

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_forward import SETUPS

    from iff.config import load_config
    from iff.engine import build_model, prepare
    from iff.forward import _prior_function

    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(SETUPS[setup][1](), sort_keys=False), encoding="utf-8")
    model, _ = build_model(prepare(load_config(path)))
    names = [v.name for v in model.free_RVs] + [d.name for d in model.deterministics]
    values = pm.draw(list(model.free_RVs), draws=N, random_seed=1)
    first, last = _both_ways([model[name] for name in names], list(model.free_RVs), values)
    for name, x, y in zip(names, first, last, strict=True):
        if x.ndim == model[name].ndim:  # depends on no draw: both leave it as it is
            continue
        np.testing.assert_allclose(y, x, rtol=1e-12, atol=0, err_msg=name)
    assert _prior_function(model, ["flows"], 50)[2]
