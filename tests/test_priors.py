"""Prior specs: ``between`` holds the requested mass with equal tails for every support, ``fixed``
is a constant, and mixed per-element priors build one parameter array.

Checked twice: exactly with the SciPy distribution of the resolved spec, and by drawing from the
PyMC variable that :meth:`iff.build.BuildContext.parameter` adds to a model.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pymc as pm
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from iff.build import BuildContext
from iff.market import ParameterSpec
from iff.observations import ObservationTable
from iff.priors import (
    BetweenPrior,
    FixedPrior,
    Support,
    check_support,
    resolve,
    scipy_distribution,
)

MASSES = (0.5, 0.8, 0.9, 0.95, 0.99)
RANGES = {
    Support.POSITIVE: [(0.5, 2.0), (100.0, 1e6), (1e-3, 0.01), (1000.0, 1001.0)],
    Support.UNIT: [(0.05, 0.4), (0.7, 0.99), (0.002, 0.05), (0.45, 0.55), (0.001, 0.999)],
    Support.REAL: [(-1.0, 1.0), (-5.0, -2.0), (10.0, 1000.0)],
}
FAMILY = {Support.POSITIVE: "LogNormal", Support.UNIT: "Beta", Support.REAL: "Normal"}
MARKET = SimpleNamespace(name="m", structure=lambda spec: (False, False))  # unstructured
N_DRAWS = 20_000


def between(lo: float, hi: float, mass: float, support: Support) -> BetweenPrior:
    """A validated ``between`` spec (support checked as the config does)."""
    spec = BetweenPrior(between=(lo, hi), mass=mass)
    check_support(spec, support)
    return spec


def assert_holds(spec: BetweenPrior, support: Support, tol: float) -> None:
    """``mass`` inside ``[lo, hi]`` and ``(1 - mass) / 2`` in each tail, to ``tol``."""
    lo, hi = spec.between
    dist = scipy_distribution(spec, support)
    tail = (1 - spec.mass) / 2
    assert dist.cdf(hi) - dist.cdf(lo) == pytest.approx(spec.mass, abs=tol)
    assert dist.cdf(lo) == pytest.approx(tail, abs=tol)
    assert dist.sf(hi) == pytest.approx(tail, abs=tol)


def context(n: int) -> BuildContext:
    model = pm.Model(coords={"element": [f"e{i}" for i in range(n)]})
    return BuildContext(model=model, countries=[], years=[], observations=ObservationTable.empty())


def spec_of(support: Support) -> ParameterSpec:
    return ParameterSpec("x", support, "unit", ("element",), {"between": [0.1, 0.3]}, "test")


def object_grid(priors: list) -> np.ndarray:
    grid = np.empty(len(priors), dtype=object)
    grid[:] = priors
    return grid


@pytest.mark.parametrize("mass", MASSES)
@pytest.mark.parametrize(("support", "lo", "hi"),
                         [(s, lo, hi) for s, rs in RANGES.items() for lo, hi in rs])
def test_between_holds_mass_with_equal_tails(support: Support, lo: float, hi: float,
                                             mass: float) -> None:
    spec = between(lo, hi, mass, support)
    assert resolve(spec, support)[0] == FAMILY[support]
    assert_holds(spec, support, 1e-6)


@pytest.mark.parametrize("support", list(RANGES))
def test_between_holds_mass_in_pymc_draws(support: Support) -> None:
    """One vectorised variable, each element with its own range and mass."""
    elements = [(lo, hi, MASSES[i % len(MASSES)]) for i, (lo, hi) in enumerate(RANGES[support])]
    ctx = context(len(elements))
    priors = object_grid([between(lo, hi, m, support) for lo, hi, m in elements])
    with ctx.model:
        var = ctx.parameter(MARKET, spec_of(support), priors)
    draws = pm.draw(var, draws=N_DRAWS, random_seed=20260101)
    assert draws.shape == (N_DRAWS, len(elements))
    for j, (lo, hi, m) in enumerate(elements):
        x = draws[:, j]
        assert np.mean((x >= lo) & (x <= hi)) == pytest.approx(m, abs=0.01), (lo, hi, m)
        assert np.mean(x < lo) == pytest.approx((1 - m) / 2, abs=0.01), (lo, hi, m)
        assert np.mean(x > hi) == pytest.approx((1 - m) / 2, abs=0.01), (lo, hi, m)
    if support is Support.UNIT:
        assert ((draws > 0) & (draws < 1)).all()
    if support is Support.POSITIVE:
        assert (draws > 0).all()
    assert ctx.units["m_x"] == "unit"
    assert FAMILY[support] in ctx.priors_used["m_x"]


@pytest.mark.parametrize(("support", "value"),
                         [(Support.UNIT, 0.2), (Support.POSITIVE, 1500.0), (Support.REAL, -1.5)])
def test_fixed_is_a_constant(support: Support, value: float) -> None:
    ctx = context(3)
    with ctx.model:
        var = ctx.parameter(MARKET, spec_of(support), FixedPrior(fixed=value))
    assert ctx.model.free_RVs == []
    np.testing.assert_array_equal(var.eval(), np.full(3, value))
    draws = pm.draw(var, draws=5, random_seed=1)
    np.testing.assert_array_equal(draws, np.full((5, 3), value))
    assert ctx.priors_used["m_x"] == f"fixed at {value:g}"


def test_mixed_fixed_and_beta_elements() -> None:
    """Roles give some elements fixed shares and others Beta priors, in one array."""
    priors = [FixedPrior(fixed=0.0), between(0.7, 0.99, 0.9, Support.UNIT), FixedPrior(fixed=1.0),
              between(0.01, 0.3, 0.8, Support.UNIT), FixedPrior(fixed=0.0)]
    ctx = context(len(priors))
    with ctx.model:
        var = ctx.parameter(MARKET, spec_of(Support.UNIT), object_grid(priors))
    assert [rv.name for rv in ctx.model.free_RVs] == ["m_x_beta"]
    assert "m_x" in ctx.model.named_vars  # the whole array is a named deterministic
    draws = pm.draw(var, draws=N_DRAWS, random_seed=7)
    np.testing.assert_array_equal(draws[:, 0], 0.0)
    np.testing.assert_array_equal(draws[:, 2], 1.0)
    np.testing.assert_array_equal(draws[:, 4], 0.0)
    for j, (lo, hi, m) in ((1, (0.7, 0.99, 0.9)), (3, (0.01, 0.3, 0.8))):
        x = draws[:, j]
        assert np.mean((x >= lo) & (x <= hi)) == pytest.approx(m, abs=0.01)
        assert np.mean(x < lo) == pytest.approx((1 - m) / 2, abs=0.01)
    assert len(np.unique(draws[:, 1])) > N_DRAWS // 2  # random, not constant


def test_mixed_families_and_fixed_positive() -> None:
    """LogNormal (between), Gamma (dist) and fixed elements in one positive parameter."""
    from iff.build import as_prior

    priors = [between(100.0, 1000.0, 0.9, Support.POSITIVE), as_prior({"fixed": 50}),
              as_prior({"dist": "Gamma", "alpha": 2.0, "beta": 0.5})]
    ctx = context(3)
    with ctx.model:
        var = ctx.parameter(MARKET, spec_of(Support.POSITIVE), object_grid(priors))
    draws = pm.draw(var, draws=N_DRAWS, random_seed=3)
    np.testing.assert_array_equal(draws[:, 1], 50.0)
    assert np.mean((draws[:, 0] >= 100) & (draws[:, 0] <= 1000)) == pytest.approx(0.9, abs=0.01)
    assert draws[:, 2].mean() == pytest.approx(4.0, rel=0.03)  # Gamma(2, rate 0.5): mean 4


def test_all_fixed_elements_make_no_variable() -> None:
    ctx = context(2)
    with ctx.model:
        var = ctx.parameter(MARKET, spec_of(Support.UNIT),
                            object_grid([FixedPrior(fixed=0.0), FixedPrior(fixed=1.0)]))
    assert ctx.model.free_RVs == []
    np.testing.assert_array_equal(var.eval(), [0.0, 1.0])


def test_beta_fit_near_the_lower_bound() -> None:
    """A range close to 0 with high mass: the first least-squares start used to fail here."""
    spec = between(0.00011047340633339031, 0.31517382754894985, 0.9834699836624825, Support.UNIT)
    assert_holds(spec, Support.UNIT, 1e-6)


def test_default_mass_is_90_percent() -> None:
    spec = BetweenPrior(between=(0.1, 0.3))
    assert spec.mass == 0.9
    assert_holds(spec, Support.UNIT, 1e-6)


# -- properties ---------------------------------------------------------------------------------

@settings(max_examples=150, deadline=None, database=None)
@given(a=st.floats(1e-4, 1 - 1e-4), b=st.floats(1e-4, 1 - 1e-4), mass=st.floats(0.5, 0.99))
def test_beta_between_property(a: float, b: float, mass: float) -> None:
    lo, hi = min(a, b), max(a, b)
    assume(hi - lo > 1e-3 and lo > 1e-4 and hi < 1 - 1e-4)
    spec = BetweenPrior(between=(lo, hi), mass=mass)
    try:
        check_support(spec, Support.UNIT)
    except ValueError as e:  # allowed, if it says why
        assert "Beta" in str(e) and f"[{lo}, {hi}]" in str(e)
        return
    assert resolve(spec, Support.UNIT)[0] == "Beta"
    assert_holds(spec, Support.UNIT, 1e-4)


@settings(max_examples=150, deadline=None, database=None)
@given(log_lo=st.floats(-6, 9), log_ratio=st.floats(math.log10(1.001), 6),
       mass=st.floats(0.5, 0.99))
def test_positive_between_property(log_lo: float, log_ratio: float, mass: float) -> None:
    lo = 10.0**log_lo
    hi = lo * 10.0**log_ratio
    assume(hi > lo * 1.0005)
    spec = between(lo, hi, mass, Support.POSITIVE)
    assert resolve(spec, Support.POSITIVE)[0] == "LogNormal"
    assert_holds(spec, Support.POSITIVE, 1e-4)


@settings(max_examples=100, deadline=None, database=None)
@given(lo=st.floats(-1e6, 1e6), width=st.floats(1e-3, 1e6), mass=st.floats(0.5, 0.99))
def test_real_between_property(lo: float, width: float, mass: float) -> None:
    hi = lo + width
    assume(hi > lo)
    spec = between(lo, hi, mass, Support.REAL)
    assert resolve(spec, Support.REAL)[0] == "Normal"
    assert_holds(spec, Support.REAL, 1e-4)
