"""One self-contained HTML report of a results tree.

The file embeds everything (figures as base64 PNG, styles inline), so it can be mailed or
archived alone. It shows, in order: the alerts (convergence failure, illustrative inputs) as a
banner, the headline estimate with its interval, the SDG table and the report table (from
:mod:`iff.publish`, hence from the summary layer), the figures (:mod:`iff.plots`), each market's
assumptions and input sources, the convergence verdict and the provenance. All text is
HTML-escaped. A small inline script sets ``data-images-loaded="yes"`` on ``<body>`` once every
image has decoded (``naturalWidth > 0``), ``"no"`` otherwise, so a headless browser can check it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from iff.caveats import Caveats
from iff.publish import UNIT_MULT, Publication, publication
from iff.summary import ALL

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1150px;
margin:1.5em auto;padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;
margin-top:1.6em}table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
th,td{border:1px solid #ccc;padding:.25em .5em;vertical-align:top}th{background:#f2f2f2}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.alert{padding:.7em 1em;margin:.6em 0;border-radius:4px;font-weight:600}
.alert.failed{background:#fde7ea;border:2px solid #b00020;color:#7a0016}
.alert.illustrative{background:#fff4e0;border:2px solid #d9822b;color:#6b3d00}
.headline{font-size:1.25em;background:#eef4fa;padding:.8em 1em;border-radius:4px}
.muted{color:#666;font-size:.9em}figure{margin:1em 0}figure img{max-width:100%;height:auto;
border:1px solid #ddd}figcaption{font-size:.85em;color:#555}.flag{color:#b05a00;
font-weight:600}code{font-size:.9em}details{margin:.5em 0}
"""

_SCRIPT = """
(function () {
  function check() {
    var imgs = Array.prototype.slice.call(document.images);
    var ok = imgs.length > 0 && imgs.every(function (i) {
      return i.complete && i.naturalWidth > 0; });
    document.body.setAttribute('data-images-loaded', ok ? 'yes' : 'no');
    document.body.setAttribute('data-images-count', String(imgs.length));
  }
  if (document.readyState === 'complete') { check(); }
  else { window.addEventListener('load', check); }
})();
"""

_CAPTIONS = {
    "fan_chart": "The indicator (inward + outward) over the years: median and nested intervals.",
    "inward_outward": "Inward and outward flows by market: stacked posterior means, with the "
                      "median and interval of each market's total.",
    "total_density": "Posterior density of the total for one year, with median and interval.",
    "prior_posterior": "Prior vs posterior draws of the market's parameters.",
    "convergence": "Convergence diagnostics: R-hat and bulk ESS per variable, trace of the "
                   "total by chain.",
}


def _e(x: Any) -> str:
    return escape(str(x), quote=True)


def _money(x: float) -> str:
    return f"{x:,.1f}"


def _table(df: pd.DataFrame, numeric: tuple[str, ...] = ()) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in df.columns)
    rows = []
    for rec in df.itertuples(index=False):
        cells = []
        for col, v in zip(df.columns, rec, strict=True):
            if col in numeric and isinstance(v, int | float):
                cells.append(f'<td class="num">{_money(v)}</td>')
            else:
                cells.append(f"<td>{_e(v)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _kv(pairs: list[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in pairs)
    return f"<table><tbody>{rows}</tbody></table>"


def _alerts(caveats: Caveats) -> str:
    out = []
    if not caveats.sound:
        out.append(f'<div class="alert failed" id="alert-convergence">'
                   f'{_e(caveats.convergence_text())}</div>')
    if caveats.illustrative:
        out.append(f'<div class="alert illustrative" id="alert-illustrative">'
                   f'{_e(caveats.illustrative_text())}</div>')
    return "".join(out)


def _headline(pub: Publication) -> str:
    c = pub.caveats
    sdg = pub.sdg[pub.sdg["SERIES"] == "IFF_CRIME_TOTAL"]
    last = sdg["TIME_PERIOD"].max()
    items = []
    for r in sdg[sdg["TIME_PERIOD"] == last].itertuples():
        items.append(
            f"<div><b>{_e(r.REF_AREA)} {_e(r.TIME_PERIOD)}</b>: total inward and outward IFFs "
            f"<b>USD {_money(r.OBS_VALUE)} million</b> (posterior median; "
            f"{_e(c.interval_text())} {_money(r.LOWER_BOUND)} to {_money(r.UPPER_BOUND)})"
            "</div>")
    note = (f'<div class="muted">{_e(c.unit_text(UNIT_MULT))}; inward and outward summed on '
            f"each draw, never netted; {_e(c.convergence_text())}</div>")
    return f'<div class="headline" id="headline">{"".join(items)}{note}</div>'


def _pivot(report: pd.DataFrame, caveats: Caveats) -> str:
    """Market x phase rows, direction columns, for the last year of each country."""
    out = []
    for country, part in report.groupby("country", sort=False):
        year = part["year"].max()
        sel = part[part["year"] == year]
        rows = []
        for (market, phase), g in sel.groupby(["market", "phase"], sort=False):
            cells = {"market": market, "phase": phase}
            for direction in ("inward", "outward", ALL):
                r = g[g["direction"] == direction].iloc[0]
                cells["total" if direction == ALL else direction] = (
                    f"{_money(r['median'])} [{_money(r['lower'])}, {_money(r['upper'])}]")
            rows.append(cells)
        out.append(f"<h3>{_e(country)} {_e(year)}</h3>" + _table(pd.DataFrame(rows)))
    return ("".join(out) + f'<p class="muted">USD millions, current prices of each year: median '
            f"[{_e(caveats.interval_text())}]; <code>all</code> marks a sum over markets or "
            "phases, taken draw by draw.</p>")


def _figures(tree: xr.DataTree, kind: str, prob: float) -> str:
    from iff.plots import figure_bytes, figures

    out = []
    for stem, fig in figures(tree, kind, prob).items():
        data = base64.b64encode(figure_bytes(fig, "png", dpi=90)).decode("ascii")
        key = next((k for k in _CAPTIONS if stem.startswith(k)), stem)
        out.append(f'<figure id="fig-{_e(stem)}"><img alt="{_e(stem)}" '
                   f'src="data:image/png;base64,{data}"><figcaption>{_e(_CAPTIONS.get(key, ""))}'
                   "</figcaption></figure>")
    return "".join(out)


def _observation_sources(tree: xr.DataTree) -> pd.DataFrame | None:
    """The observation table's market and source columns, if the file is still there unchanged
    (its SHA-256 matches the provenance); None otherwise."""
    inputs = json.loads(tree.attrs.get("input_sha256", "{}") or "{}")
    obs = inputs.get("observations")
    if not obs:
        return None
    path = Path(obs["path"])
    try:
        if hashlib.sha256(path.read_bytes()).hexdigest() != obs["sha256"]:
            return None
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError):
        return None
    if not {"market", "source"} <= set(frame.columns):
        return None
    return frame


def _prune(value: Any) -> Any:
    """Drop unset (None, empty) entries from nested config sections, for display."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, {}, [])}
    return value


def _stated_priors(section: Any) -> set[str]:
    """Parameters given a prior anywhere in a market's config section (market level or per
    item, e.g. per drug)."""
    found: set[str] = set()
    if isinstance(section, dict):
        for key, value in section.items():
            if key == "priors" and isinstance(value, dict):
                found |= {k for k, v in value.items() if v is not None}
            else:
                found |= _stated_priors(value)
    return found


def _markets(tree: xr.DataTree, caveats: Caveats) -> str:
    from iff import registry

    cfg = json.loads(tree.attrs.get("config_json", "{}") or "{}")
    used = json.loads(tree.attrs.get("priors_used", "{}") or "{}")
    run_sources = json.loads(tree.attrs.get("observation_sources", "[]") or "[]")
    obs = _observation_sources(tree)
    known = registry.markets()
    observed = tree["observed_data"] if "observed_data" in tree.children else None
    out = []
    for market in [str(m) for m in tree["posterior"]["flows"].coords["market"].values]:
        cls = known.get(market)
        head = (f"{cls.title} ({cls.typology}; ICCS {', '.join(cls.iccs)})" if cls
                else "market not installed: metadata unavailable")
        section = cfg.get("markets", {}).get(market) or {}
        settings = [(k, json.dumps(v) if isinstance(v, dict | list) else v)
                    for k, v in _prune(section).items() if k != "priors"]
        stated = _stated_priors(section)
        priors = pd.DataFrame(
            [{"parameter": v.removeprefix(f"{market}_"),
              "prior": text,
              "set by": "config" if v.removeprefix(f"{market}_") in stated else "default"}
             for v, text in used.items() if v.startswith(f"{market}_")])
        parts = [f'<h3 id="market-{_e(market)}">{_e(market)}</h3><p>{_e(head)}</p>']
        if settings:
            parts.append("<h4>Settings</h4>" + _kv(settings))
        if len(priors):
            parts.append("<h4>Priors (assumptions)</h4>" + _table(priors))
        if observed is not None:
            quantities = [(str(n).removeprefix(f"{market}_").removesuffix("_obs"),
                           int(observed[n].size)) for n in observed.data_vars
                          if str(n).startswith(f"{market}_")]
            if quantities:
                parts.append("<h4>Observed quantities</h4>" + _table(
                    pd.DataFrame(quantities, columns=["quantity", "rows"])))
        sources = ([] if obs is None
                   else sorted(set(obs.loc[obs["market"] == market, "source"])))
        if sources:
            items = "".join(
                f'<li{" class=flag" if "illustrative" in s.lower() else ""}>{_e(s)}'
                f'{" (ILLUSTRATIVE)" if "illustrative" in s.lower() else ""}</li>'
                for s in sources)
            parts.append(f"<h4>Input sources</h4><ul>{items}</ul>")
        out.append("".join(parts))
    if obs is None and run_sources:
        items = "".join(
            f'<li{" class=flag" if "illustrative" in s.lower() else ""}>{_e(s)}</li>'
            for s in run_sources)
        out.append("<h3>Input sources (all markets)</h3><p class=muted>The observation file has "
                   f"changed or moved since the run, so sources are not split by market.</p>"
                   f"<ul>{items}</ul>")
    if caveats.illustrative_priors:
        out.append('<p class="flag">The config marks some priors as illustrative '
                   "(illustrative_priors: true).</p>")
    return "".join(out)


def _convergence(caveats: Caveats) -> str:
    c = caveats.convergence
    pairs = [("verdict", caveats.verdict), ("method", caveats.method)]
    for k in ("max_rhat", "worst_rhat", "min_ess_bulk", "worst_ess", "divergences"):
        if c.get(k) is not None:
            v = c[k]
            pairs.append((k, f"{v:.4g}" if isinstance(v, float) else v))
    pairs.append(("thresholds", json.dumps(c.get("thresholds", {}))))
    if caveats.failures:
        pairs.append(("failures", "; ".join(caveats.failures)))
    cls = "" if caveats.sound else ' class="alert failed"'
    return f"<p{cls}>{_e(caveats.convergence_text())}</p>" + _kv(pairs)


def _provenance(tree: xr.DataTree, pub: Publication) -> str:
    a = tree.attrs
    m = pub.metadata
    pairs = [("iff version", a.get("iff_version", "")),
             ("results created", a.get("created_at", "")),
             ("report generated", datetime.now(UTC).isoformat(timespec="seconds")),
             ("method", a.get("method", "")), ("NUTS sampler", a.get("nuts_sampler", "") or "-"),
             ("seed", a.get("seed", "")), ("scenario", a.get("scenario", "") or "-"),
             ("config SHA-256", a.get("config_sha256", "")),
             ("flows SHA-256", a.get("flows_sha256", ""))]
    for role, info in m["inputs"].items():
        pairs.append((f"input {role}", f"{info.get('path')} (SHA-256 {info.get('sha256')})"))
    for lib, ver in json.loads(a.get("library_versions", "{}") or "{}").items():
        pairs.append((f"version {lib}", ver))
    extra = []
    if pub.caveats.warnings:
        extra.append("<h3>Run warnings</h3><ul>"
                     + "".join(f"<li>{_e(w)}</li>" for w in pub.caveats.warnings) + "</ul>")
    if pub.caveats.corrections:
        extra.append("<h3>Overlap corrections</h3><ul>" + "".join(
            f"<li>{_e(k)}: {_e(v)}</li>" for k, v in pub.caveats.corrections.items()) + "</ul>")
    return "".join(extra) + _kv(pairs)


def render_report(tree: xr.DataTree, kind: str = "eti", prob: float = 0.9) -> tuple[str,
                                                                                  Caveats]:
    """The HTML report of a results tree, and its caveats.

    Parameters
    ----------
    tree
        Results DataTree (:func:`iff.results.load_tree`).
    kind, prob
        Interval kind and probability of every bound in the report.
    """
    pub = publication(tree, kind, prob)
    c = pub.caveats
    cfg = json.loads(tree.attrs.get("config_json", "{}") or "{}")
    sdg = pub.sdg.drop(columns=["COMMENT", "INDICATOR", "UNIT_MEASURE", "UNIT_MULT", "NATURE"])
    long = pub.report.drop(columns=["unit", "unit_mult", "interval", "prob"])
    title = f"SDG 16.4.1 - {c.run_label}"
    body = [
        _alerts(c),
        f"<h1>{_e(c.title_prefix() + title)}</h1>",
        f'<p class="muted">{_e(cfg.get("description", ""))}</p>',
        _headline(pub),
        "<h2>SDG 16.4.1 table</h2>",
        _table(sdg, numeric=("OBS_VALUE", "LOWER_BOUND", "UPPER_BOUND")),
        f'<p class="muted">OBS_VALUE, LOWER_BOUND, UPPER_BOUND in USD millions (UNIT_MULT '
        f"{UNIT_MULT}), current prices; NATURE M (modelled). COMMENT of every row: "
        f'{_e(pub.sdg["COMMENT"].iloc[0])}</p>',
        "<h2>By market, direction and phase</h2>", _pivot(pub.report, c),
        "<details><summary>Full table (every year)</summary>",
        _table(long, numeric=("mean", "median", "sd", "lower", "upper")), "</details>",
        "<h2>Figures</h2>", _figures(tree, kind, prob),
        "<h2>Markets: assumptions and input sources</h2>", _markets(tree, c),
        "<h2>Convergence</h2>", _convergence(c),
        "<h2>Provenance</h2>", _provenance(tree, pub),
    ]
    html = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
            f'<body data-images-loaded="pending" data-convergence="{_e(c.verdict)}">'
            + "\n".join(body) + f"<script>{_SCRIPT}</script></body></html>\n")
    return html, c
