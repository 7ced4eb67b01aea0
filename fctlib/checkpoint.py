"""Atomic writes of checkpoints and result files, so an interruption never leaves a torn file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch


def atomic_write(path: str | Path, write) -> Path:
    """Call `write(tmp_path)`, then rename the temporary file over `path` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; artifacts are not
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_torch(obj, path: str | Path) -> Path:
    """torch.save, atomically."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_torch(path: str | Path, map_location="cpu"):
    """torch.load of a file written by `save_torch` (trusted, written by this suite)."""
    return torch.load(path, map_location=map_location, weights_only=False)


def load_json_if_exists(path: str | Path):
    """The JSON at `path`, or None when there is no such file."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def save_json(obj, path: str | Path) -> Path:
    """Write JSON (indented, keys sorted), atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))
