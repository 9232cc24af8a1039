"""The observation table: one long CSV format for the numeric inputs of every market.

Columns (header names are exact):

========== ======== =================================================================
column     required meaning
========== ======== =================================================================
country    yes      ISO 3166-1 alpha-3 code of a country in the run
year       yes      reference year, one of the run's years
market     yes      market name, one of the run's markets
quantity   yes      a quantity code the market declares (``iff markets`` lists them)
value      yes      the number, in ``unit``
unit       yes      the unit the market declares for that quantity
source     yes      document, year, table -- or ``illustrative``
item       no       sub-category where the market has them (the drug for ``drugs``)
se         no       standard error of ``value``
lower      no       lower end of a central interval (probability: config
                    ``observations.interval_prob``)
upper      no       upper end of that interval
partner    no       ISO3 code of the counterpart country
========== ======== =================================================================

Every problem names the file, the 1-based line (the header is line 1), the column and the reason;
all problems are reported together.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from iff.countries import check_iso3
from iff.errors import IffInputError, InputProblem, did_you_mean, read_user_text
from iff.market import Market
from iff.priors import Support

REQUIRED = ("country", "year", "market", "quantity", "value", "unit", "source")
OPTIONAL = ("item", "se", "lower", "upper", "partner")
KEY = ("country", "year", "market", "quantity", "item", "partner")

def _norm_unit(u: str) -> str:
    return "".join(u.split()).lower()


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class ObservationTable:
    """Validated observations.

    Attributes
    ----------
    frame
        One row per observation with columns ``line, country, year, market, quantity, item,
        partner, value, unit, se, lower, upper, source`` (``line`` is the CSV line).
    file
        Name of the file, for messages.
    interval_prob
        Probability of the ``lower``/``upper`` intervals.
    countries, years
        The run's countries and years the table was checked against (markets' checks use them,
        e.g. to find a country-year without a needed row).
    """

    frame: pd.DataFrame
    file: str
    interval_prob: float = 0.9
    countries: list[str] = field(default_factory=list)
    years: list[int] = field(default_factory=list)

    def for_market(self, market: str) -> pd.DataFrame:
        """Rows of one market."""
        return self.frame[self.frame["market"] == market]

    @classmethod
    def empty(cls, countries: list[str] | None = None,
              years: list[int] | None = None) -> ObservationTable:
        """A table with no rows (a run without an observation file)."""
        cols = ["line", *KEY, "value", "unit", "se", "lower", "upper", "source"]
        return cls(pd.DataFrame({c: pd.Series(dtype=object) for c in cols}), "<none>",
                   countries=list(countries or []), years=list(years or []))


def _read_rows(path: Path, file: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    text = read_user_text(path, file, "CSV")
    if not text.strip():
        raise IffInputError(InputProblem("file is empty; expected a CSV header line", file=file))
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    try:
        header = [h.strip() for h in next(reader)]
        for fields in reader:
            if not any(f.strip() for f in fields):
                continue  # blank line
            rows.append((reader.line_num, fields))
    except csv.Error as e:
        raise IffInputError(InputProblem(f"malformed CSV: {e}", file=file,
                                         row=reader.line_num)) from None
    return header, rows


def read_observations(
    path: Path,
    markets: Mapping[str, Market],
    countries: list[str],
    years: list[int],
    file: str | None = None,
    interval_prob: float = 0.9,
) -> ObservationTable:
    """Read and validate an observation table against the run's markets, countries and years.

    Parameters
    ----------
    path
        CSV file.
    markets
        The run's market instances by name (they declare quantities and items).
    countries, years
        The run's countries (ISO3) and years.
    file
        Name of the file in messages (defaults to ``str(path)``).
    interval_prob
        Probability of the ``lower``/``upper`` intervals.

    Raises
    ------
    IffInputError
        Listing every problem with file, line, column and reason.
    """
    file = file or str(path)
    header, rows = _read_rows(path, file)
    problems: list[InputProblem] = []
    known = set(REQUIRED) | set(OPTIONAL)
    for col in header:
        if col not in known:
            problems.append(InputProblem(f"unknown column '{col}'{did_you_mean(col, known)}",
                                         file=file, field=col, row=1))
    dups = sorted({c for c in header if header.count(c) > 1})
    for col in dups:
        problems.append(InputProblem("column appears twice", file=file, field=col, row=1))
    for col in REQUIRED:
        if col not in header:
            problems.append(InputProblem("required column is missing", file=file, field=col,
                                         row=1))
    if problems:
        raise IffInputError(problems)
    if not rows:
        raise IffInputError(InputProblem("no data rows after the header", file=file))

    records = []
    seen: dict[tuple, int] = {}
    for line, fields in rows:
        if len(fields) != len(header):
            problems.append(InputProblem(
                f"has {len(fields)} fields, the header has {len(header)}", file=file, row=line))
            continue
        raw = {h: f.strip() for h, f in zip(header, fields, strict=True)}
        rec, row_problems = _check_row(raw, line, file, markets, countries, years)
        problems.extend(row_problems)
        if rec is None:
            continue
        key = tuple(rec[k] for k in KEY)
        if key in seen:
            problems.append(InputProblem(
                f"duplicates line {seen[key]} (same country, year, market, quantity, item, "
                "partner)", file=file, row=line))
            continue
        seen[key] = line
        records.append(rec)
    if problems:
        raise IffInputError(problems)
    frame = pd.DataFrame.from_records(records)
    return ObservationTable(frame=frame, file=file, interval_prob=interval_prob,
                            countries=list(countries), years=list(years))


def _fmt(v: float) -> str:
    """A number as the user would write it (no rounding to 6 digits)."""
    return f"{v:.12g}"


def _number(raw: dict[str, str], col: str, line: int, file: str,
            problems: list[InputProblem]) -> float | None:
    text = raw.get(col, "")
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        problems.append(InputProblem(f"'{text}' is not a number", file=file, field=col, row=line))
        return None
    if not math.isfinite(value):
        problems.append(InputProblem(f"'{text}' is not a finite number", file=file, field=col,
                                     row=line))
        return None
    return value


def _check_row(raw: dict[str, str], line: int, file: str, markets: Mapping[str, Market],
               countries: list[str], years: list[int]) -> tuple[dict | None, list[InputProblem]]:
    problems: list[InputProblem] = []

    def bad(col: str, reason: str) -> None:
        problems.append(InputProblem(reason, file=file, field=col, row=line))

    for col in REQUIRED:
        if raw.get(col, "") == "":
            bad(col, "empty; this column is required")
    if problems:
        return None, problems

    country = raw["country"]
    try:
        check_iso3(country)
        if country not in countries:
            bad("country", f"'{country}' is not among the config's countries "
                f"({', '.join(countries)})")
    except ValueError as e:
        bad("country", str(e))
    partner = raw.get("partner", "")
    if partner:
        try:
            check_iso3(partner)
        except ValueError as e:
            bad("partner", str(e))
        if partner == country:
            bad("partner", "partner is the country itself")

    year: int | None = None
    try:
        year = int(raw["year"])
        if year not in years:
            bad("year", f"{year} is not among the config's years ({', '.join(map(str, years))})")
    except ValueError:
        bad("year", f"'{raw['year']}' is not a whole year")

    market_name = raw["market"]
    market = markets.get(market_name)
    if market is None:
        bad("market", f"'{market_name}' is not a market of this run"
            f"{did_you_mean(market_name, markets)}; run markets: {', '.join(markets)}")
        return None, problems

    code = raw["quantity"]
    spec = market.quantity(code)
    if spec is None:
        codes = [q.code for q in market.quantities]
        bad("quantity", f"'{code}' is not a quantity of market '{market_name}'"
            f"{did_you_mean(code, codes)}; known: {', '.join(codes)}")
        return None, problems

    if partner and not spec.takes_partner:
        bad("partner", f"quantity '{code}' is a national total and takes no partner country; "
            "leave the column empty")

    item = raw.get("item", "")
    if spec.needs_item:
        items = list(spec.items) or market.items()
        if not item:
            bad("item", f"quantity '{code}' needs {spec.item_meaning}" if spec.item_meaning
                else f"quantity '{code}' needs an item ({', '.join(items)})")
        elif spec.items and item not in items:
            bad("item", f"'{item}' is not valid for '{code}'{did_you_mean(item, items)}; it "
                f"needs {spec.item_meaning or 'one of ' + ', '.join(items)}")
        elif item not in items:
            bad("item", f"'{item}' is not configured for market '{market_name}'"
                f"{did_you_mean(item, items)}; configured: {', '.join(items)}")
    elif item:
        bad("item", f"quantity '{code}' takes no item")

    unit = raw["unit"]
    if _norm_unit(unit) != _norm_unit(spec.unit):
        bad("unit", f"unit '{unit}' does not match the unit of '{code}', which is '{spec.unit}'")

    value = _number(raw, "value", line, file, problems)
    se = _number(raw, "se", line, file, problems)
    lower = _number(raw, "lower", line, file, problems)
    upper = _number(raw, "upper", line, file, problems)
    if value is not None:
        for col, v in (("value", value), ("lower", lower), ("upper", upper)):
            if v is None:
                continue
            if v == 0:
                bad(col, f"0 must be > 0 ({code} is measured on the log scale; omit rows with no "
                    "measurement)")
            elif v < 0:
                bad(col, f"{_fmt(v)} is negative; {code} must be > 0")
            elif spec.support is Support.UNIT and v >= 1:
                bad(col, f"{_fmt(v)} must be below 1 ({code} is a share)")
            elif spec.upper is not None and v > spec.upper:
                bad(col, f"{_fmt(v)} is above the largest valid {code} ({_fmt(spec.upper)} "
                    f"{spec.unit})")
        if se is not None and se <= 0:
            bad("se", f"{_fmt(se)} must be > 0")
        if (lower is None) != (upper is None):
            bad("lower" if lower is None else "upper", "lower and upper must be given together")
        elif lower is not None and upper is not None and not lower < value < upper:
            bad("lower", f"interval [{_fmt(lower)}, {_fmt(upper)}] must contain the value "
                f"{_fmt(value)} strictly inside")
        if se is not None and lower is not None:
            bad("se", "give either se or lower/upper, not both")
    if problems:
        return None, problems
    return {
        "line": line, "country": country, "year": year, "market": market_name, "quantity": code,
        "item": item, "partner": partner, "value": value, "unit": spec.unit,
        "se": np.nan if se is None else se, "lower": np.nan if lower is None else lower,
        "upper": np.nan if upper is None else upper, "source": raw["source"],
    }, problems
