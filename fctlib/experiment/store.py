"""The artifact store: every trained thing of a run is declared once, and its checkpoint folder,
its embedding cache and its provenance are all derived from that one declaration.

An `Artifact` names what it depends on (preset slices and parameters, as plain data), the artifacts
it is trained against, a `recipe` version that a change of its training code bumps, and how to fit
it. Its key hashes all of that with the run's data and seed, so changing any slice it declares moves
both its folder and its cached embeddings. The store memoises trained artifacts in process and
records in each folder the commit and the arithmetic (`provenance.compute`) that trained it and a
digest of the weights it trained, by which records tell whether the notebooks of one seed used one
model or trainings of it that differ (a machine's run-to-run variance, runs on separate machines).
An artifact also records its upstream artifacts' weights: what was fitted against one training of a
model is set aside and made again where this run holds another training of it (a cache carried from
another machine, a model trained again with other arithmetic), never reused silently; so are the
cached embeddings of an artifact trained again to other weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fctlib.experiment.provenance import compute, git_commit
from fctlib.io import load_json_if_exists, save_json, save_npy_atomic

ARTIFACT_FILE = "artifact.json"
HISTORY_FILE = "history.json"
UNRECORDED = "unrecorded"  # an artifact made before the store recorded commits


def fingerprint(*parts) -> str:
    """A short stable hash of plain data (dataclasses, dicts, lists, numbers, strings)."""
    def plain(x):
        return dataclasses.asdict(x) if dataclasses.is_dataclass(x) else x

    text = json.dumps([plain(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def weights_digest(model) -> str:
    """A short hash of a torch module's state (every parameter's and buffer's name, dtype, shape
    and values, in the module's own order; the same for any device and memory layout)."""
    import torch  # the store itself is torch-free

    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class Artifact:
    """A trained model of a run: `fit(folder)` trains it (resuming from `folder/model.pt`) or
    loads it, and returns (model, history)."""

    name: str  # unique within a run, e.g. `old`, `bct:3.0`, `h:8`
    folder: str  # prefix of its checkpoint folder, e.g. `bct`
    depends: tuple  # preset slices and parameters it depends on (plain data)
    fit: Callable[[Path], tuple] = field(compare=False, repr=False)
    upstream: tuple[Artifact, ...] = ()  # the artifacts it is trained against
    recipe: int = 1  # bump when the code that fits it changes: its key moves, it retrains


class ArtifactStore:
    """A run's artifacts under `root`: `root/<folder>-<key>/` (model.pt, history.json,
    artifact.json: name, recipe, commit, compute, key, weights, upstream weights) and
    `root/embeddings/<name>-<key>/<split>.npy` (and augmented passes beside them)."""

    def __init__(self, root: Path, context: tuple, embed: Callable, log: Callable = print):
        self.root = Path(root)
        self.context = context  # what every key depends on: the data and the seed
        self._embed = embed  # (model, split, name) -> array
        self._log = log  # one line per artifact: loaded from its folder, or trained
        self._keys: dict[str, str] = {}
        self._trained: dict[str, tuple] = {}
        self.used: dict[str, str] = {}  # artifact name -> commit that trained it
        self.weights: dict[str, str] = {}  # artifact name -> weights_digest, where known
        self.computes: dict[str, dict[str, str]] = {}  # artifact name -> the arithmetic that
        # finished training it, where its folder records one
        self._checked: set[str] = set()  # artifacts whose upstream weights were compared

    def key(self, artifact: Artifact) -> str:
        """The fingerprint of an artifact, its upstream artifacts' keys and the run's context."""
        if artifact.name not in self._keys:
            upstream = [self.key(a) for a in artifact.upstream]
            self._keys[artifact.name] = fingerprint(
                artifact.name, artifact.recipe, artifact.depends, upstream, self.context)
        return self._keys[artifact.name]

    def folder(self, artifact: Artifact) -> Path:
        """The artifact's checkpoint folder."""
        return self.root / f"{artifact.folder}-{self.key(artifact)}"

    def finished(self, artifact: Artifact) -> bool:
        """Whether the artifact's training finished (its history is saved): it loads, untrained."""
        return (self.folder(artifact) / HISTORY_FILE).exists()

    def trained(self, artifact: Artifact) -> tuple:
        """(model, history) of an artifact: loaded, resumed or trained, once per process."""
        if artifact.name not in self._trained:
            self._check_upstream(artifact)
            folder = self.folder(artifact)
            finished = self.finished(artifact)
            started = time.perf_counter()
            model, history = artifact.fit(folder)
            self.weights[artifact.name] = weights_digest(model)
            if finished:
                saved = load_json_if_exists(folder / ARTIFACT_FILE) or {}
                self._log(f"{artifact.name}: loaded from {folder}, not trained (trained at "
                          f"commit {saved.get('commit', UNRECORDED)[:12]})")
            else:
                self._drop_other_embeddings(artifact)
                save_json(history, folder / HISTORY_FILE)
                upstream = {u.name: self.weights[u.name] for u in artifact.upstream
                            if u.name in self.weights}
                save_json({"name": artifact.name, "recipe": artifact.recipe,
                           "commit": git_commit(), "compute": compute(), "key": self.key(artifact),
                           "weights": self.weights[artifact.name], "upstream": upstream},
                          folder / ARTIFACT_FILE)
                self._log(f"{artifact.name}: trained in {time.perf_counter() - started:.0f} s "
                          f"({len(history)} epochs), saved in {folder}")
            self._trained[artifact.name] = (model.eval(), history)
        self._note_use(artifact)
        return self._trained[artifact.name]

    def embeddings(self, artifact: Artifact, split: str) -> np.ndarray:
        """The artifact's embeddings of a split, cached on disk under its key."""
        self._check_upstream(artifact)
        path = self._embeddings_folder(artifact) / f"{split}.npy"
        if path.exists():
            self._note_use(artifact)
            return np.load(path)
        array = self._embed(self.trained(artifact)[0], split, artifact.name)
        save_npy_atomic(array, path)
        return array

    def augmented_embeddings(self, artifacts: list[Artifact], pass_name: str,
                             embed_pass: Callable[[list], list[np.ndarray]]) -> list[np.ndarray]:
        """Each artifact's embeddings of one augmented pass over images, cached beside its plain
        ones as `<pass_name>.npy` (the name says what decides the pass's images); those not
        cached are computed together by `embed_pass(models)`, which shows every model the same
        images."""
        for artifact in artifacts:
            self._check_upstream(artifact)
        paths = [self._embeddings_folder(a) / f"{pass_name}.npy" for a in artifacts]
        missing = [i for i, path in enumerate(paths) if not path.exists()]
        computed = embed_pass([self.trained(artifacts[i])[0] for i in missing]) if missing else []
        for i, array in zip(missing, computed, strict=True):
            save_npy_atomic(array, paths[i])
        for artifact in artifacts:
            self._note_use(artifact)
        arrays = dict(zip(missing, computed, strict=True))
        return [arrays[i] if i in arrays else np.load(path) for i, path in enumerate(paths)]

    def _check_upstream(self, artifact: Artifact) -> None:
        """Once per process: where the artifact's folder records other weights of an upstream
        artifact than this run's, set its folder and cached embeddings aside (under
        `root/stale/`), so that it is made again against this run's training."""
        if artifact.name in self._checked:
            return
        self._checked.add(artifact.name)
        saved = load_json_if_exists(self.folder(artifact) / ARTIFACT_FILE) or {}
        recorded = saved.get("upstream", {})
        changed = []
        for upstream in artifact.upstream:
            now = self._weights_of(upstream) if upstream.name in recorded else None
            if now is not None and now != recorded[upstream.name]:
                changed.append(f"{upstream.name} ({recorded[upstream.name]} then, {now} now)")
        if not changed:
            return
        for folder in (self.folder(artifact), self._embeddings_folder(artifact)):
            self._set_aside(folder)
        self._log(f"{artifact.name}: made against other weights of {', '.join(changed)}: its "
                  f"cache set aside in {self.root / 'stale'}, made again")

    def _drop_other_embeddings(self, artifact: Artifact) -> None:
        """After a training: set the artifact's cached embeddings aside (under `root/stale/`)
        unless its folder says they are of the weights just trained (the embeddings of a folder
        removed, or carried from another machine's training, belong to another training)."""
        embedded = self._embeddings_folder(artifact)
        made_by = (load_json_if_exists(self.folder(artifact) / ARTIFACT_FILE) or {}).get("weights")
        if embedded.exists() and made_by != self.weights[artifact.name]:
            self._set_aside(embedded)
            self._log(f"{artifact.name}: its cached embeddings were of another training "
                      f"({made_by or 'unrecorded'}): set aside in {self.root / 'stale'}")

    def _set_aside(self, folder: Path) -> None:
        """Move a folder of stale files under `root/stale/` (kept, never reused); one that another
        process (a data-parallel rank) has moved already is left to it."""
        try:
            folder.rename(_free_name(self.root / "stale" / folder.name))
        except FileNotFoundError:
            pass

    def _weights_of(self, artifact: Artifact) -> str | None:
        """An artifact's weights digest in this run: as trained or loaded here, or recorded in its
        finished folder (None in a folder of older code), else trained now to know it."""
        if artifact.name not in self.weights:
            self._check_upstream(artifact)
            if self.finished(artifact):
                return (load_json_if_exists(self.folder(artifact) / ARTIFACT_FILE) or {}).get(
                    "weights")
            self.trained(artifact)
        return self.weights[artifact.name]

    def _embeddings_folder(self, artifact: Artifact) -> Path:
        return self.root / "embeddings" / f"{artifact.name.replace(':', '_')}-{self.key(artifact)}"

    def _note_use(self, artifact: Artifact) -> None:
        """Record the artifact's commit and, where known, its weights' digest (its embeddings
        read from disk: the one saved when it was trained; none by a folder of older code) and
        the arithmetic that trained it."""
        if artifact.name in self.used:
            return
        saved = load_json_if_exists(self.folder(artifact) / ARTIFACT_FILE) or {}
        self.used[artifact.name] = saved.get("commit", UNRECORDED)
        if artifact.name not in self.weights and "weights" in saved:
            self.weights[artifact.name] = saved["weights"]
        if "compute" in saved:
            self.computes[artifact.name] = saved["compute"]


def _free_name(path: Path) -> Path:
    """`path` with the first suffix `-1`, `-2`, ... that names nothing yet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    k = 1
    while path.with_name(f"{path.name}-{k}").exists():
        k += 1
    return path.with_name(f"{path.name}-{k}")
