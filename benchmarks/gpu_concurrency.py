"""Whether one GPU trains more when several trainings share it: k processes, each training the
same network of `tiny-imagenet-100-gpu` (gpu_speed's cases: synthetic batches already on the
device, the library's `train` under the current FCT_COMPILE, default CUDA graphs), started
together, against one alone.

A seed trains 65 networks and h's, most of them independent once old, new and side-info exist;
on one H200 a batch-128 step (bt2's recipe) ran at 0.16 of batch 512's rate, the GPU waiting for
the host. If k processes together train up to k times one's items/s, a scheduler that trains
independent artifacts side by side is the way to issue 25's ten-minute seed without a cheaper
recipe; if not, the small batches need the whole-step graphs `gpu_speed.py` measures.

Each process builds its network and trains it one epoch (compilation, autotuning, CUDA graph
capture), says it is ready, waits until all k are, then trains `--epochs` epochs timed from the
common start. Per case and k, OUT/concurrency.csv and .json hold each process's items/s over its
own window and the aggregate: every process's items over the span from the first start to the
last end (windows that do not overlap fully lower it), and its ratio to one process alone.
Processes share the GPU by time-slicing (no MPS).

Usage: python benchmarks/gpu_concurrency.py OUT [--cases bt2 supervised] [--processes 1 2 4]
       [--steps 200] [--epochs 4] [--budget-s 240] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import gpu_speed
import pandas as pd
import torch

from fctlib.experiment.provenance import provenance
from fctlib.io import atomic_write, save_json
from fctlib.training.loop import train
from fctlib.training.runtime import default_device, synchronize

# gpu_speed's cases by a short name, in its order
CASES = ("supervised", "bt2", "simclr", "h")
READY_TIMEOUT_S = 600.0


def setting(steps: int, tiny: bool) -> gpu_speed.Setting:
    """gpu_speed's setting at `steps` batches an epoch (--tiny: its small images and batches)."""
    base = replace(gpu_speed.Setting(), **gpu_speed.TINY) if tiny else gpu_speed.Setting()
    return replace(base, steps=steps)


def child(case_name: str, steps: int, epochs: int, tiny: bool, barrier: Path, index: int,
          out: Path) -> None:
    """One process: warm up one epoch, write barrier/ready-<index>, wait for barrier/go, train
    `epochs` epochs and write its items and window (wall-clock seconds) to `out`."""
    device = default_device()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    case = gpu_speed.cases(setting(steps, tiny), device)[CASES.index(case_name)]
    torch.manual_seed(index)
    model, data = case.build(), case.make_data()
    train(model, data, case.loss, replace(case.cfg, epochs=1), seed=index, device=device,
          desc=f"{case_name} warm-up")
    synchronize(device)
    (barrier / f"ready-{index}").touch()
    waited = time.time()
    while not (barrier / "go").exists():
        if time.time() - waited > READY_TIMEOUT_S:
            sys.exit(f"gpu_concurrency: process {index} saw no go in {READY_TIMEOUT_S:.0f} s")
        time.sleep(0.005)
    began = time.time()
    history = train(model, data, case.loss, replace(case.cfg, epochs=epochs), seed=index,
                    device=device, desc=case_name)
    synchronize(device)
    ended = time.time()
    items = case.items_per_row * sum(h["items_per_s"] * h["seconds"] for h in history)
    save_json({"items": items, "began": began, "ended": ended,
               "final_loss": history[-1]["loss"]}, out)


def run_together(case_name: str, k: int, args: argparse.Namespace, barrier: Path) -> dict:
    """k child processes of `case_name` started together (meeting in the empty folder
    `barrier`); their items/s and the aggregate."""
    command = [sys.executable, __file__, str(barrier), "--child", case_name,
               "--steps", str(args.steps), "--epochs", str(args.epochs),
               *(["--tiny"] if args.tiny else [])]
    processes = [subprocess.Popen([*command, "--index", str(i)]) for i in range(k)]
    waited = time.time()
    while len(list(barrier.glob("ready-*"))) < k:
        if any(p.poll() not in (None, 0) for p in processes) or \
                time.time() - waited > READY_TIMEOUT_S:
            for p in processes:
                p.kill()
            return {"error": "a process failed or never got ready (its output is above)"}
        time.sleep(0.01)
    (barrier / "go").touch()
    if any(p.wait() != 0 for p in processes):
        return {"error": "a process failed while training (its output is above)"}
    runs = [json.loads((barrier / f"result-{i}.json").read_text()) for i in range(k)]
    span = max(r["ended"] for r in runs) - min(r["began"] for r in runs)
    return {"items_per_s_each": [round(r["items"] / (r["ended"] - r["began"]), 1) for r in runs],
            "aggregate_items_per_s": round(sum(r["items"] for r in runs) / span, 1),
            "span_s": round(span, 2)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for concurrency.csv and .json")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=["bt2", "supervised"])
    parser.add_argument("--processes", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--steps", type=int, default=200,
                        help="batches per epoch (h: gpu_speed's h_batches)")
    parser.add_argument("--epochs", type=int, default=4, help="timed epochs after the warm-up")
    parser.add_argument("--budget-s", type=float, default=240.0,
                        help="no measurement starts with less than a fifth of this left")
    parser.add_argument("--tiny", action="store_true", help="small images and batches (a CPU)")
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.child:  # OUT is the barrier folder of its run
        child(args.child, args.steps, args.epochs, args.tiny, args.out, args.index,
              args.out / f"result-{args.index}.json")
        return
    args.out.mkdir(parents=True, exist_ok=True)
    info = provenance(gpu_speed.PRESET, [0], command=" ".join(["python", *sys.argv]))
    started, rows = time.perf_counter(), []
    for case_name in args.cases:
        alone = None
        for k in args.processes:
            row = {"case": case_name, "processes": k}
            left = args.budget_s - (time.perf_counter() - started)
            if left < args.budget_s / 5:
                row["skipped"] = f"budget: {left:.0f} s left"
            else:
                with tempfile.TemporaryDirectory() as barrier:
                    row.update(run_together(case_name, k, args, Path(barrier)))
                rate = row.get("aggregate_items_per_s")
                alone = rate if k == 1 else alone
                if rate and alone:
                    row["aggregate_over_one"] = round(rate / alone, 3)
            rows.append(row)
            print(f"[gpu_concurrency] {row}", flush=True)
            save(args.out, info, rows, time.perf_counter() - started)


def save(out: Path, info: dict, rows: list[dict], elapsed_s: float) -> None:
    """The rows so far as out/concurrency.csv and .json (atomically)."""
    table = pd.DataFrame(rows)
    atomic_write(out / "concurrency.csv", lambda tmp: table.to_csv(tmp, index=False))
    save_json({"provenance": info, "rows": rows, "elapsed_s": round(elapsed_s, 1)},
              out / "concurrency.json")


if __name__ == "__main__":
    main()
