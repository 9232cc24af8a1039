"""The run engine: validate everything, build one PyMC model, then sample it.

Steps are separate so each can be tested and so nothing is sampled before all input is valid:

1. :func:`prepare` -- instantiate markets, read the observation table, run market checks;
2. :func:`build_model` -- one ``pm.Model`` with named coords; each market adds its variables and
   returns flows ``(country, year, direction, phase)``; they are stacked into ``flows`` with a
   leading ``market`` dim;
3. :func:`sample` -- exact forward Monte Carlo when nothing is observed (or when asked), NUTS
   otherwise, then the convergence checks.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import pymc as pm
import pytensor.tensor as pt
import xarray as xr

from iff import registry
from iff.build import BuildContext
from iff.chunked import usable_cpus
from iff.config import LoadedConfig
from iff.diagnostics import Convergence, check_convergence
from iff.errors import IffInputError, InputProblem
from iff.flows import DIRECTIONS, FLOW_DIMS, FLOW_UNITS, PHASES
from iff.forward import deterministics_from_draws, forward_dataset
from iff.market import Market
from iff.nutpie_cached import sample_nutpie_cached
from iff.observations import ObservationTable, read_observations
from iff.partners import PARTNER_FLOW_DIMS, partner_coords, split_by_partner
from iff.results import FORWARD_METHOD


@dataclass
class RunPlan:
    """A validated run, ready to build: config, market instances and observations."""

    loaded: LoadedConfig
    markets: dict[str, Market]
    observations: ObservationTable

    @property
    def config(self) -> Any:
        """The validated run config."""
        return self.loaded.config

    @property
    def conditioned(self) -> bool:
        """Whether any data condition the model (observation rows or a market's own data)."""
        return bool(len(self.observations.frame)) or any(
            m.has_data() for m in self.markets.values())

    @property
    def warnings(self) -> list[str]:
        """Warnings of every market's checks."""
        return [w for m in self.markets.values() for w in m.warnings]

    @property
    def method(self) -> str:
        """``nuts`` or ``forward``: what :func:`sample` will do."""
        m = self.config.sampler.method
        if m == "auto":
            return "nuts" if self.conditioned else "forward"
        return m


def prepare(loaded: LoadedConfig) -> RunPlan:
    """Check everything that can be checked before building: data, roles, settings vs data.

    Raises
    ------
    IffInputError
        With every problem found.
    """
    config = loaded.config
    markets: dict[str, Market] = {}
    for name in type(config.markets).model_fields:
        settings = getattr(config.markets, name)
        if settings is not None:
            markets[name] = registry.get(name)(settings)
            markets[name].bind(list(config.countries), list(config.years))
    if config.observations is not None:
        obs = read_observations(
            loaded.input_files["observations"], markets, list(config.countries),
            list(config.years), file=str(loaded.input_files["observations"]),
            interval_prob=config.observations.interval_prob)
    else:
        obs = ObservationTable.empty(list(config.countries), list(config.years))
    problems: list[InputProblem] = []
    for market in markets.values():
        found = market.load_inputs(loaded.input_files)
        found += [] if found else market.check(obs, list(config.countries))
        for p in found:
            problems.append(p if p.file else InputProblem(
                p.reason, file=str(loaded.path), field=p.field,
                row=p.row if p.row is not None else loaded.line_of(p.field)))
    for name, market in markets.items():
        partners = getattr(market.settings, "partners", None)
        if partners is not None and not partners.source:
            market.warnings.append(
                f"{name}: partner shares have no source (markets.{name}.partners.source): "
                "illustrative")
        for field, reason in partners.problems(list(config.countries)) if partners else []:
            dotted = f"markets.{name}.{field}"
            problems.append(InputProblem(reason, file=str(loaded.path), field=dotted,
                                         row=loaded.line_of(dotted)))
    if config.sampler.method == "forward" and (
            len(obs.frame) or any(m.has_data() for m in markets.values())):
        problems.append(InputProblem(
            "method 'forward' samples the priors only and would ignore the data; use "
            "'nuts' or 'auto'", file=str(loaded.path), field="sampler.method",
            row=loaded.line_of("sampler.method")))
    if problems:
        raise IffInputError(problems)
    return RunPlan(loaded=loaded, markets=markets, observations=obs)


def build_model(plan: RunPlan) -> tuple[pm.Model, BuildContext]:
    """Build the run's single PyMC model.

    Returns
    -------
    model, ctx
        The model (with deterministic ``flows`` over ``FLOW_DIMS``, in current USD) and the build
        context holding units and the priors used.
    """
    cfg = plan.config
    countries = list(cfg.countries)
    partnered = {name: m.settings.partners for name, m in plan.markets.items()
                 if getattr(m.settings, "partners", None) is not None}
    coords = {
        "market": list(plan.markets),
        "country": countries,
        "year": list(cfg.years),
        "direction": list(DIRECTIONS),
        "phase": list(PHASES),
    }
    if partnered:
        coords |= {"partner_market": list(partnered), "partner": partner_coords(countries)}
    with pm.Model(coords=coords) as model:
        ctx = BuildContext(model=model, countries=countries, years=list(cfg.years),
                           observations=plan.observations)
        flows, by_partner = [], []
        for market in plan.markets.values():
            info = market.build(ctx)
            ctx.units.update(info.units)
            market_flows = info.flows
            if market.name in partnered:
                # the market's own estimate is kept; its flows become the reconciled sums
                own = pm.Deterministic(f"{market.name}_flows_own", info.flows,
                                       dims=FLOW_DIMS[1:])
                split, market_flows = split_by_partner(market.name, own,
                                                       partnered[market.name], countries)
                by_partner.append(split)
                ctx.units[f"{market.name}_flows_own"] = FLOW_UNITS
                for d in DIRECTIONS:
                    ctx.units[f"{market.name}_partner_share_{d}"] = f"share of {d} flows"
            ctx.flows[market.name] = market_flows
            flows.append(market_flows)
        pm.Deterministic("flows", pt.stack(flows, axis=0), dims=FLOW_DIMS)
        ctx.units["flows"] = FLOW_UNITS
        if by_partner:
            pm.Deterministic("flows_by_partner", pt.stack(by_partner, axis=0),
                             dims=("partner_market", *PARTNER_FLOW_DIMS))
            ctx.units["flows_by_partner"] = FLOW_UNITS
    return model, ctx


def _quiet_pymc(quiet: bool) -> None:
    logging.getLogger("pymc").setLevel(logging.WARNING if quiet else logging.INFO)


def sample(plan: RunPlan, model: pm.Model, progressbar: bool | None = None
           ) -> tuple[xr.DataTree, Convergence]:
    """Sample the model: forward Monte Carlo or NUTS, per :attr:`RunPlan.method`.

    Returns
    -------
    tree, convergence
        A DataTree with ``posterior``, ``prior``, ``observed_data``, ``constant_data`` and
        ``sample_stats`` groups (no provenance yet), and the convergence verdict.
    """
    s = plan.config.sampler
    progress = s.progressbar if progressbar is None else progressbar
    _quiet_pymc(not progress)
    workers = s.cores or usable_cpus()  # processes drawing forward chunks (iff.chunked)
    if plan.method == "forward":
        prior_ds = forward_dataset(model, s.chains, s.draws, s.seed, workers)
        groups = {"posterior": prior_ds, "prior": prior_ds,
                  "sample_stats": xr.Dataset(attrs={"method": FORWARD_METHOD})}
        return xr.DataTree.from_dict(groups), Convergence(method="forward", passed=True)

    # Both the prior group and the deterministics are computed vectorised, all draws in one call
    # with no compile (iff.forward): per-draw compiled functions cost ~3 s warm and ~30 s cold
    # on the demo.
    prior_ds = forward_dataset(model, s.chains, s.draws, s.seed, workers)
    kwargs: dict[str, Any] = {}
    if s.nuts_sampler == "nutpie":
        kwargs["nuts"] = {"adaptation": "low_rank" if s.mass_matrix == "low_rank" else "diag"}
    if s.nuts_sampler == "numpyro":
        try:
            import numpyro  # noqa: F401
        except ImportError:
            raise IffInputError(InputProblem(
                "nuts_sampler 'numpyro' needs the optional extra: pip install 'iff[numpyro]'",
                file=str(plan.loaded.path), field="sampler.nuts_sampler")) from None
    cores = s.cores or min(s.chains, os.cpu_count() or 1)
    free = [rv.name for rv in model.free_RVs]
    if s.nuts_sampler == "nutpie" and s.nutpie_backend == "cached":
        idata = sample_nutpie_cached(
            model, free, draws=s.draws, tune=s.tune, chains=s.chains, seed=s.seed,
            target_accept=s.target_accept, low_rank=s.mass_matrix == "low_rank",
            progressbar=progress)
    else:
        with model:
            idata = pm.sample(
                draws=s.draws, tune=s.tune, chains=s.chains, cores=cores, random_seed=s.seed,
                nuts_sampler=s.nuts_sampler, target_accept=s.target_accept,
                progressbar=progress, compute_convergence_checks=False, var_names=free,
                **kwargs)
    groups = {k: idata[k].to_dataset() for k in idata.children
              if k in ("posterior", "sample_stats", "observed_data", "constant_data")}
    posterior = groups["posterior"]
    groups["posterior"] = posterior.merge(deterministics_from_draws(model, posterior))
    groups["prior"] = prior_ds
    tree = xr.DataTree.from_dict(groups)
    return tree, check_convergence(tree, [*free, "flows"])
