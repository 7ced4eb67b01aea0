"""Run-to-run variance on a GPU and what deterministic kernels cost (issue 25, item 4).

A preset's old and new models are trained from one seed again and again, each time in a fresh
process, with cuDNN's autotuned kernels (the default) and with deterministic ones
(FCT_DETERMINISTIC=1), beside the spread of seeds: how far two runs of one seed land apart (on
one H200 two eager runs of seed 0 read new/new top-1 36.20 and 35.40), whether the deterministic
kernels make them agree bit for bit, and what they cost.

Each run is a process of its own, as each seed of a check is: cuDNN's autotuner keeps its choices
for the life of a process, and cuBLAS reads its workspace setting once. The runs go in this order,
each started only while the budget holds the longest one so far: seed 0 autotuned (--repeats
times), seed 0 deterministic (--repeats times), then each other seed of --seeds autotuned once.
OUT/variance/trials/ gets one JSON per finished run (a rerun skips those and starts the others
afresh) and OUT/variance/ after each run: runs.csv (one row per run and model) and summary.csv/.md
(per case and metric: the autotuned repeats' values and range, the deterministic repeats' values,
range and whether they are identical, whether each kind's repeats trained the same weights (the
models' digests, which runs.csv lists: a later session's training of seed 0 with the same kernels
can be compared with them), the seeds' std: this run's other seeds or the records of
--seeds-from, and the deterministic kernels' training rate over the autotuned ones').
Usage: python benchmarks/gpu_variance.py DATA_ROOT OUT [--tiny] [--budget-s 360] [--repeats 2]
       [--seeds 0 1 2] [--seeds-from results/tiny-imagenet-100-gpu] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import gpu_check
import numpy as np
import pandas as pd

from fctlib.experiment.provenance import compute, provenance
from fctlib.io import save_json
from fctlib.report.common import write_table
from fctlib.suite.run import Run
from fctlib.training.runtime import gpu_kernels_deterministic

MODELS = ("old", "new")
METRICS = ("top1", "mAP")
KERNELS = {"autotuned": "0", "deterministic": "1"}  # FCT_DETERMINISTIC of each kind of run
COLUMNS = ["run", "kernels", "seed", "repeat", "case", *METRICS, "img_per_s", "train_s", "weights"]


@dataclass(frozen=True)
class Trial:
    """One run: its kernels, its seed and which repeat of that seed it is."""

    kernels: str
    seed: int
    repeat: int

    @property
    def name(self) -> str:
        return f"{self.kernels}-seed{self.seed}-r{self.repeat}"


def plan(seeds: list[int], repeats: int) -> list[Trial]:
    """The runs in the order they are made: the first seed autotuned `repeats` times, then
    deterministic as often, then every other seed autotuned once."""
    first, others = seeds[0], seeds[1:]
    return [*(Trial("autotuned", first, r) for r in range(repeats)),
            *(Trial("deterministic", first, r) for r in range(repeats)),
            *(Trial("autotuned", s, 0) for s in others)]


# -- one run (a child process) -----------------------------------------------------------------
def train_and_measure(args: argparse.Namespace, trial: Trial) -> list[dict]:
    """Train the preset's old and new models of one trial from scratch in OUT/runs/<trial> and
    measure each: its case's metrics on the test split (all classes, the preset's distance, in
    percent), its training rate (the median epoch after the first) and its weights' digest.
    `kernels` is what this process chose (FCT_DETERMINISTIC), which its trial's name should
    repeat."""
    overrides = gpu_check.run_overrides(Path(args.data_root).resolve(), args.cache_dir, args.tiny)
    run = Run(args.preset, trial.seed, overrides=overrides, runs_dir=args.out / "runs" / trial.name,
              results_dir=args.out / "results")
    kernels = "deterministic" if gpu_kernels_deterministic() else "autotuned"
    rows = []
    for model in MODELS:
        _, history = run.trained(model)
        test = run.embeddings(model, "test")
        metrics = run.evaluate(test, test)["all"]
        rows.append({"run": trial.name, "kernels": kernels, "seed": trial.seed,
                     "repeat": trial.repeat, "case": f"{model}/{model}",
                     **{m: 100 * metrics[m] for m in METRICS},
                     "img_per_s": round(gpu_check.history_rate(history), 1),
                     "train_s": round(sum(e["seconds"] for e in history), 2),
                     "weights": run.store.weights[model], "compute": compute()})
    return rows


# -- the runs, one process each ----------------------------------------------------------------
def run_trials(args: argparse.Namespace, argv: list[str], info: dict) -> list[dict]:
    """Make every planned run not made yet, in order, inside the budget; the tables after each."""
    folder = args.out / "variance"
    started, statuses = time.perf_counter(), []
    for trial in plan(args.seeds, args.repeats):
        done = folder / "trials" / f"{trial.name}.json"
        left = args.budget_s - (time.perf_counter() - started)
        longest = max((s["seconds"] for s in statuses if s["status"] == "done"), default=0.0)
        if done.is_file():
            status = {"status": "done before"}
        elif left <= 0 or longest > left:
            status = {"status": f"skipped: {left:.0f} s left, the longest run took {longest:.0f} s"}
        else:
            status = run_child(args, argv, trial, left)
        statuses.append({"run": trial.name, "seconds": 0.0, **status})
        print(f"[gpu_variance] {trial.name}: {statuses[-1]['status']} "
              f"({statuses[-1]['seconds']:.0f} s)", flush=True)
        write_tables(folder, info, args.seeds[0], args.seeds_from)
    save_json(statuses, folder / "statuses.json")
    return statuses


def run_child(args: argparse.Namespace, argv: list[str], trial: Trial, left: float) -> dict:
    """One run in a fresh process (its kernels chosen by FCT_DETERMINISTIC), from an empty runs
    folder; how it ended and its seconds."""
    shutil.rmtree(args.out / "runs" / trial.name, ignore_errors=True)  # a stopped run restarts
    env = {**os.environ, "FCT_DETERMINISTIC": KERNELS[trial.kernels]}
    command = [sys.executable, __file__, *argv, "--one", trial.kernels, str(trial.seed),
               str(trial.repeat)]
    began = time.perf_counter()
    try:  # its output goes to the console as it comes (a call stopped mid-run keeps it)
        child = subprocess.run(command, env=env, timeout=left)
    except subprocess.TimeoutExpired:
        return {"status": "stopped at the budget", "seconds": time.perf_counter() - began}
    seconds = time.perf_counter() - began
    if child.returncode != 0:
        return {"status": f"failed: exit {child.returncode} (its traceback is above)",
                "seconds": seconds}
    return {"status": "done", "seconds": seconds}


# -- the tables ---------------------------------------------------------------------------------
def load_rows(folder: Path) -> pd.DataFrame:
    """Every finished run's rows (without their compute), by kernels, seed, repeat and case."""
    rows = [row for path in sorted((folder / "trials").glob("*.json"))
            for row in json.loads(path.read_text())]
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(["kernels", "seed", "repeat", "case"], kind="stable",
                             ignore_index=True)


def committed_seed_values(results: Path) -> pd.DataFrame:
    """old/old and new/new of every seed of a results folder's records (as percent), the rows
    `summary` takes the seeds' std from."""
    rows = []
    for path in sorted(results.glob("metrics/seed*/*.json")):
        if path.stem not in MODELS:
            continue
        metrics = json.loads(path.read_text())["cases"][f"{path.stem}/{path.stem}"]["all"]
        rows.append({"seed": int(path.parent.name.removeprefix("seed")),
                     "case": f"{path.stem}/{path.stem}", **{m: 100 * metrics[m] for m in METRICS}})
    return pd.DataFrame(rows, columns=["seed", "case", *METRICS])


def summary(rows: pd.DataFrame, first: int, seeds: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per case and metric: the repeats of seed `first`, autotuned and deterministic (values, their
    range; whether the deterministic ones are identical; whether each kind's repeats trained the
    same weights), the std over seeds (of `seeds` where
    given, else of this run's autotuned first repeats) and the deterministic kernels' median
    training rate over the autotuned ones' (seed `first`'s runs)."""
    own = rows[rows["seed"] == first]
    if seeds is None:
        seeds = rows[(rows["kernels"] == "autotuned") & (rows["repeat"] == 0)]
    out = []
    for case in sorted(rows["case"].unique(), key=lambda c: MODELS.index(c.split("/")[0])):
        runs = {k: own[(own["case"] == case) & (own["kernels"] == k)] for k in KERNELS}
        rates = {k: float(np.median(r["img_per_s"])) if len(r) else None for k, r in runs.items()}
        same_weights = {f"{k}_same_weights": r["weights"].nunique() == 1 if len(r) > 1 else None
                        for k, r in runs.items()}
        ratio = (round(rates["deterministic"] / rates["autotuned"], 3)
                 if rates["deterministic"] and rates["autotuned"] else None)
        by_seed = seeds[seeds["case"] == case]
        for metric in METRICS:
            row = {"case": case, "metric": metric, "seed": first}
            for kernels, runs_of in runs.items():
                values = runs_of[metric].tolist()
                row[kernels] = ", ".join(f"{v:.2f}" for v in values)
                row[f"{kernels}_range"] = round(max(values) - min(values), 4) if values else None
            values = runs["deterministic"][metric].tolist()
            row["deterministic_identical"] = (len(set(values)) == 1) if len(values) > 1 else None
            row.update(same_weights)
            row["seed_std"] = (round(float(by_seed[metric].std(ddof=1)), 4)
                               if len(by_seed) > 1 else None)
            row["seeds"] = len(by_seed)
            row["deterministic_rate_ratio"] = ratio
            out.append(row)
    return pd.DataFrame(out)


def write_tables(folder: Path, info: dict, first: int, seeds_from: Path | None) -> None:
    """runs.csv/.md and summary.csv/.md (the repeats of seed `first`) from the runs finished so
    far."""
    rows = load_rows(folder)
    if rows.empty:
        return
    write_table(rows, folder, "runs", info)
    seeds = committed_seed_values(seeds_from) if seeds_from else None
    write_table(summary(rows, first, seeds), folder, "summary", info)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_root", help="folder holding the preset's data (the Tiny-ImageNet-100 "
                        "archives)")
    parser.add_argument("out", type=Path, help="folder for variance/ (the tables, each run's "
                        "JSON in trials/) and runs/ (the models)")
    gpu_check.add_run_arguments(parser)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="the first is repeated; the others run once, autotuned")
    parser.add_argument("--repeats", type=int, default=2,
                        help="runs of the first seed with each kind of kernels (at least 2)")
    parser.add_argument("--seeds-from", type=Path, default=None,
                        help="a results folder of the preset whose records give the seeds' std")
    parser.add_argument("--budget-s", type=float, default=360.0,
                        help="no run starts unless this many seconds hold the longest so far; the "
                             "one running then is stopped")
    parser.add_argument("--one", nargs=3, metavar=("KERNELS", "SEED", "REPEAT"), default=None,
                        help=argparse.SUPPRESS)  # a child: make this one run
    args = parser.parse_args(argv)
    if args.repeats < 2:
        parser.error(f"--repeats {args.repeats}: runs of one seed are compared, so at least 2")
    if args.seeds_from and not (args.seeds_from / "metrics").is_dir():
        parser.error(f"--seeds-from {args.seeds_from}: no metrics/ folder there; give a results "
                     f"folder `fct reproduce` or the GPU check wrote (results/{gpu_check.PRESET})")
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.one:
        kernels, seed, repeat = args.one
        trial = Trial(kernels, int(seed), int(repeat))
        rows = train_and_measure(args, trial)
        save_json(rows, args.out / "variance" / "trials" / f"{trial.name}.json")
        return
    command = " ".join(["python", __file__, *argv])  # made portable by provenance()
    info = provenance(args.preset, args.seeds, command)
    info["compute"].pop("gpu_kernels", None)  # each run's row names its kernels
    statuses = run_trials(args, argv, info)
    made = sum(s["status"].startswith("done") for s in statuses)
    print(f"[gpu_variance] {made} of {len(statuses)} runs made; tables in "
          f"{args.out / 'variance'}", flush=True)


if __name__ == "__main__":
    main()
