"""Exact forward Monte Carlo from the priors, vectorised: every draw in one compiled call.

The same vectorisation evaluates deterministics (flows, values, balances) over every posterior
draw of a NUTS run at once (:func:`deterministics_from_draws`), so the sampler need not compile
and call a deterministics function per draw.

``pm.sample_prior_predictive`` calls its compiled function once per draw, and each call pays a
fixed dispatch cost (numba type checks of every argument), so it managed ~1,500 draws per second
on the demo. Here the model graph is rewritten once so that every root random variable carries a
``sample`` dim of size ``n``; everything downstream (deterministics, flows, dependent priors) is
vectorised and one call returns all draws. The prior draws put that dim last
(:mod:`iff.draws_last`: elementwise loops run over the draws innermost; multi-country demo,
``flows``, 40,000 draws: 0.68-0.74 s a call against 0.91-1.18 s with it first); a graph with an
op that module has no rule for is vectorised by PyTensor, the dim first.

The draws are exact and independent (no Markov chain): the same distribution as
``pm.sample_prior_predictive``, from a different random stream.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from pytensor.compile.mode import Mode
from pytensor.compile.ops import ViewOp
from pytensor.graph.replace import _vectorize_node, vectorize_graph
from pytensor.graph.traversal import ancestors
from pytensor.tensor.blockwise import Blockwise
from pytensor.tensor.random.basic import DirichletRV, NormalRV
from pytensor.tensor.random.op import RandomVariable

from iff import draws_last
from iff.chunked import compute_chunks
from iff.draws_last import UnsupportedGraph, vectorize_draws_last, with_unit_draw_dim
from iff.function_cache import load_or_build, outputs_digest
from iff.view_thunks import python_view_thunks

#: The C virtual machine runs the batched graph ~30x faster than the numba backend here
#: (numba measured 3,300 draws/s on the demo, CVM 95,000, machine under load), but compiling it
#: costs ~1 s with a warm cache and ~20 s with a cold one.
FORWARD_MODE = "CVM"
#: Python linker and only the rewrites a graph needs to run at all (``minimum_compile``, e.g.
#: lowering named-dim ops): nothing to compile, each op runs once on whole numpy arrays. Faster
#: in total than compiling below :data:`COMPILE_FROM_DRAWS` draws (demo, 2,000 draws: 0.7 s vs
#: 1.3 s warm). The light ``fast_compile`` rewrites cost more than they save at this size (demo
#: prior group 1.45 s with them, 0.33 s without, machine under load); results differ only in
#: the last bit of arithmetic the rewrites would have rearranged.
INTERPRETED_MODE = Mode(linker="py", optimizer="minimum_compile")
COMPILE_FROM_DRAWS = 20_000
#: Most draws computed by one call; more are drawn in several calls of one function (equal
#: chunks), which keeps every step's arrays smaller. Multi-country demo, flows only, 400,000
#: draws: 41,500 draws/s in chunks of 40,000 against 32,000 in one call (one process, medians
#: of 3); no difference on the single-country demo and three markets.
CHUNK_DRAWS = 40_000


def _mode_for(n: int) -> str | Mode:
    """Compiled C for many draws; interpreted, with no compile, for the few of a NUTS run."""
    return FORWARD_MODE if n >= COMPILE_FROM_DRAWS else INTERPRETED_MODE


def _mode_name(n: int) -> str:
    """:func:`_mode_for` in words, for cache keys (a ``Mode``'s repr is its memory address)."""
    mode = _mode_for(n)
    return mode if isinstance(mode, str) else "interpreted (py linker, minimum_compile)"


@_vectorize_node.register(ViewOp)
def _vectorize_view(op: ViewOp, node, x):
    """A view of a batched tensor is the same view, batched: not a Python-loop Blockwise.

    ``pm.Deterministic`` wraps its value in a ``ViewOp``; PyTensor's fallback would vectorise it
    into a ``Blockwise`` that loops over the batch in Python (90 % of the run time).
    """
    return op.make_node(x)


def _batch_shape(rv: pt.TensorVariable) -> list[pt.TensorVariable]:
    """The batch shape of one draw of ``rv`` as int64 scalars: constants where PyTensor knows
    them, otherwise read from its size and parameters.

    Not from ``rv.shape``: a node left in the graph for its shape would draw once more from the
    same generator (PyTensor then warns and drops the rng update). Not evaluated either: each
    ``eval`` compiles a function (1.9 s for the demo's four normal priors with an empty compile
    cache).
    """
    node = rv.owner
    _rng, size, *params = node.inputs
    batch_ndim = rv.ndim - node.op.ndim_supp
    static = rv.type.shape[:batch_ndim]
    if all(d is not None for d in static):
        return [pt.constant(d, dtype="int64") for d in static]
    return [pt.cast(s, "int64") for s in list(node.op._infer_shape(size, params))[:batch_ndim]]


def _batched(rv: pt.TensorVariable, n: int) -> pt.TensorVariable:
    """``rv`` drawn ``n`` times at once: same op and parameters, size ``(n, *batch_shape)``.

    A Dirichlet is drawn as normalised Gamma(alpha, 1) variates: numpy has no batched Dirichlet,
    and PyTensor's loops over the batch in Python (3,200 draws/s on the multi-country demo).
    """
    op = rv.owner.op
    rng, _size, *params = rv.owner.inputs
    size = pt.stack([pt.constant(n, dtype="int64"), *_batch_shape(rv)])
    if isinstance(op, DirichletRV):
        alpha = params[0]
        _next_rng, g = pt.random.gamma(
            alpha, scale=1.0, rng=rng, return_next_rng=True,
            size=pt.concatenate([size, pt.cast(alpha.shape[-1:], "int64")]))
        return g / g.sum(axis=-1, keepdims=True)
    return op.make_node(rng, size, *params).outputs[1]


def _batched_last(rv: pt.TensorVariable, n: int) -> pt.TensorVariable:
    """:func:`_batched` with the draws last: ``(*batch_shape, n)``, each parameter given a
    trailing unit dim (numpy broadcasts from the right)."""
    op = rv.owner.op
    rng, _size, *params = rv.owner.inputs
    batch = _batch_shape(rv)
    draws = pt.constant(n, dtype="int64")
    if isinstance(op, DirichletRV):
        alpha = params[0]
        size = pt.stack([*batch, pt.cast(alpha.shape[-1], "int64"), draws])
        _next_rng, g = pt.random.gamma(with_unit_draw_dim(alpha), scale=1.0, rng=rng,
                                       return_next_rng=True, size=size)
        return g / g.sum(axis=-2, keepdims=True)
    if op.ndim_supp != 0:
        raise UnsupportedGraph(f"{rv.name}: {op} has a non-scalar support")
    size = pt.stack([*batch, draws])
    return op.make_node(rng, size, *(with_unit_draw_dim(p) for p in params)).outputs[1]


class StandardNormalRV(RandomVariable):
    """Standard normal draws by numpy's ``standard_normal``: no parameters, so no broadcasting.

    ``pt.random.normal(0.0, 1.0, size)`` passes its parameters as ``(1,)`` arrays, which sends
    numpy down its broadcasting path: 0.21 s against 0.17 s per call of the multi-country demo's
    forward function at 40,000 draws (7.8 million values; PyTensor's profiler).
    """

    name = "standard_normal"
    signature = "->()"
    dtype = "float64"
    _print_name = ("StandardNormal", "\\operatorname{StandardNormal}")

    @classmethod
    def rng_fn(cls, rng: np.random.Generator, size: tuple[int, ...] | None) -> np.ndarray:
        return rng.standard_normal(size=size)


_standard_normal = StandardNormalRV()


def _batched_free_rvs(free_rvs: Sequence[pt.TensorVariable], n: int, last: bool = False
                     ) -> dict[pt.TensorVariable, pt.TensorVariable]:
    """The model's normal variables drawn ``n`` times as ``loc + scale * z``, every ``z`` a
    block of one standard normal draw, and the other root variables drawn ``n`` times.

    One call of numpy's generator for all normals, with no parameters to broadcast: on the
    multi-country demo (194 root normal values a draw, 40,000 draws) 0.17 s a call against about
    0.25 s drawing each variable with its own parameters (PyTensor's profiler). A normal whose
    ``loc`` or ``scale`` depends on other variables (e.g. smuggling's ``apprehensions_z``, 40
    values a draw) is drawn the same way, its parameters vectorised from the draws of those
    variables: numpy's ``normal`` with broadcast parameters took 0.054 s a call for those 40
    values, 34 ns each, against 15-18 ns for a standard normal. The law is the same; the stream
    of numbers is not.

    Parameters
    ----------
    free_rvs
        The model's free variables in model order (a variable after its parents).
    n
        Draws per call.
    last
        Draws last, ``(*shape, n)``, for :func:`iff.draws_last.vectorize_draws_last`; else
        first, ``(n, *shape)``, for PyTensor's :func:`vectorize_graph`.

    Returns
    -------
    dict
        ``variable -> (n, *shape)`` (or ``(*shape, n)``) replacement. Variables left out
        (non-normal variables with parents, and normals whose parents are among those) are
        vectorised from their parents.
    """
    free = set(free_rvs)
    parents = {rv: set(ancestors(rv.owner.inputs)) & free for rv in free_rvs}
    replace: dict[pt.TensorVariable, pt.TensorVariable] = {}
    normals: list[pt.TensorVariable] = []
    drawn: set[pt.TensorVariable] = set()  # variables given a replacement, parents first
    for rv in free_rvs:
        if type(rv.owner.op) is NormalRV and parents[rv] <= drawn:
            normals.append(rv)
        elif not parents[rv]:
            replace[rv] = _batched_last(rv, n) if last else _batched(rv, n)
        else:
            continue
        drawn.add(rv)
    if not normals:
        return replace
    shapes = [_batch_shape(rv) for rv in normals]
    counts = [pt.prod(pt.stack(shape)) if shape else pt.constant(1, dtype="int64")
              for shape in shapes]
    z = _standard_normal.make_node(normals[0].owner.inputs[0],
                                   pt.stack([n * pt.stack(counts).sum()])).outputs[1]
    start = pt.constant(0, dtype="int64")
    for rv, shape, count in zip(normals, shapes, counts, strict=True):
        block = z[start * n:(start + count) * n]
        if last:
            block = block.reshape((*shape, n))
            loc, scale = (_batched_like_last(param, replace, n)
                          for param in rv.owner.inputs[2:])
        else:
            block = block.reshape((n, *shape))
            loc, scale = (_batched_like(param, rv, replace) for param in rv.owner.inputs[2:])
        replace[rv] = loc + scale * block
        start = start + count
    return replace


def _batched_like(param: pt.TensorVariable, rv: pt.TensorVariable,
                  replace: dict[pt.TensorVariable, pt.TensorVariable]) -> pt.TensorVariable:
    """``param`` of ``rv`` given the batched draws in ``replace``: as is if it depends on none,
    else ``(n, *param's shape)`` with unit dims inserted after the draw dim, so that it
    broadcasts against ``(n, *rv's shape)``."""
    if not set(ancestors([param])) & set(replace):
        return param
    [batched] = vectorize_graph([param], replace=replace)
    missing = rv.ndim - param.ndim
    return pt.expand_dims(batched, tuple(range(1, 1 + missing))) if missing > 0 else batched


def _batched_like_last(param: pt.TensorVariable,
                       replace: dict[pt.TensorVariable, pt.TensorVariable], n: int
                       ) -> pt.TensorVariable:
    """:func:`_batched_like` with the draws last: ``(*param's shape, n)``, or ``param`` with a
    trailing unit dim if it depends on no draw (either broadcasts from the right)."""
    if not set(ancestors([param])) & set(replace):
        return with_unit_draw_dim(param)
    [batched] = vectorize_draws_last([param], replace, n)
    return batched


def reseed_rngs(rngs: Sequence[Any], seed: int | Sequence[int]) -> None:
    """Give each of ``rngs`` (shared random generator variables) a fresh generator, spawned
    from ``seed`` in order: numpy's SFC64 bit generator, not PyMC's PCG64.

    Random numbers take about half of a forward call (multi-country demo, ``flows``, 40,000
    draws: PyTensor's profiler), and SFC64 is numpy's fastest generator here: that call's 7.8
    million standard normals in 0.84x PCG64's time, its beta and gamma variates in 0.86-0.87x
    (``benchmarks/bench_rng.py``; 0.93x, 0.88x and 0.86x in a later run on the same machine).
    numpy's documentation (random, "Performance") calls SFC64 statistically high quality and
    very fast, the choice when speed is wanted and jumping ahead is not: the streams here are
    spawned from a ``SeedSequence``, never jumped.
    """
    children = np.random.SeedSequence(seed).spawn(len(rngs))
    for rng, child in zip(rngs, children, strict=True):
        rng.set_value(np.random.Generator(np.random.SFC64(child)), borrow=True)


def forward_draws(model: pm.Model, var_names: Sequence[str], n: int, seed: int,
                  workers: int = 1) -> dict[str, np.ndarray]:
    """Draw ``n`` joint prior samples of free variables and deterministics.

    Parameters
    ----------
    model
        A built model (observed variables are ignored).
    var_names
        Free random variables and deterministics to return.
    n
        Number of draws. More than :data:`CHUNK_DRAWS` come in equal chunks, calls of one
        compiled function.
    seed
        Random seed (same seed, same draws, whatever ``workers``).
    workers
        Processes drawing the chunks in parallel (:mod:`iff.chunked`; Linux only, elsewhere
        one). A single chunk is drawn in this process.

    Returns
    -------
    dict
        ``name -> array`` of shape ``(n, *shape of the variable)``, in the variable's own units.
        Where the function holds its draws last, each array is a view of that memory,
        ``(*shape, n)``, with the draw dim moved first: no transposing copy (multi-country demo,
        every variable, 40,000 draws: 740 MB, which the copy took about 1 s to transpose).
    """
    if n < 1:
        raise ValueError(f"forward_draws needs at least one draw, got n={n}")
    chunks = -(-n // CHUNK_DRAWS)
    size = -(-n // chunks)  # draws per call; the last call's surplus (< chunks) is dropped
    names = list(var_names)
    fn, rngs, last = _prior_function(model, names, size)

    def chunk(i: int) -> dict[str, np.ndarray]:
        # Each chunk seeded by its index alone, so that the worker count changes no number;
        # chunk 0 by ``seed`` itself, as a single call. The generators are seeded in model
        # order: PyMC's own reseeding follows a graph traversal, whose order changed between
        # two builds of the same model (same seed, other draws).
        reseed_rngs(rngs, seed if i == 0 else [seed, i])
        return _with_draw_dim(model, names, fn(), size, last)

    if chunks == 1:
        return chunk(0)
    out = compute_chunks(chunk, chunks, size, _draw_layout(model, names, fn, last), workers,
                         draws_last=last)
    return {name: value[:n] for name, value in out.items()}


def _draw_layout(model: pm.Model, names: Sequence[str], fn: Any, last: bool
                 ) -> dict[str, tuple[tuple[int, ...], np.dtype]] | None:
    """Shape of one draw and dtype of each output of ``fn`` (draws last if ``last``), from its
    static types; ``None`` if a shape is not static or an output has no draw dim (a constant)."""
    layout = {}
    # the outputs asked for come first, the generators' updates after them
    for name, var in zip(names, fn.maker.fgraph.outputs[:len(names)], strict=True):
        shape = var.type.shape
        one_draw = shape[:-1] if last else shape[1:]
        if len(shape) != model[name].ndim + 1 or any(d is None for d in one_draw):
            return None
        layout[name] = (tuple(int(d) for d in one_draw), np.dtype(var.type.dtype))
    return layout


def _prior_function(model: pm.Model, var_names: list[str], n: int
                    ) -> tuple[Any, list[Any], bool]:
    """The function returning ``n`` joint prior draws of ``var_names``, its random generators
    in the order of ``model.free_RVs``, and whether it returns the draws last (``(*shape, n)``,
    :mod:`iff.draws_last`) or first; from :mod:`iff.function_cache` when the same prior graph
    was seen before.

    On the demo (2,000 draws) the prior group took 0.8 s of a warm run with the function
    built each time and 0.5 s with it loaded from the cache (loading: 0.05-0.18 s). The key
    reads only the prior graph, so models that differ in their observations alone share the
    entry.
    """
    mode = _mode_for(n)

    def build() -> tuple[Any, list[Any], bool]:
        for rv in model.free_RVs:
            if not isinstance(rv.owner.op, RandomVariable):
                raise TypeError(f"forward Monte Carlo cannot vectorise {rv.name} "
                                f"({type(rv.owner.op).__name__})")
        wanted = [model[name] for name in var_names]
        try:
            outputs = vectorize_draws_last(
                wanted, _batched_free_rvs(model.free_RVs, n, last=True), n)
            last = True
        except UnsupportedGraph:  # an op without a draws-last rule: PyTensor's, draws first
            outputs = vectorize_graph(wanted, replace=_batched_free_rvs(model.free_RVs, n))
            last = False
        fn = _picklable(pm.pytensorf.compile([], outputs, random_seed=False, mode=mode))
        # pickled together with ``fn``, these stay the generators ``fn`` draws from
        return fn, list(dict.fromkeys(rv.owner.inputs[0] for rv in model.free_RVs)), last

    key = outputs_digest([*(model[name] for name in var_names), *model.free_RVs],
                         inspect.getsource(_prior_function) + inspect.getsource(_batched)
                         + inspect.getsource(_batched_free_rvs) + inspect.getsource(_batched_like)
                         + inspect.getsource(_batched_last)
                         + inspect.getsource(_batched_like_last)
                         + inspect.getsource(draws_last)
                         + inspect.getsource(_batch_shape)
                         + inspect.getsource(StandardNormalRV)
                         + f"n={n} mode={_mode_name(n)} names={var_names}")
    fn, rngs, last = _load_or_build(key, build)
    return _restore_loops(fn, n), rngs, last


def _load_or_build(key: str, build: Callable[[], Any]) -> Any:
    """:func:`iff.function_cache.load_or_build` with the view and shape ops linked as Python
    thunks (:mod:`iff.view_thunks`: 0.1-0.2 s less to load the multi-country demo's forward
    function, calls as fast)."""
    with python_view_thunks():
        return load_or_build(key, build)


def _picklable(fn: Any) -> Any:
    """``fn`` without the loop closures PyTensor's ``Blockwise`` ops (e.g. a batched matmul)
    keep on their nodes, which do not pickle (see :func:`_restore_loops`)."""
    for node in fn.maker.fgraph.apply_nodes:
        node.tag.__dict__.pop("gufunc", None)
    return fn


def _restore_loops(fn: Any, n: int) -> Any:
    """Make again the loop closures :func:`_picklable` dropped, as ``fn``'s linker made them.

    Left missing, ``Blockwise.perform`` would make them with compiled C even under the Python
    linker: 2 s of gcc in a run with an empty compile cache. A function loaded from the cache
    has them already (its linker made them when it was unpickled).
    """
    impl = None if isinstance(_mode_for(n), str) else "py"
    for node in fn.maker.fgraph.apply_nodes:
        if isinstance(node.op, Blockwise) and "gufunc" not in node.tag.__dict__:
            node.op.prepare_node(node, None, None, impl=impl)
    return fn


def _with_draw_dim(model: pm.Model, names: Sequence[str], outputs: Sequence, n: int,
                   last: bool = False) -> dict[str, np.ndarray]:
    """``name -> (n, ...)`` arrays; a variable that depends on no draw (e.g. fixed shares) is
    a constant that vectorising leaves without the draw dim, so it is repeated. ``last``: the
    outputs hold their draws last, and come back as views with the draw dim moved first."""
    values = {}
    for name, value in zip(names, outputs, strict=True):
        value = np.asarray(value)
        if value.ndim == model[name].ndim:
            value = np.repeat(value[None], n, axis=0)
        elif last:
            value = np.moveaxis(value, -1, 0)
        values[name] = value
    return values


def forward_dataset(model: pm.Model, chains: int, draws: int, seed: int, workers: int = 1
                    ) -> xr.Dataset:
    """Forward draws of every free variable and deterministic as a ``(chain, draw, ...)`` dataset.

    The ``chains x draws`` independent draws are split into chains only so that the results have
    the same layout as a NUTS run. ``workers``: processes drawing them (:func:`forward_draws`).
    """
    names = [v.name for v in model.free_RVs] + [d.name for d in model.deterministics]
    return _to_dataset(model, forward_draws(model, names, chains * draws, seed, workers),
                       chains, draws)


def deterministics_from_draws(model: pm.Model, posterior: xr.Dataset) -> xr.Dataset:
    """Every deterministic of ``model`` at each ``(chain, draw)`` of ``posterior``, in one call.

    Parameters
    ----------
    model
        The model that was sampled.
    posterior
        Draws of every free random variable, dims ``(chain, draw, ...)``, constrained space.

    Returns
    -------
    xr.Dataset
        The deterministics, dims ``(chain, draw, ...)``, computed from the same draws (observed
        variables take their data, as in the model's log density).
    """
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    n = chains * draws
    names = [d.name for d in model.deterministics]
    values = [posterior[rv.name].values.reshape(n, *posterior[rv.name].shape[2:]).astype(rv.dtype)
              for rv in model.free_RVs]
    fn = _deterministics_function(model, n, [v.shape[1:] for v in values])
    return _to_dataset(model, _with_draw_dim(model, names, fn(*values), n), chains, draws)


def _deterministics_function(model: pm.Model, n: int, shapes: Sequence[tuple[int, ...]]
                             ) -> Any:
    """The function of ``n`` draws of every free variable (in ``model.free_RVs`` order, each
    ``(n, *shape)`` with ``shape`` from ``shapes``) returning every deterministic at each draw;
    from :mod:`iff.function_cache` when the same graph was seen before."""
    mode = _mode_for(n)
    names = [d.name for d in model.deterministics]
    # Static shapes throughout: a reshape whose target shape is only known at run time would
    # be vectorised into a loop over the draws in Python.
    shapes = [tuple(int(d) for d in shape) for shape in shapes]
    read = set(ancestors([model[name] for name in names]))
    observed = [model.rvs_to_values[rv] for rv in model.observed_RVs if rv in read]

    def build() -> Any:
        inputs = [pt.tensor(name=rv.name, dtype=rv.dtype, shape=(n, *shape))
                  for rv, shape in zip(model.free_RVs, shapes, strict=True)]
        replace: dict[Any, Any] = dict(zip(model.free_RVs, inputs, strict=True))
        for rv in model.observed_RVs:  # a deterministic may read a measured value
            replace[rv] = model.rvs_to_values[rv]
        outputs = vectorize_graph([model[name] for name in names], replace=replace)
        return _picklable(pm.pytensorf.compile(inputs, outputs, random_seed=False, mode=mode,
                                               on_unused_input="ignore"))

    key = outputs_digest([*(model[name] for name in names), *model.free_RVs, *observed],
                         inspect.getsource(_deterministics_function)
                         + f"n={n} mode={_mode_name(n)} shapes={shapes}")
    return _restore_loops(_load_or_build(key, build), n)


def free_values_from_flat(model: pm.Model, var_names: Sequence[str],
                          layout: Sequence[tuple[str, slice, tuple[int, ...]]],
                          flat: np.ndarray) -> dict[str, np.ndarray]:
    """Free variables of ``model`` (constrained space) at each of ``n`` unconstrained points.

    Parameters
    ----------
    model
        The model sampled.
    var_names
        Free random variables to return.
    layout
        ``(value variable name, slice, shape)`` of each free variable in a point, in the order
        of ``model.free_RVs`` (as nutpie lays out its flat parameter vector).
    flat
        ``(n, n_dim)`` points in the unconstrained space (e.g. ``log`` or log-odds values).

    Returns
    -------
    dict
        ``name -> (n, *shape)`` array, in the variable's own units.
    """
    n, n_dim = flat.shape
    fn = _free_values_function(model, list(var_names), list(layout), n, n_dim)
    return dict(zip(var_names, fn(np.asarray(flat, dtype="float64")), strict=True))


def _free_values_function(model: pm.Model, var_names: list[str],
                          layout: list[tuple[str, slice, tuple[int, ...]]], n: int, n_dim: int
                          ) -> Any:
    """The function of :func:`free_values_from_flat`, from :mod:`iff.function_cache` when the
    same graph was seen before. One call for all points, interpreted: nutpie's own expand
    function, compiled with numba, took 2.7 s to compile in a run with an empty cache."""
    mode = _mode_for(n)
    bounds = [(name, int(part.start), int(part.stop), tuple(int(d) for d in shape))
              for name, part, shape in layout]
    single = model.replace_rvs_by_values([model[name] for name in var_names])

    def build() -> Any:
        flat = pt.tensor("flat", dtype="float64", shape=(n, n_dim))
        replace = {}
        for rv, (name, start, stop, shape) in zip(model.free_RVs, bounds, strict=True):
            value = model.rvs_to_values[rv]
            if value.name != name:
                raise ValueError(f"layout names {name}, the model's value variable is "
                                 f"{value.name}")
            replace[value] = flat[:, start:stop].reshape((n, *shape)).astype(value.dtype)
        outputs = vectorize_graph(single, replace=replace)
        return _picklable(pm.pytensorf.compile([flat], outputs, random_seed=False, mode=mode,
                                               on_unused_input="ignore"))

    key = outputs_digest([*single, *(model.rvs_to_values[rv] for rv in model.free_RVs)],
                         inspect.getsource(_free_values_function)
                         + f"n={n} n_dim={n_dim} mode={_mode_name(n)} layout={bounds}")
    return _restore_loops(_load_or_build(key, build), n)


def _to_dataset(model: pm.Model, values: dict[str, np.ndarray], chains: int, draws: int
                ) -> xr.Dataset:
    """``name -> (chains * draws, ...)`` arrays as a ``(chain, draw, ...)`` dataset."""
    coords = {k: list(v) for k, v in model.coords.items() if v is not None}
    data = {}
    for name, flat in values.items():
        dims = tuple(model.named_vars_to_dims.get(name, ()))
        arr = flat.reshape(chains, draws, *flat.shape[1:])
        if len(dims) != arr.ndim - 2:
            dims = tuple(f"{name}_dim_{i}" for i in range(arr.ndim - 2))
        data[name] = xr.DataArray(arr, dims=("chain", "draw", *dims),
                                  coords={d: coords[d] for d in dims if d in coords})
    ds = xr.Dataset(data)
    return ds.assign_coords(chain=np.arange(chains), draw=np.arange(draws))
