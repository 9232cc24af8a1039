"""A whole run as one call: load -> validate -> build -> sample -> check -> summarise -> write.

This is what ``iff run`` does and what notebooks and scripts should call.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import xarray as xr

from iff.config import LoadedConfig, load_config
from iff.diagnostics import Convergence
from iff.engine import build_model, prepare, sample
from iff.errors import ConvergenceWarning
from iff.results import check_writable, finalize, provenance, write_results
from iff.summary import summarize


@dataclass
class RunOutcome:
    """What a run produced."""

    out_dir: Path | None
    tree: xr.DataTree
    summary: pd.DataFrame
    convergence: Convergence
    loaded: LoadedConfig


def run(
    config: str | Path | LoadedConfig,
    scenario: str | None = None,
    out: str | Path | None = None,
    force: bool = False,
    progressbar: bool | None = None,
    write: bool = True,
) -> RunOutcome:
    """Run a config end to end.

    Parameters
    ----------
    config
        YAML path, or an already loaded config.
    scenario
        Scenario to apply (ignored when ``config`` is already loaded).
    out
        Results folder (default from the config).
    force
        Replace an existing results folder.
    progressbar
        Override the config's progress-bar setting.
    write
        Write the results folder (False: return results in memory only).

    Raises
    ------
    iff.errors.IffInputError
        Invalid config or data (nothing is sampled or written).
    iff.errors.ResultsError
        The results folder exists and ``force`` is False (checked before sampling).

    Warns
    -----
    iff.errors.ConvergenceWarning
        The run failed the convergence checks (results are still returned, and written marked
        ``FAILED``).
    """
    loaded = config if isinstance(config, LoadedConfig) else load_config(config, scenario)
    out_dir = Path(out) if out is not None else loaded.out_dir
    if write:
        check_writable(out_dir, force)
    plan = prepare(loaded)
    model, ctx = build_model(plan)
    tree, conv = sample(plan, model, progressbar=progressbar)
    cfg = loaded.config
    attrs = provenance(
        config_json=loaded.resolved_json(), input_files=loaded.input_files,
        seed=cfg.sampler.seed, convergence=conv.to_dict(), method=plan.method,
        sampler=cfg.sampler.nuts_sampler, scenario=loaded.scenario, priors_used=ctx.priors_used,
        sources=list(plan.observations.frame.get("source", [])), warnings=plan.warnings,
        illustrative_priors=cfg.illustrative_priors, corrections=ctx.corrections,
        structure=ctx.structure,
    )
    tree = finalize(tree, attrs, ctx.units)
    table = summarize(tree, cfg.summary.interval, cfg.summary.prob)
    if write:
        write_results(out_dir, tree, table, force=force, zarr=cfg.output.format == "zarr")
    if not conv.passed:
        where = f" (written to {out_dir}, marked FAILED)" if write else ""
        label = cfg.name + (f" (scenario {loaded.scenario})" if loaded.scenario else "")
        warnings.warn(ConvergenceWarning(
            f"NOT CONVERGED: {label} failed the convergence checks "
            f"({'; '.join(conv.failures)}){where}; the figures are unreliable and not fit for "
            "publication"), stacklevel=2)
    return RunOutcome(out_dir=out_dir if write else None, tree=tree, summary=table,
                      convergence=conv, loaded=loaded)
