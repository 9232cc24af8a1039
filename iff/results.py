"""Results: provenance, DataTree save/load with integrity checks, and atomic results folders.

A results folder holds::

    posterior.nc | posterior.zarr   the DataTree (posterior, prior, observed_data, constant_data,
                                    sample_stats), provenance in root attrs; a forward run's
                                    prior is its posterior, stored once
    summary.csv                     the summary table (iff.summary)
    config.yaml                     the resolved config of the run
    convergence.json                the convergence verdict
    manifest.json                   size and SHA-256 of every file above (written last)

It is written into a hidden temporary folder next to its destination (``.<name>.tmp-<hex>``),
flushed to disk and renamed into place, so a killed run never leaves a partial folder under the
final name. An existing folder is replaced only with ``force=True``, and then only after the new
one is complete. :func:`load_tree` checks every file of a folder against its manifest, so a
truncated or altered ``summary.csv``, ``config.yaml``, ``convergence.json`` or posterior never
loads as results, and it refuses hidden temporary folders and files left by an interrupted
write.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import yaml

from iff._version import __version__
from iff.errors import ResultsError

NETCDF_NAME = "posterior.nc"
ZARR_NAME = "posterior.zarr"
#: xarray engine that writes and reads ``posterior.nc`` (files are netCDF-4/HDF5 either way)
NETCDF_ENGINE = "netcdf4"
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "iff-results-manifest/1"
#: ``sample_stats.attrs["method"]`` of a forward Monte Carlo run: no data condition the model, so
#: its ``prior`` group is its ``posterior`` (one dataset), which :func:`save_tree` writes once and
#: :func:`load_tree` gives both names again.
FORWARD_METHOD = "forward Monte Carlo"
#: Names of the hidden temporary paths of atomic writes (``.<name>.tmp-<hex>``) and of the old
#: folder moved aside while ``--force`` replaces one (``.<name>.old-<hex>``).
LEFTOVER = re.compile(r"\..+\.(tmp|old)-[0-9a-f]{8}(\..*)?")
_LIBS = ("pymc", "pytensor", "arviz", "arviz-base", "arviz-stats", "xarray", "numpy", "pandas",
         "scipy", "nutpie", "pydantic", "netCDF4", "zarr")


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape the numbers, plus Python's."""
    out = {"python": platform.python_version()}
    for lib in _LIBS:
        try:
            out[lib] = version(lib)
        except PackageNotFoundError:
            out[lib] = "not installed"
    return out


def sha256_bytes(data: bytes) -> str:
    """SHA-256 hex digest."""
    return hashlib.sha256(data).hexdigest()


def flows_digest(tree: xr.DataTree) -> str:
    """SHA-256 of the posterior flows (float64, C order): detects corrupted results."""
    values = np.ascontiguousarray(tree["posterior"]["flows"].values, dtype="float64")
    return sha256_bytes(values.tobytes())


def provenance(
    *, config_json: str, input_files: dict[str, Path], seed: int, convergence: dict[str, Any],
    method: str, sampler: str, scenario: str | None, priors_used: dict[str, str],
    sources: list[str], warnings: list[str] | None = None, illustrative_priors: bool = False,
    corrections: dict[str, str] | None = None,
    structure: dict[str, dict[str, bool]] | None = None,
) -> dict[str, Any]:
    """Root attrs of a results DataTree (all values are strings or integers for netCDF)."""
    inputs = {role: {"path": str(p), "sha256": sha256_bytes(Path(p).read_bytes())}
              for role, p in input_files.items()}
    return {
        "iff_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config_json": config_json,
        "config_sha256": sha256_bytes(config_json.encode()),
        "input_sha256": json.dumps(inputs, sort_keys=True),
        "seed": int(seed),
        "scenario": scenario or "",
        "method": method,
        "nuts_sampler": sampler if method == "nuts" else "",
        "library_versions": json.dumps(library_versions(), sort_keys=True),
        "convergence": json.dumps(convergence, sort_keys=True),
        "convergence_verdict": convergence["verdict"],
        "priors_used": json.dumps(priors_used, sort_keys=True),
        "observation_sources": json.dumps(sorted(set(sources))),
        "illustrative_inputs": int(illustrative_priors
                                   or any("illustrative" in s.lower() for s in sources)),
        "illustrative_priors": int(illustrative_priors),
        "warnings": json.dumps(list(warnings or [])),
        "overlap_corrections": json.dumps(dict(corrections or {}), sort_keys=True),
        "structure": json.dumps(dict(structure or {}), sort_keys=True),
    }


def finalize(tree: xr.DataTree, attrs: dict[str, Any], units: dict[str, str]) -> xr.DataTree:
    """Attach units to variables and provenance (plus the flows digest) to the root."""
    for group in ("posterior", "prior", "observed_data"):
        if group not in tree.children:
            continue
        ds = tree[group].to_dataset()
        for name in ds.data_vars:
            base = str(name).removesuffix("_z")
            if str(name) in units:
                ds[name].attrs["units"] = units[str(name)]
            elif str(name).endswith("_z") and base in units:
                ds[name].attrs["units"] = "standard normal (non-centred parameterisation)"
        tree[group] = xr.DataTree(ds)
    tree.attrs = {**attrs, "flows_sha256": flows_digest(tree)}
    return tree


def save_tree(tree: xr.DataTree, path: Path) -> None:
    """Write a DataTree as netCDF, or zarr when ``path`` ends in ``.zarr`` (atomic rename).

    A forward run's ``prior`` group is written once, as its ``posterior``
    (:data:`FORWARD_METHOD`): multi-country demo, every variable, 40,000 draws, 0.74 GB on disk
    instead of 1.48 GB, and half the time to write, flush and hash it.
    """
    path = Path(path)
    if _prior_is_posterior(tree):
        tree = tree.copy(deep=False)  # the caller's tree keeps its prior group
        del tree["prior"]
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        if path.suffix == ".zarr":
            tree.to_zarr(tmp)
        else:
            # netCDF4 (the C library) rather than h5netcdf: the demo's posterior took 1.7 s to
            # write with h5netcdf (its per-variable dimension bookkeeping) and 0.24 s with it
            with _no_distributed_import():
                tree.to_netcdf(tmp, engine=NETCDF_ENGINE)
        if path.is_dir():  # an existing zarr store is a folder: swap it whole
            _swap(tmp, path)
        else:
            tmp.replace(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()


def _is_forward(tree: xr.DataTree) -> bool:
    return ("sample_stats" in tree.children
            and tree["sample_stats"].attrs.get("method") == FORWARD_METHOD)


def _prior_is_posterior(tree: xr.DataTree) -> bool:
    """Whether ``tree`` is a forward run's and its ``prior`` group holds the very arrays of its
    ``posterior`` (the same objects, so nothing is compared value by value)."""
    if not _is_forward(tree) or not {"prior", "posterior"} <= set(tree.children):
        return False
    prior, posterior = tree["prior"].to_dataset(), tree["posterior"].to_dataset()
    return (list(prior.data_vars) == list(posterior.data_vars)
            and all(prior[name].data is posterior[name].data for name in prior.data_vars))


@contextmanager
def _no_distributed_import() -> Iterator[None]:
    """Let xarray's writer find no ``distributed`` package unless one is already imported.

    xarray's ``to_netcdf`` asks dask which scheduler is active, and to check for a
    ``distributed.Client`` both import ``distributed`` (0.36 s in a fresh process; writing the
    demo's posterior took 0.36-0.51 s with it, 0.20-0.30 s without). When the package is not
    imported, no client can exist, so the answer is the same without it: the threaded
    scheduler. A sweep, which imports it, is left as it is.
    """
    blocked = [name for name in ("distributed", "dask.distributed") if name not in sys.modules]
    if len(blocked) < 2:
        yield
        return
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        yield
    finally:
        for name in blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def _swap(new: Path, dest: Path) -> None:
    old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
    dest.rename(old)
    new.rename(dest)
    shutil.rmtree(old) if old.is_dir() else old.unlink()


def load_tree(path: Path, check: bool = True) -> xr.DataTree:
    """Load a results DataTree into memory and verify its integrity.

    Parameters
    ----------
    path
        A ``.nc`` file, a ``.zarr`` folder, or a results folder containing one.
    check
        Verify the config hash and the flows digest (set False to inspect a damaged file).

    Raises
    ------
    ResultsError
        If the file is missing, unreadable, or fails the integrity checks.
    """
    path = Path(path)
    leftover = leftover_part(path)
    if leftover is not None:
        raise ResultsError(
            f"{path}: {leftover} is a temporary path left by an interrupted write (killed run or "
            "sweep), not results; delete it once no iff command is writing there")
    folder = None
    if path.is_dir() and path.suffix != ".zarr":
        folder = path
        for name in (NETCDF_NAME, ZARR_NAME):
            if (path / name).exists():
                path = path / name
                break
        else:
            raise ResultsError(f"{path}: no {NETCDF_NAME} or {ZARR_NAME} in this folder")
    if not path.exists():
        raise ResultsError(f"{path}: results not found")
    try:
        engine = "zarr" if path.suffix == ".zarr" else NETCDF_ENGINE
        with xr.open_datatree(path, engine=engine) as opened:
            tree = opened.load()
    except Exception as e:  # any reader failure means the file is not valid results
        raise ResultsError(f"{path}: cannot be read as iff results ({e})") from None
    if _is_forward(tree) and "prior" not in tree.children and "posterior" in tree.children:
        tree["prior"] = xr.DataTree(tree["posterior"].to_dataset())  # stored once, see save_tree
    if check:
        if folder is not None:
            verify_manifest(folder)
        elif (path.parent / MANIFEST_NAME).exists():  # a posterior inside a results folder
            verify_manifest(path.parent, only=path.name)
        attrs = tree.attrs
        if "config_json" not in attrs or "flows_sha256" not in attrs:
            raise ResultsError(f"{path}: not iff results (provenance attributes missing)")
        if sha256_bytes(attrs["config_json"].encode()) != attrs.get("config_sha256"):
            raise ResultsError(f"{path}: config hash does not match the stored config")
        if flows_digest(tree) != attrs["flows_sha256"]:
            raise ResultsError(f"{path}: flows do not match their stored digest (file damaged?)")
    return tree


def leftover_part(path: Path) -> str | None:
    """The hidden temporary component of ``path`` (e.g. ``.demo.tmp-1a2b3c4d``), or None."""
    for part in Path(path).absolute().parts:
        if LEFTOVER.fullmatch(part):
            return part
    return None


def leftovers(out_dir: Path) -> list[Path]:
    """Hidden temporary folders and files of ``out_dir`` left next to it by interrupted
    writes."""
    out_dir = Path(out_dir)
    if not out_dir.parent.is_dir():
        return []
    return sorted(p for p in out_dir.parent.glob(f".{glob_escape(out_dir.name)}.*")
                  if LEFTOVER.fullmatch(p.name))


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters escaped."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def _files(folder: Path) -> list[Path]:
    """Every file under ``folder`` except the manifest, sorted by relative path."""
    return sorted((p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_NAME),
                  key=lambda p: p.relative_to(folder).as_posix())


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def manifest(folder: Path) -> dict[str, Any]:
    """Size and SHA-256 of every file of a results folder (zarr stores file by file)."""
    folder = Path(folder)
    return {"format": MANIFEST_FORMAT, "files": {
        p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size, "sha256": _file_sha256(p)}
        for p in _files(folder)}}


def verify_manifest(folder: Path, only: str | None = None) -> None:
    """Check the files of a results folder against its ``manifest.json``.

    Parameters
    ----------
    folder
        The results folder.
    only
        Check only this entry (a file, or a zarr store: every file under it).

    Raises
    ------
    ResultsError
        The manifest is missing or unreadable, a file it lists is missing, or a file's size or
        SHA-256 differs (a truncated, interrupted or edited file). Files added to the folder
        later (published tables, figures, reports) are not listed and not checked.
    """
    folder = Path(folder)
    mpath = folder / MANIFEST_NAME
    try:
        doc = json.loads(mpath.read_text(encoding="utf-8"))
        files = doc["files"]
        if doc.get("format") != MANIFEST_FORMAT or not isinstance(files, dict):
            raise ValueError(f"not a {MANIFEST_FORMAT} manifest")
    except FileNotFoundError:
        raise ResultsError(
            f"{folder}: no {MANIFEST_NAME}: not a complete iff results folder (an interrupted "
            "write, or written by an iff without manifests); rerun to recreate it") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ResultsError(f"{mpath}: unreadable manifest ({e}); the folder is damaged") from None
    required = {"summary.csv", "config.yaml", "convergence.json"}
    missing_required = sorted(required - set(files))
    if missing_required or not any(n == NETCDF_NAME or n.startswith(ZARR_NAME + "/")
                                   for n in files):
        raise ResultsError(f"{mpath}: incomplete manifest (no entry for "
                           f"{', '.join(missing_required) or 'the posterior'})")
    for name, entry in files.items():
        if only is not None and name != only and not name.startswith(only + "/"):
            continue
        f = folder / name
        if not f.is_file():
            raise ResultsError(f"{f}: missing (listed in {MANIFEST_NAME}); the folder is damaged")
        size = f.stat().st_size
        if size != entry.get("bytes"):
            raise ResultsError(f"{f}: {size} bytes, {entry.get('bytes')} when written "
                               "(truncated or edited); the folder is not valid results")
        if _file_sha256(f) != entry.get("sha256"):
            raise ResultsError(f"{f}: SHA-256 differs from {MANIFEST_NAME} (damaged or "
                               "edited); the folder is not valid results")


def _fsync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` (and itself) to disk."""
    for p in [*folder.rglob("*"), folder]:
        flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if p.is_dir() else 0)
        try:
            fd = os.open(p, flags)
        except OSError:
            continue
        try:
            os.fsync(fd)
        except OSError:  # some filesystems refuse fsync on folders
            pass
        finally:
            os.close(fd)


def check_writable(out_dir: Path, force: bool) -> None:
    """Refuse an existing results folder unless ``force`` (call before sampling, and again at
    write time)."""
    if out_dir.exists() and not force:
        raise ResultsError(f"results folder {out_dir} exists; use --force to replace it, or "
                           "--out to write elsewhere")


def write_results(
    out_dir: Path, tree: xr.DataTree, summary: pd.DataFrame, force: bool, zarr: bool = False
) -> Path:
    """Write a complete results folder atomically.

    Returns
    -------
    pathlib.Path
        The folder written.
    """
    out_dir = Path(out_dir)
    check_writable(out_dir, force)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        save_tree(tree, tmp / (ZARR_NAME if zarr else NETCDF_NAME))
        write_summary_csv(summary, tmp / "summary.csv")
        config = json.loads(tree.attrs["config_json"])
        (tmp / "config.yaml").write_text(
            "# Resolved config of this run (defaults filled in, scenario applied)\n"
            + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        (tmp / "convergence.json").write_text(
            json.dumps(json.loads(tree.attrs["convergence"]), indent=2) + "\n", encoding="utf-8")
        (tmp / MANIFEST_NAME).write_text(  # last: its presence marks the folder complete
            json.dumps(manifest(tmp), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        _fsync_tree(tmp)
        if out_dir.exists():
            _swap(tmp, out_dir)
        else:
            tmp.rename(out_dir)
        _fsync_tree_dir(out_dir.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out_dir


def _fsync_tree_dir(folder: Path) -> None:
    """Flush a folder's entries (the rename) to disk, where the filesystem allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_summary_csv(summary: pd.DataFrame, path: Path) -> None:
    """Write a summary table as CSV atomically (6 significant digits, enough for USD figures)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        summary.to_csv(tmp, index=False, float_format="%.6g", lineterminator="\n")
        tmp.replace(path)
    finally:
        if tmp.exists():
            tmp.unlink()
