"""Published tables: the SDG 16.4.1 long table and the report table, and their writers.

Both tables are cut from the one summary layer (:mod:`iff.summary`): nothing here touches the
draws. Values are the summary's figures divided by ``10**UNIT_MULT`` (millions by default), and
every row states unit, year basis, interval kind and probability, and the convergence verdict;
a run that failed its convergence checks says so in every ``COMMENT``.

SDG table (one row per series x country x year)::

    INDICATOR SERIES SERIES_DESCRIPTION REF_AREA TIME_PERIOD OBS_VALUE LOWER_BOUND UPPER_BOUND
    UNIT_MEASURE UNIT_MULT NATURE COMMENT

``SERIES`` codes are this project's (``IFF_CRIME_TOTAL``, ``IFF_CRIME_INWARD``,
``IFF_CRIME_OUTWARD``, ``IFF_CRIME_<TYPOLOGY>``): the SDG database has no series codes for the
crime-related part of 16.4.1 yet. ``NATURE`` is ``M`` (modelled) and ``OBS_VALUE`` the posterior
median.

Report table: market x direction x phase per country and year (``all`` marks an aggregate),
with mean, median, sd and the interval.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from iff.atomic import refuse_existing, write_atomic
from iff.caveats import UNIT_TEXT, Caveats
from iff.summary import ALL, default_typologies, summarize, summarize_typologies

INDICATOR = "16.4.1"
UNIT_MULT = 6
NATURE = "M"
FORMATS = ("sdg", "csv", "xlsx", "json")
SDG_COLUMNS = ("INDICATOR", "SERIES", "SERIES_DESCRIPTION", "REF_AREA", "TIME_PERIOD",
               "OBS_VALUE", "LOWER_BOUND", "UPPER_BOUND", "UNIT_MEASURE", "UNIT_MULT", "NATURE",
               "COMMENT")
REPORT_COLUMNS = ("country", "year", "market", "typology", "direction", "phase", "mean",
                  "median", "sd", "lower", "upper", "unit", "unit_mult", "interval", "prob",
                  "convergence", "corrections")
_DIRECTION_SERIES = {
    ALL: ("IFF_CRIME_TOTAL", "Total value of inward and outward crime-related illicit financial "
          "flows"),
    "inward": ("IFF_CRIME_INWARD", "Value of inward crime-related illicit financial flows"),
    "outward": ("IFF_CRIME_OUTWARD", "Value of outward crime-related illicit financial flows"),
}
_TYPOLOGY_NAMES = {"illegal_market": "illegal markets", "corruption": "corruption",
                   "exploitation": "exploitation-type activities"}


@dataclass
class Publication:
    """The published tables of one results tree, with their caveats and metadata."""

    sdg: pd.DataFrame
    report: pd.DataFrame
    caveats: Caveats
    metadata: dict[str, Any]


def series_code(typology: str) -> str:
    """SDG series code of a typology, e.g. ``IFF_CRIME_ILLEGAL_MARKET``."""
    return "IFF_CRIME_" + typology.upper()


def sdg_table(summary: pd.DataFrame, typologies: pd.DataFrame, caveats: Caveats,
              unit_mult: int = UNIT_MULT) -> pd.DataFrame:
    """The SDG long table from the summary layer's tables.

    Parameters
    ----------
    summary
        :func:`iff.summary.summarize` of the run.
    typologies
        :func:`iff.summary.summarize_typologies` of the run, same interval.
    caveats
        The run's caveats (``COMMENT``).
    unit_mult
        Values are in units of ``10**unit_mult`` current USD.
    """
    scale = 10.0 ** unit_mult
    comment = caveats.comment(unit_mult=unit_mult)
    country = summary["country"] != ALL
    rows = []
    whole = summary[(summary["market"] == ALL) & (summary["phase"] == ALL) & country]
    for direction, (code, desc) in _DIRECTION_SERIES.items():
        part = whole[whole["direction"] == direction]
        rows.append(_series_rows(part, code, desc, 0))
    typ = typologies[(typologies["typology"] != ALL) & (typologies["phase"] == ALL)
                     & (typologies["direction"] == ALL) & (typologies["country"] != ALL)]
    for i, (name, part) in enumerate(typ.groupby("typology", sort=False)):
        desc = (f"Value of inward and outward illicit financial flows from "
                f"{_TYPOLOGY_NAMES.get(str(name), str(name).replace('_', ' '))}")
        rows.append(_series_rows(part, series_code(str(name)), desc, i + 1))
    table = pd.concat(rows, ignore_index=True)
    table = table.sort_values(["REF_AREA", "TIME_PERIOD", "_order"], kind="stable")
    table["OBS_VALUE"] = table["OBS_VALUE"] / scale
    table["LOWER_BOUND"] = table["LOWER_BOUND"] / scale
    table["UPPER_BOUND"] = table["UPPER_BOUND"] / scale
    table["INDICATOR"] = INDICATOR
    table["UNIT_MEASURE"] = "current USD"
    table["UNIT_MULT"] = unit_mult
    table["NATURE"] = NATURE
    table["COMMENT"] = comment
    return table[list(SDG_COLUMNS)].reset_index(drop=True)


def _series_rows(part: pd.DataFrame, code: str, desc: str, order: int) -> pd.DataFrame:
    return pd.DataFrame({
        "SERIES": code, "SERIES_DESCRIPTION": desc, "REF_AREA": part["country"].to_numpy(),
        "TIME_PERIOD": part["year"].astype(int).to_numpy(),
        "OBS_VALUE": part["median"].to_numpy(), "LOWER_BOUND": part["lower"].to_numpy(),
        "UPPER_BOUND": part["upper"].to_numpy(), "_order": order})


def report_table(summary: pd.DataFrame, typology_of: dict[str, str],
                 unit_mult: int = UNIT_MULT) -> pd.DataFrame:
    """Market x direction x phase per country and year, in ``10**unit_mult`` current USD.

    Countries' sum (``country == all``) is kept only when the run has several countries.
    """
    scale = 10.0 ** unit_mult
    countries = summary.loc[summary["country"] != ALL, "country"].unique()
    table = summary if len(countries) > 1 else summary[summary["country"] != ALL]
    table = table.copy()
    table["typology"] = [ALL if m == ALL else typology_of.get(m, "unclassified")
                         for m in table["market"]]
    for col in ("mean", "median", "sd", "lower", "upper"):
        table[col] = table[col] / scale
    table["unit"] = UNIT_TEXT
    table["unit_mult"] = unit_mult
    return table[list(REPORT_COLUMNS)].reset_index(drop=True)


def publication(tree: xr.DataTree, kind: str = "eti", prob: float = 0.9,
                unit_mult: int = UNIT_MULT) -> Publication:
    """Both tables of a results tree, from one call of the summary layer per grouping."""
    caveats = Caveats.from_tree(tree, kind, prob)
    summary = summarize(tree, kind, prob)
    markets = [str(m) for m in tree["posterior"]["flows"].coords["market"].values]
    typology_of = default_typologies(markets)
    typologies = summarize_typologies(tree, kind, prob, typology_of)
    return Publication(
        sdg=sdg_table(summary, typologies, caveats, unit_mult),
        report=report_table(summary, typology_of, unit_mult),
        caveats=caveats, metadata=metadata(tree, caveats, unit_mult, typology_of))


def metadata(tree: xr.DataTree, caveats: Caveats, unit_mult: int,
             typology_of: dict[str, str]) -> dict[str, Any]:
    """What a reader of an exported file needs to interpret and trace it."""
    a = tree.attrs
    return {
        "indicator": INDICATOR,
        "title": "Total value of inward and outward illicit financial flows (crime-related)",
        "run": caveats.name, "scenario": caveats.scenario,
        "unit_measure": "current USD", "unit_text": caveats.unit_text(unit_mult),
        "unit_mult": unit_mult, "year_basis": "current prices of each reference year "
        "(TIME_PERIOD)",
        "value": "posterior median", "interval": caveats.kind, "prob": caveats.prob,
        "interval_text": caveats.interval_text(), "nature": "M (modelled)",
        "method": caveats.method, "convergence": caveats.verdict,
        "convergence_text": caveats.convergence_text(),
        "convergence_failures": caveats.failures,
        "illustrative_inputs": caveats.illustrative,
        "illustrative_text": caveats.illustrative_text(),
        "warnings": caveats.warnings, "overlap_corrections": caveats.corrections,
        "typologies": typology_of,
        "series": "project codes IFF_CRIME_*: the SDG database has no series codes for the "
                  "crime-related part of 16.4.1 yet",
        "iff_version": a.get("iff_version", ""), "results_created_at": a.get("created_at", ""),
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config_sha256": a.get("config_sha256", ""), "flows_sha256": a.get("flows_sha256", ""),
        "seed": int(a.get("seed", 0)),
        "inputs": json.loads(a.get("input_sha256", "{}") or "{}"),
    }


def output_names(kind: str, prob: float, formats: list[str] | tuple[str, ...]) -> list[str]:
    """File names written for ``formats`` (suffix ``_<kind><pct>`` like ``iff summarize``)."""
    tag = f"{kind}{round(prob * 100):d}"
    names = {"sdg": [f"sdg_16.4.1_{tag}.csv"],
             "csv": [f"sdg_16.4.1_{tag}.csv", f"report_{tag}.csv"],
             "xlsx": [f"iff_{tag}.xlsx"], "json": [f"iff_{tag}.json"]}
    return list(dict.fromkeys(n for f in formats for n in names[f]))


def write(pub: Publication, out_dir: Path, formats: list[str] | tuple[str, ...] = ("sdg",),
          force: bool = False) -> list[Path]:
    """Write the publication in ``formats`` into ``out_dir`` (each file atomically).

    Raises
    ------
    ValueError
        An unknown format.
    iff.errors.ResultsError
        An output file exists and ``force`` is False (nothing is written).
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown format(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    c = pub.caveats
    names = output_names(c.kind, c.prob, formats)
    targets = [out_dir / n for n in names]
    refuse_existing(targets, force)
    written = []
    for path in targets:
        if path.name.startswith("sdg_"):
            write_atomic(path, _csv(pub.sdg))
        elif path.name.startswith("report_"):
            write_atomic(path, _csv(pub.report))
        elif path.suffix == ".xlsx":
            write_atomic(path, lambda p: _xlsx(pub, p))
        else:
            write_atomic(path, json.dumps(_json(pub), indent=1, allow_nan=False) + "\n")
        written.append(path)
    return written


def _csv(table: pd.DataFrame) -> str:
    # float_format None: shortest repr that round-trips, so files hold the summary's numbers.
    return table.to_csv(index=False, lineterminator="\n")


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for rec in table.to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and math.isnan(v) else
                        v.item() if hasattr(v, "item") else v) for k, v in rec.items()})
    return out


def _json(pub: Publication) -> dict[str, Any]:
    return {"metadata": pub.metadata, "alerts": pub.caveats.alerts(),
            "sdg": _records(pub.sdg), "report": _records(pub.report)}


def _xlsx(pub: Publication, path: Path) -> None:
    about = [(k, json.dumps(v) if isinstance(v, dict | list) else v)
             for k, v in pub.metadata.items()]
    alerts = [("ALERT", a) for a in pub.caveats.alerts()]
    with pd.ExcelWriter(path, engine="openpyxl") as xl:
        pd.DataFrame(alerts + about, columns=["field", "value"]).to_excel(
            xl, sheet_name="About", index=False)
        pub.sdg.to_excel(xl, sheet_name="SDG 16.4.1", index=False)
        pub.report.to_excel(xl, sheet_name="Report", index=False)


def default_out_dir(results: Path, sub: str) -> Path:
    """``<results folder>/<sub>`` (the folder holding a posterior file, for a file path)."""
    results = Path(results)
    folder = results if results.is_dir() and results.suffix != ".zarr" else results.parent
    return folder / sub
