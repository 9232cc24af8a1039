"""Amounts in local currency units (LCU) and their conversion to current US dollars.

Markets whose inputs are in local currency read exchange rates from the observation table:
quantity ``exchange_rate``, unit ``LCU/USD``, with the rate's **basis** in the ``item`` column:

* ``market`` -- the market (official) exchange rate, period average (IMF IFS line rf, World Bank
  ``PA.NUS.FCRF``). Flows are current USD at market rates (the SDG 16.4.1 unit and the balance
  of payments convention), so every country-year of a run needs one.
* ``ppp`` -- a PPP conversion factor (LCU per international dollar), for context figures that a
  source quotes at PPP (the Nigeria bribery surveys do). Never used for flows.

A row without a basis, or a country-year without the rate it needs, is an input error. Each rate
is a noisy measurement of a latent rate (default CV 1 %: published period averages are precise,
but a rate derived from rounded figures is not; give ``se`` where known).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytensor.tensor as pt

from iff.errors import InputProblem
from iff.market import ParameterSpec, QuantitySpec
from iff.priors import PriorSpecT, Support

if TYPE_CHECKING:
    from iff.build import BuildContext
    from iff.market import Market
    from iff.observations import ObservationTable

#: Bases of an exchange rate, as written in the item column, and what they mean.
BASES = {
    "market": "market exchange rate (LCU per USD, period average)",
    "ppp": "PPP conversion factor (LCU per international dollar)",
}
#: Parameter holding the latent rate of each basis.
RATE_PARAMETER = {"market": "exchange_rate", "ppp": "ppp_rate"}
CODE = "exchange_rate"
UNIT = "LCU/USD"


def exchange_rate_quantity(bases: tuple[str, ...] = ("market", "ppp")) -> QuantitySpec:
    """The ``exchange_rate`` quantity accepting the given bases in the item column."""
    choices = " or ".join(f"{b} ({BASES[b].split(' (')[0]})" for b in bases)
    return QuantitySpec(
        CODE, UNIT, Support.POSITIVE,
        "Local currency units per US dollar, with its basis in the item column: "
        + ", ".join(f"{b} = {BASES[b]}" for b in bases) + ".",
        needs_item=True, default_cv=0.01, items=tuple(bases),
        item_meaning=f"its basis in the item column: {choices}")


def rate_parameters(bases: tuple[str, ...] = ("market", "ppp")) -> tuple[ParameterSpec, ...]:
    """Declared parameters of the latent rates (wide priors: the data decide)."""
    out = []
    for b in bases:
        unit = UNIT if b == "market" else "LCU per international $"
        out.append(ParameterSpec(
            RATE_PARAMETER[b], Support.POSITIVE, unit, ("country", "year"),
            {"between": [0.1, 100_000]},
            f"The {BASES[b]}; measured by exchange_rate rows with item {b}"
            + ("; converts flows to current USD." if b == "market" else
               "; converts context figures quoted at PPP."),
            "wide; always measured" if b == "market" else "wide; used only with usd_basis ppp"))
    return tuple(out)


def rate_rows(observations: ObservationTable, market: str, basis: str):
    """Exchange-rate rows of one market and basis."""
    rows = observations.for_market(market)
    return rows[(rows["quantity"] == CODE) & (rows["item"] == basis)]


def missing_rates(observations: ObservationTable, market: str, basis: str,
                  why: str) -> list[InputProblem]:
    """One problem listing the run's country-years that have no rate of ``basis``.

    Parameters
    ----------
    observations
        The validated table (it carries the run's countries and years).
    market
        The market reading the rates (its name is in the ``market`` column).
    basis
        ``market`` or ``ppp``.
    why
        Why the rate is needed, for the message.
    """
    rows = rate_rows(observations, market, basis)
    have = set(zip(rows["country"], rows["year"], strict=True))
    missing = [f"{c} {y}" for c in observations.countries for y in observations.years
               if (c, y) not in have]
    if not missing:
        return []
    c, y = missing[0].split()
    file = observations.file if observations.file != "<none>" else None
    return [InputProblem(
        f"missing exchange rate: no {CODE} row with basis '{basis}' for {', '.join(missing)}; "
        f"{why}. Add e.g. '{c},{y},{market},{CODE},{basis},<LCU per USD>,{UNIT},...,<source>'",
        file=file, field="quantity")]


def add_rate(ctx: BuildContext, market: Market, basis: str,
             prior: PriorSpecT | np.ndarray | None = None) -> pt.TensorVariable:
    """The latent rate of ``basis`` over ``(country, year)``, measured by its rows.

    Parameters
    ----------
    ctx
        Build context.
    market
        The market (declares :func:`rate_parameters` and :func:`exchange_rate_quantity`).
    basis
        ``market`` or ``ppp``.
    prior
        Prior of the rate, or an object array of priors over ``(country, year)`` (None: the
        declared default).

    Returns
    -------
    pytensor.tensor.TensorVariable
        LCU per USD (or per international dollar for ``ppp``), shape ``(country, year)``.
    """
    spec = market.parameter(RATE_PARAMETER[basis])
    rate = ctx.parameter(market, spec, prior)
    rows = rate_rows(ctx.observations, market.name, basis)
    if len(rows):
        idx = (ctx.index(rows, "country", "country"), ctx.index(rows, "year", "year"))
        ctx.measure(market, market.quantity(CODE), rows, rate[idx],
                    name=f"{market.name}_{CODE}_{basis}_obs")
    return rate
