"""What a method may ask of the run it trains and measures in (RunContext) and of the multi-step
experiment (Generations). `suite.run.Run` and `suite.multistep.MultiStep` implement them; methods
type against these protocols, so they sit below the suite that drives them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np
    import torch

    from fctlib.data.run_splits import Splits
    from fctlib.data.transforms import CropFlipTransform, EvalTransform
    from fctlib.experiment.config import Preset, StageConfig
    from fctlib.experiment.names import Name
    from fctlib.experiment.records import Record
    from fctlib.experiment.store import Artifact


class RunContext(Protocol):
    """One preset at one seed: its data, transforms and trained artifacts, and evaluation."""

    preset: Preset
    seed: int
    device: torch.device

    @property
    def splits(self) -> Splits:
        """The preset's train / tune / test images and class split."""

    @property
    def image_stats(self) -> tuple:
        """(image size, channels, mean, std) of the preset's normalisation."""

    def train_transform(self) -> CropFlipTransform:
        """The training augmentation of the preset's images."""

    def eval_transform(self) -> EvalTransform:
        """The preset's images, normalised, without augmentation."""

    def artifact(self, name: Name | Artifact) -> Artifact:
        """The declaration behind an artifact name."""

    @property
    def data_digests(self) -> dict[str, str]:
        """What the data set holds: the digests of its train and test sets."""

    def data_key(self) -> str:
        """What every artifact's key depends on besides the seed: data config, content, split."""

    def artifact_key(self, name: Name | Artifact) -> str:
        """An artifact's store key: its settings, upstream artifacts, data and seed."""

    def seed_record(self, step: str) -> Record | None:
        """This seed's record of a step (e.g. `bct`) in the run's results folder, or None."""

    def trained(self, name: Name | Artifact) -> tuple:
        """(model, history) of an artifact: loaded, resumed or trained."""

    def embeddings(self, name: Name | Artifact, split: str) -> np.ndarray:
        """Embeddings of a split by an encoder, cached."""

    def augmented_embeddings(self, names: list[Name | Artifact], view: int) -> list[np.ndarray]:
        """Each encoder's embeddings of augmented pass `view` over the training split, cached."""

    def evaluate(self, query: np.ndarray, gallery: np.ndarray, split: str = "test",
                 distance: str | None = None) -> dict:
        """Metrics by class split of a case under `distance` (None: the preset's)."""


class Generations(Protocol):
    """The multi-step experiment of a run: the classes of each generation and their models."""

    run: RunContext
    generations: list[list[int]]

    def stage(self, k: int) -> StageConfig:
        """The recipe of generation k."""

    def generation(self, method: str, k: int) -> Artifact:
        """Generation k of a method with models of its own."""
