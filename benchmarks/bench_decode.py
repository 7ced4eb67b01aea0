"""Decoding an image folder into memory (`FileImages.to_arrays`) in one process and in as many
processes as a run lets torch use threads (`set_cpu_threads`), in images per second.

Synthetic 64 x 64 JPEGs (Tiny-ImageNet's size and format) are written to a temporary folder,
then decoded at their native size, each way `--rounds` times alternately; the median is reported.
Prints one JSON line. Usage: .venv/bin/python benchmarks/bench_decode.py [--images 10000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from bench_training import write_small_jpegs

from fctlib.training.runtime import set_cpu_threads


def decode_rate(files, threads: int) -> float:
    """Images/s of `to_arrays` with `threads` decoding processes (torch's thread count)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        started = time.perf_counter()
        files.to_arrays(64)
        return len(files) / (time.perf_counter() - started)
    finally:
        torch.set_num_threads(before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    processes = set_cpu_threads()  # what a run uses
    with tempfile.TemporaryDirectory() as tmp:
        files = write_small_jpegs(Path(tmp), args.images, 100)
        rates: dict[int, list[float]] = {1: [], processes: []}
        decode_rate(files, 1)  # warm-up: the files into the page cache
        for _ in range(args.rounds):
            for threads in rates:
                rates[threads].append(decode_rate(files, threads))
    one, many = (statistics.median(rates[t]) for t in (1, processes))
    print(json.dumps({"images": args.images, "processes": processes,
                      "torch_threads": torch.get_num_threads(),
                      "one_process_images_per_s": round(one),
                      "all_processes_images_per_s": round(many), "speedup": many / one,
                      "rounds": {str(k): [round(r) for r in v] for k, v in rates.items()}}))


if __name__ == "__main__":
    main()
