"""The market plugin API: declared metadata plus a ``build`` step that adds variables to the model.

A market is a subclass of :class:`Market`. It declares

* ``name`` (the key under ``markets:`` in a config), ``title``, ``typology`` and ICCS codes;
* its ``parameters`` (:class:`ParameterSpec`: support, unit, dims, default prior, meaning);
* the ``quantities`` it reads from the observation table (:class:`QuantitySpec`);
* a pydantic ``Settings`` model for its config section (a ``priors`` field with one optional
  prior per declared parameter is added automatically).

``build`` adds the market's variables to the shared PyMC model and returns its flows, a tensor
with dims ``(country, year, direction, phase)`` in current USD, laid out from its four parts by
:func:`iff.flows.flow_array`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from iff.errors import InputProblem
from iff.priors import PriorSpec, PriorSpecT, Support, as_prior, check_support, describe

if TYPE_CHECKING:
    import pytensor.tensor as pt

    from iff.build import BuildContext
    from iff.observations import ObservationTable


class Typology(StrEnum):
    """Activity types of the UNODC–UNCTAD framework (crime-related part)."""

    ILLEGAL_MARKET = "illegal_market"
    CORRUPTION = "corruption"
    EXPLOITATION = "exploitation"


@dataclass(frozen=True)
class ParameterSpec:
    """A model parameter a market declares.

    Parameters
    ----------
    name
        Name in the config's ``priors`` section; the model variable is ``<market>_<name>``.
    support
        ``positive``, ``unit`` (a share) or ``real``; decides the family of ``between`` priors.
    unit
        Unit of the parameter's values, e.g. ``"USD/kg pure"`` or ``"share"``.
    dims
        Model dims the parameter varies over, e.g. ``("drug", "country")``.
    default_prior
        Prior used when the config gives none, as it would be written in YAML.
    meaning
        One line saying what the parameter is.
    default_note
        How the default is chosen when it depends on settings (e.g. a country's role).
    pool
        Whether the parameter is similar across countries, so that a multi-country run pools
        it hierarchically unless the config says ``pool: {name: false}``.
    smooth
        Whether it varies slowly over years, so that it is smoothed (AR(1) on the latent
        scale) unless the config says ``smooth: {name: false}``.
    """

    name: str
    support: Support
    unit: str
    dims: tuple[str, ...]
    default_prior: dict[str, Any]
    meaning: str
    default_note: str = ""
    pool: bool = False
    smooth: bool = False


@dataclass(frozen=True)
class QuantitySpec:
    """A quantity code a market reads from the observation table.

    Parameters
    ----------
    code
        Value of the ``quantity`` column.
    unit
        The one unit accepted in the ``unit`` column.
    support
        ``positive`` (measured on the log scale) or ``unit`` (a share, measured on the logit scale).
    meaning
        One line saying what the number is.
    needs_item
        Whether rows must name an item (e.g. the drug) in the ``item`` column.
    upper
        Largest valid value, if any (shares are always below 1).
    default_cv
        Coefficient of variation assumed when a row gives no ``se``/``lower``/``upper``.
    takes_partner
        Whether rows may name a counterpart country in the ``partner`` column. Quantities that
        do not would otherwise count partner-level rows as national totals.
    items
        Valid values of the ``item`` column for this quantity alone (e.g. an exchange rate's
        basis, ``market`` or ``ppp``); empty: the market's :meth:`Market.items`.
    item_meaning
        What the ``item`` column holds for this quantity, in messages (e.g. ``"its basis in the
        item column: market or ppp"``); empty: "an item".
    """

    code: str
    unit: str
    support: Support
    meaning: str
    needs_item: bool = False
    upper: float | None = None
    default_cv: float = 0.2
    takes_partner: bool = False
    items: tuple[str, ...] = ()
    item_meaning: str = ""


@dataclass
class MarketInfo:
    """What a market built: its flows, plus units of model variables it did not add through
    :class:`~iff.build.BuildContext` (which records those itself)."""

    flows: pt.TensorVariable
    units: dict[str, str] = field(default_factory=dict)


class MarketSettings(BaseModel):
    """Base of every market's config section (unknown keys are rejected)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    def input_files(self, base_dir: Path) -> dict[str, Path]:
        """Extra files the market reads (e.g. list tables), for provenance hashes.

        Keys are the dotted config fields that name the files (e.g.
        ``markets.trafficking_in_persons.list_tables.GBR.2013``), so a missing file is reported
        at its line in the config.

        Parameters
        ----------
        base_dir
            Folder of the config file; relative paths in settings are resolved against it.
        """
        return {}


def _support_validator(support: Support):
    def check(spec: PriorSpecT | None) -> PriorSpecT | None:
        return None if spec is None else check_support(spec, support)

    return check


def priors_model(market_name: str, parameters: tuple[ParameterSpec, ...]) -> type[BaseModel]:
    """Build the pydantic model of a market's ``priors`` section from its declared parameters."""
    fields: dict[str, Any] = {}
    for p in parameters:
        annotation = Annotated[PriorSpec | None, AfterValidator(_support_validator(p.support))]
        desc = f"{p.meaning} [{p.unit}; support {p.support}; dims {', '.join(p.dims)}]"
        fields[p.name] = (annotation, Field(None, description=desc))
    title = "".join(w.capitalize() for w in market_name.split("_")) + "Priors"
    return create_model(title, __config__=ConfigDict(extra="forbid"), **fields)


class Market(ABC):
    """Base class of market plugins. See the module docstring for the contract."""

    name: ClassVar[str]
    title: ClassVar[str]
    typology: ClassVar[Typology]
    iccs: ClassVar[tuple[str, ...]]
    parameters: ClassVar[tuple[ParameterSpec, ...]]
    quantities: ClassVar[tuple[QuantitySpec, ...]]
    Settings: ClassVar[type[MarketSettings]]
    #: Non-empty for markets that know the counterpart country of their flows: what a partner
    #: is for each direction. Such markets accept a ``partners`` section (:mod:`iff.partners`).
    partner_meaning: ClassVar[str] = ""
    #: Set by ``__init_subclass__``: model of the ``priors`` section.
    Priors: ClassVar[type[BaseModel]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "__abstractmethods__", None):
            return
        for attr in ("name", "title", "typology", "iccs", "parameters", "quantities", "Settings"):
            if not hasattr(cls, attr):
                raise TypeError(f"market class {cls.__name__} must declare {attr!r}")
        names = [p.name for p in cls.parameters]
        if len(set(names)) != len(names):
            raise TypeError(f"market {cls.name!r} declares a parameter twice")
        for p in cls.parameters:  # defaults must themselves be valid priors
            check_support(as_prior(p.default_prior), p.support)
        cls.Priors = priors_model(cls.name, cls.parameters)

    def __init__(self, settings: MarketSettings):
        self.settings = settings
        self.countries: list[str] = []
        self.years: list[int] = []
        #: Warnings found while checking (e.g. weakly identified terms), kept in provenance.
        self.warnings: list[str] = []

    def bind(self, countries: list[str], years: list[int]) -> None:
        """Remember the run's countries and years (called by the engine before any check)."""
        self.countries, self.years = list(countries), list(years)

    # -- metadata helpers -------------------------------------------------------------------
    @classmethod
    def parameter(cls, name: str) -> ParameterSpec:
        """The declared parameter called ``name``."""
        for p in cls.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    @classmethod
    def quantity(cls, code: str) -> QuantitySpec | None:
        """The declared quantity with this code, or None."""
        return next((q for q in cls.quantities if q.code == code), None)

    @classmethod
    def default_prior_text(cls, p: ParameterSpec) -> str:
        """Human description of a parameter's default prior."""
        text = describe(as_prior(p.default_prior), p.support)
        return f"{text} ({p.default_note})" if p.default_note else text

    def structure(self, spec: ParameterSpec) -> tuple[bool, bool]:
        """Whether to pool ``spec`` across countries and smooth it across years in this run
        (the config's ``pool`` / ``smooth`` sections override the declared defaults)."""
        pool = getattr(self.settings, "pool", {}).get(spec.name, spec.pool)
        smooth = getattr(self.settings, "smooth", {}).get(spec.name, spec.smooth)
        return (bool(pool) and "country" in spec.dims and len(self.countries) > 1,
                bool(smooth) and "year" in spec.dims and len(self.years) > 1)

    # -- per-run hooks ----------------------------------------------------------------------
    def items(self) -> list[str]:
        """Valid values of the observation table's ``item`` column (empty: none used)."""
        return []

    def load_inputs(self, files: Mapping[str, Path]) -> list[InputProblem]:
        """Read the extra files named by :meth:`MarketSettings.input_files` (keys as there).

        Called once before :meth:`check`; return every problem found instead of raising.
        """
        return []

    def has_data(self) -> bool:
        """Whether the market conditions the model on data outside the observation table
        (e.g. list tables), so that the run needs NUTS rather than forward Monte Carlo."""
        return False

    def check(self, observations: ObservationTable, countries: list[str]) -> list[InputProblem]:
        """Semantic checks of settings against data, run before any sampling."""
        return []

    @abstractmethod
    def build(self, ctx: BuildContext) -> MarketInfo:
        """Add the market's variables to the model in context and return its flows."""

