"""What a carried compile cache saves: the first compiled training step of a network in a fresh
process with an empty torch.compile cache, then in another fresh process whose cache is the first
one's, packed and unpacked into another folder (as `gpu_device.sh` carries it between machines).

Usage: PYTHONPATH=. python3 benchmarks/bench_compile_cache.py [--arch A --width W --image PX
--batch B] (prints one JSON line; defaults: a small ResNet at 32 px, a CPU's size; on a GPU the
preset's `--arch resnet18 --width 64 --image 64 --batch 512`). The mode is the device's compile
mode (FCT_COMPILE), torch.compile's default mode where the device trains eagerly.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import run_measured
from torch.nn import functional as F

from fctlib.models.backbones import build_model
from fctlib.models.spec import ModelSpec
from fctlib.training.compiled import compile_mode
from fctlib.training.runtime import autocast, default_device


def first_step_seconds(args: argparse.Namespace) -> float:
    """Seconds of one compiled SGD step of a fresh network (compilation included)."""
    device = default_device()
    torch.manual_seed(0)
    net = build_model(ModelSpec(arch=args.arch, width=args.width, embedding_dim=128), 3,
                      100).to(device)
    step = torch.compile(net, mode=compile_mode(device) or "default")
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    images = torch.randn(args.batch, 3, args.image, args.image, device=device)
    labels = torch.randint(0, 100, (args.batch,), device=device)
    started = time.perf_counter()
    with autocast(device):
        logits = step(images)[1]
    F.cross_entropy(logits.float(), labels).backward()
    optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="small_resnet")
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--image", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.child:
        print(json.dumps({"first_step_s": first_step_seconds(args)}))
        return
    child = [sys.executable, __file__, "--child", *(sys.argv[1:] if argv is None else argv)]
    with tempfile.TemporaryDirectory() as folder:
        empty, carried = Path(folder) / "empty", Path(folder) / "carried"
        cold = run_measured(child, env={"TORCHINDUCTOR_CACHE_DIR": str(empty)})
        packed = shutil.make_archive(str(Path(folder) / "cache"), "gztar", empty)
        carried.mkdir()
        subprocess.run(["tar", "xzf", packed, "-C", str(carried)], check=True)
        warm = run_measured(child, env={"TORCHINDUCTOR_CACHE_DIR": str(carried)})
        print(json.dumps({
            "device": str(default_device()), "torch": torch.__version__,
            **{k: v for k, v in vars(args).items() if k != "child"},
            "cache_packed_mb": round(Path(packed).stat().st_size / 2 ** 20, 2),
            "first_step_s_empty_cache": round(json.loads(cold["stdout"])["first_step_s"], 2),
            "first_step_s_carried_cache": round(json.loads(warm["stdout"])["first_step_s"], 2),
        }))


if __name__ == "__main__":
    main()
