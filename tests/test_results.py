"""Results: DataTree layout, provenance, exact save/load round trips, integrity, atomic folders."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import xarray as xr

from iff.errors import ResultsError
from iff.results import load_tree, save_tree, write_results

GROUPS = {"posterior", "prior", "observed_data", "constant_data", "sample_stats"}


def test_tree_has_groups_dims_units(smoke_results):
    tree = smoke_results.tree
    assert set(tree.children) >= GROUPS
    flows = tree["posterior"]["flows"]
    assert flows.dims == ("chain", "draw", "market", "country", "year", "direction", "phase")
    assert list(flows["direction"].values) == ["inward", "outward"]
    assert list(flows["phase"].values) == ["generation", "management"]
    assert "USD" in flows.attrs["units"]
    assert tree["posterior"]["drugs_exports"].attrs["units"] == "kg pure/year"
    assert "drugs_production_obs" in tree["observed_data"]


def test_provenance_attrs(smoke_results):
    attrs = smoke_results.tree.attrs
    for key in ("iff_version", "config_json", "config_sha256", "input_sha256", "seed",
                "library_versions", "created_at", "convergence_verdict", "flows_sha256"):
        assert key in attrs, key
    assert isinstance(attrs["seed"], int | np.integer) and attrs["seed"] == 1
    config = json.loads(attrs["config_json"])
    assert config["countries"] == ["COL"]
    inputs = json.loads(attrs["input_sha256"])
    assert set(inputs) == {"config", "observations"}
    assert all(len(v["sha256"]) == 64 for v in inputs.values())
    assert "pymc" in json.loads(attrs["library_versions"])


def test_results_folder_contents(smoke_results):
    folder = smoke_results.out_dir
    names = {p.name for p in folder.iterdir()}
    assert names == {"posterior.nc", "summary.csv", "config.yaml", "convergence.json",
                     "manifest.json"}
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_round_trip_is_exact(smoke_results, tmp_path, suffix):
    path = tmp_path / f"posterior{suffix}"
    save_tree(smoke_results.tree, path)
    loaded = load_tree(path)
    xr.testing.assert_identical(loaded, smoke_results.tree)
    assert loaded.attrs == smoke_results.tree.attrs


def test_load_detects_tampered_flows(smoke_results, tmp_path):
    tree = smoke_results.tree.copy(deep=True)
    post = tree["posterior"].to_dataset()
    post["flows"] = post["flows"] * 1.01
    tree["posterior"] = xr.DataTree(post)
    path = tmp_path / "tampered.nc"
    save_tree(tree, path)
    with pytest.raises(ResultsError, match="digest"):
        load_tree(path)
    assert load_tree(path, check=False) is not None


def test_load_detects_tampered_config(smoke_results, tmp_path):
    tree = smoke_results.tree.copy(deep=True)
    tree.attrs = {**tree.attrs, "config_json": tree.attrs["config_json"].replace("COL", "PER")}
    path = tmp_path / "tampered.nc"
    save_tree(tree, path)
    with pytest.raises(ResultsError, match="config hash"):
        load_tree(path)


def test_truncated_file_is_not_valid_results(smoke_results, tmp_path):
    """A standalone posterior file (every file of a results folder: tests/test_durability.py)."""
    path = tmp_path / "posterior.nc"
    save_tree(smoke_results.tree, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ResultsError):
        load_tree(path)


def test_existing_folder_refused_then_replaced_with_force(smoke_results, tmp_path):
    dest = tmp_path / "out"
    shutil.copytree(smoke_results.out_dir, dest)
    marker = dest / "marker.txt"
    marker.write_text("old")
    with pytest.raises(ResultsError, match="exists"):
        write_results(dest, smoke_results.tree, smoke_results.summary, force=False)
    assert marker.exists()
    write_results(dest, smoke_results.tree, smoke_results.summary, force=True)
    assert not marker.exists() and (dest / "posterior.nc").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_failed_write_leaves_nothing(smoke_results, tmp_path, monkeypatch):
    import iff.results as results

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(results, "write_summary_csv", boom)
    with pytest.raises(OSError):
        write_results(tmp_path / "out", smoke_results.tree, smoke_results.summary, force=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_a_forward_run_stores_its_prior_once(demo_forward, smoke_results, tmp_path, suffix):
    """A forward run's prior group is its posterior: written once, read back under both names.
    A prior that differs (a NUTS run's, or a forward tree whose prior was replaced) is kept."""
    engine = "zarr" if suffix == ".zarr" else "netcdf4"

    def stored_groups(path):
        with xr.open_datatree(path, engine=engine) as raw:
            return set(raw.children)

    tree = demo_forward.tree
    path = tmp_path / f"forward{suffix}"
    save_tree(tree, path)
    assert "prior" in tree.children  # the caller's tree is left whole
    assert stored_groups(path) == {"posterior", "sample_stats"}
    loaded = load_tree(path)
    xr.testing.assert_identical(loaded, tree)
    save_tree(loaded, tmp_path / f"again{suffix}")  # a loaded forward run saves the same way
    assert stored_groups(tmp_path / f"again{suffix}") == {"posterior", "sample_stats"}
    with xr.open_datatree(demo_forward.out_dir / "posterior.nc") as raw:
        assert "prior" not in raw.children  # what a run writes

    changed = tree.copy()
    changed["prior"] = xr.DataTree(tree["prior"].to_dataset() * 2)
    save_tree(changed, tmp_path / f"changed{suffix}")
    assert "prior" in stored_groups(tmp_path / f"changed{suffix}")
    save_tree(smoke_results.tree, tmp_path / f"nuts{suffix}")
    assert "prior" in stored_groups(tmp_path / f"nuts{suffix}")
