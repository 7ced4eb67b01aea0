"""Run-to-run variance (benchmarks/gpu_variance.py): the order of its runs, a budget that skips
what it cannot hold and a rerun that skips what is made, the summary against hand-made rows, the
seeds' std from committed records, and end to end through the device wrapper on a CPU: each run
a process whose kernels are its trial's, and on a CPU every repeat the same number."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_variance  # noqa: E402
from gpu_variance import Trial  # noqa: E402


def test_seed_zero_is_repeated_with_each_kind_of_kernels_before_the_other_seeds():
    assert [t.name for t in gpu_variance.plan([0, 1, 2], 2)] == [
        "autotuned-seed0-r0", "autotuned-seed0-r1", "deterministic-seed0-r0",
        "deterministic-seed0-r1", "autotuned-seed1-r0", "autotuned-seed2-r0"]
    assert [t.name for t in gpu_variance.plan([3], 3)] == [
        "autotuned-seed3-r0", "autotuned-seed3-r1", "autotuned-seed3-r2",
        "deterministic-seed3-r0", "deterministic-seed3-r1", "deterministic-seed3-r2"]


def rows(kernels, seed, repeat, old, new, rate=100.0, weights=("w-old", "w-new")):
    """One run's rows: old/old and new/new as (top1, mAP), their models' weights digests."""
    return [{"run": Trial(kernels, seed, repeat).name, "kernels": kernels, "seed": seed,
             "repeat": repeat, "case": case, "top1": top1, "mAP": mAP, "img_per_s": rate,
             "train_s": 1.0, "weights": digest}
            for case, (top1, mAP), digest in zip(("old/old", "new/new"), (old, new), weights,
                                                 strict=True)]


def test_the_summary_sets_the_repeats_of_one_seed_beside_the_spread_of_seeds():
    table = pd.DataFrame([*rows("autotuned", 0, 0, (19.68, 9.37), (36.20, 16.69), 40.0),
                          *rows("autotuned", 0, 1, (19.68, 9.46), (35.40, 16.71), 42.0,
                                ("w-old", "w-new-2")),
                          *rows("deterministic", 0, 0, (20.00, 9.50), (35.80, 16.50), 30.0),
                          *rows("deterministic", 0, 1, (20.00, 9.50), (35.80, 16.50), 32.0),
                          *rows("autotuned", 1, 0, (21.00, 10.0), (37.00, 17.0), 41.0),
                          *rows("autotuned", 2, 0, (20.00, 9.0), (38.20, 18.0), 41.0)])
    summary = gpu_variance.summary(table, 0).set_index(["case", "metric"])
    new_top1 = summary.loc[("new/new", "top1")]
    assert new_top1["autotuned"] == "36.20, 35.40"
    assert new_top1["autotuned_range"] == pytest.approx(0.8)
    assert new_top1["deterministic"] == "35.80, 35.80" and new_top1["deterministic_identical"]
    assert new_top1["deterministic_same_weights"] and not new_top1["autotuned_same_weights"]
    assert summary.loc[("old/old", "top1"), "autotuned_same_weights"]  # read from the digests,
    # not the metrics (these hand-made rows' mAP differ)
    # the seeds: 36.20 (seed 0's first run), 37.00, 38.20: std 1.0066 by hand
    mean = (36.20 + 37.00 + 38.20) / 3
    by_hand = (sum((v - mean) ** 2 for v in (36.20, 37.00, 38.20)) / 2) ** 0.5
    assert new_top1["seed_std"] == pytest.approx(by_hand, abs=1e-4) and new_top1["seeds"] == 3
    assert new_top1["deterministic_rate_ratio"] == pytest.approx(31.0 / 41.0, abs=1e-3)
    old_map = summary.loc[("old/old", "mAP")]
    assert old_map["autotuned_range"] == pytest.approx(0.09)
    assert old_map["deterministic_range"] == 0
    assert list(summary.index.get_level_values("case").unique()) == ["old/old", "new/new"]


def test_deterministic_repeats_that_differ_are_not_called_identical():
    table = pd.DataFrame([*rows("deterministic", 0, 0, (20.0, 9.5), (35.8, 16.5)),
                          *rows("deterministic", 0, 1, (20.0, 9.5), (35.8000001, 16.5))])
    summary = gpu_variance.summary(table, 0).set_index(["case", "metric"])
    assert not summary.loc[("new/new", "top1"), "deterministic_identical"]
    assert summary.loc[("old/old", "top1"), "deterministic_identical"]
    assert summary.loc[("old/old", "top1"), "autotuned"] == ""  # none made
    assert summary.loc[("old/old", "top1"), "autotuned_same_weights"] is None
    assert summary.loc[("old/old", "top1"), "deterministic_rate_ratio"] is None


def test_the_seeds_std_comes_from_committed_records_where_given(tmp_path):
    for seed, (old, new) in enumerate([(0.20, 0.36), (0.21, 0.37), (0.22, 0.41)]):
        folder = tmp_path / "metrics" / f"seed{seed}"
        folder.mkdir(parents=True)
        for model, top1 in (("old", old), ("new", new)):
            case = {"all": {"top1": top1, "mAP": top1 / 2}, "old": {"top1": 0.0, "mAP": 0.0}}
            (folder / f"{model}.json").write_text(json.dumps({"cases": {f"{model}/{model}": case}}))
        (folder / "bct.json").write_text("{}")  # another step's record: not read
    seeds = gpu_variance.committed_seed_values(tmp_path)
    assert len(seeds) == 6
    table = pd.DataFrame([*rows("autotuned", 0, 0, (1.0, 1.0), (1.0, 1.0)),
                          *rows("autotuned", 0, 1, (1.0, 1.0), (1.0, 1.0))])
    summary = gpu_variance.summary(table, 0, seeds).set_index(["case", "metric"])
    assert summary.loc[("new/new", "top1"), "seed_std"] == pytest.approx(2.6458, abs=1e-4)
    assert summary.loc[("old/old", "mAP"), "seed_std"] == pytest.approx(0.5, abs=1e-4)


@pytest.mark.parametrize("preset", ["fashion-mnist", "tiny-imagenet-100"])
def test_the_seeds_std_of_committed_records_is_the_reports(preset):
    """Read from a committed results folder, old/old's and new/new's seeds' std is the report's
    main table's (its preset's distance, rounded there to 2 decimals)."""
    from fctlib.paths import results_root
    from fctlib.report.common import read_table

    results = results_root(preset)
    seeds = gpu_variance.committed_seed_values(results)
    table = pd.DataFrame(rows("autotuned", 0, 0, (1.0, 1.0), (1.0, 1.0)))
    summary = gpu_variance.summary(table, 0, seeds).set_index(["case", "metric"])
    main = read_table(results / "tables" / "main.csv")
    main = main[main["distance"] == "l2"].set_index("case")
    for case in ("old/old", "new/new"):
        for metric in ("top1", "mAP"):
            assert summary.loc[(case, metric), "seed_std"] == pytest.approx(
                main.loc[case, f"{metric}_std"], abs=0.006)
            assert summary.loc[(case, metric), "seeds"] == main.loc[case, "seeds"]


def test_a_run_the_budget_cannot_hold_is_skipped_and_a_rerun_skips_what_is_made(tmp_path,
                                                                               monkeypatch):
    made = []

    def child(args, argv, trial, left):
        made.append(trial.name)
        folder = args.out / "variance" / "trials"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{trial.name}.json").write_text(json.dumps(
            rows(trial.kernels, trial.seed, trial.repeat, (1.0, 1.0), (2.0, 2.0))))
        return {"status": "done", "seconds": 40.0}

    monkeypatch.setattr(gpu_variance, "run_child", child)
    args = gpu_variance.parse_args([str(tmp_path), str(tmp_path / "out"), "--budget-s", "30",
                                    "--seeds", "0", "1"])
    statuses = gpu_variance.run_trials(args, [], {"preset": "x"})
    assert made == ["autotuned-seed0-r0"]
    assert statuses[1]["status"].startswith("skipped: ") and "took 40 s" in statuses[1]["status"]
    assert (tmp_path / "out" / "variance" / "summary.csv").read_text().startswith("# preset: x")
    again = gpu_variance.run_trials(args, [], {"preset": "x"})
    assert again[0]["status"] == "done before" and made == ["autotuned-seed0-r0",
                                                            "autotuned-seed0-r1"]


def test_a_run_that_fails_is_named_and_the_next_one_still_runs(tmp_path, capfd):
    """A child whose data are missing exits non-zero: its status says so, its traceback is in the
    console, and the plan goes on (here every run fails alike, and no table is written)."""
    args = gpu_variance.parse_args([str(tmp_path / "no-data"), str(tmp_path / "out"), "--preset",
                                    "smoke", "--budget-s", "120"])
    argv = [str(tmp_path / "no-data"), str(tmp_path / "out"), "--preset", "smoke"]
    statuses = gpu_variance.run_trials(args, argv, {"preset": "smoke"})
    assert [s["status"] for s in statuses] == ["failed: exit 1 (its traceback is above)"] * 4
    assert "Traceback" in capfd.readouterr().err
    assert not (tmp_path / "out" / "variance" / "summary.csv").exists()


def test_fewer_than_two_repeats_and_a_folder_without_records_are_refused(tmp_path, capsys):
    for options in (["--repeats", "1"], ["--seeds-from", str(tmp_path)]):
        with pytest.raises(SystemExit) as stop:
            gpu_variance.parse_args([str(tmp_path), str(tmp_path / "out"), *options])
        assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "at least 2" in err and "no metrics/ folder there" in err


def test_the_device_wrapper_runs_each_repeat_in_its_own_process_with_its_kernels(tmp_path):
    """`gpu_device.sh variance` on the smoke preset (Fashion-MNIST stashed as a GPU session's
    archives are): every run made by a process whose FCT_DETERMINISTIC is its trial's, its folder
    back as gv.tar.gz; on a CPU, whose kernels do not depend on the setting, every repeat of seed
    0 gives the same numbers and seed 1 others."""
    from fctlib.data.sources import FASHION_MNIST_SYSTEM_DIR

    if not FASHION_MNIST_SYSTEM_DIR.is_dir():
        pytest.skip("the smoke preset reads Fashion-MNIST from its Debian folder")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_device.sh"
    out = tmp_path / "out"
    env = {**os.environ, "TMPDIR": str(tmp_path), "OUT": str(out), "PYTHON": sys.executable,
           "GPU_VARIANCE_BUDGET_S": "240"}
    subprocess.run(["bash", str(script), "stash", str(FASHION_MNIST_SYSTEM_DIR)], env=env,
                   check=True, capture_output=True)
    empty = tmp_path / "carried"
    empty.mkdir()
    call = subprocess.run(["bash", str(script), "variance", str(empty), "--preset", "smoke",
                           "--seeds", "0", "1"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert call.returncode == 0, (out / "console.txt").read_text()[-3000:]
    assert "5 of 5 runs made" in call.stdout
    subprocess.run(["tar", "xzf", str(out / "gv.tar.gz"), "-C", str(tmp_path)], check=True)
    table = gpu_variance.load_rows(tmp_path / "variance")
    assert len(table) == 10
    assert (table["run"].str.split("-").str[0] == table["kernels"]).all()
    summary = pd.read_csv(tmp_path / "variance" / "summary.csv", comment="#")
    assert (summary["autotuned_range"] == 0).all() and summary["deterministic_identical"].all()
    assert summary["autotuned_same_weights"].all() and summary["deterministic_same_weights"].all()
    seed0 = table[table["seed"] == 0]
    assert seed0.groupby("case")["weights"].nunique().eq(1).all()  # one digest per model
    assert set(table[table["seed"] == 1]["weights"]).isdisjoint(seed0["weights"])
    assert (summary["seeds"] == 2).all() and (summary["seed_std"] > 0).any()
    assert not (tmp_path / "runs").exists()  # the trained models stay on the machine
