"""Run the notebook suite: every step per seed, then the report, rendered to HTML. Papermill
executes each notebook in a Jupyter kernel; the `in-process` engine runs its cells in this process
(`fctlib.suite.inprocess`), for a machine without Jupyter."""

from __future__ import annotations

import importlib.util
import os
import signal
import threading
import time
from pathlib import Path

from fctlib.errors import DataError, UserError
from fctlib.experiment.config import Preset, PresetError, load_preset, resolve_preset_path
from fctlib.experiment.provenance import KERNEL_ENV, git_commit, provenance
from fctlib.experiment.records import STEP_RECORDS
from fctlib.experiment.run_log import RunLog
from fctlib.experiment.store import fingerprint
from fctlib.io import atomic_write, check_output_folder, load_json_if_exists, save_json
from fctlib.paths import ENGINES, REPORT, STEPS, project_root, results_root

NOTEBOOKS_DIR = project_root() / "notebooks"
DONE_FILE = "done.json"  # notebooks/seed<k>/: step -> the commit and preset that completed it
KERNEL_EXIT_WAIT_S = 10  # after Ctrl-C: how long the notebook's thread may take to clean up


class StepFailed(UserError, RuntimeError):
    """A notebook of the suite raised; the message names the cell's error and the notebook."""


def _kernel_manager_class(started: list):
    """An async kernel manager class that appends every manager it starts to `started` and
    starts kernels that log errors only (not ipykernel's warning, on every start, that a local
    kernel talks over TCP), draw no progress bars (an executed notebook would keep one per epoch;
    the runner logs each step) and import the fctlib of the checkout running them: with only the
    environment's, a second checkout's notebooks ran an editable install's code from elsewhere
    and recorded that checkout's commit; it shuts kernels down without interrupting them first."""
    from jupyter_client.manager import AsyncKernelManager

    class TrackedKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kwargs):
            started.append(self)
            kwargs["extra_arguments"] = [*kwargs.get("extra_arguments", []),
                                         "--IPKernelApp.log_level=ERROR"]
            env = {**kwargs.get("env", os.environ), "FCT_PROGRESS": "0"}
            env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(project_root()), env.get("PYTHONPATH")]))
            kwargs["env"] = env
            return await super().start_kernel(**kwargs)

        async def _async_interrupt_kernel(self):
            # jupyter_client interrupts a kernel before shutting it down; a notebook that reached
            # shutdown has finished, and a kernel interrupted while it handles a message logs
            # "KeyboardInterrupt caught in kernel" (seen once in a CI run's step log)
            if not self.shutting_down:
                await super()._async_interrupt_kernel()

    return TrackedKernelManager


def _kill_kernels(started: list) -> None:
    """SIGKILL the process group of every started kernel still running (each has its own)."""
    for manager in started:
        process = getattr(manager.provisioner, "process", None)
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _failed(notebook: str, cell, ename: str, evalue: str, output: Path) -> StepFailed:
    return StepFailed(f"{notebook} failed in cell {cell}: {ename}: {evalue}; the executed "
                      f"notebook {output} holds the traceback; fix the cause and rerun "
                      "(finished steps are reused)")


def execute(notebook: str, output: Path, parameters: dict, engine: str = "papermill") -> float:
    """Execute notebooks/<notebook>.ipynb into `output` with `engine`; return wall seconds."""
    if engine == "in-process":
        from fctlib.suite.inprocess import CellFailed, execute_notebook

        try:
            return execute_notebook(NOTEBOOKS_DIR / f"{notebook}.ipynb", output, parameters,
                                    cwd=NOTEBOOKS_DIR)
        except CellFailed as error:
            raise _failed(notebook, error.cell, error.ename, error.evalue, output) from None
    return _execute_papermill(notebook, output, parameters)


def _execute_papermill(notebook: str, output: Path, parameters: dict) -> float:
    """Execute notebooks/<notebook>.ipynb into `output` with papermill; return wall seconds.

    Papermill runs in a thread, so Ctrl-C reaches this (main) thread at once: the kernel is killed,
    the thread cleans up, and KeyboardInterrupt is raised here.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    output.parent.mkdir(parents=True, exist_ok=True)
    started, kernels, outcome = time.perf_counter(), [], {}

    def work():
        try:
            papermill.execute_notebook(
                str(NOTEBOOKS_DIR / f"{notebook}.ipynb"), str(output), parameters=parameters,
                cwd=str(NOTEBOOKS_DIR), kernel_name="python3", progress_bar=False,
                kernel_manager_class=_kernel_manager_class(kernels))
        except BaseException as err:  # handed to the main thread
            outcome["error"] = err

    thread = threading.Thread(target=work, name=f"papermill {notebook}", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.2)
    except KeyboardInterrupt:
        deadline = time.monotonic() + KERNEL_EXIT_WAIT_S
        _kill_kernels(kernels)
        while thread.is_alive() and time.monotonic() < deadline:
            thread.join(0.2)
            _kill_kernels(kernels)  # again: a kernel may have been starting
        raise
    error = outcome.get("error")
    if isinstance(error, PapermillExecutionError):
        raise _failed(notebook, error.exec_count, error.ename, error.evalue, output) from None
    if error is not None:
        raise error
    return time.perf_counter() - started


def check_data(config: Preset, path: Path) -> None:
    """Load the preset's data set and check its class split, before any notebook runs."""
    from fctlib.data.sources import load_dataset
    from fctlib.data.splits import check_class_split

    try:
        check_class_split(load_dataset(config.data.dataset), config.data.old_classes)
    except DataError as err:
        raise PresetError(f"{path}: {err}") from None


def render_html(executed: Path, html: Path, title: str) -> Path:
    """Render an executed notebook to self-contained HTML with the code hidden, under `title`."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    notebook = nbformat.read(executed, as_version=4)
    notebook.metadata["title"] = title
    body, _ = exporter.from_notebook_node(notebook)
    return atomic_write(html, lambda tmp: tmp.write_text(body))


def step_parameters(path: Path, overrides: dict | None, results: Path,
                    runs_dir: str | Path | None) -> dict:
    """The parameters every step notebook of a run gets, but its seed."""
    return {"preset": str(path), "overrides": overrides or {},
            "results_dir": str(results.resolve()),
            "runs_dir": str(Path(runs_dir).resolve()) if runs_dir else None}


def completion(common: dict) -> dict:
    """What a finished step is stamped with: the commit, the resolved preset's fingerprint and
    the variables set that steer the arithmetic (bfloat16, kernels, compiling)."""
    steering = (*KERNEL_ENV, "FCT_DETERMINISTIC")
    return {"commit": git_commit(),
            "preset": fingerprint(load_preset(common["preset"], common["overrides"] or None)),
            "env": {name: os.environ[name] for name in steering if os.environ.get(name)}}


def done_at_this_commit(step: str, seed: int, common: dict) -> bool:
    """Whether `step` already finished for `seed` into this results folder with this code (a
    clean commit), this preset and these steering variables, its executed notebook and record
    still there: rerunning it would compute the same record."""
    results = Path(common["results_dir"])
    folder = results / "notebooks" / f"seed{seed}"
    stamp = (load_json_if_exists(folder / DONE_FILE) or {}).get(step)
    if not stamp or stamp["commit"].endswith("-dirty") or stamp["commit"] == "unknown":
        return False
    records = [name for name, kind in STEP_RECORDS.items() if kind.NOTEBOOK == step]
    return (stamp == completion(common) and (folder / f"{step}.ipynb").is_file()
            and all((results / "metrics" / f"seed{seed}" / f"{r}.json").is_file()
                    for r in records))


def run_step(step: str, seed: int, common: dict, engine: str = "papermill") -> float:
    """Execute one step notebook for `seed` into results/notebooks/seed<k>/, add its seconds to
    that folder's timings.json and stamp it done (done.json); return the seconds."""
    folder = Path(common["results_dir"]) / "notebooks" / f"seed{seed}"
    seconds = round(execute(step, folder / f"{step}.ipynb", {**common, "seed": seed}, engine), 1)
    timings = load_json_if_exists(folder / "timings.json") or {}
    save_json({**timings, step: seconds}, folder / "timings.json")
    done = load_json_if_exists(folder / DONE_FILE) or {}
    save_json({**done, step: completion(common)}, folder / DONE_FILE)
    return seconds


def run_suite(preset: str, seeds: list[int] | None = None, *, only: list[str] | None = None,
              overrides: dict | None = None, results_dir: str | Path | None = None,
              runs_dir: str | Path | None = None, report: bool = True,
              engine: str = "papermill", rerun: bool = False, log=print) -> Path:
    """Run the steps for each seed, then the report; returns the results folder.

    The preset is validated before any work. A step that finished into this results folder at
    this (clean) commit with this preset is skipped unless `rerun`; the others cache their
    artifacts under runs/, so a rerun after an interruption resumes where it stopped.
    """
    if engine not in ENGINES:
        raise UserError(f"unknown engine {engine!r}; engines are {', '.join(ENGINES)}")
    path = resolve_preset_path(preset)
    config = load_preset(path, overrides)
    seeds = list(seeds) if seeds else config.seeds[:1]
    unknown = sorted(set(only or []) - set(STEPS) - {REPORT})
    if unknown:
        raise ValueError(f"unknown step(s) {unknown}; steps are {STEPS + (REPORT,)}")
    steps = [s for s in STEPS if not only or s in only]
    results = Path(results_dir) if results_dir else results_root(config.name)
    check_output_folder(results, "--results-dir")
    if steps:
        check_data(config, path)
    common = step_parameters(path, overrides, results, runs_dir)
    started = time.perf_counter()
    # the runs that made these records; a run that executes nothing leaves the log alone
    run_log = RunLog(results, provenance(config.name, seeds), STEPS) if steps else None
    for seed in seeds:
        for i, step in enumerate(steps, 1):
            if not rerun and done_at_this_commit(step, seed, common):
                log(f"[{config.name} seed {seed}] {i}/{len(steps)} {step}: done at this commit "
                    "with this preset, skipped (--rerun executes it again)")
                continue
            log(f"[{config.name} seed {seed}] {i}/{len(steps)} {step} ...")
            seconds = run_step(step, seed, common, engine)
            log(f"[{config.name} seed {seed}] {step} done in {seconds:.0f} s")
            run_log.step_done(seed, step, time.perf_counter() - started)
    if report and (not only or REPORT in only):
        log(f"[{config.name}] report ...")
        executed = results / "notebooks" / f"{REPORT}.ipynb"
        execute(REPORT, executed, {k: common[k] for k in ("preset", "overrides", "results_dir")},
                engine)
        if importlib.util.find_spec("nbconvert") is None:
            log(f"[{config.name}] report: {executed} (no report.html: nbconvert is not installed; "
                "`fct reproduce --only 99_report` renders it where Jupyter is)")
        else:
            render_html(executed, results / "report.html", f"fct-suite report: {config.name}")
            log(f"[{config.name}] report: {results / 'report.html'}")
    return results
