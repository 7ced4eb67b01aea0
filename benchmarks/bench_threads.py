"""CPU thread policies on an idle machine and beside one competing busy process.

For each policy, a fresh child process (OpenMP reads its settings when torch loads) times the
exact retrieval metrics at N = 10,000 (d = 128) and the default preset's new CNN's training
capacity (SGD steps on one synthetic batch, images/s); `shared` runs the same child while one
other process keeps a core busy (a Python busy loop). Policies:
  all-cores:          torch threads = the CPUs this process may use, OpenMP's default waiting
  one-thread:         one torch thread
  all-cores-passive:  all CPUs, OMP_WAIT_POLICY=PASSIVE (waiting threads sleep, not spin)
  suite:              what the suite runs with: fctlib imported before torch (as `fct`, the
                      notebooks and the tests do), its threads from fctlib.training.runtime
Prints one JSON line. Usage: .venv/bin/python benchmarks/bench_threads.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

POLICIES = {  # name: (torch threads: "all", a number or "suite"; OMP_WAIT_POLICY or None)
    "all-cores": ("all", None),
    "one-thread": ("1", None),
    "all-cores-passive": ("all", "PASSIVE"),
    "suite": ("suite", None),
}
BUSY_LOOP = "while True: pass"


def child(threads: str, seconds: float) -> dict:
    """Both figures in this process, under the policy its environment sets."""
    if threads == "suite":
        import fctlib  # noqa: F401  (first, as the suite's entry points: its OpenMP setting)
    import torch
    from bench_data_path import capacity
    from bench_metrics import make_embeddings

    from fctlib.evaluation.retrieval import retrieval_metrics
    from fctlib.experiment.config import load_preset
    from fctlib.models.backbones import build_model
    from fctlib.training.loop import classification_loss
    from fctlib.training.runtime import set_cpu_threads

    set_cpu_threads()
    if threads != "suite":
        torch.set_num_threads(len(os.sched_getaffinity(0)) if threads == "all" else int(threads))
    query, gallery, labels = make_embeddings(10_000, 128, 100, seed=0)
    retrieval_metrics(query[:1000], gallery[:1000], labels[:1000], labels[:1000])  # warm-up
    started = time.perf_counter()
    retrieval_metrics(query, gallery, labels, labels, exclude_self=True)
    eval_seconds = time.perf_counter() - started
    new = load_preset("fashion-mnist").new
    torch.manual_seed(0)
    model = build_model(new.model, 1, 10)
    b = new.training.batch_size
    x, y = torch.randn(b, 1, 28, 28), torch.randint(0, 10, (b,))
    loss = classification_loss(new.training.label_smoothing)
    rate = capacity(model, lambda m: loss(m, (x, y)), new.training, b, torch.device("cpu"),
                    seconds)
    return {"threads": torch.get_num_threads(), "eval_10k_seconds": eval_seconds,
            "train_images_per_s": rate}


def measure(policy: str, shared: bool, seconds: float) -> dict:
    """One child under `policy`, beside a busy process when `shared`."""
    threads, wait_policy = POLICIES[policy]
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if wait_policy:
        env["OMP_WAIT_POLICY"] = wait_policy
    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) if shared else None
    try:
        time.sleep(0.5 if shared else 0)
        out = subprocess.run([sys.executable, __file__, "--child", threads, "--seconds",
                              str(seconds)], env=env, capture_output=True, text=True, check=True)
    finally:
        if busy:
            busy.kill()
            busy.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds (each figure's best counts)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds of training steps")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # the threads of a child process
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.seconds)))
        return
    best: dict = {}
    for _ in range(args.rounds):
        for policy in POLICIES:
            for shared in (False, True):
                got = measure(policy, shared, args.seconds)
                key = f"{policy}/{'shared' if shared else 'idle'}"
                was = best.setdefault(key, got)
                was["eval_10k_seconds"] = min(was["eval_10k_seconds"], got["eval_10k_seconds"])
                was["train_images_per_s"] = max(was["train_images_per_s"],
                                                got["train_images_per_s"])
    print(json.dumps({"cpus": len(os.sched_getaffinity(0)), "policies": best}))


if __name__ == "__main__":
    main()
