"""Time and peak memory of fctlib.evaluation.retrieval.retrieval_metrics on class-clustered
random embeddings.

Each size runs in a fresh child process, so its peak resident set size (getrusage ru_maxrss) is its
own. Protocol as in the suite: query set = gallery set (same samples embedded twice, as by two
models), each query's own sample excluded, L2 distance.

Usage: .venv/bin/python benchmarks/bench_metrics.py [--sizes 10000 50000] [--json PATH]
The last column is the 1-minute load average after the call: above ~0 other work shared the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time


def make_embeddings(n: int, dim: int, classes: int, seed: int):
    """Query and gallery embeddings of the same n samples (class centre + sample + model noise)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    labels = torch.randperm(n, generator=gen) % classes
    centres = torch.randn(classes, dim, generator=gen)
    samples = centres[labels] + 1.5 * torch.randn(n, dim, generator=gen)
    gallery = samples + torch.randn(n, dim, generator=gen)
    query = samples + torch.randn(n, dim, generator=gen)
    return query, gallery, labels


def run_child(n: int, dim: int, classes: int, seed: int, repeats: int, threads: int | None) -> dict:
    """Measure one size in this process; returns the figures as a dict."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    from fctlib.evaluation.retrieval import retrieval_metrics

    query, gallery, labels = make_embeddings(n, dim, classes, seed)
    rss_before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        metrics = retrieval_metrics(query, gallery, labels, labels, exclude_self=True)
        seconds.append(time.perf_counter() - start)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "n": n,
        "dim": dim,
        "classes": classes,
        "seconds": min(seconds),
        "seconds_all": seconds,
        "peak_rss_mb": peak_rss_mb,
        "rss_before_call_mb": rss_before_mb,
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0],
        "metrics": metrics,
    }


def main(argv: list[str] | None = None) -> int:
    """Run every size in a child process, print a table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="calls per size; the best is kept")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to this JSON file")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        figures = run_child(args.child, args.dim, args.classes, args.seed, args.repeats,
                            args.threads)
        print(json.dumps(figures))
        return 0

    rows = []
    print(f"{'N = Q':>8} {'seconds':>8} {'peak RSS MB':>12} {'before call MB':>15} "
          f"{'top1':>6} {'top5':>6} {'mAP':>6} {'load':>5}")
    for n in args.sizes:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", str(n), "--dim", str(args.dim),
               "--classes", str(args.classes), "--seed", str(args.seed),
               "--repeats", str(args.repeats)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            return done.returncode
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        m = row["metrics"]
        print(f"{n:>8} {row['seconds']:>8.2f} {row['peak_rss_mb']:>12.0f} "
              f"{row['rss_before_call_mb']:>15.0f} {m['top1']:>6.3f} {m['top5']:>6.3f} "
              f"{m['mAP']:>6.3f} {row['load_average_1min']:>5.2f}", flush=True)
    if args.json:
        import torch

        report = {
            "benchmark": "retrieval_metrics, exclude_self, l2",
            "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
            "machine": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "results": rows,
        }
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
