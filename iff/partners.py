"""Bilateral flows: the ``partner`` dim and mirror-consistent reconciliation.

A market that knows the counterpart country of its flows (drug routes, smuggling corridors,
origin countries of trafficking victims) accepts a ``partners`` section in its config: for each
run country, the shares of its outward flows going to each partner country and of its inward
flows coming from each partner. Shares not given (and partners outside the run) are the rest of
the world, ``RoW``. Shares are uncertain: each country's vector is Dirichlet with the given
shares as its mean and ``concentration`` as its precision (``null``: fixed shares).

Two countries of the run each estimate the flow between them: the payer ``c`` as its outward
flow times its share to ``p`` and the receiver ``p`` as its inward flow times its share from
``c``. The reconciled bilateral flow is their weighted mean,

    F[c -> p] = w * outward[c] * s_out[c, p] + (1 - w) * inward[p] * s_in[p, c],

with ``w = payer_weight`` (a documented parameter: 1 trusts the payer's estimate, 0 the
receiver's). ``F[c -> p]`` is stored as ``c``'s outward flow to ``p`` and as ``p``'s inward flow
from ``c``, both computed from the same two products added in the same order, so the two agree
to the last bit on every draw. Flows with the rest of the world keep each country's own
estimate. The market's country flows are the sums over partners (computed in closed form,
without the partner array: equal to the sums up to rounding), so the partner split never changes
a country total; when no partner of a pair is in the run, nothing changes.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pydantic import BaseModel, ConfigDict, Field, field_validator

from iff.countries import ISO3
from iff.flows import DIRECTIONS

#: Coordinate of the partner dim for every counterpart outside the run.
REST_OF_WORLD = "RoW"
#: Dims of ``flows_by_partner`` (after the leading ``partner_market``).
PARTNER_FLOW_DIMS = ("country", "partner", "year", "direction", "phase")

Share = Annotated[float, Field(ge=0.0, le=1.0)]


class CountryPartners(BaseModel):
    """Partner shares of one country, by direction (shares of the country's flow)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    outward: dict[ISO3, Share] = Field(
        default_factory=dict, description="Share of the outward flow going to each partner.")
    inward: dict[ISO3, Share] = Field(
        default_factory=dict, description="Share of the inward flow coming from each partner.")

    @field_validator("outward", "inward")
    @classmethod
    def _at_most_one(cls, v: dict[str, float]) -> dict[str, float]:
        total = sum(v.values())
        if total > 1.0 + 1e-9:
            raise ValueError(f"partner shares add up to {total:.4g}, more than 1 (the rest of "
                             "the world takes 1 minus their sum)")
        return v


class PartnerSettings(BaseModel):
    """Counterpart countries of a market's flows (see :mod:`iff.partners`)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    shares: dict[ISO3, CountryPartners] = Field(
        description="By run country: partner shares of its outward and inward flows.")
    concentration: Annotated[float, Field(gt=0)] | None = Field(
        20.0, description="Dirichlet precision of each share vector (larger: more certain); "
                          "null fixes the shares.")
    payer_weight: Share = Field(
        0.5, description="Weight of the payer's estimate of a bilateral flow between two run "
                         "countries (1 - weight: the receiver's).")
    source: str = Field("", description="Where the shares come from (document, year, table); "
                                        "empty: illustrative.")

    def problems(self, countries: list[str]) -> list[tuple[str, str]]:
        """``(field, reason)`` for shares of countries outside the run or of a country with
        itself."""
        found = []
        for c, by_dir in self.shares.items():
            if c not in countries:
                found.append((f"partners.shares.{c}",
                              f"'{c}' is not a country of this run ({', '.join(countries)})"))
            for d in DIRECTIONS:
                if c in getattr(by_dir, d):
                    found.append((f"partners.shares.{c}.{d}.{c}",
                                  "a country is not its own partner (domestic flows are not "
                                  "IFFs)"))
        return found


def partner_coords(countries: list[str]) -> list[str]:
    """Coordinates of the partner dim: the run's countries, then the rest of the world."""
    return [*countries, REST_OF_WORLD]


def share_means(settings: PartnerSettings, countries: list[str], direction: str) -> np.ndarray:
    """Mean shares ``(country, partner)``; partners outside the run are summed into RoW."""
    idx = {c: i for i, c in enumerate(countries)}
    means = np.zeros((len(countries), len(countries) + 1))
    for i, c in enumerate(countries):
        given = getattr(settings.shares[c], direction) if c in settings.shares else {}
        for p, s in given.items():
            means[i, idx.get(p, len(countries))] += s
        means[i, -1] += max(0.0, 1.0 - sum(given.values()))
    return means


def share_variable(name: str, means: np.ndarray, concentration: float | None
                   ) -> pt.TensorVariable:
    """Partner shares ``(country, partner)``: Dirichlet rows around ``means`` (or fixed).

    Only partners with a positive mean are random, so zero shares stay exactly zero and rows
    with one partner are 1. Rows with the same number ``k`` of partners share one batched
    ``Dirichlet`` variable ``<name>_k<k>`` (a simplex transform: no redundant scale direction for
    the sampler, unlike normalised Gamma draws).
    """
    positive = means > 0
    counts = positive.sum(axis=1)
    if concentration is None or not (counts > 1).any():
        return pt.as_tensor_variable(means)
    shares = pt.as_tensor_variable(means)
    for k in sorted(set(counts[counts > 1].tolist())):
        rows = np.flatnonzero(counts == k)
        cols = np.stack([np.flatnonzero(positive[r]) for r in rows])  # (n_rows, k)
        alpha = means[rows[:, None], cols] * concentration
        draw = pm.Dirichlet(f"{name}_k{k}", a=alpha, shape=alpha.shape)
        shares = pt.set_subtensor(shares[rows[:, None], cols], draw)
    return shares


def split_by_partner(name: str, flows: pt.TensorVariable, settings: PartnerSettings,
                     countries: list[str]) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    """Reconciled bilateral flows of one market and its country flows.

    Parameters
    ----------
    name
        Prefix of the model variables (``<name>_partner_share_outward`` ...).
    flows
        The market's own flows ``(country, year, direction, phase)``, current USD.
    settings
        The market's partner settings.
    countries
        The run's countries (order of the ``country`` coord).

    Returns
    -------
    by_partner, country_flows
        ``(country, partner, year, direction, phase)`` and its sum over partners
        ``(country, year, direction, phase)``, both in current USD.
    """
    n = len(countries)
    shares = {}
    for d in DIRECTIONS:
        value = share_variable(f"{name}_partner_share_{d}", share_means(settings, countries, d),
                               settings.concentration)
        shares[d] = pm.Deterministic(f"{name}_partner_share_{d}", value,
                                     dims=("country", "partner"))
    share_out, share_in = shares["outward"], shares["inward"]
    w = settings.payer_weight
    # bilateral[c, p] (run countries, c pays p) = w * payer's estimate + (1 - w) * receiver's,
    # stored as c's outward and p's inward element; with the rest of the world a country keeps
    # its own estimate. Written as one elementwise expression over (country, partner, year,
    # direction, phase); concatenating and transposing arrays of that size cost more
    # (multi-country demo, every variable, 40,000 draws: 3.8 s a call against 3.3 s, medians
    # of 6 in one process).
    # Both elements of a pair compute payer term + receiver term from the same numbers in the
    # same order, so they are equal to the last bit (compiled code may fuse a multiply-add).
    out_i, in_i = DIRECTIONS.index("outward"), DIRECTIONS.index("inward")
    paid, received = flows[:, :, out_i, :], flows[:, :, in_i, :]  # (country, year, phase)

    def along_country(x: pt.TensorVariable) -> pt.TensorVariable:
        return x[:, None, :, None, :]

    def along_partner(x: pt.TensorVariable) -> pt.TensorVariable:  # rest of the world: 0
        return pt.concatenate([x, pt.zeros_like(x[:1])], axis=0)[None, :, :, None, :]

    is_out = np.array([d == "outward" for d in DIRECTIONS])[None, None, None, :, None]
    payer_flow = pt.where(is_out, along_country(paid), along_partner(paid))
    receiver_flow = pt.where(is_out, along_partner(received), along_country(received))
    payer_w = w * share_out[:, :n]              # (payer, receiver)
    receiver_w = (1.0 - w) * share_in[:, :n]    # (receiver, payer)
    no_flow = pt.zeros_like(payer_w[:, :1])  # batched with the shares (a constant is not)
    payer_coef = {"outward": pt.concatenate([payer_w, share_out[:, n:]], axis=1),
                  "inward": pt.concatenate([payer_w.T, no_flow], axis=1)}
    receiver_coef = {"outward": pt.concatenate([receiver_w.T, no_flow], axis=1),
                     "inward": pt.concatenate([receiver_w, share_in[:, n:]], axis=1)}

    def by_direction(coef: dict) -> pt.TensorVariable:  # (country, partner, 1, direction, 1)
        return pt.stack([coef[d] for d in DIRECTIONS], axis=-1)[:, :, None, :, None]

    by_partner = (payer_flow * by_direction(payer_coef)
                  + receiver_flow * by_direction(receiver_coef))
    return by_partner, _country_totals(paid, received, share_out, share_in, w, n)


def _country_totals(paid: pt.TensorVariable, received: pt.TensorVariable,
                    share_out: pt.TensorVariable, share_in: pt.TensorVariable, w: float, n: int
                    ) -> pt.TensorVariable:
    """``by_partner.sum(axis=1)`` of :func:`split_by_partner` without the bilateral array.

    ``paid`` and ``received`` are the market's own outward and inward flows ``(country, year,
    phase)``. Country flows in closed form, current USD ``(country, year, direction, phase)``:
    the same sums, added in another order (equal to rounding). Forward Monte Carlo and the
    deterministics of a NUTS run then need the ``(country, partner, ...)`` arrays only where
    they are stored, not for the flows (multi-country demo, flows only: see
    ``benchmarks/bench_forward.py``).
    """
    # Receivers' estimates of what each run country paid them, sum_p share_in[p, c] * received[p],
    # and payers' estimates of what each received. Written as a sum of n terms, which PyTensor
    # fuses into one loop; a product and a sum over p made an (n, n, year, phase) array first.
    reported_by_receivers = sum(share_in[p, :n, None, None] * received[p] for p in range(n))
    reported_by_payers = sum(share_out[p, :n, None, None] * paid[p] for p in range(n))
    own_out = w * share_out[:, :n].sum(axis=1) + share_out[:, n]
    own_in = (1.0 - w) * share_in[:, :n].sum(axis=1) + share_in[:, n]
    totals = {"outward": paid * own_out[:, None, None] + (1.0 - w) * reported_by_receivers,
              "inward": received * own_in[:, None, None] + w * reported_by_payers}
    # stacked along a leading axis, then moved into place: whole blocks copied (see
    # iff.flows.flow_array)
    return pt.moveaxis(pt.stack([totals[d] for d in DIRECTIONS]), 0, 2)
