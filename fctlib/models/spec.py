"""What network to build (ModelSpec): plain data, read from presets without importing torch."""

from __future__ import annotations

from dataclasses import dataclass

RESNET_ARCHITECTURES = ("resnet18", "resnet34", "resnet50", "resnet101")
ARCHITECTURES = (*RESNET_ARCHITECTURES, "small_cnn", "small_resnet")


@dataclass(frozen=True)
class ModelSpec:
    """What to build: architecture, embedding size and the reference recipe's options."""

    arch: str = "small_cnn"
    embedding_dim: int = 128
    width: int = 32  # small_cnn, small_resnet: channels of the first stage (doubled per stage)
    small_input_stem: bool = True  # resnet: 3x3 stride-1 stem without max-pool (CIFAR-style)
    embedding_relu: bool = True  # keep the ReLU of the last block on the embedding (reference)

    def __post_init__(self):
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown arch {self.arch!r}; choose one of {ARCHITECTURES}")
        if self.embedding_dim < 1 or self.width < 1:
            raise ValueError("embedding_dim and width must be positive")


