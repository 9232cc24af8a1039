"""Bayesian log-linear multiple systems estimation (MSE) of a hidden population.

Cases seen on ``K`` overlapping lists (2 to about 10) are counted by capture pattern: the
table has one count for every observable pattern ``w`` in ``{0, 1}^K \\ {0}`` (patterns not in the
file count 0). The model (Fienberg 1972; Bayesian form as in Madigan & York 1997) is

    y_w ~ Poisson(mu_w),  log mu_w = alpha + sum_k beta_k w_k + sum_{j<k} gamma_jk w_j w_k [+ ...]

The unobserved all-zero cell has expectation ``exp(alpha)``: the dark figure. The total
population is ``observed + dark`` with ``dark ~ Poisson(exp(alpha))``.

Priors (PROPOSAL, chosen so that the data decide the dependence between lists):

* ``alpha ~ Normal(log n_observed, 5)`` -- nearly flat on the log of the dark figure;
* ``beta_k ~ Normal(0, 5)``;
* two-list interactions ``gamma_jk = tau_2 * z_jk`` with ``z_jk ~ Normal(0, 1)`` (non-centred,
  because hierarchical scales mix slowly) and ``tau_2 ~ HalfNormal(1)``: a shared scale, so a
  table whose lists are nearly independent shrinks every interaction to zero, and one with strong
  dependence lets them grow;
* optional three-list terms with their own scale ``tau_3``.

Two situations leave the dark figure without information from the data, and both are reported
as warnings (:func:`identifiability_warnings`):

* lists that never overlap: their interaction is identified only by the prior;
* tables for which the maximum-likelihood estimate of the dark figure does not exist (is
  infinite) under the chosen terms, found by the linear-programming test of Fienberg & Rinaldo
  (2012) as applied to MSE by Chan, Silverman & Vincent (2021, JASA 116:1297): a direction in
  parameter space along which the likelihood never falls while ``alpha`` grows.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy.optimize import linprog

from iff.diagnostics import Convergence, check_convergence
from iff.forward import deterministics_from_draws
from iff.models.list_table import ListTable, read_list_table
from iff.nutpie_cached import sample_nutpie_cached

__all__ = ["ListTable", "MSEResult", "Terms", "add_mse", "estimate", "identifiability_warnings",
           "read_list_table"]

INTERACTION_SCALE = 1.0  # sd of the half-normal prior of tau_2 and tau_3 (log-rate units)
EFFECT_SD = 5.0  # sd of the normal priors of alpha (around log n_observed) and beta


# -- model terms -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Terms:
    """Interaction terms of a log-linear model, as tuples of list positions.

    Attributes
    ----------
    pairs
        Two-list interactions (all pairs by default).
    triples
        Three-list interactions (none by default).
    """

    pairs: tuple[tuple[int, int], ...]
    triples: tuple[tuple[int, int, int], ...] = ()

    @classmethod
    def up_to(cls, k: int, order: int = 2) -> Terms:
        """All interactions of order 2 (and 3 if ``order == 3``) among ``k`` lists."""
        if order not in (1, 2, 3):
            raise ValueError("order must be 1, 2 or 3")
        pairs = tuple(itertools.combinations(range(k), 2)) if order >= 2 else ()
        triples = tuple(itertools.combinations(range(k), 3)) if order >= 3 else ()
        return cls(pairs, triples)

    def labels(self, lists: tuple[str, ...]) -> tuple[list[str], list[str]]:
        """Names such as ``LA:NG`` of the pair and triple terms."""
        return ([":".join(lists[i] for i in t) for t in self.pairs],
                [":".join(lists[i] for i in t) for t in self.triples])


def design(patterns: np.ndarray, terms: Terms) -> np.ndarray:
    """Design matrix ``[1, w_k..., w_j w_k..., w_i w_j w_k...]`` (rows: patterns)."""
    cols = [np.ones(len(patterns)), *patterns.T]
    cols += [patterns[:, j] * patterns[:, k] for j, k in terms.pairs]
    cols += [patterns[:, i] * patterns[:, j] * patterns[:, k] for i, j, k in terms.triples]
    return np.column_stack(cols).astype(float)


def identifiability_warnings(table: ListTable, terms: Terms) -> list[str]:
    """Warnings about terms and tables the data cannot identify (see the module docstring).

    Returns
    -------
    list of str
        One sentence per problem, each naming the file, the lists or cells that cause it, and
        what to do.
    """
    warnings = []
    silent = [(table.lists[j], table.lists[k]) for j, k in terms.pairs
              if table.overlap(j, k) == 0]
    silent_text = ", ".join(f"{a}-{b}" for a, b in silent)
    if silent:
        warnings.append(
            f"{table.file}: lists never overlap ({silent_text}): their interaction is identified "
            "only by the prior, which keeps it finite")
    empty_cells = unbounded_cells(table, terms)
    if empty_cells:
        cells = ", ".join(empty_cells)
        cause = (f"lists never overlap ({silent_text})" if silent else
                 f"the empty cells {cells} let interaction terms fall without limit")
        warnings.append(
            f"{table.file}: no finite estimate: with these terms the maximum-likelihood dark "
            f"figure is infinite because {cause}; the posterior is held finite only by the "
            "interaction prior, so its upper end reflects the prior. Compare with fewer terms "
            "(--order 1) before publishing")
    return warnings


def unbounded_cells(table: ListTable, terms: Terms) -> list[str]:
    """Empty cells that make the maximum-likelihood dark figure infinite under ``terms``.

    The log-likelihood is flat or rising along a direction ``d`` with ``x_w . d = 0`` on cells
    with cases and ``x_w . d <= 0`` on empty cells; if such a ``d`` raises the intercept (the log
    dark figure), the estimate diverges (Fienberg & Rinaldo 2012). Solved as a linear programme:
    maximise ``d_0`` subject to ``d_0 <= 1``.

    Returns
    -------
    list of str
        Patterns (e.g. ``"011"``) of the empty cells along the diverging direction; empty when
        the estimate is finite.
    """
    x = design(table.patterns, terms)
    pos, zero = table.counts > 0, table.counts == 0
    if not zero.any():
        return []
    c = np.zeros(x.shape[1])
    c[0] = -1.0  # maximise d_0
    bounds = [(None, 1.0)] + [(-1e3, 1e3)] * (x.shape[1] - 1)
    res = linprog(c, A_ub=x[zero], b_ub=np.zeros(zero.sum()), A_eq=x[pos],
                  b_eq=np.zeros(pos.sum()), bounds=bounds, method="highs")
    if res.status != 0 or -res.fun <= 1e-6:
        return []
    falling = (x[zero] @ res.x) < -1e-6
    return ["".join(map(str, p)) for p in table.patterns[zero][falling]]


@dataclass
class MSEVariables:
    """Model variables added by :func:`add_mse` (for markets that build on them).

    Attributes
    ----------
    dark_rate
        Expected number of cases on no list (persons).
    free
        Names of the free random variables (for convergence checks).
    """

    dark_rate: pt.TensorVariable
    free: list[str] = field(default_factory=list)


def add_mse(prefix: str, table: ListTable, terms: Terms | None = None) -> MSEVariables:
    """Add the log-linear MSE model of one table to the current PyMC model.

    Parameters
    ----------
    prefix
        Prefix of the variable names (``<prefix>_alpha`` ...).
    table
        The list table; its counts become the observed Poisson data ``<prefix>_counts``.
    terms
        Interaction terms (default: all two-list interactions).

    Returns
    -------
    MSEVariables
        The expected dark figure and the free variables' names.
    """
    terms = terms or Terms.up_to(len(table.lists))
    model = pm.modelcontext(None)
    pair_labels, triple_labels = terms.labels(table.lists)
    model.add_coord(f"{prefix}_list", list(table.lists))
    model.add_coord(f"{prefix}_pattern", ["".join(map(str, p)) for p in table.patterns])
    alpha = pm.Normal(f"{prefix}_alpha", math.log(max(table.observed, 1)), EFFECT_SD)
    beta = pm.Normal(f"{prefix}_beta", 0.0, EFFECT_SD, dims=f"{prefix}_list")
    free = [f"{prefix}_alpha", f"{prefix}_beta"]
    parts = [alpha[None], beta]
    for order, tuples, labels in ((2, terms.pairs, pair_labels), (3, terms.triples,
                                                                  triple_labels)):
        if not tuples:
            continue
        dim = f"{prefix}_order{order}_term"
        model.add_coord(dim, labels)
        # Non-centred: the interactions are a shared scale times standard normals.
        tau = pm.HalfNormal(f"{prefix}_tau{order}", INTERACTION_SCALE)
        z = pm.Normal(f"{prefix}_z{order}", 0.0, 1.0, dims=dim)
        parts.append(pm.Deterministic(f"{prefix}_gamma{order}", tau * z, dims=dim))
        free += [f"{prefix}_tau{order}", f"{prefix}_z{order}"]
    theta = pt.concatenate(parts)
    log_mu = pt.dot(pt.as_tensor_variable(design(table.patterns, terms)), theta)
    # counts as data (``<prefix>_counts_values``): a compiled model can be refitted to other
    # tables of the same patterns without recompiling (simulation-based calibration, iff.sbc)
    counts = pm.Data(f"{prefix}_counts_values", np.asarray(table.counts, dtype="int64"),
                     dims=f"{prefix}_pattern")
    pm.Poisson(f"{prefix}_counts", pt.exp(log_mu), observed=counts, dims=f"{prefix}_pattern")
    dark = pm.Deterministic(f"{prefix}_dark_rate", pt.exp(alpha))
    return MSEVariables(dark_rate=dark, free=free)


@dataclass
class MSEResult:
    """Posterior of the total population from one list table.

    Attributes
    ----------
    observed
        Distinct cases on at least one list (persons).
    total
        Posterior draws of the total population, ``observed + dark`` (persons), shape
        ``(chain, draw)``.
    prob
        Probability of the equal-tailed interval.
    warnings
        Identifiability warnings (:func:`identifiability_warnings`).
    convergence
        R-hat, bulk ESS and divergence checks of the free variables.
    tree
        The sampler's DataTree (posterior of every model variable).
    """

    observed: int
    total: np.ndarray
    prob: float
    warnings: list[str]
    convergence: Convergence
    tree: xr.DataTree

    @property
    def dark(self) -> np.ndarray:
        """Posterior draws of the dark figure (persons on no list)."""
        return self.total - self.observed

    def summary(self) -> dict[str, float | int]:
        """``observed, mean, median, lower, upper, prob`` (persons; equal-tailed interval)."""
        tail = (1.0 - self.prob) / 2.0
        lower, median, upper = np.quantile(self.total, [tail, 0.5, 1.0 - tail])
        return {"observed": self.observed, "mean": float(self.total.mean()),
                "median": float(median), "lower": float(lower), "upper": float(upper),
                "prob": self.prob}


def estimate(table: ListTable, *, prob: float = 0.95, seed: int = 0, order: int = 2,
             draws: int = 2000, tune: int = 2000, chains: int = 4, cores: int | None = None,
             target_accept: float = 0.98, progressbar: bool = False,
             nuts_sampler: Literal["nutpie", "pymc"] = "nutpie") -> MSEResult:
    """Fit the Bayesian log-linear model to one table and return the total population.

    Parameters
    ----------
    table
        The list table.
    prob
        Probability of the reported equal-tailed interval.
    seed
        Seed of the sampler and of the Poisson draws of the dark figure.
    order
        Highest order of interaction terms: 1 (independent lists), 2 (default), 3.
    draws, tune, chains, cores, target_accept
        NUTS settings (``cores``: PyMC's sampler only, default one per chain up to the CPU
        count). The defaults give bulk ESS well above 400 for the hierarchical scale on the
        reference tables. ``target_accept`` 0.98: tables with no finite maximum-likelihood
        estimate (Korea) form a funnel held only by the interaction prior, where nutpie at 0.95
        left 1-6 divergent transitions (seeds 1-3) and none at 0.98.
    progressbar
        Show the sampler's progress bar.
    nuts_sampler
        ``"nutpie"`` (default): nutpie's NUTS with a low-rank mass matrix on PyTensor's cached
        log density (:mod:`iff.nutpie_cached`), on the UK table 11.5x the minimum ESS per
        second of PyMC's NUTS and 1.16x numpyro's (9.9x and 1.0x before nutpie stopped being
        handed every variable of every draw), all at target_accept 0.98 (benchmarks/RESULTS.md);
        ``"pymc"``: PyMC's own NUTS.
    """
    if not 0 < prob < 1:
        raise ValueError("prob must lie strictly between 0 and 1")
    terms = Terms.up_to(len(table.lists), order)
    # PyMC's own default halves the CPU count (assuming hyper-threads): use every core.
    cores = cores or min(chains, os.cpu_count() or 1)
    with pm.Model() as model:
        variables = add_mse("mse", table, terms)
    if nuts_sampler == "nutpie":
        tree = sample_nutpie_cached(model, variables.free, draws=draws, tune=tune,
                                    chains=chains, seed=seed, target_accept=target_accept,
                                    low_rank=True, progressbar=progressbar)
        posterior = tree["posterior"].to_dataset()
        tree["posterior"] = posterior.merge(deterministics_from_draws(model, posterior))
    else:
        with model:
            tree = pm.sample(draws=draws, tune=tune, chains=chains, cores=cores,
                             target_accept=target_accept, random_seed=seed,
                             nuts_sampler="pymc", progressbar=progressbar,
                             compute_convergence_checks=False)
    rate = tree["posterior"]["mse_dark_rate"].values
    # The dark figure is a Poisson count given the model's expected value.
    rng = np.random.default_rng(seed)
    total = table.observed + rng.poisson(np.minimum(rate, 1e15)).astype(float)
    convergence = check_convergence(tree, variables.free)
    return MSEResult(observed=table.observed, total=total, prob=prob,
                     warnings=identifiability_warnings(table, terms), convergence=convergence,
                     tree=tree)
