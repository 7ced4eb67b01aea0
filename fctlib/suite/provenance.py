"""Provenance of a result: git commit, preset, seeds, package versions, machine, command, time."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from importlib import metadata

from fctlib.paths import project_root

PACKAGES = ("torch", "torchvision", "numpy", "faiss-cpu", "pandas", "papermill")


def git_commit() -> str:
    """The checked-out commit (`-dirty` when tracked code or params changed), or `unknown`."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=project_root(), capture_output=True,
                              text=True, timeout=10)

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        if head.returncode != 0:
            return "unknown"
        # results/ is what a run writes, not what produced it
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                    ":(exclude)results").stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape the numbers."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    versions["python"] = platform.python_version()
    return versions


def machine() -> str:
    """A one-line description of the machine (CPU count, GPU if any, OS)."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, {gpu}, {platform.system()}"


def provenance(preset: str, seeds: list[int], command: str | None = None,
               wall_seconds: float | None = None) -> dict:
    """Everything a table needs to say where it came from."""
    return {
        "git_commit": git_commit(),
        "preset": preset,
        "seeds": list(seeds),
        "packages": package_versions(),
        "machine": machine(),
        "command": command or _command_line(),
        "wall_seconds": None if wall_seconds is None else round(wall_seconds, 1),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _command_line() -> str:
    program = "fct" if sys.argv[0].endswith(("cli.py", "fct")) else sys.argv[0]
    return " ".join([program, *sys.argv[1:]])


def provenance_comment(info: dict) -> str:
    """The provenance as `# key: value` lines, for the head of a CSV or Markdown table."""
    lines = []
    for key, value in info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        lines.append(f"# {key}: {value}")
    return "\n".join(lines) + "\n"
