"""Where the project lives: its root, its notebooks in order, and the default folders for run
artifacts and results."""

from __future__ import annotations

from pathlib import Path

DEFAULT_PRESET = "fashion-mnist"  # what `make reproduce` and `fct` run unless told otherwise
# the notebooks in notebooks/: the steps in the order `fct reproduce` runs them, then the report
STEPS = ("00_data", "01_train_old", "02_side_info", "03_train_new", "04_bct",
         "05_transformation", "06_side_info_size", "07_fastfill", "08_ablations", "09_methods",
         "10_multistep", "11_cross_dataset")
REPORT = "99_report"
# what executes them: a Jupyter kernel per notebook, or their cells in the calling process
ENGINES = ("papermill", "in-process")


def project_root() -> Path:
    """The folder holding pyproject.toml above this package (editable install), else the cwd."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").is_file() else Path.cwd()


def runs_root() -> Path:
    """runs/ in the project: checkpoints and cached embeddings (git-ignored)."""
    return project_root() / "runs"


def results_root(preset_name: str) -> Path:
    """results/<preset name>/ in the project: what a run commits."""
    return project_root() / "results" / preset_name


def committed_presets() -> list[str]:
    """The presets whose runs are committed: every results/<preset>/ holding `metrics/`."""
    return sorted(p.parent.name for p in (project_root() / "results").glob("*/metrics"))


def benchmarks_file() -> Path:
    """results/benchmarks/benchmarks.json: the figures of the last `make bench`."""
    return project_root() / "results" / "benchmarks" / "benchmarks.json"
