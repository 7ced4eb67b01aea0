"""One preset at one seed: its data, its transforms, its artifact store, and the evaluation of a
case. Every trained thing is reached by name through the store (`run.trained("old")`,
`run.embeddings(SideInfoName(128), "test")`, or a name's string form `run.trained("side:128")`);
what each name means is declared by the method that owns it.

Artifacts live under `runs/<preset>/seed<k>/`: re-running a step with the same parameters loads
them, changed parameters get new folders, and an interrupted training resumes from its last
checkpoint.
"""

from __future__ import annotations

import dataclasses
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

import fctlib.methods  # noqa: F401  (registers every method's artifacts)
from fctlib.data.run_splits import Splits, load_splits
from fctlib.data.transforms import IMAGENET_MEAN, IMAGENET_STD, CropFlipTransform, EvalTransform
from fctlib.evaluation.distances import DISTANCES
from fctlib.evaluation.retrieval import evaluate_case
from fctlib.experiment.config import Preset, load_preset
from fctlib.experiment.names import Name
from fctlib.experiment.provenance import compute, git_commit
from fctlib.experiment.records import STEP_RECORDS, Record, load_record
from fctlib.experiment.store import Artifact, ArtifactStore, fingerprint
from fctlib.io import remove_stale_tmp
from fctlib.methods.registry import declare
from fctlib.paths import results_root, runs_root
from fctlib.training import distributed
from fctlib.training.embed import embed
from fctlib.training.runtime import (
    cpu_bf16,
    cpu_channels_last,
    default_device,
    embed_batch_size,
    set_cpu_denormals,
    set_cpu_threads,
    set_gpu_kernels,
)


class Run:
    """One preset at one seed: its data, its artifacts, and the evaluation of every case."""

    def __init__(self, preset: str | Preset, seed: int, *, overrides: dict | str | None = None,
                 runs_dir: str | Path | None = None, results_dir: str | Path | None = None,
                 device: torch.device | None = None):
        self.preset = preset if isinstance(preset, Preset) else load_preset(preset, overrides)
        self.preset.check_methods()  # every method is registered once fctlib.methods is imported
        self.seed = seed
        self.root = Path(runs_dir or runs_root()) / self.preset.name / f"seed{seed}"
        self.results_dir = Path(results_dir or results_root(self.preset.name))
        self.device = device or default_device()
        set_cpu_threads()  # every step of the suite starts its work here
        set_gpu_kernels()
        set_cpu_denormals()
        cpu_bf16()  # a bad FCT_CPU_BF16 or FCT_CPU_CHANNELS_LAST is refused before any work
        cpu_channels_last()

    def save_record(self, record: Record) -> Path:
        """Write a step's record to results/<preset>/metrics/seed<k>/<step>.json, atomically, with
        the commits that trained the artifacts this process used and their weights' digests, the
        data they were trained on (its key and `data_digests`), the commit measuring it, the
        machine's arithmetic (`provenance.compute`) and that of every artifact trained with
        another (loaded from a folder another process trained)."""
        record.data = {"key": self.data_key(), **self.data_digests}
        record.artifacts = dict(self.store.used)
        record.weights = dict(self.store.weights)
        record.commit = git_commit()
        record.compute = compute()
        record.trained_with = {name: arithmetic for name, arithmetic in self.store.computes.items()
                               if arithmetic != record.compute}
        return record.save(self.results_dir, self.seed)

    @cached_property
    def splits(self) -> Splits:
        """The preset's data splits, loaded once per run."""
        return load_splits(self.preset.data)

    # -- transforms ---------------------------------------------------------------------------
    @property
    def image_stats(self) -> tuple:
        """(image size, channels, mean, std) of the preset's normalization."""
        b = self.splits.bundle
        if self.preset.data.normalization == "dataset":
            return b.image_size, b.channels, b.mean, b.std
        if b.channels != 3:
            raise ValueError(
                f"normalization 'imagenet' needs RGB images, but {b.source} has {b.channels} "
                "channel(s); set data.normalization: dataset or data.dataset.channels: 3"
            )
        return b.image_size, b.channels, IMAGENET_MEAN, IMAGENET_STD

    def train_transform(self) -> CropFlipTransform:
        """The training augmentation of the preset's images (batch-wise)."""
        size, ch, mean, std = self.image_stats
        d = self.preset.data
        return CropFlipTransform(size, ch, mean, std, crop_padding=d.crop_padding, flip=d.flip)

    def eval_transform(self) -> EvalTransform:
        """The preset's images, normalised, without augmentation (batch-wise)."""
        return EvalTransform(*self.image_stats)

    # -- artifacts ----------------------------------------------------------------------------
    @cached_property
    def store(self) -> ArtifactStore:
        """The run's artifacts; every key depends on the data, the class split and the seed (and
        on bfloat16 where a CPU run uses it: its models never stand in for float32 ones).
        Temporary files that a killed writer (Ctrl-C) left under the run's folder are removed."""
        context = (self.data_key(), self.seed)
        if self.device.type == "cpu" and cpu_bf16():
            context += ("cpu-bf16",)
        log = print if distributed.is_main_process() else (lambda line: None)
        if distributed.is_main_process():  # the one writer: what a killed one left goes
            remove_stale_tmp(self.root)
        return ArtifactStore(self.root, context, self._embed_split, log)

    @cached_property
    def data_digests(self) -> dict[str, str]:
        """What the data set holds, not where: `ImageSet.digest` of its train and test sets."""
        bundle = self.splits.bundle
        return {"train": bundle.train.digest(), "test": bundle.test.digest()}

    def data_key(self) -> str:
        """What every artifact's key depends on besides the seed: the data config, what the data
        set holds (`data_digests`) and the class split; not where it is stored nor how its
        images are served, so the same data in another folder or on another machine finds its
        models (and notebook 04's record its choice)."""
        data = dataclasses.asdict(self.preset.data)
        del data["path"]  # memory or stream: the same batches
        for where in ("root", "cache_dir", "download"):
            del data["dataset"][where]
        return fingerprint(data, self.splits.old_classes, self.data_digests["train"],
                           self.data_digests["test"])

    def _embed_split(self, model: torch.nn.Module, split: str, name: str) -> np.ndarray:
        return embed(model, self.splits.split(split), self.eval_transform(), device=self.device,
                     desc=f"embed {name} {split}")

    def artifact(self, name: Name | Artifact) -> Artifact:
        """The declaration behind an artifact name or its string form (an Artifact is returned as
        it is)."""
        return name if isinstance(name, Artifact) else declare(self, name)

    def artifact_key(self, name: Name | Artifact) -> str:
        """An artifact's store key (its folder's suffix): its settings, upstream, data, seed."""
        return self.store.key(self.artifact(name))

    def seed_record(self, step: str) -> Record | None:
        """This seed's record of a step in the results folder (`metrics/seed<k>/<step>.json`),
        or None where none was written."""
        path = STEP_RECORDS[step].path(self.results_dir, self.seed)
        return load_record(path) if path.is_file() else None

    def trained(self, name: Name | Artifact) -> tuple:
        """(model, history) of an artifact or encoder name: loaded, resumed or trained."""
        return self.store.trained(self.artifact(name))

    def embeddings(self, name: Name | Artifact, split: str) -> np.ndarray:
        """Embeddings of a split by an encoder (its name, e.g. `old`, `SideInfoName(8)` or
        `side:8`, or an Artifact), cached."""
        return self.store.embeddings(self.artifact(name), split)

    def augmented_embeddings(self, names: list[Name | Artifact], view: int) -> list[np.ndarray]:
        """Each encoder's embeddings of augmented pass `view` over the training split: the
        training augmentation drawn from seed x 1000 + view, every encoder on the same images.
        Cached per encoder, so every h fitted on these encoders reads the same pass (on the
        GPU preset, old's and new's four passes are 360,000 images, 5 s at 69k img/s, which every
        h embedded again before)."""
        seed, batch_size = self.seed * 1000 + view, embed_batch_size(self.device)

        def embed_pass(models: list[torch.nn.Module]) -> list[np.ndarray]:
            return embed(models, self.splits.train, self.train_transform(), device=self.device,
                         batch_size=batch_size, seed=seed, desc=f"features view {view + 1}")

        # the seed and the batch size decide the pass's images (one random draw per batch)
        return self.store.augmented_embeddings([self.artifact(n) for n in names],
                                               f"train-seed{seed}-batch{batch_size}", embed_pass)

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate(self, query: np.ndarray, gallery: np.ndarray, split: str = "test",
                 distance: str | None = None) -> dict:
        """Metrics by class split ({all, old, new} -> {top1, top5, mAP, ...}) of a case, under
        `distance` (None: the preset's)."""
        return evaluate_case(query, gallery, self.splits.split(split).labels,
                             self.splits.old_classes, distance=distance or self.preset.distance)

    def evaluate_cases(self, cases: dict[str, tuple[np.ndarray, np.ndarray]],
                       split: str = "test") -> dict[str, dict]:
        """Each case's metrics (as `evaluate`) under every distance: {distance: {case: metrics}}
        for cases given as {case: (query, gallery)}."""
        return {d: {case: self.evaluate(query, gallery, split, d)
                    for case, (query, gallery) in cases.items()} for d in DISTANCES}
