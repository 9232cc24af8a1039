"""nutpie's NUTS driven by the log density that PyTensor compiles and caches.

``pm.sample(nuts_sampler="nutpie")`` has nutpie compile its own numba ``cfunc`` of the model. numba
cannot cache those (they hold dynamic globals), so every process pays the whole compile again:
17 s on the demo with a warm cache, 35 s cold. Here nutpie's Rust sampler calls the log density
and gradient that PyTensor compiled with its numba backend, which PyTensor keeps in its compile
cache (``.pytensor_cache``), through Python callbacks. The first process for a model pays
PyTensor's graph rewrites (7.0 s on the demo, machine under load), as PyMC's own NUTS does;
later ones load the rewritten functions from :mod:`iff.function_cache` (1.0-1.2 s), and all
keep nutpie's sampler and low-rank mass matrix (on the demo about 8 leapfrog steps per draw
against PyMC's 27, for a similar minimum bulk ESS: 1,488 against 1,708 of 2,000 draws).

The price: each log-density call holds Python's global interpreter lock, so the chains run in
one sampler thread (two threads contending for the lock sampled the demo in 3.3 s, one in
2.3 s), and each call crosses from Rust into Python: on the demo about 58 us of wall time per
call (28 us inside the Python callback, the numba arithmetic included) against about 12 us with
nutpie's own backend. For a large model or a long run, ``nutpie_backend: numba`` (nutpie's own
compiled function, chains fully parallel) can finish first despite its compile.

nutpie's helpers for building these functions (``_make_functions`` and friends) are private; the
version range in pyproject.toml (nutpie 0.16.x) pins what this module was written against.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import scipy.optimize
import xarray as xr
from pymc.backends.arviz import patch_nutpie_idata
from pymc.initial_point import make_initial_point_fn

from iff.compile_helper import CompileHelper
from iff.forward import free_values_from_flat
from iff.function_cache import load_or_build, model_digest


class NonFiniteGradient(ValueError):
    """A log-density gradient with NaN or infinite entries: nutpie rejects the point (a
    divergence) instead of following the bad gradient, as its own compiled functions do."""

    is_recoverable = True  # read by nutpie's Rust side


# Name of the one array nutpie stores per draw: the flat vector of unconstrained parameters.
_FLAT = "__flat_unconstrained"

# Half-width of the uniform jitter (unconstrained space) around the mode that starts each chain.
INIT_JITTER = 0.3


def _mode(logp_dlogp: Any, x0: np.ndarray) -> np.ndarray:
    """The mode of the unconstrained log density (Jacobian included), by L-BFGS from ``x0``;
    ``x0`` where the search fails. Some hundred gradient evaluations, under a second."""

    def neg(x: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = logp_dlogp(x)
        if not (np.isfinite(value) and np.isfinite(grad).all()):
            return np.inf, np.zeros_like(x)
        return -float(value), -np.asarray(grad, dtype="float64")

    res = scipy.optimize.minimize(neg, x0, jac=True, method="L-BFGS-B",
                                  options={"maxiter": 1000})
    return res.x if np.isfinite(res.fun) and np.isfinite(res.x).all() else x0


def _values(fn: Any) -> list[np.ndarray]:
    """Current values of a compiled function's shared variables, in its argument order."""
    return [np.asarray(v.get_value(borrow=True)) for v in fn.get_shared()]


def _logp_dlogp(model: pm.Model) -> tuple[int, Any, tuple[list, list, list], list[str]]:
    """The log density and its gradient on nutpie's flat unconstrained vector, compiled with
    PyTensor's numba backend: the graph ``nutpie.compile_pymc._make_functions`` builds (same
    rewrites, same layout), without the parts this module does not use.

    ``_make_functions`` also compiles an expand function and first evaluates the shape of
    every variable with a compiled function of its own (1.4 s of a run with an empty compile
    cache); here shapes are the static ones of ``model``, whose dims and data are frozen.

    Returns
    -------
    n_dim, logp_dlogp, layout, reparameterized_names
        ``layout`` is ``(value-variable names, slices, shapes)`` of the free variables in the
        flat vector, in the order of ``model.free_RVs``.
    """
    from pymc.pytensorf import compile as compile_pymc
    from pytensor.graph import clone_replace, rewrite_graph

    value_vars = [model.rvs_to_values[rv] for rv in model.free_RVs]
    if all(d is not None for v in value_vars for d in v.type.shape):  # static once frozen
        shapes = [tuple(int(d) for d in v.type.shape) for v in value_vars]
    else:  # a shape freezing could not resolve: evaluated, as nutpie does
        from nutpie.compile_pymc import _compute_shapes

        computed = _compute_shapes(model)
        shapes = [tuple(int(d) for d in computed[v.name]) for v in value_vars]
    rewrites = ["canonicalize", "stabilize"]
    if not model.check_bounds:
        rewrites.append("local_remove_check_parameter")
    logp = rewrite_graph(model.logp(), include=rewrites)
    grad = pt.concatenate([pt.as_tensor(g, allow_xtensor_conversion=True).ravel()
                           for g in pt.grad(logp, value_vars)])
    names, slices, count = [], [], 0
    for value, shape in zip(value_vars, shapes, strict=True):
        names.append(value.name)
        slices.append(slice(count, count + math.prod(shape)))
        count += math.prod(shape)
    joined = pt.TensorType("float64", shape=(count,))(name="_unconstrained_point")
    replacements = {value: joined[part].reshape(shape).astype(rv.dtype)
                    for rv, value, part, shape in zip(model.free_RVs, value_vars, slices, shapes,
                                                      strict=True)}
    logp, grad = clone_replace([logp, grad], replacements)
    with model:
        fn = compile_pymc((joined,), (logp, grad), mode="NUMBA")
    reparameterized = [model.rvs_to_values[rv].name for rv in model.free_RVs
                       if model.rvs_to_transforms.get(rv) is not None]
    return count, fn, (names, slices, shapes), reparameterized


def _support_point(model: pm.Model) -> np.ndarray:
    """The model's support point (PyMC's default start, no jitter) as nutpie's flat
    unconstrained vector, in the order of ``model.free_RVs``.

    The expression is PyMC's (``make_initial_point_fn``), evaluated by PyTensor's Python linker
    instead of the virtual machine of PyMC's ``FAST_COMPILE``, whose C extension is compiled on
    first use (``make_initial_point_fn`` took 1.4 s of a demo run with an empty compile cache;
    nothing else in a run needs that extension). It is cached with the log density: making it
    took 0.1-0.2 s of every warm demo run, for a vector that only the model determines.
    """
    from pymc.initial_point import make_initial_point_expression
    from pymc.pytensorf import compile as compile_pymc
    from pymc.pytensorf import replace_rng_nodes

    from iff.forward import INTERPRETED_MODE

    expression = make_initial_point_expression(
        free_rvs=model.free_RVs, rvs_to_transforms=model.rvs_to_transforms,
        initval_strategies=model.rvs_to_initial_values, jitter_rvs=set(),
        default_strategy="support_point", return_transformed=True)
    values = compile_pymc([], replace_rng_nodes(expression), mode=INTERPRETED_MODE)()
    return np.concatenate([np.asarray(v, dtype="float64").ravel() for v in values])


def _compiled_functions(model: pm.Model, var_names: list[str]) -> tuple[Any, ...]:
    """nutpie's log-density-and-gradient function for ``model``, compiled with PyTensor's
    numba backend, from :mod:`iff.function_cache` when the model was seen before.

    Returns ``(n_dim, logp_dlogp, layout, reparameterized_names, support_point)``: the first
    four from :func:`_logp_dlogp`, and the model's support point as a flat unconstrained
    vector, where :func:`_mode` starts (a jittered initial-point function is made by the
    caller: it holds random generators and a closure, which do not pickle). The variables
    are computed after sampling from the flat draws (:func:`iff.forward.free_values_from_flat`).
    """
    from pymc.model.transform.optimization import freeze_dims_and_data

    def build() -> tuple[Any, ...]:
        # started first, so that the helper's imports overlap the rewrites in _logp_dlogp
        with CompileHelper() as helper:
            # Dims and data frozen into constants: with static shapes PyTensor's rewrites drop
            # the shape bookkeeping (demo: 158 -> 116 nodes), and numba's first compile, most of
            # a run with an empty cache, halves (demo: first call 46.7 s -> 24.7 s, stop 14).
            frozen = freeze_dims_and_data(model)
            # keep the model's order of free variables (freezing reorders them): the layout of
            # the flat parameter vector, and so what a seed draws, stays that of the model
            frozen.free_RVs = [frozen[rv.name] for rv in model.free_RVs]
            n_dim, logp_dlogp, layout, reparameterized = _logp_dlogp(frozen)
            support_point = _support_point(model)
            # numba compiles on the first call: here, shared with the helper process
            helper.first_call(logp_dlogp, [support_point, *_values(logp_dlogp)])
        return n_dim, logp_dlogp, layout, reparameterized, support_point

    # The key hashes the model before freezing (its shared values, data and dim lengths, are in
    # it) and the source of the code that builds the entry: an entry built by other code is
    # not reused. (One built before freezing kept the variable order had the same key and
    # other draws.)
    key = model_digest(model, inspect.getsource(_compiled_functions)
                       + inspect.getsource(_logp_dlogp) + inspect.getsource(_support_point)
                       + f"var_names={var_names}")
    return load_or_build(key, build)


def sample_nutpie_cached(model: pm.Model, var_names: Sequence[str], *, draws: int, tune: int,
                         chains: int, seed: int, target_accept: float,
                         low_rank: bool, progressbar: bool,
                         init: Literal["mode", "jittered_support_point"] = "mode"
                         ) -> xr.DataTree:
    """Sample ``model`` with nutpie on PyTensor's compiled (and cached) log density.

    Parameters
    ----------
    model
        The model to sample.
    var_names
        Free random variables to store (constrained space); deterministics are left to the
        caller (see :func:`iff.forward.deterministics_from_draws`).
    draws, tune, chains, seed, target_accept
        As in ``pm.sample``.
    low_rank
        Use nutpie's low-rank modified mass matrix (else diagonal).
    progressbar
        Show nutpie's progress bar.
    init
        Where chains start: ``"mode"`` (default), the mode of the unconstrained log density
        jittered by U(-0.3, 0.3); ``"jittered_support_point"``, PyMC's and nutpie's own start
        (the prior's support point jittered by U(-1, 1)).

    Returns
    -------
    xr.DataTree
        ``posterior`` (the ``var_names``), ``sample_stats``, ``observed_data`` and
        ``constant_data``, as ``pm.sample`` returns them for nutpie.
    """
    import nutpie
    from nutpie.compile_pymc import (
        _UNCONSTRAINED_PARAMETER,
        _prepare_dims_and_coords,
        _rv_dict_to_flat_array_wrapper,
        _wrap_with_lock,
    )
    from nutpie.compiled_pyfunc import from_pyfunc

    # Chains start near the mode, not at PyMC's support point jittered by U(-1, 1): on the UK
    # trafficking pilot (MSE) such starts lie at log densities down to -2e7 (the mode: -107);
    # 3 of 56 chains (seeds 5, 8, 20131 of 14) spent their tuning on the transient, adapted a
    # step size near zero and stayed at maximum tree depth (R-hat 1.59). From the mode with
    # U(-0.3, 0.3) jitter: 25 of 25 seeds converged, every chain at tree depth 5. The support
    # point itself is no start: symmetric parameters have an exactly zero gradient there, which
    # nutpie rejects. The price: chains start less dispersed than PyMC's, so R-hat is less able
    # to reveal a second mode (the market models have none that we know of).
    n_dim, logp_dlogp, layout, reparameterized, support_point = _compiled_functions(
        model, list(var_names))
    names, slices, shapes = layout
    # Call the numba functions PyTensor compiled directly, as nutpie's own backend does: they
    # are pure (new output arrays on every call, so chains need no lock) and skip PyTensor's
    # per-call bookkeeping. Shared variables (pm.Data) are passed as the arguments they are.
    logp_jit, logp_shared = logp_dlogp.vm.jit_fn, _values(logp_dlogp)

    def make_logp_fn():
        def logp(x: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = logp_jit(x, *logp_shared)
            # nutpie rejects a non-finite logp itself, but not a non-finite gradient
            if not np.isfinite(grad).all():
                raise NonFiniteGradient("non-finite gradient of the log density")
            return float(value), grad
        return logp

    def make_expand_fn(_seed1: Any, _seed2: Any, _chain: Any):
        # nutpie stores what this returns for every draw, warm-up included, as one Arrow
        # column per name: only the flat unconstrained vector is stored here, and the model's
        # variables are computed from it after sampling for the kept draws (_posterior_from_flat).
        # Returning every variable cost ~140 us per draw in Python alone (demo, under cProfile:
        # 0.56 s for 4,000 calls), plus nutpie's storing of 27 arrays per draw.
        def values(x: np.ndarray) -> dict[str, np.ndarray]:
            return {_FLAT: np.array(x, dtype="float64")}
        return values

    if init == "mode":
        mode = _mode(lambda x: logp_jit(x, *logp_shared), support_point.copy())

        def make_initial_point(seed: Any) -> np.ndarray:
            rng = np.random.default_rng(seed)
            return mode + rng.uniform(-INIT_JITTER, INIT_JITTER, size=mode.shape)
    else:  # PyMC's and nutpie's own start: the support point jittered by U(-1, 1)
        make_initial_point = _rv_dict_to_flat_array_wrapper(
            _wrap_with_lock(make_initial_point_fn(
                model=model, jitter_rvs=set(model.free_RVs), default_strategy="support_point",
                return_transformed=True)),
            names=names, shapes=shapes)

    dims, coords = _prepare_dims_and_coords(model, layout, reparameterized)
    compiled = from_pyfunc(
        ndim=n_dim, make_logp_fn=make_logp_fn, make_expand_fn=make_expand_fn,
        make_initial_point_fn=make_initial_point,
        expanded_dtypes=[np.dtype("float64")], expanded_shapes=[(n_dim,)],
        expanded_names=[_FLAT], dims={_FLAT: (_UNCONSTRAINED_PARAMETER,)}, coords=coords)
    start = time.time()
    idata = nutpie.sample(compiled, draws=draws, tune=max(tune, 1), chains=chains, cores=1,
                          seed=seed, save_warmup=False, progress_bar=progressbar,
                          adaptation="low_rank" if low_rank else "diag",
                          target_accept=target_accept)
    patch_nutpie_idata(idata, model, sampling_time=time.time() - start)
    flat = idata["posterior"].to_dataset()
    idata["posterior"] = _posterior_from_flat(
        model, flat, list(zip(names, slices, shapes, strict=True)), list(var_names), dims, coords)
    return idata


def _posterior_from_flat(model: pm.Model, flat: xr.Dataset,
                         layout: list[tuple[str, slice, tuple[int, ...]]], var_names: list[str],
                         dims: dict[str, Sequence[str]], coords: dict[str, Any]) -> xr.Dataset:
    """The ``var_names`` (constrained space) of every stored draw, from the flat unconstrained
    draws nutpie stored (``layout``: name, slice and shape of each free variable in them)."""
    x = flat[_FLAT].values
    n_chain, n_draw, n_dim = x.shape
    values = {name: v.reshape(n_chain, n_draw, *v.shape[1:]) for name, v in
              free_values_from_flat(model, var_names, layout, x.reshape(-1, n_dim)).items()}
    data_vars = {}
    for name, arr in values.items():
        var_dims = tuple(dims.get(name) or (f"{name}_dim_{i}" for i in range(arr.ndim - 2)))
        data_vars[name] = (("chain", "draw", *var_dims), arr)
    used = {d for _, (var_dims, _) in data_vars.items() for d in var_dims[2:]}
    return xr.Dataset(data_vars,
                      coords={"chain": flat["chain"].values, "draw": flat["draw"].values,
                              **{d: coords[d] for d in used if d in coords}},
                      attrs=flat.attrs)
