"""Theft, extortion and kidnapping (exploitation-type activities; methodology.md B5).

Per crime (``kidnapping`` ICCS 020221, ``extortion`` 02051, ``robbery`` 0401, ``burglary``
0501, ``theft`` 0502), country and year the latent true values are the number of incidents
``n`` and the mean amount per incident ``a`` (ransom, extortion payment or value taken, in local
currency units). Proceeds ``P = n a`` (``theft_proceeds_lcu``; ``theft_proceeds_usd`` at the
market exchange rate).

Incidents are measured by victimisation surveys (``incidents``) or by police records
(``police_incidents``), which see only the reported share: police records measure
``n x reporting_rate``, and surveys' share of victims who reported (``reporting_rate`` rows)
inform that rate. ``mean_amount`` rows measure ``a``. Amounts are in local currency and
converted with ``exchange_rate`` rows (basis ``market``: flows are current USD).

These acts are forced transfers, not production (outside the SNA boundary [S1]); proceeds are
domestic unless payer and receiver are residents of different countries. **Flows** (PROPOSAL; no
published measurement guidance, methodology.md B5), per crime, in current USD:

* generation, inward  = ``s_i P`` -- paid from abroad to resident offenders (ransoms paid by
  relatives abroad, extortion of non-resident firms): ``share_paid_from_abroad``;
* generation, outward = ``(1 - s_i) s_o P`` -- of the proceeds residents pay, the share taken
  by non-resident groups: ``share_nonresident_offenders``;
* management, outward = ``s_a (P - outward generation)`` -- resident offenders' proceeds moved
  abroad: ``share_proceeds_abroad``;
* management, inward  = ``s_v x outward generation`` -- non-resident groups' proceeds from this
  country invested here: ``share_nonresident_invested``.

All default priors are wide, illustrative PROPOSALs: set the cross-border shares from police
intelligence, FIU or case data for a real estimate.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pydantic import Field

from iff.build import BuildContext, as_prior, take_rows
from iff.config import ISO3, Strict
from iff.errors import InputProblem
from iff.flows import flow_array
from iff.market import (
    Market,
    MarketInfo,
    MarketSettings,
    ParameterSpec,
    QuantitySpec,
    Typology,
    priors_model,
)
from iff.models.currency import add_rate, exchange_rate_quantity, missing_rates, rate_parameters
from iff.observations import ObservationTable
from iff.priors import Support

Crime = Literal["kidnapping", "extortion", "robbery", "burglary", "theft"]
#: ICCS code of each crime.
ICCS = {"kidnapping": "020221", "extortion": "02051", "robbery": "0401", "burglary": "0501",
        "theft": "0502"}
KCY = ("crime", "country", "year")
KC = ("crime", "country")
USD = "USD/year (current prices of each year)"
_PROPOSAL = "illustrative PROPOSAL: no published figures"


def _p(name: str, support: Support, unit: str, dims: tuple[str, ...], lo: float, hi: float,
       meaning: str, note: str) -> ParameterSpec:
    # multi-country runs: incidents and amounts vary slowly over years (smoothed); reporting
    # rates and cross-border shares are alike across countries (pooled)
    return ParameterSpec(name, support, unit, dims, {"between": [lo, hi]}, meaning, note,
                         pool=name.startswith("share_") or name == "reporting_rate",
                         smooth="year" in dims)


PARAMETERS: tuple[ParameterSpec, ...] = (
    _p("incidents", Support.POSITIVE, "incidents/year", KCY, 10, 1e7,
       "Incidents in the year (victimised and unreported included).",
       "wide; set it when no survey or police figure informs it"),
    _p("reporting_rate", Support.UNIT, "share", KC, 0.05, 0.8,
       "Share of incidents reported to (and recorded by) the police.", "wide"),
    _p("mean_amount", Support.POSITIVE, "LCU/incident", KCY, 1, 1e8,
       "Mean amount per incident: ransom, extortion payment or value taken (local currency).",
       "wide; the data decide"),
    _p("share_paid_from_abroad", Support.UNIT, "share", KC, 0.005, 0.2,
       "Share of proceeds paid from abroad to resident offenders: inward generation.",
       _PROPOSAL),
    _p("share_nonresident_offenders", Support.UNIT, "share", KC, 0.005, 0.2,
       "Share of the proceeds paid by residents that non-resident groups take: outward "
       "generation.", _PROPOSAL),
    _p("share_proceeds_abroad", Support.UNIT, "share", KC, 0.02, 0.3,
       "Share of resident offenders' proceeds moved abroad: outward management.", _PROPOSAL),
    _p("share_nonresident_invested", Support.UNIT, "share", KC, 0.01, 0.3,
       "Share of non-resident groups' proceeds from this country invested here: inward "
       "management.", _PROPOSAL),
    *rate_parameters(("market",)),
)

QUANTITIES: tuple[QuantitySpec, ...] = (
    QuantitySpec("incidents", "incidents", Support.POSITIVE,
                 "Incidents in the year estimated by a victimisation survey (all incidents, "
                 "reported or not).", needs_item=True, default_cv=0.2),
    QuantitySpec("police_incidents", "incidents", Support.POSITIVE,
                 "Incidents recorded by the police (measures incidents x reporting_rate).",
                 needs_item=True, default_cv=0.05),
    QuantitySpec("reporting_rate", "fraction", Support.UNIT,
                 "Share of incidents reported to the police (victimisation survey; 0-1).",
                 needs_item=True, default_cv=0.2),
    QuantitySpec("mean_amount", "LCU", Support.POSITIVE,
                 "Mean amount per incident (ransom, payment, value taken), local currency.",
                 needs_item=True, default_cv=0.3),
    exchange_rate_quantity(("market",)),
)

TheftPriors = priors_model("theft", PARAMETERS)
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class CrimeSettings(Strict):
    """Settings of one crime."""

    priors: TheftPriors = Field(  # type: ignore[valid-type]
        default_factory=TheftPriors, description="Priors for this crime only.")


class TheftSettings(MarketSettings):
    """Settings of the theft, extortion and kidnapping market."""

    crimes: dict[Crime, CrimeSettings] = Field(
        min_length=1, description="Crimes in the run (kidnapping, extortion, robbery, burglary, "
        "theft) and their settings; {} for defaults.")
    currencies: dict[ISO3, Currency] = Field(
        default_factory=dict, description="ISO 4217 code of each country's local currency, "
        "shown in the units of local-currency results.")


class TheftMarket(Market):
    """Theft, extortion and kidnapping: incidents x mean amount x cross-border shares."""

    name = "theft"
    title = "Theft, extortion and kidnapping"
    typology = Typology.EXPLOITATION
    iccs = tuple(ICCS.values())
    parameters = PARAMETERS
    quantities = QUANTITIES
    Settings = TheftSettings
    settings: TheftSettings

    def items(self) -> list[str]:
        """Crimes configured for the run."""
        return list(self.settings.crimes)

    def check(self, observations: ObservationTable, countries: list[str]) -> list[InputProblem]:
        """A market exchange rate for every country-year; currencies of run countries only;
        no per-crime exchange-rate prior."""
        problems = [InputProblem(f"currency given for {c}, which is not among the run's "
                                 "countries", field=f"markets.theft.currencies.{c}")
                    for c in self.settings.currencies if c not in countries]
        problems += [InputProblem("the exchange rate is the same for every crime: give its "
                                  "prior under markets.theft.priors",
                                  field=f"markets.theft.crimes.{k}.priors.exchange_rate")
                     for k, cs in self.settings.crimes.items()
                     if cs.priors.exchange_rate is not None]  # type: ignore[attr-defined]
        return problems + missing_rates(
            observations, self.name, "market",
            "amounts are in local currency and flows are current USD at market exchange rates")

    def _prior(self, name: str, crime: str):
        """Prior of one element: crime-level > market-level > declared default."""
        for source in (self.settings.crimes[crime].priors, self.settings.priors):  # type: ignore[attr-defined]
            spec = getattr(source, name)
            if spec is not None:
                return spec
        return as_prior(self.parameter(name).default_prior)

    def _param(self, ctx: BuildContext, name: str) -> pt.TensorVariable:
        spec = self.parameter(name)
        grid = np.empty(ctx.shape(spec.dims), dtype=object)
        for i, crime in enumerate(ctx.coord("crime")):
            grid[i, ...] = self._prior(name, crime)
        return ctx.parameter(self, spec, grid)

    def build(self, ctx: BuildContext) -> MarketInfo:
        """Add incidents, amounts, their measurements and the flows to the model."""
        ctx.model.add_coord("crime", self.items())
        rows = ctx.observations.for_market(self.name)
        units = ctx.units

        def det(name: str, value: pt.TensorVariable, dims: tuple[str, ...], unit: str):
            units[f"theft_{name}"] = unit
            return pm.Deterministic(f"theft_{name}", value, dims=dims)

        def measure(code: str, latent: pt.TensorVariable, dims=KCY) -> None:
            rows_q = rows[rows["quantity"] == code]
            if len(rows_q):
                idx = tuple(ctx.index(rows_q, "item" if d == "crime" else d, d) for d in dims)
                ctx.measure(self, self.quantity(code), rows_q, take_rows(latent, idx))

        incidents = self._param(ctx, "incidents")
        amount = self._param(ctx, "mean_amount")
        measure("incidents", incidents)
        measure("mean_amount", amount)
        coded = set(rows["quantity"])
        if coded & {"police_incidents", "reporting_rate"}:
            reporting = self._param(ctx, "reporting_rate")
            measure("reporting_rate", reporting, KC)
            measure("police_incidents", incidents * reporting[:, :, None])

        codes = ", ".join(f"{c}: {self.settings.currencies[c]}" for c in ctx.countries
                          if c in self.settings.currencies)
        lcu = ("LCU/year (local currency units of each country, current prices of each year"
               + (f"; {codes})" if codes else ")"))
        proceeds_lcu = det("proceeds_lcu", incidents * amount, KCY, lcu)
        rate = add_rate(ctx, self, "market",
                        self.settings.priors.exchange_rate)  # type: ignore[attr-defined]
        proceeds = det("proceeds_usd", proceeds_lcu / rate[None], KCY,
                       f"{USD}, market exchange rates; domestic and cross-border")

        s_i = self._param(ctx, "share_paid_from_abroad")[:, :, None]
        s_o = self._param(ctx, "share_nonresident_offenders")[:, :, None]
        s_a = self._param(ctx, "share_proceeds_abroad")[:, :, None]
        s_v = self._param(ctx, "share_nonresident_invested")[:, :, None]
        inward_gen = s_i * proceeds
        outward_gen = (1 - s_i) * s_o * proceeds
        parts = (inward_gen, s_v * outward_gen, outward_gen, s_a * (proceeds - outward_gen))
        det("flows_by_crime", flow_array(*parts), (*KCY, "direction", "phase"), USD)
        # summed over crimes part by part, so that forward draws of the flows alone skip the
        # (crime, ..., direction, phase) array
        return MarketInfo(flows=flow_array(*(part.sum(axis=0) for part in parts)))
