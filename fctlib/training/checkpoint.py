"""Model checkpoints: torch.save written atomically, and their loading."""

from __future__ import annotations

from pathlib import Path

import torch

from fctlib.io import atomic_write


def save_torch(obj, path: str | Path) -> Path:
    """torch.save, atomically."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_torch(path: str | Path, map_location="cpu"):
    """torch.load of a file written by `save_torch` (trusted, written by this suite)."""
    return torch.load(path, map_location=map_location, weights_only=False)
