"""The installed ``iff`` command and ``python -m iff``: process-level start and exit.

:func:`iff.cli.main` is the command line itself (tests call it in-process); this module adds
what only a process of its own may do:

- pin ``PYTHONHASHSEED`` by re-executing once, *before* anything heavy is imported;
- import ArviZ without matplotlib's ``pyplot`` for the commands that sample and draw nothing
  (:func:`import_arviz_without_pyplot`);
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


#: commands that sample (nutpie imports ArviZ to do so) and draw no figure
_SAMPLING_COMMANDS = {"run", "mse"}


def import_arviz_without_pyplot() -> None:
    """Import ArviZ without importing matplotlib's ``pyplot``.

    nutpie imports ArviZ, whose ``arviz_plots`` imports ``pyplot`` (with fonts and images) only
    to register ArviZ's styles and colour maps with matplotlib, and skips that when ``pyplot``
    cannot be imported. Importing nutpie took 0.7-1.2 s longer with it (``python -c "import
    iff.pipeline, iff.cli, nutpie"``: 4.7-5.1 s against 3.9-4.3 s). So ``pyplot`` is made
    unimportable while ArviZ is imported, and importable again afterwards: in this process
    ArviZ's matplotlib styles (``arviz-variat`` ...) are then not registered, which iff does
    not use. Done only for commands that draw nothing; a process that already imported either
    module is left alone.
    """
    if "arviz" in sys.modules or "matplotlib.pyplot" in sys.modules:
        return
    sys.modules["matplotlib.pyplot"] = None  # type: ignore[assignment]  # import fails
    try:
        import arviz  # noqa: F401
    finally:
        if "matplotlib.pyplot" in sys.modules and sys.modules["matplotlib.pyplot"] is None:
            del sys.modules["matplotlib.pyplot"]


def main() -> None:
    """Run the command line and exit with its code, skipping the interpreter's teardown."""
    pin_hash_seed()
    command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    if command in _SAMPLING_COMMANDS:
        import_arviz_without_pyplot()
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
