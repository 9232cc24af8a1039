"""Market plugins found through entry points join config validation, the schema and the model."""

from __future__ import annotations

import importlib.metadata as md
from typing import ClassVar

import numpy as np
import pytensor.tensor as pt
import pytest
import yaml

from iff import config as config_mod
from iff import load_config, registry, run
from iff.market import Market, MarketInfo, MarketSettings, ParameterSpec, Typology
from iff.priors import Support


class WildlifeMarket(Market):
    """A toy third-party market: a positive amount, half inward, half outward."""

    name = "wildlife"
    title = "Wildlife trafficking (test plugin)"
    typology = Typology.ILLEGAL_MARKET
    iccs = ("100312",)
    parameters: ClassVar = (ParameterSpec("value", Support.POSITIVE, "USD/year", ("country",),
                                          {"between": [1e6, 1e7]}, "Traded value."),)
    quantities = ()
    Settings = MarketSettings

    def build(self, ctx):
        value = ctx.parameter(self, self.parameter("value"))
        zeros = pt.zeros_like(value)
        # (country, direction, phase) then broadcast over years
        flows = pt.stack([pt.stack([value / 2, zeros], -1), pt.stack([value / 2, zeros], -1)],
                         -2)
        flows = pt.broadcast_to(flows[:, None], (*ctx.shape(("country", "year")), 2, 2))
        return MarketInfo(flows=flows)


@pytest.fixture
def with_plugin(monkeypatch):
    ep = md.EntryPoint(name="wildlife", value="tests.test_registry:WildlifeMarket",
                       group="iff.markets")
    monkeypatch.setattr(registry, "entry_points", lambda group: [ep])
    for cached in (registry.markets, config_mod.markets_model, config_mod.run_config_model):
        cached.cache_clear()
    yield
    for cached in (registry.markets, config_mod.markets_model, config_mod.run_config_model):
        cached.cache_clear()


def test_plugin_is_registered_and_in_schema(with_plugin):
    assert "wildlife" in registry.markets()
    schema = config_mod.json_schema()
    assert "wildlife" in schema["$defs"]["MarketsConfig"]["properties"]


def test_plugin_runs_alongside_builtin(with_plugin, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "name": "p", "countries": ["KEN"], "years": [2020],
        "markets": {"wildlife": {"priors": {"value": {"between": [2e6, 4e6]}}},
                    "drugs": {"drugs": {"heroin": {"role": "consumer"}}}},
        "sampler": {"draws": 500, "chains": 2, "seed": 3, "progressbar": False}}))
    outcome = run(load_config(cfg), write=False)
    flows = outcome.tree["posterior"]["flows"]
    assert list(flows["market"].values) == ["drugs", "wildlife"]  # registry order
    wild = flows.sel(market="wildlife", country="KEN", year=2020, phase="generation")
    np.testing.assert_allclose(wild.sel(direction="inward"), wild.sel(direction="outward"))
    assert 1e6 < float(wild.sel(direction="inward").median()) < 2e6


def test_plugin_cannot_shadow_builtin(monkeypatch):
    ep = md.EntryPoint(name="drugs", value="tests.test_registry:WildlifeMarket",
                       group="iff.markets")
    monkeypatch.setattr(registry, "entry_points", lambda group: [ep])
    registry.markets.cache_clear()
    try:
        assert registry.markets()["drugs"].__name__ == "DrugsMarket"
    finally:
        registry.markets.cache_clear()
