"""Convergence checks of a NUTS posterior: R-hat, bulk ESS and divergences.

Thresholds follow current practice (Vehtari et al. 2021): rank-normalised split R-hat <= 1.01,
bulk effective sample size >= 400, and no divergent transitions.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import arviz_stats as az  # arviz_stats only: the arviz umbrella imports matplotlib (~1 s)
import numpy as np
import xarray as xr

RHAT_MAX = 1.01
ESS_BULK_MIN = 400.0


@dataclass
class Convergence:
    """Verdict of the convergence checks, stored in the results' provenance.

    Attributes
    ----------
    method
        ``nuts`` or ``forward`` (exact Monte Carlo: the checks do not apply).
    passed
        True if every check holds (always True for forward Monte Carlo).
    max_rhat, min_ess_bulk, divergences
        The measured values (None for forward Monte Carlo).
    worst_rhat, worst_ess
        Variables with the largest R-hat and the smallest bulk ESS.
    failures
        One sentence per failed check.
    """

    method: str
    passed: bool
    max_rhat: float | None = None
    min_ess_bulk: float | None = None
    divergences: int | None = None
    worst_rhat: str | None = None
    worst_ess: str | None = None
    thresholds: dict[str, float] = field(
        default_factory=lambda: {"rhat_max": RHAT_MAX, "ess_bulk_min": ESS_BULK_MIN,
                                 "divergences_max": 0})
    failures: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """One word for tables: ``passed``, ``FAILED`` or ``exact``."""
        if self.method == "forward":
            return "exact"
        return "passed" if self.passed else "FAILED"

    def to_dict(self) -> dict:
        """Plain dict (JSON-serialisable)."""
        return {**asdict(self), "verdict": self.verdict}


def _worst(ds: xr.Dataset, pick: str) -> tuple[float, str]:
    """Largest (pick='max') or smallest value over all variables, ignoring NaN (constants)."""
    best_val, best_name = (-np.inf if pick == "max" else np.inf), ""
    for name, da in ds.data_vars.items():
        vals = np.asarray(da.values, dtype=float)
        vals = vals[np.isfinite(vals)]
        if vals.size == 0:
            continue
        v = vals.max() if pick == "max" else vals.min()
        if (pick == "max" and v > best_val) or (pick == "min" and v < best_val):
            best_val, best_name = float(v), str(name)
    return best_val, best_name


def check_convergence(tree: xr.DataTree, var_names: list[str]) -> Convergence:
    """Run the checks on the posterior variables ``var_names`` of a NUTS run.

    Elements that are constant across all draws (e.g. a flow fixed at zero by a role) have no
    defined R-hat and are skipped.
    """
    posterior = tree["posterior"].to_dataset()[var_names]
    with warnings.catch_warnings():  # constant elements divide 0 by 0: NaN, skipped below
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        rhat = az.rhat(posterior)
        ess = az.ess(posterior, method="bulk")
    rhat = rhat.to_dataset() if isinstance(rhat, xr.DataTree) else rhat
    ess = ess.to_dataset() if isinstance(ess, xr.DataTree) else ess
    max_rhat, worst_rhat = _worst(rhat, "max")
    min_ess, worst_ess = _worst(ess, "min")
    divergences = int(tree["sample_stats"]["diverging"].sum()) if (
        "sample_stats" in tree.children and "diverging" in tree["sample_stats"].data_vars) else 0
    failures = []
    if max_rhat > RHAT_MAX:
        failures.append(f"R-hat {max_rhat:.3f} > {RHAT_MAX} ({worst_rhat})")
    if min_ess < ESS_BULK_MIN:
        failures.append(f"bulk ESS {min_ess:.0f} < {ESS_BULK_MIN:.0f} ({worst_ess})")
    if divergences > 0:
        failures.append(f"{divergences} divergent transitions")
    return Convergence(method="nuts", passed=not failures, max_rhat=max_rhat,
                       min_ess_bulk=min_ess, divergences=divergences, worst_rhat=worst_rhat,
                       worst_ess=worst_ess, failures=failures)
