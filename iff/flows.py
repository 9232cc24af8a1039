"""Flow conventions shared by the engine, markets and the summary layer.

A flow is a value in current USD with dims ``(market, country, year, direction, phase)``:
``direction`` is from the country's point of view (residency criterion) and ``phase`` separates
illicit income generation from income management. The indicator is inward + outward, never
netted; purely domestic flows are never flows.
"""

from __future__ import annotations

import pytensor.tensor as pt

DIRECTIONS = ("inward", "outward")
PHASES = ("generation", "management")
FLOW_DIMS = ("market", "country", "year", "direction", "phase")
FLOW_UNITS = "USD (current prices of each year)"


def flow_array(inward_generation: pt.TensorVariable, inward_management: pt.TensorVariable,
               outward_generation: pt.TensorVariable, outward_management: pt.TensorVariable
               ) -> pt.TensorVariable:
    """A market's flows ``(..., direction, phase)`` from its four parts, each ``(...)`` in
    current USD (same shape), in the order of :data:`DIRECTIONS` and :data:`PHASES`.

    The parts are stacked along new leading axes, which copies whole blocks, and the two axes
    are then moved last (a view); stacking phases and then directions along the last axes
    copies one element at a time. Multi-country demo, forward function of ``flows`` at 40,000
    draws, one process: 0.543-0.550 s of CPU a call against 0.565 s (fastest of 9 calls, two
    of three paired runs; the third was noisy). The values are the same to the last bit.
    """
    by_direction = pt.stack([pt.stack([inward_generation, inward_management]),
                             pt.stack([outward_generation, outward_management])])
    return pt.moveaxis(by_direction, (0, 1), (-2, -1))
