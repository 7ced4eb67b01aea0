"""The report's methods table, compatibility criteria and price."""

import json
from pathlib import Path

import pandas as pd
import pytest

from fctlib import report
from fctlib.experiment.record_rows import Criterion, MethodRow
from fctlib.experiment.records import MethodsRecord

NOTEBOOK_09 = Path(__file__).resolve().parents[2] / "notebooks" / "09_methods.ipynb"


def _record(rows, criteria=(), unpriced=()):
    return MethodsRecord(rows=[MethodRow(m, c, d, t, t, t / 2, 0.6) for m, c, d, t in rows],
                         bct_weight=1.0, projection={}, criteria=list(criteria),
                         unpriced=list(unpriced))


def test_methods_table_means_over_seeds_in_percent_and_reads_failures():
    cases = [("independent", "old/old", "l2"), ("independent", "new/new", "l2"),
             ("projection", "proj/old", "l2"), ("bct", "bct/old", "l2"),
             ("independent", "old/old", "cosine"), ("projection", "proj/old", "cosine")]
    seed0 = [(*k, v) for k, v in zip(cases, (0.4, 0.6, 0.3, 0.5, 0.4, 0.45), strict=True)]
    seed1 = [(*k, v) for k, v in zip(cases, (0.5, 0.7, 0.4, 0.6, 0.5, 0.55), strict=True)]
    records = {0: {"methods": _record(seed0)}, 1: {"methods": _record(seed1)}}
    table = report.methods_table(report.methods_rows(records))
    assert list(table.columns) == ["method", "case", "distance", "top1", "top5", "mAP",
                                   "new_top1", "in_protocol"]
    assert table["in_protocol"].all()  # rows recorded before the column default to inside
    assert [tuple(r) for r in table[["method", "case", "distance"]].values] == cases
    row = table.iloc[2]
    assert (row["top1"], row["mAP"], row["new_top1"]) == (35.0, 17.5, 60.0)
    sentence = report.methods_sentence(table, seeds=2)
    assert sentence.startswith("Mean over 2 seed(s)")
    assert "under l2 old/old top-1 is 45.00% and bct/old 55.00% beat it" in sentence
    assert "expected gain fails for proj/old 35.00%" in sentence
    assert "under cosine old/old top-1 is 45.00% and proj/old 50.00% beat it" in sentence
    empty = report.methods_table(report.methods_rows({0: {}}))
    assert list(empty.columns) == list(report.METHODS_COLUMNS)
    one_seed = report.methods_frame(records[1]["methods"].rows, seed=1)
    assert list(one_seed["top1"]) == pytest.approx([50.0, 70.0, 40.0, 60.0, 50.0, 55.0])


def test_rows_outside_a_methods_protocol_are_labelled():
    rows = [MethodRow("oca", "oca/old", d, 0.5, 0.6, 0.3, 0.7, in_protocol=d == "cosine")
            for d in ("l2", "cosine")]
    record = MethodsRecord(rows=rows, bct_weight=1.0, projection={}, criteria=[], unpriced=[])
    table = report.methods_table(report.methods_rows({0: {"methods": record}}))
    assert table.set_index("distance")["in_protocol"].to_dict() == {"l2": False, "cosine": True}


def _methods():
    rows = [("independent", "old/old", 50.0, 70.0), ("independent", "new/new", 70.0, 70.0),
            ("independent", "new/old", 5.0, 70.0), ("bct", "bct/old", 52.0, 66.0),
            ("bct", "bct/bct", 66.0, 66.0), ("oca", "oca/old", 48.0, 69.0),
            ("fct", "fct/side", 65.0, 70.0), ("fct-arch", "fct-arch/side", 60.0, 75.0)]
    return pd.DataFrame([{"seed": 0, "method": m, "case": c, "distance": "l2", "top1": t,
                          "top5": t, "mAP": t / 2, "new_top1": own, "in_protocol": m != "oca"}
                         for m, c, t, own in rows])


# as the method registry declares them (tests/test_methods.py checks the registry's side)
CRITERIA_RECORDS = [Criterion(*c) for c in (
    ("independent", "new/old", "old/old"), ("bct", "bct/old", "old/old"),
    ("dsimplex", "dsimplex/old", "dsimplex-old/dsimplex-old"),
    ("dsimplex", "dsimplex/old", "old/old"), ("oca", "oca/old", "old/old"))]
UNPRICED = ["fct-arch", "fct-loss"]


def test_criteria_and_price():
    criteria = report.criteria_table(_methods(), CRITERIA_RECORDS).set_index(["case", "metric"])
    assert criteria.at[("bct/old", "top1"), "verdict"] == "holds"
    assert criteria.at[("bct/old", "top1"), "margin"] == pytest.approx(2.0)
    assert criteria.at[("oca/old", "top1"), "verdict"] == "fails"
    assert not criteria.at[("oca/old", "top1"), "in_protocol"]
    assert criteria.at[("new/old", "mAP"), "verdict"] == "fails"
    assert "dsimplex/old" not in criteria.index.get_level_values(0)  # no rows: no criterion
    prices = report.price_table(_methods(), UNPRICED).set_index("method")["price"]
    assert prices.to_dict() == {"independent": 0.0, "bct": 4.0, "oca": 1.0, "fct": 0.0}
    sentence = report.criteria_sentence(report.criteria_table(_methods(), CRITERIA_RECORDS),
                                        report.price_table(_methods(), UNPRICED), "l2")
    assert "bct/old beats old/old (52.00% vs 50.00%, 1/1 seeds)" in sentence
    assert "oca/old does not beat old/old (48.00% vs 50.00%, 0/1 seeds, outside its protocol)" \
        in sentence
    assert "bct +4.00" in sentence and "oca +1.00" in sentence


def test_a_criterion_met_in_some_seeds_only_is_unresolved():
    # the audit's case: oca/old above old/old by +0.16, +0.26 and -0.5 top-1 in three seeds
    seeds = [_methods().assign(seed=k) for k in range(3)]
    for frame, margin in zip(seeds, (0.16, 0.26, -0.5), strict=True):
        frame.loc[frame["case"] == "oca/old", "top1"] = 50.0 + margin
    criteria = report.criteria_table(pd.concat(seeds), CRITERIA_RECORDS).set_index(
        ["case", "metric"])
    assert criteria.at[("oca/old", "top1"), "verdict"] == "unresolved"
    assert criteria.at[("oca/old", "top1"), "seeds_agreeing"] == "2/3"
    assert criteria.at[("oca/old", "top1"), "margin"] == pytest.approx(-0.03, abs=1e-9)
    assert criteria.at[("bct/old", "top1"), "seeds_agreeing"] == "3/3"


def test_criteria_and_unpriced_methods_come_from_the_records():
    bct, oca = Criterion("bct", "bct/old", "old/old"), Criterion("oca", "oca/old", "old/old")
    records = {0: {"methods": _record([], [bct], ["fct-arch"])},
               1: {"methods": _record([], [bct, oca], ["fct-arch", "fct-loss"])}, 2: {}}
    assert report.seeds_criteria(records) == [bct, oca]
    assert report.seeds_unpriced(records) == ["fct-arch", "fct-loss"]
    only_bct = report.criteria_table(_methods(), [bct])
    assert set(only_bct["method"]) == {"bct"}
    priced = report.price_table(_methods(), []).set_index("method")["price"]
    assert priced["fct-arch"] == pytest.approx(-5.0)  # priced when no record leaves it out


def test_methods_not_measured_are_named_with_the_stated_reason():
    registered = ["independent", "bct", "fct", "fastfill", "projection", "dsimplex", "oca",
                  "fct-arch", "fct-loss"]
    records = {0: {"methods": MethodsRecord(rows=[], bct_weight=1.0, projection={}, criteria=[],
                                            unpriced=[], methods=registered)}}
    assert report.seeds_methods(records) == registered
    table = pd.DataFrame({"method": ["independent", "bct", "fct", "fastfill", "projection"]})
    line = report.methods_not_run(table, registered,
                                  {"oca": "predates it", "fct-arch": "predates it"})
    assert line == ("Not measured for this preset: dsimplex, oca, fct-arch, fct-loss "
                    "(predates it).")
    every = pd.DataFrame({"method": registered})
    assert report.methods_not_run(every, registered, {}) == ""


def test_notebook_09_records_every_registered_method_in_table_order():
    from fctlib.methods import registry

    source = json.loads(NOTEBOOK_09.read_text())
    code = "".join("".join(c["source"]) for c in source["cells"] if c["cell_type"] == "code")
    assert "methods=[m.name for m in registry.methods()]" in code
    assert [m.name for m in registry.methods()][0] == "independent"


def test_oca_diagnostics_table_by_hand(tmp_path):
    rows = [("oca", "oca-old/oca-old", "cosine", 0.40), ("oca", "oca/oca-old", "cosine", 0.20),
            ("oca", "oca/oca-old", "l2", 0.10)]
    records = {}
    for seed, value in ((0, 0.30), (1, 0.50)):
        record = _record(rows)
        record.oca_diagnostics = {"old_prototype_test": value, "oracle_prototype_top1": 0.6}
        record.save(tmp_path, seed)  # the diagnostics round-trip through the record's JSON
        records[seed] = {"methods": MethodsRecord.from_json(json.loads(
            (tmp_path / "metrics" / f"seed{seed}" / "methods.json").read_text()))}
    records[2] = {"methods": _record(rows)}  # a record written before the diagnostics
    assert "oca_diagnostics" not in records[2]["methods"].to_json()
    table = report.oca_diagnostics_table(records).set_index("diagnostic")
    assert list(table.index) == ["old_prototype_test", "oracle_prototype_top1",
                                 "oca-old/oca-old top1 (cosine)", "oca/oca-old top1 (cosine)"]
    assert table.at["old_prototype_test", "mean"] == 40.0
    assert table.at["old_prototype_test", "std"] == pytest.approx(14.14, abs=0.01)
    assert table.at["oca/oca-old top1 (cosine)", "mean"] == 20.0  # cosine, its protocol
    assert (table["seeds"] == 2).all()
    assert report.oca_diagnostics_table({2: records[2]}).empty
