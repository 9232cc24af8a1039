"""The real ``iff`` command on bad input: exit code 2, a message naming file and reason, no
traceback, and nothing written.

Every case runs the installed console script in a subprocess from its own folder. All of them fail
before sampling, so the time is the interpreter start-up (importing PyMC); the cases are started
together once per module and each test checks its own result.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import BASE_CONFIG, BASE_ROWS, OBS_HEADER, write_csv

IFF = Path(sys.executable).parent / "iff"
FIXTURES = Path(__file__).parent / "fixtures" / "bad_configs"
HEADER = ",".join(OBS_HEADER) + "\n"
GOOD = "COL,2016,drugs,production,cocaine,300000,kg,30000,,,test\n"


@dataclass
class Case:
    """One command on one set of inputs."""

    args: list[str]  # after "iff"; "{config}" is replaced by the config's absolute path
    expect: list[str]  # fragments stderr must contain; "{dir}" is the case folder
    csv: str | None = None  # observation table text (None: conftest's BASE_ROWS)
    config_fixture: str | None = None  # a file of fixtures/bad_configs instead of BASE_CONFIG
    existing_results: bool = False  # create results/t with a file in it first
    dir: Path = field(default_factory=Path)
    result: subprocess.CompletedProcess | None = None
    before: dict[str, bytes] | None = None


BAD_CSV = {
    "negative quantity": (HEADER + GOOD.replace("300000", "-5"),
                          ["obs.csv:2: value:", "-5 is negative; production must be > 0"]),
    "share outside 0-1": (HEADER + "COL,2016,drugs,purity_retail,cocaine,1.5,fraction,,,,t\n",
                          ["obs.csv:2: value:", "1.5 must be below 1 (purity_retail is a share)"]),
    "missing column": (HEADER.replace(",source", "") + GOOD.rsplit(",", 1)[0] + "\n",
                       ["obs.csv:1: source:", "required column is missing"]),
    "unknown ISO3": (HEADER + GOOD.replace("COL", "CLO"),
                     ["obs.csv:2: country:", "'CLO' is not an ISO 3166-1 alpha-3 country code"]),
    "year outside config": (HEADER + GOOD.replace("2016", "2020"),
                            ["obs.csv:2: year:", "2020 is not among the config's years"]),
    "unknown quantity code": (HEADER + GOOD.replace("production", "seizure"),
                              ["obs.csv:2: quantity:", "'seizure' is not a quantity of market",
                               "did you mean 'seizures'"]),
}
BAD_CONFIG = {
    "unknown key": ("unknown_top_level_key.yaml", [], [
        "unknown_top_level_key.yaml:12: countires:", "did you mean 'countries'"]),
    "scenario invalid": ("scenario_makes_invalid.yaml", ["--scenario", "wide"], [
        "scenario_makes_invalid.yaml:17:", "must be below upper bound 0.2 (with scenario 'wide')"]),
    "nan": ("nan_value.yaml", [], ["nan_value.yaml:12: sampler.target_accept:", "finite number"]),
    "role outside run": ("role_not_in_run.yaml", [], [
        "role_not_in_run.yaml:11: markets.drugs.drugs.cocaine.roles.PER:",
        "role given for PER, which is not among the run's countries"]),
}


def _cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for command in ("validate", "run"):
        for name, (text, expect) in BAD_CSV.items():
            cases[f"{command}: {name}"] = Case([command, "{config}"], ["{dir}/", *expect],
                                               csv=text)
        for name, (fixture, extra, expect) in BAD_CONFIG.items():
            cases[f"{command}: {name}"] = Case([command, "{config}", *extra], ["{dir}/", *expect],
                                               config_fixture=fixture)
    cases["run: existing results"] = Case(
        ["run", "{config}"], ["results folder results/t exists", "use --force"],
        existing_results=True)
    cases["summarize: missing folder"] = Case(
        ["summarize", "no_such_results"], ["no_such_results: results not found"])
    cases["run: unknown option"] = Case(
        ["run", "{config}", "--interval", "eti"], ["No such option: --interval"])
    cases["validate: missing config"] = Case(
        ["validate", "{dir}/nope.yaml"], ["{dir}/nope.yaml: file not found"])
    return cases


def _setup(case: Case, folder: Path) -> Path:
    """Write the case's inputs into ``folder``; return the config path."""
    folder.mkdir(parents=True)
    case.dir = folder
    if case.config_fixture:
        config = folder / case.config_fixture
        shutil.copyfile(FIXTURES / case.config_fixture, config)
    else:
        config = folder / "config.yaml"
        data = copy.deepcopy(BASE_CONFIG)  # output.dir unset: results/t under the cwd
        config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        if case.csv is None:
            write_csv(folder / "obs.csv", BASE_ROWS)
        else:
            (folder / "obs.csv").write_text(case.csv, encoding="utf-8")
    if case.existing_results:
        old = folder / "results" / "t"
        old.mkdir(parents=True)
        (old / "summary.csv").write_text("old results\n", encoding="utf-8")
    case.before = _snapshot(folder)
    return config


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every path under ``folder`` (hidden ones too) with the bytes of files."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(folder.rglob("*"))}


def _run(case: Case, config: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    args = [a.replace("{config}", str(config)).replace("{dir}", str(case.dir))
            for a in case.args]
    case.result = subprocess.run([str(IFF), *args], cwd=case.dir, env=env, capture_output=True,
                                 text=True, timeout=300)


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory) -> dict[str, Case]:
    """All cases, run concurrently (each process mostly spends its time importing)."""
    assert IFF.exists(), f"console script {IFF} not installed (pip install -e .)"
    root = tmp_path_factory.mktemp("cli")
    cases = _cases()
    configs = {name: _setup(case, root / f"case{i:02d}") for i, (name, case)
               in enumerate(cases.items())}
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        list(pool.map(lambda name: _run(cases[name], configs[name]), cases))
    return cases


@pytest.mark.parametrize("name", list(_cases()))
def test_cli_bad_input_exits_2_without_traceback_or_output(cli_results, name: str) -> None:
    case = cli_results[name]
    res = case.result
    assert res is not None
    report = f"rc={res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    assert res.returncode == 2, report
    assert "Traceback" not in res.stderr, report
    assert "Traceback" not in res.stdout, report
    for fragment in case.expect:
        assert fragment.replace("{dir}", str(case.dir)) in res.stderr, report
    # Nothing written: no results folder, no hidden temporary folder, old results untouched.
    assert _snapshot(case.dir) == case.before


def test_error_lines_are_not_wrapped(cli_results) -> None:
    """Long paths stay on one line in stderr (a wrapped path cannot be found or grepped)."""
    case = cli_results["validate: unknown ISO3"]
    lines = case.result.stderr.splitlines()
    i = lines.index("error: 1 problem found:")
    assert lines[i + 1].startswith(f"  - {case.dir}/obs.csv:2: country: 'CLO' is not an ISO")
    assert lines[i + 1].rstrip().endswith(("country code", "?)"))


def test_cli_lists_every_problem(cli_results) -> None:
    res = cli_results["run: missing column"].result
    assert "1 problem found:" in res.stderr
    assert res.stdout == ""
