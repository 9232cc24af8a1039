"""The installed ``iff`` command and ``python -m iff``: process-level start and exit.

:func:`iff.cli.main` is the command line itself (tests call it in-process); this module adds
what only a process of its own may do:

- pin ``PYTHONHASHSEED`` by re-executing once, *before* anything heavy is imported;
- leave without tearing the interpreter down. Once the command has returned, its files are
  written, closed and renamed into place and its output is flushed; what remains is freeing
  every module and object one by one, which took 1.2-1.4 s after a demo run (PyTensor, numba
  and nutpie objects), longer than writing the results.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys


def pin_hash_seed() -> None:
    """Re-execute once with ``PYTHONHASHSEED=0`` unless the user set it.

    PyTensor's graph rewrites iterate over hashed sets, so with Python's randomised hashing the
    same model can compile to code that rounds differently from one process to the next, and
    the same seed then gives different draws (measured with nutpie, and for a cold compile
    cache). A fixed hash seed makes compiled models, and so results, repeat across processes.
    """
    if os.environ.get("PYTHONHASHSEED") is None:
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, "-m", "iff", *sys.argv[1:]])


def main() -> None:
    """Run the command line and exit with its code, skipping the interpreter's teardown."""
    pin_hash_seed()
    from iff.cli import main as cli_main

    try:
        cli_main()
        code: int | str | None = 0
    except SystemExit as stop:
        code = stop.code
    # What a normal exit would still do that matters: exit handlers (logging's flush among
    # them) and flushing the standard streams. Then leave without freeing every object.
    atexit._run_exitfuncs()
    if isinstance(code, str):  # sys.exit("message") prints it, exit status 1
        sys.stderr.write(code + "\n")
        code = 1
    for stream in (sys.stdout, sys.stderr):
        # closed, or a broken pipe: nothing more can be written anyway
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code or 0)
