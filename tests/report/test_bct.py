import pandas as pd
import pytest

from fctlib import report
from fctlib.experiment.record_rows import BCTPoint, InfluenceRow, SweepPoint
from fctlib.experiment.records import BCTRecord
from fctlib.report import bct as bct_report


def _point(weight, cross, own):
    return SweepPoint(weight=weight, bct_old={"top1": cross, "mAP": cross / 2},
                      bct_bct={"top1": own, "mAP": own / 2}, score=cross)


def _record(chosen, crosses):
    sweep = [_point(w, c, 0.8) for w, c in zip((1.0, 3.0), crosses, strict=True)]
    return BCTRecord(cases={}, weight=chosen, sweep=sweep, history=[])


def test_sweep_means_over_seeds_and_counts_the_choices():
    records = {0: {"bct": _record(1.0, (0.40, 0.30))}, 1: {"bct": _record(3.0, (0.20, 0.50))}}
    table = report.bct_sweep_table(report.sweep_rows(records)).set_index("weight")
    assert table.at[1.0, "tune_bct_old_top1"] == pytest.approx(30.0)
    assert table.at[3.0, "tune_bct_old_mAP"] == pytest.approx(20.0)
    assert table.at[3.0, "tune_bct_bct_top1"] == pytest.approx(80.0)
    assert table["seeds_choosing"].to_dict() == {1.0: 1, 3.0: 1}
    assert report.bct_sweep_table(report.sweep_rows({0: {}})).empty


def _metrics(top1):
    return {"top1": top1, "top5": min(1.0, top1 + 0.2), "mAP": top1 / 2}


def _bct_point(variant, weight, split, distance, cross, own, old=0.5, new=0.9):
    return BCTPoint(variant=variant, weight=weight, split=split, distance=distance,
                    bct_old=_metrics(cross), bct_bct=_metrics(own), old_old=_metrics(old),
                    new_new=_metrics(new), norm_ratio=1.5)


def _influence(variant, ce, flagged):
    return InfluenceRow(variant=variant, rows="unit-means", classes="all", normalize=False,
                        label_smoothing=0.0, ce=ce, ce_old=ce, floor=0.1, accuracy_old=0.9,
                        new_row_wins=None if variant == "openbct" else 0.25, flagged=flagged)


def _variant_record(chosen, cross):
    points = [_bct_point(v, w, split, d, cross[(v, w)] + (0.1 if split == "test" else 0.0), 0.8)
              for v, w in ((("openbct", 1.0)), ("bt2", 10.0)) for split in ("tune", "test")
              for d in ("l2", "cosine")]
    return BCTRecord(cases={}, weight=chosen[1], variant=chosen[0], distance="l2",
                     points=points, influence=[_influence("openbct", 0.4, False),
                                               _influence("hybrid", 4.0, True)], history=[])


def test_variants_table_means_over_seeds_with_margin_price_and_choices():
    records = {0: {"bct": _variant_record(("openbct", 1.0), {("openbct", 1.0): 0.6,
                                                              ("bt2", 10.0): 0.4})},
               1: {"bct": _variant_record(("bt2", 10.0), {("openbct", 1.0): 0.4,
                                                           ("bt2", 10.0): 0.6})}}
    table = bct_report.bct_variants_table(bct_report.variant_rows(records))
    assert list(table.columns[:4]) == ["variant", "weight", "distance", "split"]
    assert len(table) == 2 * 2 * 2  # (variant, weight) x distance x split
    row = table.set_index(["variant", "distance", "split"]).loc[("openbct", "l2", "test")]
    assert row["bct_old_top1"] == pytest.approx(60.0)  # (70 + 50) / 2
    assert row["margin_top1"] == pytest.approx(10.0)  # over old/old 50
    assert row["new_new_cost_top1"] == pytest.approx(10.0)  # new/new 90 - bct/bct 80
    assert row["bct_bct_mAP"] == pytest.approx(40.0) and row["seeds"] == 2
    chosen = table.set_index(["variant", "distance", "split"])["seeds_choosing"]
    assert chosen[("openbct", "l2", "tune")] == 1 and chosen[("bt2", "l2", "tune")] == 1
    assert chosen[("openbct", "cosine", "tune")] == 0 and chosen.sum() == 2
    sweep = report.bct_sweep_table(report.sweep_rows(records)).set_index(["variant", "weight"])
    assert sweep.at[("bt2", 10.0), "tune_bct_old_top1"] == pytest.approx(50.0)
    assert sweep["seeds_choosing"].sum() == 2


def test_influence_table_flags_and_keeps_shares_in_percent():
    records = {0: {"bct": _variant_record(("openbct", 1.0), {("openbct", 1.0): 0.6,
                                                              ("bt2", 10.0): 0.4})},
               1: {"bct": _variant_record(("openbct", 1.0), {("openbct", 1.0): 0.6,
                                                              ("bt2", 10.0): 0.4})}}
    table = bct_report.influence_table(bct_report.influence_rows(records)).set_index("variant")
    assert table.at["hybrid", "seeds_flagged"] == 2 and table.at["openbct", "seeds_flagged"] == 0
    assert table.at["hybrid", "new_row_wins"] == pytest.approx(25.0)
    assert table.at["openbct", "accuracy_old"] == pytest.approx(90.0)
    assert pd.isna(table.at["openbct", "new_row_wins"])
    legacy = {0: {"bct": _record(1.0, (0.40, 0.30))}}
    assert bct_report.influence_table(bct_report.influence_rows(legacy)).empty
    assert bct_report.bct_variants_table(bct_report.variant_rows(legacy)).empty
