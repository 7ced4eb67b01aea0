"""The concurrency benchmark (benchmarks/gpu_concurrency.py) runs end to end on a CPU at tiny
sizes: k processes start together, the aggregate counts every item over the common span."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_concurrency  # noqa: E402


def tiny_rows(out: Path, monkeypatch, *options: str) -> list[dict]:
    """The rows of an eager run at tiny sizes, 2 batches an epoch."""
    monkeypatch.setenv("FCT_PROGRESS", "0")
    monkeypatch.setenv("FCT_COMPILE", "0")
    gpu_concurrency.main([str(out), "--tiny", "--steps", "2", *options])
    return json.loads((out / "concurrency.json").read_text())["rows"]


def test_processes_started_together_are_timed_over_their_common_span(tmp_path, monkeypatch):
    rows = tiny_rows(tmp_path, monkeypatch, "--cases", "h", "--processes", "1", "2",
                     "--epochs", "2")
    assert [(r["case"], r["processes"]) for r in rows] == [("h", 1), ("h", 2)]
    one, two = rows
    assert one["aggregate_over_one"] == 1.0 and len(two["items_per_s_each"]) == 2
    # the span holds every process's window, so the aggregate is at most the sum of the rates
    assert 0 < two["aggregate_items_per_s"] <= sum(two["items_per_s_each"])
    assert two["aggregate_over_one"] == round(
        two["aggregate_items_per_s"] / one["aggregate_items_per_s"], 3)
    assert (tmp_path / "concurrency.csv").read_text().startswith("case,processes")


def test_a_process_that_fails_is_named_and_the_next_measurement_runs(tmp_path, monkeypatch):
    # no timed epoch: each process fails after its warm-up, when it reads its last epoch
    rows = tiny_rows(tmp_path, monkeypatch, "--cases", "h", "bt2", "--processes", "1",
                     "--epochs", "0")
    assert [r["case"] for r in rows] == ["h", "bt2"]
    assert all(r["error"].startswith("a process failed while training") for r in rows)
