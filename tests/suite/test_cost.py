"""The cost of one seed of the main comparison, the GPU preset sized by it, and the measured cost
of each notebook."""

import json

import pytest

from fctlib.experiment.config import load_preset
from fctlib.suite.cost import (
    SplitSizes,
    class_split_sizes,
    main_comparison_work,
    measured_step_cost,
    side_info_dims,
)

# Measured on one H200 by the compiled GPU check on real data (ResNet-18 128-d, 64 px;
# results/benchmarks/gpu/2026-12-04-compiled/check/figures.json): old's and new's training 106.2k
# img/s, bt2's at batch 128 16.7k, SimCLR's 45.9k views/s, embed 69.1k img/s, h fitting 286k
# items/s.
RATES = {"train_per_s": 106_234, "embed_per_s": 69_063, "h_items_per_s": 286_478,
         "small_batch_per_s": 16_723, "simclr_per_s": 45_874}


def test_tiny_imagenet_splits_are_counted_as_the_loader_carves_them():
    preset = load_preset("tiny-imagenet-100")
    assert class_split_sizes(preset, 500, 50, 100) == SplitSizes(22_500, 45_000, 5_000, 5_000)
    smoke = load_preset("smoke")  # 60 per class, tune 0.2, test 30 per class, 10 classes
    assert class_split_sizes(smoke, 6_000, 1_000, 10) == SplitSizes(240, 480, 120, 300)


def test_work_counts_every_artifact_of_notebooks_00_to_06():
    preset = load_preset("tiny-imagenet-100-gpu")
    work = main_comparison_work(preset, SplitSizes(old_train=10, train=20, tune=3, test=4))
    assert side_info_dims(preset) == [128, 32]
    assert work.training == {"old": 300, "new": 600, "bct:openbct:1.0": 600,
                             "bct:openbct-g:1.0": 600, "bct:bt2:10.0": 600,
                             "bct:openbct-normsm:1.0": 600, "bct:random-rows:1.0": 600,
                             "bct:bt2:0.0": 600, "bct:openbct-normsm:0.0": 600,
                             "side:128": 800, "side:32": 800}  # SimCLR: two views per image
    assert work.kinds == {"bct:bt2:10.0": "small batch", "bct:bt2:0.0": "small batch",
                          "side:128": "SimCLR", "side:32": "SimCLR"}  # bt2's batch 128, not 512
    assert work.embedding["old"] == 27 and work.embedding["bct chosen"] == 4
    assert sorted(work.transformation) == ["h:0", "h:128", "h:32"]
    assert work.transformation["h:0"] == 20 * 80


def test_seconds_add_up_at_the_given_rates():
    work = main_comparison_work(load_preset("smoke"), SplitSizes(10, 20, 3, 4))
    seconds = work.seconds(train_per_s=1, embed_per_s=1e9, h_items_per_s=1e9)
    assert seconds["training"] == sum(work.training.values())
    assert seconds["total"] == pytest.approx(seconds["training"], rel=1e-6)
    simclr = sum(n for a, n in work.training.items() if a.startswith("side:"))
    slower = work.seconds(train_per_s=1, embed_per_s=1e9, h_items_per_s=1e9, simclr_per_s=0.5,
                          compile_s=2.0)
    assert slower["training"] == pytest.approx(seconds["training"] + simclr)
    assert slower["compilation"] == 2.0 * (len(work.training) + len(work.transformation))
    part = work.part(["old", "h:0", "nothing"])
    assert (part.training, part.transformation) == ({"old": 10 * 1}, {"h:0": 20 * 2})


def test_gpu_preset_work_fits_seven_minutes_on_one_gpu_before_compiling():
    preset = load_preset("tiny-imagenet-100-gpu")
    sizes = class_split_sizes(preset, 500, 50, 100)
    seconds = main_comparison_work(preset, sizes).seconds(**RATES)
    assert seconds["total"] <= 8 * 60 - 60  # a minute left for loading data and evaluating
    # old 0.675M, new 1.35M, 4 BCT variants, the control and the matched models of bt2 and normsm
    # 7 x 1.35M (bt2's two at batch 128), SimCLR side:128 and side:32 2 x 1.8M image passes
    small, simclr = 2 * 1_350_000, 2 * 1_800_000
    assert seconds["training"] == pytest.approx(
        (15_075_000 - small - simclr) / RATES["train_per_s"]
        + small / RATES["small_batch_per_s"] + simclr / RATES["simclr_per_s"])
    # compiling each of 14 networks and h's 10 s more than that leaves no room
    assert main_comparison_work(preset, sizes).seconds(**RATES, compile_s=10)["total"] > 8 * 60


def test_gpu_preset_is_the_issue_recipe():
    preset = load_preset("tiny-imagenet-100-gpu")
    assert preset.data.dataset.name == "tiny-imagenet-100" and preset.data.dataset.image_size == 64
    assert preset.data.old_classes is None and preset.data.train_per_class is None
    for stage in (preset.old, preset.new, preset.side_info):
        assert (stage.model.arch, stage.model.embedding_dim) == ("resnet18", 128)
    assert len(preset.method("bct").models()) > 1  # the sweep, chosen on tune
    h = preset.transformation
    assert (h.branch_widths, h.mixer_widths) == ([256, 256], [2048, 2048])


def _bench(tmp_path, notebooks):
    path = tmp_path / "benchmarks.json"
    path.write_text(json.dumps({
        "git_commit": "abcdef123456", "date": "2026-11-28 10:31 UTC",
        "machine": {"cpu": "AMD EPYC", "cpu_count": 2},
        "figures": {"default_preset_wall": {"notebooks": notebooks, "seconds_per_seed": 1104.1}}}))
    return path


def test_the_default_preset_cost_of_a_step_is_the_benchmark_figure(tmp_path):
    bench = _bench(tmp_path, {"04_bct": 98.1})
    line = measured_step_cost("fashion-mnist", "04_bct", bench, tmp_path / "none")
    assert line.startswith("04_bct takes 98 s of the 1,104 s of one fashion-mnist seed")
    assert "2 CPU cores" in line and "commit abcdef1" in line


def test_another_preset_reads_its_last_committed_timings_or_says_it_was_never_timed(tmp_path):
    results = tmp_path / "results" / "tiny"
    (results / "notebooks" / "seed0").mkdir(parents=True)
    (results / "notebooks" / "seed0" / "timings.json").write_text('{"01_train_old": 1234.5}')
    bench = _bench(tmp_path, {"01_train_old": 11.0})  # the default preset's: not this one's
    line = measured_step_cost("tiny", "01_train_old", bench, results)
    assert line.startswith("01_train_old took 1,234 s on tiny in its last committed run")
    assert "results/tiny/notebooks/seed0/timings.json" in line
    assert measured_step_cost("tiny", "04_bct", bench, results) == (
        "04_bct has not been timed on tiny yet")


def test_every_notebook_of_the_committed_default_preset_has_a_measured_cost():
    """Each notebook whose record the committed default preset holds has its measured cost; one
    it has not run yet says so."""
    from fctlib.experiment.records import STEP_RECORDS
    from fctlib.paths import STEPS, results_root

    metrics = results_root("fashion-mnist") / "metrics" / "seed0"
    recorded = {STEP_RECORDS[p.stem].NOTEBOOK for p in metrics.glob("*.json")}
    for step in STEPS:
        line = measured_step_cost("fashion-mnist", step)
        assert ("not been timed" in line) == (step not in recorded), line
