"""Illicit drugs market (illegal market, ICCS 060132).

Per drug, country and year the balance ``P + I = C + S + E`` holds exactly in pure-drug
kilograms. It is parameterised by the throughput ``T = P + I`` and three shares, so every stock
stays non-negative by construction (methodology.md B1, identities I1/I2):

* ``S = r T`` -- seizures, with ``r`` the interdiction rate;
* ``P = p T`` and ``I = (1 - p) T`` -- ``p`` the share of supply produced domestically;
* ``C = d (1 - r) T`` and ``E = (1 - d)(1 - r) T`` -- ``d`` the share of non-seized supply
  consumed domestically.

A country's role (producer, transit, consumer) only sets the default priors of ``p`` and ``d``.
Observations (production, seizures, consumption or users x quantity per user, stage prices and
purities) measure these latent values with their stated uncertainty.

Prices are kept per kilogram of pure drug: a street price observed at a stage measures
``pure price x purity`` (farm-gate prices are taken per kilogram of pure-drug equivalent).

Flows (current USD):

* generation, inward  = exports x export price (stage ``export_valuation``; the SDG 16.4.1
  metadata values exports at destination wholesale prices [S1], the default);
* generation, outward = imports x import price (stage ``import_valuation``);
* management, outward = ``share_income_abroad`` x resident traffickers' revenue, where revenue is
  exports x export price + consumption x domestic price (stage ``domestic_valuation``);
* management, inward  = ``share_nonresident_invested`` x non-resident suppliers' revenue from
  this country (imports x import price).

Default priors for prices, purities and the management shares are wide, illustrative ranges
(methodology.md calls them PROPOSAL: no numeric guidance was found); set them from ARQ data, FIU
or AML information for a real estimate.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
from pydantic import Field, model_validator

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
from iff.models.structure import along_years, measured_first_loadings
from iff.observations import ObservationTable
from iff.priors import Support

Role = Literal["producer", "transit", "consumer"]
STAGES = ("farmgate", "border", "wholesale", "retail", "destination_wholesale")
#: Which purity applies to street prices at each stage (None: priced per kg pure equivalent).
STAGE_PURITY = {
    "farmgate": None,
    "border": "wholesale",
    "wholesale": "wholesale",
    "retail": "retail",
    "destination_wholesale": "wholesale",
}
DCY = ("drug", "country", "year")
DC = ("drug", "country")

# Default price ranges (USD per kg pure) are illustrative PROPOSALs spanning the UNODC value-chain
# examples in methodology.md C5 (heroin 700 USD/kg in Afghanistan to 25,000-45,000 in Moscow).
_PRICE_DEFAULTS = {
    "farmgate": (100, 5_000),
    "border": (500, 50_000),
    "wholesale": (1_000, 100_000),
    "retail": (5_000, 500_000),
    "destination_wholesale": (5_000, 150_000),
}

PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec(
        "throughput", Support.POSITIVE, "kg pure/year", DCY, {"between": [100, 1_000_000]},
        "Supply entering the country's market: production + imports (= C + S + E).",
        "wide; set it when no observation informs the volume", smooth=True),
    ParameterSpec(
        "interdiction_rate", Support.UNIT, "share", DC, {"between": [0.05, 0.4]},
        "Share of supply seized (S / T); constant over the run's years. Never a fixed 0.2 "
        "(methodology.md B1.5).", pool=True),
    ParameterSpec(
        "production_share", Support.UNIT, "share", DCY, {"fixed": 0},
        "Share of supply produced domestically (P / T).",
        "by role: producer between [0.7, 0.99]; transit and consumer fixed 0"),
    ParameterSpec(
        "domestic_share", Support.UNIT, "share", DCY, {"fixed": 1},
        "Share of non-seized supply consumed domestically (C / (C + E)).",
        "by role: producer and transit between [0.01, 0.3]; consumer fixed 1"),
    *(
        ParameterSpec(
            f"pure_price_{stage}", Support.POSITIVE, "USD/kg pure", DCY,
            {"between": list(_PRICE_DEFAULTS[stage])},
            f"Price per kg of pure drug at the {stage.replace('_', ' ')} stage (current USD).",
            "illustrative range", pool=True, smooth=True)
        for stage in STAGES
    ),
    ParameterSpec(
        "purity_wholesale", Support.UNIT, "share", DC, {"between": [0.3, 0.9]},
        "Purity at wholesale (also used for border and destination prices and for seizures).",
        "illustrative range", pool=True),
    ParameterSpec(
        "purity_retail", Support.UNIT, "share", DC, {"between": [0.1, 0.7]},
        "Purity at retail (street doses, quantity per user).", "illustrative range", pool=True),
    ParameterSpec(
        "share_income_abroad", Support.UNIT, "share", DC, {"between": [0.02, 0.5]},
        "Share of resident traffickers' revenue moved or invested abroad (income management, "
        "outward).", "PROPOSAL: no published guidance; inform from FIU/AML data", pool=True),
    ParameterSpec(
        "share_nonresident_invested", Support.UNIT, "share", DC, {"between": [0.01, 0.3]},
        "Share of non-resident suppliers' revenue from this country invested here (income "
        "management, inward).", "PROPOSAL: no published guidance; inform from FIU/AML data",
        pool=True),
)

ROLE_DEFAULTS: dict[str, dict[Role, dict]] = {
    "production_share": {"producer": {"between": [0.7, 0.99]}, "transit": {"fixed": 0},
                         "consumer": {"fixed": 0}},
    "domestic_share": {"producer": {"between": [0.01, 0.3]}, "transit": {"between": [0.01, 0.3]},
                       "consumer": {"fixed": 1}},
}

QUANTITIES: tuple[QuantitySpec, ...] = (
    QuantitySpec("production", "kg", Support.POSITIVE,
                 "Potential production, kg of pure drug (crop surveys).", needs_item=True),
    QuantitySpec("seizures", "kg", Support.POSITIVE,
                 "Quantity seized, kg gross weight at wholesale purity.", needs_item=True,
                 default_cv=0.05),
    QuantitySpec("consumption", "kg", Support.POSITIVE,
                 "Domestic consumption, kg of pure drug (given estimate).", needs_item=True),
    QuantitySpec("users", "persons", Support.POSITIVE,
                 "People who used the drug in the year (needs quantity_per_user too).",
                 needs_item=True),
    QuantitySpec("quantity_per_user", "g", Support.POSITIVE,
                 "Grams per user per year, street weight at retail purity.", needs_item=True,
                 upper=100_000),
    *(
        QuantitySpec(f"price_{stage}", "USD/kg", Support.POSITIVE,
                     f"Street price per kg at the {stage.replace('_', ' ')} stage, current USD"
                     + (" (per kg pure equivalent)." if STAGE_PURITY[stage] is None else
                        f" (at {STAGE_PURITY[stage]} purity)."), needs_item=True,
                     default_cv=0.3)
        for stage in STAGES
    ),
    QuantitySpec("purity_wholesale", "fraction", Support.UNIT,
                 "Typical purity at wholesale (0-1).", needs_item=True, default_cv=0.2),
    QuantitySpec("purity_retail", "fraction", Support.UNIT,
                 "Typical purity at retail (0-1).", needs_item=True, default_cv=0.2),
)

DrugPriors = priors_model("drugs", PARAMETERS)


class DrugSettings(Strict):
    """Settings of one drug."""

    roles: dict[ISO3, Role] = Field(
        default_factory=dict, description="Role of each country for this drug.")
    role: Role | None = Field(None, description="Role of every country not listed in roles.")
    priors: DrugPriors = Field(  # type: ignore[valid-type]
        default_factory=DrugPriors, description="Priors for this drug only.")

    def role_of(self, country: str) -> Role | None:
        """The country's role, or None if not set."""
        return self.roles.get(country, self.role)


class DrugsSettings(MarketSettings):
    """Settings of the drugs market."""

    drugs: dict[str, DrugSettings] = Field(
        min_length=1, description="Drugs in the run (e.g. cocaine, heroin) and their settings.")
    export_valuation: Literal["border", "wholesale", "destination_wholesale"] = Field(
        "destination_wholesale",
        description="Price stage valuing exports (inward generation flows). The SDG 16.4.1 "
        "metadata uses destination wholesale prices.")
    import_valuation: Literal["border", "wholesale"] = Field(
        "border", description="Price stage valuing imports (outward generation flows).")
    domestic_valuation: Literal["wholesale", "retail"] = Field(
        "wholesale", description="Price stage valuing domestic sales in resident traffickers' "
        "revenue (base of outward management flows).")

    @model_validator(mode="after")
    def _drug_names(self) -> DrugsSettings:
        import re

        for name in self.drugs:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ValueError(f"drug name '{name}' must be lower case letters, digits, _")
        return self


class DrugsMarket(Market):
    """Illicit drugs: balance of supply and use, valued at stage prices."""

    name = "drugs"
    title = "Illicit drugs"
    typology = Typology.ILLEGAL_MARKET
    partner_meaning = (
        "outward: countries supplying the imports (seizure-origin shares); inward: destination "
        "countries of the exports (seizure-destination shares)")
    iccs = ("060132",)
    parameters = PARAMETERS
    quantities = QUANTITIES
    Settings = DrugsSettings
    settings: DrugsSettings

    def items(self) -> list[str]:
        """Drug names configured for the run."""
        return list(self.settings.drugs)

    # -- checks before sampling -----------------------------------------------------------------
    def check(self, observations: ObservationTable, countries: list[str]) -> list[InputProblem]:
        """Roles cover every country; data agree with fixed shares; users come with doses."""
        problems = []
        for drug, ds in self.settings.drugs.items():
            for c in ds.roles:
                if c not in countries:
                    problems.append(InputProblem(
                        f"role given for {c}, which is not among the run's countries",
                        field=f"markets.drugs.drugs.{drug}.roles.{c}"))
            for c in countries:
                if ds.role_of(c) is None:
                    problems.append(InputProblem(
                        f"no role for {c}: set roles.{c} or role (producer, transit, consumer)",
                        field=f"markets.drugs.drugs.{drug}"))
        if problems:
            return problems
        rows = observations.for_market(self.name)
        for _, row in rows.iterrows():
            where = {"file": observations.file, "row": int(row["line"]), "field": "quantity"}
            prod = self._prior("production_share", row["item"], row["country"])
            dom = self._prior("domestic_share", row["item"], row["country"])
            if row["quantity"] == "production" and getattr(prod, "fixed", None) == 0:
                problems.append(InputProblem(
                    f"production observed for {row['item']} in {row['country']}, whose "
                    "production_share is fixed at 0 (role transit/consumer); make it a producer "
                    "or give production_share a prior", **where))
            if (row["quantity"] in ("consumption", "users", "quantity_per_user")
                    and getattr(dom, "fixed", None) == 0):
                problems.append(InputProblem(
                    f"consumption data for {row['item']} in {row['country']}, whose "
                    "domestic_share is fixed at 0", **where))
        demand = rows[rows["quantity"].isin(["users", "quantity_per_user"])]
        for key, grp in demand.groupby(["item", "country", "year"]):
            if set(grp["quantity"]) != {"users", "quantity_per_user"}:
                have = grp["quantity"].iloc[0]
                need = "quantity_per_user" if have == "users" else "users"
                problems.append(InputProblem(
                    f"{have} given for {key[0]} {key[1]} {key[2]} without {need}; consumption "
                    "from the demand side needs both", file=observations.file,
                    row=int(grp["line"].iloc[0]), field="quantity"))
        return problems

    # -- priors -----------------------------------------------------------------------------------
    def _prior(self, param: str, drug: str, country: str):
        """Prior of one element: drug-level > market-level > role default > declared default."""
        ds = self.settings.drugs[drug]
        for source in (ds.priors, self.settings.priors):  # type: ignore[attr-defined]
            spec = getattr(source, param)
            if spec is not None:
                return spec
        if param in ROLE_DEFAULTS:
            return as_prior(ROLE_DEFAULTS[param][ds.role_of(country)])
        return as_prior(self.parameter(param).default_prior)

    def _param(self, ctx: BuildContext, name: str) -> pt.TensorVariable:
        spec = self.parameter(name)
        grid = np.empty(ctx.shape(spec.dims), dtype=object)
        for i, drug in enumerate(ctx.coord("drug")):
            for j, country in enumerate(ctx.countries):
                grid[i, j, ...] = self._prior(name, drug, country)
        return ctx.parameter(self, spec, grid)

    def _throughput(self, ctx: BuildContext, rate: pt.TensorVariable,
                    purity: pt.TensorVariable | None) -> pt.TensorVariable:
        """Throughput (kg pure/year), sampled through the seizures it implies (same prior).

        Seizures are measured precisely (default CV 5 %) in gross kilograms, ``S = r T /
        purity``, so with the usual non-centred ``log T = mu + sigma * x`` the posterior of
        ``x``, the interdiction rate and the wholesale purity is a narrow curved ridge (on the
        multi-country demo it held nutpie's diagonal NUTS to min bulk ESS ~500 of 4,000 draws).
        Here the free variable ``drugs_seizures_z`` is the standardised log of the seizures:
        ``log T = mu + sigma * L e' - log(r / purity)``, with ``L`` the year loading of the
        prior (identity, or, smoothed, a square root of the AR(1) correlation per drug and
        country with the years of seizure rows first,
        :func:`iff.models.structure.measured_first_loadings`), and ``e' | r, purity ~
        N(L^-1 log(r / purity) / sigma, 1)``. Then ``e = e' - L^-1 log(r / purity) / sigma`` is
        N(0, 1) and independent of ``r`` and purity (a shift with unit Jacobian), so ``T`` keeps
        its declared prior exactly; only the sampled coordinates differ. Built as every other
        parameter when no seizures are observed (``purity`` None), when its priors are not all
        log-normal, when it is pooled, or when an interdiction rate or purity is fixed at 0.

        Parameters
        ----------
        rate
            Interdiction rate, ``(drug, country, 1)``.
        purity
            Wholesale purity, ``(drug, country)``, or None.
        """
        spec = self.parameter("throughput")
        name = f"{self.name}_{spec.name}"
        shape = ctx.shape(spec.dims)
        grid = np.empty(shape, dtype=object)
        for i, drug in enumerate(ctx.coord("drug")):
            for j, country in enumerate(ctx.countries):
                grid[i, j, ...] = self._prior("throughput", drug, country)
        pool, smooth = self.structure(spec)
        fixed_at_zero = any(
            getattr(self._prior(param, drug, country), "fixed", None) == 0
            for param in ("interdiction_rate", "purity_wholesale")
            for drug in ctx.coord("drug") for country in ctx.countries)
        if purity is None or pool or fixed_at_zero:
            return ctx.parameter(self, spec, grid)
        resolved = ctx.resolve_priors(name, spec, grid)
        if any(family != "LogNormal" for family, _ in resolved):
            return ctx.parameter(self, spec, grid)
        mu = np.array([q[1]["mu"] for q in resolved]).reshape(shape)
        sigma = np.array([q[1]["sigma"] for q in resolved]).reshape(shape)
        log_k = pt.log(rate) - pt.log(purity)[:, :, None]  # (drug, country, 1)
        years = [int(y) for y in ctx.coord("year")]
        if not (smooth and len(years) > 1):  # as in iff.models.structure.standard_field
            e = pm.Normal("drugs_seizures_z", log_k / sigma, 1.0, dims=spec.dims)
            return pm.Deterministic(name, pt.exp(mu + sigma * e - log_k), dims=spec.dims)
        ctx.structure[name] = {"pool": False, "smooth": True}
        loading = seizure_loadings(ctx, years)
        ax = spec.dims.index("year")
        shift = along_years(log_k / sigma, np.linalg.inv(loading), ax)
        e = pm.Normal("drugs_seizures_z", shift, 1.0, dims=spec.dims)
        return pm.Deterministic(name, pt.exp(mu + sigma * along_years(e, loading, ax) - log_k),
                                dims=spec.dims)

    # -- model ------------------------------------------------------------------------------------
    def build(self, ctx: BuildContext) -> MarketInfo:
        """Add the drug balance, prices, observations and flows to the model."""
        s = self.settings
        ctx.model.add_coord("drug", list(s.drugs))
        rows = ctx.observations.for_market(self.name)
        units = ctx.units

        def det(name: str, value: pt.TensorVariable, dims: tuple[str, ...], unit: str):
            units[f"drugs_{name}"] = unit
            return pm.Deterministic(f"drugs_{name}", value, dims=dims)

        r = self._param(ctx, "interdiction_rate")[:, :, None]
        purity: dict[str, pt.TensorVariable] = {}

        def purity_of(kind: str) -> pt.TensorVariable:
            if kind not in purity:
                purity[kind] = self._param(ctx, f"purity_{kind}")
            return purity[kind]

        seizures_observed = bool((rows["quantity"] == "seizures").any())
        t = self._throughput(ctx, r, purity_of("wholesale") if seizures_observed else None)
        p = self._param(ctx, "production_share")
        d = self._param(ctx, "domestic_share")
        kg = "kg pure/year"
        seized = det("seizures", r * t, DCY, kg)
        produced = det("production", p * t, DCY, kg)
        imported = det("imports", (1 - p) * t, DCY, kg)
        consumed = det("consumption", d * (1 - r) * t, DCY, kg)
        exported = det("exports", (1 - d) * (1 - r) * t, DCY, kg)

        observed_price_stages = {q.removeprefix("price_") for q in rows["quantity"]
                                 if q.startswith("price_")}
        valued = {s.export_valuation, s.import_valuation, s.domestic_valuation}
        price = {stage: self._param(ctx, f"pure_price_{stage}")
                 for stage in STAGES if stage in valued | observed_price_stages}

        # -- observations ---------------------------------------------------------------------
        def at(rows_q: pd.DataFrame, tensor: pt.TensorVariable, dims=DCY) -> pt.TensorVariable:
            idx = [ctx.index(rows_q, {"drug": "item"}.get(dim, dim), dim) for dim in dims]
            return take_rows(tensor, tuple(idx))

        def measure(code: str, latent: pt.TensorVariable, dims=DCY) -> None:
            rows_q = rows[rows["quantity"] == code]
            if len(rows_q):
                ctx.measure(self, self.quantity(code), rows_q, at(rows_q, latent, dims))

        measure("production", produced)
        measure("consumption", consumed)
        if seizures_observed:
            measure("seizures", seized / purity_of("wholesale")[:, :, None])
        for stage in (st for st in STAGES if st in observed_price_stages):  # fixed order
            kind = STAGE_PURITY[stage]
            street = price[stage] if kind is None else price[stage] * purity_of(kind)[:, :, None]
            measure(f"price_{stage}", street)
        for kind in ("wholesale", "retail"):
            if (rows["quantity"] == f"purity_{kind}").any():
                measure(f"purity_{kind}", purity_of(kind), DC)
        self._measure_demand(ctx, rows, consumed, purity_of)

        # -- values and flows -----------------------------------------------------------------
        usd = "USD/year (current)"
        export_value = det("export_value", exported * price[s.export_valuation], DCY, usd)
        import_value = det("import_value", imported * price[s.import_valuation], DCY, usd)
        domestic_value = det("domestic_value", consumed * price[s.domestic_valuation], DCY, usd)
        abroad = self._param(ctx, "share_income_abroad")[:, :, None]
        invested = self._param(ctx, "share_nonresident_invested")[:, :, None]
        parts = (export_value, invested * import_value,
                 import_value, abroad * (export_value + domestic_value))
        det("flows_by_drug", flow_array(*parts), (*DCY, "direction", "phase"),
            "USD/year (current)")
        # summed over drugs part by part, so that forward draws of the flows alone skip the
        # (drug, ..., direction, phase) array
        return MarketInfo(flows=flow_array(*(part.sum(axis=0) for part in parts)))

    def _measure_demand(self, ctx: BuildContext, rows: pd.DataFrame, consumed, purity_of) -> None:
        """Users x grams per user measure consumption (street kg at retail purity).

        The product of two log-normal measurements is log-normal, so the pair enters as one
        measurement whose log-variance is the sum of theirs.
        """
        users = rows[rows["quantity"] == "users"].sort_values(["item", "country", "year"])
        if users.empty:
            return
        doses = rows[rows["quantity"] == "quantity_per_user"].sort_values(
            ["item", "country", "year"])
        street_kg = users["value"].to_numpy(float) * doses["value"].to_numpy(float) / 1000.0
        combined = users.assign(value=street_kg, se=np.nan, lower=np.nan, upper=np.nan)
        retail = purity_of("retail")[:, :, None]
        idx = tuple(ctx.index(users, col, dim) for col, dim in
                    (("item", "drug"), ("country", "country"), ("year", "year")))
        latent = take_rows(consumed / retail, idx)
        q = QuantitySpec("demand_street_kg", "kg", Support.POSITIVE, "users x quantity per user",
                         default_cv=0.0)
        ctx.measure(self, q, combined, latent, name="drugs_demand_obs",
                    sigma_extra=np.sqrt(ctx.sigma(self.quantity("users"), users) ** 2
                                        + ctx.sigma(self.quantity("quantity_per_user"), doses)
                                        ** 2))


def seizure_loadings(ctx: BuildContext, years: list[int]) -> np.ndarray:
    """Year loadings of the smoothed throughput, ``(drug, country, year, year)``: per drug and
    country the square root of the AR(1) correlation with the years of seizure rows first
    (:func:`iff.models.structure.measured_first_loadings`)."""
    rows = ctx.observations.for_market("drugs")
    rows = rows[rows["quantity"] == "seizures"]
    seized = {(str(d), str(c), int(y)) for d, c, y in
              zip(rows["item"], rows["country"], rows["year"], strict=True)}
    mask = np.array([[[(str(d), str(c), y) in seized for y in years]
                      for c in ctx.countries] for d in ctx.coord("drug")])
    return measured_first_loadings(years, mask)
