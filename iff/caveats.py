"""What every published output must say about the numbers it carries.

Tables, figures and the HTML report all read their caveats from :class:`Caveats`, so none of
them can leave one out: the unit and year basis, the interval kind and probability, the
convergence verdict (a run that FAILED its checks is flagged in every output, never silently
published), illustrative inputs, run warnings and overlap corrections.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import xarray as xr

INTERVAL_NAMES = {"eti": "equal-tailed interval (ETI)", "hdi": "highest-density interval (HDI)"}
UNIT_TEXT = "current USD (prices of each reference year)"
#: Verdicts that need no warning: NUTS checks passed, or exact forward Monte Carlo.
SOUND = ("passed", "exact")


@dataclass(frozen=True)
class Caveats:
    """The caveats of one results tree, for one interval convention.

    Attributes
    ----------
    name, scenario
        Run name and scenario ('' for the base config).
    method
        ``nuts`` or ``forward``.
    verdict
        ``passed``, ``FAILED``, ``exact`` or ``unknown``.
    failures
        One sentence per failed convergence check.
    illustrative
        True if any input (observation source or prior) is labelled illustrative.
    warnings
        Warnings recorded by the run (e.g. MSE identifiability).
    corrections
        Overlap corrections applied, market -> description.
    kind, prob
        Interval kind and probability of the published bounds.
    """

    name: str
    scenario: str
    method: str
    verdict: str
    kind: str
    prob: float
    failures: list[str] = field(default_factory=list)
    illustrative: bool = False
    illustrative_priors: bool = False
    warnings: list[str] = field(default_factory=list)
    corrections: dict[str, str] = field(default_factory=dict)
    convergence: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_tree(cls, tree: xr.DataTree, kind: str, prob: float) -> Caveats:
        """Read the caveats from a results tree's provenance attributes."""
        a = tree.attrs
        conv = json.loads(a.get("convergence", "{}") or "{}")
        cfg = json.loads(a.get("config_json", "{}") or "{}")
        return cls(
            name=str(cfg.get("name", "")), scenario=str(a.get("scenario", "") or ""),
            method=str(a.get("method", conv.get("method", ""))),
            verdict=str(a.get("convergence_verdict", conv.get("verdict", "unknown"))),
            kind=kind, prob=float(prob), failures=list(conv.get("failures", [])),
            illustrative=bool(int(a.get("illustrative_inputs", 0))),
            illustrative_priors=bool(int(a.get("illustrative_priors", 0))),
            warnings=list(json.loads(a.get("warnings", "[]") or "[]")),
            corrections=dict(json.loads(a.get("overlap_corrections", "{}") or "{}")),
            convergence=conv)

    @property
    def sound(self) -> bool:
        """True when the draws may be published without a convergence warning."""
        return self.verdict in SOUND

    @property
    def run_label(self) -> str:
        """``name`` or ``name (scenario s)``."""
        return self.name + (f" (scenario {self.scenario})" if self.scenario else "")

    def interval_text(self) -> str:
        """E.g. ``90% equal-tailed interval (ETI)``."""
        return f"{self.prob:.0%} {INTERVAL_NAMES.get(self.kind, self.kind)}"

    def unit_text(self, unit_mult: int = 0) -> str:
        """Unit and year basis, with the multiplier in words."""
        scale = {0: "", 3: ", thousands", 6: ", millions", 9: ", billions"}.get(
            unit_mult, f", x 10^{unit_mult}")
        return f"{UNIT_TEXT}{scale}"

    def convergence_text(self) -> str:
        """The convergence verdict as one sentence."""
        if self.verdict == "exact":
            return ("convergence: exact forward Monte Carlo from the priors (independent draws; "
                    "MCMC checks do not apply)")
        if self.verdict == "passed":
            c = self.convergence
            return (f"convergence: passed (NUTS; max R-hat {c.get('max_rhat', float('nan')):.3f}"
                    f" <= 1.01, min bulk ESS {c.get('min_ess_bulk', float('nan')):.0f} >= 400, "
                    f"{c.get('divergences', 0)} divergences)")
        if self.verdict == "FAILED":
            return ("WARNING: NOT CONVERGED - convergence checks FAILED ("
                    + "; ".join(self.failures) + "): the figures are unreliable and not fit "
                    "for publication as estimates")
        return (f"WARNING: convergence verdict '{self.verdict}' - not verified; treat the "
                "figures as unreliable")

    def illustrative_text(self) -> str:
        """The illustrative-input warning ('' when every input is published)."""
        if not self.illustrative:
            return ""
        what = "priors" if self.illustrative_priors else "inputs"
        return (f"ILLUSTRATIVE INPUTS: some {what} are labelled illustrative; the figures "
                "illustrate the method and are not an estimate")

    def corrections_text(self) -> str:
        """Overlap corrections applied ('' if none)."""
        if not self.corrections:
            return ""
        return "overlap corrections: " + "; ".join(
            f"{m}: {t}" for m, t in self.corrections.items())

    def warnings_text(self) -> str:
        """The run's own warnings ('' if none)."""
        return ("run warnings: " + "; ".join(self.warnings)) if self.warnings else ""

    def alerts(self) -> list[str]:
        """Warnings a reader must see first: convergence, then illustrative inputs."""
        out = [] if self.sound else [self.convergence_text()]
        if self.illustrative:
            out.append(self.illustrative_text())
        return out

    def title_prefix(self) -> str:
        """Prefix of figure titles: ``NOT CONVERGED - `` and/or ``ILLUSTRATIVE - ``."""
        parts = [] if self.sound else ["NOT CONVERGED"]
        if self.illustrative:
            parts.append("ILLUSTRATIVE")
        return "".join(p + " - " for p in parts)

    def comment(self, basis: str = "posterior median", unit_mult: int = 0) -> str:
        """One line stating everything a published figure needs (the SDG ``COMMENT``)."""
        parts = [] if self.sound else [self.convergence_text()]
        parts += [
            f"OBS_VALUE: {basis}; LOWER_BOUND/UPPER_BOUND: {self.interval_text()}",
            f"unit: {self.unit_text(unit_mult)} (UNIT_MULT {unit_mult})",
            "inward and outward summed on each posterior draw, never netted",
        ]
        if self.sound:
            parts.append(self.convergence_text())
        parts += [t for t in (self.illustrative_text(), self.corrections_text(),
                              self.warnings_text()) if t]
        parts.append(f"run {self.run_label}")
        return ". ".join(parts)
