"""Notebooks: short, public API and shipped data only, and they run clean (executed here)."""

from __future__ import annotations

import ast
import re

import nbformat
import pytest

from tests.conftest import REPO

NOTEBOOKS = REPO / "notebooks"
NAMES = ["quickstart", "mse_uk", "bribery_nigeria", "scenario_comparison"]
PUBLIC = {"iff", "iff.publish", "iff.plots", "iff.models.mse", "iff.models.list_table"}
THIRD_PARTY = {"numpy", "pandas", "tempfile", "pathlib"}


def _read(name: str):
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_short_and_uses_public_api_and_shipped_data(name):
    book = _read(name)
    nbformat.validate(book)
    code = [c for c in book.cells if c.cell_type == "code"]
    assert 2 <= len(code) <= 8
    assert all(not c.outputs and c.execution_count is None for c in code)  # committed clean
    source = "\n".join(line for c in code for line in c.source.splitlines()
                       if not line.startswith("%"))  # IPython magics are not Python
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            assert node.module in PUBLIC | THIRD_PARTY, node.module
        elif isinstance(node, ast.Import):
            assert {a.name for a in node.names} <= PUBLIC | THIRD_PARTY
    for path in re.findall(r'"(\.\./[^"]+)"', source):
        assert (NOTEBOOKS / path).resolve().is_file(), path
    if "iff.run(" in source:  # results go to a temporary folder, never into the checkout
        assert "tempfile.mkdtemp()" in source and "out=" in source


def _execute(name: str) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    book = _read(name)
    NotebookClient(book, timeout=1200, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return book


def _text(book) -> str:
    out = []
    for cell in book.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


@pytest.mark.slow
def test_quickstart_runs_clean():
    book = _execute("quickstart")
    text = _text(book)
    assert "convergence:" in text and "ILLUSTRATIVE INPUTS" in text
    assert any("image/png" in o.get("data", {}) for c in book.cells
               for o in c.get("outputs", []))  # the figures are drawn
    assert not any(o.get("output_type") == "error" for c in book.cells
                   for o in c.get("outputs", []))


@pytest.mark.slow
def test_mse_uk_runs_clean():
    text = _text(_execute("mse_uk"))
    total = re.search(r"total population median ([\d,]+)", text)
    assert total and 8_000 < int(total.group(1).replace(",", "")) < 18_000


@pytest.mark.slow
def test_bribery_nigeria_runs_clean():
    text = _text(_execute("bribery_nigeria"))
    value = re.search(r"cash bribes: NGN ([\d,]+) bn", text)
    assert value and 300 < int(value.group(1).replace(",", "")) < 500
    assert "ILLUSTRATIVE INPUTS" in text


@pytest.mark.slow
def test_scenario_comparison_runs_clean():
    text = _text(_execute("scenario_comparison"))
    assert "base convergence:" in text and "high_interdiction convergence:" in text
