"""Corruption: bribery (ICCS 07031), optionally embezzlement and grand corruption (07032).

**Bribery of households** (methodology.md B4; NBS/UNODC surveys, SDG 16.5.1). Per country and
year the latent true values are the adult population ``A``, the contact rate with public
officials ``c``, the prevalence of bribery among those with contact ``p``, bribes per bribe-payer
``k``, the share of bribes paid in cash ``s`` and the mean cash bribe ``m`` (local currency).
Then

* number of bribes ``N = A c p k`` (``corruption_bribes``; bribe-payers ``A c p``);
* total value of cash bribes ``bribes_value_lcu = N s m`` and ``bribes_value_usd`` (converted at
  the basis chosen by ``usd_basis``; the names are exactly those of the issue and the docs, not
  ``corruption_...``, so researchers find them).

Every published component is a noisy measurement of its latent value: ``adults``,
``contact_rate``, ``prevalence``, ``bribes_per_payer``, ``cash_share``, ``mean_cash_bribe``,
and the derived ``total_bribes`` (measures ``N``) and ``bribes_per_adult`` (measures ``c p k``).
Published components are rounded and do not multiply out exactly, so the posterior reconciles
them instead of picking one. Rows with ``se`` or ``lower``/``upper`` use that uncertainty; rows
without use the relative error ``component_cv`` of their country: fixed at 5 % by default, the
size of the disagreement between the published Nigeria components (methodology.md C3), well
above their rounding error. Given a prior instead, it is one model variable per country that the
disagreement between the components informs (the more they disagree, the wider every interval);
the published figures then pin the latent values so closely when it is small that NUTS needs
``target_accept: 0.95`` to avoid divergences (measured on the Nigeria pilot).

The 2017 Nigeria report's total is ``N x cash share x mean cash bribe``; the 2019 and 2023
totals reproduce as ``N x mean cash bribe`` (methodology.md C3): for those, set ``cash_share``
to ``{fixed: 1}`` and leave cash-share rows out.

**Bribery of businesses** (``business: true``; SDG 16.5.2 surveys): firms x contact rate x
prevalence among firms with contact x bribes per paying firm x mean bribe (local currency),
``corruption_business_bribes_value_lcu``.

**Grand corruption** (``grand_corruption: true``): a yearly amount ``G`` (local currency) of
embezzled public funds and large-scale bribes that household and business surveys do not see,
from a prior or ``grand_corruption`` rows.

Domestic bribery is context, never a flow. **Flows** (PROPOSAL; the framework only says the acts
count when they generate cross-border flows [S1]). With ``V`` the value of bribes paid by
residents to resident officials that the surveys measure (household cash bribes, plus business
bribes when enabled), in current USD at the **market** exchange rate:

* generation, inward  = ``V s_n / (1 - s_n) + g_n G`` -- bribes paid by non-residents to
  resident officials: ``s_n`` (``share_nonresident_payers``) is their share of all bribes that
  resident officials receive, ``g_n`` (``share_grand_from_nonresidents``) the share of ``G``
  paid by non-residents (e.g. foreign companies' kickbacks);
* generation, outward = ``V s_f / (1 - s_f)`` -- bribes paid by residents to foreign officials:
  ``s_f`` (``share_foreign_officials``) is their share of all bribes residents pay;
* management, outward = ``s_a (V + inward petty bribes) + g_a G`` -- bribe income moved abroad
  by resident officials (``share_income_abroad``, ``share_grand_abroad``);
* management, inward = 0 (not modelled).

**Overlap with drugs** (methodology.md B6, [S1]: "drug trafficking and bribery"). When the run
also has the drugs market, a share ``share_bribes_from_drug_proceeds`` (per country) of
corruption's cross-border bribes (generation flows, both directions) is taken to be paid out of
drug proceeds. Those payments are already inside drugs' management flows of the same direction:
resident traffickers' revenue moved or spent abroad (outward), non-resident suppliers' revenue
spent or invested here (inward). They are removed from corruption's generation flows, at most
the drugs management flow of the same country, year and direction, so nothing is counted twice
and nothing is subtracted that drugs did not count. The amount removed is
``corruption_drug_overlap(country, year, direction)``; the results' provenance
(``overlap_corrections``) and the summary's ``corrections`` column say it applied. Without
drugs in the run there is nothing to correct and the parameter is not used.

Default priors of the cross-border shares, of grand corruption and of the overlap share are
illustrative PROPOSALs: no published figures exist (methodology.md B4). Set them for a real
estimate.
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
from iff.models.currency import (
    BASES,
    add_rate,
    exchange_rate_quantity,
    missing_rates,
    rate_parameters,
)
from iff.observations import ObservationTable
from iff.priors import FixedPrior, Support

CY = ("country", "year")
C = ("country",)
LCU = "LCU"
USD = "USD/year (current prices of each year)"


def _p(name: str, support: Support, unit: str, dims: tuple[str, ...], lo: float, hi: float,
       meaning: str, note: str = "") -> ParameterSpec:
    # multi-country runs: survey components vary slowly over years (smoothed); cross-border
    # shares are alike across countries (pooled)
    return ParameterSpec(name, support, unit, dims, {"between": [lo, hi]}, meaning, note,
                         pool=name.startswith("share_"), smooth="year" in dims)


_WIDE = "wide; the survey data decide"
_PROPOSAL = "illustrative PROPOSAL: no published figures"
SURVEY_PARAMETERS: tuple[ParameterSpec, ...] = (
    _p("adults", Support.POSITIVE, "persons", CY, 1e4, 1e9,
       "Adult population covered by the household survey.", _WIDE),
    _p("contact_rate", Support.UNIT, "share", CY, 0.1, 0.9,
       "Share of adults with at least one contact with a public official in the year.", _WIDE),
    _p("prevalence", Support.UNIT, "share", CY, 0.01, 0.6,
       "Share of adults with contact who paid at least one bribe (SDG 16.5.1 basis).", _WIDE),
    _p("bribes_per_payer", Support.POSITIVE, "bribes/payer/year", CY, 1, 15,
       "Bribes paid per bribe-payer in the year.", _WIDE),
    _p("cash_share", Support.UNIT, "share", CY, 0.5, 0.99,
       "Share of bribes paid in cash.", _WIDE),
    _p("mean_cash_bribe", Support.POSITIVE, "LCU/bribe", CY, 1, 1e7,
       "Mean cash bribe, local currency units of the year.", _WIDE),
    ParameterSpec(
        "component_cv", Support.POSITIVE, "relative error", C, {"fixed": 0.05},
        "Relative error of survey components published without se or interval (rounding, "
        "sampling, definitions), one per country.",
        "PROPOSAL: 5 %, the size of the disagreement between the published Nigeria components "
        "(methodology.md C3); a prior such as between [0.02, 0.1] lets that disagreement "
        "inform it (sample with target_accept 0.95)"),
)
BUSINESS_PARAMETERS: tuple[ParameterSpec, ...] = (
    _p("firms", Support.POSITIVE, "firms", CY, 100, 1e7,
       "Businesses covered by the business survey (business: true).", _WIDE),
    _p("business_contact_rate", Support.UNIT, "share", CY, 0.2, 0.9,
       "Share of businesses with at least one contact with a public official.", _WIDE),
    _p("business_prevalence", Support.UNIT, "share", CY, 0.01, 0.5,
       "Share of businesses with contact that paid a bribe (SDG 16.5.2 basis).", _WIDE),
    _p("bribes_per_paying_firm", Support.POSITIVE, "bribes/firm/year", CY, 1, 20,
       "Bribes paid per bribe-paying business in the year.", _WIDE),
    _p("mean_business_bribe", Support.POSITIVE, "LCU/bribe", CY, 10, 1e8,
       "Mean bribe paid by businesses, local currency units.", _WIDE),
)
GRAND_PARAMETERS: tuple[ParameterSpec, ...] = (
    _p("grand_corruption_value", Support.POSITIVE, "LCU/year", CY, 1e3, 1e13,
       "Embezzled public funds and large-scale bribes received by officials that surveys do "
       "not see (grand_corruption: true).", "very wide: give a prior or grand_corruption rows"),
    _p("share_grand_from_nonresidents", Support.UNIT, "share", C, 0.05, 0.5,
       "Share of grand corruption paid by non-residents (e.g. foreign companies' kickbacks): "
       "inward generation.", _PROPOSAL),
    _p("share_grand_abroad", Support.UNIT, "share", C, 0.1, 0.7,
       "Share of grand corruption proceeds moved abroad: outward management.", _PROPOSAL),
)
FLOW_PARAMETERS: tuple[ParameterSpec, ...] = (
    _p("share_nonresident_payers", Support.UNIT, "share", C, 0.005, 0.1,
       "Share of all bribes received by resident officials that non-residents pay: inward "
       "generation.", _PROPOSAL),
    _p("share_foreign_officials", Support.UNIT, "share", C, 0.002, 0.05,
       "Share of all bribes paid by residents that goes to foreign officials: outward "
       "generation.", _PROPOSAL),
    _p("share_income_abroad", Support.UNIT, "share", C, 0.02, 0.3,
       "Share of resident officials' bribe income moved abroad: outward management.",
       _PROPOSAL),
    _p("share_bribes_from_drug_proceeds", Support.UNIT, "share", C, 0.01, 0.2,
       "Share of cross-border bribes paid out of drug proceeds, removed from corruption's "
       "generation flows when drugs is in the run (counted there).",
       "illustrative PROPOSAL; used only when drugs is in the run"),
)
PARAMETERS = (*SURVEY_PARAMETERS, *BUSINESS_PARAMETERS, *GRAND_PARAMETERS, *FLOW_PARAMETERS,
              *rate_parameters(("market", "ppp")))


def _q(code: str, unit: str, support: Support, meaning: str, cv: float = 0.05,
       upper: float | None = None) -> QuantitySpec:
    return QuantitySpec(code, unit, support, meaning, default_cv=cv, upper=upper)


SURVEY_QUANTITIES: tuple[QuantitySpec, ...] = (
    _q("adults", "persons", Support.POSITIVE, "Adult population covered by the survey."),
    _q("contact_rate", "fraction", Support.UNIT,
       "Share of adults with at least one contact with a public official (0-1)."),
    _q("prevalence", "fraction", Support.UNIT,
       "Prevalence of bribery among adults with contact (0-1; SDG 16.5.1 basis)."),
    _q("bribes_per_payer", "bribes", Support.POSITIVE,
       "Bribes paid per bribe-payer in the year (at least 1)."),
    _q("cash_share", "fraction", Support.UNIT, "Share of bribes paid in cash (0-1)."),
    _q("mean_cash_bribe", LCU, Support.POSITIVE, "Mean cash bribe, local currency units."),
    _q("total_bribes", "bribes", Support.POSITIVE,
       "Total number of bribes paid in the year (measures adults x contact x prevalence x "
       "bribes per payer)."),
    _q("bribes_per_adult", "bribes", Support.POSITIVE,
       "Bribes per adult in the year (measures contact x prevalence x bribes per payer)."),
)
BUSINESS_QUANTITIES: tuple[QuantitySpec, ...] = (
    _q("firms", "firms", Support.POSITIVE, "Businesses covered by the business survey."),
    _q("business_contact_rate", "fraction", Support.UNIT,
       "Share of businesses with contact with a public official (0-1)."),
    _q("business_prevalence", "fraction", Support.UNIT,
       "Share of businesses with contact that paid a bribe (0-1; SDG 16.5.2 basis)."),
    _q("bribes_per_paying_firm", "bribes", Support.POSITIVE,
       "Bribes per bribe-paying business in the year (at least 1)."),
    _q("mean_business_bribe", LCU, Support.POSITIVE,
       "Mean bribe paid by businesses, local currency units."),
)
QUANTITIES: tuple[QuantitySpec, ...] = (
    *SURVEY_QUANTITIES, *BUSINESS_QUANTITIES,
    _q("grand_corruption", "LCU", Support.POSITIVE,
       "Embezzled funds and large-scale bribes in the year, local currency units (an estimate "
       "with its interval).", cv=0.5),
    exchange_rate_quantity(("market", "ppp")),
)
#: Quantity code -> setting that must be on to use it.
NEEDS_SETTING = {**{q.code: "business" for q in BUSINESS_QUANTITIES},
                 "grand_corruption": "grand_corruption"}
#: Quantities that count events per payer: at least 1 by definition.
AT_LEAST_ONE = ("bribes_per_payer", "bribes_per_paying_firm")

CorruptionPriors = priors_model("corruption", PARAMETERS)
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class CountrySettings(Strict):
    """Settings of one country."""

    priors: CorruptionPriors = Field(  # type: ignore[valid-type]
        default_factory=CorruptionPriors, description="Priors for this country only.")


class CorruptionSettings(MarketSettings):
    """Settings of the corruption market."""

    usd_basis: Literal["market", "ppp"] = Field(
        "market", description="Exchange-rate basis of the context figure bribes_value_usd "
        "(ppp needs exchange_rate rows with item ppp). Flows always use market rates.")
    currencies: dict[ISO3, Currency] = Field(
        default_factory=dict, description="ISO 4217 code of each country's local currency "
        "(e.g. NGA: NGN), shown in the units of local-currency results.")
    business: bool = Field(
        False, description="Add bribery of businesses from business-survey components "
        "(SDG 16.5.2).")
    grand_corruption: bool = Field(
        False, description="Add embezzlement and grand corruption amounts (prior or "
        "grand_corruption rows).")
    countries: dict[ISO3, CountrySettings] = Field(
        default_factory=dict, description="Per-country settings (priors for one country).")


class CorruptionMarket(Market):
    """Corruption: bribery from survey components, cross-border shares give the IFFs."""

    name = "corruption"
    title = "Corruption (bribery, embezzlement)"
    typology = Typology.CORRUPTION
    iccs = ("07031", "07032")
    parameters = PARAMETERS
    quantities = QUANTITIES
    Settings = CorruptionSettings
    settings: CorruptionSettings

    # -- checks before sampling -----------------------------------------------------------------
    def check(self, observations: ObservationTable, countries: list[str]) -> list[InputProblem]:
        """Exchange rates for every country-year, settings that match the data, counts >= 1."""
        s = self.settings
        problems = []
        for key, what in ((s.countries, "countries"), (s.currencies, "currencies")):
            for c in key:
                if c not in countries:
                    problems.append(InputProblem(
                        f"{what} given for {c}, which is not among the run's countries",
                        field=f"markets.corruption.{what}.{c}"))
        problems += missing_rates(
            observations, self.name, "market",
            "corruption amounts are in local currency and flows are current USD at market "
            "exchange rates")
        if s.usd_basis == "ppp":
            problems += missing_rates(observations, self.name, "ppp",
                                      "usd_basis is ppp (bribes_value_usd at PPP)")
        rows = observations.for_market(self.name)
        for _, row in rows.iterrows():
            where = {"file": observations.file, "row": int(row["line"])}
            flag = NEEDS_SETTING.get(row["quantity"])
            if flag and not getattr(s, flag):
                problems.append(InputProblem(
                    f"{row['quantity']} is read only with {flag}: true in "
                    "markets.corruption", field="quantity", **where))
            if row["quantity"] in AT_LEAST_ONE:
                for col in ("value", "lower"):
                    if np.isfinite(row[col]) and row[col] < 1:
                        problems.append(InputProblem(
                            f"{row[col]:g} is below 1; {row['quantity']} counts bribes per "
                            "payer, at least 1 by definition", field=col, **where))
        return problems

    # -- priors -----------------------------------------------------------------------------------
    def _prior(self, name: str, country: str):
        """Prior of one element: country-level > market-level > declared default."""
        cs = self.settings.countries.get(country)
        for source in ((cs.priors if cs else None), self.settings.priors):  # type: ignore[attr-defined]
            spec = None if source is None else getattr(source, name)
            if spec is not None:
                return spec
        return as_prior(self.parameter(name).default_prior)

    def _grid(self, ctx: BuildContext, name: str) -> np.ndarray:
        """Priors of every element of a parameter (they vary by country only)."""
        grid = np.empty(ctx.shape(self.parameter(name).dims), dtype=object)
        for j, country in enumerate(ctx.countries):
            grid[j, ...] = self._prior(name, country)
        return grid

    def _param(self, ctx: BuildContext, name: str) -> pt.TensorVariable:
        return ctx.parameter(self, self.parameter(name), self._grid(ctx, name))

    def _lcu_unit(self, ctx: BuildContext, per: str) -> str:
        codes = ", ".join(f"{c}: {self.settings.currencies[c]}" for c in ctx.countries
                          if c in self.settings.currencies)
        return (f"LCU{per} (local currency units of each country, current prices of each year"
                + (f"; {codes})" if codes else ")"))

    # -- model ------------------------------------------------------------------------------------
    def build(self, ctx: BuildContext) -> MarketInfo:
        """Add survey components, their measurements, context values and flows to the model."""
        s = self.settings
        rows = ctx.observations.for_market(self.name)
        units = ctx.units

        def det(name: str, value: pt.TensorVariable, dims: tuple[str, ...], unit: str,
                prefix: bool = True) -> pt.TensorVariable:
            full = f"corruption_{name}" if prefix else name
            units[full] = unit
            return pm.Deterministic(full, value, dims=dims)

        cv_priors = self._grid(ctx, "component_cv")
        cv_fixed = all(isinstance(p, FixedPrior) for p in cv_priors)
        cv: list[pt.TensorVariable] = []

        def measure(code: str, latent: pt.TensorVariable) -> None:
            """Rows of ``code`` measure ``latent`` (country, year); unstated precision is
            component_cv (numbers when fixed, else one model variable per country)."""
            rows_q = rows[rows["quantity"] == code]
            if rows_q.empty:
                return
            c_idx = ctx.index(rows_q, "country", "country")
            idx = (c_idx, ctx.index(rows_q, "year", "year"))
            if cv_fixed:
                row_cv = np.array([cv_priors[i].fixed for i in c_idx], dtype=float)
            else:
                if not cv:
                    cv.append(ctx.parameter(self, self.parameter("component_cv"), cv_priors))
                row_cv = cv[0][c_idx]
            ctx.measure(self, self.quantity(code), rows_q, take_rows(latent, idx), cv=row_cv)

        # -- household bribery survey -------------------------------------------------------
        adults = self._param(ctx, "adults")
        contact = self._param(ctx, "contact_rate")
        prevalence = self._param(ctx, "prevalence")
        per_payer = self._param(ctx, "bribes_per_payer")
        cash = self._param(ctx, "cash_share")
        mean_cash = self._param(ctx, "mean_cash_bribe")
        payers = det("bribe_payers", adults * contact * prevalence, CY, "persons/year")
        bribes = det("bribes", payers * per_payer, CY, "bribes/year")
        value_lcu = det("bribes_value_lcu", bribes * cash * mean_cash, CY,
                        self._lcu_unit(ctx, "/year") + "; cash bribes", prefix=False)
        for code, latent in (("adults", adults), ("contact_rate", contact),
                             ("prevalence", prevalence), ("bribes_per_payer", per_payer),
                             ("cash_share", cash), ("mean_cash_bribe", mean_cash),
                             ("total_bribes", bribes),
                             ("bribes_per_adult", contact * prevalence * per_payer)):
            measure(code, latent)
        surveyed_lcu = value_lcu

        if s.business:
            firms = self._param(ctx, "firms")
            b_contact = self._param(ctx, "business_contact_rate")
            b_prev = self._param(ctx, "business_prevalence")
            b_per = self._param(ctx, "bribes_per_paying_firm")
            b_mean = self._param(ctx, "mean_business_bribe")
            business_lcu = det("business_bribes_value_lcu",
                               firms * b_contact * b_prev * b_per * b_mean, CY,
                               self._lcu_unit(ctx, "/year"))
            for code, latent in (("firms", firms), ("business_contact_rate", b_contact),
                                 ("business_prevalence", b_prev),
                                 ("bribes_per_paying_firm", b_per),
                                 ("mean_business_bribe", b_mean)):
                measure(code, latent)
            surveyed_lcu = surveyed_lcu + business_lcu

        # -- currency -------------------------------------------------------------------------
        market_rate = add_rate(ctx, self, "market", self._grid(ctx, "exchange_rate"))
        usd_rate = market_rate if s.usd_basis == "market" else add_rate(
            ctx, self, "ppp", self._grid(ctx, "ppp_rate"))
        det("bribes_value_usd", value_lcu / usd_rate, CY,
            f"USD/year (current prices of each year; cash bribes converted at the "
            f"{BASES[s.usd_basis]})", prefix=False)
        surveyed = det("surveyed_bribes_usd", surveyed_lcu / market_rate, CY,
                       f"{USD}, market exchange rates; domestic bribery (context, not an IFF)")

        # -- flows ----------------------------------------------------------------------------
        s_n = self._param(ctx, "share_nonresident_payers")[:, None]
        s_f = self._param(ctx, "share_foreign_officials")[:, None]
        s_a = self._param(ctx, "share_income_abroad")[:, None]
        from_nonresidents = surveyed * s_n / (1 - s_n)
        inward_gen = from_nonresidents
        outward_gen = surveyed * s_f / (1 - s_f)
        outward_mgmt = s_a * (surveyed + from_nonresidents)
        if s.grand_corruption:
            grand = self._param(ctx, "grand_corruption_value")
            measure("grand_corruption", grand)
            grand_usd = det("grand_corruption_usd", grand / market_rate, CY,
                            f"{USD}, market exchange rates")
            inward_gen = inward_gen + self._param(
                ctx, "share_grand_from_nonresidents")[:, None] * grand_usd
            outward_mgmt = outward_mgmt + self._param(
                ctx, "share_grand_abroad")[:, None] * grand_usd
        generation = pt.stack([inward_gen, outward_gen], axis=-1)  # (country, year, direction)
        generation = self._drug_overlap(ctx, generation, det)
        return MarketInfo(flows=flow_array(generation[..., 0], pt.zeros_like(outward_mgmt),
                                           generation[..., 1], outward_mgmt))

    def _drug_overlap(self, ctx: BuildContext, generation: pt.TensorVariable,
                      det) -> pt.TensorVariable:
        """Remove cross-border bribes paid out of drug proceeds (see the module docstring)."""
        drugs = ctx.flows.get("drugs")
        if drugs is None:
            return generation
        name = "share_bribes_from_drug_proceeds"
        priors = [self._prior(name, c) for c in ctx.countries]
        if all(isinstance(p, FixedPrior) and p.fixed == 0 for p in priors):
            ctx.corrections[self.name] = (
                f"drugs overlap: none ({name} fixed at 0, so no bribe is taken to be paid out "
                "of drug proceeds)")
            return generation
        share = self._param(ctx, name)[:, None, None]
        overlap = det("drug_overlap", pt.minimum(share * generation, drugs[..., 1]),
                      ("country", "year", "direction"), USD)
        ctx.corrections[self.name] = (
            f"drugs overlap: cross-border bribes paid out of drug proceeds ({name}) removed "
            "from corruption's generation flows, at most drugs' management flow of the same "
            "direction (counted there); amount in corruption_drug_overlap")
        return generation - overlap
