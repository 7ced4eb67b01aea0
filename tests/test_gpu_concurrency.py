"""The concurrency benchmark (benchmarks/gpu_concurrency.py) runs end to end on a CPU at tiny
sizes: k processes start together, the aggregate counts every item over the common span."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_concurrency  # noqa: E402


def test_processes_started_together_are_timed_over_their_common_span(tmp_path, monkeypatch):
    monkeypatch.setenv("FCT_PROGRESS", "0")
    monkeypatch.setenv("FCT_COMPILE", "0")
    gpu_concurrency.main([str(tmp_path), "--tiny", "--cases", "h", "--processes", "1", "2",
                          "--steps", "2", "--epochs", "2"])
    rows = json.loads((tmp_path / "concurrency.json").read_text())["rows"]
    assert [(r["case"], r["processes"]) for r in rows] == [("h", 1), ("h", 2)]
    one, two = rows
    assert one["aggregate_over_one"] == 1.0 and len(two["items_per_s_each"]) == 2
    # the span holds every process's window, so the aggregate is at most the sum of the rates
    assert 0 < two["aggregate_items_per_s"] <= sum(two["items_per_s_each"])
    assert two["aggregate_over_one"] == round(
        two["aggregate_items_per_s"] / one["aggregate_items_per_s"], 3)
    assert (tmp_path / "concurrency.csv").read_text().startswith("case,processes")


def test_a_process_that_fails_is_named_and_the_next_measurement_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("FCT_PROGRESS", "0")
    monkeypatch.setenv("FCT_COMPILE", "0")
    # no timed epoch: each process fails after its warm-up, when it reads its last epoch
    gpu_concurrency.main([str(tmp_path), "--tiny", "--cases", "h", "bt2", "--processes", "1",
                          "--steps", "2", "--epochs", "0"])
    rows = json.loads((tmp_path / "concurrency.json").read_text())["rows"]
    assert [r["case"] for r in rows] == ["h", "bt2"]
    assert all(r["error"].startswith("a process failed while training") for r in rows)
