"""Trafficking in persons (exploitation-type activity, ICCS 0204; forms 0203, 0302).

No UNODC formula for trafficking IFFs was found (methodology.md B3: NOT FOUND); this module
implements the PROPOSAL written there, with every assumption a declared parameter.

Victims per country-year come from one of

* a multiple systems estimation list table named in the config (``list_tables``): the Bayesian
  log-linear model of :mod:`iff.models.mse` becomes part of the run's model and the victims are
  ``observed + expected dark figure`` (the Poisson noise of the dark figure, ``sqrt(dark)``, is
  left out: it is small next to the model uncertainty for the tables this is meant for);
* a ``victims`` row in the observation table (an estimate with its se or interval);
* otherwise the ``victims`` prior.

Proceeds (current USD per year) are victims x share of each form of exploitation x proceeds per
victim of that form. Default priors come from the ILO (2024) global figures [S16]: USD 27,252
per victim of forced commercial sexual exploitation, USD 3,687 per victim of other forced
labour, 27 % of victims in sexual exploitation (methodology.md C6). The ``other`` form (forced
begging, criminality, ...) has no published figure: its prior is illustrative.

Flows, with ``P`` the proceeds from victims exploited in the country (all PROPOSAL, B3):

* generation, outward = ``share_nonresident_exploiters`` x P (proceeds accruing to exploiters
  resident abroad);
* generation, inward = ``proceeds_abroad_ratio`` x P (resident exploiters' proceeds from victims
  exploited abroad, as a multiple of P);
* management, outward = ``share_income_abroad`` x resident exploiters' income, where that income
  is ``(1 - share_nonresident_exploiters + proceeds_abroad_ratio) x P``;
* management, inward = ``share_nonresident_invested`` x non-resident exploiters' proceeds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pydantic import Field

from iff.build import BuildContext, take_rows
from iff.config import ISO3
from iff.errors import IffInputError, InputProblem
from iff.flows import flow_array
from iff.market import (
    Market,
    MarketInfo,
    MarketSettings,
    ParameterSpec,
    QuantitySpec,
    Typology,
)
from iff.models.list_table import ListTable, read_list_table
from iff.models.mse import Terms, add_mse, identifiability_warnings
from iff.observations import ObservationTable
from iff.priors import Support

NAME = "trafficking_in_persons"
FORMS = ("sexual_exploitation", "forced_labour", "other")
CY = ("country", "year")
C = ("country",)

PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec(
        "victims", Support.POSITIVE, "persons", CY, {"between": [100, 100_000]},
        "Victims of trafficking in the country-year, all forms (where no list table gives them).",
        "wide; informed by a victims row in the observation table", smooth=True),
    ParameterSpec(
        "share_sexual_exploitation", Support.UNIT, "share", C, {"between": [0.15, 0.45]},
        "Share of victims in forced commercial sexual exploitation.",
        "ILO 2024 [S16]: 27 % of victims worldwide", pool=True),
    ParameterSpec(
        "share_other_forms", Support.UNIT, "share", C, {"between": [0.02, 0.3]},
        "Share of the remaining victims in forms other than forced labour (begging, forced "
        "criminality, ...); the rest are in forced labour.", "illustrative range", pool=True),
    ParameterSpec(
        "proceeds_sexual_exploitation", Support.POSITIVE, "USD/victim/year", C,
        {"between": [10_000, 74_000]},
        "Annual proceeds per victim of forced commercial sexual exploitation (current USD).",
        "ILO 2024 [S16]: 27,252 per victim (median of the default), x/÷ e at 90 %", pool=True),
    ParameterSpec(
        "proceeds_forced_labour", Support.POSITIVE, "USD/victim/year", C,
        {"between": [1_350, 10_000]},
        "Annual proceeds per victim of forced labour (current USD).",
        "ILO 2024 [S16]: 3,687 per victim in forms other than sexual exploitation; ILO 2014: "
        "about 4,000 outside domestic work", pool=True),
    ParameterSpec(
        "proceeds_other", Support.POSITIVE, "USD/victim/year", C, {"between": [1_000, 15_000]},
        "Annual proceeds per victim of other forms of exploitation (current USD).",
        "illustrative range: no published figure", pool=True),
    ParameterSpec(
        "share_nonresident_exploiters", Support.UNIT, "share", C, {"between": [0.05, 0.5]},
        "Share of proceeds from victims exploited in the country that accrues to exploiters "
        "resident abroad (outward, generation).", "PROPOSAL: no published guidance", pool=True),
    ParameterSpec(
        "proceeds_abroad_ratio", Support.POSITIVE, "ratio", C, {"between": [0.01, 0.3]},
        "Resident exploiters' proceeds from victims exploited abroad, relative to the proceeds "
        "from victims exploited in the country (inward, generation).",
        "PROPOSAL: no published guidance", pool=True),
    ParameterSpec(
        "share_income_abroad", Support.UNIT, "share", C, {"between": [0.05, 0.5]},
        "Share of resident exploiters' income moved or invested abroad (outward, management).",
        "PROPOSAL: no published guidance; inform from FIU/AML data", pool=True),
    ParameterSpec(
        "share_nonresident_invested", Support.UNIT, "share", C, {"between": [0.01, 0.3]},
        "Share of non-resident exploiters' proceeds spent or invested in the country (inward, "
        "management).", "PROPOSAL: no published guidance", pool=True),
)

QUANTITIES: tuple[QuantitySpec, ...] = (
    QuantitySpec("victims", "persons", Support.POSITIVE,
                 "Estimated victims in the country-year (all forms), e.g. an MSE estimate made "
                 "elsewhere; give se or lower/upper.", default_cv=0.3),
    QuantitySpec("proceeds_per_victim", "USD", Support.POSITIVE,
                 "Annual proceeds per victim of one form (item: sexual_exploitation, "
                 "forced_labour, other), current USD.", needs_item=True, default_cv=0.3),
    QuantitySpec("form_share", "fraction", Support.UNIT,
                 "Share of victims in one form of exploitation (item), e.g. from detected "
                 "victims.", needs_item=True, default_cv=0.2),
)

_PROCEEDS = {"sexual_exploitation": "proceeds_sexual_exploitation",
             "forced_labour": "proceeds_forced_labour", "other": "proceeds_other"}


class TraffickingSettings(MarketSettings):
    """Settings of the trafficking in persons market."""

    list_tables: dict[ISO3, dict[int, str]] = Field(
        default_factory=dict,
        description="MSE list tables (CSV: one 0/1 column per list, then count) by country and "
        "year, relative to the config file; they give that country-year's victims.")
    mse_order: Literal[1, 2, 3] = Field(
        2, description="Highest order of list interactions in the MSE model (2: all two-list "
        "interactions under a shrinkage prior).")

    def input_files(self, base_dir: Path) -> dict[str, Path]:
        """The list tables, keyed by their config field."""
        return {f"markets.{NAME}.list_tables.{c}.{y}": Path(os.path.normpath(base_dir / p))
                for c, by_year in self.list_tables.items() for y, p in by_year.items()}


class TraffickingMarket(Market):
    """Trafficking in persons: victims x proceeds per victim by form, split by residency."""

    name = NAME
    title = "Trafficking in persons"
    typology = Typology.EXPLOITATION
    partner_meaning = (
        "outward: countries of residence of non-resident exploiters; inward: countries where "
        "resident exploiters' victims are exploited abroad (origin or destination countries of "
        "victims)")
    iccs = ("0204", "0203", "0302")
    parameters = PARAMETERS
    quantities = QUANTITIES
    Settings = TraffickingSettings
    settings: TraffickingSettings

    def __init__(self, settings: TraffickingSettings):
        super().__init__(settings)
        self.tables: dict[tuple[str, int], ListTable] = {}

    def items(self) -> list[str]:
        """Forms of exploitation (``item`` of proceeds_per_victim and form_share rows)."""
        return list(FORMS)

    def has_data(self) -> bool:
        """List tables condition the model."""
        return bool(self.settings.list_tables)

    def load_inputs(self, files: Mapping[str, Path]) -> list[InputProblem]:
        """Read and check every list table."""
        problems: list[InputProblem] = []
        for c, by_year in self.settings.list_tables.items():
            for y in by_year:
                path = files[f"markets.{NAME}.list_tables.{c}.{y}"]
                try:
                    self.tables[(c, y)] = read_list_table(path, str(path))
                except IffInputError as e:
                    problems.extend(e.problems)
        return problems

    def check(self, observations: ObservationTable, countries: list[str]) -> list[InputProblem]:
        """List tables belong to the run's countries and years."""
        problems = []
        for (c, y), table in self.tables.items():
            field = f"markets.{NAME}.list_tables.{c}.{y}"
            if c not in countries:
                problems.append(InputProblem(
                    f"list table for {c}, which is not among the run's countries", field=field))
            elif y not in self.years:
                problems.append(InputProblem(
                    f"list table for year {y}, which is not among the run's years", field=field))
            else:
                self.warnings += identifiability_warnings(
                    table, Terms.up_to(len(table.lists), self.settings.mse_order))
        return problems

    # -- model ------------------------------------------------------------------------------------
    def _param(self, ctx: BuildContext, name: str, **kw) -> pt.TensorVariable:
        spec = self.parameter(name)
        return ctx.parameter(self, spec, getattr(self.settings.priors, name), **kw)  # type: ignore[attr-defined]

    def build(self, ctx: BuildContext) -> MarketInfo:
        """Add victims (MSE or prior), proceeds by form, observations and flows."""
        ctx.model.add_coord("form", list(FORMS))
        rows = ctx.observations.for_market(self.name)
        units = ctx.units

        def det(name: str, value, dims: tuple[str, ...], unit: str):
            units[f"{NAME}_{name}"] = unit
            return pm.Deterministic(f"{NAME}_{name}", value, dims=dims)

        victims = self._victims(ctx)
        sexual = self._param(ctx, "share_sexual_exploitation")
        other = self._param(ctx, "share_other_forms")
        shares = det("form_share", pt.stack(
            [sexual, (1 - sexual) * (1 - other), (1 - sexual) * other], axis=-1),
            ("country", "form"), "share")
        per_victim = det("proceeds_per_victim", pt.stack(
            [self._param(ctx, _PROCEEDS[f]) for f in FORMS], axis=-1), ("country", "form"),
            "USD/victim/year")

        def measure(code: str, latent, dims) -> None:
            rows_q = rows[rows["quantity"] == code]
            if len(rows_q):
                idx = tuple(ctx.index(rows_q, "item" if d == "form" else d, d) for d in dims)
                ctx.measure(self, self.quantity(code), rows_q, take_rows(latent, idx))

        measure("proceeds_per_victim", per_victim, ("country", "form"))
        measure("form_share", shares, ("country", "form"))

        by_form = det("proceeds_by_form", victims[:, :, None] * (shares * per_victim)[:, None, :],
                      (*CY, "form"), "USD/year (current)")
        proceeds = det("proceeds", by_form.sum(axis=-1), CY, "USD/year (current)")
        n = self._param(ctx, "share_nonresident_exploiters")[:, None]
        a = self._param(ctx, "proceeds_abroad_ratio")[:, None]
        m = self._param(ctx, "share_income_abroad")[:, None]
        v = self._param(ctx, "share_nonresident_invested")[:, None]
        return MarketInfo(flows=flow_array(a * proceeds, v * n * proceeds,
                                           n * proceeds, m * (1 - n + a) * proceeds))

    def _victims(self, ctx: BuildContext) -> pt.TensorVariable:
        """Victims (country, year): MSE where a list table is given, else the prior, measured
        by ``victims`` rows."""
        spec = self.parameter("victims")
        prior = self.settings.priors.victims  # type: ignore[attr-defined]
        grid = np.empty(ctx.shape(CY), dtype=object)
        grid.fill(prior if prior is not None else spec.default_prior)
        for c, y in self.tables:
            grid[ctx.countries.index(c), ctx.years.index(y)] = {"fixed": 1}
        victims = ctx.parameter(self, spec, grid, name=f"{NAME}_victims_prior")
        for (c, y), table in sorted(self.tables.items()):
            prefix = f"{NAME}_mse_{c}_{y}"
            mse = add_mse(prefix, table, Terms.up_to(len(table.lists), self.settings.mse_order))
            ctx.units[f"{prefix}_dark_rate"] = "persons"
            victims = pt.set_subtensor(
                victims[ctx.countries.index(c), ctx.years.index(y)],
                table.observed + mse.dark_rate)
        ctx.units[f"{NAME}_victims"] = "persons"
        victims = pm.Deterministic(f"{NAME}_victims", victims, dims=CY)
        rows = ctx.observations.for_market(self.name)
        rows_v = rows[rows["quantity"] == "victims"]
        if len(rows_v):
            idx = (ctx.index(rows_v, "country", "country"), ctx.index(rows_v, "year", "year"))
            ctx.measure(self, self.quantity("victims"), rows_v, take_rows(victims, idx))
        return victims
