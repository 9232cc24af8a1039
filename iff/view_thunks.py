"""Python thunks, not compiled C, for the view and shape ops of a vectorised function.

PyTensor links a C thunk for every node of a function it compiles or loads: about 0.9 ms a node
in Python (a cache key built from a cloned one-node graph, the compiled module looked up and
instantiated). The multi-country demo's forward function had 530 such nodes (stop 21, its
draws first; 524 with them last, :mod:`iff.draws_last`, of which 370 are view ops), and 402 of
them (DimShuffle, Subtensor, Reshape, SpecifyShape, MakeVector, ScalarFromTensor) only make a
view, reshape an array or build a small shape vector, which numpy does as fast from Python at
the array sizes of forward Monte Carlo. Linking those as Python thunks (their ``perform``)
loaded that function in 0.41-0.51 s against 0.59-0.61 s (a process that had loaded it before;
six loads against three; cProfile: 128 C thunks linked instead of 530), and its calls took as
long: medians of 0.61-0.64 s against 0.60-0.64 s at 40,000 draws (5 or 9 calls each). The values
are the same (``tests/test_view_thunks.py``). With an empty compile cache those ops are not
compiled either, since their C thunks are never made (not timed).

``COp.make_thunk`` takes ``impl="py"`` for exactly this choice, but PyTensor's linkers pass
``None`` (C where it exists) for every node, so :func:`python_view_thunks` passes ``"py"`` for
these op types while a function is compiled or loaded inside it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pytensor.link.c.op import COp
from pytensor.tensor.basic import MakeVector, ScalarFromTensor
from pytensor.tensor.elemwise import DimShuffle
from pytensor.tensor.shape import Reshape, SpecifyShape
from pytensor.tensor.subtensor import Subtensor

#: Op types linked as Python thunks inside :func:`python_view_thunks`.
VIEW_OPS = (DimShuffle, Subtensor, Reshape, SpecifyShape, MakeVector, ScalarFromTensor)

_lock = threading.RLock()
_depth = 0
_original = COp.make_thunk


def _make_thunk(self: COp, node, storage_map, compute_map, no_recycling, impl=None):
    if impl is None and isinstance(self, VIEW_OPS):
        impl = "py"
    return _original(self, node, storage_map, compute_map, no_recycling, impl=impl)


@contextmanager
def python_view_thunks() -> Iterator[None]:
    """Link the nodes of :data:`VIEW_OPS` as Python thunks in the functions compiled or
    unpickled inside this block; every other node as PyTensor would. The switch is
    process-wide: a function another thread compiles meanwhile gets Python thunks for these
    ops too (same values, calls a little slower).

    Restores PyTensor's own ``COp.make_thunk`` on leaving the outermost block, also on an
    error. Nested and concurrent blocks are allowed.
    """
    global _depth
    with _lock:
        if _depth == 0:
            COp.make_thunk = _make_thunk
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                COp.make_thunk = _original
