"""The h-features benchmark runs end to end on the smoke preset (benchmarks/h_features.py)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import h_features  # noqa: E402


def test_each_setting_and_seed_fits_h_and_is_summarised(smoke_run, tmp_path):
    runs = smoke_run.root.parent.parent  # the smoke run's trained encoders are reused
    h_features.main([str(tmp_path), "--preset", "smoke", "--seeds", "0", "--views", "1", "2",
                     "--epochs", "2", "--side-dims", "0", "8", "--runs-dir", str(runs)])
    rows = json.loads((tmp_path / "h_features.json").read_text())["rows"]
    assert [(r["feature_views"], r["h"]) for r in rows] == [(1, "h:0"), (1, "h:8"), (2, "h:0"),
                                                             (2, "h:8")]
    assert all(r["epochs"] == 2 and 0 <= r["top1"] <= 100 and r["tune_mse"] > 0 for r in rows)
    summary = (tmp_path / "summary.csv").read_text()
    assert "# git_commit" in summary and "tune_mse_std" in summary and summary.count("\n") > 4
