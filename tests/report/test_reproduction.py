import json
import math
from pathlib import Path

import numpy as np
import pytest

from fctlib.experiment.records import CrossDatasetRecord, NewRecord, OldRecord, load_records
from fctlib.report.common import data_sets
from fctlib.report.moderated_t import moderated_variance, t_quantile, t_two_sided_p
from fctlib.report.reproduction import (
    PRIOR_MAX_DOF,
    committed_priors,
    compare_results,
    holm_adjusted,
    machines,
    number_kind,
    record_numbers,
    reproduction_table,
    reproduction_verdict,
    same_data,
    same_models,
    simulated_alarm,
)

COMMITTED = Path(__file__).resolve().parents[2] / "results" / "fashion-mnist"


def _metrics(top1, top5=0.9, mAP=0.5):
    return {"all": {"top1": top1, "top5": top5, "mAP": mAP}}


def _records(old: dict[int, float], new: dict[int, float] | None = None, compute=None):
    """{seed: {step: record}}: old/old's and new/new's top-1 per seed (top-5 and mAP move with
    top-1 by fixed offsets, so every metric has two numbers with a spread)."""
    new = new or {seed: v + 0.1 for seed, v in old.items()}

    def metrics(v):
        return _metrics(v, top5=min(v + 0.15, 1.0), mAP=v - 0.2)

    return {seed: {"old": OldRecord(cases={"old/old": metrics(v)}, history=[],
                                    compute=compute or {}),
                   "new": NewRecord(cases={"new/new": metrics(new[seed])}, diagnostic={},
                                    history=[])}
            for seed, v in old.items()}


COMMITTED_OLD = {0: 0.70, 1: 0.74, 2: 0.72}
COMMITTED_NEW = {0: 0.80, 1: 0.81, 2: 0.83}


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> monotone 0.06
    adjusted = holm_adjusted([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjusted([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_number_kinds():
    assert [number_kind("methods", c) for c in ("bct/old", "new/old", "oca/oca-old",
                                                "proj/old")] == ["cross-model"] * 4
    assert [number_kind("methods", c) for c in ("old/old", "fct/side", "fct-arch/no-side")] == [
        "same-model"] * 3
    assert number_kind("ablations", "fct, h 4x wide") == "same-model"
    assert number_kind("fastfill", "fct random area, no side-info") == "backfilling area"
    assert number_kind("multistep", "bct AM") == "multi-step AM"


def test_table_by_hand():
    committed = _records(COMMITTED_OLD, COMMITTED_NEW)
    yours = _records({0: 0.69}, {0: 0.85})
    table = reproduction_table(yours, committed).set_index(["case", "metric"])
    row = table.loc[("old/old", "top1")]
    std = np.std([70.0, 74.0, 72.0], ddof=1)  # 2.0
    assert row["yours"] == pytest.approx(69.0) and row["committed"] == pytest.approx(72.0)
    assert row["std"] == pytest.approx(std) and row["seeds"] == 3 and row["seeds_yours"] == 1
    assert row["same_seed_diff"] == pytest.approx(1.0)  # seed 0: 69 against 70
    prior = committed_priors(record_numbers(committed))[("top1", "same-model")]
    assert prior.dof <= PRIOR_MAX_DOF
    variance, dof = moderated_variance(std ** 2, 2, prior)
    t = -3.0 / math.sqrt(variance * (1 / 3 + 1))
    assert row["moderated_std"] == pytest.approx(math.sqrt(variance)) and row["dof"] == dof
    assert row["t"] == pytest.approx(t) and row["p"] == pytest.approx(t_two_sided_p(t, dof))
    # 6 distinct numbers: Holm's first step is Bonferroni's, so the bound is its t quantile
    assert row["bound"] == pytest.approx(
        t_quantile(1 - 0.05 / 12, dof) * math.sqrt(variance * (1 + 1 / 3)))
    assert table["p_holm"].to_numpy() == pytest.approx(holm_adjusted(table["p"]))
    assert len(table) == 6 and not table["repeat"].any()  # 2 cases x 3 metrics


def test_a_partial_run_is_judged_with_every_committed_spread():
    committed = _records(COMMITTED_OLD, COMMITTED_NEW)
    only_old = {0: {"old": _records({0: 0.69})[0]["old"]}}
    partial = reproduction_table(only_old, committed).set_index("metric")
    whole = reproduction_table(_records({0: 0.69}, {0: 0.85}), committed)
    whole = whole[whole["case"] == "old/old"].set_index("metric")
    assert list(partial["case"].unique()) == ["old/old"]
    assert partial["moderated_std"].to_numpy() == pytest.approx(whole["moderated_std"])
    assert partial["dof"].to_numpy() == pytest.approx(whole["dof"])


def test_repeated_numbers_are_one_test():
    committed, yours = _records(COMMITTED_OLD, COMMITTED_NEW), _records({0: 0.69}, {0: 0.85})
    for records in (committed, yours):  # a second step reporting the very same old/old
        for steps in records.values():
            steps["copy"] = NewRecord(cases=dict(steps["old"].cases), diagnostic={},
                                      history=[])
            steps["copy"].NOTEBOOK = "99_copy"
    table = reproduction_table(yours, committed)
    assert list(table["step"].unique()) == ["old", "new", "copy"]  # notebook order
    copies = table[table["step"] == "copy"].set_index("metric")
    originals = table[table["step"] == "old"].set_index("metric")
    assert copies["repeat"].all() and not originals["repeat"].any()
    assert (copies["p_holm"] == originals["p_holm"]).all()
    alone = reproduction_table(_records({0: 0.69}, {0: 0.85}),
                               _records(COMMITTED_OLD, COMMITTED_NEW))
    assert table["p_holm"].dropna().unique() == pytest.approx(alone["p_holm"].unique())


def test_verdicts():
    committed = _records(COMMITTED_OLD, COMMITTED_NEW)
    same = reproduction_verdict(reproduction_table(_records({0: 0.70}, {0: 0.80}), committed))
    assert same.startswith("identical: all 6 numbers")
    near = reproduction_verdict(reproduction_table(_records({5: 0.73}, {5: 0.80}), committed))
    assert near.startswith("reproduced: none of 6 numbers (6 distinct)")
    far = reproduction_verdict(reproduction_table(_records({5: 0.99}, {5: 0.81}), committed))
    assert far.startswith("NOT reproduced: ") and "old old/old top1" in far
    one_seed = reproduction_verdict(reproduction_table(_records({5: 0.75}), {0: committed[0]}))
    assert one_seed.startswith("cannot judge")
    assert reproduction_verdict(reproduction_table({0: {}}, committed)).startswith("nothing")


@pytest.mark.parametrize("committed_seeds", [3, 4])
@pytest.mark.parametrize("true_prior_dof", [4.0, 20.0])
def test_family_wise_false_alarms_stay_under_5_percent(true_prior_dof, committed_seeds):
    rng = np.random.default_rng(0)
    alarms = [simulated_alarm(rng, 100, true_prior_dof, committed_seeds=committed_seeds)
              for _ in range(400)]
    assert np.mean(alarms) <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / 400)  # 2 standard errors


def test_a_number_far_outside_its_spread_is_found():
    rng = np.random.default_rng(1)
    assert np.mean([simulated_alarm(rng, 100, 8.0, shift=15.0) for _ in range(100)]) > 0.95


def test_every_committed_number_is_compared():
    """The committed fashion-mnist records: every case under each distance, every methods row,
    side-info size, backfilling curve's area, ablation and multi-step AM, in percent."""
    numbers = record_numbers(load_records(COMMITTED))
    seed0 = numbers[numbers["seed"] == 0]
    raw = {path.stem: json.loads(path.read_text())
           for path in (COMMITTED / "metrics" / "seed0").glob("*.json")}
    per_step = seed0.groupby("step").size().to_dict()
    assert per_step["methods"] == 3 * len(raw["methods"]["rows"])
    assert per_step["side_info_size"] == 3 * len(raw["side_info_size"]["rows"])
    assert per_step["ablations"] == 3 * sum(len(raw["ablations"][k]) for k in
                                            ("side_info_source", "data_share", "width"))
    assert per_step["old"] == 3 * sum(len(c) for c in raw["old"]["by_distance"].values())
    assert per_step["fastfill"] == 3 * len(raw["fastfill"]["curves"])
    multistep = raw["multistep"]
    assert per_step["multistep"] == 2 * len(multistep["distances"]) * len(multistep["methods"])
    curve = raw["fastfill"]["curves"][-1]  # the area by the published rule: its points' mean
    side_info = (f"side-info {curve['side_info_dim']}" if curve["side_info_dim"]
                 else "no side-info")
    area = seed0[seed0["case"] == f"{curve['transformation']} {curve['order']} area, {side_info}"]
    top1 = [point["metrics"]["all"]["top1"] for point in curve["points"]]
    assert len(top1) == 22
    assert area.set_index("metric")["value"]["top1"] == pytest.approx(100 * sum(top1) / 22)
    method = multistep["methods"][-1]  # AM: the mean of the matrix's lower triangle
    lower = [v for row in multistep["distances"]["cosine"][method]["mAP"] for v in row
             if v is not None]
    assert len(lower) == 6
    am = seed0[(seed0["case"] == f"{method} AM") & (seed0["distance"] == "cosine")]
    assert am.set_index("metric")["value"]["mAP"] == pytest.approx(100 * sum(lower) / 6)
    row = raw["methods"]["rows"][0]
    got = seed0[(seed0["step"] == "methods") & (seed0["case"] == row["case"])
                & (seed0["distance"] == row["distance"]) & (seed0["metric"] == "mAP")]
    assert got["value"].item() == pytest.approx(100 * row["mAP"])


def test_each_committed_seed_reproduces_the_other_two():
    """Leave one committed seed out: judged as a new seed against the other two, each must be
    `reproduced` (they are faithful runs by construction)."""
    records = load_records(COMMITTED)
    for seed in records:
        others = {s: r for s, r in records.items() if s != seed}
        verdict = reproduction_verdict(reproduction_table({seed + 10: records[seed]}, others))
        assert verdict.startswith("reproduced"), verdict


def test_compare_results_from_folders(tmp_path):
    cpu = {"cpu": "Test CPU", "cpu_capability": "AVX2"}
    for name, values in (("mine", {0: 0.99}), ("committed", COMMITTED_OLD)):
        for seed, steps in _records(values, compute=cpu).items():
            for record in steps.values():
                record.save(tmp_path / name, seed)
    text, reproduced = compare_results(tmp_path / "mine", tmp_path / "committed")
    lines = text.splitlines()
    assert not reproduced and lines[-1].startswith("NOT reproduced")
    assert lines[-2].startswith("screening: ") and lines[4].startswith("variance priors: top1")
    assert "cpu Test CPU, cpu_capability AVX2; not recorded" in lines[0]
    assert lines[2] == "data: not known to be the same (the records name no data: older code)"
    assert lines[3] == "models: not known to be the same (the records name no weights: older code)"
    assert machines({0: {}}) == ""
    loaded = OldRecord(cases={}, history=[], compute={"threads": "1"},
                       trained_with={"old": {"threads": "2"}})
    assert machines({0: {"old": loaded}}) == "threads 1; threads 2"


def test_the_comparison_says_whether_both_sides_used_the_same_data():
    def seeds(*data, own=None):
        records = {0: {"old": OldRecord(cases={}, history=[], data=data[0])}}
        for seed, digests in enumerate(data[1:], start=1):
            records[seed] = {"new": NewRecord(cases={}, diagnostic={}, history=[], data=digests)}
        if own:  # notebook 11's run on data of its own is not the seed's data
            records[0]["cross_dataset"] = CrossDatasetRecord(
                cases={}, source="", other_data="", bct="", splits=[], data=own)
        return records

    fashion = {"key": "k0", "train": "a" * 64, "test": "b" * 64}
    resplit = {**fashion, "key": "k1"}  # another class split of the same images
    other = {**fashion, "test": "c" * 64}
    joined = {"key": "k2", "train": "d" * 64, "test": "e" * 64}
    assert data_sets(seeds(fashion, resplit, own=joined)) == {("a" * 64, "b" * 64)}
    assert same_data(seeds(fashion, own=joined), seeds(resplit, {})) == (
        f"data: the same images and labels (train {'a' * 12}, test {'b' * 12})")
    assert same_data(seeds(fashion), seeds(other)) == (
        f"data: NOT the same images or labels (yours: train {'a' * 12}, test {'b' * 12}; "
        f"committed: train {'a' * 12}, test {'c' * 12}): a difference below may be the data's")
    assert same_data(seeds(fashion), seeds(fashion, other)).startswith("data: NOT the same")
    assert same_data(seeds({}), seeds(fashion)) == (
        "data: not known to be the same (your records name no data: older code)")


def test_the_comparison_counts_the_models_trained_bit_for_bit_alike():
    def seeds(weights: dict[int, dict[str, str]], own: dict[str, str] | None = None):
        records = {seed: {"new": NewRecord(cases={}, diagnostic={}, history=[], weights=w)}
                   for seed, w in weights.items()}
        if own is not None:  # notebook 11's `old` is a model of its own, not the seed's
            records[0]["cross_dataset"] = CrossDatasetRecord(
                cases={}, source="", other_data="", bct="", splits=[], weights=own)
        return records

    committed = seeds({0: {"old": "a", "new": "b"}, 1: {"old": "c", "new": "d"}}, own={"old": "e"})
    assert same_models(seeds({0: {"old": "a", "new": "b"}}, own={"old": "e"}), committed) == (
        "models: 3 of the 3 that both sides trained have the committed weights bit for bit "
        "(your arithmetic is ours)")
    # seed 1's new and notebook 11's own old model trained on other arithmetic; seed 5 is not
    # committed, and `h:0` was not trained on the committed side: neither is counted
    yours = seeds({0: {"old": "a", "new": "b", "h:0": "f"}, 1: {"old": "c", "new": "x"},
                   5: {"old": "a"}}, own={"old": "y"})
    assert same_models(yours, committed) == (
        "models: 3 of the 5 that both sides trained have the committed weights bit for bit; other "
        "weights (another arithmetic or training): seed 0: cross_dataset/old; seed 1: new")
    # one seed's steps naming two trainings of a model (trained apart) is not the committed one
    apart = seeds({0: {"old": "a"}})
    apart[0]["old"] = OldRecord(cases={}, history=[], weights={"old": "z"})
    assert same_models(apart, committed).startswith("models: 0 of the 1 ")
    assert same_models(seeds({7: {"old": "a"}}), committed).startswith("models: none in common")
    assert same_models(seeds({0: {}}), committed) == (
        "models: not known to be the same (your records name no weights: older code)")


def test_fct_compare_exit_codes(tmp_path, capsys):
    from fctlib.suite.cli import NOT_REPRODUCED
    from fctlib.suite.cli import main as fct

    for name, values in (("mine", {0: 0.99}), ("same", {0: 0.70}),
                         ("committed", COMMITTED_OLD)):
        for seed, steps in _records(values).items():
            for record in steps.values():
                record.save(tmp_path / name, seed)
    compare = ["compare", "--preset", "smoke", "--to", str(tmp_path / "committed")]
    assert fct([*compare, "--results-dir", str(tmp_path / "same")]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("identical")
    assert fct([*compare, "--results-dir", str(tmp_path / "mine")]) == NOT_REPRODUCED == 3
    assert fct([*compare, "--results-dir", str(tmp_path / "absent")]) == 1
    assert "--results-dir" in capsys.readouterr().err.splitlines()[-1]
