"""iff: Bayesian estimation of illicit financial flows for SDG indicator 16.4.1.

Public API::

    from iff import load_config, run, load_results, summarize

See ARCHITECTURE.md for the module map.
"""

from iff._version import __version__
from iff.config import load_config
from iff.pipeline import run
from iff.results import load_tree as load_results
from iff.summary import summarize_results as summarize

__all__ = ["__version__", "load_config", "load_results", "run", "summarize"]
