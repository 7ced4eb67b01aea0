"""A suite run as a deployed retrieval system: export its gallery store and transformation, then
query the upgraded index with the new model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fctlib.deploy.gallery_store import (
    MANIFEST,
    GalleryStore,
    GalleryStoreError,
    write_gallery_store,
)
from fctlib.deploy.upgrade import open_upgraded
from fctlib.errors import UserError
from fctlib.evaluation.distances import for_distance
from fctlib.io import check_output_folder
from fctlib.methods.fastfill import fastfill_artifact
from fctlib.methods.fct import TransformationName
from fctlib.methods.side_info import SideInfoName
from fctlib.models.transformation import save_fastfill, save_transformation
from fctlib.suite.run import Run


def export_gallery(run: Run, folder: str | Path, *, split: str = "test",
                   side_dim: int | None = None, shard_size: int = 10_000,
                   fastfill: bool = False) -> tuple[GalleryStore, Path]:
    """Write `folder/gallery` (ids = positions in the split, old embeddings, side-info) and
    `folder/transformation.pt` (FCT's h, or FastFill's with its uncertainty head), from a run's
    cached (or freshly trained) models."""
    folder = check_output_folder(folder, "--out")
    if (folder / "gallery" / MANIFEST).exists():
        raise GalleryStoreError(f"{folder / 'gallery'} already holds a gallery store; pass "
                                "another --out or remove that folder")
    side_dim = run.preset.side_info.model.embedding_dim if side_dim is None else side_dim
    old = run.embeddings("old", split)
    side = run.embeddings(SideInfoName(side_dim), split) if side_dim else None
    source = {"preset": run.preset.name, "seed": run.seed, "split": split, "side_dim": side_dim}
    store = write_gallery_store(folder / "gallery", np.arange(len(old)), old, side,
                                shard_size=shard_size, source=source)
    path = folder / "transformation.pt"
    if fastfill:
        return store, save_fastfill(run.trained(fastfill_artifact(run, side_dim))[0], path)
    return store, save_transformation(run.trained(TransformationName(side_dim))[0], path)


@dataclass(frozen=True)
class SearchResult:
    """Neighbour ids and scores (faiss distances) of each query, nearest first."""

    ids: np.ndarray
    scores: np.ndarray


def search_index(index, queries: np.ndarray, k: int, metric: str,
                 exclude_ids: np.ndarray | None = None) -> SearchResult:
    """The k nearest gallery ids of each query; `exclude_ids[i]` (the query's own item, when
    queries and gallery are the same images) is dropped from query i's list."""
    queries = for_distance(queries, metric)
    extra = 0 if exclude_ids is None else 1
    scores, ids = index.search(queries, k + extra)
    if exclude_ids is None:
        return SearchResult(ids, scores)
    keep = ids != np.asarray(exclude_ids)[:, None]
    keep &= np.cumsum(keep, axis=1) <= k  # the first k that are not the query itself
    return SearchResult(ids[keep].reshape(len(ids), k), scores[keep].reshape(len(ids), k))


def hit_rates(result: SearchResult, query_labels: np.ndarray, gallery_labels: np.ndarray,
              ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """top-k: the share of queries with a same-class item among their k nearest (percent)."""
    found = result.ids >= 0  # faiss pads with -1 when an IVF probe finds fewer than k
    same = found & (gallery_labels[np.where(found, result.ids, 0)]
                    == np.asarray(query_labels)[:, None])
    return {f"top{k}": float(100 * same[:, :k].any(axis=1).mean()) for k in ks}


def check_search(count: int, queries: list[int], k: int) -> None:
    """Refuse query positions outside the gallery and a k outside 1..count-1 (a query's own item
    is excluded), before any work."""
    outside = [q for q in queries if not 0 <= q < count]
    if outside:
        raise UserError(f"--queries {outside} lie outside the gallery's positions 0..{count - 1}; "
                        "pass positions in that range")
    if not 1 <= k < count:
        raise UserError(f"-k {k} is out of range: the gallery holds {count} items and a query's "
                        f"own item is left out; pass -k between 1 and {count - 1}")


def search_run(upgraded: str | Path, queries: list[int] | None = None, k: int = 10,
               runs_dir: str | Path | None = None) -> dict:
    """Query an upgraded gallery exported from a run with that run's new model (query images of
    the same split, each query's own item excluded): neighbours of `queries` and hit rates. The
    new model must be trained already: a search never trains."""
    index, manifest = open_upgraded(upgraded)
    check_search(manifest["count"], queries or [], k)
    source = manifest["source"]
    if not {"preset", "seed", "split"} <= source.keys():
        raise GalleryStoreError(
            f"{upgraded} was not exported from a suite run (its manifest's source names no "
            "preset, seed and split): `fct search` queries a store written by `fct export-gallery` "
            "with that run's new model; search your own store in Python with "
            "fctlib.suite.export.search_index and your query embeddings")
    run = Run(source["preset"], source["seed"], runs_dir=runs_dir)
    new = run.artifact("new")
    if not run.store.finished(new):
        train = (f"fct train-step --preset {source['preset']} --seed {source['seed']} --step new"
                 + (f" --runs-dir {runs_dir}" if runs_dir else ""))
        raise UserError(
            f"the new model that searches {upgraded} is not trained under {run.root} (no "
            f"{run.store.folder(new)}); pass the --runs-dir that `fct export-gallery` used, or "
            f"train it: {train}")
    labels = run.splits.split(source["split"]).labels
    embeddings = run.embeddings(new, source["split"])
    everything = search_index(index, embeddings, k, manifest["index"]["metric"],
                              exclude_ids=np.arange(len(embeddings)))
    chosen = queries if queries is not None else []
    return {
        "source": source, "index": manifest["index"],
        "hit_rates": hit_rates(everything, labels, labels, ks=tuple(sorted({1, min(5, k)}))),
        "neighbours": {int(q): {"label": int(labels[q]),
                                "ids": everything.ids[q].tolist(),
                                "labels": labels[everything.ids[q]].tolist()} for q in chosen},
    }
