"""The FCT transformation h(old embedding, side-info) -> new embedding, its training and use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from fctlib.training.checkpoint import load_torch, save_torch
from fctlib.training.config import TrainConfig
from fctlib.training.loop import train
from fctlib.training.runtime import default_device

TRANSFORMATION_FORMAT = "fct-transformation/1"


def _mlp(widths: list[int], last_plain: bool) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(cin, cout))
        if not (last_plain and i == len(widths) - 2):
            layers += [nn.BatchNorm1d(cout), nn.ReLU()]
    return layers


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
        self.old_branch = nn.Sequential(*_mlp([old_dim, *branch_widths], last_plain=False))
        self.side_branch = nn.Sequential(*_mlp([side_in, *branch_widths], last_plain=False))
        mixer = [2 * branch_widths[-1], *mixer_widths, new_dim]
        self.mixer = nn.Sequential(*_mlp(mixer, last_plain=True))

    def forward(self, old: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
        if self.side_info_dim == 0:
            side = old
        elif side is None or side.shape[-1] != self.side_info_dim:
            got = None if side is None else tuple(side.shape)
            raise ValueError(f"expected side-info of size {self.side_info_dim}, got {got}")
        return self.mixer(torch.cat([self.old_branch(old), self.side_branch(side)], dim=1))


def _mse_step(model: nn.Module, batch) -> torch.Tensor:
    old, side, new = batch
    return F.mse_loss(model(old, side), new)


def freeze_batchnorm_from(epoch_to_freeze: int):
    """An epoch-start hook freezing BatchNorm statistics (eval mode) from a given epoch on."""

    def hook(model: nn.Module, epoch: int) -> None:
        if epoch >= epoch_to_freeze:
            for module in model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()

    return hook


def training_tensors(model: Transformation, old: np.ndarray, side: np.ndarray | None,
                     new: np.ndarray, *extra: np.ndarray) -> list[torch.Tensor]:
    """(old, side, new, *extra) as tensors of equal length for fitting h; without side-info the
    old embeddings stand in for it (as `Transformation.forward` does)."""
    old_t = torch.as_tensor(old, dtype=torch.float32)
    side_t = old_t if side is None or model.side_info_dim == 0 else torch.as_tensor(
        side, dtype=torch.float32)
    tensors = [old_t, side_t, torch.as_tensor(new, dtype=torch.float32),
               *(torch.as_tensor(x) for x in extra)]
    if len({len(t) for t in tensors}) != 1:
        names = ["old", "side", "new", *(f"extra {i}" for i in range(len(extra)))]
        sizes = ", ".join(f"{n} {len(t)}" for n, t in zip(names, tensors, strict=True))
        raise ValueError(f"lengths differ: {sizes}")
    return tensors


def train_transformation(
    model: Transformation,
    old: np.ndarray,
    side: np.ndarray | None,
    new: np.ndarray,
    cfg: TrainConfig,
    *,
    seed: int,
    checkpoint=None,
    device=None,
) -> list[dict]:
    """Fit h by MSE to the new embeddings; BatchNorm statistics are frozen for the second half."""
    return train(
        model, TensorDataset(*training_tensors(model, old, side, new)), _mse_step, cfg, seed=seed,
        checkpoint=checkpoint, device=device, on_epoch_start=freeze_batchnorm_from(cfg.epochs // 2),
        desc="transformation",
    )


@torch.no_grad()
def upgrade_embeddings(
    model: Transformation,
    old: np.ndarray,
    side: np.ndarray | None = None,
    *,
    batch_size: int = 8192,
    device: torch.device | None = None,
) -> np.ndarray:
    """Apply h to stored embeddings in batches (no images needed); returns float32 (N, new_dim)."""
    device = device or default_device()
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


def transformation_sizes(model: Transformation) -> dict:
    """The constructor arguments of h, as plain data."""
    return {"old_dim": model.old_dim, "side_info_dim": model.side_info_dim,
            "new_dim": model.new_dim, "branch_widths": list(model.branch_widths),
            "mixer_widths": list(model.mixer_widths)}


def build_transformation(sizes: dict) -> Transformation:
    """h from `transformation_sizes` output."""
    return Transformation(sizes["old_dim"], sizes["side_info_dim"], sizes["new_dim"],
                          tuple(sizes["branch_widths"]), tuple(sizes["mixer_widths"]))


def read_saved_model(path: str | Path, formats: tuple[str, ...]) -> dict:
    """The dict saved at `path` by save_transformation or save_fastfill, checked for its format."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"transformation file {path} not found (export one with "
                                "`fct export-gallery`, or save_transformation in Python)")
    saved = load_torch(path)
    if not isinstance(saved, dict) or saved.get("format") not in formats:
        raise ValueError(f"{path} is not a transformation saved by fctlib (save_transformation "
                         "or save_fastfill)")
    return saved


def save_transformation(model: Transformation, path: str | Path) -> Path:
    """Save h with its sizes, so `load_transformation` rebuilds it without the preset."""
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    return save_torch({"format": TRANSFORMATION_FORMAT, "sizes": transformation_sizes(model),
                       "state_dict": state}, path)


def load_transformation(path: str | Path) -> Transformation:
    """A transformation saved by `save_transformation`, in eval mode on the CPU."""
    saved = read_saved_model(path, (TRANSFORMATION_FORMAT,))
    model = build_transformation(saved["sizes"])
    model.load_state_dict(saved["state_dict"])
    return model.eval()
