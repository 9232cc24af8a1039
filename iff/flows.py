"""Flow conventions shared by the engine, markets and the summary layer.

A flow is a value in current USD with dims ``(market, country, year, direction, phase)``:
``direction`` is from the country's point of view (residency criterion) and ``phase`` separates
illicit income generation from income management. The indicator is inward + outward, never
netted; purely domestic flows are never flows.
"""

from __future__ import annotations

DIRECTIONS = ("inward", "outward")
PHASES = ("generation", "management")
FLOW_DIMS = ("market", "country", "year", "direction", "phase")
FLOW_UNITS = "USD (current prices of each year)"
