"""Figures of a results tree (matplotlib, no pyplot state; PNG and SVG).

Each figure reads the summary layer (:mod:`iff.summary`) or the draws themselves:

* ``fan_chart``: the 16.4.1 indicator over the years, median and nested intervals;
* ``inward_outward``: inward and outward flows by market, stacked posterior means (means add up,
  medians do not), with the median and interval of each market's total;
* ``total_density_<year>``: posterior density of the total for one year, median and interval;
* ``prior_posterior_<market>``: prior vs posterior of each market's parameters that have priors;
* ``convergence``: R-hat and bulk ESS per variable against their thresholds, and the trace of
  the total by chain (for forward Monte Carlo: the trace, and why the checks do not apply).

Every title starts with ``NOT CONVERGED - `` for results that failed the convergence checks and
``ILLUSTRATIVE - `` for illustrative inputs; every figure states unit and interval.
"""

from __future__ import annotations

import io
import json
import math
import warnings
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from iff.atomic import refuse_existing, write_atomic
from iff.caveats import Caveats
from iff.summary import ALL, aggregate, summarize

FORMATS = ("png", "svg")
NESTED = (0.5, 0.8, 0.95)
MILLION = 1e6
_RC = {"svg.fonttype": "none", "svg.hashsalt": "iff", "font.size": 9,
       "axes.spines.top": False, "axes.spines.right": False}
_BLUE, _ORANGE, _GREY, _RED = "#1f5f99", "#d9822b", "#8a8a8a", "#b00020"


def _frame(fig: Figure, caveats: Caveats, title: str, note: str) -> None:
    """Title with the caveat prefix, and a footnote with the run, unit, interval and alerts."""
    width = fig.get_figwidth()
    fig.suptitle(_wrap(caveats.title_prefix() + title, int(width * 11)), fontsize=12,
                 fontweight="bold", color=_RED if caveats.title_prefix() else "black",
                 x=0.01, ha="left")
    lines = [f"run {caveats.run_label}; {note}", *caveats.alerts()]
    fig.supxlabel("\n".join(_wrap(t, int(width * 18)) for t in lines), fontsize=7.5, x=0.01,
                  ha="left", color=_RED if not caveats.sound else "#333333")


def _wrap(text: str, width: int = 150) -> str:
    words, lines, cur = text.split(), [], ""
    for w in words:
        if cur and len(cur) + len(w) + 1 > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    return "\n".join([*lines, cur])


def _nbins(n: int) -> int:
    """Histogram bins for ``n`` draws: about sqrt(n), between 20 and 80."""
    return int(np.clip(np.sqrt(n), 20, 80))


def _rows(table: pd.DataFrame, **sel: object) -> pd.DataFrame:
    mask = np.ones(len(table), dtype=bool)
    for col, val in sel.items():
        mask &= (table[col] == val).to_numpy()
    return table[mask]


def _countries(table: pd.DataFrame) -> list[str]:
    return [c for c in table["country"].unique() if c != ALL]


def fan_chart(summaries: dict[float, pd.DataFrame], caveats: Caveats) -> Figure:
    """The indicator (inward + outward) per country over the years: median, nested intervals.

    Parameters
    ----------
    summaries
        Summary tables (:func:`iff.summary.summarize`) of one interval kind by probability.
    """
    probs = sorted(summaries, reverse=True)
    any_table = summaries[probs[0]]
    countries = _countries(any_table)
    n = len(countries)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(max(4.2 * ncols + 1, 7), 3.2 * nrows + 1.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    shades = np.linspace(0.18, 0.55, len(probs))
    for ax, country in zip(axes, countries, strict=False):
        for shade, p in zip(shades, probs, strict=True):
            r = _rows(summaries[p], market=ALL, country=country, direction=ALL, phase=ALL)
            ax.fill_between(r["year"], r["lower"] / MILLION, r["upper"] / MILLION, color=_BLUE,
                            alpha=shade, lw=0, label=f"{p:.0%} {caveats.kind.upper()}")
        r = _rows(any_table, market=ALL, country=country, direction=ALL, phase=ALL)
        ax.plot(r["year"], r["median"] / MILLION, "o-", color="black", lw=1.5, ms=4,
                label="median")
        ax.set_title(country)
        ax.set_xticks(sorted(r["year"].unique()))
        ax.set_ylabel("USD millions (current)")
        ax.set_ylim(bottom=0)
    for ax in axes[n:]:
        ax.set_visible(False)
    axes[0].legend(loc="upper left", fontsize=7.5, frameon=False)
    _frame(fig, caveats, "SDG 16.4.1: total value of inward and outward IFFs",
           f"current USD millions (prices of each year); median with nested "
           f"{', '.join(f'{p:.0%}' for p in sorted(probs))} {caveats.kind.upper()}; "
           f"{caveats.convergence_text() if caveats.sound else 'NOT CONVERGED'}")
    return fig


def inward_outward(summary: pd.DataFrame, caveats: Caveats) -> Figure:
    """Inward and outward flows by market and year: stacked posterior means, all countries."""
    markets = [m for m in summary["market"].unique() if m != ALL]
    n = len(markets)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(max(4.2 * ncols + 1, 7), 3.2 * nrows + 1.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    countries = _countries(summary)
    where = countries[0] if len(countries) == 1 else f"{len(countries)} countries summed"
    for ax, market in zip(axes, markets, strict=False):
        base = _rows(summary, market=market, country=ALL, phase=ALL)
        inward = _rows(base, direction="inward").set_index("year")
        outward = _rows(base, direction="outward").set_index("year")
        total = _rows(base, direction=ALL).set_index("year")
        years = inward.index.to_numpy()
        ax.bar(years, inward["mean"] / MILLION, color=_BLUE, label="inward (mean)")
        ax.bar(years, outward["mean"] / MILLION, bottom=inward["mean"] / MILLION,
               color=_ORANGE, label="outward (mean)")
        ax.vlines(years + 0.3, total["lower"] / MILLION, total["upper"] / MILLION,
                  color="black", lw=1.2, label=f"total: {caveats.interval_text()}")
        ax.plot(years + 0.3, total["median"] / MILLION, "_", color="black", ms=9,
                label="total: median")
        ax.set_title(market.replace("_", " "))
        ax.set_xticks(years)
        ax.set_ylabel("USD millions (current)")
    for ax in axes[n:]:
        ax.set_visible(False)
    axes[0].legend(loc="upper left", fontsize=7, frameon=False)
    _frame(fig, caveats, f"Inward and outward IFFs by market ({where})",
           "bars: posterior means, stacked (means add up; medians do not); line: median and "
           f"{caveats.interval_text()} of the market's total; current USD millions")
    return fig


def total_density(tree: xr.DataTree, summary: pd.DataFrame, caveats: Caveats,
                  year: int) -> Figure:
    """Posterior density of the total (all markets, countries, directions, phases) in ``year``."""
    flows = tree["posterior"]["flows"].sel(year=year)
    total = aggregate(flows, ("market", "country", "direction", "phase"))
    draws = total.values.ravel() / MILLION
    row = _rows(summary, market=ALL, country=ALL, direction=ALL, phase=ALL, year=year).iloc[0]
    med, lo, hi = (row[c] / MILLION for c in ("median", "lower", "upper"))
    fig = Figure(figsize=(7, 4.4), layout="constrained")
    ax = fig.subplots()
    q = np.quantile(draws, [0.005, 0.995])
    logx = bool(draws.min() > 0 and q[1] / max(q[0], 1e-300) > 50)
    if logx:
        nbins = _nbins(draws.size)
        bins = np.logspace(np.log10(draws.min()), np.log10(draws.max()), nbins)
        dens, edges = np.histogram(np.log10(draws), bins=np.log10(bins), density=True)
        ax.stairs(dens, 10 ** edges, fill=True, color=_BLUE, alpha=0.35)
        ax.stairs(dens, 10 ** edges, color=_BLUE, lw=1.2)
        ax.set_xscale("log")
        ax.set_ylabel("density per log10 unit")
    else:
        dens, edges = np.histogram(draws, bins=_nbins(draws.size), range=tuple(q),
                                   density=True)
        ax.stairs(dens, edges, fill=True, color=_BLUE, alpha=0.35)
        ax.stairs(dens, edges, color=_BLUE, lw=1.2)
        ax.set_ylabel("density per USD million")
    ax.axvspan(lo, hi, color=_GREY, alpha=0.15, lw=0, label=caveats.interval_text())
    ax.axvline(lo, color=_GREY, ls="--", lw=1)
    ax.axvline(hi, color=_GREY, ls="--", lw=1)
    ax.axvline(med, color="black", lw=1.5, label=f"median {med:,.1f}")
    ax.set_xlabel(f"total IFFs in {year}, USD millions (current)")
    ax.legend(loc="upper right", fontsize=8, frameon=False)
    _frame(fig, caveats, f"Posterior of the 16.4.1 total, {year}",
           f"median {med:,.1f}, {caveats.interval_text()} [{lo:,.1f}, {hi:,.1f}] current USD "
           f"millions; {draws.size} draws" + ("; log scale" if logx else ""))
    return fig


def market_parameters(tree: xr.DataTree, market: str) -> list[str]:
    """Variables of ``market``'s parameters that have a prior, in declared order."""
    used = json.loads(tree.attrs.get("priors_used", "{}") or "{}")
    names = [v for v in used if v.startswith(f"{market}_")]
    try:
        from iff import registry

        declared = [f"{market}_{p.name}" for p in registry.get(market).parameters]
        names.sort(key=lambda v: declared.index(v) if v in declared else len(declared))
    except KeyError:
        pass
    post, prior = tree["posterior"], tree["prior"] if "prior" in tree.children else None
    return [v for v in names if v in post.data_vars and prior is not None
            and v in prior.data_vars]


def prior_posterior(tree: xr.DataTree, market: str, caveats: Caveats) -> Figure:
    """Prior vs posterior of each of ``market``'s parameters (elements pooled)."""
    names = market_parameters(tree, market)
    used = json.loads(tree.attrs.get("priors_used", "{}") or "{}")
    n = max(len(names), 1)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(4 * ncols + 0.6, 2.8 * nrows + 1.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, name in zip(axes, names, strict=False):
        post = tree["posterior"][name]
        prior = tree["prior"][name].values.ravel()
        extra = [d for d in post.dims if d not in ("chain", "draw")]
        size = int(np.prod([post.sizes[d] for d in extra])) if extra else 1
        post = post.values.ravel()
        both = np.concatenate([prior, post])
        q = np.quantile(both, [0.005, 0.995])
        if q[1] <= q[0]:
            ax.text(0.5, 0.5, f"constant {q[0]:.4g}", ha="center", transform=ax.transAxes)
        else:
            logx = bool(both.min() > 0 and q[1] / q[0] > 50)
            nb = _nbins(post.size)
            bins = np.logspace(*np.log10(q), nb) if logx else np.linspace(*q, nb)
            for vals, color, label in ((prior, _GREY, "prior"), (post, _BLUE, "posterior")):
                dens, edges = np.histogram(vals, bins=bins, density=True)
                ax.stairs(dens, edges, color=color, lw=1.4, label=label,
                          fill=label == "posterior", alpha=0.35 if label == "posterior" else 1)
            if logx:
                ax.set_xscale("log")
        unit = tree["posterior"][name].attrs.get("units", "")
        short = name.removeprefix(f"{market}_")
        pooled = f"; {size} elements pooled ({', '.join(extra)})" if size > 1 else ""
        prior_text = f"\nprior: {used[name]}" if name in used else ""
        ax.set_title(_wrap(short + prior_text, 60), fontsize=8)
        ax.set_xlabel(_wrap(f"{unit}{pooled}", 60), fontsize=7)
        ax.set_yticks([])
    if not names:
        axes[0].text(0.5, 0.5, "no parameters with priors recorded", ha="center",
                     transform=axes[0].transAxes)
        axes[0].set_axis_off()
    for ax in axes[len(names) or 1:]:
        ax.set_visible(False)
    axes[0].legend(loc="upper right", fontsize=7, frameon=False)
    forward = caveats.method == "forward"
    _frame(fig, caveats, f"Prior vs posterior: {market.replace('_', ' ')}",
           "grey: prior draws; blue: posterior draws"
           + (" (forward Monte Carlo: no data condition the model, so the posterior is the "
              "prior)" if forward else "") + "; densities of draws, elements pooled")
    return fig


def convergence(tree: xr.DataTree, caveats: Caveats) -> Figure:
    """R-hat and bulk ESS per variable with their thresholds, and the trace of the total."""
    flows = tree["posterior"]["flows"]
    last = int(flows.coords["year"].values[-1])
    total = aggregate(flows.sel(year=last), ("market", "country", "direction", "phase"))
    total = total.squeeze(drop=True).transpose("chain", "draw").values / MILLION
    nuts = caveats.method == "nuts"
    fig = Figure(figsize=(11, 5.2 if nuts else 4), layout="constrained")
    if nuts:
        rhat, ess = _diagnostics(tree)
        axes = fig.subplots(1, 3, width_ratios=(1, 1, 1.4))
        th = caveats.convergence.get("thresholds", {})
        rmax, emin = th.get("rhat_max", 1.01), th.get("ess_bulk_min", 400)
        _bars(axes[0], rhat, rmax, "max R-hat", bad=lambda v: v > rmax)
        _bars(axes[1], ess, emin, "min bulk ESS", bad=lambda v: v < emin)
        axes[1].set_yticklabels([])
        trace_ax = axes[2]
        div = caveats.convergence.get("divergences", 0)
        head = f"NUTS: verdict {caveats.verdict}; {div} divergent transitions"
    else:
        trace_ax = fig.subplots()
        head = "forward Monte Carlo: independent exact draws, R-hat/ESS checks do not apply"
    for c in range(total.shape[0]):
        trace_ax.plot(total[c], lw=0.5, alpha=0.8, label=f"chain {c}")
    trace_ax.set_yscale("log" if total.min() > 0 and total.max() / total.min() > 100
                        else "linear")
    trace_ax.set_xlabel("draw")
    trace_ax.set_ylabel(f"total {last}, USD millions")
    trace_ax.set_title(f"trace of the 16.4.1 total, {last}", fontsize=9)
    if total.shape[0] <= 8:
        trace_ax.legend(fontsize=7, frameon=False, ncols=2)
    _frame(fig, caveats, f"Convergence diagnostics ({caveats.verdict})",
           head + "; thresholds R-hat <= 1.01, bulk ESS >= 400, no divergences")
    return fig


def _diagnostics(tree: xr.DataTree) -> tuple[pd.Series, pd.Series]:
    """Worst R-hat and bulk ESS per posterior variable (constant elements skipped)."""
    import arviz as az

    post = tree["posterior"].to_dataset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rhat = az.rhat(post)
        ess = az.ess(post, method="bulk")
    rhat = rhat.to_dataset() if isinstance(rhat, xr.DataTree) else rhat
    ess = ess.to_dataset() if isinstance(ess, xr.DataTree) else ess

    def worst(ds: xr.Dataset, fn) -> pd.Series:
        out = {}
        for name, da in ds.data_vars.items():
            v = np.asarray(da.values, dtype=float)
            v = v[np.isfinite(v)]
            if v.size:
                out[str(name)] = float(fn(v))
        return pd.Series(out, dtype=float)

    return worst(rhat, np.max), worst(ess, np.min)


def _bars(ax, values: pd.Series, threshold: float, label: str, bad) -> None:
    values = values.sort_values(ascending=label.startswith("min"))
    shown = values.iloc[:40][::-1]
    colors = [_RED if bad(v) else _BLUE for v in shown]
    ax.barh(range(len(shown)), shown.to_numpy(), color=colors)
    ax.set_yticks(range(len(shown)), [s[:38] for s in shown.index], fontsize=6)
    ax.axvline(threshold, color="black", ls="--", lw=1)
    ax.set_title(f"{label} per variable (threshold {threshold:g})"
                 + ("; worst 40" if len(values) > 40 else ""), fontsize=9)
    if label.endswith("R-hat"):
        ax.set_xlim(left=min(0.99, float(shown.min()) - 0.005) if len(shown) else 0.99)


def figures(tree: xr.DataTree, kind: str = "eti", prob: float = 0.9,
            year: int | None = None) -> dict[str, Figure]:
    """Every figure of a results tree, by file stem.

    Parameters
    ----------
    tree
        Results DataTree.
    kind, prob
        Interval kind and probability (the fan chart adds nested 50/80/95 % intervals).
    year
        Year of the density of the total (default: the last year).
    """
    caveats = Caveats.from_tree(tree, kind, prob)
    probs = sorted({*NESTED, prob})
    summaries = {p: summarize(tree, kind, p) for p in probs}
    summary = summaries[prob]
    years = [int(y) for y in tree["posterior"]["flows"].coords["year"].values]
    year = years[-1] if year is None else int(year)
    if year not in years:
        raise ValueError(f"year {year} is not in the results ({years})")
    figs = {"fan_chart": fan_chart(summaries, caveats),
            "inward_outward": inward_outward(summary, caveats),
            f"total_density_{year}": total_density(tree, summary, caveats, year)}
    for market in tree["posterior"]["flows"].coords["market"].values:
        figs[f"prior_posterior_{market}"] = prior_posterior(tree, str(market), caveats)
    figs["convergence"] = convergence(tree, caveats)
    return figs


def figure_bytes(fig: Figure, fmt: str, dpi: int = 110) -> bytes:
    """The figure encoded as ``png`` or ``svg`` (no timestamps, so output repeats)."""
    buf = io.BytesIO()
    meta = {"Date": None} if fmt == "svg" else {"Software": None}
    with mpl.rc_context(_RC):
        fig.savefig(buf, format=fmt, dpi=dpi, metadata=meta)
    return buf.getvalue()


def save_figures(figs: dict[str, Figure], out_dir: Path, force: bool = False,
                 formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """Write each figure as PNG and SVG into ``out_dir`` atomically; refuse existing files."""
    out_dir = Path(out_dir)
    targets = [out_dir / f"{stem}.{fmt}" for stem in figs for fmt in formats]
    refuse_existing(targets, force)
    written = []
    for stem, fig in figs.items():
        for fmt in formats:
            written.append(write_atomic(out_dir / f"{stem}.{fmt}", figure_bytes(fig, fmt)))
    return written
