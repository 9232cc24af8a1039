"""g++'s ``-march=native`` equivalent flags, detected once per CPU and compiler, not per process.

PyTensor compiles its C code with the flags ``g++ -march=native`` stands for, and detects them
in every process that compiles or loads compiled C (its cache keys include them) by running
g++ twice: 0.35-0.36 s of each fresh process on this project's machine (three runs of
``GCC_compiler.compile_args()``). The first load of the multi-country demo's forward
function from the cache in a fresh process took a median of 0.88 s with the flags kept, 1.10 s
without (``benchmarks/bench_first_load.py``, four paired processes). Here the flags a process
detected are kept in the compile directory, keyed by what they depend on (the CPU's model and
feature flags, the compiler binary, PyTensor's version), and later processes set them before
PyTensor would detect them again.

A compile directory shared by machines with other CPUs (e.g. on NFS) gets one entry per CPU.
Nothing is kept where the CPU cannot be identified (no ``/proc/cpuinfo``), or where the user
sets ``-march`` in ``gcc__cxxflags`` (PyTensor then detects nothing).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytensor
from pytensor.link.c.cmodule import GCC_compiler

_CPUINFO = Path("/proc/cpuinfo")


def _cpu_identity() -> str | None:
    """The first processor's model name and feature flags, or ``None`` where unknown."""
    try:
        text = _CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    first = text.split("\n\n", 1)[0]
    wanted = [line for line in first.splitlines()
              if line.split(":", 1)[0].strip() in ("vendor_id", "model name", "flags",
                                                    "Features", "CPU part")]
    return "\n".join(wanted) or None


def _compiler_identity() -> str | None:
    """The compiler binary PyTensor runs (path, size, modification time), or ``None``."""
    cxx = pytensor.config.cxx
    found = shutil.which(cxx) if cxx else None
    if not found:
        return None
    real = os.path.realpath(found)
    try:
        stat = os.stat(real)
    except OSError:
        return None
    return f"{real} {stat.st_size} {stat.st_mtime_ns}"


def _entry() -> Path | None:
    """This machine's file of flags, or ``None`` where they are not kept."""
    cxxflags = pytensor.config.gcc__cxxflags.split()
    if any(f.startswith(("-march=", "--march=")) for f in cxxflags):
        return None
    cpu, compiler = _cpu_identity(), _compiler_identity()
    if cpu is None or compiler is None:
        return None
    # not PyTensor's C++ flags: importing PyMC adds some, and detection does not read them
    key = hashlib.sha256("\n".join([cpu, compiler, pytensor.__version__]).encode()).hexdigest()
    return Path(pytensor.config.compiledir) / "iff_march_flags" / f"{key}.json"


def reuse() -> None:
    """Set PyTensor's ``-march`` flags from this machine's file, if a process kept them and
    this one has not detected them yet."""
    if GCC_compiler.march_flags is not None:
        return
    path = _entry()
    if path is None:
        return
    with contextlib.suppress(OSError, ValueError):
        flags = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(flags, list) and all(isinstance(f, str) for f in flags):
            GCC_compiler.march_flags = flags


def keep() -> None:
    """Write the flags this process detected to this machine's file (whole, by renaming a
    temporary file), if there is none yet. No flags (PyTensor's answer when g++ failed) are not
    kept: a failure that passes would otherwise leave every later process without them."""
    flags = GCC_compiler.march_flags
    if not flags:
        return
    path = _entry()
    if path is None or path.exists():
        return
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False,
                                         encoding="utf-8") as fh:
            tmp = fh.name
            json.dump(list(flags), fh)
        os.replace(tmp, path)
    except OSError:  # a file that cannot be written costs time, not results
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
