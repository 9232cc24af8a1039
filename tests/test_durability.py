"""Durability: a killed run or sweep never leaves a file that later loads as valid results.

* ``iff run`` is started in a subprocess and SIGKILLed at several moments after its hidden
  temporary results folder appears (the write phase); at least one kill must land while the
  temporary folder exists and the final folder does not. After each kill the final folder is
  absent or complete (it loads, hash-checked, with the flows of an uninterrupted run); leftover
  temporary paths are refused by the loader; a following ``iff run`` to the same folder is not
  blocked by them and names them.
* Truncating or altering any file of a finished results folder (netCDF or zarr) makes the
  loader refuse the folder.
* A killed sweep never leaves a truncated ``sweep_summary.csv``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from iff.errors import ResultsError
from iff.results import MANIFEST_NAME, load_tree, write_results

IFF = Path(sys.executable).parent / "iff"

#: Forward Monte Carlo with enough draws that writing the results takes a noticeable time.
FORWARD: dict[str, Any] = {
    "name": "dur",
    "countries": ["COL", "PER"],
    "years": [2015, 2016, 2017, 2018],
    "markets": {"drugs": {"drugs": {"cocaine": {"role": "producer"}},
                          "priors": {"throughput": {"between": [80_000, 120_000]}}}},
    "sampler": {"draws": 4000, "chains": 2, "seed": 9, "progressbar": False},
}

#: Seconds after the temporary folder appears at which each run is killed.
KILL_DELAYS = (0.0, 0.02, 0.08, 0.2, 0.5, 1.5)


def _config(folder: Path, cfg: dict[str, Any] | None = None) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg or FORWARD, sort_keys=False), encoding="utf-8")
    return path


def _temps(parent: Path, name: str) -> list[Path]:
    return sorted(parent.glob(f".{name}.tmp-*")) if parent.is_dir() else []


def _run_and_kill(config: Path, out: Path, delay: float) -> dict[str, Any]:
    """Start ``iff run``, wait for its temporary folder, sleep ``delay`` s, SIGKILL it.

    Returns what was seen at the kill: whether the process was still running, whether a
    temporary folder and the final folder existed.
    """
    proc = subprocess.Popen([str(IFF), "run", str(config), "--out", str(out), "--no-progress"],
                            cwd=config.parent, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    seen: dict[str, Any] = {"delay": delay}
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if _temps(out.parent, out.name) or out.exists():
                break
            time.sleep(0.001)
        if delay:
            time.sleep(delay)
        seen["running"] = proc.poll() is None
        seen["temp"] = bool(_temps(out.parent, out.name))
        seen["final"] = out.exists()
    finally:
        with _suppress():
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return seen


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is ProcessLookupError


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of the config (the flows every complete folder must hold)."""
    tmp = tmp_path_factory.mktemp("reference")
    out = tmp / "results"
    proc = subprocess.run([str(IFF), "run", str(_config(tmp)), "--out", str(out),
                           "--no-progress"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.slow
def test_killed_run_never_leaves_loadable_partial_results(reference, tmp_path):
    ref = load_tree(reference)
    config = _config(tmp_path)
    seen_all = []
    rerun_done = False
    for i, delay in enumerate(KILL_DELAYS):
        out = tmp_path / f"k{i}" / "results"
        out.parent.mkdir()
        seen = _run_and_kill(config, out, delay)
        seen_all.append(seen)
        # The final folder is absent or complete: hash-checked, with the reference's draws.
        if out.exists():
            tree = load_tree(out, check=True)
            np.testing.assert_array_equal(tree["posterior"]["flows"].values,
                                          ref["posterior"]["flows"].values)
            assert (out / "summary.csv").read_bytes() == (reference / "summary.csv").read_bytes()
        # Leftover temporary paths (folders, and files inside them) are never results.
        leftovers = _temps(out.parent, out.name)
        for tmp in leftovers:
            for target in [tmp, *tmp.glob("*")]:
                with pytest.raises(ResultsError, match="interrupted write"):
                    load_tree(target)
        # A following run to the same folder is not blocked by the leftovers and names them.
        if leftovers and not out.exists() and not rerun_done:
            proc = subprocess.run([str(IFF), "run", str(config), "--out", str(out),
                                   "--no-progress"], capture_output=True, text=True,
                                  cwd=tmp_path, timeout=600)
            assert proc.returncode == 0, proc.stderr
            assert "interrupted write" in proc.stderr and leftovers[0].name in proc.stderr
            np.testing.assert_array_equal(load_tree(out)["posterior"]["flows"].values,
                                          ref["posterior"]["flows"].values)
            rerun_done = True
    during = [s for s in seen_all if s["running"] and s["temp"] and not s["final"]]
    assert during, f"no kill landed while the results were being written: {seen_all}"
    assert rerun_done, f"no kill left a temporary folder without results: {seen_all}"


# -- damaged files in a finished results folder -------------------------------------------------

FILES = ("posterior.nc", "summary.csv", "config.yaml", "convergence.json", MANIFEST_NAME)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, demo_forward):
    """Finished results folders of one run, as netCDF and as zarr."""
    tmp = tmp_path_factory.mktemp("finished")
    tree, summary = demo_forward.tree, demo_forward.summary
    return {"nc": write_results(tmp / "nc", tree, summary, force=False),
            "zarr": write_results(tmp / "zarr", tree, summary, force=False, zarr=True)}


def test_finished_folder_lists_every_file_in_its_manifest(finished):
    import json

    for folder in finished.values():
        load_tree(folder, check=True)
        files = json.loads((folder / MANIFEST_NAME).read_text())["files"]
        on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*")
                   if p.is_file() and p.name != MANIFEST_NAME}
        assert set(files) == on_disk


@pytest.mark.parametrize("name", FILES)
def test_truncated_file_makes_the_folder_invalid(finished, tmp_path, name):
    folder = shutil.copytree(finished["nc"], tmp_path / "results")
    f = folder / name
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(ResultsError, match=name if name != "posterior.nc" else "."):
        load_tree(folder)
    f.write_bytes(b"")
    with pytest.raises(ResultsError):
        load_tree(folder)


@pytest.mark.parametrize("name", FILES)
def test_altered_or_missing_file_makes_the_folder_invalid(finished, tmp_path, name):
    folder = shutil.copytree(finished["nc"], tmp_path / "results")
    f = folder / name
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size, one bit flipped
    f.write_bytes(bytes(data))
    with pytest.raises(ResultsError):
        load_tree(folder)
    f.unlink()
    with pytest.raises(ResultsError, match=name if name != "posterior.nc" else "."):
        load_tree(folder)


def test_truncated_posterior_file_is_refused_when_loaded_directly(finished, tmp_path):
    folder = shutil.copytree(finished["nc"], tmp_path / "results")
    f = folder / "summary.csv"
    f.write_bytes(f.read_bytes()[:10])
    load_tree(folder / "posterior.nc")  # the posterior itself is intact
    post = folder / "posterior.nc"
    post.write_bytes(post.read_bytes()[:-100])
    with pytest.raises(ResultsError, match=r"truncated|cannot be read"):
        load_tree(post)


def test_every_file_of_a_zarr_folder_is_checked(finished, tmp_path):
    folder = shutil.copytree(finished["zarr"], tmp_path / "results")
    files = [p for p in folder.rglob("*") if p.is_file() and p.stat().st_size > 1]
    assert len(files) > len(FILES)
    for f in files:
        data = f.read_bytes()
        f.write_bytes(data[: len(data) // 2])
        with pytest.raises(ResultsError):
            load_tree(folder)
        f.write_bytes(data)
        load_tree(folder)
    meta = folder / "posterior.zarr" / "zarr.json"
    meta.write_text(meta.read_text()[:-5])
    with pytest.raises(ResultsError, match=r"truncated|cannot be read"):  # the store alone
        load_tree(folder / "posterior.zarr")


def test_folder_without_manifest_is_refused(finished, tmp_path):
    folder = shutil.copytree(finished["nc"], tmp_path / "results")
    (folder / MANIFEST_NAME).unlink()
    with pytest.raises(ResultsError, match=r"no manifest\.json"):
        load_tree(folder)
    assert load_tree(folder, check=False) is not None  # inspection of a damaged folder


def test_files_added_later_do_not_invalidate_the_folder(finished, tmp_path):
    folder = shutil.copytree(finished["nc"], tmp_path / "results")
    (folder / "summary_hdi50.csv").write_text("added by iff summarize\n")
    (folder / "published").mkdir()
    (folder / "published" / "sdg.csv").write_text("x\n")
    load_tree(folder)


def test_temporary_paths_are_refused_by_name(finished, tmp_path):
    for name in (".results.tmp-0123abcd", ".results.old-0123abcd"):
        copy = shutil.copytree(finished["nc"], tmp_path / name)  # complete, yet not results
        for target in (copy, copy / "posterior.nc"):
            with pytest.raises(ResultsError, match="interrupted write"):
                load_tree(target)
    single = tmp_path / ".posterior.nc.tmp-0123abcd"
    shutil.copy(finished["nc"] / "posterior.nc", single)
    with pytest.raises(ResultsError, match="interrupted write"):
        load_tree(single)


# -- sweeps -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_killed_sweep_never_leaves_a_truncated_sweep_summary(tmp_path):
    """A finished sweep rerun (every task skipped, so it only collects) is killed at several
    moments of writing sweep_summary.csv: the file is absent or equal to the complete one, and
    every task folder loads."""
    cfg = {**FORWARD, "sampler": {"draws": 200, "chains": 2, "seed": 9, "progressbar": False},
           "scenarios": {"high": {"markets": {"drugs": {"priors": {"throughput": {
               "between": [160_000, 240_000]}}}}}}}
    config = _config(tmp_path, cfg)
    args = [str(IFF), "sweep", str(config), "--workers", "1", "--out", "out", "--no-progress"]
    first = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert first.returncode == 0, first.stderr
    out = tmp_path / "out"
    complete = (out / "sweep_summary.csv").read_bytes()
    for delay in (0.0, 0.005, 0.05):
        (out / "sweep_summary.csv").unlink(missing_ok=True)
        proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and proc.poll() is None:
                if (out / "sweep_summary.csv").exists() or list(
                        out.glob(".sweep_summary.csv.tmp-*")):
                    break
                time.sleep(0.0005)
            time.sleep(delay)
        finally:
            with _suppress():
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        summary = out / "sweep_summary.csv"
        assert not summary.exists() or summary.read_bytes() == complete, delay
        for task in ("base", "high"):
            load_tree(out / task, check=True)
    again = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr
    assert (out / "sweep_summary.csv").read_bytes() == complete
    assert not list(out.glob(".*.tmp-*"))
