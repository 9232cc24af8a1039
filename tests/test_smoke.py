"""The whole path on a tiny config: load, validate, build, sample (smoke settings), summarise."""

from iff import load_config, run


def test_smoke_run_in_memory(make_config):
    outcome = run(load_config(make_config()), write=False)
    flows = outcome.tree["posterior"]["flows"]
    assert flows.dims == ("chain", "draw", "market", "country", "year", "direction", "phase")
    assert (flows.values >= 0).all()
    assert set(outcome.summary["direction"]) == {"all", "inward", "outward"}
