"""Measurement models: published numbers as noisy observations of latent true values.

Positive quantities are measured on the log scale (LogNormal likelihood), shares on the logit
scale (LogitNormal likelihood), so a stated relative uncertainty means the same thing at any
magnitude and latent values never leave their support.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy import stats

from iff.priors import Support


def _z(prob: float) -> float:
    return float(stats.norm.ppf(0.5 + prob / 2.0))


def measurement_sigma(
    value: np.ndarray,
    se: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    support: Support,
    interval_prob: float,
    default_cv: float | np.ndarray,
) -> np.ndarray:
    """Standard deviation of each observation on its measurement scale.

    Parameters
    ----------
    value, se, lower, upper
        Observed values and their uncertainty (NaN where not given), in the quantity's unit.
    support
        ``positive`` (log scale) or ``unit`` (logit scale).
    interval_prob
        Probability of the central ``[lower, upper]`` intervals.
    default_cv
        Coefficient of variation used where neither ``se`` nor an interval is given (one
        number, or one per observation).

    Returns
    -------
    numpy.ndarray
        Sigma on the log scale (positive) or logit scale (unit), > 0.
    """
    value = np.asarray(value, dtype=float)
    se = np.asarray(se, dtype=float)
    lower = np.asarray(lower, dtype=float)
    upper = np.asarray(upper, dtype=float)
    z = _z(interval_prob)
    if support is Support.UNIT:
        logit = lambda x: np.log(x) - np.log1p(-x)  # noqa: E731
        from_se = se / (value * (1 - value))  # delta method
        from_interval = (logit(upper) - logit(lower)) / (2 * z)
        default = default_cv / (1 - value)
    else:
        from_se = np.sqrt(np.log1p((se / value) ** 2))
        from_interval = (np.log(upper) - np.log(lower)) / (2 * z)
        default = np.full_like(value, np.sqrt(np.log1p(default_cv**2)))
    sigma = np.where(np.isfinite(se), from_se, np.where(np.isfinite(lower), from_interval, default))
    return sigma


def cv_sigma(value: np.ndarray, support: Support, cv: pt.TensorVariable) -> pt.TensorVariable:
    """Sigma on the measurement scale of a relative error ``cv`` that is itself a model
    variable (one value per observation), as :func:`measurement_sigma` does for a fixed CV.

    Parameters
    ----------
    value
        Observed values.
    support
        ``positive`` (log scale) or ``unit`` (logit scale; delta method).
    cv
        Coefficient of variation at each observation (a tensor).
    """
    value = np.asarray(value, dtype=float)
    if support is Support.UNIT:
        return cv / (1 - value)
    return pt.sqrt(pt.log1p(cv**2))


def observe(
    name: str,
    latent: pt.TensorVariable,
    values: np.ndarray,
    sigma: np.ndarray | pt.TensorVariable,
    support: Support,
    dim: str,
) -> pt.TensorVariable:
    """Add a likelihood term: ``values`` measure ``latent`` with noise ``sigma``.

    Parameters
    ----------
    name
        Name of the observed variable (its values are stored in ``observed_data`` and, as data
        that can be replaced without rebuilding, in ``constant_data`` as ``<name>_values``).
    latent
        True values at the observed rows (same length as ``values``).
    values
        Observed numbers.
    sigma
        Measurement standard deviations on the log (positive) or logit (unit) scale: numbers
        (stored as data ``<name>_sigma``) or a tensor (when they depend on model variables).
    support
        ``positive`` or ``unit``.
    dim
        Name of the observation dim (its coords are the CSV lines).
    """
    sigma_data = (sigma if isinstance(sigma, pt.Variable)
                  else pm.Data(f"{name}_sigma", np.asarray(sigma, dtype=float), dims=dim))
    # Observed values are data (``<name>_values``), so a compiled model can be refitted to other
    # values without recompiling (simulation-based calibration, iff.sbc); sigma stays as built.
    observed = pm.Data(f"{name}_values", np.asarray(values, dtype=float), dims=dim)
    if support is Support.UNIT:
        mu = pt.log(latent) - pt.log1p(-latent)
        return pm.LogitNormal(name, mu=mu, sigma=sigma_data, observed=observed, dims=dim)
    return pm.LogNormal(name, mu=pt.log(latent), sigma=sigma_data, observed=observed, dims=dim)
