"""The GPU check: training throughput against capacity, `embed` and h-fitting rates, then one seed
of the main comparison (notebooks 00-06, BCT sweep included) of a preset through the library.

Everything is written under OUT as it finishes (a timeout leaves what was done): tables/*.csv,
figures.json (rates, step times, metrics), step records under results/, artifacts under runs/,
and PNG charts where matplotlib imports. Needs torch, numpy, pandas, PyYAML, tqdm and Pillow only.
Usage: python benchmarks/gpu_check.py DATA_ROOT OUT [--tiny] [--budget-s 480] [--seed 0]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fctlib import report
from fctlib.experiment.names import Name
from fctlib.experiment.provenance import provenance, provenance_comment
from fctlib.experiment.record_rows import BCTPoint, InfluenceRow, SideInfoSizeRow
from fctlib.experiment.records import (
    BCTRecord,
    DataRecord,
    NewRecord,
    OldRecord,
    SideInfoRecord,
    SideInfoSizeRecord,
    TransformationRecord,
    load_records,
)
from fctlib.io import atomic_write, save_json
from fctlib.methods import bct, bct_diagnostic
from fctlib.methods.fct import TransformationName, fit_error, transformed_gallery
from fctlib.methods.registry import parse_name
from fctlib.methods.side_info import SideInfoName
from fctlib.models.backbones import build_model
from fctlib.suite import ablations
from fctlib.suite.cost import (
    ComparisonWork,
    SplitSizes,
    bct_models,
    main_comparison_work,
    side_info_dims,
)
from fctlib.suite.run import Run
from fctlib.training.compiled import LossStep, compile_mode
from fctlib.training.embed import embed
from fctlib.training.loop import classification_loss, make_optimizer
from fctlib.training.runtime import prepare_model, synchronize, to_device

PRESET = "tiny-imagenet-100-gpu"
GOALS = {"training_share_of_capacity": 0.7, "embed_img_per_s": 20_000,
         "h_items_per_s": 500_000}
# --tiny: the same networks on a few images per class, one epoch each (a CPU can run it)
TINY_OVERRIDES = {
    "data": {"train_per_class": 6, "test_per_class": 2, "tune_fraction": 0.34},
    **{stage: {"training": {"epochs": 1, "batch_size": 32, "warmup_epochs": 0, "num_workers": 0}}
       for stage in ("old", "new", "side_info")},
    "transformation": {"training": {"epochs": 2, "batch_size": 64, "warmup_epochs": 0}},
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
        """Write tables/<name>.csv headed by the provenance (CSV only: tabulate may be absent)."""
        text = provenance_comment(self.info) + table.to_csv(index=False)
        atomic_write(self.out / "tables" / f"{name}.csv", lambda tmp: tmp.write_text(text))

    def step(self, name: str, estimate_s: float, action) -> bool:
        """Run `action()` unless the budget cannot hold its estimate; record its seconds."""
        left = self.budget_s - self.elapsed()
        entry = {"step": name, "estimate_s": round(estimate_s, 1)}
        if estimate_s > left:
            entry.update(status="skipped: over budget", left_s=round(left, 1))
            print(f"[gpu_check] {name}: skipped ({estimate_s:.0f} s estimated, {left:.0f} s left)",
                  flush=True)
            self.figures["steps"].append(entry)
            self.save()
            return False
        began = time.perf_counter()
        action()
        entry.update(status="done", seconds=round(time.perf_counter() - began, 1))
        print(f"[gpu_check] {name}: {entry['seconds']} s (elapsed {self.elapsed():.0f} s)",
              flush=True)
        self.figures["steps"].append(entry)
        self.table(pd.DataFrame(self.figures["steps"]), "steps")
        self.save()
        return True


# -- rates -----------------------------------------------------------------------------------------
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



def history_rate(history: list[dict], per_item: int = 1) -> float:
    """Items/s of a training history (times `per_item`, e.g. 2 views), over the epochs after the
    first when there are several (the first pays for warm-up and autotuning)."""
    epochs = history[1:] if len(history) > 1 else history
    items = sum(e["items_per_s"] * e["seconds"] for e in epochs)
    return per_item * items / sum(e["seconds"] for e in epochs)


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


def step_estimate(work: ComparisonWork, artifacts: list[str], rates: dict) -> float:
    """Seconds a step's artifacts should take at `rates` (train_per_s, embed_per_s,
    h_items_per_s)."""
    parts = ((work.training, "train_per_s"), (work.embedding, "embed_per_s"),
             (work.transformation, "h_items_per_s"))
    return sum(sum(part.get(a, 0) for a in artifacts) / rates[rate] for part, rate in parts)


# -- the main comparison ---------------------------------------------------------------------------
def write_main_tables(check: Check, run: Run) -> None:
    """The report's tables from the step records written so far (torch-free report modules)."""
    records = load_records(run.results_dir)
    long = report.case_rows(records, run.preset.distance)
    if long.empty:
        return
    table = report.main_table(long)
    check.table(table, "main")
    check.table(report.main_by_split_table(long), "main_by_split")
    check.table(report.claims_table(long), "claims")
    check.figures["main"] = table.to_dict(orient="records")
    table = report.at_distance(table, run.preset.distance)
    if {"old/old", "new/new"} <= set(table["case"]):
        check.table(report.gap_closed(table), "gap_closed")
        check.table(report.paper_comparison(table, run.preset.name), "paper_comparison")
    sweep = report.bct_sweep_table(report.sweep_rows(records))
    if len(sweep):
        check.table(sweep, "bct_sweep")
        check.figures["bct_sweep"] = sweep.to_dict(orient="records")
    sizes = report.side_info_size_table(report.side_info_size_rows(records))
    if len(sizes):
        check.table(sizes, "side_info_size")
        check.figures["side_info_size"] = sizes.to_dict(orient="records")
    check.save()


def main_comparison(check: Check, run: Run, rates: dict, work: ComparisonWork) -> None:
    """Notebooks 00-06 of one seed through Run, recording each step as its notebook does."""
    dim = run.preset.side_info.model.embedding_dim
    histories = check.figures.setdefault("histories", {})
    trained_rates = check.figures.setdefault("training_img_per_s", {})
    artifacts = step_artifacts(run.preset)

    def estimate(step: str) -> float:
        return step_estimate(work, artifacts[step], rates)

    def trained(name: Name, per_item: int = 1):
        model, history = run.trained(name)
        histories[str(name)] = history
        trained_rates[str(name)] = round(history_rate(history, per_item), 1)
        return model, history

    def old():
        _, history = trained("old")
        old_test = run.embeddings("old", "test")
        by_distance = run.evaluate_cases({"old/old": (old_test, old_test)})
        run.save_record(OldRecord(cases=by_distance[run.preset.distance],
                                  by_distance=by_distance, history=history))

    def side_info():
        _, history = trained(SideInfoName(dim), per_item=2)
        side_test = run.embeddings(SideInfoName(dim), "test")
        run.save_record(SideInfoRecord(
            side_info_dim=dim, diagnostic={"side/side": run.evaluate(side_test, side_test)},
            history=history))

    def new():
        _, history = trained("new")
        new_test, old_test = run.embeddings("new", "test"), run.embeddings("old", "test")
        diagnostic = ({"new/old": run.evaluate(new_test, old_test)}
                      if new_test.shape == old_test.shape else {})
        by_distance = run.evaluate_cases({"new/new": (new_test, new_test)})
        run.save_record(NewRecord(cases=by_distance[run.preset.distance],
                                  by_distance=by_distance, diagnostic=diagnostic,
                                  history=history))

    def bct_step():
        for name in bct_models(run.preset):
            trained(name)
        points = bct.variant_points(run)
        variant, weight = bct.choose_from(points, bct.PROTOCOL[0])
        name = bct.BCTName(variant, weight)
        own, old_test = run.embeddings(name, "test"), run.embeddings("old", "test")
        by_distance = run.evaluate_cases({"bct/old": (own, old_test), "bct/bct": (own, own)})
        influence = [InfluenceRow.from_json(r) for r in bct_diagnostic.run_diagnostic(run)]
        run.save_record(BCTRecord(cases=by_distance[run.preset.distance],
                                  by_distance=by_distance, weight=weight, variant=variant,
                                  distance=bct.PROTOCOL[0], history=histories[str(name)],
                                  points=[BCTPoint.from_json(p) for p in points],
                                  influence=influence))

    def transformation():
        names = {"no-side": TransformationName(0), "side": TransformationName(dim)}
        histories = {key: trained(name)[1] for key, name in names.items()}
        new_test = run.embeddings("new", "test")
        by_distance = run.evaluate_cases({f"fct/{key}": (new_test, transformed_gallery(run, name))
                                          for key, name in names.items()})
        errors = {key: {split: fit_error(run, name, split) for split in ("train", "tune")}
                  for key, name in names.items()}
        run.save_record(TransformationRecord(
            cases=by_distance[run.preset.distance], by_distance=by_distance, side_info_dim=dim,
            history=histories, fit_error=errors))

    def side_info_size():
        rows = [SideInfoSizeRow.from_json(r) for r in ablations.side_info_size_rows(run)]
        run.save_record(SideInfoSizeRecord(rows=rows))

    for name, action in (("01_train_old", old), ("02_side_info", side_info),
                         ("03_train_new", new), ("04_bct", bct_step),
                         ("05_transformation", transformation),
                         ("06_side_info_size", side_info_size)):
        if not check.step(name, estimate(name), action):
            break
        if name == "01_train_old" and check.step("embed_rate", 0.0, lambda: check.figures.update(
                embed_img_per_s=round(embed_img_per_s(run, "old", "train"), 1))):
            rates["embed_per_s"] = check.figures["embed_img_per_s"]
        rates.update({k: v for k, v in measure_rates(check).items() if v})
        write_main_tables(check, run)


def measure_rates(check: Check) -> dict:
    """The measured rates against their goals (figures.json, tables/rates.csv); returns the rates
    the remaining steps are estimated at (None where not measured yet)."""
    figures = check.figures
    trained = {parse_name(n): r for n, r in figures.get("training_img_per_s", {}).items()}
    supervised = [r for n, r in trained.items() if n in ("old", "new") or isinstance(
        n, bct.BCTName)]
    fits = [r for n, r in trained.items() if isinstance(n, TransformationName)]
    capacity = figures.get("capacity_img_per_s")
    training = round(float(np.mean(supervised)), 1) if supervised else None
    measured = {"capacity_img_per_s": capacity, "training_img_per_s": training,
                "training_share_of_capacity": round(training / capacity, 3)
                if training and capacity else None,
                "embed_img_per_s": figures.get("embed_img_per_s"),
                "h_items_per_s": round(float(np.mean(fits)), 1) if fits else None}
    figures["rates"] = measured
    check.table(pd.DataFrame(
        [{"figure": name, "measured": value, "goal": GOALS.get(name),
          "meets_goal": None if value is None or name not in GOALS else bool(value >= GOALS[name])}
         for name, value in measured.items()]), "rates")
    check.save()
    return {"train_per_s": training, "embed_per_s": measured["embed_img_per_s"],
            "h_items_per_s": measured["h_items_per_s"]}


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
    parser.add_argument("data_root", help="folder holding the Tiny-ImageNet-100 archives")
    parser.add_argument("out", type=Path, help="folder for tables, figures.json, runs/")
    parser.add_argument("--preset", default=PRESET)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-s", type=float, default=480.0,
                        help="no step starts whose estimate goes past this many seconds")
    parser.add_argument("--tiny", action="store_true",
                        help="a few images per class and one epoch each (runs on a CPU)")
    parser.add_argument("--cache-dir", default=None,
                        help="where the archives are extracted and decoded (default: the preset's)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    args.out.mkdir(parents=True, exist_ok=True)
    dataset = {"root": str(Path(args.data_root).resolve())}
    if args.cache_dir:
        dataset["cache_dir"] = str(Path(args.cache_dir).resolve())
    overrides = {"data": {"dataset": dataset}}
    if args.tiny:
        overrides = {**TINY_OVERRIDES, "data": {**TINY_OVERRIDES["data"], "dataset": dataset}}
    run = Run(args.preset, args.seed, overrides=overrides, runs_dir=args.out / "runs",
              results_dir=args.out / "results")
    if run.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # the same for capacity and for training
    check = Check(args.out, args.budget_s,
                  provenance(run.preset.name, [args.seed], command=" ".join(sys.argv)))
    check.figures.update(preset=run.preset.name, tiny=args.tiny, device=str(run.device),
                         budget_s=args.budget_s, compile_mode=compile_mode(run.device))

    def data():
        s = run.splits
        run.save_record(DataRecord(source=s.bundle.source, old_classes=s.old_classes,
                                   class_names=s.bundle.class_names, splits=s.summary()))
        check.table(pd.DataFrame(s.summary()), "data_splits")

    check.step("00_data", 0.0, data)
    steps, warmup = (3, 1) if args.tiny else (30, 10)
    check.step("capacity", 0.0, lambda: check.figures.update(
        capacity_img_per_s=round(capacity_img_per_s(run, steps, warmup), 1)))
    rates = {"train_per_s": GOALS["training_share_of_capacity"] * check.figures[
        "capacity_img_per_s"], "embed_per_s": GOALS["embed_img_per_s"],
        "h_items_per_s": GOALS["h_items_per_s"]}
    work = main_comparison_work(run.preset, split_sizes(run))
    check.figures["predicted_at_goals_s"] = {
        k: round(v, 1) for k, v in work.seconds(**rates).items()}
    main_comparison(check, run, rates, work)
    check.figures["predicted_at_measured_s"] = {
        k: round(v, 1) for k, v in work.seconds(**rates).items()}
    draw_charts(check)
    check.save()
    print(f"[gpu_check] done in {check.elapsed():.0f} s; tables in {args.out / 'tables'}",
          flush=True)


if __name__ == "__main__":
    main()
