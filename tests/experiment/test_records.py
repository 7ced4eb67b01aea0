"""Step records: the committed metrics load into typed records and save back byte for byte."""

import json
from pathlib import Path

import pytest

from fctlib.experiment.records import (
    STEP_RECORDS,
    BCTPoint,
    BCTRecord,
    Criterion,
    InfluenceRow,
    MethodRow,
    MethodsRecord,
    MultistepRecord,
    OldRecord,
    load_exploration,
    load_record,
    load_records,
)
from fctlib.paths import project_root

RESULTS = project_root() / "results"
COMMITTED = sorted(RESULTS.glob("*/metrics/seed*/*.json"))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: str(p.relative_to(RESULTS)))
def test_committed_metrics_save_back_unchanged(path, tmp_path):
    record = load_record(path)
    assert type(record) is STEP_RECORDS[path.stem]
    seed = int(path.parent.name.removeprefix("seed"))
    saved = record.save(tmp_path, seed)
    assert saved == tmp_path / "metrics" / f"seed{seed}" / f"{path.stem}.json"
    assert saved.read_text() == path.read_text()


def test_committed_exploration_round_trips(tmp_path):
    records = load_exploration(RESULTS / "fashion-mnist")
    assert [r.label for r in records] == sorted(
        p.stem for p in (RESULTS / "fashion-mnist" / "exploration").glob("*.json"))
    for record in records:
        path = RESULTS / "fashion-mnist" / "exploration" / f"{record.label}.json"
        assert record.to_json() == json.loads(path.read_text())
        assert record.save(tmp_path, record.seed).read_text() == path.read_text()


def test_typed_access_to_the_committed_records():
    records = load_records(RESULTS / "fashion-mnist")
    assert sorted(records) == [0, 1, 2, 3] and set(records[0]) <= set(STEP_RECORDS)
    assert {"data", "old", "bct", "transformation", "methods", "multistep"} <= set(records[0])
    bct = records[0]["bct"]
    assert bct.points[0].bct_old["top1"] == pytest.approx(
        json.loads((RESULTS / "fashion-mnist/metrics/seed0/bct.json").read_text())
        ["points"][0]["bct/old"]["top1"])
    methods = records[1]["methods"]
    assert isinstance(methods.rows[0], MethodRow) and methods.unpriced == ["fct-arch", "fct-loss"]
    assert Criterion("bct", "bct/old", "old/old") in methods.criteria
    multistep = records[0]["multistep"]
    assert multistep.methods == ["independent", "bct", "dsimplex", "fct-chained", "fct-direct"]
    assert multistep.distances["l2"]["bct"].top1[0][2] is None
    assert records[0]["fastfill"].curves[0].points[-1].fraction == 1.0


def test_artifacts_are_written_only_when_recorded():
    record = OldRecord(cases={}, history=[])
    assert "artifacts" not in record.to_json()
    record.artifacts["old"] = "abc123"
    data = record.to_json()
    assert data["artifacts"] == {"old": "abc123"}
    assert OldRecord.from_json(data) == record


def test_the_measuring_commit_is_written_only_when_recorded():
    record = OldRecord(cases={}, history=[])
    assert "commit" not in record.to_json() and record.commit == ""  # an old file: unrecorded
    record.commit = "c0ffee"
    assert record.to_json()["commit"] == "c0ffee"
    assert OldRecord.from_json(record.to_json()).commit == "c0ffee"
    assert {cls.NOTEBOOK for cls in STEP_RECORDS.values()} >= {"00_data", "10_multistep"}


def test_unknown_keys_are_refused():
    with pytest.raises(ValueError, match=r"OldRecord: unknown keys \['casse'\]"):
        OldRecord.from_json({"casse": {}, "history": []})
    with pytest.raises(ValueError, match="no step 'timings'"):
        load_record(Path("timings.json"))


def test_multistep_record_keeps_the_order_measured(tmp_path):
    scores = {"top1": [[0.5]], "mAP": [[0.25]], "AC_top1": 1.0, "AM_top1": 0.5, "AC_mAP": 1.0,
              "AM_mAP": 0.25}
    measured = {"l2": {"independent": scores, "bct": scores, "dsimplex": scores}}
    record = MultistepRecord.from_matrices([[0]], measured)
    assert record.methods == ["independent", "bct", "dsimplex"]
    back = load_record(record.save(tmp_path, 0))
    assert back == record and list(back.distances["l2"]) == ["bct", "dsimplex", "independent"]


def test_load_records_orders_seeds_by_number(tmp_path):
    record = MethodsRecord(rows=[], bct_weight=1.0, projection={}, criteria=[], unpriced=[])
    for seed in (10, 2):
        record.save(tmp_path, seed)
    assert list(load_records(tmp_path)) == [2, 10]


def test_missing_metrics_folder_says_how_to_make_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="make reproduce"):
        load_records(tmp_path)


def test_a_bct_record_of_variants_round_trips(tmp_path):
    metrics = {"top1": 0.5, "top5": 0.7, "mAP": 0.4}
    point = BCTPoint(variant="bt2", weight=10.0, split="tune", distance="cosine",
                     bct_old=metrics, bct_bct=metrics, old_old=metrics, new_new=metrics,
                     norm_ratio=0.3)
    row = InfluenceRow(variant="openbct", rows="old-classifier", classes="old",
                       normalize=False, label_smoothing=0.0, ce=0.4, ce_old=0.4, floor=0.01,
                       accuracy_old=0.88, new_row_wins=None, flagged=False)
    record = BCTRecord(cases={}, weight=10.0, variant="bt2", distance="l2", points=[point],
                       influence=[row], history=[])
    data = json.loads(json.dumps(record.to_json()))
    assert "sweep" not in data and data["points"][0]["old/old"] == metrics
    assert BCTRecord.from_json(data) == record
    assert load_record(record.save(tmp_path, 0)) == record
