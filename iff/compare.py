"""Compare two results (e.g. two scenarios): differences of totals computed on the draws.

Both posteriors are aggregated draw by draw with :func:`iff.summary.aggregate` (phases summed;
totals over markets, countries and directions as in the summary), then the difference
``A - B`` is taken on paired draws: draw *i* of A with draw *i* of B, after flattening
``(chain, draw)``. When both runs used the same seed and differ only in priors (a typical
scenario), paired draws share their random numbers and the difference is the coupled change;
otherwise the pairs are independent draws of each posterior. When the draw counts differ, the
larger set is subsampled (without replacement, fixed seed) to the smaller count, and the result
says so.

Reported per row: mean, median, sd and interval (kind and probability as columns) of the
difference, and ``p_a_gt_b`` = the share of paired draws with A > B.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from iff.errors import IffInputError, InputProblem
from iff.flows import FLOW_UNITS
from iff.results import load_tree
from iff.summary import ALL, aggregate, interval

#: Dims of a comparison row (phases are always summed; flows are compared per year).
ROW_DIMS = ("country", "year", "market", "direction")
COLUMNS = (*ROW_DIMS, "mean", "median", "sd", "lower", "upper", "interval", "prob", "p_a_gt_b",
           "unit")
SUBSAMPLE_SEED = 0


@dataclass
class Comparison:
    """Differences A - B of flow totals.

    Attributes
    ----------
    table
        One row per country (``all`` when there are several), year, market (``all`` plus every
        market in both results) and direction (``all`` = inward + outward, ``inward``,
        ``outward``), with the columns ``COLUMNS``.
    a, b
        Description of each side: path, name, scenario, seed, draws, convergence.
    draws
        Number of paired draws.
    notes
        What the reader must know (subsampling, markets in only one result).
    alerts
        ``WARNING: NOT CONVERGED ...`` for each side that failed the convergence checks (its
        draws, and so the difference, are unreliable).
    """

    table: pd.DataFrame
    a: dict[str, Any]
    b: dict[str, Any]
    draws: int
    interval: str
    prob: float
    notes: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description with every row."""
        rows = self.table.to_dict(orient="records")
        return {"a": self.a, "b": self.b, "difference": "A - B", "unit": FLOW_UNITS,
                "interval": self.interval, "prob": self.prob, "paired_draws": self.draws,
                "alerts": self.alerts, "notes": self.notes, "rows": rows}


def _describe(tree: xr.DataTree, path: str) -> dict[str, Any]:
    cfg = json.loads(tree.attrs.get("config_json", "{}"))
    flows = tree["posterior"]["flows"]
    return {"path": path, "name": cfg.get("name", ""), "scenario": tree.attrs.get("scenario", ""),
            "seed": int(tree.attrs.get("seed", -1)), "method": tree.attrs.get("method", ""),
            "draws": int(flows.sizes["chain"] * flows.sizes["draw"]),
            "convergence": tree.attrs.get("convergence_verdict", "unknown")}


def _check_comparable(a: xr.DataArray, b: xr.DataArray, names: tuple[str, str]) -> None:
    problems = []
    for dim in ("country", "year"):
        va, vb = [str(v) for v in a.coords[dim].values], [str(v) for v in b.coords[dim].values]
        if va != vb:
            problems.append(InputProblem(
                f"the results cover different {dim} values: A ({names[0]}) has "
                f"{', '.join(va)}; B ({names[1]}) has {', '.join(vb)}", field=dim))
    ua, ub = a.attrs.get("units", FLOW_UNITS), b.attrs.get("units", FLOW_UNITS)
    if ua != ub:
        problems.append(InputProblem(
            f"the flows have different units: A '{ua}', B '{ub}'", field="units"))
    if problems:
        raise IffInputError(problems)


def _samples(flows: xr.DataArray) -> xr.DataArray:
    return flows.stack(sample=("chain", "draw")).transpose("sample", ...).reset_index("sample")


def _totals(flows: xr.DataArray, markets: list[str], several_countries: bool) -> xr.DataArray:
    """Sums on every draw: dims (sample, country, year, market, direction), with ``all`` rows."""
    per_market = flows.sel(market=markets)
    parts = []
    for n in range(4):
        for over in itertools.combinations(("market", "country", "direction"), n):
            if "country" in over and not several_countries:
                continue
            src = flows if "market" in over else per_market
            parts.append(aggregate(src, ("phase", *over)).transpose("sample", *ROW_DIMS,
                                                                     "phase"))
    return xr.concat([p.squeeze("phase", drop=True).stack(row=ROW_DIMS) for p in parts],
                     dim="row")


def compare(tree_a: xr.DataTree, tree_b: xr.DataTree, kind: str = "eti", prob: float = 0.9,
            paths: tuple[str, str] = ("A", "B")) -> Comparison:
    """Differences A - B of the flow totals, on paired draws.

    Raises
    ------
    IffInputError
        If the two results cover different countries or years or have different units.
    """
    if not 0 < prob < 1:
        raise IffInputError(InputProblem(f"--prob: {prob} must be between 0 and 1"))
    if kind not in ("eti", "hdi"):
        raise IffInputError(InputProblem(f"--interval: '{kind}' must be eti or hdi"))
    fa, fb = tree_a["posterior"]["flows"], tree_b["posterior"]["flows"]
    _check_comparable(fa, fb, paths)
    sa, sb = _samples(fa), _samples(fb)
    notes = []
    na, nb = sa.sizes["sample"], sb.sizes["sample"]
    if na != nb:
        rng = np.random.default_rng(SUBSAMPLE_SEED)
        n = min(na, nb)
        big = "A" if na > nb else "B"
        keep = np.sort(rng.choice(max(na, nb), size=n, replace=False))
        if big == "A":
            sa = sa.isel(sample=keep)
        else:
            sb = sb.isel(sample=keep)
        notes.append(f"{big} has {max(na, nb)} draws and {'B' if big == 'A' else 'A'} {n}: "
                     f"{big}'s draws were subsampled to {n} (without replacement, seed "
                     f"{SUBSAMPLE_SEED}) before pairing")
    ma = [str(m) for m in fa.coords["market"].values]
    mb = [str(m) for m in fb.coords["market"].values]
    common = [m for m in ma if m in mb]
    only = [f"{m} (only in {'A' if m in ma else 'B'})" for m in ma + mb if m not in common]
    if only:
        notes.append("markets not in both results count in the 'all' rows only: "
                     + ", ".join(dict.fromkeys(only)))
    several = fa.sizes["country"] > 1
    ta, tb = _totals(sa, common, several), _totals(sb, common, several)
    diff = ta.values - tb.values
    lo, hi = interval(diff, kind, prob)
    table = pd.DataFrame({
        "mean": diff.mean(axis=0), "median": np.median(diff, axis=0),
        "sd": diff.std(axis=0, ddof=1) if diff.shape[0] > 1 else np.zeros(diff.shape[1]),
        "lower": lo, "upper": hi, "p_a_gt_b": (diff > 0).mean(axis=0),
    }, index=ta.indexes["row"]).reset_index()
    table["interval"] = kind
    table["prob"] = prob
    table["unit"] = FLOW_UNITS
    order = {"country": [ALL, *map(str, fa.coords["country"].values)],
             "market": [ALL, *common], "direction": [ALL, "inward", "outward"]}
    for dim, cats in order.items():
        table[dim] = pd.Categorical(table[dim].astype(str), categories=cats, ordered=True)
    table = table.sort_values(["country", "year", "market", "direction"]).reset_index(drop=True)
    for dim in order:
        table[dim] = table[dim].astype(str)
    table["year"] = table["year"].astype(int)
    return Comparison(table=table[list(COLUMNS)], a=_describe(tree_a, paths[0]),
                      b=_describe(tree_b, paths[1]), draws=int(diff.shape[0]), interval=kind,
                      prob=prob, notes=notes, alerts=_alerts(tree_a, tree_b, paths, kind, prob))


def _alerts(tree_a: xr.DataTree, tree_b: xr.DataTree, paths: tuple[str, str], kind: str,
            prob: float) -> list[str]:
    """One ``WARNING: NOT CONVERGED`` line per side that failed the convergence checks."""
    from iff.caveats import Caveats

    out = []
    for side, tree, path in (("A", tree_a, paths[0]), ("B", tree_b, paths[1])):
        c = Caveats.from_tree(tree, kind, prob)
        if not c.sound:
            out.append(f"WARNING: NOT CONVERGED - {side} ({path}, run {c.run_label}): "
                       + c.convergence_text().removeprefix("WARNING: NOT CONVERGED - "))
    return out


def compare_results(a: str | Path, b: str | Path, kind: str = "eti",
                    prob: float = 0.9) -> Comparison:
    """Load two results (hash-checked) and :func:`compare` them."""
    return compare(load_tree(Path(a)), load_tree(Path(b)), kind, prob, (str(a), str(b)))
