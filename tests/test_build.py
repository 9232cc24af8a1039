"""Model-building helpers (iff/build.py) that other tests do not reach directly."""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
import pytest
from pytensor.graph.traversal import ancestors

from iff.build import take_rows

SHAPE = (2, 3, 5)  # e.g. drug x country x year


@pytest.mark.parametrize("rows, advanced", [
    (([0, 0, 0, 0], [1, 1, 1, 1], [1, 2, 3, 4]), False),  # one country's consecutive years
    (([1, 1, 1], [0, 1, 2], [3, 3, 3]), False),  # consecutive countries, one year
    (([1], [2], [4]), False),  # one row
    (([0, 0, 0], [1, 1, 1], [0, 2, 4]), True),  # years with gaps
    (([0, 1, 0, 1], [2, 2, 0, 0], [1, 1, 3, 3]), True),  # rows differing along two dims
    (([0, 0, 0], [1, 1, 1], [4, 3, 2]), True),  # consecutive, but descending
])
def test_take_rows_gives_what_indexing_by_the_arrays_gives(rows, advanced):
    values = np.arange(np.prod(SHAPE) * 2, dtype=float).reshape(*SHAPE, 2)  # a trailing dim
    x = pt.tensor("x", shape=(None, None, None, None))
    idx = tuple(np.array(r) for r in rows)
    taken = take_rows(x, idx)
    np.testing.assert_array_equal(taken.eval({x: values}), values[idx])
    ops = [v.owner.op for v in ancestors([taken]) if v.owner is not None]
    assert any(type(op).__name__.startswith("Advanced") for op in ops) == advanced


def test_flow_array_puts_each_part_at_its_direction_and_phase():
    from iff.flows import DIRECTIONS, PHASES, flow_array

    rng = np.random.default_rng(3)
    parts = {(d, p): rng.random(SHAPE) for d in DIRECTIONS for p in PHASES}
    flows = flow_array(parts["inward", "generation"], parts["inward", "management"],
                       parts["outward", "generation"], parts["outward", "management"]).eval()
    assert flows.shape == (*SHAPE, len(DIRECTIONS), len(PHASES))
    for (d, p), value in parts.items():
        np.testing.assert_array_equal(flows[..., DIRECTIONS.index(d), PHASES.index(p)], value)
