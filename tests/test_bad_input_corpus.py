"""The corpus of invalid inputs in ``bad_inputs/``, run through the real ``iff`` command.

Each folder of ``bad_inputs/`` holds the files of one case (a config and/or data files, derived
from the shipped configs of its market and broken in one place); ``bad_inputs/cases.yaml`` says
for each case what is wrong, the command, and the fragments stderr must contain. Every case is
copied to a temporary folder and run in a subprocess of the installed console script, and must:

1. exit with code 2;
2. name the file, the line or field, and the reason on stderr (the fragments);
3. print no traceback;
4. write nothing: no ``--out`` folder, no new or changed file in the case folder.

All cases fail before sampling, so the time is the interpreter start (importing PyMC); they run
two at a time, once per module, and each test checks its own result.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

IFF = Path(sys.executable).parent / "iff"
CORPUS = Path(__file__).parent / "bad_inputs"
MANIFEST = CORPUS / "cases.yaml"
DEFAULT_ARGS = ["run", "{dir}/config.yaml", "--out", "{dir}/out", "--no-progress"]
#: Categories of mistake the corpus must cover (``kind`` of a case).
KINDS = {
    "key_typo": "a misspelt key or column name",
    "wrong_type": "a value of the wrong type",
    "negative": "a negative value where only positive ones make sense",
    "non_finite": "nan or inf",
    "share_above_1": "a share (fraction) of 1 or more",
    "out_of_range": "a value outside what can be used",
    "unknown_code": "an unknown ISO3 country, quantity, item, crime or scenario code",
    "unit_mismatch": "a unit that is not the quantity's, or a currency without its basis",
    "missing_row": "a missing row, year or exchange rate",
    "duplicated_row": "the same row twice",
    "empty_file": "an empty file, or a CSV with only its header",
    "non_utf8": "text that is not UTF-8",
    "missing_file": "a file named in the config or on the command line that does not exist",
    "list_table": "a malformed MSE list table, or lists that never overlap",
}
#: Case groups beyond the markets of ``iff markets``.
EXTRA_GROUPS = {"partners", "mse", "sweep"}
MIN_CASES = 40


@dataclass
class Outcome:
    """One finished case."""

    dir: Path
    result: subprocess.CompletedProcess
    before: dict[str, bytes]
    after: dict[str, bytes]


def load_manifest() -> dict[str, dict]:
    return yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))


CASES = load_manifest()


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every path under ``folder`` (hidden ones too) with the bytes of files."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(folder.rglob("*"))}


def _env() -> dict[str, str]:
    # No terminal width: rich would wrap long paths otherwise.
    return {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}


def _run_case(name: str, root: Path) -> Outcome:
    folder = root / name
    source = CORPUS / name
    if source.is_dir():
        shutil.copytree(source, folder)
    else:  # a case without files (git keeps no empty folders)
        folder.mkdir(parents=True)
    args = [a.replace("{dir}", str(folder)) for a in CASES[name].get("args") or DEFAULT_ARGS]
    before = _snapshot(folder)
    result = subprocess.run([str(IFF), *args], cwd=folder, env=_env(), capture_output=True,
                            text=True, errors="replace", timeout=300)
    return Outcome(folder, result, before, _snapshot(folder))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, Outcome]:
    """Every case, two processes at a time."""
    assert IFF.exists(), f"console script {IFF} not installed (pip install -e .)"
    root = tmp_path_factory.mktemp("bad_inputs")
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(CASES, pool.map(lambda n: _run_case(n, root), CASES), strict=True))


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_names_file_field_reason_and_writes_nothing(
        outcomes: dict[str, Outcome], name: str) -> None:
    case, outcome = CASES[name], outcomes[name]
    res = outcome.result
    report = (f"{name}: {case['what']}\nrc={res.returncode}\nstdout:\n{res.stdout}\n"
              f"stderr:\n{res.stderr}")
    assert res.returncode == 2, report
    assert "Traceback" not in res.stdout + res.stderr, report
    for fragment in case["expect"]:
        assert fragment.replace("{dir}", str(outcome.dir)) in res.stderr, report
    assert not (outcome.dir / "out").exists(), report
    assert outcome.after == outcome.before, report


def test_manifest_matches_the_case_folders() -> None:
    folders = {p.name for p in CORPUS.iterdir() if p.is_dir()}
    assert folders <= set(CASES), f"folders without a case: {sorted(folders - set(CASES))}"
    for name, case in CASES.items():
        assert set(case) <= {"market", "kind", "what", "args", "expect"}, name
        assert case["kind"] in KINDS, name
        assert case["what"] and case["expect"], name
        if not (CORPUS / name).is_dir():  # only a missing file may be a case without files
            assert case["kind"] == "missing_file", name
        # the first fragment says where (the file of the case), unless it is a command option
        first = case["expect"][0]
        assert first.startswith("{dir}/") or first.startswith("--"), name


def test_corpus_is_large_and_covers_every_market_and_kind() -> None:
    """At least MIN_CASES cases; every market of ``iff markets --json`` and every kind."""
    res = subprocess.run([str(IFF), "markets", "--json"], env=_env(), capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    markets = set(json.loads(res.stdout))
    assert markets, res.stdout
    assert len(CASES) >= MIN_CASES
    per_group = Counter(case["market"] for case in CASES.values())
    assert set(per_group) == markets | EXTRA_GROUPS, per_group
    kinds = Counter(case["kind"] for case in CASES.values())
    assert set(kinds) == set(KINDS), kinds
    # every market has its own mistakes in data or config, not one token case
    assert min(per_group[m] for m in markets) >= 5, per_group
