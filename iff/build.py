"""Shared services for markets while they add variables to the run's one PyMC model.

:class:`BuildContext` gives a market its coords, its observations, parameters with priors that
may differ element by element (e.g. by a country's role) while staying vectorised, and
measurement terms indexed by the observation table's rows.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from iff.market import Market, ParameterSpec, QuantitySpec
from iff.models.measurement import cv_sigma, measurement_sigma, observe
from iff.models.structure import STRUCTURED_FAMILIES, structured_variable
from iff.observations import ObservationTable
from iff.priors import PriorSpecT, as_prior, describe, resolve

__all__ = ["BuildContext", "as_prior"]


@dataclass
class BuildContext:
    """What a market needs to add its part to the model.

    Attributes
    ----------
    model
        The run's PyMC model (markets add to it inside ``with ctx.model``).
    countries, years
        Coords of the run.
    observations
        The validated observation table (all markets).
    priors_used
        Filled while building: ``{variable: description of its prior(s)}``, stored in provenance.
    units
        Filled while building: units of named model variables.
    flows
        Flows ``(country, year, direction, phase)`` of the markets built so far, by market name
        (markets build in registry order), so a later market can correct a known overlap.
    corrections
        Filled while building: overlap corrections applied, ``{market: description}``; stored
        in provenance and shown in the summary.
    structure
        Filled while building: parameters pooled across countries and/or smoothed across
        years (:mod:`iff.models.structure`), ``{variable: {"pool": bool, "smooth": bool}}``.
    """

    model: pm.Model
    countries: list[str]
    years: list[int]
    observations: ObservationTable
    priors_used: dict[str, str] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    flows: dict[str, pt.TensorVariable] = field(default_factory=dict)
    corrections: dict[str, str] = field(default_factory=dict)
    structure: dict[str, dict[str, bool]] = field(default_factory=dict)

    def coord(self, dim: str) -> list[Any]:
        """Values of a model coord."""
        return list(self.model.coords[dim])

    def shape(self, dims: tuple[str, ...]) -> tuple[int, ...]:
        """Lengths of the given dims."""
        return tuple(len(self.model.coords[d]) for d in dims)

    def parameter(
        self, market: Market, spec: ParameterSpec, priors: np.ndarray | PriorSpecT | None = None,
        name: str | None = None,
    ) -> pt.TensorVariable:
        """Add one declared parameter of a market, vectorised over its dims.

        Parameters
        ----------
        market
            The market adding it; the variable is named ``<market>_<parameter>``.
        spec
            The declared parameter.
        priors
            A prior for all elements, an object array of priors with the parameter's shape
            (elements may differ, e.g. by a country's role), or None for the declared default.
        name
            Variable name, when the market keeps ``<market>_<parameter>`` for a derived
            variable (e.g. victims combining a prior with list tables).

        Returns
        -------
        pytensor.tensor.TensorVariable
            The parameter with shape of ``spec.dims``. Elements whose priors share a family are
            one vectorised variable; fixed elements are constants.
        """
        name = name or f"{market.name}_{spec.name}"
        shape = self.shape(spec.dims)
        resolved = self.resolve_priors(name, spec, priors)
        groups: dict[str, list[int]] = defaultdict(list)
        for i, (family, _) in enumerate(resolved):
            groups[family].append(i)

        if len(groups) == 1 and "Fixed" not in groups:
            family = next(iter(groups))
            params = {k: np.array([r[1][k] for r in resolved]).reshape(shape)
                      for k in resolved[0][1]}
            pool, smooth = market.structure(spec)
            if (pool or smooth) and family in STRUCTURED_FAMILIES:
                self.structure[name] = {"pool": pool, "smooth": smooth}
                return structured_variable(name, family, params, spec.dims,
                                           dict(self.model.coords), pool=pool, smooth=smooth)
            return _family_variable(name, family, params, spec.dims)

        # Mixed families: one flat variable per family, scattered into the full array.
        out = pt.zeros(int(np.prod(shape)))
        for family, idx in groups.items():
            idx_arr = np.array(idx)
            if family == "Fixed":
                values = np.array([resolved[i][1]["value"] for i in idx])
                out = pt.set_subtensor(out[idx_arr], values)
                continue
            params = {k: np.array([resolved[i][1][k] for i in idx]) for k in resolved[idx[0]][1]}
            dim = f"{name}_{family.lower()}_element"
            self.model.add_coord(dim, np.arange(len(idx)))
            var = _family_variable(f"{name}_{family.lower()}", family, params, (dim,))
            out = pt.set_subtensor(out[idx_arr], var)
        if set(groups) == {"Fixed"}:
            return pt.as_tensor_variable(out.reshape(shape))
        return pm.Deterministic(name, out.reshape(shape), dims=spec.dims)

    def resolve_priors(self, name: str, spec: ParameterSpec,
                       priors: np.ndarray | PriorSpecT | None) -> list[tuple[str, dict]]:
        """Each element's prior as ``(family, parameters)``, in C order of ``spec.dims``.

        ``priors`` is as in :meth:`parameter`. Records the variable's unit and a description of
        its priors under ``name`` (for the results' provenance).
        """
        if priors is None:
            priors = as_prior(spec.default_prior)
        if not isinstance(priors, np.ndarray):
            grid = np.empty(self.shape(spec.dims), dtype=object)
            grid.fill(priors)
            priors = grid
        self.units[name] = spec.unit
        flat = [as_prior(p) for p in priors.ravel()]
        self.priors_used[name] = "; ".join(sorted({describe(p, spec.support) for p in flat}))
        return [resolve(p, spec.support) for p in flat]

    def measure(
        self,
        market: Market,
        quantity: QuantitySpec,
        rows: pd.DataFrame,
        latent_at_rows: pt.TensorVariable,
        name: str | None = None,
        sigma_extra: np.ndarray | None = None,
        cv: np.ndarray | pt.TensorVariable | None = None,
    ) -> None:
        """Add a likelihood term for the rows of one quantity code.

        Parameters
        ----------
        market, quantity
            Who measures what (decides the support, default CV and variable name).
        rows
            The observation rows (same order as ``latent_at_rows``).
        latent_at_rows
            True values at those rows, in the quantity's unit.
        name
            Variable name (default ``<market>_<quantity>_obs``).
        sigma_extra
            Extra variance on the measurement scale, added to each row's (for derived measures
            that combine several rows).
        cv
            One value per row: the relative error of rows that state no ``se``/``lower``/
            ``upper``, in place of the quantity's ``default_cv``. Numbers, or a model variable
            (so the data can inform how precise unstated figures are).
        """
        name = name or f"{market.name}_{quantity.code}_obs"
        if isinstance(cv, np.ndarray):
            quantity, cv = dataclasses.replace(quantity, default_cv=cv), None
        sigma = self.sigma(quantity, rows)
        if sigma_extra is not None:
            sigma = np.sqrt(sigma**2 + sigma_extra**2)
        if cv is not None:
            stated = (np.isfinite(rows["se"].to_numpy(float))
                      | np.isfinite(rows["lower"].to_numpy(float)))
            if not stated.all():
                sigma = pt.where(stated, sigma, cv_sigma(rows["value"].to_numpy(float),
                                                         quantity.support, cv))
        dim = f"{name}_line"
        self.model.add_coord(dim, rows["line"].to_numpy(int))
        observe(name, latent_at_rows, rows["value"].to_numpy(float), sigma, quantity.support, dim)
        self.units[name] = quantity.unit

    def sigma(self, quantity: QuantitySpec, rows: pd.DataFrame) -> np.ndarray:
        """Measurement sigma of each row (log scale for positive, logit scale for shares)."""
        return measurement_sigma(
            rows["value"].to_numpy(float), rows["se"].to_numpy(float),
            rows["lower"].to_numpy(float), rows["upper"].to_numpy(float),
            quantity.support, self.observations.interval_prob, quantity.default_cv,
        )

    def index(self, rows: pd.DataFrame, column: str, dim: str) -> np.ndarray:
        """Positions of each row's ``column`` value in the coord ``dim``."""
        lookup = {v: i for i, v in enumerate(self.coord(dim))}
        return np.array([lookup[v] for v in rows[column]], dtype=int)


def take_rows(tensor: pt.TensorVariable, idx: tuple[np.ndarray, ...]) -> pt.TensorVariable:
    """``tensor[idx]``: one element per observation row, ``idx`` holding the rows' positions
    along the leading dims of ``tensor``. The same values as indexing by those arrays, with
    basic indexing where that is possible: when the rows differ along one dim only and are
    consecutive along it (a country's years, say), the others are indexed by their one
    position and that dim by a slice.

    Why: numba compiles the gradient of indexing by several arrays (a scatter by several
    arrays) slowly, 1.4 s on the demo's log density, plus 0.7 s where PyTensor turned a 1 x 1
    case into a diagonal; a slice's gradient is a plain increment.
    """
    arrays = [np.asarray(i, dtype=int) for i in idx]
    n = len(arrays[0])
    if n == 1:
        return tensor[tuple(int(a[0]) for a in arrays)][None]
    varying = [k for k, a in enumerate(arrays) if n and not (a == a[0]).all()]
    if len(varying) == 1 and (np.diff(arrays[varying[0]]) == 1).all():
        key: list[int | slice] = [int(a[0]) for a in arrays]
        key[varying[0]] = slice(key[varying[0]], key[varying[0]] + n)
        return tensor[tuple(key)]
    return tensor[tuple(arrays)]


def _family_variable(name: str, family: str, params: dict[str, np.ndarray],
                     dims: tuple[str, ...]) -> pt.TensorVariable:
    """A variable of one family with array parameters (non-centred for (Log)Normal)."""
    if family in ("LogNormal", "Normal"):
        z = pm.Normal(f"{name}_z", 0.0, 1.0, dims=dims)
        value = params["mu"] + params["sigma"] * z
        return pm.Deterministic(name, pt.exp(value) if family == "LogNormal" else value, dims=dims)
    return getattr(pm, family)(name, **params, dims=dims)
