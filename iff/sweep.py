"""Scenario sweeps: every scenario (x country group) of a config as an independent task on Dask.

``iff sweep CONFIG`` plans one task per selected scenario -- the base config counts as scenario
``base`` -- and, when the config has ``sweep.groups``, per country group (the config's
``countries`` replaced by the group's). Then:

1. **Validate everything first.** Every task's config and data go through the same checks as
   ``iff run`` (:func:`iff.engine.prepare`); any problem in any task stops the sweep with exit 2
   before anything is written or sampled.
2. **Skip finished tasks.** A task is finished when its folder ``<sweep_dir>/<task>/`` loads with
   its hash checks and records the same resolved config and input-file hashes as the task would
   now. A folder that loads but no longer matches (config or data changed) or does not load is
   *stale*: the sweep refuses to start, naming it, unless ``force`` is given (it is then rerun
   and replaced). Results folders are written atomically by :func:`iff.results.write_results`,
   so a killed sweep leaves only hidden temporary folders, removed by the next sweep.
3. **Run the rest on dask.distributed**: a ``LocalCluster`` of single-threaded worker processes
   by default, or an existing scheduler. Each task samples its chains one after another
   (``sampler.cores`` is set to 1 and recorded so in its resolved config): parallelism is across
   tasks, one per worker. One task failing (an exception, a lost worker, an unconverged run) does
   not stop the others; every outcome is reported at the end.
4. **Collect** ``sweep_summary.csv``: each finished task's ``summary.csv`` rows (the same
   columns, unit, interval and convergence verdict) with ``scenario`` (and ``group``) in front,
   plus ``sweep.json`` with the status of every task.

A sweep holds a lock file in its folder while it runs, so two sweeps never write to one folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import shutil
import time
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from iff import compile_helper
from iff.config import LoadedConfig, load_config, run_config_model
from iff.errors import IffInputError, InputProblem, ResultsError, did_you_mean
from iff.results import load_tree, sha256_bytes, write_summary_csv

#: Scenario name of the base config (no overlay) in a sweep.
BASE = "base"
SUMMARY_NAME = "sweep_summary.csv"
STATUS_NAME = "sweep.json"
LOCK_NAME = ".sweep.lock"

TaskStatus = Literal["ok", "unconverged", "failed", "skipped"]


@dataclass(frozen=True)
class Task:
    """One independent run of a sweep.

    Attributes
    ----------
    name
        Folder name inside the sweep folder: ``<scenario>`` or ``<scenario>--<group>``.
    scenario
        ``base`` or the name of a scenario of the config.
    group, countries
        The country group and its members, or None when the config has no groups.
    out_dir
        The task's results folder.
    config_sha256, input_sha256
        Hash of the task's resolved config and of each input file (by role), as its results
        record them: a finished folder must match both.
    """

    name: str
    scenario: str
    group: str | None
    countries: tuple[str, ...] | None
    out_dir: Path
    config_sha256: str
    input_sha256: dict[str, str] = field(hash=False, compare=False)


@dataclass(frozen=True)
class FolderState:
    """What is found at a task's folder before the sweep: ``todo``, ``done`` or ``stale``."""

    state: Literal["todo", "done", "stale"]
    reason: str = ""


@dataclass
class SweepPlan:
    """Validated tasks of a sweep and the state of their folders."""

    config_path: Path
    sweep_dir: Path
    tasks: list[Task]
    states: dict[str, FolderState]
    grouped: bool
    force: bool = False

    @property
    def to_run(self) -> list[Task]:
        """Tasks that are not finished (in plan order)."""
        return [t for t in self.tasks if self.states[t.name].state != "done"]


@dataclass
class TaskResult:
    """Outcome of one task."""

    name: str
    status: TaskStatus
    seconds: float = 0.0
    verdict: str = ""
    message: str = ""
    hash_seed: str = ""


@dataclass
class SweepReport:
    """What a sweep did."""

    plan: SweepPlan
    results: dict[str, TaskResult]
    wall_seconds: float
    workers: int
    summary_path: Path | None

    @property
    def failed(self) -> list[TaskResult]:
        return [r for r in self.results.values() if r.status == "failed"]

    @property
    def unconverged(self) -> list[TaskResult]:
        """Tasks whose results failed the convergence checks: run now, or finished by an
        earlier sweep and skipped (their rows in sweep_summary.csv are just as unreliable)."""
        from iff.caveats import SOUND

        return [r for r in self.results.values() if r.status == "unconverged"
                or (r.status == "skipped" and r.verdict not in SOUND)]


# -- planning -----------------------------------------------------------------------------------

def task_config(path: Path, scenario: str, countries: tuple[str, ...] | None) -> LoadedConfig:
    """The loaded config of one task: scenario applied, countries replaced by the group's, and
    ``sampler.cores`` set to 1 (a Dask worker runs one task on one core).

    Raises
    ------
    IffInputError
        If the config or scenario is invalid.
    """
    loaded = load_config(path, None if scenario == BASE else scenario)
    data = loaded.config.model_dump(mode="json")
    if countries is not None:
        data["countries"] = list(countries)
    data["sampler"]["cores"] = 1
    config = run_config_model().model_validate(data)
    return dataclasses.replace(loaded, config=config)


def _input_hashes(loaded: LoadedConfig) -> dict[str, str]:
    """SHA-256 of the task's data files by role. The config file itself is left out: its part
    that shapes the task is the resolved config, hashed separately, so editing one scenario does
    not make the other tasks stale."""
    return {role: sha256_bytes(Path(p).read_bytes()) for role, p in loaded.input_files.items()
            if role != "config"}


def _select(base: LoadedConfig, scenarios: str | None) -> list[str]:
    """Scenario names from ``--scenarios`` (``a,b`` or ``all``; None means all)."""
    file = str(base.path)
    defined = list(base.config.scenarios)
    if BASE in defined:
        raise IffInputError(InputProblem(
            f"scenario name '{BASE}' is reserved for the base config in sweeps; rename it",
            file=file, field=f"scenarios.{BASE}", row=base.lines.get(("scenarios", BASE))))
    if scenarios is None or scenarios.strip() == "all":
        return [BASE, *defined]
    names = [s.strip() for s in scenarios.split(",") if s.strip()]
    problems = []
    # Scenarios are looked up in the config: name it (and its scenarios block) in the message.
    where = {"file": file, "field": "scenarios", "row": base.lines.get(("scenarios",))}
    if not names:
        problems.append(InputProblem("--scenarios: no scenario named (use a,b or all)",
                                     **where))
    for n in names:
        if n not in (BASE, *defined):
            problems.append(InputProblem(
                f"--scenarios: unknown scenario '{n}'{did_you_mean(n, [BASE, *defined])}; "
                f"scenarios: {', '.join([BASE, *defined])} (or all)", **where))
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        problems.append(InputProblem(f"--scenarios: {', '.join(dup)} named twice", **where))
    if problems:
        raise IffInputError(problems)
    return names


def default_sweep_dir(base: LoadedConfig) -> Path:
    """``sweep.dir`` if configured, else ``results/<name>-sweep``."""
    configured = base.config.sweep.dir
    return Path(configured) if configured else Path("results") / f"{base.config.name}-sweep"


def folder_state(task: Task) -> FolderState:
    """Whether a task's folder is absent (todo), finished and current (done), or stale."""
    if not task.out_dir.exists():
        return FolderState("todo")
    try:
        tree = load_tree(task.out_dir, check=True)
    except ResultsError as e:
        return FolderState("stale", f"does not load as results ({e})")
    attrs = tree.attrs
    if attrs.get("config_sha256") != task.config_sha256:
        return FolderState("stale", "its resolved config differs from the task's current one")
    stored = {role: v.get("sha256") for role, v in
              json.loads(attrs.get("input_sha256", "{}")).items() if role != "config"}
    changed = sorted(r for r in set(stored) | set(task.input_sha256)
                     if stored.get(r) != task.input_sha256.get(r))
    if changed:
        return FolderState("stale", f"input file(s) changed since: {', '.join(changed)}")
    return FolderState("done")


def plan_sweep(config: str | Path, scenarios: str | None = None, out: str | Path | None = None,
               force: bool = False) -> SweepPlan:
    """Validate every task of a sweep and find which are finished.

    Parameters
    ----------
    config
        YAML path.
    scenarios
        ``a,b`` (``base`` is the base config) or ``all``/None for the base config and every
        scenario.
    out
        Sweep folder (default :func:`default_sweep_dir`).
    force
        Rerun tasks whose folders are stale, replacing them.

    Raises
    ------
    IffInputError
        Every problem of every task (labelled with the task), before anything is written.
    ResultsError
        Stale task folders exist and ``force`` is False (named in the message).
    """
    base = load_config(config)
    path = Path(config)  # as the user wrote it, for messages; workers get it absolute
    names = _select(base, scenarios)
    groups = base.config.sweep.groups
    problems: list[InputProblem] = []
    for g, members in groups.items():
        outside = [c for c in members if c not in base.config.countries]
        if outside:
            problems.append(InputProblem(
                f"group '{g}': {', '.join(outside)} not among the config's countries "
                f"({', '.join(base.config.countries)})", file=str(config),
                field=f"sweep.groups.{g}", row=base.line_of(f"sweep.groups.{g}")))
    if problems:
        raise IffInputError(problems)
    sweep_dir = Path(out) if out is not None else default_sweep_dir(base)
    sweep_dir = sweep_dir.absolute()

    from iff.engine import prepare

    tasks: list[Task] = []
    seen: dict[str, list[str]] = {}  # problem text -> task names (dedupe across tasks)
    order: list[InputProblem] = []
    for scenario in names:
        for g, members in (groups.items() if groups else [(None, None)]):
            name = scenario if g is None else f"{scenario}--{g}"
            try:
                loaded = task_config(path, scenario, tuple(members) if members else None)
                prepare(loaded)
            except IffInputError as e:
                for p in e.problems:
                    key = str(p)
                    if key not in seen:
                        seen[key] = []
                        order.append(p)
                    seen[key].append(name)
                continue
            tasks.append(Task(
                name=name, scenario=scenario, group=g,
                countries=tuple(members) if members else None, out_dir=sweep_dir / name,
                config_sha256=loaded.config_hash(), input_sha256=_input_hashes(loaded)))
    if order:
        n_tasks = len(names) * max(len(groups), 1)
        labelled = []
        for p in order:
            who = seen[str(p)]
            tag = ("every task" if len(who) == n_tasks and n_tasks > 1
                   else ("task " if len(who) == 1 else "tasks ") + ", ".join(who))
            labelled.append(dataclasses.replace(p, reason=f"{p.reason} [sweep: {tag}]"))
        raise IffInputError(labelled)

    states = {t.name: folder_state(t) for t in tasks}
    stale = [t for t in tasks if states[t.name].state == "stale"]
    if stale and not force:
        lines = "\n".join(f"  - {t.out_dir}: {states[t.name].reason}" for t in stale)
        raise ResultsError(
            f"{len(stale)} task folder(s) of this sweep exist but are not finished results of "
            f"the current config:\n{lines}\nuse --force to rerun those tasks and replace their "
            "folders, or --out to sweep into another folder")
    return SweepPlan(config_path=path.absolute(), sweep_dir=sweep_dir, tasks=tasks, states=states,
                     grouped=bool(groups), force=force)


# -- running ------------------------------------------------------------------------------------

def run_task(config: str, scenario: str, countries: tuple[str, ...] | None, out_dir: str,
             config_sha256: str, force: bool) -> dict[str, Any]:
    """Run one task (inside a Dask worker) and describe its outcome; never raises.

    Returns
    -------
    dict
        ``status`` (ok, unconverged, failed), ``seconds``, ``verdict``, ``message``.
    """
    start = time.perf_counter()
    seed = os.environ.get("PYTHONHASHSEED", "random")
    try:
        from iff.errors import ConvergenceWarning
        from iff.pipeline import run

        loaded = task_config(Path(config), scenario, countries)
        if loaded.config_hash() != config_sha256:
            raise ResultsError("the config changed after the sweep was planned; rerun the sweep")
        with warnings.catch_warnings():  # reported as status 'unconverged' instead
            warnings.simplefilter("ignore", ConvergenceWarning)
            outcome = run(loaded, out=Path(out_dir), force=force, progressbar=False)
        conv = outcome.convergence
        return {"status": "ok" if conv.passed else "unconverged", "verdict": conv.verdict,
                "seconds": time.perf_counter() - start,
                "message": "; ".join(conv.failures) if not conv.passed else "",
                "hash_seed": seed}
    except IffInputError as e:
        message = e.render()
    except ResultsError as e:
        message = str(e)
    except Exception as e:  # any failure of one task is reported, never kills the sweep
        tb = traceback.format_exception(e)
        message = f"{type(e).__name__}: {e}\n" + "".join(tb[-3:])
    return {"status": "failed", "verdict": "", "seconds": time.perf_counter() - start,
            "message": message, "hash_seed": seed}


@contextlib.contextmanager
def _client(workers: int, scheduler: str | None) -> Iterator[Any]:
    """A dask.distributed client: of a new local cluster, or of the scheduler at an address."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="30s")
        except OSError as e:
            raise IffInputError(InputProblem(
                f"--scheduler: cannot reach a Dask scheduler at {scheduler} ({e})")) from None
        with client:
            yield client
        return
    # One single-threaded worker process per task at a time. The scheduler's HTTP server (and
    # dashboard, where bokeh is installed) gets a free local port: the default 8787 warns when
    # another cluster holds it.
    # Dask gives worker processes PYTHONHASHSEED=6640 unless told otherwise; PyTensor compiles
    # differently under another hash seed (so the compile cache would miss and the last digits
    # could differ from `iff run`), so workers get the seed the CLI pins.
    # Several workers already keep the CPUs busy: none starts a compile helper process of its
    # own (iff.compile_helper) beside it.
    env = {"PYTHONHASHSEED": _hash_seed()}
    if workers > 1:
        env[compile_helper.ENV_SWITCH] = "0"
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR, env=env
                      ) as cluster, Client(cluster) as client:
        yield client


def _hash_seed() -> str:
    return os.environ.get("PYTHONHASHSEED") or "0"


@contextlib.contextmanager
def _locked(sweep_dir: Path) -> Iterator[None]:
    """Hold the sweep folder's lock (released by the OS if the process dies)."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with (sweep_dir / LOCK_NAME).open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ResultsError(f"another sweep is writing to {sweep_dir}; wait for it to "
                               "finish") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _remove_leftovers(plan: SweepPlan) -> list[Path]:
    """Remove hidden temporary folders of this sweep's tasks left by a killed sweep."""
    removed = []
    for t in plan.tasks:
        for tmp in plan.sweep_dir.glob(f".{t.name}.tmp-*"):
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink()
            removed.append(tmp)
    for tmp in plan.sweep_dir.glob(f".{SUMMARY_NAME}.tmp-*"):
        tmp.unlink(missing_ok=True)
    return removed


def run_sweep(plan: SweepPlan, workers: int | None = None, scheduler: str | None = None,
              on_start: Callable[[int, int], None] | None = None,
              on_done: Callable[[TaskResult], None] | None = None) -> SweepReport:
    """Run the unfinished tasks of a plan on dask.distributed, then collect the summaries.

    Parameters
    ----------
    plan
        From :func:`plan_sweep`.
    workers
        Local cluster size (default: one per unfinished task, at most the CPU count); ignored
        with ``scheduler``.
    scheduler
        Address of an existing Dask scheduler (e.g. ``tcp://10.0.0.5:8786``). Its workers must
        see the config, its data files and the sweep folder at the same paths.
    on_start, on_done
        Progress callbacks: ``on_start(total, already_done)`` once, ``on_done(result)`` per task.
    """
    start = time.perf_counter()
    results: dict[str, TaskResult] = {
        t.name: _skipped(t) for t in plan.tasks if plan.states[t.name].state == "done"}
    todo = plan.to_run
    n_workers = workers or max(1, min(len(todo), os.cpu_count() or 1))
    if on_start:
        on_start(len(plan.tasks), len(results))
    with _locked(plan.sweep_dir):
        _remove_leftovers(plan)
        if todo:
            with _client(n_workers, scheduler) as client:
                if scheduler:
                    n_workers = len(client.scheduler_info().get("workers", {}))
                results.update(_submit_all(client, plan, todo, on_done))
        summary_path = collect(plan, results)
    wall = time.perf_counter() - start
    _write_status(plan, results, wall, n_workers, scheduler)
    return SweepReport(plan=plan, results=results, wall_seconds=wall, workers=n_workers,
                       summary_path=summary_path)


def _submit_all(client: Any, plan: SweepPlan, todo: list[Task],
                on_done: Callable[[TaskResult], None] | None) -> dict[str, TaskResult]:
    from distributed import as_completed

    futures = {}
    for t in todo:
        fut = client.submit(
            run_task, str(plan.config_path), t.scenario, t.countries, str(t.out_dir),
            t.config_sha256, plan.force and plan.states[t.name].state == "stale",
            key=f"iff-sweep-{t.name}-{uuid.uuid4().hex[:8]}", pure=False, retries=0)
        futures[fut] = t
    out: dict[str, TaskResult] = {}
    for fut in as_completed(list(futures)):
        t = futures[fut]
        try:
            r = fut.result()
            res = TaskResult(t.name, r["status"], r["seconds"], r["verdict"], r["message"],
                             r["hash_seed"])
        except Exception as e:  # a lost worker (KilledWorker), a cancelled future
            res = TaskResult(t.name, "failed", message=f"{type(e).__name__}: {e}")
        out[t.name] = res
        if on_done:
            on_done(res)
    return out


def _skipped(task: Task) -> TaskResult:
    """A finished task's result, with a message when its stored verdict is not sound."""
    from iff.caveats import SOUND

    verdict = _stored_verdict(task)
    message = "" if verdict in SOUND else (
        f"finished by an earlier sweep and skipped: NOT CONVERGED (convergence verdict "
        f"{verdict or 'unreadable'}; see {task.out_dir / 'convergence.json'})")
    return TaskResult(task.name, "skipped", verdict=verdict, message=message)


def _stored_verdict(task: Task) -> str:
    conv = task.out_dir / "convergence.json"
    try:
        return str(json.loads(conv.read_text(encoding="utf-8")).get("verdict", ""))
    except (OSError, ValueError):
        return ""


# -- collecting ---------------------------------------------------------------------------------

def collect(plan: SweepPlan, results: dict[str, TaskResult]) -> Path | None:
    """Write ``sweep_summary.csv``: every finished task's summary rows, in plan order, with
    ``scenario`` (and ``group``) in front. Rows are copied as text, so they equal the tasks'
    ``summary.csv`` rows exactly. Returns None when no task has results."""
    frames = []
    for t in plan.tasks:
        r = results.get(t.name)
        if r is None or r.status == "failed":
            continue
        table = read_summary_text(t.out_dir / "summary.csv")
        lead = {"scenario": t.scenario, **({"group": t.group} if plan.grouped else {})}
        for i, (col, value) in enumerate(lead.items()):
            table.insert(i, col, value)
        frames.append(table)
    target = plan.sweep_dir / SUMMARY_NAME
    if not frames:  # no task has results: an older summary would mislead
        target.unlink(missing_ok=True)
        return None
    write_summary_csv(pd.concat(frames, ignore_index=True), target)
    return target


def read_summary_text(path: Path) -> pd.DataFrame:
    """A summary CSV with every cell as written (text; no NA guessing: 'NAM' is Namibia)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _write_status(plan: SweepPlan, results: dict[str, TaskResult], wall: float, workers: int,
                  scheduler: str | None) -> None:
    status = {
        "config": str(plan.config_path),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(wall, 3),
        "workers": workers,
        "scheduler": scheduler or "local",
        "tasks": [{"task": t.name, "scenario": t.scenario, "group": t.group,
                   "folder": t.out_dir.name, "status": results[t.name].status,
                   "convergence": results[t.name].verdict,
                   "seconds": round(results[t.name].seconds, 3),
                   "message": results[t.name].message,
                   "worker_hash_seed": results[t.name].hash_seed} for t in plan.tasks],
    }
    target = plan.sweep_dir / STATUS_NAME
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(status, indent=2) + "\n", encoding="utf-8")
    tmp.replace(target)
