"""Property tests of input reading: valid input is read back as written, and any mistake is an
:class:`IffInputError` that names the file and where -- never another exception.

(a) The config loader as the CLI uses it (``load_config`` then ``prepare``): generated valid
configs load and keep their values; mutated ones (a key renamed to a near-miss, a value replaced
by one of the wrong type, a key deleted) load or fail with the project's error.
(b) The observation reader: generated valid rows parse back exactly; garbage in one cell (text,
negative, nan, inf, empty, huge, bytes that are not UTF-8) parses or fails with file and line.

Nothing here samples; the examples are few enough for the module to take well under a minute.
"""

from __future__ import annotations

import copy
import csv
import io
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from iff.config import load_config
from iff.engine import prepare
from iff.errors import IffInputError
from iff.observations import read_observations

PROPERTY = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

COUNTRIES = ["COL", "PER", "BOL", "MEX", "GTM", "HND", "USA", "BRA", "ECU", "PAN"]
ROLES = ["producer", "transit", "consumer"]


# -- (a) configs --------------------------------------------------------------------------------

@st.composite
def share_range(draw: st.DrawFn) -> list[float]:
    lo = draw(st.floats(0.01, 0.7))
    return [lo, lo + draw(st.floats(0.05, 0.25))]


@st.composite
def positive_range(draw: st.DrawFn) -> list[float]:
    lo = draw(st.floats(1.0, 1e6))
    return [lo, lo * draw(st.floats(1.5, 100.0))]


@st.composite
def valid_config(draw: st.DrawFn) -> dict[str, Any]:
    """A valid drugs config without observations (forward Monte Carlo)."""
    countries = draw(st.lists(st.sampled_from(COUNTRIES), min_size=1, max_size=5, unique=True))
    first = draw(st.integers(1990, 2030))
    years = sorted(draw(st.sets(st.integers(first, first + 10), min_size=1, max_size=5)))
    roles = {c: draw(st.sampled_from(ROLES)) for c in countries}
    priors = {"interdiction_rate": {"between": draw(share_range())},
              "throughput": {"between": draw(positive_range())}}
    if draw(st.booleans()):
        priors["domestic_share"] = {"between": draw(share_range()),
                                    "mass": draw(st.floats(0.5, 0.99))}
    sampler = {"draws": draw(st.integers(10, 5000)), "tune": draw(st.integers(0, 5000)),
               "chains": draw(st.integers(1, 8)), "seed": draw(st.integers(0, 2**32 - 1)),
               "target_accept": draw(st.floats(0.51, 0.99)), "progressbar": False}
    return {
        "name": draw(st.from_regex(r"[a-z][a-z0-9_-]{0,20}", fullmatch=True)),
        "countries": countries,
        "years": years,
        "markets": {"drugs": {"drugs": {"cocaine": {"roles": roles}},
                              "export_valuation": draw(st.sampled_from(
                                  ["border", "wholesale", "destination_wholesale"])),
                              "priors": priors}},
        "sampler": sampler,
        "summary": {"interval": draw(st.sampled_from(["eti", "hdi"])),
                    "prob": draw(st.floats(0.5, 0.99))},
    }


def write_yaml(folder: Path, data: Any) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def folder():
    """A fresh folder for each example (hypothesis reuses the test's fixtures)."""

    class Fresh:
        def __call__(self) -> Path:
            return Path(tempfile.mkdtemp(dir=self.root))

    with tempfile.TemporaryDirectory() as root:
        fresh = Fresh()
        fresh.root = root
        yield fresh


@PROPERTY
@given(cfg=valid_config())
def test_valid_configs_load_and_keep_their_values(folder, cfg: dict[str, Any]) -> None:
    path = write_yaml(folder(), cfg)
    plan = prepare(load_config(path))
    got = plan.config
    assert got.name == cfg["name"]
    assert list(got.countries) == cfg["countries"]
    assert list(got.years) == cfg["years"]
    for key, value in cfg["sampler"].items():
        assert getattr(got.sampler, key) == value, key
    assert got.summary.interval == cfg["summary"]["interval"]
    assert got.summary.prob == cfg["summary"]["prob"]
    drugs = got.markets.drugs
    assert drugs.export_valuation == cfg["markets"]["drugs"]["export_valuation"]
    assert dict(drugs.drugs["cocaine"].roles) == cfg["markets"]["drugs"]["drugs"]["cocaine"][
        "roles"]
    for name, spec in cfg["markets"]["drugs"]["priors"].items():
        prior = getattr(drugs.priors, name)
        assert list(prior.between) == spec["between"], name
        if "mass" in spec:
            assert prior.mass == spec["mass"], name
    assert plan.method == "forward"


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a nested mapping (list items are values, not paths)."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((*prefix, k))
            out.extend(_paths(v, (*prefix, k)))
    return out


def _near_miss(draw: st.DrawFn, key: Any) -> str:
    """A typo of ``key``: a letter dropped, doubled, swapped with the next, or upper-cased."""
    key = str(key)
    i = draw(st.integers(0, max(len(key) - 1, 0)))
    how = draw(st.sampled_from(["drop", "double", "swap", "upper"]))
    if how == "drop" and len(key) > 1:
        return key[:i] + key[i + 1:]
    if how == "swap" and i + 1 < len(key) and key[i] != key[i + 1]:
        return key[:i] + key[i + 1] + key[i] + key[i + 2:]
    if how == "upper" and key[i].upper() != key[i]:
        return key[:i] + key[i].upper() + key[i + 1:]
    return key[:i] + key[i] + key[i:]


WRONG = st.one_of(
    st.text(max_size=12), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, -1, 0, 1e308, -1e308]),
    st.lists(st.integers(-5, 5) | st.text(max_size=3), max_size=3), st.none(), st.booleans(),
    st.integers(-(2**70), 2**70), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@st.composite
def mutated_config(draw: st.DrawFn) -> tuple[dict[str, Any], str, tuple]:
    cfg = copy.deepcopy(draw(valid_config()))
    path = draw(st.sampled_from(_paths(cfg)))
    parent = cfg
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    how = draw(st.sampled_from(["rename", "retype", "delete"]))
    if how == "rename":
        new = _near_miss(draw, key)
        parent[new if new != str(key) else str(key) + "x"] = parent.pop(key)
    elif how == "retype":
        parent[key] = draw(WRONG)
    else:
        del parent[key]
    return cfg, how, path


@PROPERTY
@given(mutation=mutated_config())
def test_mutated_configs_load_or_name_file_and_field(folder, mutation) -> None:
    cfg, how, where = mutation
    path = write_yaml(folder(), cfg)
    try:
        prepare(load_config(path))
        event(f"{how}: loads")
    except IffInputError as e:
        event(f"{how}: IffInputError")
        text = e.render()
        assert e.problems, text
        for p in e.problems:
            assert p.file == str(path), (how, where, text)
            assert p.field, (how, where, text)
            assert f"{path}" in text and p.field in text
            assert p.reason.strip(), text


# -- (b) observations ---------------------------------------------------------------------------

OBS_CONFIG = {
    "name": "obs", "countries": ["COL", "PER"], "years": [2015, 2016, 2017],
    "observations": {"file": "obs.csv"},
    "markets": {"drugs": {"drugs": {"cocaine": {"role": "producer"},
                                    "heroin": {"role": "consumer"}}}},
    "sampler": {"draws": 10, "seed": 1},
}
HEADER = ["country", "year", "market", "quantity", "item", "value", "unit", "se", "lower",
          "upper", "source"]
#: quantity -> (unit, share?)
QUANTITIES = {"production": ("kg", False), "seizures": ("kg", False),
              "price_wholesale": ("USD/kg", False), "price_retail": ("USD/kg", False),
              "purity_wholesale": ("fraction", True), "purity_retail": ("fraction", True)}


@pytest.fixture(scope="module")
def obs_markets(tmp_path_factory):
    """The run's market instances, as ``prepare`` makes them."""
    root = tmp_path_factory.mktemp("obs")
    (root / "obs.csv").write_text(",".join(HEADER) + "\nCOL,2015,drugs,seizures,cocaine,5,kg,,,,"
                                  "t\n", encoding="utf-8")
    plan = prepare(load_config(write_yaml(root, OBS_CONFIG)))
    return plan.markets


def _read(path: Path, markets):
    return read_observations(path, markets, OBS_CONFIG["countries"], OBS_CONFIG["years"],
                             file=str(path))


@st.composite
def valid_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    keys = draw(st.lists(st.tuples(st.sampled_from(OBS_CONFIG["countries"]),
                                   st.sampled_from(OBS_CONFIG["years"]),
                                   st.sampled_from(sorted(QUANTITIES)),
                                   st.sampled_from(["cocaine", "heroin"])),
                         min_size=1, max_size=12, unique=True))
    rows = []
    for country, year, quantity, item in keys:
        unit, share = QUANTITIES[quantity]
        value = draw(st.floats(1e-6, 0.999999) if share else st.floats(1e-6, 1e12))
        rows.append({"country": country, "year": year, "market": "drugs", "quantity": quantity,
                     "item": item, "value": value, "unit": unit, "source": draw(st.text(
                         st.characters(blacklist_categories=("Cs", "Cc")), min_size=1,
                         max_size=10).filter(str.strip))})
    return rows


def csv_text(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    for r in rows:
        w.writerow([repr(r[h]) if isinstance(r.get(h), float) else r.get(h, "")
                    for h in HEADER])
    return buf.getvalue()


@PROPERTY
@given(rows=valid_rows())
def test_valid_rows_parse_back_exactly(folder, obs_markets, rows) -> None:
    path = folder() / "obs.csv"
    path.write_text(csv_text(rows), encoding="utf-8")
    frame = _read(path, obs_markets).frame
    assert len(frame) == len(rows)
    assert list(frame["line"]) == list(range(2, len(rows) + 2))
    for r, (_, got) in zip(rows, frame.iterrows(), strict=True):
        assert got["value"] == r["value"]
        assert got["unit"] == r["unit"]
        assert got["year"] == r["year"]
        assert got["country"] == r["country"]
        assert got["quantity"] == r["quantity"]
        assert got["item"] == r["item"]
        assert got["source"] == r["source"].strip()


GARBAGE = st.one_of(
    st.text(max_size=15), st.just(""), st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity",
                                                         "1e400", "-1e400", "1e-400", "0", "-0"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str), st.just("9" * 5000),
    st.floats(-1e12, -1e-12).map(repr))


@PROPERTY
@given(rows=valid_rows(), data=st.data())
def test_garbage_in_a_cell_parses_or_names_file_and_line(folder, obs_markets, rows,
                                                         data) -> None:
    i = data.draw(st.integers(0, len(rows) - 1))
    col = data.draw(st.sampled_from(HEADER))
    rows[i] = {**rows[i], col: data.draw(GARBAGE)}
    path = folder() / "obs.csv"
    path.write_text(csv_text(rows), encoding="utf-8")
    _parse_or_locate(path, obs_markets)


@PROPERTY
@given(rows=valid_rows(), data=st.data())
def test_bytes_that_are_not_utf8_parse_or_name_file_and_line(folder, obs_markets, rows,
                                                            data) -> None:
    raw = csv_text(rows).encode("utf-8")
    at = data.draw(st.integers(len(",".join(HEADER)) + 1, len(raw)))
    junk = data.draw(st.binary(min_size=1, max_size=6))
    path = folder() / "obs.csv"
    path.write_bytes(raw[:at] + junk + raw[at:])
    _parse_or_locate(path, obs_markets)


def _parse_or_locate(path: Path, markets) -> None:
    """Reading either works or raises IffInputError naming the file and a data line."""
    try:
        _read(path, markets)
        event("parses")
    except IffInputError as e:
        event("IffInputError")
        text = e.render()
        assert e.problems, text
        for p in e.problems:
            assert p.file == str(path), text
            assert p.row is not None and p.row >= 2, text
            assert f"{path}:{p.row}" in text
