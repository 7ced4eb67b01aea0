"""`make bench`: every benchmark in its own child process, written to results/benchmarks/ as
benchmarks.json and a readable benchmarks.md (machine, command, date, each figure and its goal).

Run it on an otherwise idle machine: the figures are wall-clock times. Usage:
.venv/bin/python benchmarks/run_all.py [--items 1000000] [--out results/benchmarks]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import torch
from common import run_measured

from fctlib.experiment.provenance import cpu_model, git_commit
from fctlib.io import atomic_write, save_json
from fctlib.paths import project_root

HERE = Path(__file__).resolve().parent
GOALS = {  # figure: (comparison, bound, what the issue asks)
    "transform_vs_backfill": (">=", 100, "the transformation at least 100x cheaper per item"),
    "migrate_1m_seconds": ("<=", 300, "1M items upgraded in 5 minutes or less"),
    "migrate_1m_peak_rss_mb": ("<=", 2048, "... with 2 GB peak memory or less"),
    "eval_50k_peak_rss_mb": ("<=", 4096, "exact evaluation at N = 50,000 within 4 GB"),
    "h_fit_speedup_preset": (">=", 5, "h (preset's) fits 5x faster on tensor batches than via a "
                             "DataLoader"),
    "h_fit_speedup_reference": (">=", 5, "... and the reference h"),
    "train_vs_capacity": (">=", 0.8, "supervised training at 80% of the network's capacity"),
    "simclr_vs_capacity": (">=", 0.6, "SimCLR training at 60% of its network's capacity"),
    "embed_vs_train": (">=", 3, "embed at least 3x the training throughput"),
    "default_preset_seconds_per_seed": ("<=", 900, "the default preset's seed from scratch (every "
                                        "notebook) in 15 minutes or less on this machine"),
    "eval_shared_vs_idle": ("<=", 2, "exact evaluation (N = 10,000) beside one busy process "
                            "at most 2x its idle time"),
    "train_shared_vs_idle": (">=", 0.5, "training beside one busy process at least half its idle "
                             "rate"),
}


def child_json(script: str, *args: str) -> dict:
    """Run a benchmark script and parse the JSON line it prints last."""
    done = run_measured([sys.executable, str(HERE / script), *args])
    return json.loads(done["stdout"].strip().splitlines()[-1])


def measure(items: int) -> dict:
    """Every figure of the benchmark, in a dict."""
    transform = child_json("bench_throughput.py", "transform")
    backfill = child_json("bench_throughput.py", "backfill")
    migrate = child_json("bench_migrate.py", "--items", str(items))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "metrics.json"
        run_measured([sys.executable, str(HERE / "bench_metrics.py"), "--sizes", "50000",
                      "--json", str(path)])
        evaluation = json.loads(path.read_text())["results"][0]
    training = child_json("bench_training.py")
    vectors = child_json("bench_vector_batches.py")
    data_path = child_json("bench_data_path.py")
    default_preset = child_json("bench_default_preset.py")
    threads = child_json("bench_threads.py")
    decode = child_json("bench_decode.py")
    memory_format = child_json("bench_memory_format.py")
    suite = threads["policies"]
    name = "migrate_1m" if items == 1_000_000 else f"migrate_{items}"
    return {
        "transform_items_per_s": transform["items_per_s"],
        "backfill_items_per_s": backfill["items_per_s"],
        "transform_vs_backfill": transform["items_per_s"] / backfill["items_per_s"],
        "throughput_batch_size": transform["batch_size"],
        f"{name}_seconds": migrate["seconds"],
        f"{name}_peak_rss_mb": migrate["peak_rss_mb"],
        "migrate_details": migrate,
        "eval_50k_seconds": evaluation["seconds"],
        "eval_50k_peak_rss_mb": evaluation["peak_rss_mb"],
        "default_preset_wall": default_preset,
        "default_preset_seconds_per_seed": default_preset["seconds_per_seed"],
        "training_throughput": training,
        "h_fit_speedup_preset": vectors["preset"]["speedup"],
        "h_fit_speedup_reference": vectors["reference"]["speedup"],
        "h_fit_batches": vectors,
        "data_path": data_path,
        **{key: data_path[key] for key in ("train_vs_capacity", "simclr_vs_capacity",
                                           "embed_vs_train")},
        "thread_policies": threads,
        "decode": decode,
        "memory_format": memory_format,
        "eval_shared_vs_idle": (suite["suite/shared"]["eval_10k_seconds"]
                                / suite["suite/idle"]["eval_10k_seconds"]),
        "train_shared_vs_idle": (suite["suite/shared"]["train_images_per_s"]
                                 / suite["suite/idle"]["train_images_per_s"]),
    }


def goals(figures: dict) -> list[dict]:
    """Each goal of the issue with its figure and whether it is met."""
    rows = []
    for key, (op, bound, what) in GOALS.items():
        if key in figures:
            value = figures[key]
            met = value >= bound if op == ">=" else value <= bound
            rows.append({"figure": key, "value": value, "goal": f"{op} {bound}", "met": met,
                         "what": what})
    return rows


def markdown(report: dict) -> str:
    """benchmarks.md: the machine, the command, the goals, then every figure."""
    f, m = report["figures"], report["machine"]
    t, v = f["training_throughput"], f["h_fit_batches"]
    lines = [
        "# fct-suite benchmarks", "",
        f"Measured {report['date']} by `{report['command']}` at commit {report['git_commit']}.",
        f"Machine: {m['cpu']}, {m['cpu_count']} cores, {m['memory_gb']} GB, {m['platform']}; "
        f"torch {m['torch']} with {m['torch_threads']} threads. Peak memory is each child "
        "process's maximum resident set size (as `/usr/bin/time -v` reports it).", "",
        "| goal | figure | value | met |", "|---|---|---|---|",
        *[f"| {g['what']} | `{g['figure']}` {g['goal']} | {g['value']:,.1f} | "
          f"{'yes' if g['met'] else '**no**'} |" for g in report["goals"]],
        "", "| figure | value |", "|---|---|",
        f"| transform_items_per_s (reference MLP, batch {f['throughput_batch_size']}) | "
        f"{f['transform_items_per_s']:,.0f} |",
        f"| backfill_items_per_s (JPEG decode + ResNet-50-128 at 224 px, same batch) | "
        f"{f['backfill_items_per_s']:,.1f} |",
        f"| eval_50k_seconds (exact metrics, d = 128) | {f['eval_50k_seconds']:,.1f} |",
        f"| default preset, seconds per seed ({f['default_preset_wall']['source']}) | "
        f"{f['default_preset_wall'].get('seconds_per_seed', float('nan')):,.0f} |",
        f"| CNN training, decoded-once image cache, images/s | "
        f"{t['image_cache']['decoded_once_cache']:,.0f} |",
        f"| CNN training, JPEG decoded at every step, images/s | "
        f"{t['image_cache']['decode_every_step']:,.0f} |",
        f"| fitting h on cached features, items/s | "
        f"{t['transformation_features']['cached_features']:,.0f} |",
        f"| fitting h with features computed per batch, items/s | "
        f"{t['transformation_features']['on_the_fly']:,.0f} |",
        *[f"| fitting the {name} h on {v['items']:,} vectors ({v[name]['dim']}-d, batch "
          f"{v[name]['batch_size']}), items/s, {path.replace('_', ' ')} | {v[name][path]:,.0f} |"
          for name in ("preset", "reference", "tiny")
          for path in ("dataloader", "tensor_batches", "capacity")],
        *[f"| fitting the {name} h: the most any data path can gain here (capacity / dataloader) "
          f"| {v[name]['speedup_bound']:,.2f} |" for name in ("preset", "reference", "tiny")],
        *[f"| data path on {d['device']} ({d['preset']} new CNN, batch {d['batch_size']}; "
          f"SimCLR batch {d['simclr_batch_size']}): {key}, images/s | {d[key]:,.0f} |"
          for d in [f["data_path"]]
          for key in ("train_capacity_images_per_s", "train_images_per_s",
                      "simclr_capacity_images_per_s", "simclr_images_per_s",
                      "embed_capacity_images_per_s", "embed_images_per_s")],
        f"| decoding 64 px JPEGs to arrays, images/s: one process / {f['decode']['processes']} "
        f"processes | {f['decode']['one_process_images_per_s']:,} / "
        f"{f['decode']['all_processes_images_per_s']:,} |",
        "", *memory_format_lines(f["memory_format"]),
        "", *thread_lines(f["thread_policies"]),
        "", *accounting_lines(f["default_preset_wall"]),
    ]
    return "\n".join(lines)


def memory_format_lines(formats: dict) -> list[str]:
    """Each CPU preset network's training rate channels-first and channels-last."""
    return [
        "Training steps channels-first and channels-last (`FCT_CPU_CHANNELS_LAST=1`; "
        "`bench_memory_format.py`, median of alternating rounds):", "",
        "| network | batch | channels-first images/s | channels-last images/s | ratio |",
        "|---|---|---|---|---|",
        *[f"| {name} ({row['arch']}, width {row['width']}) | {row['batch']} | "
          f"{row['images_per_s']['channels_first']:,.0f} | "
          f"{row['images_per_s']['channels_last']:,.0f} | {row['ratio']:.2f} |"
          for name, row in formats["networks"].items()],
    ]


def thread_lines(threads: dict) -> list[str]:
    """Each CPU thread policy idle and beside one busy process (`bench_threads.py`)."""
    rows = threads["policies"]
    return [
        f"CPU thread policies on {threads['cpus']} cores, idle and beside one busy process "
        "(`bench_threads.py`; `suite` is the policy the suite runs with):", "",
        "| policy | threads | eval N = 10,000 idle s | shared s | training idle images/s | "
        "shared images/s |", "|---|---|---|---|---|---|",
        *[f"| {policy} | {rows[f'{policy}/idle']['threads']} | "
          f"{rows[f'{policy}/idle']['eval_10k_seconds']:,.2f} | "
          f"{rows[f'{policy}/shared']['eval_10k_seconds']:,.2f} | "
          f"{rows[f'{policy}/idle']['train_images_per_s']:,.0f} | "
          f"{rows[f'{policy}/shared']['train_images_per_s']:,.0f} |"
          for policy in dict.fromkeys(key.split("/")[0] for key in rows)],
    ]


def accounting_lines(wall: dict) -> list[str]:
    """The default preset's seed, notebook by notebook: training, the rest, a cached rerun."""
    rows = wall.get("accounting")
    if not rows:
        return []
    lines = [
        f"Where the default preset's {wall['seconds_per_seed']:,.0f} s per seed go "
        "(`bench_default_preset.py`): training is the seconds in the training histories of the "
        "artifacts a notebook trained; the rest is kernel start, imports, data, embedding, "
        "evaluation and figures; the cached rerun runs the notebook again with every artifact and "
        "embedding cached.", "",
        "| notebook | wall s | training s | artifacts trained | items trained | rest s | "
        "cached rerun s |", "|---|---|---|---|---|---|---|",
        *[f"| {step} | {r['wall']:,.1f} | {r['training']:,.1f} | {r['artifacts_trained']} | "
          f"{r['items_trained']:,} | {r['rest']:,.1f} | {r['cached_rerun']:,.1f} |"
          for step, r in rows.items()],
        f"| all | {wall['seconds_per_seed']:,.1f} | {wall['training_seconds']:,.1f} | "
        f"{sum(r['artifacts_trained'] for r in rows.values())} | "
        f"{sum(r['items_trained'] for r in rows.values()):,} | "
        f"{wall['seconds_per_seed'] - wall['training_seconds']:,.1f} | "
        f"{wall['cached_rerun_seconds']:,.1f} |", "",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000, help="gallery size to migrate")
    parser.add_argument("--out", default=str(project_root() / "results" / "benchmarks"))
    args = parser.parse_args()
    figures = measure(args.items)
    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["benchmarks/run_all.py", *sys.argv[1:]]),
        "git_commit": git_commit(),
        "machine": {"platform": platform.platform(), "cpu": cpu_model(),
                    "cpu_count": os.cpu_count(), "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads(),
                    "memory_gb": round(os.sysconf("SC_PAGE_SIZE")
                                       * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)},
        "figures": figures,
    }
    report["goals"] = goals(figures)
    out = Path(args.out)
    save_json(report, out / "benchmarks.json")
    text = markdown(report)
    atomic_write(out / "benchmarks.md", lambda tmp: tmp.write_text(text))
    print(text)


if __name__ == "__main__":
    main()
