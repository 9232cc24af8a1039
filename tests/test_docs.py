"""Generated reference documentation stays equal to what the code generates."""

from __future__ import annotations

import json

import pytest

from iff.config import json_schema
from iff.docs import DOCS_DIR, config_reference, generated, main, market_metadata


@pytest.mark.parametrize("name", ["config-reference.md", "markets.md"])
def test_committed_docs_equal_the_generator(name):
    committed = (DOCS_DIR / name).read_text(encoding="utf-8")
    assert committed == generated()[name], (
        f"docs/{name} is out of date: regenerate it with `python -m iff.docs`")


def test_check_mode_reports_stale_docs(tmp_path, capsys):
    assert main([str(tmp_path)]) == 0
    assert main(["--check", str(tmp_path)]) == 0
    (tmp_path / "markets.md").write_text("stale")
    assert main(["--check", str(tmp_path)]) == 1
    assert "markets.md" in capsys.readouterr().err


def test_config_reference_lists_every_field_of_the_schema():
    text = config_reference()
    schema = json_schema()
    for name in schema["properties"]:
        assert f"## `{name}`" in text
    for field in ("sampler.seed", "summary.prob", "observations.interval_prob",
                  "markets.drugs.priors.interdiction_rate", "markets.drugs.drugs.<name>.roles"):
        assert f"| `{field}` |" in text
    assert "| `sampler.seed` | integer (>= 0, <= 4294967295) | required |" in text


def test_markets_markdown_matches_the_json_listing(run_iff):
    code, md, _ = run_iff("markets", "--markdown")
    assert code == 0 and md == generated()["markets.md"]
    code, js, _ = run_iff("markets", "--json")
    listed = json.loads(js)
    documented = market_metadata()
    assert set(documented) == set(listed)  # the reference documents what `iff markets` lists
    for name, d in documented.items():
        for key in ("title", "typology", "iccs", "settings"):
            assert d[key] == listed[name][key]
        for kind in ("parameters", "quantities"):
            for ours, theirs in zip(d[kind], listed[name][kind], strict=True):
                assert ours.items() <= theirs.items()
    for name, d in listed.items():
        assert f"## `{name}`: {d['title']}" in md
        for p in d["parameters"]:
            assert f"| `{p['name']}` | {p['support']} |" in md
        for q in d["quantities"]:
            assert f"| `{q['code']}` |" in md
