"""PyTensor settings that make a run's numbers independent of the compile cache's state.

PyTensor compiles the log density with numba and, by default, numba's ``fastmath`` flags
(reassociation, fused multiply-add). With those, the function compiled in a process with an
empty cache (everything compiled and inlined together) and the same function loaded piece by
piece from the cache round differently in the last bit: on the demo the gradients differed by
2e-14 after 20 calls, and 500 NUTS warm-up iterations turned that into a different posterior
sample (R-hat 1.0057 cold, 1.012 warm, same seed). Without ``fastmath`` both are bit-identical,
so the same config and seed give the same ``summary.csv`` whether the cache is cold or warm
(tests/test_numerics.py). It cost no speed: one log-density-and-gradient call took 14.4 us
without it against 21.2 us with it on the demo, 5.5 against 9.9 us on the UK trafficking pilot
(5,000 calls at a fixed point, warm cache).
"""

from __future__ import annotations

import os
import sys


def apply_reproducible_numerics() -> None:
    """Turn numba's ``fastmath`` off for PyTensor, unless ``PYTENSOR_FLAGS`` sets it.

    Call before any PyTensor function is compiled (``import iff`` does). The setting goes into
    ``PYTENSOR_FLAGS``, which PyTensor reads when it is imported, so that processes started
    from this one (PyMC's chain workers, Dask workers) compile the same code: without it PyMC's
    workers ran with ``fastmath`` on and compiled their own copy of the log density. PyTensor
    is not imported here (``import iff`` stays cheap); if it was imported already, its
    configuration is set directly.
    """
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    if "numba__fastmath" in flags:
        return
    os.environ["PYTENSOR_FLAGS"] = ",".join(f for f in (flags, "numba__fastmath=False") if f)
    pytensor = sys.modules.get("pytensor")
    if pytensor is not None and hasattr(pytensor, "config"):
        pytensor.config.numba__fastmath = False
