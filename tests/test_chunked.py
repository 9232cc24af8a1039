"""Chunks of forward draws in worker processes: the same numbers as one process, failures loud."""

from __future__ import annotations

import mmap
import os
import signal

import numpy as np
import pytest

from iff.chunked import can_fork, compute_chunks

needs_fork = pytest.mark.skipif(not can_fork(), reason="worker processes need fork (Linux)")


def _in_shared_memory(a: np.ndarray) -> bool:
    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    return isinstance(a, memoryview) and isinstance(a.obj, mmap.mmap)


def _chunk(i: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([3, i])
    return {"x": rng.normal(size=(50, 2, 3)), "k": np.full((50,), i, dtype="int64")}


@needs_fork
@pytest.mark.parametrize("layout", [None, {"x": ((2, 3), np.dtype("float64")),
                                           "k": ((), np.dtype("int64"))}])
def test_chunks_from_worker_processes_equal_those_of_one_process(layout):
    one = compute_chunks(_chunk, 7, 50, layout, workers=1)
    many = compute_chunks(_chunk, 7, 50, layout, workers=3)
    assert _in_shared_memory(many["x"]) and not _in_shared_memory(one["x"])
    for name in one:
        np.testing.assert_array_equal(one[name], many[name])
    np.testing.assert_array_equal(many["k"], np.repeat(np.arange(7), 50))  # each chunk in place


def _chunk_draws_last(i: int) -> dict[str, np.ndarray]:
    """:func:`_chunk`'s values, held as a draws-last function returns them: views of
    ``(*shape, size)`` memory with the draw dim moved first."""
    return {name: np.moveaxis(np.ascontiguousarray(np.moveaxis(value, 0, -1)), -1, 0)
            for name, value in _chunk(i).items()}


@pytest.mark.parametrize("workers", [1, pytest.param(3, marks=needs_fork)])
def test_chunks_held_draws_last_have_the_same_values(workers):
    first = compute_chunks(_chunk, 7, 50, None, workers=1)
    last = compute_chunks(_chunk_draws_last, 7, 50, None, workers=workers, draws_last=True)
    for name in first:
        assert last[name].shape == first[name].shape == (350, *first[name].shape[1:])
        assert np.moveaxis(last[name], 0, -1).flags.c_contiguous  # draws last in memory
        np.testing.assert_array_equal(last[name], first[name])
    assert _in_shared_memory(last["x"]) == (workers > 1)


@needs_fork
def test_a_failing_worker_raises_and_returns_nothing(capfd):
    def broken(i: int) -> dict[str, np.ndarray]:
        if i == 4:
            raise ValueError("chunk 4 cannot be drawn")
        return _chunk(i)

    with pytest.raises(RuntimeError, match=r"1 of 2 worker processes .* failed \(exit codes \[1\]"):
        compute_chunks(broken, 6, 50, None, workers=2)
    assert "chunk 4 cannot be drawn" in capfd.readouterr().err  # the worker's traceback


@needs_fork
def test_a_killed_worker_raises():
    def killed(i: int) -> dict[str, np.ndarray]:
        if i == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return _chunk(i)

    with pytest.raises(RuntimeError, match=rf"exit codes \[-{int(signal.SIGKILL)}\]"):
        compute_chunks(killed, 6, 50, None, workers=2)


def test_workers_below_one_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        compute_chunks(_chunk, 2, 50, None, workers=0)


@needs_fork
def test_forward_draws_in_worker_processes_are_those_of_one_process(monkeypatch):
    """Same model, seed and draws: the worker count changes no number, a constant output (no
    draw dim) included, and each chunk draws fresh numbers."""
    import pymc as pm
    import pytensor.tensor as pt

    import iff.forward as forward

    with pm.Model() as model:
        scale = pm.HalfNormal("scale", 2.0)
        x = pm.Normal("x", mu=np.array([1.0, -3.0]), sigma=np.array([0.5, 2.0]))
        pm.Deterministic("scaled", x * scale)
        pm.Deterministic("fixed", pt.as_tensor(np.array([1.0, 2.0])))
    monkeypatch.setattr(forward, "CHUNK_DRAWS", 700)  # 3,000 draws: 5 calls of 600
    for names in (["x", "scale", "scaled"], ["x", "fixed"]):  # static layout; chunk 0 first
        one = forward.forward_draws(model, names, 3_000, seed=4, workers=1)
        two = forward.forward_draws(model, names, 3_000, seed=4, workers=2)
        assert _in_shared_memory(two["x"])
        for name in names:
            assert two[name].shape == one[name].shape
            np.testing.assert_array_equal(two[name], one[name])
    assert len(np.unique(two["x"][:, 0])) == 3_000
    np.testing.assert_array_equal(two["fixed"], np.tile([1.0, 2.0], (3_000, 1)))


def _gone(pid: int) -> bool:
    """No such process, or a zombie waiting to be reaped (it draws nothing more)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@needs_fork
def test_workers_die_with_a_killed_run(tmp_path):
    """A run killed while its workers draw leaves no worker drawing on."""
    import subprocess
    import sys
    import time

    script = (
        "import os, time\n"
        "import numpy as np\n"
        "from iff.chunked import compute_chunks\n"
        "def slow(i):\n"
        f"    open(os.path.join({str(tmp_path)!r}, f'worker-{{os.getpid()}}'), 'w').close()\n"
        "    time.sleep(120)\n"
        "    return {'x': np.zeros(5)}\n"
        "compute_chunks(slow, 4, 5, {'x': ((), np.dtype('float64'))}, workers=2)\n")
    run = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("worker-*"))) < 2:
        assert run.poll() is None and time.monotonic() < deadline, "workers did not start"
        time.sleep(0.1)
    pids = [int(p.name.split("-")[1]) for p in tmp_path.glob("worker-*")]
    run.kill()
    run.wait()
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in pids if not _gone(pid)]
    for pid in left:  # not to leave them sleeping if this fails
        os.kill(pid, signal.SIGKILL)
    assert not left


@needs_fork
def test_a_forward_run_in_worker_processes_publishes_the_same_summary(tmp_path, monkeypatch):
    """A whole run (results written and read back): ``sampler.cores`` 2 and 1 give byte-identical
    summaries when the draws come in several chunks, and with 2 worker processes draw them."""
    import yaml

    import iff.forward as forward
    from iff import load_config, load_results, run

    monkeypatch.setattr(forward, "CHUNK_DRAWS", 700)  # 4 x 500 draws: 3 chunks of 667
    compute_chunks = forward.compute_chunks

    def spy(compute, chunks, size, layout, workers, **options):
        def tagged(i):  # a file names the process that drew chunk i (workers can write it)
            (tmp_path / f"chunk{i}-pid{os.getpid()}").touch()
            return compute(i)
        return compute_chunks(tagged, chunks, size, layout, workers, **options)

    monkeypatch.setattr(forward, "compute_chunks", spy)
    summaries = {}
    for cores in (1, 2):
        cfg = tmp_path / f"cores{cores}.yaml"
        cfg.write_text(yaml.safe_dump({
            "name": f"cores{cores}", "countries": ["COL"], "years": [2017, 2018],
            "markets": {"drugs": {"drugs": {"cocaine": {"role": "producer"}}}},
            "sampler": {"draws": 500, "chains": 4, "seed": 7, "cores": cores,
                        "progressbar": False}}))
        run(load_config(cfg), out=tmp_path / f"out{cores}")
        summaries[cores] = (tmp_path / f"out{cores}" / "summary.csv").read_bytes()
        tags = list(tmp_path.glob("chunk*-pid*"))
        pid_of = {t.name.split("-")[0]: int(t.name.split("pid")[1]) for t in tags}
        assert sorted(pid_of) == ["chunk0", "chunk1", "chunk2"] and len(tags) == 3
        # chunk 0 is drawn here (its shapes are not static: it gives the layout); with two
        # cores, chunks 1 and 2 are drawn by two worker processes
        workers = {pid_of["chunk1"], pid_of["chunk2"]}
        assert pid_of["chunk0"] == os.getpid()
        if cores == 1:
            assert workers == {os.getpid()}
        else:
            assert len(workers) == 2 and os.getpid() not in workers
        for t in tags:
            t.unlink()
    assert summaries[1] == summaries[2]
    flows = load_results(tmp_path / "out2")["posterior"]["flows"]
    assert flows.sizes["chain"] == 4 and flows.sizes["draw"] == 500
    assert np.unique(flows.values[..., 0, 0, 0, 0, 0].ravel()).size == 2_000  # no chunk repeated
