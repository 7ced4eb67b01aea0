"""The GPU check: one seed of a preset's step notebooks (00-11, then the report) executed as
`fct reproduce --engine in-process` executes them, inside a time budget, with the rates they ran
at against their goals: training images/s and model FLOP utilisation, bt2's and SimCLR's rates
beside supervised training's, `embed` and h fitting. Its first step checks compiled training
against eager on the device (`compiled_vs_eager`) and fits h eagerly where they disagree.

Everything is written under OUT as it finishes (a stop at the budget leaves what was done):
results/ as `fct reproduce` writes it (metrics/seed<k>/*.json, notebooks/seed<k>/*.ipynb with
timings.json, last_run.json; tables, figures and 99_report.ipynb from the report), runs/ (the
artifacts: a rerun resumes), tables/*.csv and figures.json (rates, goals, each step's seconds and
how it ended) and PNG charts where matplotlib imports. Needs torch, numpy, pandas, PyYAML, tqdm and
Pillow (matplotlib for figures and the report), no Jupyter. With --side-by-side K, K worker
processes first train the registered artifacts each step uses, side by side on the one GPU (the
rates the check reports are then those of trainings sharing it), and its notebook loads them.
Usage: python benchmarks/gpu_check.py DATA_ROOT OUT [--tiny] [--budget-s 480] [--seed 0]
       [--steps 00_data ...] [--results-from results/tiny-imagenet-100-gpu] [--notebooks-only]
       [--side-by-side K]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import sys
import time
import traceback
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import NamedTuple

import compiled_vs_eager
import gpu_concurrency
import gpu_speed
import numpy as np
import pandas as pd
import torch
from gpu_speed import bf16_peak
from torch.utils.flop_counter import FlopCounterMode

from fctlib import report
from fctlib.data import mnist_digits
from fctlib.data.sources import dataset_cache_dir
from fctlib.experiment.config import resolve_preset_path
from fctlib.experiment.names import Name
from fctlib.experiment.provenance import compute, provenance
from fctlib.experiment.records import STEP_RECORDS, load_records
from fctlib.experiment.run_log import RUN_LOG, RunLog
from fctlib.io import load_json_if_exists, save_json
from fctlib.methods import bct
from fctlib.methods.fct import TransformationName
from fctlib.methods.registry import parse_name
from fctlib.methods.side_info import SideInfoName
from fctlib.models.backbones import build_model
from fctlib.paths import REPORT, STEPS
from fctlib.report.common import write_table
from fctlib.suite.cost import (
    SIMCLR,
    SMALL_BATCH,
    ComparisonWork,
    SplitSizes,
    bct_models,
    main_comparison_work,
    side_info_dims,
)
from fctlib.suite.run import Run
from fctlib.suite.runner import StepFailed, execute, run_step, step_parameters
from fctlib.suite.side_by_side import Workers, unfinished
from fctlib.training.compiled import H_VARIABLE, LossStep, compile_mode
from fctlib.training.embed import embed
from fctlib.training.loop import classification_loss, make_optimizer
from fctlib.training.runtime import (
    autocast,
    gpu_kernels_deterministic,
    prepare_model,
    synchronize,
    to_device,
)

PRESET = "tiny-imagenet-100-gpu"
RECORD_OF = {record.NOTEBOOK: step for step, record in STEP_RECORDS.items()}  # 04_bct -> bct
# issue 25's goals on one H200 or H100: the preset's ResNet-18 training (old and new), bt2's batch
# 128 beside it, SimCLR's images (both views) beside it, h fitting, embedding
GOALS = {"training_img_per_s": 80_000, "bt2_share_of_training": 0.7,
         "simclr_share_of_training": 0.8, "h_items_per_s": 500_000, "embed_img_per_s": 40_000}
# The figures whose rates a step is estimated at until the check has measured its own: one H200's,
# compiled (old's and new's 106k img/s, bt2's 16.7k at batch 128, SimCLR's 45.9k views/s, h's 286k
# items/s, embed 69k, a network's first epoch 10 s longer). The goals' rates estimated 04 at 51 s
# where it took 219 s, so a step that could not finish started and took the budget of those after.
H200_FIGURES = (Path(__file__).resolve().parents[1] / "results" / "benchmarks" / "gpu"
                / "2026-12-04-compiled" / "check" / "figures.json")
# What every step of the preset uses (07-11 and each step's upstream artifacts too) and the
# training of what the cost model does not count: a --tiny check's records scaled to the full
# preset by estimate.py there (per artifact: items of every epoch, at its kind of step's rate)
SEED_WORK = H200_FIGURES.parents[3] / "gpu-seed-estimate-2026-12-06" / "seed_work.json"
GAIN_CASES = gpu_concurrency.CASES  # the kinds of training a side-by-side gain is measured for
# --side-by-side-gain-from: where no case gains this much, no workers start (each loads the data
# and builds its own CUDA context: a smaller gain may not repay them) and steps run one at a time
MIN_GAIN = 1.2
REPORT_ESTIMATE_S = 30.0  # the report notebook reads records and draws; it trains nothing
ENGINE = "in-process"
# --tiny: the same networks on a few images per class, one epoch each (a CPU can run it)
ONE_EPOCH = {"epochs": 1, "batch_size": 32, "warmup_epochs": 0, "num_workers": 0}
H_FIT = {"epochs": 2, "batch_size": 64, "warmup_epochs": 0}
TINY_OVERRIDES = {
    "data": {"train_per_class": 6, "test_per_class": 2, "tune_fraction": 0.34},
    **{stage: {"training": ONE_EPOCH} for stage in ("old", "new", "side_info")},
    "transformation": {"training": H_FIT},
    "methods": {"oca": {"training": ONE_EPOCH}, "bct": {"bt2_training": ONE_EPOCH},
                "fastfill": {"training": H_FIT}, "projection": {"training": H_FIT}},
}


class Check:
    """The check's out folder, its clock and budget, and what it has measured so far."""

    def __init__(self, out: Path, budget_s: float, info: dict):
        self.out, self.budget_s, self.info = out, budget_s, info
        self.started = time.perf_counter()
        self.figures: dict = {"goals": GOALS, "steps": [], "provenance": info}

    def elapsed(self) -> float:
        """Seconds since the check started."""
        return time.perf_counter() - self.started

    def save(self) -> None:
        """Write figures.json (atomically): everything measured so far."""
        self.figures["elapsed_s"] = round(self.elapsed(), 1)
        save_json(self.figures, self.out / "figures.json")

    def table(self, table: pd.DataFrame, name: str) -> None:
        """Write tables/<name>.csv and .md headed by the provenance."""
        write_table(table, self.out / "tables", name, self.info)

    def step(self, name: str, estimate_s: float | None, action) -> bool:
        """Run `action()` unless the budget cannot hold its estimate (None: not estimated, runs
        while any budget is left), stopped when the budget runs out; record its seconds and how
        it ended (done, skipped, stopped at the budget, failed: a failure, a notebook's or a
        measurement's, is named and its traceback logged, not raised)."""
        left = self.budget_s - self.elapsed()
        entry = {"step": name,
                 "estimate_s": None if estimate_s is None else round(estimate_s, 1)}
        if left <= 0 or (estimate_s is not None and estimate_s > left):
            return self.skip(name, f"over budget ({entry['estimate_s']} s estimated, "
                             f"{left:.0f} s left)", entry)
        began = time.perf_counter()
        try:
            with stop_after(left):
                action()
            entry["status"] = "done"
        except BudgetSpent:
            entry["status"] = "stopped at the budget (a rerun resumes from its cached artifacts)"
        except StepFailed as failure:
            entry["status"] = f"failed: {failure}"
        except Exception as failure:  # noqa: BLE001 (a measurement's error: named, the check goes on)
            traceback.print_exc()
            first_line = (str(failure).strip().splitlines() or [""])[0]
            entry["status"] = f"failed: {type(failure).__name__}: {first_line}"
        entry["seconds"] = round(time.perf_counter() - began, 1)
        print(f"[gpu_check] {name}: {entry['status']}, {entry['seconds']} s (elapsed "
              f"{self.elapsed():.0f} s)", flush=True)
        self.figures["steps"].append(entry)
        self.table(pd.DataFrame(self.figures["steps"]), "steps")
        self.save()
        return entry["status"] == "done"


    def skip(self, name: str, why: str, entry: dict | None = None) -> bool:
        """Record a step as not run, and why; returns False."""
        entry = {"step": name, **(entry or {}), "status": f"skipped: {why}"}
        print(f"[gpu_check] {name}: {entry['status']}", flush=True)
        self.figures["steps"].append(entry)
        self.table(pd.DataFrame(self.figures["steps"]), "steps")
        self.save()
        return False


class BudgetSpent(Exception):
    """The check's budget ran out while a step was running."""


@contextlib.contextmanager
def stop_after(seconds: float):
    """Inside, an alarm after `seconds` interrupts the work (as Ctrl-C does: the in-process
    notebook saves what ran) and raises BudgetSpent; a real Ctrl-C stays a KeyboardInterrupt."""
    fired = []

    def alarm(signum, frame):
        fired.append(True)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    except KeyboardInterrupt:
        if fired:
            raise BudgetSpent from None
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def compare_compiled_h(run: Run, tiny: bool, mode: str | None = None) -> dict:
    """`compiled_vs_eager` on the device (in `mode`, default h's compile mode), or the error that
    stopped it, named in one line."""
    try:
        return compiled_vs_eager.compiled_against_eager(run.preset, run.device, tiny=tiny,
                                                        mode=mode)
    except Exception as error:  # noqa: BLE001 (named in figures.json; the check goes on)
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return {"agrees": False, "error": f"{type(error).__name__}: {first_line}"}


def check_compiled_training(check: Check, run: Run, tiny: bool) -> None:
    """h fitted compiled and eagerly through its BatchNorm freeze (`compiled_vs_eager`), into
    figures.json; where the run compiles h and the two disagree, or the comparison fails, every
    later fit of h trains eagerly (FCT_COMPILE_H=0): results must be right before they are fast.
    The networks stay compiled: they never switch BatchNorm's mode while training, and on the H200
    their compiled training matched the eager runs' accuracy where h's broke at that switch.
    Where CUDA graphs were in the comparison that disagreed, it is made again without them
    (torch.compile's default mode), which tells whether the graphs or the compiler are at fault."""
    result = compare_compiled_h(run, tiny)
    check.figures["compiled_vs_eager"] = result
    if "loss" in result:
        losses = pd.DataFrame(result["loss"])
        check.table(losses.set_axis(losses.index + 1).rename_axis("epoch").reset_index(),
                    "compiled_vs_eager")
    if compile_mode(run.device, h_fit=True) and not result["agrees"]:
        os.environ[H_VARIABLE] = "0"
        check.figures["h_compile_mode"] = None
        check.info["compute"] = compute()  # the tables' headers say h trained eagerly
        why = result.get("error") or (
            f"losses {result['max_relative_loss_difference']} apart, BatchNorm statistics "
            f"{max(result['batchnorm_statistics_relative_difference_at_freeze'])}")
        print(f"[gpu_check] compiled and eager h do not agree ({why}): fitting h eagerly from "
              "here on", flush=True)
        if result.get("mode") == "reduce-overhead":
            again = compare_compiled_h(run, tiny, mode="default")
            check.figures["compiled_vs_eager_without_cuda_graphs"] = {
                k: v for k, v in again.items() if k != "loss"}
            verdict = "agree" if again["agrees"] else "do not agree"
            print(f"[gpu_check] without CUDA graphs they {verdict}", flush=True)


# -- rates -----------------------------------------------------------------------------------------
def device_waits(run: Run, tiny: bool) -> dict[str, int | None]:
    """How often one eager step of each of the preset's training losses (and SimCLR's
    augmentation) waits for the GPU (`gpu_speed.device_waits`); None each on a CPU."""
    bundle = run.splits.bundle
    setting = gpu_speed.Setting(run.preset.name, bundle.channels, bundle.image_size,
                                bundle.num_classes, steps=1)
    if tiny:
        setting = replace(setting, **{**gpu_speed.TINY, "steps": 1})
    waits = {case.name: gpu_speed.device_waits(gpu_speed.training_step(case, run.device),
                                               run.device)
             for case in gpu_speed.cases(setting, run.device)}
    views = gpu_speed.simclr_views_step(setting, run.device)
    return {**waits, "SimCLR views (transform only)": gpu_speed.device_waits(views, run.device)}


def capacity_img_per_s(run: Run, steps: int, warmup: int) -> float:
    """Training images/s of the new model's recipe and compile mode on synthetic batches already
    on the device (no data path): the ceiling the real training is held to."""
    spec, cfg, bundle = run.preset.new.model, run.preset.new.training, run.splits.bundle
    model = prepare_model(build_model(spec, bundle.channels, bundle.num_classes), run.device)
    optimizer = make_optimizer(model.parameters(), cfg)
    loss_step = LossStep(classification_loss(cfg.label_smoothing), model, run.device,
                         compile_mode(run.device))
    size = (cfg.batch_size, bundle.channels, bundle.image_size, bundle.image_size)
    batch = to_device((torch.randn(size), torch.randint(0, bundle.num_classes, size[:1])),
                      run.device)

    def sgd_step():
        optimizer.zero_grad(set_to_none=True)
        loss_step(batch).backward()
        optimizer.step()

    model.train()
    for step in range(warmup + steps):
        if step == warmup:
            synchronize(run.device)
            began = time.perf_counter()
        sgd_step()
    synchronize(run.device)
    return steps * cfg.batch_size / (time.perf_counter() - began)



def flop_per_image(run: Run, images: int = 8) -> float:
    """Forward + backward FLOP of one training image of the new model's recipe (torch's
    FlopCounter over one eager step of a few images)."""
    spec, cfg, bundle = run.preset.new.model, run.preset.new.training, run.splits.bundle
    model = prepare_model(build_model(spec, bundle.channels, bundle.num_classes),
                          run.device).train()
    size = (images, bundle.channels, bundle.image_size, bundle.image_size)
    batch = to_device((torch.randn(size), torch.randint(0, bundle.num_classes, size[:1])),
                      run.device)
    counter = FlopCounterMode(display=False)
    with counter:
        with autocast(run.device):
            loss = classification_loss(cfg.label_smoothing)(model, batch)
        loss.backward()
    return counter.get_total_flops() / images


def history_rate(history: list[dict], per_item: int = 1) -> float:
    """Items/s of a training history (times `per_item`, e.g. 2 views): its median epoch after the
    first when there are several. One-off costs stay out of the rate (they count in the step's
    seconds): the first epoch's compilation and autotuning, and the recompilation when h's
    BatchNorm freezes (4 s of h's 13 s on the H200, which made its mean rate 275k items/s where its
    median epoch ran at 418k)."""
    epochs = history[1:] if len(history) > 1 else history
    return per_item * float(np.median([e["items_per_s"] for e in epochs]))


def embed_img_per_s(run: Run, name: Name, split: str) -> float:
    """Images/s of `embed` over a split with a trained encoder (the library's batching)."""
    model, _ = run.trained(name)
    images = run.splits.split(split)
    synchronize(run.device)
    began = time.perf_counter()
    embed(model, images, run.eval_transform(), device=run.device, desc=f"embed rate {split}")
    synchronize(run.device)
    return len(images) / (time.perf_counter() - began)


# -- the cost model -------------------------------------------------------------------------------
def split_sizes(run: Run) -> SplitSizes:
    """The run's split sizes, as the cost model counts them."""
    s = run.splits
    return SplitSizes(old_train=int(np.isin(s.train.labels, s.old_classes).sum()),
                      train=len(s.train), tune=len(s.tune), test=len(s.test))


def step_artifacts(preset) -> dict[str, list[str]]:
    """Per notebook step, the artifacts of main_comparison_work it trains, embeds or fits."""
    dim = preset.side_info.model.embedding_dim
    others = [d for d in side_info_dims(preset) if d != dim]
    names = {"01_train_old": ["old"], "02_side_info": [SideInfoName(dim)], "03_train_new": ["new"],
             "04_bct": [*bct_models(preset), "bct chosen"],  # and the chosen one's test set
             "05_transformation": [TransformationName(0), TransformationName(dim)],
             "06_side_info_size": [*map(SideInfoName, others), *map(TransformationName, others)]}
    return {step: [str(name) for name in step_names] for step, step_names in names.items()}


class SeedWork(NamedTuple):
    """A seed's work (ComparisonWork) and, per step, the artifacts it uses."""

    work: ComparisonWork
    uses: dict[str, list[str]]
    made_from: str | None  # SEED_WORK's provenance where its work was added
    listed: dict[str, list[str]]  # per step, what SEED_WORK lists, where made for the preset


def seed_work(preset, sizes: SplitSizes) -> SeedWork:
    """A seed's work and what each step uses. The cost model counts 01-06's own artifacts from
    the preset (main_comparison_work, step_artifacts); SEED_WORK, where it was made for this
    preset and training split (not for a --tiny run: a few images, one epoch each), adds what
    each step's record named (07-11's artifacts, and each step's upstream ones) and the
    training of those the cost model does not count."""
    work, uses = main_comparison_work(preset, sizes), step_artifacts(preset)
    made = load_json_if_exists(SEED_WORK) or {}
    if made.get("preset") != preset.name:
        return SeedWork(work, uses, None, {})
    if made["train_images"] != sizes.train:
        return SeedWork(work, uses, None, made["steps"])
    counted = {*work.training, *work.transformation}

    def added(part: str) -> dict:
        return {n: v for n, v in made[part].items() if n not in counted}

    work = ComparisonWork({**work.training, **added("training")}, work.embedding,
                          {**work.transformation, **added("transformation")},
                          {**work.kinds, **added("kinds")})
    uses = {step: list(dict.fromkeys([*uses.get(step, []), *made["steps"].get(step, [])]))
            for step in STEPS if step in uses or step in made["steps"]}
    return SeedWork(work, uses, made["made_from"], made["steps"])


CHOOSING_BCT = ("09_methods", "10_multistep", "11_cross_dataset")  # bct.choose: 04's record


def step_uses(seed: SeedWork, run: Run, step: str) -> list[str]:
    """What a step uses (`seed.uses`: what a --tiny check's records named, where 04's record
    served 09-11's choice of BCT) and, for a step that chooses BCT (CHOOSING_BCT) where this
    seed's 04 record is absent or not read (`bct.recorded_points`, which warns why), BCT's
    sweep, which the step then trains to choose from."""
    uses = seed.uses.get(step, [])
    if step in CHOOSING_BCT and bct.recorded_points(run) is None:
        uses = list(dict.fromkeys([*uses, *map(str, bct_models(run.preset))]))
    return uses


def step_seconds(seed: SeedWork, run: Run, step: str, rates: dict,
                 gains: dict[str, float] | None = None) -> float | None:
    """A step's estimate (None: not estimated): what the run does not hold yet of what it uses
    (`step_uses`, `todo_seconds`)."""
    if step not in seed.uses:
        return None
    return todo_seconds(seed.work, unfinished(run, step_uses(seed, run, step)), rates, gains)


def todo_seconds(work: ComparisonWork, todo: dict[str, set[str] | None], rates: dict,
                 gains: dict[str, float] | None = None) -> float:
    """Seconds of what a step still has to make (`unfinished`'s answer) at `rates`; with `gains`
    (per gpu_concurrency case, `every_case`) its registered artifacts trained side by side
    (`side_by_side_seconds`), the notebook's own one at a time."""
    if not gains:
        return step_estimate(work, list(todo), rates)
    registered = {name: upstream for name, upstream in todo.items() if upstream is not None}
    own = [name for name, upstream in todo.items() if upstream is None]
    return side_by_side_seconds(work, registered, rates, gains) + step_estimate(work, own, rates)


def plan_step(seed: SeedWork, run: Run, step: str, rates: dict,
              gains: dict[str, float] | None = None) -> tuple[float | None, bool]:
    """A step's estimate, and whether its registered artifacts train side by side (with `gains`):
    unless that is estimated longer than one at a time (a gain below 1: trainings sharing the GPU
    slow each other down more than they fill its idle time)."""
    if step not in seed.uses:
        return None, bool(gains)
    todo = unfinished(run, step_uses(seed, run, step))
    alone = todo_seconds(seed.work, todo, rates)
    if not gains:
        return alone, False
    shared = todo_seconds(seed.work, todo, rates, gains)
    return (alone, False) if shared > alone else (shared, True)


def side_by_side_seconds(work: ComparisonWork, todo: dict[str, set[str]], rates: dict,
                         gains: dict[str, float]) -> float:
    """Seconds of artifacts trained side by side (`todo`: name -> the upstream names among them):
    their trainings (with compilation) take the sum of each one's time alone over its case's gain
    (the aggregate gpu_concurrency.py measured), and no less than the longest chain of an artifact
    after those it is trained against, each at its time alone; their embedding (the notebook's)
    one at a time."""
    alone = {name: work.part([name]).seconds(**rates) for name in todo}
    training = {name: parts["total"] - parts["embedding"] for name, parts in alone.items()}
    chains: dict[str, float] = {}

    def chain(name: str) -> float:
        if name not in chains:
            chains[name] = training[name] + max(map(chain, todo[name]), default=0.0)
        return chains[name]

    shared = sum(training[name] / gains[gain_case(work, name)] for name in todo)
    return (max(shared, max(map(chain, todo), default=0.0))
            + sum(parts["embedding"] for parts in alone.values()))


def gain_case(work: ComparisonWork, name: str) -> str:
    """The gpu_concurrency case whose gain an artifact's training takes."""
    if name in work.transformation:
        return "h"
    return {SMALL_BATCH: "bt2", SIMCLR: "simclr"}.get(work.kinds.get(name), "supervised")


def every_case(named: dict[str, float]) -> dict[str, float]:
    """A gain for every gpu_concurrency case: those named, the others the smallest named."""
    return {case: named.get(case, min(named.values())) for case in GAIN_CASES}


def gains_of(values: list[str]) -> dict[str, float]:
    """--side-by-side-gain's values (one gain for every case, or CASE=G pairs) per case."""
    if len(values) == 1 and "=" not in values[0]:
        values = [f"{case}={values[0]}" for case in GAIN_CASES]
    named = {}
    for value in values:
        case, _, gain = value.partition("=")
        if case not in GAIN_CASES:
            raise ValueError(f"{value!r}: give one gain, or CASE=G with CASE one of "
                             f"{', '.join(GAIN_CASES)}")
        try:
            named[case] = float(gain)
        except ValueError:
            raise ValueError(f"{value!r}: {gain!r} is not a number") from None
    if min(named.values()) <= 0:
        raise ValueError("a gain is above 0 (gpu_concurrency.py's aggregate_over_one)")
    return every_case(named)


def gains_from(path: Path, processes: int) -> dict[str, float]:
    """The gains gpu_concurrency.py measured (its concurrency.json) at `processes` processes."""
    try:
        rows = json.loads(path.read_text())["rows"]
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{path}: not gpu_concurrency.py's concurrency.json ({err})") from None
    named = {row["case"]: row["aggregate_over_one"] for row in rows
             if row.get("processes") == processes and row.get("aggregate_over_one")}
    if not named:
        raise ValueError(f"{path} holds no gain at {processes} processes; measure them "
                         f"(gpu_concurrency.py --processes 1 {processes}) or give "
                         f"--side-by-side {processes} another count it measured")
    return every_case(named)


def step_estimate(work: ComparisonWork, artifacts: list[str], rates: dict) -> float:
    """Seconds a step's artifacts should take at `rates` (ComparisonWork.seconds' arguments)."""
    return work.part(artifacts).seconds(**rates)["total"]


def goal_rates() -> dict:
    """Issue 25's goals as ComparisonWork.seconds' rates (bt2's and SimCLR's as their shares)."""
    train = GOALS["training_img_per_s"]
    return {"train_per_s": train, "embed_per_s": GOALS["embed_img_per_s"],
            "h_items_per_s": GOALS["h_items_per_s"],
            "small_batch_per_s": GOALS["bt2_share_of_training"] * train,
            "simclr_per_s": GOALS["simclr_share_of_training"] * train}


def prior_rates(device: torch.device, capacity: float | None = None) -> dict:
    """The rates steps are estimated at before the check measures its own: the H200's
    (H200_FIGURES) where training compiles, else (eager, a CPU) the same without compilation; on
    a GPU whose training capacity (`capacity_img_per_s`) the check measured below the H200's,
    scaled down by it, never up (a step cut at the budget loses its work, one skipped only its
    turn)."""
    figures = json.loads(H200_FIGURES.read_text())
    _, rates = measured_rates(figures)
    scale = 1.0
    if capacity and device.type == "cuda":
        scale = min(1.0, capacity / figures["capacity_img_per_s"])
    return {**{name: rate * scale for name, rate in rates.items()},
            "compile_s": rates["compile_s"] if compile_mode(device) else 0.0}


# -- the notebooks -------------------------------------------------------------------------------
def write_main_tables(check: Check, run: Run) -> None:
    """The report's main tables from the step records written so far (torch-free report
    modules), so a check stopped early still shows its comparison; and which models this seed's
    records name in different trainings (`models_trained_apart`: a model trained again here,
    beside records of an earlier session's training of it placed by --results-from)."""
    records = load_records(run.results_dir)
    apart = report.models_trained_apart(records)
    if apart != check.figures.get("models_trained_apart", ""):
        print(f"[gpu_check] models trained apart (different weights in one seed's records): "
              f"{apart or 'none'}", flush=True)
    check.figures["models_trained_apart"] = apart
    long = report.case_rows(records, run.preset.distance)
    if long.empty:
        return
    table = report.main_table(long)
    check.table(table, "main")
    check.table(report.claims_table(long), "claims")
    check.figures["main"] = table.to_dict(orient="records")
    sizes = report.side_info_size_table(report.side_info_size_rows(records))
    if len(sizes):
        check.figures["side_info_size"] = sizes.to_dict(orient="records")
    check.save()


def note_training_rates(check: Check, run: Run, artifacts: list[str]) -> None:
    """Each finished artifact's training rate from its saved history (SimCLR counts both
    views)."""
    for name in artifacts:
        if name == "bct chosen":
            continue
        artifact = run.artifact(name)
        if not run.store.finished(artifact):
            continue
        history = json.loads((run.store.folder(artifact) / "history.json").read_text())
        per_item = 2 if isinstance(parse_name(name), SideInfoName) else 1
        check.figures.setdefault("histories", {})[name] = history
        check.figures.setdefault("training_img_per_s", {})[name] = round(
            history_rate(history, per_item), 1)


def run_notebooks(check: Check, run: Run, common: dict, steps: list[str], rates: dict,
                  seed: SeedWork, workers: Workers | None = None,
                  gains: dict[str, float] | None = None) -> None:
    """The step notebooks of one seed as `fct reproduce --engine in-process` runs them (the same
    records, executed copies, timings and run log under OUT/results), then the report notebook.
    A step with a cost estimate (01-06; 07-11 too where SEED_WORK was made for the preset)
    starts only when the budget holds what it has to make (`side_by_side.unfinished`); every
    step is stopped when the budget runs out; a failing step is named and the next one runs.
    The run log (last_run.json) names the steps that ran to their end; records placed under
    OUT/results before the check keep naming the runs that made them. With `workers`, a step's
    registered artifacts are first trained side by side (`train_then_run`) unless that is
    estimated longer (`plan_step`: their training over `gains`), at rates the histories no longer
    update (theirs are those of trainings sharing the GPU)."""
    artifacts = step_artifacts(run.preset)
    run_log = RunLog(run.results_dir, check.info, STEPS)  # last_run.json, as `fct reproduce`'s
    for step in steps:
        estimate, together = plan_step(seed, run, step, rates, gains if workers else None)
        action = partial(run_step, step, run.seed, common, ENGINE)
        if together:  # the lists hold 07-11's artifacts in a --tiny run too
            names = list(dict.fromkeys([*step_uses(seed, run, step),
                                        *seed.listed.get(step, [])]))
            action = partial(train_then_run, check, workers, run, step, names, action)
        elif workers:
            check.figures["side_by_side"]["steps"][step] = {
                "one_at_a_time": "estimated longer side by side"}
        if check.step(step, estimate, action):
            run_log.step_done(run.seed, step, check.elapsed())
            if seed.listed:
                note_unlisted(check, run, step, seed.listed.get(step, []))
        note_training_rates(check, run, artifacts.get(step, []))
        if step == "01_train_old" and run.store.finished(run.artifact("old")):
            check.step("embed_rate", 0.0, lambda: check.figures.update(
                embed_img_per_s=round(embed_img_per_s(run, "old", "train"), 1)))
        measured = measure_rates(check)
        if not workers:
            rates.update({k: v for k, v in measured.items() if v is not None})
        write_main_tables(check, run)
    report_parameters = {k: common[k] for k in ("preset", "overrides", "results_dir")}
    check.step(REPORT, REPORT_ESTIMATE_S, lambda: execute(
        REPORT, run.results_dir / "notebooks" / f"{REPORT}.ipynb", report_parameters, ENGINE))


def train_then_run(check: Check, workers: Workers, run: Run, step: str, names: list[str],
                   run_notebook) -> None:
    """A step's registered artifacts trained side by side by `workers`, then its notebook (which
    loads them); what was trained, failed or not started, and in how many seconds, kept in
    `figures.json`'s `side_by_side` (`steps`)."""
    began = time.perf_counter()
    result = workers.train(run, names)
    check.figures["side_by_side"]["steps"][step] = {
        **asdict(result), "seconds": round(time.perf_counter() - began, 1)}
    check.save()
    run_notebook()


def note_unlisted(check: Check, run: Run, step: str, listed: list[str]) -> None:
    """Name the artifacts a finished step's record used that SEED_WORK does not list for it
    (`figures.json`'s `not_in_seed_work`): the notebook changed since; remake the file."""
    record = run.seed_record(RECORD_OF[step])
    missed = sorted(set(record.artifacts if record else ()) - set(listed))
    if missed:
        print(f"[gpu_check] {step} used artifacts {SEED_WORK.name} does not list: "
              f"{', '.join(missed)} (remake it with estimate.py)", flush=True)
        check.figures.setdefault("not_in_seed_work", {})[step] = missed


def measured_rates(figures: dict) -> tuple[dict, dict]:
    """The rates a check's figures hold against their goals (None where not measured yet), and
    the same as the rates steps are estimated at (ComparisonWork.seconds' arguments)."""
    trained = {parse_name(n): r for n, r in figures.get("training_img_per_s", {}).items()}

    def mean(rates: list[float]) -> float | None:
        return round(float(np.mean(rates)), 1) if rates else None

    def share(part: float | None, whole: float | None) -> float | None:
        return round(part / whole, 3) if part and whole else None

    training = mean([r for n, r in trained.items() if n in ("old", "new")])
    first_epochs = [max(0.0, h[0]["seconds"] - float(np.median([e["seconds"] for e in h[1:]])))
                    for h in figures.get("histories", {}).values() if len(h) > 1]
    bt2 = mean([r for n, r in trained.items() if isinstance(n, bct.BCTName)
                and n.variant == "bt2"])
    simclr = mean([r for n, r in trained.items() if isinstance(n, SideInfoName)])
    capacity, gflop = figures.get("capacity_img_per_s"), figures.get("gflop_per_image")
    peak = bf16_peak(figures["provenance"]["compute"].get("gpu", ""))
    measured = {"capacity_img_per_s": capacity, "training_img_per_s": training,
                "training_share_of_capacity": share(training, capacity),
                "model_flop_utilisation": share(training * gflop * 1e9, peak)
                if training and gflop else None,
                "bt2_share_of_training": share(bt2, training),
                "simclr_share_of_training": share(simclr, training),
                "embed_img_per_s": figures.get("embed_img_per_s"),
                "h_items_per_s": mean([r for n, r in trained.items()
                                       if isinstance(n, TransformationName)]),
                "first_epoch_extra_s": mean(first_epochs)}
    return measured, {"train_per_s": training, "embed_per_s": measured["embed_img_per_s"],
                      "h_items_per_s": measured["h_items_per_s"], "small_batch_per_s": bt2,
                      "simclr_per_s": simclr, "compile_s": measured["first_epoch_extra_s"]}


def measure_rates(check: Check) -> dict:
    """The measured rates against their goals (figures.json, tables/rates.csv); returns the rates
    the remaining steps are estimated at (None where not measured yet)."""
    measured, rates = measured_rates(check.figures)
    check.figures["rates"] = measured
    check.table(pd.DataFrame(
        [{"figure": name, "measured": value, "goal": GOALS.get(name),
          "meets_goal": None if value is None or name not in GOALS else bool(value >= GOALS[name])}
         for name, value in measured.items()]), "rates")
    check.save()
    return rates


def draw_charts(check: Check) -> None:
    """PNG charts of the main table, the side-info sizes and the training curves, where
    matplotlib imports (absent on a bare CUDA machine: the CSV and JSON hold the same numbers)."""
    if importlib.util.find_spec("matplotlib") is None:
        check.figures["charts"] = "matplotlib absent: no PNG"
        return
    from fctlib.report import figures

    folder = check.out / "figures"
    if "main" in check.figures:
        figures.save_figure(figures.plot_cases(pd.DataFrame(check.figures["main"])),
                            folder / "main.png")
    if "side_info_size" in check.figures:
        table = pd.DataFrame(check.figures["side_info_size"])
        figures.save_figure(figures.plot_side_info_size(table), folder / "side_info_size.png")
    if check.figures.get("histories"):
        figures.save_figure(figures.plot_histories(check.figures["histories"]),
                            folder / "histories.png")
    check.figures["charts"] = sorted(p.name for p in folder.glob("*.png"))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_root", help="folder holding the Tiny-ImageNet-100 archives (and "
                        f"{mnist_digits.TARBALL}, the other data set of notebooks 08 and 11)")
    parser.add_argument("out", type=Path, help="folder for tables, figures.json, results/, runs/")
    add_run_arguments(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS),
                        help="the step notebooks to run (default: all; the report follows)")
    parser.add_argument("--budget-s", type=float, default=540.0,
                        help="no step starts whose estimate goes past this many seconds, and the "
                             "one running then is stopped")
    parser.add_argument("--side-by-side", type=int, default=1, metavar="K",
                        help="train each step's artifacts first in K processes side by side "
                             "(1: each in its notebook, one at a time)")
    gain = parser.add_mutually_exclusive_group()
    gain.add_argument("--side-by-side-gain", nargs="+", default=["1"], metavar="G",
                      help="with --side-by-side K: how many times one training's rate K "
                           "trainings side by side reach together (gpu_concurrency.py's "
                           "aggregate_over_one), one gain for every kind of training or CASE=G "
                           f"pairs ({', '.join(GAIN_CASES)}; a case not named takes the "
                           "smallest named), which the steps' estimates divide their trainings by")
    gain.add_argument("--side-by-side-gain-from", type=Path, default=None, metavar="JSON",
                      help="the gains gpu_concurrency.py measured at K processes (its "
                           "concurrency.json); where none reaches "
                           f"{MIN_GAIN}, steps run one at a time")
    parser.add_argument("--notebooks-only", action="store_true",
                        help="skip the training capacity on synthetic batches (33 s on the H200) "
                             "and the count of device waits: they measure the code path, not the "
                             "seed, so a later seed's session spends that time on notebooks")
    parser.add_argument("--results-from", type=Path, default=None,
                        help="a results folder of this preset (the committed one: results/"
                             f"{PRESET}) that OUT/results starts from, so OUT/results is that "
                             "folder with this seed's records added and every run named in its "
                             "last_run.json")
    args = parser.parse_args(argv)
    if args.side_by_side < 1:
        parser.error("--side-by-side takes 1 or more processes")
    try:
        args.gains = (gains_from(args.side_by_side_gain_from, args.side_by_side)
                      if args.side_by_side_gain_from else gains_of(args.side_by_side_gain))
    except ValueError as err:
        parser.error(f"side-by-side gain: {err}")
    if args.results_from and not (args.results_from / "metrics").is_dir():
        parser.error(f"--results-from {args.results_from}: no metrics/ folder there; give a "
                     f"results folder `fct reproduce` or this check wrote (results/{PRESET})")
    return args


def side_by_side_plan(args: argparse.Namespace) -> dict:
    """figures.json's `side_by_side`: the workers, the gains and the file they were read from;
    one worker and why where measured gains of which none reaches MIN_GAIN decline it."""
    measured = args.side_by_side_gain_from
    plan = {"workers": args.side_by_side, "gains": args.gains,
            "gains_from": str(measured) if measured else None, "steps": {}}
    if measured and max(args.gains.values()) < MIN_GAIN:
        plan.update(workers=1, declined=f"no measured gain reaches {MIN_GAIN}: one at a time")
    return plan


def start_results(results_from: Path | None, results: Path, preset: str) -> None:
    """OUT/results as a copy of `results_from` (nothing when not given, or when OUT/results
    exists already: a rerun resumes into it); records of another preset are refused."""
    if not results_from or results.exists():
        return
    made_by = (load_json_if_exists(results_from / RUN_LOG) or {}).get("preset", preset)
    if made_by != preset:
        sys.exit(f"gpu_check: --results-from {results_from} holds records of preset {made_by}, "
                 f"not {preset}: give that preset's results folder (results/{preset})")
    shutil.copytree(results_from, results)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that make a check's run (`run_overrides`): --preset, --tiny, --cache-dir."""
    parser.add_argument("--preset", default=PRESET)
    parser.add_argument("--tiny", action="store_true",
                        help="a few images per class and one epoch each (runs on a CPU)")
    parser.add_argument("--cache-dir", default=None,
                        help="where the archives are extracted and decoded (default: the preset's)")


def run_overrides(data_root: Path, cache_dir: str | None, tiny: bool) -> dict:
    """The preset overrides of a check's run: the data read from DATA_ROOT (decoded into
    `cache_dir` where given), and with --tiny a few images per class and one epoch each."""
    dataset = {"root": str(data_root)}
    if cache_dir:
        dataset["cache_dir"] = str(Path(cache_dir).resolve())
    if tiny:
        return {**TINY_OVERRIDES, "data": {**TINY_OVERRIDES["data"], "dataset": dataset}}
    return {"data": {"dataset": dataset}}


def place_other_data(data_root: Path, run: Run) -> None:
    """Copy the MNIST tarball carried in DATA_ROOT to where the preset's data cache looks for it
    (a GPU machine cannot download it); its digest is checked when it is read."""
    tarball = data_root / mnist_digits.TARBALL
    if tarball.is_file():
        folder = dataset_cache_dir(run.preset.data.dataset) / "mnist"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tarball, folder / mnist_digits.TARBALL)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    data_root = Path(args.data_root).resolve()
    overrides = run_overrides(data_root, args.cache_dir, args.tiny)
    run = Run(args.preset, args.seed, overrides=overrides, runs_dir=args.out / "runs",
              results_dir=args.out / "results")
    place_other_data(data_root, run)
    start_results(args.results_from, run.results_dir, run.preset.name)
    command = " ".join(["python", __file__, *argv])  # made portable by provenance()
    check = Check(args.out, args.budget_s, provenance(run.preset.name, [args.seed], command))
    check.figures.update(preset=run.preset.name, tiny=args.tiny, device=str(run.device),
                         budget_s=args.budget_s, compile_mode=compile_mode(run.device),
                         h_compile_mode=compile_mode(run.device, h_fit=True),
                         gpu_kernels="deterministic" if gpu_kernels_deterministic()
                         else "autotuned")
    check.step("compiled_vs_eager", 0.0, lambda: check_compiled_training(check, run, args.tiny))
    check.step("flop_per_image", 0.0, lambda: check.figures.update(
        gflop_per_image=round(flop_per_image(run) / 1e9, 4)))
    if args.notebooks_only:
        for name in ("capacity", "device_waits"):
            check.skip(name, "--notebooks-only (they measure the code path, not the seed)")
    else:
        steps, warmup = (3, 1) if args.tiny else (30, 10)
        check.step("capacity", 0.0, lambda: check.figures.update(
            capacity_img_per_s=round(capacity_img_per_s(run, steps, warmup), 1)))
        check.step("device_waits", 0.0, lambda: check.figures.update(
            device_waits_per_step=device_waits(run, args.tiny)))
    seed = seed_work(run.preset, split_sizes(run))
    check.figures["estimated_from"] = seed.made_from or "the cost model (01-06)"
    check.figures["predicted_at_goals_s"] = {
        k: round(v, 1) for k, v in seed.work.seconds(**goal_rates()).items()}
    rates = prior_rates(run.device, check.figures.get("capacity_img_per_s"))
    check.figures["prior_rates"] = {name: round(rate, 1) for name, rate in rates.items()}
    common = step_parameters(resolve_preset_path(args.preset), overrides, run.results_dir,
                             args.out / "runs")
    side_by_side = contextlib.nullcontext()
    if args.side_by_side > 1:
        plan = check.figures["side_by_side"] = side_by_side_plan(args)
        if plan["workers"] > 1:  # workers holding this run's preset, seed, overrides, folders
            side_by_side = Workers({"preset": args.preset, "seed": args.seed,
                                    "overrides": overrides, "runs_dir": args.out / "runs",
                                    "results_dir": run.results_dir}, plan["workers"])
        else:
            print(f"[gpu_check] side by side declined: {plan['declined']}", flush=True)
    with side_by_side as workers:
        run_notebooks(check, run, common, args.steps, rates, seed, workers,
                      args.gains if workers else None)
    check.figures["predicted_at_measured_s"] = {
        k: round(v, 1) for k, v in seed.work.seconds(**rates).items()}
    draw_charts(check)
    check.save()
    print(f"[gpu_check] done in {check.elapsed():.0f} s; records and notebooks in "
          f"{run.results_dir}, tables in {args.out / 'tables'}", flush=True)


if __name__ == "__main__":
    main()
