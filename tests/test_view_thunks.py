"""View and shape ops linked as Python thunks (iff.view_thunks): same values, C elsewhere."""

from __future__ import annotations

import contextlib

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.link.c.op import COp

from iff import view_thunks
from iff.view_thunks import VIEW_OPS, python_view_thunks


def _thunk_kinds(fn) -> dict[str, set[bool]]:
    """Op type name -> {whether its thunk is compiled C} over the function's nodes."""
    kinds: dict[str, set[bool]] = {}
    for node, thunk in zip(fn.vm.nodes, fn.vm.thunks, strict=True):
        kinds.setdefault(type(node.op).__name__, set()).add(hasattr(thunk, "cthunk"))
    return kinds


def _graph():
    x = pt.matrix("x")
    return x, (pt.exp(x.T[1:]) * 2.0).reshape((-1,))


def test_view_ops_get_python_thunks_inside_the_block_and_c_outside():
    x, y = _graph()
    with python_view_thunks():
        inside = pytensor.function([x], y, mode="CVM")
    outside = pytensor.function([x], y, mode="CVM")
    kinds_in, kinds_out = _thunk_kinds(inside), _thunk_kinds(outside)
    assert kinds_in["Subtensor"] == kinds_in["DimShuffle"] == kinds_in["Reshape"] == {False}
    assert kinds_in["Elemwise"] == {True}  # arithmetic stays compiled
    assert all(kinds == {True} for kinds in kinds_out.values())
    a = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(inside(a), outside(a))
    assert COp.make_thunk is view_thunks._original


def test_pytensor_method_restored_after_an_error_and_nested_blocks():
    with pytest.raises(RuntimeError), python_view_thunks():
        with python_view_thunks():
            assert COp.make_thunk is not view_thunks._original
        assert COp.make_thunk is not view_thunks._original  # the outer block still holds
        raise RuntimeError("boom")
    assert COp.make_thunk is view_thunks._original
    assert view_thunks._depth == 0
    # the switch reaches these ops only if none overrides COp.make_thunk
    assert all(op.make_thunk is COp.make_thunk for op in VIEW_OPS)


def test_compiled_forward_function_links_views_in_python_and_draws_as_before(monkeypatch):
    """The forward function (compiled above COMPILE_FROM_DRAWS) gets Python thunks for its view
    ops, and draws what the same function with C thunks draws for the same seed."""
    import pymc as pm

    import iff.forward as forward

    with pm.Model() as model:
        a = pm.Normal("a", 0.0, 1.0, shape=(2, 3))
        pm.Deterministic("t", pt.exp(a.T[1:]).sum(axis=0))
    monkeypatch.setattr(forward, "COMPILE_FROM_DRAWS", 1)
    fn, rngs, _last = forward._prior_function(model, ["t"], 50)
    monkeypatch.setattr(forward, "python_view_thunks", contextlib.nullcontext)
    c_fn, c_rngs, _c_last = forward._prior_function(model, ["t"], 50)
    kinds, c_kinds = _thunk_kinds(fn), _thunk_kinds(c_fn)
    views = {op.__name__ for op in VIEW_OPS} & set(kinds)
    assert views, kinds  # the graph has view ops to link
    assert kinds.keys() == c_kinds.keys()
    for name in kinds:  # random variables have no C code either way
        expected = {False} if name in views else c_kinds[name]
        assert kinds[name] == expected, (name, kinds[name])
    assert all(c_kinds[name] == {True} for name in views)
    forward.reseed_rngs(rngs, 7)
    forward.reseed_rngs(c_rngs, 7)
    np.testing.assert_array_equal(fn()[0], c_fn()[0])
