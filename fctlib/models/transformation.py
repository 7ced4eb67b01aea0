"""The transformation h(old embedding, side-info) -> new embedding as deployed: FCT's h and
FastFill's (h with an uncertainty head), their saved files, and h applied to stored vectors.

A saved file holds tensors and plain data only (format, sizes, state dict): no class path is
pickled, so a file loads wherever these classes live. Files are written and read with torch
directly (atomically, through `fctlib.io`): deploying imports nothing of training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from fctlib.io import atomic_write
from fctlib.models.mlp import mlp_layers

TRANSFORMATION_FORMAT = "fct-transformation/1"
FASTFILL_FORMAT = "fct-fastfill/1"


class Transformation(nn.Module):
    """Old branch and side-info branch, concatenated, then a mixer MLP (plain last layer).

    With `side_info_dim=0` ("no side-info") the old embedding is fed into both branches.
    """

    def __init__(
        self, old_dim: int, side_info_dim: int, new_dim: int,
        branch_widths: tuple[int, ...] = (256, 256), mixer_widths: tuple[int, ...] = (2048, 2048),
    ):
        super().__init__()
        if min(old_dim, new_dim) < 1 or side_info_dim < 0 or not branch_widths:
            raise ValueError("need old_dim, new_dim >= 1, side_info_dim >= 0, non-empty branches")
        self.old_dim, self.side_info_dim, self.new_dim = old_dim, side_info_dim, new_dim
        self.branch_widths, self.mixer_widths = tuple(branch_widths), tuple(mixer_widths)
        side_in = side_info_dim or old_dim
        self.old_branch = nn.Sequential(*mlp_layers([old_dim, *branch_widths], last_plain=False))
        self.side_branch = nn.Sequential(*mlp_layers([side_in, *branch_widths], last_plain=False))
        mixer = [2 * branch_widths[-1], *mixer_widths, new_dim]
        self.mixer = nn.Sequential(*mlp_layers(mixer))

    def forward(self, old: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
        if self.side_info_dim == 0:
            side = old
        elif side is None or side.shape[-1] != self.side_info_dim:
            got = None if side is None else tuple(side.shape)
            raise ValueError(f"expected side-info of size {self.side_info_dim}, got {got}")
        return self.mixer(torch.cat([self.old_branch(old), self.side_branch(side)], dim=1))


class FastFill(nn.Module):
    """An FCT transformation h and an uncertainty head from h's output to sigma: one linear layer
    (published), or with `head_width` an MLP of that hidden width (the suite's earlier variant);
    forward returns (h(old, side), sigma)."""

    def __init__(self, transformation: Transformation, head_width: int | None = None):
        super().__init__()
        if head_width is not None and head_width < 1:
            raise ValueError(f"head_width must be >= 1 or None, got {head_width}")
        self.transformation, self.head_width = transformation, head_width
        widths = [transformation.new_dim, 1] if head_width is None else [
            transformation.new_dim, head_width, 1]
        self.uncertainty = nn.Sequential(*mlp_layers(widths, batchnorm=False))

    def forward(self, old: torch.Tensor, side: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        feature = self.transformation(old, side)
        return feature, self.uncertainty(feature).squeeze(1)


@torch.no_grad()
def upgrade_embeddings(
    model: Transformation,
    old: np.ndarray,
    side: np.ndarray | None = None,
    *,
    batch_size: int = 8192,
    device: torch.device,
) -> np.ndarray:
    """Apply h to stored embeddings in batches (no images needed); returns float32 (N, new_dim)."""
    model = model.to(device).eval()
    if old.ndim != 2 or old.shape[1] != model.old_dim:
        raise ValueError(f"old embeddings must be (N, {model.old_dim}), got {old.shape}")
    if model.side_info_dim and (side is None or side.shape != (len(old), model.side_info_dim)):
        got = None if side is None else side.shape
        raise ValueError(f"side-info must be ({len(old)}, {model.side_info_dim}), got {got}")
    out = np.empty((len(old), model.new_dim), dtype=np.float32)
    for start in range(0, len(old), batch_size):
        stop = start + batch_size
        # np.array copies: memory-mapped stores are read-only and torch wants writable arrays
        o = torch.as_tensor(np.array(old[start:stop], np.float32), device=device)
        s = None if not model.side_info_dim else torch.as_tensor(
            np.array(side[start:stop], np.float32), device=device
        )
        out[start:stop] = model(o, s).float().cpu().numpy()
    return out


@torch.no_grad()
def upgrade_with_uncertainty(
    model: FastFill,
    old: np.ndarray,
    side: np.ndarray | None = None,
    *,
    batch_size: int = 8192,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray]:
    """The transformed embeddings h(old, side) (N, new_dim) and their sigmas (N,), float32."""
    features = upgrade_embeddings(model.transformation, old, side, batch_size=batch_size,
                                  device=device)
    head = model.uncertainty.to(device).eval()
    sigma = np.empty(len(features), dtype=np.float32)
    for start in range(0, len(features), batch_size):
        chunk = torch.as_tensor(features[start:start + batch_size], device=device)
        sigma[start:start + batch_size] = head(chunk).squeeze(1).float().cpu().numpy()
    return features, sigma


def transformation_sizes(model: Transformation) -> dict:
    """The constructor arguments of h, as plain data."""
    return {"old_dim": model.old_dim, "side_info_dim": model.side_info_dim,
            "new_dim": model.new_dim, "branch_widths": list(model.branch_widths),
            "mixer_widths": list(model.mixer_widths)}


def build_transformation(sizes: dict) -> Transformation:
    """h from `transformation_sizes` output."""
    return Transformation(sizes["old_dim"], sizes["side_info_dim"], sizes["new_dim"],
                          tuple(sizes["branch_widths"]), tuple(sizes["mixer_widths"]))


def _save(saved: dict, path: str | Path) -> Path:
    return atomic_write(path, lambda tmp: torch.save(saved, tmp))


def read_saved_model(path: str | Path, formats: tuple[str, ...]) -> dict:
    """The dict saved at `path` by save_transformation or save_fastfill, checked for its format."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"transformation file {path} not found (export one with "
                                "`fct export-gallery`, or save_transformation in Python)")
    # tensors and plain data only: a file handed to `fct upgrade` cannot run code when loaded
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(saved, dict) or saved.get("format") not in formats:
        raise ValueError(f"{path} is not a transformation saved by fctlib (save_transformation "
                         "or save_fastfill)")
    return saved


def save_transformation(model: Transformation, path: str | Path) -> Path:
    """Save h with its sizes, so `load_transformation` rebuilds it without the preset."""
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    return _save({"format": TRANSFORMATION_FORMAT, "sizes": transformation_sizes(model),
                  "state_dict": state}, path)


def model_from_saved(saved: dict) -> Transformation | FastFill:
    """The model a `read_saved_model` dict holds (h, or FastFill by its format), in eval mode on
    the CPU."""
    h = build_transformation(saved["sizes"])
    model = FastFill(h, saved["head_width"]) if saved["format"] == FASTFILL_FORMAT else h
    model.load_state_dict(saved["state_dict"])
    return model.eval()


def load_transformation(path: str | Path) -> Transformation:
    """A transformation saved by `save_transformation`, in eval mode on the CPU."""
    return model_from_saved(read_saved_model(path, (TRANSFORMATION_FORMAT,)))


def save_fastfill(model: FastFill, path: str | Path) -> Path:
    """Save FastFill (h and its head) with its sizes, for `fct upgrade` and `load_fastfill`."""
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    return _save({"format": FASTFILL_FORMAT, "head_width": model.head_width,
                  "sizes": transformation_sizes(model.transformation), "state_dict": state}, path)


def load_fastfill(path: str | Path) -> FastFill:
    """A FastFill model saved by `save_fastfill`, in eval mode on the CPU."""
    return model_from_saved(read_saved_model(path, (FASTFILL_FORMAT,)))
