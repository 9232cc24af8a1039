"""Prior specifications written by researchers, and their PyMC / SciPy counterparts.

A prior spec is one of three YAML shapes:

* ``{between: [lo, hi], mass: 0.9}`` -- a distribution that puts ``mass`` of its probability in
  ``[lo, hi]`` with equal tails, its family chosen by the parameter's declared support:
  LogNormal for positive quantities, Beta for shares, Normal for real values;
* ``{dist: Gamma, alpha: 2, beta: 0.5}`` -- an explicit family with its parameters;
* ``{fixed: 0.2}`` -- a constant.

Pooling (dims) is declared by the market, never implied by the family.
"""

from __future__ import annotations

import functools
import math
from enum import StrEnum
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    model_validator,
)
from scipy import optimize, stats


class Support(StrEnum):
    """Declared support of a model parameter."""

    POSITIVE = "positive"  # (0, inf): quantities, prices, rates per person
    UNIT = "unit"  # (0, 1): shares, probabilities, purities
    REAL = "real"  # (-inf, inf): log-scale effects


#: Family used for ``between`` priors, by support.
BETWEEN_FAMILY = {Support.POSITIVE: "LogNormal", Support.UNIT: "Beta", Support.REAL: "Normal"}

#: Parameters of each explicit family, and the support of its values.
FAMILIES: dict[str, tuple[tuple[str, ...], Support]] = {
    "Normal": (("mu", "sigma"), Support.REAL),
    "StudentT": (("nu", "mu", "sigma"), Support.REAL),
    "LogNormal": (("mu", "sigma"), Support.POSITIVE),
    "Gamma": (("alpha", "beta"), Support.POSITIVE),
    "HalfNormal": (("sigma",), Support.POSITIVE),
    "Exponential": (("lam",), Support.POSITIVE),
    "Beta": (("alpha", "beta"), Support.UNIT),
    "Uniform": (("lower", "upper"), Support.REAL),
}
#: Family parameters that must be strictly positive.
_POSITIVE_FAMILY_PARAMS = {"sigma", "nu", "alpha", "beta", "lam"}


class BetweenPrior(BaseModel):
    """``{between: [lo, hi], mass: 0.9}``: ``mass`` of the prior lies in ``[lo, hi]``."""

    model_config = ConfigDict(extra="forbid")
    between: tuple[float, float] = Field(description="Plausible range [lo, hi].")
    mass: float = Field(0.9, gt=0.0, lt=1.0, allow_inf_nan=False,
                        description="Prior probability inside the range.")

    @model_validator(mode="after")
    def _ordered(self) -> BetweenPrior:
        lo, hi = self.between
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError("between: both bounds must be finite numbers")
        if not lo < hi:
            raise ValueError(f"between: lower bound {lo} must be below upper bound {hi}")
        return self


class FixedPrior(BaseModel):
    """``{fixed: x}``: the parameter is the constant ``x``."""

    model_config = ConfigDict(extra="forbid")
    fixed: float = Field(description="Constant value.")

    @model_validator(mode="after")
    def _finite(self) -> FixedPrior:
        if not math.isfinite(self.fixed):
            raise ValueError("fixed: value must be a finite number")
        return self


class DistPrior(BaseModel):
    """``{dist: Family, <params>}``: an explicit PyMC family with its parameters."""

    model_config = ConfigDict(extra="allow")
    dist: Literal[tuple(FAMILIES)] = Field(description="Distribution family.")  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _params(self) -> DistPrior:
        expected, _ = FAMILIES[self.dist]
        given = dict(self.model_extra or {})
        missing = [p for p in expected if p not in given]
        extra = [p for p in given if p not in expected]
        if missing or extra:
            raise ValueError(
                f"{self.dist} takes parameters {', '.join(expected)}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unknown {', '.join(extra)}" if extra else "")
            )
        for name, value in given.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{self.dist}.{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{self.dist}.{name} must be finite")
            if name in _POSITIVE_FAMILY_PARAMS and value <= 0:
                raise ValueError(f"{self.dist}.{name} must be > 0, got {value}")
        if self.dist == "Uniform" and not given["lower"] < given["upper"]:
            raise ValueError("Uniform: lower must be below upper")
        return self

    @property
    def params(self) -> dict[str, float]:
        """Family parameters, in the family's declared order."""
        extra = self.model_extra or {}
        return {p: float(extra[p]) for p in FAMILIES[self.dist][0]}


def _prior_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return {BetweenPrior: "between", FixedPrior: "fixed", DistPrior: "dist"}.get(type(value))
    if isinstance(value, dict):
        for key in ("between", "fixed", "dist"):
            if key in value:
                return key
    return None


PriorSpec = Annotated[
    Annotated[BetweenPrior, Tag("between")]
    | Annotated[FixedPrior, Tag("fixed")]
    | Annotated[DistPrior, Tag("dist")],
    Discriminator(
        _prior_kind,
        custom_error_type="prior_spec",
        custom_error_message=(
            "a prior is {between: [lo, hi], mass: 0.9}, {dist: Family, <params>} or {fixed: value}"
        ),
    ),
]
PriorSpecT = BetweenPrior | FixedPrior | DistPrior


@functools.cache
def _prior_adapter() -> TypeAdapter:
    return TypeAdapter(PriorSpec)


def as_prior(spec: PriorSpecT | dict[str, Any]) -> PriorSpecT:
    """Validate a prior written as a YAML-like dict (market defaults); pass a parsed one through."""
    return _prior_adapter().validate_python(spec) if isinstance(spec, dict) else spec


def check_support(spec: PriorSpecT, support: Support) -> PriorSpecT:
    """Check that a prior spec is compatible with a parameter's support.

    Raises
    ------
    ValueError
        With a message for the user if the spec can put mass outside the support.
    """
    if isinstance(spec, FixedPrior):
        v = spec.fixed
        if support is Support.POSITIVE and v < 0:
            raise ValueError(f"fixed value {v} is negative; this parameter is positive")
        if support is Support.UNIT and not 0.0 <= v <= 1.0:
            raise ValueError(f"fixed value {v} is outside [0, 1]; this parameter is a share")
    elif isinstance(spec, BetweenPrior):
        lo, hi = spec.between
        if support is Support.POSITIVE and lo <= 0:
            raise ValueError(f"between: lower bound {lo} must be > 0 for a positive parameter")
        if support is Support.UNIT and not (lo > 0 and hi < 1):
            raise ValueError(f"between: [{lo}, {hi}] must lie strictly inside (0, 1) for a share")
        if support is Support.UNIT:
            _fit_beta(lo, hi, spec.mass)  # fit now: a range no Beta fits is an input error
    else:
        fam_support = FAMILIES[spec.dist][1]
        if spec.dist == "Uniform":
            lo, hi = spec.params["lower"], spec.params["upper"]
            ok = support is Support.REAL or (
                lo >= 0 and (support is Support.POSITIVE or hi <= 1)
            )
        else:
            allowed = {
                Support.REAL: {Support.REAL, Support.POSITIVE, Support.UNIT},
                Support.POSITIVE: {Support.POSITIVE, Support.UNIT},
                Support.UNIT: {Support.UNIT},
            }[support]
            ok = fam_support in allowed
        if not ok:
            raise ValueError(
                f"{spec.dist} can put mass outside this parameter's support ({support})")
    return spec


def _z(mass: float) -> float:
    return float(stats.norm.ppf(0.5 + mass / 2.0))


@functools.lru_cache(maxsize=256)
def _fit_beta(lo: float, hi: float, mass: float) -> tuple[float, float]:
    """Beta(alpha, beta) with ``(1 - mass) / 2`` of its mass below ``lo`` and above ``hi``.

    Raises
    ------
    ValueError
        If no Beta fits (the message is for the user), also when the range is so narrow or so
        close to 0 or 1 that the arithmetic of the fit breaks down.
    """
    try:
        return _fit_beta_unchecked(lo, hi, mass)
    except (ArithmeticError, ValueError):  # e.g. a range of width 1e-300: sd**2 is 0
        raise ValueError(f"found no Beta distribution with {mass:.0%} of its mass in "
                         f"[{lo}, {hi}]; widen the range or lower the mass") from None


def _fit_beta_unchecked(lo: float, hi: float, mass: float) -> tuple[float, float]:
    q_lo, q_hi = (1 - mass) / 2, (1 + mass) / 2
    # Start from the logit-normal with the same quantiles, matched by moments.
    mean = (lo + hi) / 2
    sd = (hi - lo) / (2 * _z(mass))
    common = max(mean * (1 - mean) / sd**2 - 1, 0.5)
    x0 = np.log([mean * common, (1 - mean) * common])

    def resid(x: np.ndarray) -> np.ndarray:
        a, b = np.exp(x)
        return np.array([stats.beta.cdf(lo, a, b) - q_lo, stats.beta.cdf(hi, a, b) - q_hi])

    sol = optimize.least_squares(resid, x0, xtol=1e-12, ftol=1e-12, gtol=1e-12)
    if np.max(np.abs(sol.fun)) > 1e-4:
        # The start can lie in a flat region when a bound is near 0 or 1 (e.g. [0.0001, 0.3]
        # with 98%): match the log tail probabilities from a few other starts instead.
        def log_resid(x: np.ndarray) -> np.ndarray:
            a, b = np.exp(x)
            return np.array([stats.beta.logcdf(lo, a, b) - math.log(q_lo),
                             stats.beta.logsf(hi, a, b) - math.log(q_lo)])

        for start in [x0, *((u, v) for u in (-2.0, 0.0, 2.0) for v in (-2.0, 0.0, 2.0, 4.0))]:
            alt = optimize.least_squares(log_resid, start, xtol=1e-12, ftol=1e-12, gtol=1e-12)
            if np.all(np.isfinite(alt.x)) and np.max(np.abs(resid(alt.x))) <= 1e-6:
                sol = alt
                break
        else:
            raise ValueError(f"found no Beta distribution with {mass:.0%} of its mass in "
                             f"[{lo}, {hi}]; widen the range or lower the mass")
    a, b = np.exp(sol.x)
    if not (np.isfinite(a) and np.isfinite(b) and a > 0 and b > 0):
        raise ValueError("no finite Beta parameters")
    return float(a), float(b)


def resolve(spec: PriorSpecT, support: Support) -> tuple[str, dict[str, float]]:
    """Return the family and parameters a spec stands for (``("Fixed", {"value": x})`` if fixed).

    Parameters
    ----------
    spec
        A validated prior spec.
    support
        The parameter's declared support.
    """
    if isinstance(spec, FixedPrior):
        return "Fixed", {"value": spec.fixed}
    if isinstance(spec, DistPrior):
        return spec.dist, spec.params
    lo, hi = spec.between
    family = BETWEEN_FAMILY[support]
    if family == "LogNormal":
        mu = (math.log(lo) + math.log(hi)) / 2
        return family, {"mu": mu, "sigma": (math.log(hi) - math.log(lo)) / (2 * _z(spec.mass))}
    if family == "Normal":
        return family, {"mu": (lo + hi) / 2, "sigma": (hi - lo) / (2 * _z(spec.mass))}
    a, b = _fit_beta(lo, hi, spec.mass)
    return family, {"alpha": a, "beta": b}


def scipy_distribution(spec: PriorSpecT, support: Support) -> Any:
    """The frozen SciPy distribution of a (non-fixed) prior spec, for checks and tests."""
    family, p = resolve(spec, support)
    match family:
        case "Normal":
            return stats.norm(p["mu"], p["sigma"])
        case "StudentT":
            return stats.t(p["nu"], p["mu"], p["sigma"])
        case "LogNormal":
            return stats.lognorm(p["sigma"], scale=math.exp(p["mu"]))
        case "Gamma":
            return stats.gamma(p["alpha"], scale=1 / p["beta"])
        case "HalfNormal":
            return stats.halfnorm(scale=p["sigma"])
        case "Exponential":
            return stats.expon(scale=1 / p["lam"])
        case "Beta":
            return stats.beta(p["alpha"], p["beta"])
        case "Uniform":
            return stats.uniform(p["lower"], p["upper"] - p["lower"])
    raise ValueError(f"{family} prior has no distribution")


def describe(spec: PriorSpecT, support: Support) -> str:
    """A one-line human description, e.g. ``Beta(alpha=9.1, beta=27) — 90% in [0.1, 0.4]``."""
    family, p = resolve(spec, support)
    if family == "Fixed":
        return f"fixed at {p['value']:g}"
    args = ", ".join(f"{k}={v:.4g}" for k, v in p.items())
    text = f"{family}({args})"
    if isinstance(spec, BetweenPrior):
        text += f", {spec.mass:.0%} in [{spec.between[0]:g}, {spec.between[1]:g}]"
    return text
