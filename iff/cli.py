"""Command-line interface: ``iff validate | run | summarize | markets | mse | schema``.

Exit codes: 0 success; 2 invalid input (config, data, options, an existing results folder) with
a message naming file, field or row and reason, and no traceback; 3 a run that finished but
failed the convergence checks (results are written and marked; ``--allow-unconverged`` exits 0).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from iff.errors import IffInputError, ResultsError

EXIT_INVALID = 2
EXIT_UNCONVERGED = 3

app = typer.Typer(
    name="iff", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Estimate illicit financial flows (SDG 16.4.1) with Bayesian market models.")
out = Console()
# soft_wrap: never hard-wrap error messages (a wrapped file path cannot be found or grepped).
err = Console(stderr=True, soft_wrap=True)


def _fail(message: str, code: int = EXIT_INVALID) -> None:
    err.print("[bold red]error:[/] " + _escape(message), highlight=False)
    raise typer.Exit(code)


def _usd(x: float) -> str:
    return f"{x / 1e6:,.1f}"


def print_indicator(table, title: str) -> None:
    """Print the SDG 16.4.1 table (total, inward, outward per country-year) in USD millions."""
    from iff.summary import indicator_rows

    rows = indicator_rows(table)
    first = rows.iloc[0]
    t = Table(title=title, caption=(
        f"USD millions, current prices of each year; median and {first['prob']:.0%} "
        f"{first['interval'].upper()} interval; convergence: {first['convergence']}"
        + ("" if first["corrections"] == "none" else
           f"; overlap corrections: {first['corrections']}")))
    for col in ("country", "year", "flow", "median", "lower", "upper"):
        t.add_column(col, justify="right" if col in ("median", "lower", "upper") else "left")
    label = {"all": "total (inward + outward)", "inward": "inward", "outward": "outward"}
    for _, r in rows[rows["market"] == "all"].iterrows():
        t.add_row(r["country"], str(r["year"]), label[r["direction"]], _usd(r["median"]),
                  _usd(r["lower"]), _usd(r["upper"]))
    out.print(t)


@app.command()
def validate(
    config: Annotated[Path, typer.Argument(help="Run config (YAML).")],
    scenario: Annotated[str | None, typer.Option(help="Validate only this scenario.")] = None,
) -> None:
    """Check a config and its data (and every scenario) without sampling."""
    from iff.config import load_config
    from iff.engine import prepare

    base = load_config(config)
    names = [scenario] if scenario else [None, *base.config.scenarios]
    for name in names:
        loaded = base if name is None else load_config(config, name)
        plan = prepare(loaded)
        cfg = loaded.config
        label = "base config" if name is None else f"scenario '{name}'"
        out.print(
            f"[green]ok[/] {label}: {len(cfg.countries)} countries, years "
            f"{cfg.years[0]}-{cfg.years[-1]}, markets {', '.join(plan.markets)}, "
            f"{len(plan.observations.frame)} observations, method {plan.method}, "
            f"results -> {loaded.out_dir}")


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="Run config (YAML).")],
    scenario: Annotated[str | None, typer.Option(help="Apply this named scenario.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Results folder.")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing results folder.")] = False,
    allow_unconverged: Annotated[bool, typer.Option(
        help="Exit 0 even if convergence checks fail (results stay marked).")] = False,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", help="Override the config's progress bar setting.")] = None,
) -> None:
    """Run a config: sample, check convergence, write results and print the 16.4.1 table."""
    from iff.pipeline import run as run_pipeline

    outcome = run_pipeline(config, scenario=scenario, out=out_dir, force=force,
                           progressbar=progress)
    print_indicator(outcome.summary, f"SDG 16.4.1 — {outcome.loaded.config.name}"
                    + (f" (scenario {scenario})" if scenario else ""))
    for w in json.loads(outcome.tree.attrs.get("warnings", "[]")):
        err.print("[yellow]warning:[/] " + _escape(w), highlight=False)
    if outcome.tree.attrs.get("illustrative_inputs"):
        err.print("[yellow]note:[/] some inputs are labelled illustrative (source column or "
                  "illustrative_priors in the config): the figures illustrate the method and "
                  "are not an estimate.")
    out.print(f"results written to {outcome.out_dir}")
    conv = outcome.convergence
    if not conv.passed:
        msg = "convergence checks failed: " + "; ".join(conv.failures)
        if allow_unconverged:
            err.print(f"[yellow]warning:[/] {msg} (accepted with --allow-unconverged)")
        else:
            _fail(msg + ". Results are written and marked FAILED; increase draws/tune, or pass "
                  "--allow-unconverged to accept.", EXIT_UNCONVERGED)


@app.command()
def summarize(
    results: Annotated[Path, typer.Argument(help="Results folder (or posterior file).")],
    prob: Annotated[float | None, typer.Option(help="Interval probability (0-1).")] = None,
    interval: Annotated[str | None, typer.Option(help="eti or hdi.")] = None,
) -> None:
    """Summarise saved results again (printed, and written next to them)."""
    from iff.results import load_tree, write_summary_csv
    from iff.summary import summarize as summarize_tree

    tree = load_tree(results)
    cfg = json.loads(tree.attrs["config_json"])
    kind = interval or cfg["summary"]["interval"]
    p = prob if prob is not None else cfg["summary"]["prob"]
    if kind not in ("eti", "hdi"):
        _fail(f"--interval: '{kind}' must be eti or hdi")
    if not 0 < p < 1:
        _fail(f"--prob: {p} must be between 0 and 1")
    table = summarize_tree(tree, kind, p)
    folder = results if results.is_dir() and results.suffix != ".zarr" else results.parent
    target = folder / f"summary_{kind}{round(p * 100):d}.csv"
    write_summary_csv(table, target)
    print_indicator(table, f"SDG 16.4.1 — {cfg['name']}")
    out.print(f"summary written to {target}")


@app.command()
def markets(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List available markets with their parameters and observation quantities."""
    from iff import registry

    data = {}
    for name, cls in registry.markets().items():
        settings = [
            {"name": f, "default": _default_text(info), "meaning": info.description or ""}
            for f, info in cls.Settings.model_fields.items()]
        data[name] = {
            "title": cls.title, "typology": str(cls.typology), "iccs": list(cls.iccs),
            "settings": settings,
            "parameters": [{"name": p.name, "support": str(p.support), "unit": p.unit,
                            "dims": list(p.dims), "default_prior": cls.default_prior_text(p),
                            "meaning": p.meaning} for p in cls.parameters],
            "quantities": [{"code": q.code, "unit": q.unit, "item": q.needs_item,
                            "meaning": q.meaning} for q in cls.quantities],
        }
    if as_json:
        out.print_json(json.dumps(data))
        return
    for name, d in data.items():
        out.rule(f"[bold]{name}[/] — {d['title']} ({d['typology']}, ICCS {', '.join(d['iccs'])})")
        if d["settings"]:
            st = Table(title=f"settings (section markets.{name})")
            for col in ("setting", "default", "meaning"):
                st.add_column(col, overflow="fold")
            for row in d["settings"]:
                st.add_row(row["name"], row["default"], row["meaning"])
            out.print(st)
        t = Table(title=f"parameters (priors: section markets.{name}.priors)")
        for col in ("name", "support", "unit", "dims", "default prior", "meaning"):
            t.add_column(col, overflow="fold")
        for p in d["parameters"]:
            t.add_row(p["name"], p["support"], p["unit"], ", ".join(p["dims"]),
                      p["default_prior"], p["meaning"])
        out.print(t)
        q = Table(title="quantities (observation table: market,quantity,unit)")
        for col in ("quantity", "unit", "item", "meaning"):
            q.add_column(col, overflow="fold")
        for row in d["quantities"]:
            q.add_row(row["code"], row["unit"], "yes" if row["item"] else "", row["meaning"])
        out.print(q)


def _default_text(info) -> str:
    """A model field's default as text (``required`` if it has none)."""
    if info.is_required():
        return "required"
    default = info.get_default(call_default_factory=True)
    return "" if default is None else str(getattr(default, "value", default))


@app.command()
def mse(
    lists: Annotated[Path, typer.Argument(
        help="List table (CSV): one 0/1 column per list, then count.")],
    prob: Annotated[float, typer.Option(help="Interval probability (0-1).")] = 0.95,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    order: Annotated[int, typer.Option(
        help="Highest order of list interactions: 1 (independent lists), 2, 3.")] = 2,
    draws: Annotated[int, typer.Option(help="Draws per chain.")] = 2000,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    allow_unconverged: Annotated[bool, typer.Option(
        help="Exit 0 even if convergence checks fail.")] = False,
) -> None:
    """Estimate a hidden population (e.g. victims of trafficking) from overlapping lists.

    Bayesian log-linear multiple systems estimation with all two-list interactions under a
    shrinkage prior. Prints the observed total and the posterior of the total population.
    """
    import logging

    from iff.models.list_table import read_list_table
    from iff.models.mse import estimate

    if not 0 < prob < 1:
        _fail(f"--prob: {prob} must be between 0 and 1")
    if order not in (1, 2, 3):
        _fail(f"--order: {order} must be 1, 2 or 3")
    if draws < 100:
        _fail(f"--draws: {draws} is too few (at least 100)")
    table = read_list_table(lists, str(lists))
    logging.getLogger("pymc").setLevel(logging.ERROR)
    result = estimate(table, prob=prob, seed=seed, order=order, draws=draws, tune=draws)
    summary = result.summary()
    for w in result.warnings:
        err.print("[yellow]warning:[/] " + _escape(w), highlight=False)
    conv = result.convergence
    if as_json:
        sys.stdout.write(json.dumps({
            **summary, "unit": "persons", "interval": "eti", "lists": list(table.lists),
            "convergence": conv.verdict, "warnings": result.warnings}, indent=2) + "\n")
    else:
        t = Table(title=f"Multiple systems estimation — {lists.name} ({len(table.lists)} lists)",
                  caption=f"persons; posterior of the total population (observed + dark "
                          f"figure); {prob:.0%} equal-tailed interval; convergence: "
                          f"{conv.verdict}")
        for col in ("observed", "mean", "median", "lower", "upper"):
            t.add_column(col, justify="right")
        t.add_row(*(f"{summary[c]:,.0f}" for c in ("observed", "mean", "median", "lower",
                                                    "upper")))
        out.print(t)
    if not conv.passed:
        msg = "convergence checks failed: " + "; ".join(conv.failures)
        if allow_unconverged:
            err.print(f"[yellow]warning:[/] {msg} (accepted with --allow-unconverged)")
        else:
            _fail(msg + "; increase --draws", EXIT_UNCONVERGED)


@app.command()
def schema() -> None:
    """Print the JSON Schema of run configs (generated from the config models)."""
    from iff.config import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


def _pin_hash_seed() -> None:
    """Re-execute once with ``PYTHONHASHSEED=0`` unless the user set it.

    PyTensor's graph rewrites iterate over hashed sets, so with Python's randomised hashing the
    same model can compile to code that rounds differently from one process to the next, and
    the same seed then gives different draws (measured with nutpie, and for a cold compile
    cache). A fixed hash seed makes compiled models, and so results, repeat across processes.
    """
    if os.environ.get("PYTHONHASHSEED") is None:
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, "-m", "iff", *sys.argv[1:]])


def main() -> None:
    """Entry point: run the app, mapping iff errors to exit codes without tracebacks."""
    _pin_hash_seed()
    try:
        code = app(standalone_mode=False, prog_name="iff")  # returns the exit code of typer.Exit
        sys.exit(code if isinstance(code, int) else 0)
    except IffInputError as e:
        err.print("[bold red]error:[/] " + _escape(e.render()), highlight=False)
        sys.exit(EXIT_INVALID)
    except ResultsError as e:
        err.print("[bold red]error:[/] " + _escape(str(e)), highlight=False)
        sys.exit(EXIT_INVALID)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        sys.exit(130)
    except typer.TyperException as e:  # usage errors: unknown option, missing argument
        if hasattr(e, "show"):
            e.show()
        else:
            err.print("error: " + _escape(e.format_message()), highlight=False)
        sys.exit(getattr(e, "exit_code", EXIT_INVALID))


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
