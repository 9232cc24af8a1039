"""iff: Bayesian estimation of illicit financial flows for SDG indicator 16.4.1.

Public API::

    from iff import load_config, run, load_results, summarize

See ARCHITECTURE.md for the module map.
"""

from iff._version import __version__
from iff.numerics import apply_reproducible_numerics

# before anything compiles: same numbers with a cold or a warm compile cache (iff.numerics)
apply_reproducible_numerics()

from iff.config import load_config  # noqa: E402
from iff.pipeline import run  # noqa: E402
from iff.results import load_tree as load_results  # noqa: E402
from iff.summary import summarize_results as summarize  # noqa: E402

__all__ = ["__version__", "load_config", "load_results", "run", "summarize"]
