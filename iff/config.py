"""Run configuration: pydantic models, YAML loading, scenario overlays and error reporting.

The models are the single source of truth for what a config may contain: validation, the JSON
Schema printed by ``iff schema`` and the resolved config stored with results all come from them.
The ``markets`` section is assembled from the registry, so a plugin's settings and priors are
validated (and documented in the schema) like the built-ins'.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from iff import registry
from iff.countries import ISO3
from iff.errors import IffInputError, InputProblem, did_you_mean
from iff.partners import PartnerSettings
from iff.yamlio import Loc, load_yaml

SLUG = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class Strict(BaseModel):
    """Base of config sections: unknown keys are errors, and so are NaN/inf (YAML .nan, .inf)."""

    # allow_inf_nan=False: without it a NaN fails range checks as "should be less than 1".
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SamplerConfig(Strict):
    """How the posterior is computed."""

    method: Literal["auto", "nuts", "forward"] = Field(
        "auto",
        description="auto: NUTS when any observation conditions the model, else exact forward "
        "Monte Carlo from the priors; nuts or forward force one.",
    )
    nuts_sampler: Literal["pymc", "nutpie", "numpyro"] = Field(
        "pymc",
        description="NUTS implementation. Default chosen by measurement (benchmarks/): PyMC's "
        "own NUTS converged reliably; numpyro needs the optional 'numpyro' extra.",
    )
    mass_matrix: Literal["diagonal", "low_rank"] = Field(
        "low_rank",
        description="nutpie only: mass-matrix adaptation. nutpie's diagonal default can fail to "
        "converge on hierarchical models (see stack notes).",
    )
    nutpie_backend: Literal["cached", "numba"] = Field(
        "cached",
        description="nutpie only: 'cached' runs nutpie's sampler on the log density PyTensor "
        "compiles and keeps in its compile cache (seconds to start; chains run in one thread, "
        "the model's arithmetic under Python's lock); 'numba' lets nutpie compile its own "
        "(uncacheable: 15-35 s per process on the demo, then chains fully parallel), for long "
        "runs of large models.",
    )
    draws: int = Field(1000, ge=10, description="Draws per chain kept after tuning.")
    tune: int = Field(1000, ge=0, description="Tuning steps per chain.")
    chains: int = Field(4, ge=1, description="Independent chains (>= 2 for R-hat).")
    cores: int | None = Field(
        None, ge=1, description="Parallel chains (PyMC sampler, numpyro, nutpie_backend numba), "
        "default min(chains, CPUs); forward Monte Carlo: processes drawing its chunks of at most "
        "40,000 draws, default the CPUs.")
    target_accept: float = Field(0.9, gt=0.5, lt=1.0, description="NUTS target acceptance.")
    seed: int = Field(ge=0, le=2**32 - 1, description="Integer random seed (0 to 2^32 - 1); "
                      "the same seed gives the same numbers.")
    progressbar: bool = Field(True, description="Show a progress bar while sampling.")


class SummaryConfig(Strict):
    """Interval convention of every published summary."""

    interval: Literal["eti", "hdi"] = Field(
        "eti", description="eti: equal-tailed interval; hdi: highest-density interval.")
    prob: float = Field(0.9, gt=0.0, lt=1.0, description="Probability mass of the interval.")


class OutputConfig(Strict):
    """Where results go."""

    dir: str | None = Field(
        None, description="Results folder, relative to the working directory "
        "(default results/<name>, with --<scenario> appended for a scenario run).")
    format: Literal["netcdf", "zarr"] = Field("netcdf", description="Storage of the posterior.")


class ObservationsConfig(Strict):
    """The observation table (one long CSV for all markets)."""

    file: str = Field(description="CSV path, relative to the config file.")
    interval_prob: float = Field(
        0.9, gt=0.0, lt=1.0,
        description="Probability of the central interval given by the lower/upper columns.")


class SweepConfig(Strict):
    """Settings of ``iff sweep`` (scenarios x country groups as independent tasks)."""

    dir: str | None = Field(
        None, description="Sweep folder, relative to the working directory (default "
        "results/<name>-sweep); one results folder per task inside it.")
    groups: dict[Annotated[str, Field(pattern=SLUG)],
                 Annotated[list[ISO3], Field(min_length=1)]] = Field(
        default_factory=dict,
        description="Country groups: each scenario runs once per group, with the config's "
        "countries replaced by the group's (codes must be among the config's countries).")

    @field_validator("groups")
    @classmethod
    def _unique_members(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, members in v.items():
            dup = sorted({c for c in members if members.count(c) > 1})
            if dup:
                raise ValueError(f"group '{name}' lists {', '.join(dup)} twice")
        return v


class RunConfigBase(Strict):
    """Fields of a run config except ``markets`` (which is built from the registry)."""

    name: str = Field(pattern=SLUG, description="Short name of the run (used in folder names).")
    description: str = Field("", description="Free text shown in reports.")
    countries: list[ISO3] = Field(min_length=1, description="ISO 3166-1 alpha-3 codes.")
    years: list[int] = Field(min_length=1, description="Reference years (flows are per year).")
    observations: ObservationsConfig | None = Field(
        None, description="Observation table; omit for a pure prior (forward Monte Carlo) run.")
    illustrative_priors: bool = Field(
        False, description="Set when some priors of this config are illustrative rather than "
        "published: results and reports are then flagged as illustrative.")
    sampler: SamplerConfig
    summary: SummaryConfig = Field(default_factory=SummaryConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    scenarios: dict[Annotated[str, Field(pattern=SLUG)], dict[str, Any]] = Field(
        default_factory=dict,
        description="Named overlays on this config, applied with --scenario NAME.")
    sweep: SweepConfig = Field(
        default_factory=SweepConfig,
        description="iff sweep: its folder and optional country groups (not part of a run's "
        "resolved config).")

    @field_validator("countries")
    @classmethod
    def _unique_countries(cls, v: list[str]) -> list[str]:
        dup = sorted({c for c in v if v.count(c) > 1})
        if dup:
            raise ValueError(f"countries listed twice: {', '.join(dup)}")
        return v

    @field_validator("years")
    @classmethod
    def _years(cls, v: list[int]) -> list[int]:
        dup = sorted({y for y in v if v.count(y) > 1})
        if dup:
            raise ValueError(f"years listed twice: {', '.join(map(str, dup))}")
        bad = [y for y in v if not 1900 <= y <= 2100]
        if bad:
            raise ValueError(f"years must be between 1900 and 2100, got {bad}")
        return sorted(v)

    @field_validator("scenarios")
    @classmethod
    def _no_nested_scenarios(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, overlay in v.items():
            if "scenarios" in overlay:
                raise ValueError(f"scenario '{name}' may not define scenarios itself")
            if "sweep" in overlay:
                raise ValueError(f"scenario '{name}' may not change the sweep section")
        return v


@functools.cache
def markets_model() -> type[BaseModel]:
    """Pydantic model of the ``markets`` section: one optional field per registered market."""
    fields: dict[str, Any] = {}
    for name, cls in registry.markets().items():
        extra: dict[str, Any] = {}
        for section, dim, what in (("pool", "country", "pool across countries"),
                                   ("smooth", "year", "smooth across years")):
            names = tuple(p.name for p in cls.parameters if dim in p.dims)
            if names:
                declared = [p.name for p in cls.parameters if getattr(p, section) and
                            dim in p.dims]
                extra[section] = (dict[Literal[names], bool], Field(  # type: ignore[valid-type]
                    default_factory=dict, description=(
                        f"Whether to {what}, by parameter (default: yes for "
                        f"{', '.join(declared) or 'none'})")))
        if cls.partner_meaning:
            extra["partners"] = (PartnerSettings | None, Field(None, description=(
                f"Counterpart countries of the flows ({cls.partner_meaning}); bilateral flows "
                "between run countries are reconciled (see iff.partners).")))
        settings = create_model(
            cls.Settings.__name__, __base__=cls.Settings,
            priors=(cls.Priors, Field(default_factory=cls.Priors,
                                      description="Priors overriding the market's defaults.")),
            **extra,
        )
        settings.__doc__ = cls.Settings.__doc__
        fields[name] = (settings | None, Field(None, description=f"{cls.title} ({cls.typology})"))

    def _some(self: BaseModel) -> BaseModel:
        if not any(getattr(self, n) is not None for n in type(self).model_fields):
            raise ValueError("at least one market must be configured")
        return self

    return create_model(
        "MarketsConfig", __config__=ConfigDict(extra="forbid"),
        __validators__={"_some": model_validator(mode="after")(_some)}, **fields)


@functools.cache
def run_config_model() -> type[RunConfigBase]:
    """Pydantic model of a whole run config (markets included)."""
    return create_model(
        "RunConfig", __base__=RunConfigBase,
        markets=(markets_model(), Field(description="Markets in this run and their settings.")),
    )


def json_schema() -> dict[str, Any]:
    """JSON Schema of a run config, generated from the models."""
    schema = run_config_model().model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "iff run configuration"
    return schema


# -- scenario overlays --------------------------------------------------------------------------

def deep_merge(base: dict[str, Any], overlay: dict[str, Any], _key: str = "") -> dict[str, Any]:
    """Overlay ``overlay`` on ``base``: mappings merge, anything else is replaced.

    Entries of a ``priors`` mapping are replaced whole, so a scenario can change a prior's kind
    (``between`` to ``fixed``) without leaving keys of the old one behind.
    """
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if _key != "priors" and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value, str(key))
        else:
            out[key] = copy.deepcopy(value)
    return out


# -- loading ------------------------------------------------------------------------------------

@dataclass
class LoadedConfig:
    """A validated run config with where it came from.

    Attributes
    ----------
    config
        The validated config (scenario applied).
    path
        The YAML file.
    scenario
        The scenario applied, if any.
    out_dir
        Results folder for this run.
    input_files
        Files the run reads (the config itself first), for hashing into provenance.
    lines
        Line of each YAML key path (scenario keys mapped onto the paths they set), for messages.
    """

    config: Any
    path: Path
    scenario: str | None
    out_dir: Path
    input_files: dict[str, Path] = field(default_factory=dict)
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, dotted: str | None) -> int | None:
        """Line of a dotted field path in the YAML file (of its nearest written parent)."""
        if not dotted:
            return None
        parts = [int(x) if x.isdigit() else x for x in dotted.split(".")]
        for n in range(len(parts), 0, -1):
            for key in (tuple(parts[:n]), tuple(map(str, parts[:n]))):
                if key in self.lines:
                    return self.lines[key]
        return None

    @property
    def base_dir(self) -> Path:
        """Folder that relative data paths in the config are resolved against."""
        return self.path.parent

    def resolved_json(self) -> str:
        """The resolved config as canonical JSON (sorted keys), without the scenario list and
        the sweep section (which do not change a run's numbers)."""
        data = self.config.model_dump(mode="json", exclude={"scenarios", "sweep"})
        data["scenario"] = self.scenario
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def config_hash(self) -> str:
        """SHA-256 of :meth:`resolved_json`."""
        return hashlib.sha256(self.resolved_json().encode()).hexdigest()


def _fields_at(model: Any, loc: Loc) -> list[str]:
    """Valid keys of the mapping at ``loc`` (best effort, for 'did you mean' hints)."""
    import typing

    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(str(part))
            if info is None:
                return []
            current = info.annotation
        elif typing.get_origin(current) in (dict, list):
            current = typing.get_args(current)[-1]
        else:
            return []
        # unwrap Optional / Annotated
        while True:
            origin = typing.get_origin(current)
            if origin is typing.Annotated:
                current = typing.get_args(current)[0]
            elif origin in (typing.Union, __import__("types").UnionType):
                args = [a for a in typing.get_args(current) if a is not type(None)]
                current = args[0] if args else current
                if len(args) != 1:
                    break
            else:
                break
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


_TAGS = {"between", "fixed", "dist"}


def _clean_loc(loc: tuple[Any, ...]) -> Loc:
    """Drop the tags pydantic inserts for tagged unions and function validators."""
    out: list[Any] = []
    for i, part in enumerate(loc):
        if isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue
        # a prior's tag is followed by the same key when the field itself failed
        if part in _TAGS and i + 1 < len(loc) and loc[i + 1] in _TAGS | {"mass"}:
            continue
        out.append(part)
    return tuple(out)


def validation_problems(
    err: ValidationError, file: str, lines: dict[Loc, int], model: Any, prefix: Loc = ()
) -> list[InputProblem]:
    """Convert a pydantic error into problems with file, dotted field path and line."""
    problems = []
    for e in err.errors(include_url=False):
        loc = _clean_loc(tuple(e["loc"]))
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            valid = _fields_at(model, loc[:-1])
            hint = did_you_mean(str(loc[-1]), valid)
            if not hint and 0 < len(valid) <= 12:
                hint = f"; valid keys: {', '.join(valid)}"
            msg = f"unknown key '{loc[-1]}'{hint}"
        elif e["type"] == "prior_spec" and isinstance(e.get("input"), dict):
            keys = [k for k in e["input"] if k not in ("mass",)]
            hints = "".join(did_you_mean(str(k), ("between", "fixed", "dist")) for k in keys)
            msg = f"{msg}{hints}"
        elif e["type"] == "string_pattern_mismatch" and e.get("ctx", {}).get("pattern") == SLUG:
            msg = (f"'{e.get('input')}' must start with a letter or digit and contain only "
                   "letters, digits, '_', '.' and '-'")
        elif e["type"] == "missing":
            msg = "required field is missing"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        elif e["type"] == "literal_error":
            msg = f"{msg}, got {e.get('input')!r}"
        full = (*prefix, *loc)
        row = None
        for n in range(len(full), -1, -1):
            if full[:n] in lines:
                row = lines[full[:n]]
                break
        problems.append(InputProblem(msg, file=file, field=".".join(map(str, full)) or None,
                                     row=row))
    return problems


def default_out_dir(name: str, scenario: str | None, configured: str | None) -> Path:
    """Results folder: configured or ``results/<name>``, plus ``--<scenario>`` for scenarios."""
    base = Path(configured) if configured else Path("results") / name
    return base.with_name(f"{base.name}--{scenario}") if scenario else base


def load_config(path: str | Path, scenario: str | None = None) -> LoadedConfig:
    """Load, overlay and validate a run config.

    Parameters
    ----------
    path
        YAML file.
    scenario
        Name of a scenario defined under ``scenarios:`` to apply, or None for the base config.

    Raises
    ------
    IffInputError
        Listing every problem with file, field and line.
    """
    path = Path(path)
    file = str(path)
    raw, lines = load_yaml(path, file)
    model = run_config_model()
    try:
        base = model.model_validate(raw)
    except ValidationError as err:
        raise IffInputError(validation_problems(err, file, lines, model)) from None

    config = base
    scen_lines = lines
    if scenario is not None:
        if scenario not in base.scenarios:
            known = ", ".join(base.scenarios) or "none defined"
            raise IffInputError(InputProblem(
                f"unknown scenario '{scenario}'{did_you_mean(scenario, base.scenarios)}; "
                f"scenarios: {known}", file=file, field="scenarios",
                row=lines.get(("scenarios",))))
        overlay = base.scenarios[scenario]
        merged = deep_merge(raw, overlay)
        scen_lines = dict(lines)
        # Lines of keys set by the overlay point into the scenario's block.
        for k, v in lines.items():
            if k[:2] == ("scenarios", scenario) and len(k) > 2:
                scen_lines[k[2:]] = v
        try:
            config = model.model_validate(merged)
        except ValidationError as err:
            probs = [dataclasses.replace(p, reason=f"{p.reason} (with scenario '{scenario}')")
                     for p in validation_problems(err, file, scen_lines, model)]
            raise IffInputError(probs) from None
        configured = overlay.get("output", {}).get("dir") if isinstance(
            overlay.get("output"), dict) else None
        out_dir = (Path(configured) if configured
                   else default_out_dir(config.name, scenario, base.output.dir))
    else:
        out_dir = default_out_dir(config.name, None, config.output.dir)

    input_files = {"config": path}
    if config.observations is not None:
        obs_path = path.parent / config.observations.file
        if not obs_path.is_file():
            raise IffInputError(InputProblem(
                f"observation file '{config.observations.file}' not found "
                f"(looked for {obs_path})", file=file, field="observations.file",
                row=lines.get(("observations", "file"))))
        input_files["observations"] = obs_path
    missing = []
    for name in type(config.markets).model_fields:
        settings = getattr(config.markets, name)
        if settings is None:
            continue
        for role, extra in settings.input_files(path.parent).items():
            if not extra.is_file():
                parts = tuple(int(x) if x.isdigit() else x for x in role.split("."))
                missing.append(InputProblem(
                    f"file not found (looked for {extra})", file=file, field=role,
                    row=scen_lines.get(parts) or scen_lines.get(tuple(map(str, parts)))))
            input_files[role] = extra
    if missing:
        raise IffInputError(missing)
    return LoadedConfig(config=config, path=path, scenario=scenario, out_dir=out_dir,
                        input_files=input_files, lines=scen_lines)
