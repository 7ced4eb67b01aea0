"""The report's multi-step tables: matrices and AC/AM over seeds, in the order measured."""

import numpy as np
import pytest

from fctlib import report
from fctlib.experiment.records import MultistepRecord
from fctlib.report.multistep import fit_error_table
from fctlib.suite.multistep import compatibility_scores


def _record(offset, distances=("l2",), methods=("independent",)):
    lower = [[0.5 + offset, None, None], [0.6 + offset, 0.55, None], [0.4, 0.7, 0.65]]
    ac, am = compatibility_scores(np.array(lower, dtype=float))
    results = {"top1": lower, "mAP": lower, "AC_top1": ac, "AM_top1": am, "AC_mAP": ac,
               "AM_mAP": am}
    return MultistepRecord.from_json({
        "generations": [[0], [0, 1], [0, 1, 2]], "methods": list(methods),
        "distances": {d: {m: results for m in sorted(methods)} for d in distances}})


def test_report_tables_mean_over_seeds():
    records = {seed: {"multistep": _record(offset, ("l2", "cosine"))}
               for seed, offset in ((0, 0.0), (1, 0.1))}
    long = report.matrix_rows(records)
    assert len(long) == 2 * 2 * 2 * 6  # seeds x distances x metrics x lower-triangle entries
    table = report.matrix_table(long).set_index(
        ["distance", "method", "metric", "query", "gallery"])
    assert table.at[("l2", "independent", "top1", 1, 1), "mean"] == pytest.approx(55.0)
    assert table.at[("cosine", "independent", "top1", 2, 2), "mean"] == pytest.approx(55.0)
    assert table.at[("l2", "independent", "top1", 3, 1), "seeds"] == 2
    scores = report.scores_table(report.scores_rows(records))
    assert list(scores["distance"]) == ["l2", "cosine"]
    table = report.compatibility_table(scores, "l2")
    assert list(table.columns) == ["method", "AC", "AM"]
    # seed 0: (2,1) 0.6 > 0.5 and (3,2) 0.7 > 0.55 -> 2/3; seed 1: 0.7 > 0.6, 0.5 < 0.6, 0.7 > 0.55
    assert table.at[0, "AC"] == pytest.approx(2 / 3, abs=1e-3)
    am0 = (0.5 + 0.6 + 0.55 + 0.4 + 0.7 + 0.65) / 6
    assert table.at[0, "AM"] == pytest.approx(100 * (am0 + (am0 + 0.2 / 6)) / 2, abs=0.01)
    sentence = report.compatibility_sentence(table, seeds=2, distance="l2")
    assert "AC falls short for independent 0.67" in sentence
    assert report.scores_table(report.scores_rows({0: {}})).empty


def test_one_seeds_record_gives_its_own_rows():
    record = _record(0.1, ("l2", "cosine"))
    frame = report.matrix_frame(record, seed=3)
    assert set(frame["seed"]) == {3}
    assert frame.equals(report.matrix_rows({3: {"multistep": record}}))
    assert report.scores_frame(record, seed=3).equals(
        report.scores_rows({3: {"multistep": record}}))


def test_report_keeps_the_method_order_of_the_experiment():
    methods = ["independent", "bct", "dsimplex", "fct-chained", "fct-direct"]
    records = {0: {"multistep": _record(0.0, methods=methods)}}
    scores = report.scores_table(report.scores_rows(records))
    assert list(report.compatibility_table(scores, "l2")["method"]) == methods
    matrices = report.matrix_table(report.matrix_rows(records))
    assert list(dict.fromkeys(matrices["method"])) == methods


def test_fit_error_table_numbers_generations_from_one_and_skips_records_without_it():
    with_errors = _record(0.0)
    with_errors.fit_error = {"0->1": {"train": 0.01, "tune": 0.03},
                             "1->2": {"train": 0.02, "tune": 0.04}}
    other = _record(0.1)
    other.fit_error = {"0->1": {"train": 0.03, "tune": 0.05}}
    table = fit_error_table({0: {"multistep": with_errors}, 1: {"multistep": other},
                             2: {"multistep": _record(0.2)}}).set_index("transformation")
    assert list(table.index) == ["h(1 -> 2)", "h(2 -> 3)"]
    assert table.at["h(1 -> 2)", "train"] == pytest.approx(0.02)
    assert table.at["h(1 -> 2)", "tune"] == pytest.approx(0.04)
    assert table.at["h(2 -> 3)", "seeds"] == 1 and table.at["h(1 -> 2)", "seeds"] == 2
    assert fit_error_table({0: {"multistep": _record(0.0)}}).empty
    saved = MultistepRecord.from_json(with_errors.to_json())
    assert saved.fit_error == with_errors.fit_error
    assert "fit_error" not in _record(0.0).to_json()
