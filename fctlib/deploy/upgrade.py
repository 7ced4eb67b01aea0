"""Upgrade a stored gallery without images: h(old embedding, side-info) shard by shard, then a faiss
index of the new embeddings with the same ids.

Output folder (default: `<store>-upgraded`, next to the input)::

    job.json                 which store and transformation (sha256) this output belongs to
    shard-00000/new.npy      float32 (n, new_dim); shard-00000/ids.npy, written last
    shard-00000/sigma.npy    FastFill's uncertainty per item (with a FastFill model only)
    shard-00000/inputs.json  sha256 of the input shard's files this output was made from
    index.faiss              flat or IVF index over every shard, ids as faiss ids
    backfill_order.npy       ids by decreasing sigma: re-embed these first (FastFill only)
    manifest.json            counts, index settings, "verified": true; written last of all

The input store is only read (memory-mapped). A shard is finished when its ids.npy exists and its
inputs.json matches the input shard's files, so an interrupted upgrade resumes at the first
unfinished shard and a fixed input shard is upgraded again; shards are independent and can be
mapped across the workers of a Dask cluster. Temporary files that a killed run left are deleted
when the next run starts.
"""

from __future__ import annotations

import contextlib
import math
import pickle
from collections.abc import Callable
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import torch

from fctlib.deploy.gallery_store import (
    MANIFEST,
    GalleryStoreError,
    Shard,
    check_npy,
    open_gallery_store,
    read_manifest,
)
from fctlib.errors import UserError
from fctlib.evaluation.distances import DISTANCES, for_distance
from fctlib.io import (
    atomic_write,
    check_output_folder,
    file_sha256,
    load_json_if_exists,
    remove_stale_tmp,
    save_json,
    save_npy_atomic,
)
from fctlib.models.transformation import (
    FASTFILL_FORMAT,
    TRANSFORMATION_FORMAT,
    FastFill,
    Transformation,
    model_from_saved,
    read_saved_model,
    upgrade_embeddings,
    upgrade_with_uncertainty,
)
from fctlib.progress import progress

UPGRADE_FORMAT = "fct-upgraded-gallery/1"
INDEX_FILE = "index.faiss"
ORDER_FILE = "backfill_order.npy"
JOB_FILE = "job.json"
INPUTS_FILE = "inputs.json"
INDEX_KINDS = ("auto", "flat", "ivf")
UPGRADE_FIELDS = {"count": int, "index": {"file": str, "metric": str}, "source": {}}  # as read
IVF_FROM = 250_000  # "auto" builds an IVF index from this many items on, a flat one below
IVF_TRAIN_PER_LIST = 64


def default_output(store: str | Path) -> Path:
    """Where an upgrade is written by default: `<store>-upgraded` beside the store."""
    store = Path(store).resolve()
    return store.with_name(store.name + "-upgraded")


def load_upgrade_model(path: str | Path) -> Transformation | FastFill:
    """The model saved at `path`: an FCT transformation, or FastFill (h with its uncertainty)."""
    try:
        saved = read_saved_model(path, (TRANSFORMATION_FORMAT, FASTFILL_FORMAT))
    except FileNotFoundError:
        raise
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise GalleryStoreError(
            f"{path} cannot be read as a saved transformation ({reason}): the file is damaged "
            "or truncated; copy it again or export it again with `fct export-gallery`") from None
    except ValueError as err:
        raise GalleryStoreError(f"{err}; pass the transformation.pt written by "
                                "`fct export-gallery`") from None
    return model_from_saved(saved)  # the file is read once


def check_compatible(model: Transformation, store, transformation_path: Path) -> None:
    """Stop, naming both files, when h was trained for other embedding or side-info sizes."""
    if (model.old_dim, model.side_info_dim) != (store.old_dim, store.side_info_dim):
        raise GalleryStoreError(
            f"transformation {transformation_path} was trained for {model.old_dim}-d old "
            f"embeddings and {model.side_info_dim}-d side-info, but the store {store.folder} "
            f"holds {store.old_dim}-d and {store.side_info_dim}-d; use the transformation "
            "fitted for this old model and side-info model")


@lru_cache(maxsize=4)
def _cached_model(path: str, sha256: str) -> Transformation | FastFill:
    return load_upgrade_model(path)


def _h(model: Transformation | FastFill) -> Transformation:
    return model.transformation if isinstance(model, FastFill) else model


def input_digests(shard: Shard) -> dict[str, str]:
    """sha256 of each file of an input shard, by file name."""
    return {path.name: file_sha256(path) for path in sorted(shard.folder.glob("*.npy"))}


def shard_finished(shard: Shard, out_shard: Path, new_dim: int, with_sigma: bool = False) -> bool:
    """Whether an output shard is complete (its ids.npy, written last, exists and fits) and was
    made from the input shard's current files."""
    try:
        check_npy(out_shard / "ids.npy", (shard.count,), "i")
        check_npy(out_shard / "new.npy", (shard.count, new_dim), "f")
        if with_sigma:
            check_npy(out_shard / "sigma.npy", (shard.count,), "f")
    except GalleryStoreError:
        return False
    return load_json_if_exists(out_shard / INPUTS_FILE) == input_digests(shard)


def check_finite_inputs(shard: Shard) -> None:
    """Stop, naming the input file, when an old embedding or side-info holds NaN or inf."""
    for name, array in (("old.npy", shard.old()), ("side.npy", shard.side())):
        if array is not None and not np.isfinite(array).all():
            rows = np.flatnonzero(~np.isfinite(array).all(axis=1))
            raise GalleryStoreError(
                f"{shard.folder / name} holds non-finite values (NaN or inf) in {len(rows)} "
                f"row(s), first row {rows[0]}; fix that file or export the store again, then "
                "rerun (shards whose inputs changed are upgraded again)")


@contextlib.contextmanager
def _torch_threads(threads: int | None):
    """torch's intra-op threads set to `threads` inside (left as they are where None), and the
    process's count restored after, so that a library call leaves its caller's count alone."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def upgrade_shard(shard: Shard, out: Path, transformation: Path, transformation_sha256: str,
                  *, batch_size: int = 8192, threads: int | None = None) -> str:
    """Upgrade one shard into out/<shard name>/ (a no-op when already finished); returns its name.

    Runs in a worker process when mapped on a Dask cluster, so it takes only plain arguments.
    """
    model = _cached_model(str(transformation), transformation_sha256)
    fastfill, target = isinstance(model, FastFill), out / shard.name
    if shard_finished(shard, target, _h(model).new_dim, fastfill):
        return shard.name
    digests = input_digests(shard)
    upgrade = upgrade_with_uncertainty if fastfill else upgrade_embeddings
    with _torch_threads(threads):
        result = upgrade(model, shard.old(), shard.side(), batch_size=batch_size,
                         device=torch.device("cpu"))
    if fastfill:
        save_npy_atomic(result[1], target / "sigma.npy")
    save_npy_atomic(result[0] if fastfill else result, target / "new.npy")
    save_json(digests, target / INPUTS_FILE)
    save_npy_atomic(np.array(shard.ids(), dtype=np.int64), target / "ids.npy")
    return shard.name


def _start_job(out: Path, store, transformation: Path, sha256: str) -> None:
    job = {"store": str(store.folder.resolve()),
           "store_manifest_sha256": file_sha256(store.folder / MANIFEST),
           "transformation": str(transformation.resolve()), "transformation_sha256": sha256}
    previous = load_json_if_exists(out / JOB_FILE)
    same = ("store_manifest_sha256", "transformation_sha256")
    if previous is not None and any(previous.get(k) != job[k] for k in same):
        raise GalleryStoreError(
            f"{out} holds an upgrade of another store or by another transformation "
            f"(see {out / JOB_FILE}); remove that folder or pass another output folder")
    if previous is None:
        save_json(job, out / JOB_FILE)


def _training_sample(parts: list[Path], counts: list[int], size: int, seed: int) -> np.ndarray:
    """`size` vectors drawn uniformly without replacement across the shards (read by mmap)."""
    total = sum(counts)
    picks = np.sort(np.random.default_rng(seed).choice(total, size=min(size, total),
                                                       replace=False))
    chunks, start = [], 0
    for part, count in zip(parts, counts, strict=True):
        local = picks[(picks >= start) & (picks < start + count)] - start
        if len(local):
            chunks.append(np.load(part / "new.npy", mmap_mode="r")[local])
        start += count
    return np.concatenate(chunks)


def build_index(parts: list[Path], counts: list[int], dim: int, *, kind: str = "auto",
                metric: str = "l2", seed: int = 0):
    """A faiss index over the new embeddings of the output shards, added shard by shard with
    their ids: exact (flat) or IVF (nlist = sqrt(N), trained on a sample); returns (index, info)."""
    import faiss

    if kind not in INDEX_KINDS or metric not in DISTANCES:
        raise ValueError(f"index kind must be one of {INDEX_KINDS} and metric one of {DISTANCES}")
    total = sum(counts)
    kind = ("ivf" if total >= IVF_FROM else "flat") if kind == "auto" else kind
    faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    flat = faiss.IndexFlatIP(dim) if metric == "cosine" else faiss.IndexFlatL2(dim)
    info = {"kind": kind, "metric": metric, "ntotal": total}
    if kind == "flat":
        index = faiss.IndexIDMap(flat)
    else:
        nlist = max(1, int(math.sqrt(total)))
        index = faiss.IndexIVFFlat(flat, dim, nlist, faiss_metric)
        sample = _training_sample(parts, counts, IVF_TRAIN_PER_LIST * nlist, seed)
        index.train(for_distance(sample, metric))
        index.nprobe = min(nlist, 16)
        info.update(nlist=nlist, nprobe=index.nprobe, trained_on=len(sample))
    for part in progress(parts, desc="index", leave=False):
        ids = np.load(part / "ids.npy")
        index.add_with_ids(for_distance(np.load(part / "new.npy", mmap_mode="r"), metric), ids)
    return index, info


def backfill_order(parts: list[Path]) -> np.ndarray:
    """Ids of every output shard by decreasing FastFill sigma (ties in storage order): the items
    to re-embed with the new model first."""
    ids = np.concatenate([np.load(p / "ids.npy") for p in parts])
    sigma = np.concatenate([np.load(p / "sigma.npy") for p in parts])
    return ids[np.argsort(-sigma.astype(np.float64), kind="stable")]


def verify_upgrade(store, out: Path, new_dim: int) -> int:
    """Check every output shard against its input shard (count, ids, finite values)."""
    for shard in store.shards:
        target = out / shard.name
        ids = check_npy(target / "ids.npy", (shard.count,), "i")
        new = check_npy(target / "new.npy", (shard.count, new_dim), "f")
        if not np.array_equal(ids, shard.ids()):
            raise GalleryStoreError(f"{target / 'ids.npy'} does not match {shard.folder}/ids.npy")
        if not np.isfinite(new).all():
            raise GalleryStoreError(f"{target / 'new.npy'} holds non-finite values")
    return store.count


def upgrade_gallery(store: str | Path, transformation: str | Path, out: str | Path | None = None,
                    *, index: str = "auto", metric: str = "l2", batch_size: int = 8192,
                    client=None, threads: int | None = None,
                    log: Callable[[str], None] = print) -> Path:
    """Upgrade every shard of a store (resuming a partial output), index and verify the result.

    `client`: a dask.distributed Client to map shards across its workers (None: this process).
    """
    if index not in INDEX_KINDS or metric not in DISTANCES:
        raise ValueError(f"index must be one of {INDEX_KINDS} and metric one of {DISTANCES}")
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}; pass e.g. 8192")
    store = open_gallery_store(store)
    transformation = Path(transformation)
    sha = file_sha256(transformation) if transformation.exists() else ""
    model = _cached_model(str(transformation), sha)  # the same load the shards reuse
    fastfill, model = isinstance(model, FastFill), _h(model)
    check_compatible(model, store, transformation)
    out = check_output_folder(Path(out) if out else default_output(store.folder), "--out")
    if out.resolve().is_relative_to(store.folder.resolve()):
        raise GalleryStoreError(f"--out {out} lies inside the store {store.folder}, which is "
                                "never modified; pass a folder outside it")
    todo = [s for s in store.shards
            if not shard_finished(s, out / s.name, model.new_dim, fastfill)]
    for shard in todo:
        check_finite_inputs(shard)
    if out.is_dir():
        remove_stale_tmp(out)
    _start_job(out, store, transformation, sha)
    log(f"{store.count} items in {len(store.shards)} shards; {len(todo)} to upgrade")
    task = partial(upgrade_shard, out=out, transformation=transformation,
                   transformation_sha256=sha, batch_size=batch_size, threads=threads)
    if client is not None:
        client.gather(client.map(task, todo, pure=False))
    else:
        for shard in progress(todo, desc="upgrade", leave=False):
            task(shard)
    count = verify_upgrade(store, out, model.new_dim)
    parts = [out / s.name for s in store.shards]
    faiss_index, info = build_index(parts, [s.count for s in store.shards], model.new_dim,
                                    kind=index, metric=metric)
    if faiss_index.ntotal != count:
        raise GalleryStoreError(f"index holds {faiss_index.ntotal} vectors, expected {count}")
    import faiss

    atomic_write(out / INDEX_FILE, lambda tmp: faiss.write_index(faiss_index, str(tmp)))
    if fastfill:
        save_npy_atomic(backfill_order(parts), out / ORDER_FILE)
    manifest = {"format": UPGRADE_FORMAT, "new_dim": model.new_dim, "count": count,
                "shards": [{"name": s.name, "count": s.count} for s in store.shards],
                "index": {"file": INDEX_FILE, **info}, "source": store.source,
                "backfill_order": ORDER_FILE if fastfill else None,
                "verified": True}
    save_json(manifest, out / MANIFEST)
    log(f"upgraded {count} items into {out} ({info['kind']} index, {metric})")
    return out


def open_upgraded(folder: str | Path):
    """The faiss index and manifest of a finished, verified upgrade."""
    import faiss

    folder = Path(folder)
    manifest = read_manifest(folder, UPGRADE_FORMAT, UPGRADE_FIELDS)
    path = folder / manifest["index"]["file"]
    rebuild = (f"run the `fct upgrade` that wrote {folder} again (its store and transformation "
               f"are in {folder / JOB_FILE}): it rebuilds the index from the upgraded shards")
    if not path.is_file():
        raise GalleryStoreError(f"{path} is missing; {rebuild}")
    try:
        return faiss.read_index(str(path)), manifest
    except RuntimeError as err:
        raise GalleryStoreError(f"{path} is damaged or truncated; {rebuild}") from err
