"""The one summary layer: aggregate flows on the draws, then summarise.

Every table (summary.csv, the printed 16.4.1 table, later SDG exports and plots) reads from
:func:`summarize`. Aggregates are sums over dims computed draw by draw -- the 16.4.1 total is
inward + outward (never netted) -- and only then reduced to mean, median, sd and an interval
whose kind and probability are columns.
"""

from __future__ import annotations

import itertools
import json
import warnings

import numpy as np
import pandas as pd
import xarray as xr

from iff.flows import FLOW_DIMS, FLOW_UNITS

AGG_DIMS = ("market", "country", "direction", "phase")
ALL = "all"
COLUMNS = ("market", "country", "year", "direction", "phase", "mean", "median", "sd", "lower",
           "upper", "interval", "prob", "unit", "convergence", "corrections")
FLOW_ORDER = FLOW_DIMS


def interval(samples: np.ndarray, kind: str, prob: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds along axis 0.

    Parameters
    ----------
    samples
        Draws on axis 0.
    kind
        ``eti`` (equal-tailed) or ``hdi`` (narrowest interval holding ``prob`` of the draws).
    prob
        Probability mass in the interval.
    """
    if kind == "eti":
        lo, hi = np.quantile(samples, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
        return lo, hi
    if kind != "hdi":
        raise ValueError(f"interval kind must be 'eti' or 'hdi', got {kind!r}")
    s = np.sort(samples, axis=0)
    n = s.shape[0]
    k = max(int(np.ceil(prob * n)), 1)  # draws inside the interval
    widths = s[k - 1:] - s[: n - k + 1]
    start = np.argmin(widths, axis=0)
    lo = np.take_along_axis(s, start[None], axis=0)[0]
    hi = np.take_along_axis(s, (start + k - 1)[None], axis=0)[0]
    return lo, hi


def aggregate(flows: xr.DataArray, over: tuple[str, ...]) -> xr.DataArray:
    """Sum flows over ``over`` on every draw; the summed dims get the single coord ``all``."""
    out = flows.sum(dim=list(over)) if over else flows
    for dim in over:
        out = out.expand_dims({dim: [ALL]})
    return out


def summarize(tree: xr.DataTree, kind: str = "eti", prob: float = 0.9) -> pd.DataFrame:
    """Summary table of the flows: every combination of aggregated dims, per year.

    Parameters
    ----------
    tree
        Results DataTree with ``posterior.flows(chain, draw, market, country, year, direction,
        phase)`` in current USD.
    kind, prob
        Interval kind (``eti``/``hdi``) and probability.

    Returns
    -------
    pandas.DataFrame
        Columns ``COLUMNS``. Aggregated levels carry ``all`` in the aggregated column: the row
        with ``all`` everywhere but ``year`` is the SDG 16.4.1 total for that year.
    """
    if not 0 < prob < 1:
        raise ValueError(f"prob must be in (0, 1), got {prob}")
    flows = tree["posterior"]["flows"].stack(sample=("chain", "draw")).transpose("sample", ...)
    verdict = str(tree.attrs.get("convergence_verdict", "unknown"))
    frames = []
    for n in range(len(AGG_DIMS) + 1):
        for over in itertools.combinations(AGG_DIMS, n):
            agg = aggregate(flows, over).transpose("sample", *FLOW_ORDER)
            vals = agg.values
            lo, hi = interval(vals, kind, prob)
            stats = {
                "mean": vals.mean(axis=0), "median": np.median(vals, axis=0),
                "sd": vals.std(axis=0, ddof=1) if vals.shape[0] > 1 else np.zeros(vals.shape[1:]),
                "lower": lo, "upper": hi,
            }
            idx = pd.MultiIndex.from_product(
                [agg.coords[d].values for d in FLOW_ORDER], names=list(FLOW_ORDER))
            frames.append(pd.DataFrame({k: v.ravel() for k, v in stats.items()}, index=idx))
    table = pd.concat(frames).reset_index()
    table["interval"] = kind
    table["prob"] = prob
    table["unit"] = FLOW_UNITS
    table["convergence"] = verdict
    table["corrections"] = corrections_column(tree, table["market"])
    order = {d: _order(flows, d) for d in ("market", "country", "direction", "phase")}
    for d, cats in order.items():
        table[d] = pd.Categorical(table[d].astype(str), categories=cats, ordered=True)
    table = table.sort_values(["year", "country", "market", "direction", "phase"],
                              kind="stable").reset_index(drop=True)
    for d in order:
        table[d] = table[d].astype(str)
    table["year"] = table["year"].astype(int)
    return table[list(COLUMNS)]


def summarize_results(tree: xr.DataTree, kind: str = "eti", prob: float = 0.9) -> pd.DataFrame:
    """:func:`summarize` for the public API (``iff.summarize``): the same table, with a
    :class:`iff.errors.ConvergenceWarning` when the results failed the convergence checks (the
    table's ``convergence`` column then reads ``FAILED`` on every row)."""
    from iff.caveats import SOUND
    from iff.errors import ConvergenceWarning

    table = summarize(tree, kind, prob)
    verdict = str(tree.attrs.get("convergence_verdict", "unknown"))
    if verdict not in SOUND:
        warnings.warn(ConvergenceWarning(
            f"NOT CONVERGED: these results' convergence verdict is {verdict}; the summary is "
            "unreliable and not fit for publication (convergence column on every row)"),
            stacklevel=2)
    return table


def corrections_column(tree: xr.DataTree, markets: pd.Series) -> list[str]:
    """Overlap corrections behind each row (``market: description``; ``none`` if none).

    A market's row carries that market's corrections; an ``all`` row carries every market's,
    since its draws sum them. Read from the results' provenance (``overlap_corrections``).
    """
    applied: dict[str, str] = json.loads(tree.attrs.get("overlap_corrections", "{}") or "{}")
    if not applied:
        return ["none"] * len(markets)
    every = "; ".join(f"{m}: {text}" for m, text in applied.items())
    return [every if m == ALL else (f"{m}: {applied[m]}" if m in applied else "none")
            for m in markets]


def _order(flows: xr.DataArray, dim: str) -> list[str]:
    return [ALL, *[str(v) for v in flows.coords[dim].values]]


def indicator_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The SDG 16.4.1 rows: all markets and phases, total and by direction, per country-year."""
    sel = table[(table["market"] == ALL) & (table["phase"] == ALL) & (table["country"] != ALL)]
    return sel.reset_index(drop=True)


def summarize_typologies(
    tree: xr.DataTree, kind: str = "eti", prob: float = 0.9,
    typology_of: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Summary by typology: markets of one typology summed on every draw, then summarised.

    Parameters
    ----------
    tree
        Results DataTree (as for :func:`summarize`).
    kind, prob
        Interval kind and probability.
    typology_of
        Market name -> typology; default from each market's declared ``typology`` in the
        registry (``unclassified`` for a market no longer installed).

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`summarize` with ``typology`` in place of ``market`` (``all``: every
        typology, equal to the ``all`` market rows). ``corrections`` lists the overlap
        corrections of the typology's markets.
    """
    flows = tree["posterior"]["flows"]
    markets = [str(m) for m in flows.coords["market"].values]
    typology_of = dict(typology_of) if typology_of is not None else default_typologies(markets)
    labels = [typology_of.get(m, "unclassified") for m in markets]
    order = list(dict.fromkeys(labels))
    grouped = flows.groupby(xr.DataArray(labels, dims="market", name="typology")).sum()
    grouped = grouped.sel(typology=order).rename(typology="market")
    sub = xr.DataTree.from_dict({"posterior": xr.Dataset({"flows": grouped})})
    sub.attrs = {"convergence_verdict": tree.attrs.get("convergence_verdict", "unknown")}
    table = summarize(sub, kind, prob).rename(columns={"market": "typology"})
    members = {t: [m for m, lab in zip(markets, labels, strict=True) if lab == t] for t in order}
    per_market = dict(zip(markets, corrections_column(tree, pd.Series(markets)), strict=True))
    every = corrections_column(tree, pd.Series([ALL]))[0]
    table["corrections"] = [
        every if t == ALL else
        ("; ".join(per_market[m] for m in members[t] if per_market[m] != "none") or "none")
        for t in table["typology"]]
    return table


def default_typologies(markets: list[str]) -> dict[str, str]:
    """Each market's declared typology from the registry (``unclassified`` if not installed)."""
    from iff import registry

    known = registry.markets()
    return {m: str(known[m].typology) if m in known else "unclassified" for m in markets}
