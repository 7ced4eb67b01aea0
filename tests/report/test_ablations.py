"""The report's ablation tables (side-info source, data share, width) and their readings."""

from fctlib import report
from fctlib.experiment.records import AblationsRecord


def _rows(values, key):
    return [{key: k, "metrics": {"all": {"top1": v, "top5": v, "mAP": v / 2}}} for k, v in values]


RECORD = AblationsRecord.from_json({
    "side_info_dim": 8,
    "side_info_source": [{**r, "side_info_dim": 8} for r in _rows(
        [("simclr", 0.5), ("supervised", 0.4), ("random", 0.55), ("none", 0.3)], "source")],
    "data_share": [{**r, "train_images": int(r["data_share"] * 100)} for r in _rows(
        [(1.0, 0.6), (0.1, 0.4), (0.5, 0.62)], "data_share")],
    "width": [{**r, "parameters": 10} for r in _rows([(0.25, 0.5), (1.0, 0.6)],
                                                     "width_factor")]})


def test_ablation_tables_and_readings_say_when_expectations_fail():
    records = {0: {"ablations": RECORD}}
    sources = report.side_info_source_table(report.ablation_rows(records, "side_info_source"))
    assert list(sources["source"]) == ["simclr", "supervised", "random", "none"]
    assert list(sources.columns[:5]) == ["source", "side_info_dim", "top1", "top5", "mAP"]
    sentence = report.side_info_source_sentence(sources)
    assert "50.00%" in sentence and "random 55.00%" in sentence and "fails (random" in sentence
    shares = report.data_share_table(report.ablation_rows(records, "data_share"))
    assert list(shares["data_share"]) == [0.1, 0.5, 1.0]
    reading = report.trend_sentence(shares, "data_share", "the share")
    assert "fails (0.5 -> 1: 62.00% -> 60.00%)" in reading
    widths = report.width_table(report.ablation_rows(records, "width"))
    assert "never falls" in report.trend_sentence(widths, "width_factor", "the width")
    assert "fails" not in report.trend_sentence(widths, "width_factor", "the width")
    ok = sources[sources["source"] != "random"]
    assert report.side_info_source_sentence(ok).endswith("the best source holds.")


def test_a_notebooks_rows_make_the_same_table():
    one_seed = report.data_share_table(report.setting_frame(RECORD.data_share, seed=0))
    records = {0: {"ablations": RECORD}}
    assert one_seed.equals(report.data_share_table(report.ablation_rows(records, "data_share")))
    # one seed: the mean only, no standard deviation column
    assert list(one_seed.columns) == ["data_share", "train_images", "top1", "top5", "mAP",
                                      "seeds"]


def test_no_ablation_rows_give_empty_tables_with_their_columns():
    table = report.width_table(report.ablation_rows({0: {}}, "width"))
    assert table.empty and list(table.columns) == ["width_factor", "parameters", "top1", "top5",
                                                   "mAP"]
