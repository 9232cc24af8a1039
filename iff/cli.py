"""Command-line interface: ``iff validate | run | sweep | compare | summarize | publish | plot |
report | markets | mse | schema``.

Exit codes: 0 success; 2 invalid input (config, data, options, an existing results folder) with
a message naming file, field or row and reason, and no traceback; 3 a run that finished but
failed the convergence checks (results are written and marked; ``--allow-unconverged`` exits 0).
"""

from __future__ import annotations

import json
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
    from iff.caveats import SOUND
    from iff.summary import indicator_rows

    rows = indicator_rows(table)
    first = rows.iloc[0]
    if first["convergence"] not in SOUND:
        title = f"NOT CONVERGED ({first['convergence']}) - {title}"
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
    _note_leftovers(outcome.out_dir)
    conv = outcome.convergence
    if not conv.passed:
        msg = "convergence checks failed: " + "; ".join(conv.failures)
        if allow_unconverged:
            err.print(f"[yellow]warning:[/] {msg} (accepted with --allow-unconverged)")
        else:
            _fail(msg + ". Results are written and marked FAILED; increase draws/tune, or pass "
                  "--allow-unconverged to accept.", EXIT_UNCONVERGED)


def _note_leftovers(out_dir: Path) -> None:
    """Name hidden temporary paths next to a results folder left by interrupted writes."""
    from iff.results import leftovers

    stale = leftovers(out_dir)
    if stale:
        err.print("[yellow]note:[/] left by an interrupted write (not results, never loaded): "
                  + _escape(", ".join(map(str, stale)))
                  + "; delete them once no other iff command writes to "
                  + _escape(str(out_dir)), highlight=False)


@app.command()
def summarize(
    results: Annotated[Path, typer.Argument(help="Results folder (or posterior file).")],
    prob: Annotated[float | None, typer.Option(help="Interval probability (0-1).")] = None,
    interval: Annotated[str | None, typer.Option(help="eti or hdi.")] = None,
    allow_unconverged: Annotated[bool, typer.Option(
        help="Exit 0 for results that failed convergence (the table carries the verdict "
        "anyway).")] = False,
) -> None:
    """Summarise saved results again (printed, and written next to them)."""
    from iff.caveats import Caveats
    from iff.results import load_tree, write_summary_csv
    from iff.summary import summarize as summarize_tree

    tree = load_tree(results)
    cfg = json.loads(tree.attrs["config_json"])
    kind, p = _interval_of(tree, interval, prob)
    table = summarize_tree(tree, kind, p)
    folder = results if results.is_dir() and results.suffix != ".zarr" else results.parent
    target = folder / f"summary_{kind}{round(p * 100):d}.csv"
    write_summary_csv(table, target)
    print_indicator(table, f"SDG 16.4.1 — {cfg['name']}")
    out.print(f"summary written to {target}")
    _published(Caveats.from_tree(tree, kind, p), [], allow_unconverged)


def _interval_of(tree, interval: str | None, prob: float | None) -> tuple[str, float]:
    """Interval kind and probability: the options, else the run's config."""
    cfg = json.loads(tree.attrs["config_json"])
    kind = interval or cfg["summary"]["interval"]
    p = prob if prob is not None else cfg["summary"]["prob"]
    if kind not in ("eti", "hdi"):
        _fail(f"--interval: '{kind}' must be eti or hdi")
    if not 0 < p < 1:
        _fail(f"--prob: {p} must be between 0 and 1")
    return kind, p


def _published(caveats, written: list[Path], allow_unconverged: bool) -> None:
    """List what was written; warn of every alert; exit 3 for unconverged results."""
    for path in written:
        out.print(f"written {path}", highlight=False)
    for alert in caveats.alerts():
        err.print("[yellow]warning:[/] " + _escape(alert.removeprefix("WARNING: ")),
                  highlight=False)
    if not caveats.sound and not allow_unconverged:
        _fail("these results did not pass the convergence checks: the outputs are written and "
              "carry the warning; pass --allow-unconverged to exit 0", EXIT_UNCONVERGED)


_Prob = Annotated[float | None, typer.Option(
    help="Interval probability (0-1); default from the run's config.")]
_Interval = Annotated[str | None, typer.Option(help="eti or hdi; default from the run's config.")]
_Force = Annotated[bool, typer.Option(help="Replace existing output files.")]
_AllowUnconverged = Annotated[bool, typer.Option(
    help="Exit 0 for results that failed convergence (outputs carry the warning anyway).")]


@app.command()
def publish(
    results: Annotated[Path, typer.Argument(help="Results folder (or posterior file).")],
    fmt: Annotated[list[str] | None, typer.Option(
        "--format", help="sdg (SDG long table, CSV), csv (SDG + report tables), xlsx, json; "
        "repeat for several.")] = None,
    prob: _Prob = None,
    interval: _Interval = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Output folder (default RESULTS/published).")] = None,
    force: _Force = False,
    allow_unconverged: _AllowUnconverged = False,
) -> None:
    """Publish the SDG 16.4.1 table (series total, inward, outward, per typology) and the report
    table (market x direction x phase), in USD millions, from the summary layer."""
    from iff.publish import FORMATS, default_out_dir, publication, write
    from iff.results import load_tree

    formats = list(dict.fromkeys(fmt or ["sdg"]))
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        _fail(f"--format: '{bad[0]}' is not one of {', '.join(FORMATS)}")
    tree = load_tree(results)
    kind, p = _interval_of(tree, interval, prob)
    pub = publication(tree, kind, p)
    written = write(pub, out_dir or default_out_dir(results, "published"), formats, force)
    _published(pub.caveats, written, allow_unconverged)


@app.command()
def plot(
    results: Annotated[Path, typer.Argument(help="Results folder (or posterior file).")],
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Output folder (default RESULTS/figures).")] = None,
    year: Annotated[int | None, typer.Option(
        help="Year of the density of the total (default: the last year).")] = None,
    prob: _Prob = None,
    interval: _Interval = None,
    force: _Force = False,
    allow_unconverged: _AllowUnconverged = False,
) -> None:
    """Draw the figures (PNG and SVG): fan chart of the indicator, inward vs outward by market,
    density of the total, prior vs posterior per market, convergence diagnostics."""
    from iff.caveats import Caveats
    from iff.plots import figures, save_figures
    from iff.publish import default_out_dir
    from iff.results import load_tree

    tree = load_tree(results)
    kind, p = _interval_of(tree, interval, prob)
    years = [int(y) for y in tree["posterior"]["flows"].coords["year"].values]
    if year is not None and year not in years:
        _fail(f"--year: {year} is not a year of these results ({', '.join(map(str, years))})")
    figs = figures(tree, kind, p, year=year)
    written = save_figures(figs, out_dir or default_out_dir(results, "figures"), force)
    _published(Caveats.from_tree(tree, kind, p), written, allow_unconverged)


@app.command()
def report(
    results: Annotated[Path, typer.Argument(help="Results folder (or posterior file).")],
    out_file: Annotated[Path | None, typer.Option(
        "--out", help="HTML file (default RESULTS/report.html).")] = None,
    prob: _Prob = None,
    interval: _Interval = None,
    force: _Force = False,
    allow_unconverged: _AllowUnconverged = False,
) -> None:
    """Write one self-contained HTML report: headline estimate, tables, figures, each market's
    assumptions and sources, convergence verdict and provenance."""
    from iff.atomic import refuse_existing, write_atomic
    from iff.publish import default_out_dir
    from iff.report import render_report
    from iff.results import load_tree

    tree = load_tree(results)
    kind, p = _interval_of(tree, interval, prob)
    target = out_file or default_out_dir(results, "report.html")
    refuse_existing([target], force)
    html, caveats = render_report(tree, kind, p)
    _published(caveats, [write_atomic(target, html)], allow_unconverged)


@app.command()
def sweep(
    config: Annotated[Path, typer.Argument(help="Run config (YAML) with scenarios.")],
    scenarios: Annotated[str, typer.Option(
        help="Scenarios to run: a,b (base = the config without overlay) or all.")] = "all",
    workers: Annotated[int | None, typer.Option(
        min=1, help="Workers of the local Dask cluster (default: one per task, at most the "
        "CPU count).")] = None,
    scheduler: Annotated[str | None, typer.Option(
        help="Address of an existing Dask scheduler instead of a local cluster.")] = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Sweep folder (default sweep.dir or results/<name>-sweep).")] = None,
    force: Annotated[bool, typer.Option(
        help="Rerun tasks whose folders are stale (config or data changed) and replace "
        "them.")] = False,
    allow_unconverged: Annotated[bool, typer.Option(
        help="Exit 0 even if some tasks fail the convergence checks.")] = False,
    progress: Annotated[bool, typer.Option(
        "--progress/--no-progress", help="Progress bar over tasks.")] = True,
    dry_run: Annotated[bool, typer.Option(
        help="Validate every task and show what would run; run nothing.")] = False,
) -> None:
    """Run every scenario (x country group) as an independent task on dask.distributed.

    Finished tasks are skipped, so an interrupted sweep resumes where it stopped. Writes one
    results folder per task and sweep_summary.csv comparing them.
    """
    from iff.sweep import plan_sweep

    if workers is not None and scheduler:
        _fail("--workers sizes the local cluster; it cannot be combined with --scheduler")
    plan = plan_sweep(config, scenarios, out_dir, force or dry_run)
    _print_plan(plan)
    if dry_run:
        t = Table(title="tasks (dry run: nothing runs)")
        for col in ("task", "state", "folder"):
            t.add_column(col)
        for task in plan.tasks:
            st = plan.states[task.name]
            state = {"todo": "to run", "done": "finished, skipped"}.get(
                st.state, f"stale: {st.reason}" + ("" if force else " (refused without --force)"))
            t.add_row(task.name, state, str(task.out_dir))
        out.print(t)
        return
    report = _run_sweep_with_progress(plan, workers, scheduler, progress)
    _print_sweep_report(report)
    if report.failed:
        _fail(f"{len(report.failed)} task(s) failed: "
              + ", ".join(r.name for r in report.failed), 1)
    if report.unconverged:
        msg = (f"{len(report.unconverged)} task(s) NOT CONVERGED (failed the convergence "
               "checks; their sweep_summary.csv rows say FAILED): "
               + ", ".join(r.name for r in report.unconverged))
        if allow_unconverged:
            err.print(f"[yellow]warning:[/] {msg} (accepted with --allow-unconverged)")
        else:
            _fail(msg + ". Their results are written and marked FAILED; pass "
                  "--allow-unconverged to accept.", EXIT_UNCONVERGED)


def _print_plan(plan) -> None:
    done = sum(s.state == "done" for s in plan.states.values())
    stale = sum(s.state == "stale" for s in plan.states.values())
    out.print(f"sweep of {plan.config_path.name}: {len(plan.tasks)} task(s) -> {plan.sweep_dir}"
              f" ({done} finished and skipped" + (f", {stale} stale to rerun" if stale else "")
              + ")", highlight=False)


def _run_sweep_with_progress(plan, workers, scheduler, progress: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from iff.sweep import run_sweep

    def line(r) -> str:
        style = {"ok": "green", "unconverged": "yellow", "failed": "red"}[r.status]
        return (f"[{style}]{r.status}[/] {_escape(r.name)} ({r.seconds:.1f} s"
                + (f", {r.verdict}" if r.verdict else "") + ")")

    if not progress:
        return run_sweep(plan, workers, scheduler,
                         on_done=lambda r: err.print(line(r), highlight=False))
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=err) as bar:
        tid = bar.add_task("tasks", total=len(plan.tasks))

        def start(total: int, skipped: int) -> None:
            bar.update(tid, total=total, completed=skipped)

        def done(r) -> None:
            bar.console.print(line(r), highlight=False)
            bar.advance(tid)

        return run_sweep(plan, workers, scheduler, on_start=start, on_done=done)


def _print_sweep_report(report) -> None:
    t = Table(title=f"sweep — {report.wall_seconds:.1f} s on {report.workers} worker(s)")
    for col in ("task", "status", "convergence", "seconds", "folder"):
        t.add_column(col, justify="right" if col == "seconds" else "left")
    for task in report.plan.tasks:
        r = report.results[task.name]
        t.add_row(task.name, r.status, r.verdict, f"{r.seconds:.1f}" if r.seconds else "",
                  str(task.out_dir))
    out.print(t)
    for r in report.failed + report.unconverged:
        err.print(f"[red]{_escape(r.name)}[/]: {_escape(r.message)}", highlight=False)
    if report.summary_path:
        out.print(f"sweep summary written to {report.summary_path}")


@app.command()
def compare(
    results_a: Annotated[Path, typer.Argument(help="Results folder A.")],
    results_b: Annotated[Path, typer.Argument(help="Results folder B.")],
    prob: Annotated[float, typer.Option(help="Interval probability (0-1).")] = 0.9,
    interval: Annotated[str, typer.Option(help="eti or hdi.")] = "eti",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    allow_unconverged: Annotated[bool, typer.Option(
        help="Exit 0 when A or B failed convergence (the output carries the warning "
        "anyway).")] = False,
) -> None:
    """Differences A - B of flow totals on paired draws, with the probability that A > B."""
    from iff.compare import compare_results

    comp = compare_results(results_a, results_b, interval, prob)
    if as_json:
        sys.stdout.write(json.dumps(comp.to_dict(), indent=2) + "\n")
        _compared(comp, allow_unconverged)
        return
    a, b = comp.a, comp.b
    rows = comp.table
    if rows["market"].nunique() == 2:  # one market: its rows repeat the totals
        rows = rows[rows["market"] == "all"]
    t = Table(title=("NOT CONVERGED - " if comp.alerts else "")
              + f"A - B: {a['name']}/{a['scenario'] or 'base'} minus "
                    f"{b['name']}/{b['scenario'] or 'base'}",
              caption=f"USD millions, current prices of each year; median and {comp.prob:.0%} "
                      f"{comp.interval.upper()} interval of the difference over "
                      f"{comp.draws} paired draws; total = inward + outward; P(A>B) = share "
                      "of pairs with A > B; "
                      f"convergence A: {a['convergence']}, B: {b['convergence']}")
    for col in ("country", "year", "market", "flow", "median", "lower", "upper", "P(A>B)"):
        t.add_column(col, justify="left" if col in ("country", "market", "flow") else "right")
    for _, r in rows.iterrows():
        t.add_row(r["country"], str(r["year"]), r["market"],
                  "total" if r["direction"] == "all" else r["direction"],
                  _usd(r["median"]), _usd(r["lower"]), _usd(r["upper"]),
                  f"{r['p_a_gt_b']:.3f}")
    out.print(t)
    for note in comp.notes:
        err.print("[yellow]note:[/] " + _escape(note), highlight=False)
    _compared(comp, allow_unconverged)


def _compared(comp, allow_unconverged: bool) -> None:
    """Warn of unconverged sides; exit 3 unless ``--allow-unconverged``."""
    for alert in comp.alerts:
        err.print("[yellow]warning:[/] " + _escape(alert.removeprefix("WARNING: ")),
                  highlight=False)
    if comp.alerts and not allow_unconverged:
        _fail("a compared result did not pass the convergence checks: the difference is "
              "unreliable; pass --allow-unconverged to exit 0", EXIT_UNCONVERGED)


@app.command()
def markets(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    markdown: Annotated[bool, typer.Option(
        "--markdown", help="Markdown reference (as in docs/markets.md).")] = False,
) -> None:
    """List available markets with their parameters and observation quantities."""
    from iff.docs import market_metadata, markets_reference, structure_text

    if markdown:
        sys.stdout.write(markets_reference())
        return

    data = market_metadata()
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
        for col in ("name", "support", "unit", "dims", "default prior", "structure", "meaning"):
            t.add_column(col, overflow="fold")
        for p in d["parameters"]:
            t.add_row(p["name"], p["support"], p["unit"], ", ".join(p["dims"]),
                      p["default_prior"], structure_text(p), p["meaning"])
        out.print(t)
        if d["partners"]:
            out.print(f"partners (section markets.{name}.partners): {d['partners']}")
        q = Table(title="quantities (observation table: market,quantity,unit)")
        for col in ("quantity", "unit", "item", "meaning"):
            q.add_column(col, overflow="fold")
        for row in d["quantities"]:
            q.add_row(row["code"], row["unit"], "yes" if row["item"] else "", row["meaning"])
        out.print(q)


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
    if not 0 <= seed <= 2**32 - 1:  # as sampler.seed in configs; numpy refuses negative seeds
        _fail(f"--seed: {seed} must be a whole number from 0 to {2**32 - 1}")
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


def main() -> None:
    """Entry point: run the app, mapping iff errors to exit codes without tracebacks."""
    import warnings

    from iff.errors import ConvergenceWarning

    warnings.filterwarnings("ignore", category=ConvergenceWarning)  # reported with exit 3
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
