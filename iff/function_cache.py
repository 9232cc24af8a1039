"""Compiled PyTensor functions kept on disk between processes, keyed by the model's graph.

PyTensor caches the numba code it compiles, but not the graph rewrites that come before it: on
the demo, building nutpie's log-density and expand functions spent 7.0 s of every warm run
(machine under load) rewriting the same graphs again. Here the compiled ``Function`` objects
are pickled (their rewritten graphs included; unpickling skips the rewrites and loads the
numba code from PyTensor's cache) under ``<pytensor compiledir>/iff_functions``.

The key is a SHA-256 of everything the functions are derived from: the model's graph (every
operation with its parameters, constants and data values, variable types and names), its
transforms and bound checks, the versions of the libraries that derive and compile them, the
PyTensor settings that change the code, and the source of the module that builds them. A
change to any of these is a miss and a fresh compile. A file that cannot be read back is
treated as a miss and replaced. Files are written whole (temporary file, then rename), so a
killed run never leaves a truncated entry.

The cache holds pickles: like PyTensor's own compile cache, it must be writable only by the
user who runs iff.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import os
import pickle
import platform
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pymc as pm
import pytensor
from pytensor.graph.basic import Constant, Variable
from pytensor.graph.traversal import toposort
from pytensor.tensor.sharedvar import SharedVariable

from iff import march_flags

_log = logging.getLogger(__name__)


#: entries kept (newest by modification time). A NUTS run makes three: nutpie's functions
#: (about 1.4 MB on the demo), the prior draws' and the deterministics' (0.1-0.3 MB).
MAX_ENTRIES = 192

_LIBRARIES = ("pymc", "pytensor", "numba", "numpy", "nutpie")


def cache_dir() -> Path:
    """Folder of the function cache, inside PyTensor's compile directory."""
    return Path(pytensor.config.compiledir) / "iff_functions"


def _op_key(op: Any) -> bytes:
    try:
        return pickle.dumps(op, protocol=5)
    except Exception:  # an op that does not pickle: its type and repr
        return f"{type(op).__module__}.{type(op).__qualname__}:{op!r}".encode()


def _data_key(value: Any) -> bytes:
    """dtype, shape and contents of an array-like value."""
    data = np.asarray(value)
    head = f"|{data.dtype}|{data.shape}".encode()
    if data.dtype == object:  # e.g. NoneConst: tobytes() would give memory addresses
        return head + repr(value).encode()
    return head + data.tobytes()


def _variable_key(var: Variable) -> bytes:
    head = "|".join([type(var).__name__, str(var.type), str(var.name)]).encode()
    if isinstance(var, Constant):
        return head + _data_key(var.data)
    if isinstance(var, SharedVariable):
        value = var.get_value(borrow=True)
        if isinstance(value, np.ndarray | np.generic | int | float):
            return head + _data_key(value)
        return head + b"|" + type(value).__name__.encode()  # generators: state does not enter
    return head


def graph_digest(outputs: Iterable[Variable], extra: Iterable[bytes] = ()) -> str:
    """SHA-256 of a graph's structure, operations, types, names, constants and data.

    Parameters
    ----------
    outputs
        The graph's output variables.
    extra
        More bytes to mix in (settings the graph alone does not show).
    """
    h = hashlib.sha256()
    ids: dict[Variable, int] = {}

    def ref(var: Variable) -> int:
        if var not in ids:
            ids[var] = len(ids)
            h.update(b"V%d:" % ids[var] + _variable_key(var))
        return ids[var]

    outputs = list(outputs)
    for node in toposort(outputs):
        inputs = [ref(v) for v in node.inputs]
        h.update(b"N" + _op_key(node.op) + repr(inputs).encode())
        for out in node.outputs:
            ref(out)
    h.update(b"O" + repr([ref(v) for v in outputs]).encode())
    for item in extra:
        h.update(b"E" + item)
    return h.hexdigest()


def model_digest(model: pm.Model, builder_source: str) -> str:
    """Key for functions derived from ``model`` by code whose source is ``builder_source``."""
    free = list(model.free_RVs)
    outputs = [*model.basic_RVs, *model.deterministics, *model.potentials,
               *(model.rvs_to_values[rv] for rv in model.observed_RVs),
               *(model.rvs_to_values[rv] for rv in free)]
    extra = [repr([(rv.name, model.rvs_to_values[rv].name) for rv in free]).encode(),
             *(_op_key(model.rvs_to_transforms.get(rv)) for rv in free),
             f"check_bounds={model.check_bounds}".encode(),
             builder_source.encode(),
             repr(_settings()).encode()]
    return graph_digest(outputs, extra)


def outputs_digest(outputs: Sequence[Variable], builder_source: str) -> str:
    """Key for a function of ``outputs`` built by code whose source is ``builder_source``.

    Unlike :func:`model_digest`, only what the outputs read enters (their graph, constants and
    data): observations they do not read, for instance, do not change the key.
    """
    return graph_digest(outputs, [builder_source.encode(), repr(_settings()).encode()])


def _settings() -> dict[str, str]:
    """Library versions and PyTensor settings that change what is compiled."""
    settings = {name: version(name) for name in _LIBRARIES}
    settings.update(python=sys.version, machine=platform.machine(),
                    floatX=pytensor.config.floatX,
                    fastmath=str(pytensor.config.numba__fastmath),
                    flags=os.environ.get("PYTENSOR_FLAGS", ""))
    return settings


def load_or_build[T](key: str, build: Callable[[], T]) -> T:
    """The object cached under ``key``, or ``build()``, which is then cached.

    Parameters
    ----------
    key
        Hex digest naming the entry (see :func:`model_digest`).
    build
        Makes the object (compiled PyTensor functions) on a miss; it must pickle.

    Compiled C loads and compiles with the ``-march`` flags another process kept
    (:mod:`iff.march_flags`), and flags this process detected are kept for the next.
    """
    march_flags.reuse()  # C functions load without running g++ to detect them
    try:
        return _load_or_build(key, build)
    finally:
        march_flags.keep()


def _load_or_build[T](key: str, build: Callable[[], T]) -> T:
    folder = cache_dir()
    path = folder / f"{key}.pkl"
    if path.exists():
        try:
            with path.open("rb") as fh, _gc_paused():
                obj = pickle.load(fh)
            os.utime(path)  # keep recently used entries when pruning
            return obj
        except Exception as err:  # unreadable or from another version: rebuild
            _log.info("function cache entry %s unreadable (%s); rebuilding", path.name, err)
    obj = build()
    tmp: str | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as fh:
            tmp = fh.name
            pickle.dump(obj, fh, protocol=5)
        os.replace(tmp, path)
        _prune(folder)
    except Exception as err:  # a cache that cannot be written costs time, not results
        _log.info("function cache not written (%s)", err)
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return obj


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while an entry is unpickled.

    Unpickling the multi-country demo's forward function makes 245,000 objects the collector
    tracks (192,000 lived before), of which a collection afterwards finds 20 unreachable; with
    the collector on, the bursts of allocation set off collections that walk the live objects
    again and again. Loading took 1.9-2.2 s with the collector on and 0.8-1.1 s with it off
    (three paired loads, while another job used both cores).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _prune(folder: Path) -> None:
    entries = sorted(folder.glob("*.pkl"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[MAX_ENTRIES:]:
        old.unlink(missing_ok=True)
