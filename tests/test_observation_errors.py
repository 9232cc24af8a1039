"""Bad observation tables: every problem names the file, the CSV line, the column and the reason.

The header is line 1, so the first data row is line 2. All problems of a file are reported in one
error, before anything is built or sampled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from iff.config import load_config
from iff.engine import prepare
from iff.errors import IffInputError, InputProblem

HEADER = "country,year,market,quantity,item,value,unit,se,lower,upper,source\n"
GOOD = "COL,2016,drugs,production,cocaine,300000,kg,30000,,,test\n"


def row(**changes: Any) -> dict[str, Any]:
    """A valid production row with some columns changed."""
    base = {"country": "COL", "year": 2016, "market": "drugs", "quantity": "production",
            "item": "cocaine", "value": 300000, "unit": "kg", "se": 30000, "source": "test"}
    return {**base, **changes}


@pytest.fixture
def obs_error(make_config, tmp_path: Path):
    """``obs_error(rows=None, text=None, overlay=None) -> (error, csv file name)``.

    Writes the rows (through conftest's ``make_config``) or the literal CSV ``text`` (str or
    bytes) as ``obs.csv`` and returns the :class:`IffInputError` raised before sampling.
    """

    def run(rows: list[dict[str, Any]] | None = None, text: str | bytes | None = None,
            overlay: dict[str, Any] | None = None) -> tuple[IffInputError, str]:
        config = make_config(overlay=overlay, rows=rows)
        csv_path = tmp_path / "obs.csv"
        if isinstance(text, str):
            csv_path.write_text(text, encoding="utf-8", newline="")
        elif isinstance(text, bytes):
            csv_path.write_bytes(text)
        with pytest.raises(IffInputError) as exc:
            prepare(load_config(config))
        return exc.value, str(csv_path)

    return run


def assert_problem(err: IffInputError, problem: InputProblem, file: str, line: int | None,
                   column: str | None, *fragments: str) -> None:
    """One problem: where it is (structured and rendered) and why."""
    text = str(err)
    assert problem.file == file, text
    assert problem.row == line, text
    assert problem.field == column, text
    where = file if line is None else f"{file}:{line}"
    if column is not None:
        where += f": {column}"
    assert f"  - {where}: {problem.reason}" in text
    for fragment in fragments:
        assert fragment in problem.reason, text


# id -> (rows or raw CSV text, line, column, reason fragments)
ONE_PROBLEM: dict[str, tuple[list[dict[str, Any]] | str | bytes, int | None, str | None,
                             tuple[str, ...]]] = {
    "negative value": ([row(value=-5, se="")], 2, "value",
                       ("-5 is negative", "production must be > 0")),
    "zero value": ([row(value=0, se="")], 2, "value",
                   ("0 must be > 0", "log scale", "omit rows with no measurement")),
    "purity at 1": ([row(quantity="purity_retail", value=1, unit="fraction", se="")], 2, "value",
                    ("1 must be below 1", "purity_retail is a share")),
    "purity above 1": ([row(quantity="purity_wholesale", value=1.3, unit="fraction", se="")],
                       2, "value", ("1.3 must be below 1", "purity_wholesale is a share")),
    "non-numeric value": ([row(value="12k")], 2, "value", ("'12k' is not a number",)),
    "inf value": ([row(value="inf")], 2, "value", ("'inf' is not a finite number",)),
    "nan value": ([row(value="nan")], 2, "value", ("'nan' is not a finite number",)),
    "empty required value": ([row(value="")], 2, "value", ("empty; this column is required",)),
    "missing required column": (
        "country,year,market,quantity,item,value,unit\nCOL,2016,drugs,production,cocaine,5,kg\n",
        1, "source", ("required column is missing",)),
    "duplicated column": (HEADER.strip() + ",se\n" + GOOD.strip() + ",1\n", 1, "se",
                          ("column appears twice",)),
    "empty file": ("", None, None, ("file is empty; expected a CSV header line",)),
    "header only": (HEADER, None, None, ("no data rows after the header",)),
    "too many fields": (HEADER + GOOD + GOOD.strip() + ",extra\n", 3, None,
                        ("has 12 fields, the header has 11",)),
    "too few fields": (HEADER + "COL,2016,drugs,production,cocaine,300000\n", 2, None,
                       ("has 6 fields, the header has 11",)),
    "unclosed quote": (HEADER + GOOD + 'COL,2017,drugs,production,cocaine,1,kg,,,,"test\n', 3,
                       None, ("malformed CSV", "unexpected end of data")),
    "text after closing quote": (HEADER + 'COL,2016,drugs,production,cocaine,1,kg,,,,"te"st\n', 2,
                                 None, ("malformed CSV", "expected after '\"'")),
    "non-UTF-8 bytes": ((HEADER + GOOD + "COL,2017,drugs,production,cocaine,1,kg,,,,caf\xe9\n"
                         ).encode("latin-1"), 3, None,
                        ("not UTF-8 text", "save the file as UTF-8 CSV")),
    "unknown ISO3 country": ([row(country="COX")], 2, "country",
                             ("'COX' is not an ISO 3166-1 alpha-3 country code",
                              "did you mean")),
    "lower-case country": ([row(country="col")], 2, "country",
                           ("'col' must be upper case: 'COL'",)),
    "country not in config": ([row(country="PER")], 2, "country",
                              ("'PER' is not among the config's countries (COL)",)),
    "year outside config": ([row(year=2019)], 2, "year",
                            ("2019 is not among the config's years (2016, 2017)",)),
    "non-integer year": ([row(year="2016.5")], 2, "year", ("'2016.5' is not a whole year",)),
    "text year": ([row(year="FY16")], 2, "year", ("'FY16' is not a whole year",)),
    "unknown market": ([row(market="drgus")], 2, "market",
                       ("'drgus' is not a market of this run", "did you mean 'drugs'",
                        "run markets: drugs")),
    "unknown quantity code": ([row(quantity="prodution")], 2, "quantity",
                              ("'prodution' is not a quantity of market 'drugs'",
                               "did you mean 'production'", "known: production, seizures")),
    "wrong unit": ([row(unit="t")], 2, "unit",
                   ("unit 't' does not match the unit of 'production', which is 'kg'",)),
    "missing item": ([row(item="")], 2, "item",
                     ("quantity 'production' needs an item (cocaine)",)),
    "item not configured": ([row(item="heroin")], 2, "item",
                            ("'heroin' is not configured for market 'drugs'",
                             "configured: cocaine")),
    "item typo": ([row(item="cocain")], 2, "item", ("did you mean 'cocaine'",)),
    "interval not containing value": ([row(se="", lower=310000, upper=400000)], 2, "lower",
                                      ("interval [310000, 400000] must contain the value 300000",)),
    "interval reversed": ([row(se="", lower=400000, upper=200000)], 2, "lower",
                          ("must contain the value 300000 strictly inside",)),
    "only lower": ([row(se="", lower=200000)], 2, "upper",
                   ("lower and upper must be given together",)),
    "only upper": ([row(se="", upper=400000)], 2, "lower",
                   ("lower and upper must be given together",)),
    "se zero": ([row(se=0)], 2, "se", ("0 must be > 0",)),
    "se negative": ([row(se=-3)], 2, "se", ("-3 must be > 0",)),
    "se with interval": ([row(se=100, lower=200000, upper=400000)], 2, "se",
                         ("give either se or lower/upper, not both",)),
    "quantity per user above maximum": (
        [row(quantity="quantity_per_user", value=200000, unit="g", se="")], 2, "value",
        ("above the largest valid quantity_per_user",)),
    "users without quantity_per_user": (
        [row(quantity="users", value=1000, unit="persons", se="")], 2, "quantity",
        ("users given for cocaine COL 2016 without quantity_per_user",
         "consumption from the demand side needs both")),
    "quantity_per_user without users": (
        [row(), row(quantity="quantity_per_user", value=10, unit="g", se="")], 3, "quantity",
        ("quantity_per_user given for cocaine COL 2016 without users",)),
}


@pytest.mark.parametrize("case", sorted(ONE_PROBLEM))
def test_bad_observation_table(obs_error, case: str) -> None:
    data, line, column, fragments = ONE_PROBLEM[case]
    if isinstance(data, list):
        err, file = obs_error(rows=data)
    else:
        err, file = obs_error(text=data)
    assert len(err.problems) == 1, str(err)
    assert_problem(err, err.problems[0], file, line, column, *fragments)


def test_unknown_column_gets_a_hint_and_missing_column_is_named(obs_error) -> None:
    err, file = obs_error(text=HEADER.replace("source", "sourse") + GOOD)
    first, second = err.problems
    assert_problem(err, first, file, 1, "sourse", "unknown column 'sourse'",
                   "did you mean 'source'")
    assert_problem(err, second, file, 1, "source", "required column is missing")


def test_unknown_optional_column_gets_a_hint(obs_error) -> None:
    err, file = obs_error(text=HEADER.replace(",lower,", ",lowr,") + GOOD)
    (problem,) = err.problems
    assert_problem(err, problem, file, 1, "lowr", "unknown column 'lowr'", "did you mean 'lower'")


def test_duplicated_rows_name_both_lines(obs_error) -> None:
    err, file = obs_error(text=HEADER + GOOD + "COL,2017,drugs,seizures,cocaine,5,kg,,,,x\n" + GOOD)
    (problem,) = err.problems
    assert_problem(err, problem, file, 4, None, "duplicates line 2",
                   "same country, year, market, quantity, item, partner")


def test_production_for_a_consumer_country(obs_error) -> None:
    """DrugsMarket.check: production_share is fixed at 0 for a consumer."""
    consumer = {"markets": {"drugs": {"drugs": {"cocaine": {"roles": {"COL": "consumer"}}}}}}
    err, file = obs_error(rows=[row(), row(year=2017), row(quantity="seizures")],
                          overlay=consumer)
    assert [p.row for p in err.problems] == [2, 3]
    for problem in err.problems:
        assert_problem(err, problem, file, problem.row, "quantity",
                       "production observed for cocaine in COL",
                       "production_share is fixed at 0", "make it a producer")


def test_forward_method_with_observations(obs_error, tmp_path: Path) -> None:
    overlay = {"sampler": {"method": "forward"}}
    err, _ = obs_error(overlay=overlay)
    config = tmp_path / "config.yaml"
    line = next(i for i, text in enumerate(config.read_text().splitlines(), 1)
                if text.strip().startswith("method:"))
    (problem,) = err.problems
    assert_problem(err, problem, str(config), line, "sampler.method",
                   "method 'forward' samples the priors only", "use 'nuts' or 'auto'")


def test_forward_method_without_observations_is_fine(make_config, tmp_path: Path) -> None:
    config = make_config(overlay={"sampler": {"method": "forward"}})
    data = yaml.safe_load(config.read_text())
    del data["observations"]
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert prepare(load_config(config)).method == "forward"


def test_all_problems_of_a_file_are_reported_at_once(obs_error) -> None:
    text = (HEADER
            + GOOD                                                        # line 2: fine
            + "COX,2016,drugs,seizures,cocaine,100,kg,,,,x\n"             # 3: country
            + "COL,2016,drugs,seizures,cocaine,-5,kg,,,,x\n"              # 4: value
            + "COL,2016,drugs,prodution,cocaine,1,kg,,,,x\n"              # 5: quantity
            + "COL,2030,drugs,price_wholesale,cocaine,1,USD/kg,0,,,x\n"   # 6: year and se
            + "COL,2017,drugs,purity_retail,cocaine,1.5,percent,,,,x\n"   # 7: unit and value
            + "COL,2017,drugs,seizures,cocaine,1,kg\n"                    # 8: fields
            + GOOD)                                                       # 9: duplicate
    err, file = obs_error(text=text)
    got = [(p.row, p.field) for p in err.problems]
    assert got == [(3, "country"), (4, "value"), (5, "quantity"), (6, "year"), (6, "se"),
                   (7, "unit"), (7, "value"), (8, None), (9, None)]
    assert str(err).startswith("9 problems found:\n")
    assert all(p.file == file for p in err.problems)
    assert "duplicates line 2" in err.problems[-1].reason


def test_valid_table_passes(make_config) -> None:
    plan = prepare(load_config(make_config()))
    assert list(plan.observations.frame["line"]) == [2, 3, 4, 5]


def test_blank_lines_keep_line_numbers(obs_error) -> None:
    err, file = obs_error(text=HEADER + GOOD + "\n\n" + GOOD.replace("300000", "-1"))
    (problem,) = err.problems
    assert_problem(err, problem, file, 5, "value", "-1 is negative")


def test_utf8_bom_is_accepted(make_config, tmp_path: Path) -> None:
    config = make_config()
    csv_path = tmp_path / "obs.csv"
    csv_path.write_bytes(b"\xef\xbb\xbf" + csv_path.read_bytes())
    assert len(prepare(load_config(config)).observations.frame) == 4
