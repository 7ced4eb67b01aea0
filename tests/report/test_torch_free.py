"""The report, the records and the preset loader import without torch (a fresh interpreter)."""

import subprocess
import sys

CHECK = """
import importlib, pkgutil, sys
import fctlib.report
for module in pkgutil.walk_packages(fctlib.report.__path__, "fctlib.report."):
    importlib.import_module(module.name)
import fctlib.experiment.records
from fctlib.experiment.config import load_preset
load_preset("smoke")
loaded = sorted(m for m in sys.modules if m.startswith("fctlib.report."))
print(" ".join(loaded))
print("torch" in sys.modules)
"""


def test_report_records_and_config_do_not_import_torch():
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                            check=True)
    modules, torch_loaded = result.stdout.splitlines()
    assert "fctlib.report.figures" in modules.split() and "fctlib.report.main" in modules.split()
    assert torch_loaded == "False", "importing the report or the records loaded torch"


def test_the_check_sees_torch_when_it_is_imported():
    result = subprocess.run([sys.executable, "-c", CHECK.replace(
        "import fctlib.experiment.records",
        "import fctlib.experiment.records, fctlib.data.preview")],
        capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "True"
