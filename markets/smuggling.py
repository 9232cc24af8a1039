"""Smuggling of migrants (illegal market, ICCS 08051), Eurostat four-type scheme.

The Eurostat (2018) handbook's residency scheme, as adopted by the UNODC–UNCTAD framework
(methodology.md identity I3, [S1]), for a country and a smuggling fee paid:

========= ================== ==================== ==============================
type      smuggler           migrant              IFF of the country
========= ================== ==================== ==============================
I         resident           resident             none (domestic)
II        resident           non-resident         inward (export of a service)
III       non-resident       resident             outward (import of a service)
IV        non-resident       non-resident         none recorded
========= ================== ==================== ==============================

Migrants are split into two groups (``migrant_group``: ``resident`` and ``nonresident``; in the
Mexico pilot, Mexicans and Central Americans). Per group, country and year (methodology.md B2):

* irregular crossing attempts ``A`` are latent; apprehensions measure ``A x
  apprehension_probability`` (apprehension records count events, so repeat crossers count more
  than once: the attempts are events too);
* migrants who pay smugglers ``M = A x share_paying``; revenue ``R = M x fee``;
* ``share_resident_smugglers`` splits each group's fees between smugglers resident in the
  country and abroad.

Flows (current USD):

* generation, inward  = type II  = ``R_nonresident x share_resident_smugglers[nonresident]``;
* generation, outward = type III = ``R_resident x (1 - share_resident_smugglers[resident])``;
* management, outward = ``share_income_abroad`` x resident smugglers' revenue (types I + II);
* management, inward  = ``share_nonresident_invested`` x non-resident smugglers' revenue from
  residents (type III).

Default priors of the apprehension probability, the residency split and the management shares
are illustrative PROPOSALs: no published figures were found (methodology.md B2, (d)).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from iff.build import BuildContext, take_rows
from iff.flows import flow_array
from iff.market import (
    Market,
    MarketInfo,
    MarketSettings,
    ParameterSpec,
    QuantitySpec,
    Typology,
)
from iff.models.structure import along_years, measured_first_loadings
from iff.priors import Support

NAME = "smuggling_of_migrants"
GROUPS = ("resident", "nonresident")
CYG = ("country", "year", "migrant_group")
CG = ("country", "migrant_group")
C = ("country",)

PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec(
        "attempts", Support.POSITIVE, "crossings/year", CYG, {"between": [1_000, 1_000_000]},
        "Irregular border-crossing attempts by migrants of the group (events per year).",
        "wide; informed by apprehensions", smooth=True),
    ParameterSpec(
        "apprehension_probability", Support.UNIT, "share", CG, {"between": [0.2, 0.7]},
        "Probability that an attempt ends in an apprehension that is recorded.",
        # not pooled by default: only the product attempts x probability meets the data, so a
        # shared component would trade off against every country's attempts at once (R-hat
        # 1.03 in the 30-country benchmark); pool it when some countries have estimates
        "illustrative range: no published figure"),
    ParameterSpec(
        "share_paying", Support.UNIT, "share", CG, {"between": [0.3, 0.95]},
        "Share of migrants who pay smugglers.",
        "spans the published 50-90 % (methodology.md C4)", pool=True),
    ParameterSpec(
        "fee", Support.POSITIVE, "USD/migrant", CYG, {"between": [1_000, 10_000]},
        "Fee paid to smugglers per smuggled migrant (current USD).",
        "spans the published USD 2,000-6,937 (methodology.md C4)", pool=True,
        smooth=True),
    ParameterSpec(
        "share_resident_smugglers", Support.UNIT, "share", CG, {"between": [0.2, 0.8]},
        "Share of the group's fees paid to smugglers resident in the country (for resident "
        "migrants the rest is type III, outward; for non-resident migrants this is type II, "
        "inward).", "PROPOSAL: no published guidance", pool=True),
    ParameterSpec(
        "share_income_abroad", Support.UNIT, "share", C, {"between": [0.05, 0.5]},
        "Share of resident smugglers' revenue moved or invested abroad (outward, management).",
        "PROPOSAL: no published guidance", pool=True),
    ParameterSpec(
        "share_nonresident_invested", Support.UNIT, "share", C, {"between": [0.01, 0.2]},
        "Share of non-resident smugglers' revenue from residents spent or invested in the "
        "country (inward, management).", "PROPOSAL: no published guidance", pool=True),
)

QUANTITIES: tuple[QuantitySpec, ...] = (
    QuantitySpec("apprehensions", "persons", Support.POSITIVE,
                 "Apprehensions of irregular migrants of the group (item: resident or "
                 "nonresident), events per year.", needs_item=True, default_cv=0.02),
    QuantitySpec("share_paying", "fraction", Support.UNIT,
                 "Share of migrants of the group who paid smugglers (survey).", needs_item=True,
                 default_cv=0.1),
    QuantitySpec("fee", "USD", Support.POSITIVE,
                 "Mean fee paid to smugglers per migrant of the group, current USD.",
                 needs_item=True, default_cv=0.2),
    QuantitySpec("apprehension_probability", "fraction", Support.UNIT,
                 "Estimated probability that an attempt is apprehended.", needs_item=True,
                 default_cv=0.2),
    QuantitySpec("smuggled_migrants", "persons", Support.POSITIVE,
                 "An estimate of migrants of the group who paid smugglers (persons/year).",
                 needs_item=True, default_cv=0.3),
)


class SmugglingSettings(MarketSettings):
    """Settings of the smuggling of migrants market (priors only)."""


class SmugglingMarket(Market):
    """Smuggling of migrants: smuggled migrants x fees, split by the four-type scheme."""

    name = NAME
    title = "Smuggling of migrants"
    typology = Typology.ILLEGAL_MARKET
    partner_meaning = (
        "outward: countries of residence of the smugglers paid by resident migrants (the "
        "corridor); inward: origin countries of the non-resident migrants paying resident "
        "smugglers")
    iccs = ("08051",)
    parameters = PARAMETERS
    quantities = QUANTITIES
    Settings = SmugglingSettings

    def items(self) -> list[str]:
        """Migrant groups (``item`` of every row)."""
        return list(GROUPS)

    def _param(self, ctx: BuildContext, name: str) -> pt.TensorVariable:
        return ctx.parameter(self, self.parameter(name),
                             getattr(self.settings.priors, name))  # type: ignore[attr-defined]

    def _attempts(self, ctx: BuildContext, p_app: pt.TensorVariable) -> pt.TensorVariable:
        """Attempts, sampled through the apprehensions they imply (same prior as declared).

        Apprehensions are measured precisely (default CV 2 %) and only ``A x p`` meets them, so
        with the usual non-centred ``log A = mu + sigma * x`` the posterior of ``(x, logit p)``
        is a narrow curved ridge (``log p`` is not linear in ``logit p``): on the Mexico pilot
        the two correlated at -0.98 and nutpie's bulk ESS was ~650 of 4,000 draws. Here the
        free variable ``<market>_apprehensions_z`` is the standardised log of the apprehensions
        ``A x p``: ``log A = mu + sigma * L e' - log p``, with ``L`` the year loading of the
        prior (identity, or, when smoothed, a square root of the AR(1) correlation per country
        and group with the measured years first: :func:`attempt_loadings`) and
        ``e' | p ~ N(L^-1 log(p) / sigma, 1)``. Then ``e = e' - L^-1 log(p) / sigma`` is
        N(0, 1) and independent of ``p`` (the map ``(e, p) -> (e', p)`` is a shift with unit
        Jacobian), so ``A`` keeps its declared prior exactly and the model is unchanged; only
        the sampled coordinates differ. Priors other than one log-normal family, and attempts
        pooled across countries, are built as every other parameter.
        """
        spec = self.parameter("attempts")
        priors = self.settings.priors.attempts  # type: ignore[attr-defined]
        name = f"{NAME}_{spec.name}"
        shape = ctx.shape(spec.dims)
        pool, smooth = self.structure(spec)
        if pool:
            return ctx.parameter(self, spec, priors)
        resolved = ctx.resolve_priors(name, spec, priors)
        if any(family != "LogNormal" for family, _ in resolved):
            return ctx.parameter(self, spec, priors)
        if smooth:
            ctx.structure[name] = {"pool": False, "smooth": True}
        mu = np.array([r[1]["mu"] for r in resolved]).reshape(shape)
        sigma = np.array([r[1]["sigma"] for r in resolved]).reshape(shape)
        years = [int(y) for y in ctx.coord("year")]
        correlated = smooth and len(years) > 1  # as in iff.models.structure.standard_field
        ax = spec.dims.index("year")
        log_p = pt.log(pt.expand_dims(p_app, ax))  # CG -> CYG
        if not correlated:
            e = pm.Normal(f"{NAME}_apprehensions_z", log_p / sigma, 1.0, dims=spec.dims)
            return pm.Deterministic(name, pt.exp(mu + sigma * e - log_p), dims=spec.dims)
        loading = attempt_loadings(ctx, years)
        shift = along_years(log_p / sigma, np.linalg.inv(loading), ax)
        e = pm.Normal(f"{NAME}_apprehensions_z", shift, 1.0, dims=spec.dims)
        return pm.Deterministic(name, pt.exp(mu + sigma * along_years(e, loading, ax) - log_p),
                                dims=spec.dims)

    def build(self, ctx: BuildContext) -> MarketInfo:
        """Add attempts, apprehensions, payers, fees, observations and flows."""
        ctx.model.add_coord("migrant_group", list(GROUPS))
        rows = ctx.observations.for_market(self.name)

        def det(name: str, value, dims: tuple[str, ...], unit: str):
            ctx.units[f"{NAME}_{name}"] = unit
            return pm.Deterministic(f"{NAME}_{name}", value, dims=dims)

        p_app = self._param(ctx, "apprehension_probability")
        attempts = self._attempts(ctx, p_app)
        paying = self._param(ctx, "share_paying")
        fee = self._param(ctx, "fee")
        resident_smugglers = self._param(ctx, "share_resident_smugglers")
        apprehended = det("apprehensions", attempts * p_app[:, None, :], CYG, "events/year")
        smuggled = det("smuggled", attempts * paying[:, None, :], CYG, "persons/year")
        revenue = det("revenue", smuggled * fee, CYG, "USD/year (current)")

        def measure(code: str, latent, dims) -> None:
            rows_q = rows[rows["quantity"] == code]
            if len(rows_q):
                idx = tuple(ctx.index(rows_q, "item" if d == "migrant_group" else d, d)
                            for d in dims)
                ctx.measure(self, self.quantity(code), rows_q, take_rows(latent, idx))

        measure("apprehensions", apprehended, CYG)
        measure("share_paying", paying, CG)
        measure("fee", fee, CYG)
        measure("apprehension_probability", p_app, CG)
        measure("smuggled_migrants", smuggled, CYG)

        res, non = GROUPS.index("resident"), GROUPS.index("nonresident")
        s_res = resident_smugglers[:, None, :]
        type_2 = revenue[..., non] * s_res[..., non]
        type_3 = revenue[..., res] * (1 - s_res[..., res])
        resident_revenue = type_2 + revenue[..., res] * s_res[..., res]
        m = self._param(ctx, "share_income_abroad")[:, None]
        v = self._param(ctx, "share_nonresident_invested")[:, None]
        return MarketInfo(flows=flow_array(type_2, v * type_3, type_3, m * resident_revenue))


#: Quantities whose rows pin a country-year's apprehensions (attempts x a share).
PINNING_QUANTITIES = ("apprehensions", "smuggled_migrants")


def attempt_loadings(ctx: BuildContext, years: list[int]) -> np.ndarray:
    """Year loadings of the smoothed attempts, ``(country, migrant_group, year, year)``: per
    country and group the square root of the AR(1) correlation with the years of
    apprehensions or smuggled_migrants rows first
    (:func:`iff.models.structure.measured_first_loadings`)."""
    rows = ctx.observations.for_market(NAME)
    rows = rows[rows["quantity"].isin(PINNING_QUANTITIES)]
    measured = {(str(c), str(g), int(t)) for c, g, t in
                zip(rows["country"], rows["item"], rows["year"], strict=True)}
    countries = [str(c) for c in ctx.coord("country")]
    mask = np.array([[[(c, g, y) in measured for y in years] for g in GROUPS]
                     for c in countries])
    return measured_first_loadings(years, mask)
