"""The conda environment and the pip pins must describe the same environment."""

import os
import subprocess
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_matches_pyproject_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    assert all("==" in pin for pin in pins), "every dependency is pinned exactly"
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = {p for p in pip_section if not p.startswith("-e")}
    assert conda_pins == pins, (
        f"only in environment.yml: {sorted(conda_pins - pins)}; "
        f"only in pyproject.toml: {sorted(pins - conda_pins)}"
    )


def test_make_lab_allows_root_only_as_root():
    dry_run = subprocess.run(["make", "-n", "lab"], cwd=ROOT, capture_output=True, text=True)
    lab = [line for line in dry_run.stdout.splitlines() if "jupyter lab" in line]
    assert lab and ("--allow-root" in lab[0]) == (os.geteuid() == 0), dry_run.stdout
