"""Bad configs: every validation rule has a fixture, and its message says where and why.

Each fixture in ``fixtures/bad_configs/`` breaks exactly one rule (named in its first line) and
marks the offending line with ``# <- error``; the test checks that the single problem reported
names the file, the dotted field path, that line and the reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from iff.config import load_config
from iff.engine import prepare
from iff.errors import IffInputError

FIXTURES = Path(__file__).parent / "fixtures" / "bad_configs"
MARKER = b"# <- error"

# fixture stem -> (scenario to load, field path, fragments the reason must contain)
CASES: dict[str, tuple[str | None, str | None, tuple[str, ...]]] = {
    "unknown_top_level_key": (
        None, "countires", ("unknown key 'countires'", "did you mean 'countries'")),
    "unknown_market_setting": (
        None, "markets.drugs.export_valuaton",
        ("unknown key 'export_valuaton'", "did you mean 'export_valuation'")),
    "unknown_market": (None, "markets.drugz", ("unknown key 'drugz'", "did you mean 'drugs'")),
    "unknown_market_no_match": (
        None, "markets.wildlife", ("unknown key 'wildlife'", "valid keys: drugs")),
    "prior_name_typo": (
        None, "markets.drugs.priors.interdiction_rat",
        ("unknown key 'interdiction_rat'", "did you mean 'interdiction_rate'")),
    "prior_malformed": (
        None, "markets.drugs.priors.interdiction_rate",
        ("a prior is {between: [lo, hi], mass: 0.9}, {dist: Family, <params>} or "
         "{fixed: value}", "did you mean 'between'")),
    "between_unordered": (
        None, "markets.drugs.priors.throughput.between",
        ("lower bound 2000.0 must be below upper bound 1000.0",)),
    "between_share_outside_unit": (
        None, "markets.drugs.priors.interdiction_rate",
        ("[0.2, 1.5] must lie strictly inside (0, 1) for a share",)),
    "between_mass_not_below_one": (
        None, "markets.drugs.priors.interdiction_rate.mass", ("less than 1",)),
    "fixed_negative_positive": (
        None, "markets.drugs.priors.throughput",
        ("fixed value -5.0 is negative", "this parameter is positive")),
    "fixed_share_above_one": (
        None, "markets.drugs.priors.interdiction_rate",
        ("fixed value 1.2 is outside [0, 1]", "this parameter is a share")),
    "dist_missing_param": (
        None, "markets.drugs.priors.throughput.dist",
        ("Gamma takes parameters alpha, beta", "missing beta")),
    "dist_unknown_param": (
        None, "markets.drugs.priors.throughput.dist",
        ("Gamma takes parameters alpha, beta", "unknown mu")),
    "dist_unknown_family": (
        None, "markets.drugs.priors.throughput.dist", ("'Gamma'", "'Beta'", "got 'Gama'")),
    "dist_wrong_support": (
        None, "markets.drugs.priors.interdiction_rate",
        ("Normal can put mass outside this parameter's support (unit)",)),
    "country_unknown": (
        None, "countries.0",
        ("'COLL' is not an ISO 3166-1 alpha-3 country code", "did you mean 'COL'")),
    "country_lower_case": (None, "countries.0", ("'col' must be upper case: 'COL' (Colombia)",)),
    "countries_duplicated": (None, "countries", ("countries listed twice: COL",)),
    "years_duplicated": (None, "years", ("years listed twice: 2016",)),
    "year_out_of_range": (None, "years", ("between 1900 and 2100", "2201")),
    "seed_missing": (None, "sampler.seed", ("required field is missing",)),
    "seed_not_integer": (None, "sampler.seed", ("valid integer", "fractional part")),
    "draws_below_minimum": (None, "sampler.draws", ("greater than or equal to 10",)),
    "summary_prob_one": (None, "summary.prob", ("less than 1",)),
    "interval_unknown": (None, "summary.interval", ("'eti' or 'hdi'", "got 'hpd'")),
    "name_not_slug": (None, "name", ("'my run!' must start with a letter or digit",)),
    "duplicated_key": (None, "sampler.seed", ("key 'seed' appears twice (first on line 11)",)),
    "yaml_syntax_error": (None, None, ("not valid YAML", "mapping values are not allowed")),
    "empty": (None, None, ("file is empty; expected a YAML mapping",)),
    "not_a_mapping": (None, None, ("expected a YAML mapping at the top level, found list",)),
    "nan_value": (None, "sampler.target_accept", ("finite number",)),
    "nan_in_prior": (
        None, "markets.drugs.priors.throughput.between", ("both bounds must be finite",)),
    "observation_file_missing": (
        None, "observations.file", ("observation file 'does_not_exist.csv' not found",
                                    str(FIXTURES / "does_not_exist.csv"))),
    "scenario_unknown": (
        "hihg", "scenarios",
        ("unknown scenario 'hihg'", "did you mean 'high'", "scenarios: high")),
    "scenario_makes_invalid": (
        "wide", "markets.drugs.priors.interdiction_rate.between",
        ("lower bound 0.5 must be below upper bound 0.2", "(with scenario 'wide')")),
    "scenario_nested": (None, "scenarios", ("scenario 'a' may not define scenarios itself",)),
    "no_markets": (None, "markets", ("at least one market must be configured",)),
    "role_missing": (
        None, "markets.drugs.drugs.cocaine",
        ("no role for PER", "set roles.PER or role (producer, transit, consumer)")),
    "role_not_in_run": (
        None, "markets.drugs.drugs.cocaine.roles.PER",
        ("role given for PER, which is not among the run's countries",)),
    "non_utf8": (None, None, ("not UTF-8 text", "save the file as UTF-8")),
}


def marked_line(path: Path) -> int | None:
    """1-based line carrying the ``# <- error`` marker, if any."""
    lines = path.read_bytes().split(b"\n")
    hits = [i + 1 for i, line in enumerate(lines) if MARKER in line]
    assert len(hits) <= 1, f"{path.name}: more than one error marker"
    return hits[0] if hits else None


def load_and_prepare(path: Path, scenario: str | None = None) -> None:
    """What ``iff validate`` does before sampling: load the config, then check it with data."""
    prepare(load_config(path, scenario))


@pytest.mark.parametrize("stem", sorted(CASES))
def test_bad_config_is_reported_with_file_field_line_and_reason(stem: str) -> None:
    scenario, field, reasons = CASES[stem]
    path = FIXTURES / f"{stem}.yaml"
    with pytest.raises(IffInputError) as exc:
        load_and_prepare(path, scenario)
    err = exc.value
    text = str(err)
    assert len(err.problems) == 1, text  # the fixture breaks one rule only
    (problem,) = err.problems
    assert text.startswith("1 problem found:\n")
    assert problem.file == str(path)
    assert str(path) in text
    assert problem.field == field
    line = marked_line(path)
    if line is not None:
        assert problem.row == line, text
    for fragment in reasons:
        assert fragment in problem.reason, text
        assert fragment in text
    # rendered as "<file>[:<line>]: <field>: <reason>"
    where = str(path) if problem.row is None else f"{path}:{problem.row}"
    if field is not None:
        where += f": {field}"
    assert f"  - {where}: {problem.reason}" in text


def test_every_fixture_has_a_case_and_names_its_rule() -> None:
    stems = {p.stem for p in FIXTURES.glob("*.yaml")}
    assert stems == set(CASES)
    for stem in stems:
        first = (FIXTURES / f"{stem}.yaml").read_bytes().split(b"\n")[0]
        assert first.startswith(b"# rule: "), stem


def test_fixture_fixed_is_valid(tmp_path: Path) -> None:
    """The fixtures are a valid config but for their one broken rule (so the rule is tested)."""
    text = (FIXTURES / "unknown_top_level_key.yaml").read_text()
    good = tmp_path / "good.yaml"
    good.write_text("".join(line for line in text.splitlines(True) if "<- error" not in line))
    load_and_prepare(good)


def test_scenario_error_points_into_scenario_block_and_base_stays_valid() -> None:
    path = FIXTURES / "scenario_makes_invalid.yaml"
    load_and_prepare(path)  # the base config is fine
    with pytest.raises(IffInputError) as exc:
        load_and_prepare(path, "wide")
    assert "scenarios" not in exc.value.problems[0].field


def test_several_config_problems_are_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(
        "name: bad\n"
        "countries: [COL, XXX]\n"
        "years: [2016, 2016]\n"
        "markets:\n"
        "  drugs:\n"
        "    drugs:\n"
        "      cocaine: {role: producer}\n"
        "    priors:\n"
        "      throughput: {fixed: -1}\n"
        "sampler:\n"
        "  draws: 1\n"
        "summary: {interval: hpd}\n",
        encoding="utf-8")
    with pytest.raises(IffInputError) as exc:
        load_config(path)
    got = {(p.field, p.row) for p in exc.value.problems}
    assert got == {
        ("countries.1", 2), ("years", 3), ("markets.drugs.priors.throughput", 9),
        ("sampler.draws", 11), ("sampler.seed", 10), ("summary.interval", 12),
    }
    assert str(exc.value).startswith("6 problems found:\n")
    assert all(p.file == str(path) for p in exc.value.problems)


def test_unfittable_beta_range_is_an_input_error(tmp_path: Path, monkeypatch) -> None:
    """A share range no Beta fits fails validation, not the model build (no traceback later)."""
    import iff.priors

    def no_fit(lo: float, hi: float, mass: float) -> tuple[float, float]:
        raise ValueError(f"found no Beta distribution with {mass:.0%} of its mass in [{lo}, {hi}]")

    monkeypatch.setattr(iff.priors, "_fit_beta", no_fit)
    path = tmp_path / "beta.yaml"
    path.write_text((FIXTURES / "between_share_outside_unit.yaml").read_text().replace(
        "[0.2, 1.5]", "[0.2, 0.5]"), encoding="utf-8")
    with pytest.raises(IffInputError) as exc:
        load_config(path)
    (problem,) = exc.value.problems
    assert problem.field == "markets.drugs.priors.interdiction_rate"
    assert problem.row == 11
    assert "found no Beta distribution with 90% of its mass in [0.2, 0.5]" in problem.reason


def test_directory_instead_of_config(tmp_path: Path) -> None:
    with pytest.raises(IffInputError) as exc:
        load_config(tmp_path)
    assert f"{tmp_path}: is a folder, not a YAML file" in str(exc.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(IffInputError) as exc:
        load_config(tmp_path / "nope.yaml")
    assert f"{tmp_path / 'nope.yaml'}: file not found" in str(exc.value)
