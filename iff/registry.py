"""Registry of market plugins: the built-ins plus entry points in group ``iff.markets``.

Markets are found by name only; a config never names a class or an import path.
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points

from iff.errors import IffError
from iff.market import Market

#: Built-in markets: name -> "module:Class" inside the iff package.
BUILTIN = {
    "drugs": "iff.markets.drugs:DrugsMarket",
    "trafficking_in_persons": "iff.markets.trafficking:TraffickingMarket",
    "smuggling_of_migrants": "iff.markets.smuggling:SmugglingMarket",
    "corruption": "iff.markets.corruption:CorruptionMarket",
    "theft": "iff.markets.theft:TheftMarket",
}
ENTRY_POINT_GROUP = "iff.markets"


def _load(target: str) -> type[Market]:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


@functools.cache
def markets() -> dict[str, type[Market]]:
    """All available markets by name, built-ins first, then entry points (sorted by name)."""
    found: dict[str, type[Market]] = {name: _load(t) for name, t in BUILTIN.items()}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in found:
            continue  # a plugin cannot shadow a built-in market
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, Market)):
            raise IffError(f"entry point {ep.name!r} in group {ENTRY_POINT_GROUP} is not a Market")
        if cls.name != ep.name:
            raise IffError(f"entry point {ep.name!r} loads market named {cls.name!r}")
        found[ep.name] = cls
    return found


def get(name: str) -> type[Market]:
    """The market class registered under ``name``."""
    return markets()[name]
