"""`fct upgrade` on a synthetic gallery store: wall seconds and peak memory of the whole job.

The store (random 128-d old embeddings and 128-d side-info, in shards) and a reference-sized
transformation (branches 256-256, mixer 2048-2048, random weights) are made once under
.cache/bench/; then `fct upgrade` runs as a child process, which upgrades every shard, builds the
faiss index (IVF from 250,000 items) and verifies the output. Prints one JSON line.
Usage: .venv/bin/python benchmarks/bench_migrate.py [--items 1000000] [--shard-size 50000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from common import run_measured

from fctlib.deploy.gallery_store import GalleryStoreError, open_gallery_store, write_gallery_store
from fctlib.models.transformation import Transformation, save_transformation
from fctlib.paths import project_root


def synthetic_store(folder: Path, items: int, shard_size: int, dim: int, seed: int = 0):
    """A store of `items` random vectors (reused when a complete one is already there)."""
    try:
        store = open_gallery_store(folder)
        if store.count == items and len(store.shards[0].ids()) == min(shard_size, items):
            return store
    except GalleryStoreError:
        pass
    shutil.rmtree(folder, ignore_errors=True)
    rng = np.random.default_rng(seed)
    old = rng.standard_normal((items, dim), dtype=np.float32)
    side = rng.standard_normal((items, dim), dtype=np.float32)
    return write_gallery_store(folder, np.arange(items), old, side, shard_size=shard_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--shard-size", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=128)
    args = parser.parse_args()
    work = project_root() / ".cache" / "bench"
    store = synthetic_store(work / f"gallery-{args.items}", args.items, args.shard_size, args.dim)
    torch.manual_seed(0)
    h = save_transformation(Transformation(args.dim, args.dim, args.dim, (256, 256),
                                           (2048, 2048)).eval(), work / "reference-h.pt")
    out = work / f"gallery-{args.items}-upgraded"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "fctlib.suite.cli", "upgrade", str(store.folder),
           "--transformation", str(h), "--out", str(out)]
    figures = run_measured(cmd)
    manifest = json.loads((out / "manifest.json").read_text())
    print(json.dumps({"items": store.count, "shards": len(store.shards),
                      "seconds": figures["seconds"], "peak_rss_mb": figures["peak_rss_mb"],
                      "index": manifest["index"], "verified": manifest["verified"],
                      "command": "fct upgrade STORE --transformation H --out OUT"}))
    shutil.rmtree(out)


if __name__ == "__main__":
    main()
