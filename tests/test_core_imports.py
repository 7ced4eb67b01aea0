"""The core the GPU check needs imports, and a tiny run trains, embeds, evaluates and reports,
where faiss, papermill, Dask and matplotlib are absent (a bare CUDA machine)."""

import json
import subprocess
import sys

import numpy as np

ABSENT = ("faiss", "papermill", "dask", "distributed", "matplotlib")

BLOCKER = """
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {absent!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)", name=name)
sys.meta_path.insert(0, Absent())
"""

CORE = """
import importlib, json, pkgutil
import fctlib.data, fctlib.evaluation, fctlib.training
for package in (fctlib.data, fctlib.evaluation, fctlib.training):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)
import fctlib.methods, fctlib.report, fctlib.experiment.records
import fctlib.suite.ablations, fctlib.suite.cost
import torch
from fctlib import report
from fctlib.experiment.records import OldRecord
from fctlib.suite.run import Run

run = Run("smoke", 0, overrides={{"data": {{"dataset": {{"name": "npz", "root": {npz!r}}}}},
          "old": {{"training": {{"batch_size": 8}}}}}}, runs_dir={tmp!r} + "/runs",
          results_dir={tmp!r} + "/results", device=torch.device("cpu"))
_, history = run.trained("old")
old = run.embeddings("old", "test")
cases = {{"old/old": run.evaluate(old, old)}}
path = run.save_record(OldRecord(cases=cases, history=history))
table = report.main_table(report.case_frame({{"l2": cases}}, 0))
absent = sorted(m for m in sys.modules if m.split(".")[0] in {absent!r})
print(json.dumps({{"record": str(path), "cases": list(table["case"]), "absent_loaded": absent}}))
"""


def tiny_arrays(path):
    """An npz data set of 4 classes, 10 training and 3 test 12 x 12 grey images each."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 10)
    test_labels = np.repeat(np.arange(4), 3)
    np.savez(path, train_images=rng.integers(0, 256, (40, 12, 12), dtype=np.uint8),
             train_labels=labels, test_labels=test_labels,
             test_images=rng.integers(0, 256, (12, 12, 12), dtype=np.uint8))
    return path


def run_blocked(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER.format(absent=ABSENT) + code],
                          capture_output=True, text=True)


def test_core_runs_without_faiss_papermill_dask_or_matplotlib(tmp_path):
    npz = tiny_arrays(tmp_path / "tiny.npz")
    result = run_blocked(CORE.format(npz=str(npz), tmp=str(tmp_path), absent=ABSENT))
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["cases"] == ["old/old"] and out["absent_loaded"] == []
    assert (tmp_path / "results" / "metrics" / "seed0" / "old.json").is_file()


def test_the_blocker_stops_what_it_names():
    result = run_blocked("import fctlib.report.figures as f; f.plot_cases(None)")
    assert result.returncode != 0 and "matplotlib" in result.stderr
    assert "(blocked)" in result.stderr
