"""The whole path on a tiny config: load, validate, build, sample (smoke settings), summarise."""

import numpy as np
import pandas as pd

from iff import load_config, run


def test_smoke_run_in_memory(make_config):
    outcome = run(load_config(make_config()), write=False)
    flows = outcome.tree["posterior"]["flows"]
    assert flows.dims == ("chain", "draw", "market", "country", "year", "direction", "phase")
    assert (flows.values >= 0).all()
    assert set(outcome.summary["direction"]) == {"all", "inward", "outward"}


def test_same_config_and_seed_same_numbers(make_config):
    """NUTS with the same seed repeats itself exactly (warm compile cache, one process)."""
    loaded = load_config(make_config())
    first = run(loaded, write=False)
    second = run(loaded, write=False)
    np.testing.assert_array_equal(first.tree["posterior"]["flows"].values,
                                  second.tree["posterior"]["flows"].values)
    pd.testing.assert_frame_equal(first.summary, second.summary)


def test_different_seed_different_draws(make_config):
    a = run(load_config(make_config()), write=False)
    b = run(load_config(make_config({"sampler": {"seed": 2}})), write=False)
    assert not np.array_equal(a.tree["posterior"]["flows"].values,
                              b.tree["posterior"]["flows"].values)
