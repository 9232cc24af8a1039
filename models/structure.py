"""Structured priors: pooling across countries and smoothing across years.

A parameter's elements get priors one by one (e.g. ``LogNormal(mu, sigma)`` per country-year).
Written non-centred, each element is ``mu + sigma * x`` with ``x`` standard normal. This module
replaces the independent ``x`` by a *standard-normal field* with structure, so that every element
keeps its stated prior (exactly for log-normal and normal priors; see below for Beta) while
elements become correlated:

* **pooling** across countries: ``x_c = (g' + tau * eta_c) / sqrt(1 + tau**2)`` with a shared
  component ``g'``, country deviations ``eta_c`` (all standard normal) and
  ``tau ~ HalfNormal(1)``. The correlation between two countries is ``1 / (1 + tau**2)``: the
  data choose between complete pooling (``tau -> 0``) and none (``tau -> inf``), so a country
  with sparse data borrows from the others as much as they agree. It is sampled as
  ``x_c = sqrt((1 + tau**2 / n) / (1 + tau**2)) g + tau / sqrt(1 + tau**2) (eta_c - mean(eta))``
  over ``n`` countries, the same law, with ``g`` (``<name>_shared_z``) the standardised country
  mean of ``x``: written with ``g'``, data that pin ``x`` pin ``g'`` to a width proportional to
  ``tau``, a funnel that NUTS crossed slowly.
* **smoothing** across years: the latent path is a stationary AR(1) process,
  ``x_t = rho**dt x_(t-1) + sqrt(1 - rho**(2 dt)) e_t`` (``dt`` the gap in years, so irregular
  years are fine), with ``rho`` = :data:`YEAR_CORRELATION`. That is a random walk on the log
  scale (for positive parameters) that reverts slowly to the prior: a year without data gets
  the neighbouring years' estimate with uncertainty that widens with the distance to them.

Shares (Beta priors) are pooled on the logit scale: their Beta prior is replaced by the
logit-normal with the same mean and variance of ``logit(x)`` (digamma/trigamma moments).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy.special import digamma, polygamma

#: Correlation of a smoothed parameter's latent value between consecutive years (``0.9**dt``
#: for a gap of ``dt`` years). Fixed, not estimated: runs have few years, which barely inform
#: it, and a sampled correlation mixed slowly (R-hat of the demo's ``throughput_year_corr``
#: above 1.01 with 4 x 1000 draws).
YEAR_CORRELATION = 0.9
#: Scale of the half-normal prior of the between-country spread (in prior sds).
TAU_SCALE = 1.0


def ar1_loading(years: list[int], rho: float) -> np.ndarray:
    """Lower-triangular ``L`` with ``L @ e`` a stationary AR(1) path for iid N(0,1) ``e``.

    Parameters
    ----------
    years
        Years of the path, strictly increasing.
    rho
        Correlation between consecutive years (one-year gap); ``rho**dt`` for a gap ``dt``.
    """
    y = np.asarray(years, dtype=float)
    if np.any(np.diff(y) <= 0):
        raise ValueError("years must be strictly increasing")
    lower = np.tril(np.ones((len(y), len(y))))
    decay = rho ** np.where(lower > 0, y[:, None] - y[None, :], 0.0)
    scale = np.concatenate([[1.0], np.sqrt(1.0 - rho ** (2.0 * np.diff(y)))])
    return decay * lower * scale[None, :]


def measured_first_loadings(years: list[int], measured: np.ndarray,
                            rho: float = YEAR_CORRELATION) -> np.ndarray:
    """Square roots ``L`` of the AR(1) year correlation, one per series, measured years first.

    Every square root gives the same prior (``L e`` with ``e ~ N(0, I)`` has correlation
    ``L L' = rho**|dt|``). This one is the Cholesky factor over the series' measured years first
    (in year order), then the others: a year without data then depends on an innovation of its
    own, not shared with a measured year. With the causal (year-order) factor, a year missing
    between two measured ones made a narrow ridge along which the two innovations traded off
    (correlation near -1; nutpie's min bulk ESS 240-340 of 4,000 draws on the multi-country
    demo, at HND and GTM in 2018-2019, for smuggling attempts).

    Parameters
    ----------
    years
        Years of the path, in the coord's order (distinct).
    measured
        Boolean array ``(*series, year)``: which years have data that pin the series.
    rho
        Correlation between consecutive years.

    Returns
    -------
    numpy.ndarray
        ``(*series, year, year)``, the rows and columns in the coord's year order.
    """
    y = np.asarray(years, dtype=float)
    corr = rho ** np.abs(y[:, None] - y[None, :])
    measured = np.asarray(measured, dtype=bool)
    out = np.zeros((*measured.shape, len(y)))
    for series in np.ndindex(measured.shape[:-1]):
        order = sorted(range(len(y)), key=lambda k: (not measured[series][k], y[k]))
        out[series][np.ix_(order, order)] = np.linalg.cholesky(corr[np.ix_(order, order)])
    return out


def along_years(t: pt.TensorVariable, matrices: np.ndarray, year_axis: int) -> pt.TensorVariable:
    """One year map per series: ``out[.., y, ..] = sum_k matrices[.., y, k] t[.., k, ..]``.

    Parameters
    ----------
    t
        Tensor with the year dim at ``year_axis`` (non-negative).
    matrices
        ``(*other dims of t in order, year, year)``, e.g. from :func:`measured_first_loadings`.
    year_axis
        Position of the year dim in ``t``.

    Written as a broadcast product and a sum (small matrices, and ops that
    :mod:`iff.draws_last` vectorises with the draws last).
    """
    other = matrices.ndim - 2
    if not 0 <= year_axis <= other or t.ndim != other + 1:
        raise ValueError(f"year_axis {year_axis} does not fit t ({t.ndim} dims) and matrices "
                         f"{matrices.shape}")
    # (*other before the year, year out, year in, *other after it)
    perm = (*range(year_axis), other, other + 1, *range(year_axis, other))
    per_year = np.transpose(matrices, perm)
    return pt.sum(pt.as_tensor_variable(per_year) * pt.expand_dims(t, year_axis),
                  axis=year_axis + 1)


def standard_field(name: str, dims: tuple[str, ...], coords: dict[str, list], *, pool: bool,
                   smooth: bool) -> pt.TensorVariable:
    """A field over ``dims`` whose every element is N(0, 1), with the requested structure.

    Parameters
    ----------
    name
        Prefix of the model variables (``<name>_z``, ``<name>_shared_z``, ``<name>_tau``).
    dims, coords
        Dims of the parameter and the model's coords.
    pool
        Correlate elements across the ``country`` dim.
    smooth
        Correlate elements across the ``year`` dim (AR(1)).
    """
    pool = pool and "country" in dims and len(coords["country"]) > 1
    smooth = smooth and "year" in dims and len(coords["year"]) > 1
    if smooth:
        years = [int(v) for v in coords["year"]]
        order = np.argsort(years)
        loading = ar1_loading(sorted(years), YEAR_CORRELATION)

    def innovations(label: str, field_dims: tuple[str, ...]) -> pt.TensorVariable:
        e = pm.Normal(f"{name}_{label}", 0.0, 1.0, dims=field_dims)
        if not smooth:
            return e
        # a fixed linear map of independent innovations: no curvature for NUTS to cross
        ax = field_dims.index("year")
        moved = pt.moveaxis(e, ax, -1)[..., order]  # years ascending, last
        path = pt.tensordot(moved, loading, axes=[[-1], [1]])  # x_i = sum_j L_ij e_j
        back = path[..., np.argsort(order)]
        return pt.moveaxis(back, -1, ax)

    eta = innovations("z", dims)
    if not pool:
        return eta
    shared_dims = tuple(d for d in dims if d != "country")
    g = innovations("shared_z", shared_dims) if shared_dims else pm.Normal(
        f"{name}_shared_z", 0.0, 1.0)
    ax = dims.index("country")
    n = len(coords["country"])
    g = pt.expand_dims(g, ax)
    tau = pm.HalfNormal(f"{name}_tau", TAU_SCALE)
    # x = (g' + tau eta) / sqrt(1 + tau^2) with g' ~ N(0, 1), split into the country mean and the
    # contrasts: the mean's sd sqrt((1 + tau^2 / n) / (1 + tau^2)) times a standard normal g,
    # plus tau / sqrt(1 + tau^2) times eta's contrasts. Same law; but when data pin x, g no
    # longer has a conditional width proportional to tau (a funnel that slowed NUTS on the
    # multi-country demo's *_tau), since g is the standardised country mean, whatever tau is.
    spread = 1.0 + tau**2
    contrasts = eta - pt.sum(eta, axis=ax, keepdims=True) / n
    return pt.sqrt((1.0 + tau**2 / n) / spread) * g + (tau / pt.sqrt(spread)) * contrasts


def logit_moments(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sd of ``logit(x)`` for ``x ~ Beta(alpha, beta)``."""
    mean = digamma(alpha) - digamma(beta)
    sd = np.sqrt(polygamma(1, alpha) + polygamma(1, beta))
    return mean, sd


def structured_variable(name: str, family: str, params: dict[str, np.ndarray],
                        dims: tuple[str, ...], coords: dict[str, list], *, pool: bool,
                        smooth: bool) -> pt.TensorVariable:
    """A parameter with element priors of one family and pooling and/or smoothing.

    Parameters
    ----------
    name
        The parameter's variable name (a Deterministic of that name is returned).
    family
        ``LogNormal``, ``Normal`` or ``Beta`` (others cannot be structured).
    params
        Arrays of the family's parameters with the parameter's shape.
    dims, coords, pool, smooth
        As in :func:`standard_field`.
    """
    x = standard_field(name, dims, coords, pool=pool, smooth=smooth)
    if family == "LogNormal":
        value = pt.exp(params["mu"] + params["sigma"] * x)
    elif family == "Normal":
        value = params["mu"] + params["sigma"] * x
    elif family == "Beta":
        mean, sd = logit_moments(params["alpha"], params["beta"])
        value = pt.sigmoid(mean + sd * x)
    else:
        raise ValueError(f"family {family} cannot be pooled or smoothed")
    return pm.Deterministic(name, value, dims=dims)


STRUCTURED_FAMILIES = ("LogNormal", "Normal", "Beta")
