"""iff: Bayesian estimation of illicit financial flows for SDG indicator 16.4.1.

Public API::

    from iff import load_config, run, load_results, summarize

See ARCHITECTURE.md for the module map. The public names are imported on first use, so that
``import iff`` (and the ``iff`` command, which re-executes itself once with a fixed hash seed)
does not pay for PyMC's import before it needs it.
"""

from typing import Any

from iff._version import __version__
from iff.numerics import apply_reproducible_numerics

# before anything compiles: same numbers with a cold or a warm compile cache (iff.numerics)
apply_reproducible_numerics()

_PUBLIC = {"load_config": ("iff.config", "load_config"),
           "run": ("iff.pipeline", "run"),
           "load_results": ("iff.results", "load_tree"),
           "summarize": ("iff.summary", "summarize_results")}

__all__ = ["__version__", "load_config", "load_results", "run", "summarize"]


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562)."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'iff' has no attribute {name!r}")
    from importlib import import_module

    module, attribute = _PUBLIC[name]
    value = getattr(import_module(module), attribute)
    globals()[name] = value
    return value
