import math

import numpy as np
import pytest

from fctlib.experiment.records import NewRecord, OldRecord
from fctlib.report.reproduction import (
    compare_results,
    machines,
    prediction_bound,
    reproduction_table,
    reproduction_verdict,
    t_quantile,
)


def _metrics(top1, top5=0.9, mAP=0.5):
    return {"all": {"top1": top1, "top5": top5, "mAP": mAP}}


def _records(old_top1: dict[int, float], new_top1: float = 0.8, compute=None):
    """{seed: {step: record}} with old/old's top-1 per seed and a fixed new/new."""
    return {seed: {"old": OldRecord(cases={"old/old": _metrics(v)}, history=[],
                                    compute=compute or {}),
                   "new": NewRecord(cases={"new/new": _metrics(new_top1)}, diagnostic={},
                                    history=[])}
            for seed, v in old_top1.items()}


@pytest.mark.parametrize(("p", "dof", "table"), [
    (0.975, 1, 12.706), (0.975, 2, 4.303), (0.995, 2, 9.925), (0.975, 30, 2.042),
    (0.95, 5, 2.015)])
def test_t_quantile_matches_the_printed_table(p, dof, table):
    assert t_quantile(p, dof) == pytest.approx(table, abs=2e-3)


def test_table_by_hand():
    committed = _records({0: 0.70, 1: 0.74, 2: 0.72})
    yours = _records({0: 0.69})
    table = reproduction_table(yours, committed).set_index(["case", "metric"])
    row = table.loc[("old/old", "top1")]
    std = np.std([70.0, 74.0, 72.0], ddof=1)  # 2.0
    assert row["yours"] == pytest.approx(69.0) and row["committed"] == pytest.approx(72.0)
    assert row["std"] == pytest.approx(std) and row["seeds"] == 3 and row["seeds_yours"] == 1
    assert row["z"] == pytest.approx(-3.0 / std)
    assert row["same_seed_diff"] == pytest.approx(1.0)  # seed 0: 69 against 70
    assert row["bound"] == pytest.approx(4.303 * math.sqrt(1 + 1 / 3), abs=2e-3)
    assert math.isnan(table.loc[("new/new", "top1"), "z"])  # no spread: not judged
    assert len(table) == 6  # 2 cases x 3 metrics


def test_verdicts():
    committed = _records({0: 0.70, 1: 0.74, 2: 0.72}, new_top1=0.8)
    same = reproduction_verdict(reproduction_table(_records({0: 0.70}), committed))
    assert same.startswith("identical: all 6 numbers")
    near = reproduction_verdict(reproduction_table(_records({5: 0.75}), committed))
    assert near.startswith("reproduced: all 1 numbers") and "old/old top1" in near
    far = reproduction_verdict(reproduction_table(_records({5: 0.85}), committed))
    assert far.startswith("NOT reproduced: 1 of 1 numbers") and "(old/old top1)" in far
    one_seed = reproduction_verdict(reproduction_table(_records({5: 0.75}), {0: committed[0]}))
    assert one_seed.startswith("cannot judge")
    assert reproduction_verdict(reproduction_table({0: {}}, committed)).startswith("nothing")


def test_bound_narrows_with_seeds():
    assert math.isnan(prediction_bound(1, 1))
    assert prediction_bound(3, 1) > prediction_bound(10, 1) > prediction_bound(10, 10) > 0


def test_compare_results_from_folders(tmp_path):
    cpu = {"cpu": "Test CPU", "cpu_capability": "AVX2"}
    for name, values in (("mine", {0: 0.85}), ("committed", {0: 0.70, 1: 0.74, 2: 0.72})):
        for seed, steps in _records(values, compute=cpu).items():
            for record in steps.values():
                record.save(tmp_path / name, seed)
    text, reproduced = compare_results(tmp_path / "mine", tmp_path / "committed")
    assert not reproduced and text.splitlines()[-1].startswith("NOT reproduced")
    assert "cpu Test CPU, cpu_capability AVX2; not recorded" in text.splitlines()[0]
    assert machines({0: {}}) == ""


def test_fct_compare_exit_codes(tmp_path, capsys):
    from fctlib.suite.cli import NOT_REPRODUCED
    from fctlib.suite.cli import main as fct

    for name, values in (("mine", {0: 0.85}), ("same", {0: 0.70}),
                         ("committed", {0: 0.70, 1: 0.74, 2: 0.72})):
        for seed, steps in _records(values).items():
            for record in steps.values():
                record.save(tmp_path / name, seed)
    compare = ["compare", "--preset", "smoke", "--to", str(tmp_path / "committed")]
    assert fct([*compare, "--results-dir", str(tmp_path / "same")]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("identical")
    assert fct([*compare, "--results-dir", str(tmp_path / "mine")]) == NOT_REPRODUCED == 3
    assert fct([*compare, "--results-dir", str(tmp_path / "absent")]) == 1
    assert "--results-dir" in capsys.readouterr().err.splitlines()[-1]
