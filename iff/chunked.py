"""Chunks of independent draws computed in parallel processes, written into shared memory.

Forward Monte Carlo beyond one call's worth of draws (:data:`iff.forward.CHUNK_DRAWS`) is a loop
over chunks, each an independent call of one compiled function. PyTensor's compiled loops hold
Python's GIL, so threads do not run them in parallel (two threads: 0.92-1.38x); forked
processes do. Each process inherits the compiled function (nothing to load or compile) and
writes its chunks straight into the result arrays, which live in anonymous shared memory.

Measured on the multi-country demo, ``flows`` only, 400,000 draws in 10 chunks of one compiled
function, on this project's two-core machine: one process 49,000-55,000 draws/s; two forked
processes whose OpenBLAS kept its own threads only 1.1-1.2x that (its idle threads spin on the
core the other process needs); two with BLAS limited to one thread each 83,000-102,000 (three
runs). Workers therefore run with one BLAS thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import multiprocessing
import os
import signal
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np

#: ``name -> (shape of one draw, dtype)`` of every array a chunk returns.
Layout = Mapping[str, tuple[tuple[int, ...], np.dtype]]

#: glibc's ``mallopt`` parameters (malloc.h) and Linux's ``prctl`` option (linux/prctl.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4
_PR_SET_PDEATHSIG = 1


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def can_fork() -> bool:
    """Whether chunks can run in forked processes: Linux only (fork is unsafe on macOS, absent
    on Windows)."""
    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def shared_empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised array in anonymous shared memory: what a forked child writes into it,
    the parent sees."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape, dtype="int64"))
    buffer = mmap.mmap(-1, max(count * dtype.itemsize, 1))
    return np.frombuffer(buffer, dtype=dtype, count=count).reshape(shape)


def compute_chunks(compute: Callable[[int], Mapping[str, np.ndarray]], chunks: int, size: int,
                   layout: Layout | None, workers: int, draws_last: bool = False
                   ) -> dict[str, np.ndarray]:
    """Every chunk's arrays, stacked along a leading draw dim of ``chunks * size`` rows.

    Parameters
    ----------
    compute
        ``compute(i)`` returns chunk ``i``'s arrays, each ``(size, *shape)``. Its result must
        depend on ``i`` alone (e.g. seeded by it), so that the worker count changes no number.
    chunks, size
        Number of chunks and draws per chunk.
    layout
        Shape of one draw and dtype of each array; ``None`` if not known before a call, in which
        case chunk 0 is computed in this process first to learn them.
    workers
        Processes to use (1: every chunk in this process, in order).
    draws_last
        Hold each array with its draw dim last in memory, ``(*shape, chunks * size)``, and
        return it as a view with that dim first. For chunks computed draws last (their arrays
        views of ``(*shape, size)`` memory): each is then copied in contiguous runs of ``size``
        values, not transposed, and nothing transposes the whole result afterwards.

    Returns
    -------
    dict
        ``name -> (chunks * size, *shape)`` array (a view of draws-last memory if
        ``draws_last``).

    Raises
    ------
    RuntimeError
        If a worker process fails (its traceback is on standard error) or is killed.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    todo: Sequence[int] = range(chunks)
    first = None
    if layout is None:
        first = compute(0)
        layout = {name: (v.shape[1:], v.dtype) for name, v in first.items()}
        todo = range(1, chunks)
    workers = min(workers, len(todo)) if can_fork() else 1
    empty = shared_empty if workers > 1 else np.empty
    if draws_last:
        out = {name: np.moveaxis(empty((*shape, chunks * size), dtype), -1, 0)
               for name, (shape, dtype) in layout.items()}
    else:
        out = {name: empty((chunks * size, *shape), dtype)
               for name, (shape, dtype) in layout.items()}
    if first is not None:
        _store(out, first, 0, size)
    if empty is np.empty:
        for i in todo:
            _store(out, compute(i), i, size)
        return out
    _run_in_processes(compute, [todo[w::workers] for w in range(workers)], out, size)
    return out


def _store(out: dict[str, np.ndarray], part: Mapping[str, np.ndarray], i: int, size: int
           ) -> None:
    for name, value in part.items():
        out[name][i * size:(i + 1) * size] = value


def _run_in_processes(compute: Callable[[int], Mapping[str, np.ndarray]],
                      shares: list[Sequence[int]], out: dict[str, np.ndarray], size: int) -> None:
    """Each share of chunk indices computed by one forked process; this one waits."""
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_worker, args=(compute, share, out, size, os.getpid()),
                                 daemon=True) for share in shares]
    try:
        with warnings.catch_warnings():
            # Python 3.12 warns on any fork of a process with threads. Here they are
            # OpenBLAS's idle pool, which OpenBLAS's own fork handler resets in the child; the
            # child runs numpy, threadpoolctl and compiled C, and leaves by os._exit.
            warnings.simplefilter("ignore", DeprecationWarning)
            for process in processes:
                process.start()
        for process in processes:
            process.join()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join()
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(processes)} worker processes drawing chunks "
                           f"failed (exit codes {failed}; a traceback, if any, is on standard "
                           "error); no results were kept")


def _worker(compute: Callable[[int], Mapping[str, np.ndarray]], share: Sequence[int],
            out: dict[str, np.ndarray], size: int, parent: int) -> None:
    from threadpoolctl import threadpool_limits

    _die_with_parent(parent)
    _keep_freed_memory()
    with threadpool_limits(1):
        for i in share:
            _store(out, compute(i), i, size)


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this worker when its parent dies, so that a run killed mid-draw
    leaves no worker drawing on (Linux ``PR_SET_PDEATHSIG``); exit at once if the parent died
    before this was set."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _keep_freed_memory() -> None:
    """Make glibc's allocator keep freed memory for the next chunk instead of giving it back to
    the OS, so the next chunk's arrays do not page-fault again (a worker exits when done).

    ``forward_draws`` as above, two workers, four paired runs: median 90,800 draws/s with it
    against 83,300 without; the workers' page faults 147,000 against 253,000 (most of those
    left are first writes to the shared result arrays). No-op where the C library is not glibc.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_MAX, 0)  # large arrays from the heap, not their own mappings
        libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
        libc.mallopt(_M_TOP_PAD, 256 << 20)
