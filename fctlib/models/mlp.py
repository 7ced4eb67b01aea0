"""The one MLP builder behind every head on vectors: FCT's h, the backward projection g,
FastFill's uncertainty head and SimCLR's projection head."""

from __future__ import annotations

from torch import nn


def mlp_layers(widths: list[int], *, last_plain: bool = True,
               batchnorm: bool = True) -> list[nn.Module]:
    """Linear layers through `widths` (input first), each followed by BatchNorm (if `batchnorm`)
    and ReLU, except the last when `last_plain`."""
    if len(widths) < 2 or min(widths) < 1:
        raise ValueError(f"an MLP needs at least two positive widths, got {widths}")
    layers: list[nn.Module] = []
    for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(cin, cout))
        if not (last_plain and i == len(widths) - 2):
            layers += [nn.BatchNorm1d(cout), nn.ReLU()] if batchnorm else [nn.ReLU()]
    return layers
