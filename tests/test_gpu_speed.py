"""The GPU speed benchmark runs end to end on a CPU at tiny sizes (benchmarks/gpu_speed.py)."""

import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from fctlib.data.transforms import CropFlipTransform

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_speed  # noqa: E402


def test_tiny_eager_run_writes_a_row_per_network(tmp_path, monkeypatch):
    monkeypatch.setenv("FCT_PROGRESS", "0")
    monkeypatch.setenv("FCT_COMPILE", "0")  # main sets it per mode; restored after the test
    gpu_speed.main([str(tmp_path), "--tiny", "--modes", "0"])
    rows = json.loads((tmp_path / "speed.json").read_text())["rows"]
    trained = [r for r in rows if r["mode"] == "0"]
    assert len(trained) == 4 and all(r["items_per_s"] > 0 for r in rows if "items_per_s" in r)
    # a CPU waits for no device: the probe's steps run, its counts are empty
    waits = [r for r in rows if "device_waits_per_step" in r]
    assert len(waits) == 5 and all(r["device_waits_per_step"] is None for r in waits)
    # a forward + backward of the preset's ResNet-18 at 32 px: about 0.2 GFLOP per image
    assert 0.1 < trained[0]["gflop_per_item"] < 0.4
    assert not any(r["compiled"] or r["fell_back_to_eager"] for r in trained)


def test_each_card_gets_its_own_bf16_peak():
    assert gpu_speed.bf16_peak("NVIDIA H100 80GB HBM3") == 989e12
    assert gpu_speed.bf16_peak("NVIDIA H100 PCIe") == 756e12  # not the SXM card's
    assert gpu_speed.bf16_peak("NVIDIA H200 NVL") == 835e12
    assert gpu_speed.bf16_peak("NVIDIA H200") == 989e12
    assert gpu_speed.bf16_peak("cpu") is None


def test_accelerator_steps_do_nothing_that_waits_for_the_device():
    """On the meta device (no data; any other device type takes the accelerator's code paths)
    an operation that would wait for a GPU (`nonzero`, boolean indexing, `.item()`, a copy to
    the host) raises: every training step the GPU check measures and both augmentations (SimCLR's
    views, the supervised crop and flip) run through without one."""
    meta = torch.device("meta")
    setting = replace(gpu_speed.Setting(), **gpu_speed.TINY)
    for case in gpu_speed.cases(setting, meta):
        gpu_speed.training_step(case, meta)()
    gpu_speed.simclr_views_step(setting, meta)()
    images = torch.zeros(8, 3, 32, 32, dtype=torch.uint8, device=meta)
    assert CropFlipTransform(32, 3, (0.5,) * 3, (0.25,) * 3)(images).shape == (8, 3, 32, 32)
