"""Where the project lives: its root, and the default folders for run artifacts and results."""

from __future__ import annotations

from pathlib import Path

DEFAULT_PRESET = "fashion-mnist"  # what `make reproduce` and `fct` run unless told otherwise


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


def benchmarks_file() -> Path:
    """results/benchmarks/benchmarks.json: the figures of the last `make bench`."""
    return project_root() / "results" / "benchmarks" / "benchmarks.json"
