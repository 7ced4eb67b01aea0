"""The report's backfilling tables: areas under the curves, FastFill's claims, published areas."""

import pytest

from fctlib import report
from fctlib.evaluation.backfill import FRACTIONS
from fctlib.experiment.records import FastFillRecord, TransformationRecord
from fctlib.report.backfilling import area_under_curve, diagnostics_table


def test_auc_rules_by_hand():
    x, y = [0.0, 0.5, 1.0], [0.2, 0.4, 1.0]
    assert area_under_curve(x, y, "mean") == pytest.approx((0.2 + 0.4 + 1.0) / 3)
    assert area_under_curve(x, y, "trapezoid") == pytest.approx(0.5 * 0.3 + 0.5 * 0.7)
    # On the published grid a straight line has area 1/2 by both rules; x^2 has area
    # sum(k^2) / 21^2 / 22 = (21 * 22 * 43 / 6) / 21^2 / 22 = 43/126 by the mean rule and
    # 1/3 + 1/(6 * 21^2) by the trapezoid rule (its error on x^2 is h^2/6 with h = 1/21).
    assert area_under_curve(FRACTIONS, FRACTIONS, "mean") == pytest.approx(0.5)
    assert area_under_curve(FRACTIONS, FRACTIONS, "trapezoid") == pytest.approx(0.5)
    assert area_under_curve(FRACTIONS, FRACTIONS**2, "mean") == pytest.approx(43 / 126)
    assert area_under_curve(FRACTIONS, FRACTIONS**2, "trapezoid") == pytest.approx(
        1 / 3 + 1 / (6 * 21**2))
    with pytest.raises(ValueError, match="unknown rule"):
        area_under_curve(x, y, "simpson")
    with pytest.raises(ValueError, match="matching"):
        area_under_curve(x, y[:2])


def _record(curves: dict[tuple[str, str], float], dim=8) -> FastFillRecord:
    """A fastfill record whose curves are flat lines at the given heights (fractions)."""
    def point(f, height):
        values = {"top1": height, "top5": min(1.0, height + 0.1), "mAP": height / 2}
        return {"fraction": float(f), "backfilled": 0, "metrics": {"all": values}}

    return FastFillRecord.from_json({
        "side_info_dim": dim, "sigma_error_spearman": {}, "history": {},
        "curves": [{"side_info_dim": dim, "transformation": name, "order": order,
                    "points": [point(f, height) for f in FRACTIONS]}
                   for (name, order), height in curves.items()]})


BASE = {("fastfill", "random"): 0.4, ("fastfill", "oracle"): 0.8, ("fct", "random"): 0.35}


def test_backfilling_tables_and_claims():
    records = {0: {"fastfill": _record({**BASE, ("fastfill", "uncertainty"): 0.6})},
               1: {"fastfill": _record({**BASE, ("fastfill", "uncertainty"): 0.3})}}
    long = report.backfilling_rows(records)
    assert len(long) == 2 * 4 * 22
    table = report.backfilling_table(long, 8)
    assert list(table.columns) == ["transformation", "order", "auc_rule", "auc_top1", "auc_top5",
                                   "auc_mAP", "seeds"]
    row = table.set_index(["transformation", "order", "auc_rule"]).loc[
        ("fastfill", "uncertainty", "trapezoid")]
    assert (row["auc_top1"], row["auc_mAP"], row["seeds"]) == (45.0, 22.5, 2)
    assert report.backfilling_table(long, 0).empty
    claims = report.backfilling_claims(long).set_index(["claim", "metric"])["verdict"]
    assert claims[("fastfill uncertainty > fastfill random", "top1")] == "unresolved"
    assert claims[("fastfill uncertainty > fct random", "mAP")] == "unresolved"
    assert claims[("fastfill oracle >= fastfill uncertainty", "top1")] == "holds"
    assert "does not hold" in report.backfilling_sentence(report.backfilling_claims(long))
    good = report.curve_frame(records[0]["fastfill"].curves, seed=0)
    assert good.equals(report.backfilling_rows({0: records[0]}))
    assert "**holds** on every seed" in report.backfilling_sentence(
        report.backfilling_claims(good))
    paper = report.backfilling_paper_comparison(long, "toy").set_index("source")
    assert paper.loc["ours", "gain_auc_top1"] == pytest.approx(45.0 - 35.0)
    assert paper.loc["ours", "side_info"] == "8-d"
    assert len(paper.loc["published"]) == 3


def test_diagnostics_table_puts_sigma_s_rank_correlation_beside_fastfill_s_galleries():
    def record(spearman, ce):
        r = _record(BASE)
        r.sigma_error_spearman = {"side": spearman, "no-side": spearman / 2}
        r.diagnostics = {"new/new": {"classifier_ce": 0.4},
                         "fastfill/side": {"classifier_ce": ce,
                                           "backfilled_top1_share_at_5pct": 0.2},
                         "fct/side": {"classifier_ce": ce + 0.1,
                                      "backfilled_top1_share_at_5pct": 0.06}}
        return r

    table = diagnostics_table({0: {"fastfill": record(0.4, 0.5)},
                                      1: {"fastfill": record(0.6, 0.7)}}).set_index("gallery")
    assert table.at["fastfill/side", "sigma_error_spearman"] == pytest.approx(0.5)
    assert table.at["fastfill/side", "classifier_ce"] == pytest.approx(0.6)
    assert table.at["fct/side", "backfilled_top1_share_at_5pct"] == pytest.approx(6.0)
    assert table[["sigma_error_spearman"]].drop("fastfill/side").isna().all().all()
    assert (table["seeds"] == 2).all()


def test_diagnostics_table_puts_each_h_s_fit_error_beside_its_gallery():
    """FastFill's from its own record, FCT's from notebook 05's; NaN where a record predates
    them (seed 1's transformation record has none) and for new/new."""
    def fastfill(train, tune):
        r = _record(BASE)
        r.diagnostics = {"new/new": {"classifier_ce": 0.4},
                         "fastfill/side": {"classifier_ce": 0.5},
                         "fct/side": {"classifier_ce": 0.6}}
        r.fit_error = {"side": {"train": train, "tune": tune}}
        return r

    fct = TransformationRecord(side_info_dim=8, cases={}, history={},
                               fit_error={"side": {"train": 0.01, "tune": 0.02}})
    table = diagnostics_table({0: {"fastfill": fastfill(0.03, 0.05), "transformation": fct},
                               1: {"fastfill": fastfill(0.05, 0.07)}}).set_index("gallery")
    assert table.at["fastfill/side", "fit_mse_train"] == pytest.approx(0.04)
    assert table.at["fastfill/side", "fit_mse_tune"] == pytest.approx(0.06)
    assert table.at["fct/side", "fit_mse_train"] == pytest.approx(0.01)
    assert table.at["fct/side", "fit_mse_tune"] == pytest.approx(0.02)
    assert table.loc["new/new", ["fit_mse_train", "fit_mse_tune"]].isna().all()
