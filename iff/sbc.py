"""Simulation-based calibration (SBC; Talts, Betancourt, Simpson, Vehtari & Gelman 2018).

If a model is fitted to data simulated from its own prior, the rank of the true value among
``L`` posterior draws is uniform on ``{0, ..., L}`` and a central interval of probability ``q``
covers the truth in a share ``q`` of the datasets, for every quantity -- provided the sampler
and the code are right. A bug in a prior, a likelihood that differs from the one that simulated
the data, or a sampler that misses part of the posterior breaks one or both.

The check, as implemented here (:func:`run_sbc`):

1. draw ``n`` joint samples of parameters and observations from the model's prior
   (``pm.sample_prior_predictive``): dataset ``i`` is ``(theta_i, y_i)``;
2. compile the model once with nutpie and refit it to each ``y_i`` by replacing its observed
   data (observed values must be ``pm.Data``; :func:`iff.models.measurement.observe` and
   :func:`iff.models.mse.add_mse` make them so): NUTS, by default 2 chains x 500 draws after
   500 tuning steps;
3. for every quantity (each element of every free parameter on its constrained scale, and
   derived quantities such as flows): the rank of the truth among ``L = 99`` posterior draws
   thinned evenly from all chains (:func:`rank_of_truth`, ties broken at random), and whether
   the equal-tailed interval of probability ``prob = 0.9`` from all posterior draws covers it
   (:func:`eti_covers`);
4. summaries: coverage with its binomial standard error (:func:`coverage_summary`), a
   chi-square test of uniform ranks on ``B = 10`` equal bins of the ``L + 1 = 100`` possible
   ranks (9 degrees of freedom; :func:`chi2_uniformity`) per quantity, and a Bonferroni
   adjustment across quantities (:func:`bonferroni`).

A model **passes** when every headline quantity's coverage lies in ``[0.85, 0.95]`` and the
Bonferroni-adjusted smallest p-value of the rank tests over all quantities is at least
``alpha = 0.05`` (:func:`verdict`). Fits with divergences or a split R-hat above
``rhat_max = 1.05`` (a looser bound than a run's 1.01, for 2 chains of 500 draws) are counted
as failed and the summaries are given both with and without them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["QuantityResult", "SBCResult", "bonferroni", "chi2_uniformity", "coverage_summary",
           "eti_covers", "rank_histogram", "rank_of_truth", "run_sbc", "split_rhat",
           "thin_indices", "verdict"]

#: Coverage band of the 90 % intervals that counts as calibrated (share of datasets).
COVERAGE_BAND = (0.85, 0.95)
#: Family-wise level of the Bonferroni-adjusted rank-uniformity tests.
ALPHA = 0.05


# -- per-dataset statistics -----------------------------------------------------------------

def rank_of_truth(draws: np.ndarray, truth: np.ndarray | float,
                  rng: np.random.Generator) -> np.ndarray:
    """Rank of the true value among posterior draws, ties broken at random.

    Parameters
    ----------
    draws
        Posterior draws, shape ``(..., L)`` (the last axis holds the ``L`` draws), in the
        quantity's unit.
    truth
        True values, shape ``(...)`` (broadcast against ``draws[..., 0]``), same unit.
    rng
        Random generator for the tie-breaking.

    Returns
    -------
    numpy.ndarray of int
        Number of draws below the truth plus a uniform share of the draws equal to it: an
        integer in ``{0, ..., L}``, uniform over datasets when the posterior is calibrated.
        Discrete quantities (counts) tie often; the random split keeps their ranks uniform.
    """
    draws = np.asarray(draws, dtype=float)
    truth = np.asarray(truth, dtype=float)[..., None]
    below = (draws < truth).sum(axis=-1)
    ties = (draws == truth).sum(axis=-1)
    return below + rng.integers(0, ties + 1)


def eti_covers(draws: np.ndarray, truth: np.ndarray | float, prob: float = 0.9) -> np.ndarray:
    """Whether the equal-tailed posterior interval of probability ``prob`` covers the truth.

    Parameters
    ----------
    draws
        Posterior draws, shape ``(..., N)``, in the quantity's unit.
    truth
        True values, shape ``(...)``.
    prob
        Probability of the central interval (0.9: from the 5 % to the 95 % quantile).

    Returns
    -------
    numpy.ndarray of bool
        ``lower <= truth <= upper`` per quantity.
    """
    tail = (1.0 - prob) / 2.0
    lower, upper = np.quantile(np.asarray(draws, dtype=float), [tail, 1.0 - tail], axis=-1)
    truth = np.asarray(truth, dtype=float)
    return (lower <= truth) & (truth <= upper)


def thin_indices(n: int, size: int) -> np.ndarray:
    """``size`` indices spread evenly over ``n`` draws (thinning for the ranks).

    Raises
    ------
    ValueError
        If fewer than ``size`` draws are available.
    """
    if size > n:
        raise ValueError(f"cannot thin {n} draws to {size}")
    return np.linspace(0, n - 1, size).round().astype(int)


def split_rhat(x: np.ndarray) -> float:
    """Split R-hat (Gelman et al. 2013, BDA3 eq. 11.4) of draws shaped ``(chain, draw)``.

    Returns
    -------
    float
        1 for well-mixed chains; NaN when the draws do not vary (a constant quantity).
    """
    x = np.asarray(x, dtype=float)
    half = x.shape[1] // 2
    parts = np.concatenate([x[:, :half], x[:, half:2 * half]], axis=0)
    n = parts.shape[1]
    w = parts.var(axis=1, ddof=1).mean()
    b = n * parts.mean(axis=1).var(ddof=1)
    if not np.isfinite(w) or w <= 0:
        return float("nan")
    return float(np.sqrt(((n - 1) / n * w + b / n) / w))


# -- summaries over datasets ------------------------------------------------------------------

def rank_histogram(ranks: np.ndarray, n_ranks: int, bins: int = 10) -> np.ndarray:
    """Counts of ranks in ``bins`` equal bins of the ``n_ranks + 1`` possible ranks.

    Parameters
    ----------
    ranks
        Ranks in ``{0, ..., n_ranks}`` (one per dataset).
    n_ranks
        ``L``, the number of posterior draws the ranks were taken among.
    bins
        Number of bins; must divide ``L + 1`` so every bin holds as many possible ranks.

    Raises
    ------
    ValueError
        If ``bins`` does not divide ``L + 1`` or a rank lies outside ``{0, ..., L}``.
    """
    ranks = np.asarray(ranks, dtype=int)
    if (n_ranks + 1) % bins:
        raise ValueError(f"{bins} bins do not split the {n_ranks + 1} possible ranks equally")
    if ranks.size and (ranks.min() < 0 or ranks.max() > n_ranks):
        raise ValueError(f"ranks must lie in 0..{n_ranks}")
    return np.bincount(ranks * bins // (n_ranks + 1), minlength=bins)


def chi2_uniformity(ranks: np.ndarray, n_ranks: int, bins: int = 10
                    ) -> tuple[float, float, np.ndarray]:
    """Pearson chi-square test that ranks are uniform on ``{0, ..., L}``.

    Ranks are grouped in ``bins`` equal bins (:func:`rank_histogram`); under uniformity each
    bin expects ``n / bins`` ranks and the statistic is chi-square with ``bins - 1`` degrees of
    freedom (use ``n / bins >= 5``: with 100 datasets and 10 bins, 10 per bin).

    Returns
    -------
    statistic, p_value, counts
        The chi-square statistic, its upper-tail p-value (small: ranks not uniform) and the
        bin counts.
    """
    counts = rank_histogram(ranks, n_ranks, bins)
    n = counts.sum()
    if n == 0:
        return float("nan"), float("nan"), counts
    expected = n / bins
    stat = float(((counts - expected) ** 2 / expected).sum())
    return stat, float(stats.chi2.sf(stat, bins - 1)), counts


def bonferroni(p_values: Sequence[float] | np.ndarray, alpha: float = ALPHA
               ) -> dict[str, Any]:
    """Bonferroni-adjusted verdict over several rank tests (one per quantity).

    Returns
    -------
    dict
        ``m`` (tests), ``min_p``, ``adjusted_min_p`` (``min(1, m x min_p)``), ``alpha`` and
        ``uniform`` (``adjusted_min_p >= alpha``: no test rejects at family-wise level
        ``alpha``).
    """
    p = np.asarray([v for v in p_values if np.isfinite(v)], dtype=float)
    if not p.size:
        return {"m": 0, "min_p": None, "adjusted_min_p": None, "alpha": alpha, "uniform": None}
    adjusted = min(1.0, float(p.min()) * p.size)
    return {"m": int(p.size), "min_p": float(p.min()), "adjusted_min_p": adjusted,
            "alpha": alpha, "uniform": adjusted >= alpha}


def coverage_summary(covered: np.ndarray, band: tuple[float, float] = COVERAGE_BAND
                     ) -> dict[str, Any]:
    """Share of datasets whose interval covered the truth, with its binomial standard error.

    Parameters
    ----------
    covered
        One bool per dataset.
    band
        Range of coverage that counts as calibrated.

    Returns
    -------
    dict
        ``n``, ``covered`` (count), ``coverage`` (share), ``se`` (``sqrt(c (1 - c) / n)``) and
        ``in_band``.
    """
    covered = np.asarray(covered, dtype=bool)
    n = int(covered.size)
    if not n:
        return {"n": 0, "covered": 0, "coverage": None, "se": None, "in_band": None}
    c = float(covered.mean())
    return {"n": n, "covered": int(covered.sum()), "coverage": c,
            "se": math.sqrt(c * (1 - c) / n), "in_band": band[0] <= c <= band[1]}


def verdict(quantities: Mapping[str, QuantityResult], headline: Sequence[str],
            band: tuple[float, float] = COVERAGE_BAND, alpha: float = ALPHA,
            n_ranks: int = 99, bins: int = 10, mask: np.ndarray | None = None
            ) -> dict[str, Any]:
    """Calibration verdict of one model over its quantities.

    ``PASS`` when every headline quantity's coverage lies in ``band`` and the ranks of all
    quantities are uniform at family-wise level ``alpha`` (Bonferroni); otherwise ``FAIL`` with
    the reasons.

    Parameters
    ----------
    quantities
        Per-quantity ranks and coverage indicators over datasets.
    headline
        Names of the quantities whose coverage decides the verdict.
    mask
        Datasets to use (default: all).

    Returns
    -------
    dict
        ``verdict``, ``reasons``, ``headline_coverage`` (pooled over headline quantities),
        ``worst_quantity`` and ``worst_coverage`` (farthest from the nominal level),
        ``bonferroni`` and ``per_quantity`` (coverage summary, histogram counts, chi-square
        statistic and p-value of each quantity).
    """
    per: dict[str, Any] = {}
    for name, q in quantities.items():
        sel = _selection(q, mask)
        cov = coverage_summary(q.covered[sel], band)
        stat, p, counts = chi2_uniformity(q.ranks[sel], n_ranks, bins)
        per[name] = {**cov, "chi2": stat, "chi2_p": p, "rank_counts": counts.tolist(),
                     "headline": name in headline}
    bonf = bonferroni([v["chi2_p"] for v in per.values()], alpha)
    reasons = []
    for name in headline:
        c = per[name]["coverage"]
        if c is None or not per[name]["in_band"]:
            reasons.append(f"{name}: coverage {c} outside {list(band)}")
    if bonf["uniform"] is False:
        worst_p = min(per, key=lambda k: per[k]["chi2_p"])
        reasons.append(f"ranks not uniform: {worst_p} chi-square p {per[worst_p]['chi2_p']:.2g}"
                       f" (Bonferroni-adjusted {bonf['adjusted_min_p']:.2g} < {alpha})")
    nominal = sum(band) / 2
    scored = {k: v for k, v in per.items() if v["coverage"] is not None}
    worst = max(scored, key=lambda k: abs(scored[k]["coverage"] - nominal)) if scored else None
    hl = [quantities[name].covered[_selection(quantities[name], mask)] for name in headline]
    pooled = coverage_summary(np.concatenate(hl), band) if hl else None
    return {"verdict": "PASS" if not reasons else "FAIL", "reasons": reasons,
            "headline_coverage": pooled, "worst_quantity": worst,
            "worst_coverage": scored[worst]["coverage"] if worst else None,
            "quantities_outside_band": sorted(k for k, v in scored.items() if not v["in_band"]),
            "bonferroni": bonf, "per_quantity": per}


def _selection(q: QuantityResult, mask: np.ndarray | None) -> np.ndarray:
    """Datasets in ``mask`` (default: all) whose fit returned draws (finite rank)."""
    finite = np.isfinite(np.asarray(q.ranks, dtype=float))
    return finite if mask is None else finite & mask


# -- the driver -------------------------------------------------------------------------------

@dataclass
class QuantityResult:
    """Ranks and coverage of one scalar quantity over the simulated datasets.

    Attributes
    ----------
    ranks
        Rank of the truth among the ``L`` thinned posterior draws, one per dataset (NaN where
        the fit raised).
    covered
        Whether the ``prob`` equal-tailed interval covered the truth, one per dataset.
    truth
        The simulated true values (the quantity's unit).
    """

    ranks: np.ndarray
    covered: np.ndarray
    truth: np.ndarray


@dataclass
class SBCResult:
    """Outcome of :func:`run_sbc` for one model.

    Attributes
    ----------
    quantities
        Per-quantity ranks and coverage (``name[index]`` for array elements).
    headline
        Quantities whose coverage decides the verdict.
    divergences, max_rhat, fit_seconds
        Per fit: divergent transitions after tuning, the largest split R-hat over the
        quantities, and the sampling wall time (s).
    errors
        Per fit: the sampler's error message, or None. Fits that raised have NaN ranks and are
        left out of every summary (counted in ``n_errors``).
    settings
        Sampler and check settings.
    compile_seconds, prior_seconds, wall_seconds
        Wall times (s): compiling the model, drawing the datasets, the whole check.
    """

    quantities: dict[str, QuantityResult]
    headline: list[str]
    divergences: np.ndarray
    max_rhat: np.ndarray
    fit_seconds: np.ndarray
    errors: list[str | None]
    settings: dict[str, Any]
    compile_seconds: float = 0.0
    prior_seconds: float = 0.0
    wall_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> np.ndarray:
        """Fits that failed convergence: any divergence, or split R-hat above ``rhat_max``."""
        return ((self.divergences > 0) | ~(self.max_rhat <= self.settings["rhat_max"])) & \
            self.ok

    @property
    def ok(self) -> np.ndarray:
        """Fits that returned draws (the sampler raised no error)."""
        return np.array([e is None for e in self.errors])

    def summary(self, exclude_failed: bool = False) -> dict[str, Any]:
        """:func:`verdict` over all fits that returned draws, or over the converged ones."""
        mask = self.ok & ~self.failed if exclude_failed else self.ok
        s = self.settings
        return {"n_datasets": int(mask.sum()),
                **verdict(self.quantities, self.headline, tuple(s["band"]), s["alpha"],
                          s["n_ranks"], s["bins"], mask)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record: settings, fits, and the summaries with and without failed fits."""
        return {
            "settings": self.settings,
            "headline": self.headline,
            "n_datasets": len(self.errors),
            "n_errors": int((~self.ok).sum()),
            "n_failed_convergence": int(self.failed.sum()),
            "failed_fits": {"divergent": int(((self.divergences > 0) & self.ok).sum()),
                            f"rhat_gt_{self.settings['rhat_max']}": int(
                                ((self.max_rhat > self.settings["rhat_max"]) & self.ok).sum()),
                            "rhat_gt_1.01": int(((self.max_rhat > 1.01) & self.ok).sum())},
            "divergences_total": int(self.divergences[self.ok].sum()),
            "max_rhat_median": float(np.nanmedian(self.max_rhat)) if self.ok.any() else None,
            "errors": [e for e in self.errors if e],
            "wall_seconds": round(self.wall_seconds, 1),
            "compile_seconds": round(self.compile_seconds, 1),
            "prior_seconds": round(self.prior_seconds, 1),
            "fit_seconds_median": float(np.median(self.fit_seconds)),
            "all_fits": self.summary(exclude_failed=False),
            "converged_fits_only": self.summary(exclude_failed=True),
            **self.extra,
        }


def _observed_data(model) -> dict[str, Any]:
    """``{observed variable: its pm.Data}``; raises if an observed value is a constant."""
    from pytensor.compile.sharedvalue import SharedVariable

    out = {}
    for rv in model.observed_RVs:
        data = model.rvs_to_values[rv]
        while not isinstance(data, SharedVariable) and data.owner is not None \
                and len(data.owner.inputs) == 1:
            data = data.owner.inputs[0]  # through casts
        if not isinstance(data, SharedVariable):
            raise ValueError(f"observed values of {rv.name} are constants: make them pm.Data "
                             "so the compiled model can be refitted")
        out[rv.name] = data
    return out


def _scalar_quantities(model, prior) -> dict[str, str]:
    """Free parameters on their constrained scale: ``{variable in the trace: free RV}``.

    A non-centred ``<name>_z`` is replaced by its deterministic ``<name>``.
    """
    named = model.named_vars
    det = {d.name for d in model.deterministics}
    out = {}
    for rv in model.free_RVs:
        name = rv.name
        if name.endswith("_z") and name[:-2] in det and name[:-2] in named:
            name = name[:-2]
        if name in prior:
            out[name] = rv.name
    return out


def _flatten(name: str, arr: np.ndarray, coords: Sequence[Sequence[Any]] | None = None
             ) -> dict[str, np.ndarray]:
    """Split ``(samples, *shape)`` into one ``(samples,)`` array per element, named
    ``name[i,j]`` (or ``name[coord,...]``)."""
    arr = np.asarray(arr)
    if arr.ndim == 1:
        return {name: arr}
    out = {}
    for idx in np.ndindex(*arr.shape[1:]):
        label = ",".join(str(coords[k][i]) if coords else str(i) for k, i in enumerate(idx))
        out[f"{name}[{label}]"] = arr[(slice(None), *idx)]
    return out


def run_sbc(
    model_builder: Callable[[], Any],
    n_datasets: int,
    *,
    derived: Callable[[Mapping[str, np.ndarray], np.random.Generator],
                      Mapping[str, np.ndarray]] | None = None,
    headline: Sequence[str] = (),
    draws: int = 500,
    tune: int = 500,
    chains: int = 2,
    n_ranks: int = 99,
    prob: float = 0.9,
    bins: int = 10,
    seed: int = 0,
    band: tuple[float, float] = COVERAGE_BAND,
    alpha: float = ALPHA,
    rhat_max: float = 1.05,
    target_accept: float = 0.8,
    progress: Callable[[int, dict[str, Any]], None] | None = None,
) -> SBCResult:
    """Simulation-based calibration of one PyMC model (see the module docstring).

    Parameters
    ----------
    model_builder
        Returns the model (a ``pm.Model`` whose observed values are ``pm.Data``). Called once:
        the model is compiled once and refitted to every dataset by replacing its data.
    n_datasets
        Number of simulated datasets (100 or more for the 85-95 % band to mean something: the
        binomial se of a 90 % coverage is 3 points at 100).
    derived
        ``derived(values, rng) -> {name: array}``: derived quantities (e.g. flows summed over
        years) from ``values``, a mapping of model variable names to arrays with a leading
        sample axis (prior draws for the truth, posterior draws for the fit). Each returned
        array is ``(samples,)`` or ``(samples, ...)`` (split into elements).
    headline
        Quantities (names as returned by ``derived`` or parameter elements) whose coverage
        decides the verdict.
    draws, tune, chains, target_accept
        NUTS settings of every fit (nutpie, diagonal mass matrix).
    n_ranks
        ``L``: posterior draws (thinned evenly from all chains) among which the truth is ranked.
    prob
        Probability of the equal-tailed interval whose coverage is checked (from all draws).
    bins
        Bins of the chi-square test of uniform ranks (must divide ``L + 1``).
    seed
        Seed of the simulated datasets, the fits (``seed + 1 + i``) and the tie-breaking.
    band, alpha
        Coverage band and family-wise level of the verdict (:func:`verdict`).
    rhat_max
        Split R-hat above which a fit counts as not converged.
    progress
        Called after each fit with its index and ``{"seconds", "divergences", "max_rhat"}``.

    Returns
    -------
    SBCResult
    """
    import nutpie
    import pymc as pm

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    model = model_builder()
    data = _observed_data(model)

    t = time.perf_counter()
    with model:
        pp = pm.sample_prior_predictive(draws=n_datasets, random_seed=seed)
    prior_seconds = time.perf_counter() - t
    prior = {k: v.values[0] for k, v in pp["prior"].data_vars.items()}
    simulated = {k: pp["prior_predictive"][k].values[0] for k in data}
    params = _scalar_quantities(model, prior)

    def collect(values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for name in params:
            dims = model.named_vars_to_dims.get(name)
            coords = [list(model.coords[d]) for d in dims] if dims else None
            out |= _flatten(name, values[name], coords)
        if derived is not None:
            for name, arr in derived(values, rng).items():
                out |= _flatten(name, np.asarray(arr))
        return out

    truths = collect(prior)
    # constant quantities (fixed elements) carry no information about calibration
    names = [k for k, v in truths.items() if np.ptp(v) > 0]
    missing = [h for h in headline if h not in names]
    if missing:
        raise ValueError(f"headline quantities not found (or constant): {missing}")

    t = time.perf_counter()
    compiled = nutpie.compile_pymc_model(model)
    compile_seconds = time.perf_counter() - t

    nan = np.full(n_datasets, np.nan)
    ranks = {k: nan.copy() for k in names}
    covered = {k: np.zeros(n_datasets, bool) for k in names}
    divergences = np.zeros(n_datasets, int)
    max_rhat, fit_seconds = nan.copy(), nan.copy()
    errors: list[str | None] = []
    for i in range(n_datasets):
        t = time.perf_counter()
        updates = {var.name: np.asarray(simulated[obs][i], dtype=var.type.dtype)
                   for obs, var in data.items()}
        try:
            trace = nutpie.sample(compiled.with_data(**updates), chains=chains, draws=draws,
                                  tune=tune, seed=seed + 1 + i, progress_bar=False,
                                  cores=chains, target_accept=target_accept)
        except Exception as e:  # a failed fit is recorded, never dropped silently
            message = " ".join(line.strip() for line in str(e).split("Stack backtrace")[0]
                               .splitlines() if line.strip())
            errors.append(f"dataset {i}: {type(e).__name__}: {message}")
            fit_seconds[i] = time.perf_counter() - t
            continue
        errors.append(None)
        post = trace["posterior"]
        by_chain = {k: post[k].values for k in post.data_vars}
        flat = {k: v.reshape(-1, *v.shape[2:]) for k, v in by_chain.items()}
        fitted = collect(flat)
        keep = thin_indices(chains * draws, n_ranks)
        rhats = []
        for k in names:
            x = fitted[k]
            ranks[k][i] = rank_of_truth(x[keep], truths[k][i], rng)
            covered[k][i] = eti_covers(x, truths[k][i], prob)
            rhats.append(split_rhat(x.reshape(chains, draws)))
        divergences[i] = int(trace["sample_stats"]["diverging"].values.sum())
        max_rhat[i] = np.nanmax(rhats) if np.isfinite(rhats).any() else np.nan
        fit_seconds[i] = time.perf_counter() - t
        if progress is not None:
            progress(i, {"seconds": fit_seconds[i], "divergences": int(divergences[i]),
                         "max_rhat": float(max_rhat[i])})

    quantities = {k: QuantityResult(ranks=ranks[k], covered=covered[k], truth=truths[k])
                  for k in names}
    settings = {"sampler": "nutpie (NUTS, diagonal mass matrix), compiled once, refitted per "
                           "dataset with replaced observed data",
                "chains": chains, "draws": draws, "tune": tune, "target_accept": target_accept,
                "n_ranks": n_ranks, "prob": prob, "bins": bins, "seed": seed,
                "band": list(band), "alpha": alpha, "rhat_max": rhat_max}
    result = SBCResult(quantities=quantities, headline=list(headline), divergences=divergences,
                       max_rhat=max_rhat, fit_seconds=fit_seconds, errors=errors,
                       settings=settings, compile_seconds=compile_seconds,
                       prior_seconds=prior_seconds)
    result.wall_seconds = time.perf_counter() - start
    return result
