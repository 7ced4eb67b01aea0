"""The GPU check's own arithmetic: step estimates cover the cost model, rates skip warm-up, and a
step over budget is skipped and recorded (benchmarks/gpu_check.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fctlib.experiment.config import load_preset
from fctlib.suite.cost import SplitSizes, main_comparison_work

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_check  # noqa: E402


@pytest.mark.parametrize("name", ["tiny-imagenet-100-gpu", "smoke"])
def test_every_artifact_of_the_cost_model_belongs_to_one_step(name):
    preset = load_preset(name)
    work = main_comparison_work(preset, SplitSizes(10, 20, 3, 4))
    steps = gpu_check.step_artifacts(preset)
    owned = [a for artifacts in steps.values() for a in artifacts]
    assert len(owned) == len(set(owned))
    for parts in (work.training, work.embedding, work.transformation):
        assert set(parts) <= set(owned), set(parts) - set(owned)


def test_step_estimates_add_up_to_the_total():
    preset = load_preset("tiny-imagenet-100-gpu")
    work = main_comparison_work(preset, SplitSizes(22_500, 45_000, 5_000, 5_000))
    rates = {"train_per_s": 30_000, "embed_per_s": 20_000, "h_items_per_s": 500_000}
    steps = gpu_check.step_artifacts(preset)
    estimates = {s: gpu_check.step_estimate(work, a, rates) for s, a in steps.items()}
    assert sum(estimates.values()) == pytest.approx(work.seconds(**rates)["total"])
    # 4 variants, the control, 2 matched models: 45,000 images x 30 epochs each; 7 x 5,000 tune
    # and 5,000 test images embedded
    assert estimates["04_bct"] == pytest.approx(7 * 1_350_000 / 30_000 + 40_000 / 20_000)


def test_history_rate_leaves_the_first_epoch_out():
    history = [{"items_per_s": 10.0, "seconds": 10.0}, {"items_per_s": 100.0, "seconds": 2.0},
               {"items_per_s": 50.0, "seconds": 2.0}]
    assert gpu_check.history_rate(history) == pytest.approx(75.0)
    assert gpu_check.history_rate(history[:1], per_item=2) == pytest.approx(20.0)


def test_a_step_over_budget_is_skipped_and_recorded(tmp_path):
    check = gpu_check.Check(tmp_path, budget_s=60, info={"preset": "x"})
    ran = []
    assert check.step("fits", 1.0, lambda: ran.append("fits"))
    assert not check.step("too long", 120.0, lambda: ran.append("too long"))
    assert ran == ["fits"]
    steps = json.loads((tmp_path / "figures.json").read_text())["steps"]
    assert [s["status"] for s in steps] == ["done", "skipped: over budget"]
    assert (tmp_path / "tables" / "steps.csv").read_text().startswith("# preset: x")


def test_the_device_wrapper_names_its_usage_and_a_missing_stash(tmp_path):
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_device.sh"
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path), "OUT": str(tmp_path / "out")}
    usage = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env)
    assert usage.returncode == 2 and "usage:" in usage.stderr
    empty = tmp_path / "carried"
    empty.mkdir()
    second = subprocess.run(["bash", str(script), "run", str(empty)], capture_output=True,
                            text=True, env=env)
    assert second.returncode == 3 and "no stash: call 1 did not run" in second.stdout
