"""A model graph vectorised over draws with the draw dim last: ``(*shape, n)``, not first.

PyTensor's ``vectorize_graph`` puts the batch dim first, so every elementwise loop of a forward
function runs its innermost loop over a variable's own small dims (2-5 long on the
multi-country demo: years, phases, partners) and its outermost loop over the 40,000 draws.
With the draws last, every array is C-contiguous with the draws innermost: elementwise loops run
long, unit-stride inner loops, and joins, sums and reshapes move whole rows of draws.

:func:`vectorize_draws_last` rebuilds a model graph node by node from draws-last replacements of
its random variables. Each supported op has a rule that keeps the draw dim last; a graph with
any other op, or with a draw-dependent index or shape, raises :class:`UnsupportedGraph`, and the
caller falls back to ``vectorize_graph``. The rules rest on one fact: numpy and PyTensor
broadcast and index from the left for indices and from the right for broadcasting, so a trailing
draw dim is never indexed, and an operand without draws broadcasts against it once it is given a
trailing unit dim.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pytensor.tensor as pt
from pytensor.compile.ops import ViewOp
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.traversal import io_toposort
from pytensor.tensor.basic import Alloc, Join
from pytensor.tensor.elemwise import CAReduce, DimShuffle, Elemwise
from pytensor.tensor.math import Dot
from pytensor.tensor.random.op import RandomVariable
from pytensor.tensor.shape import Reshape, Shape, Shape_i, SpecifyShape
from pytensor.tensor.subtensor import AdvancedIncSubtensor, AdvancedSubtensor, Subtensor


class UnsupportedGraph(Exception):
    """The graph holds an op (or a use of one) that :func:`vectorize_draws_last` has no rule
    for; the message names it."""


def with_unit_draw_dim(x: Variable) -> Variable:
    """``x`` (no draws) with a trailing unit dim, to broadcast against ``(*shape, n)``."""
    return pt.expand_dims(x, x.ndim)


def vectorize_draws_last(outputs: Sequence[Variable], replace: Mapping[Variable, Variable],
                         n: int | Variable) -> list[Variable]:
    """``outputs`` computed from draws-last replacements of some of their ancestors.

    Parameters
    ----------
    outputs
        Variables of an unbatched model graph.
    replace
        ``variable -> (*variable's shape, n)`` tensor: the draws of each replaced variable, the
        draw dim last. Every random variable that ``outputs`` depend on must be replaced, or be
        drawn from replaced parents (scalar-support variables only).
    n
        Draws (the trailing dim's length).

    Returns
    -------
    list
        Each output as ``(*shape, n)``; an output that depends on no replaced variable is
        returned as it is, without a draw dim.

    Raises
    ------
    UnsupportedGraph
        An op without a rule here, or a shape or index that depends on the draws.
    """
    batched: dict[Variable, Variable] = dict(replace)  # graph variable -> draws-last version
    rebuilt: dict[Variable, Variable] = {}  # variable without draws, rebuilt from new inputs
    for node in io_toposort(list(replace), list(outputs)):
        if not any(v in batched for v in node.inputs):
            if any(v in rebuilt for v in node.inputs):
                new = node.clone_with_new_inputs([rebuilt.get(v, v) for v in node.inputs])
                rebuilt.update(zip(node.outputs, new.outputs, strict=True))
            continue
        rule = _rule_for(node)
        if rule is None:
            raise UnsupportedGraph(f"no draws-last rule for {node.op}")
        plain = _plain_reader(node, batched, rebuilt)
        new_outputs, into = rule(node, [batched.get(v) for v in node.inputs],
                                 [rebuilt.get(v, v) for v in node.inputs], plain, n)
        (batched if into == "batched" else rebuilt).update(
            (old, new) for old, new in zip(node.outputs, new_outputs, strict=True)
            if new is not None)
    return [batched.get(v, rebuilt.get(v, v)) for v in outputs]


def _plain_reader(node: Apply, batched: Mapping[Variable, Variable],
                  rebuilt: Mapping[Variable, Variable]) -> Callable[[Variable], Variable]:
    """Reads an input of ``node`` that must not depend on the draws (an index, a shape)."""
    def plain(v: Variable) -> Variable:
        if v in batched:
            raise UnsupportedGraph(f"{node.op}: an input other than the data depends on the "
                                   "draws")
        return rebuilt.get(v, v)
    return plain


# A rule takes (node, draws-last inputs (None where an input has no draws), inputs without
# draws (rebuilt), ``plain``: an input that must not depend on the draws, n) and returns the
# node's new outputs and whether they carry the draw dim ("batched") or not ("rebuilt").
Last = list[Variable | None]
Plain = Callable[[Variable], Variable]
Draws = int | Variable
Made = tuple[list[Variable | None], str]
Rule = Callable[[Apply, Last, list[Variable], Plain, Draws], Made]


def _last(batched: Last, plain_inputs: list[Variable]) -> list[Variable]:
    """Each input draws-last: a draw-free one with a trailing unit dim."""
    return [b if b is not None else with_unit_draw_dim(p)
            for b, p in zip(batched, plain_inputs, strict=True)]


def _elemwise(node: Apply, batched: Last, plain_inputs: list[Variable], plain: Plain,
        n: Draws) -> Made:
    # Elemwise inputs share one ndim (make_node inserted the DimShuffles), so every input,
    # draws-last or given a unit trailing dim, lines up axis by axis.
    return node.op.make_node(*_last(batched, plain_inputs)).outputs, "batched"


def _dimshuffle(node: Apply, batched: Last, plain_inputs: list[Variable], plain: Plain,
        n: Draws) -> Made:
    op = node.op
    return [batched[0].dimshuffle([*op.new_order, op.input_ndim])], "batched"


def _view(node: Apply, batched: Last, plain_inputs: list[Variable], plain: Plain,
        n: Draws) -> Made:
    return [batched[0]], "batched"


def _specify_shape(node: Apply, batched: Last, plain_inputs: list[Variable], plain: Plain,
        n: Draws) -> Made:
    shape = [plain(s) for s in node.inputs[1:]]
    return [pt.specify_shape(batched[0], [*shape, None])], "batched"


def _indexed(node: Apply, batched: Last, plain_inputs: list[Variable], plain: Plain,
        n: Draws) -> Made:
    # Subtensor and AdvancedSubtensor index the leading axes: the trailing draw dim is never
    # indexed and stays last (numpy moves only advanced-index dims to the front).
    return node.op.make_node(batched[0], *(plain(v) for v in node.inputs[1:])).outputs, \
        "batched"


def _advanced_inc(node: Apply, batched: Last, plain_inputs: list[Variable], plain: Plain,
        n: Draws) -> Made:
    x_last = batched[0]
    if x_last is None:  # writing draws into a draw-free array: one copy per draw
        base = plain_inputs[0]
        x_last = pt.alloc(with_unit_draw_dim(base), *base.shape, n)
    y_last = batched[1] if batched[1] is not None else with_unit_draw_dim(plain_inputs[1])
    return node.op.make_node(x_last, y_last, *(plain(v) for v in node.inputs[2:])).outputs, \
        "batched"


def _reshape(node: Apply, batched: Last, plain_inputs: list[Variable], plain: Plain,
        n: Draws) -> Made:
    # C order with the draws last: (a, b, n) -> (a * b, n) keeps each draw's values together
    shape = plain(node.inputs[1])
    target = pt.concatenate([pt.cast(shape, "int64"), pt.stack([pt.cast(n, "int64")])])
    return [pt.reshape(batched[0], target, ndim=node.op.ndim + 1)], "batched"


def _shape(node: Apply, batched: Last, plain_inputs: list[Variable], plain: Plain,
        n: Draws) -> Made:
    return [pt.shape(batched[0])[:-1]], "rebuilt"


def _shape_i(node: Apply, batched: Last, plain_inputs: list[Variable], plain: Plain,
        n: Draws) -> Made:
    return [node.op.make_node(batched[0]).outputs[0]], "rebuilt"


def _careduce(node: Apply, batched: Last, plain_inputs: list[Variable], plain: Plain,
        n: Draws) -> Made:
    op = node.op
    ndim = node.inputs[0].ndim
    axis = tuple(range(ndim)) if op.axis is None else tuple(a % ndim for a in op.axis)
    try:
        reduce = op.clone(axis=axis)
    except TypeError as err:  # a CAReduce whose clone takes no axis
        raise UnsupportedGraph(f"cannot move the axes of {op}") from err
    return reduce.make_node(batched[0]).outputs, "batched"


def _join(node: Apply, batched: Last, plain_inputs: list[Variable], plain: Plain,
        n: Draws) -> Made:
    # the axis (non-negative, a property of the op) indexes the leading dims: unchanged
    parts = [b if b is not None else pt.alloc(with_unit_draw_dim(p), *p.shape, n)
             for b, p in zip(batched, plain_inputs, strict=True)]
    return node.op.make_node(*parts).outputs, "batched"


def _alloc(node: Apply, batched: Last, plain_inputs: list[Variable], plain: Plain,
        n: Draws) -> Made:
    if batched[0] is None:
        raise UnsupportedGraph("Alloc with a shape that depends on the draws")
    shape = [plain(s) for s in node.inputs[1:]]
    return [pt.alloc(batched[0], *shape, n)], "batched"


def _dot(node: Apply, batched: Last, plain_inputs: list[Variable], plain: Plain,
        n: Draws) -> Made:
    x_last, y_last = batched
    x, y = plain_inputs
    if x_last is not None and y_last is not None:
        # both drawn: (*x_rest, k, 1.., n) * (1.., k, *y_rest, n), summed over k
        x_b = x_last.dimshuffle(*range(x.ndim), *["x"] * (y.ndim - 1), x.ndim)
        y_b = y_last.dimshuffle(*["x"] * (x.ndim - 1), *range(y.ndim), y.ndim)
        return [(x_b * y_b).sum(axis=x.ndim - 1)], "batched"
    if y_last is not None:  # (m, k) @ (k, p, n): one matrix product, draws last already
        return [pt.tensordot(x, y_last, axes=[[x.ndim - 1], [0]])], "batched"
    # (m, k, n) @ (k, p) as y.T @ x: (p, m, n), rows of draws kept whole, then (m, p, n)
    out = pt.tensordot(y, x_last, axes=[[0], [x.ndim - 1]])
    rest_x, rest_y = x.ndim - 1, y.ndim - 1
    order = [*range(rest_y, rest_y + rest_x), *range(rest_y), rest_y + rest_x]
    return [out.dimshuffle(order)], "batched"


def _random_variable(node: Apply, batched: Last, plain_inputs: list[Variable], plain: Plain,
        n: Draws) -> Made:
    """A scalar-support random variable with drawn parameters: ``size`` gains the draws."""
    op = node.op
    if op.ndim_supp != 0:
        raise UnsupportedGraph(f"{op} has drawn parameters and a non-scalar support")
    if batched[0] is not None or batched[1] is not None:
        raise UnsupportedGraph(f"{op}: a size or generator that depends on the draws")
    shape = node.outputs[1].type.shape
    if any(d is None for d in shape):
        raise UnsupportedGraph(f"{op}: a shape known only at run time")
    new_size = pt.as_tensor([*shape, n], dtype="int64")
    next_rng, value = op.make_node(plain_inputs[0], new_size,
                                   *_last(batched[2:], plain_inputs[2:])).outputs
    # the next generator has no draw dim, but filed with the draws it makes a node that reads
    # it (a generator chained through two variables) raise UnsupportedGraph: the safe fallback
    return [next_rng, value], "batched"


_RULES: list[tuple[type, Rule]] = [
    (Elemwise, _elemwise), (DimShuffle, _dimshuffle), (ViewOp, _view),
    (SpecifyShape, _specify_shape), (Subtensor, _indexed), (AdvancedSubtensor, _indexed),
    (AdvancedIncSubtensor, _advanced_inc), (Reshape, _reshape), (Shape, _shape),
    (Shape_i, _shape_i), (CAReduce, _careduce), (Join, _join), (Alloc, _alloc), (Dot, _dot),
    (RandomVariable, _random_variable),
]


def _rule_for(node: Apply) -> Rule | None:
    for op_type, rule in _RULES:
        if isinstance(node.op, op_type):
            return rule
    return None
