"""A gallery store on disk: shards of ids, old embeddings and side-info, as memory-mapped .npy.

Layout of a store folder::

    manifest.json            {"format", "old_dim", "side_info_dim", "shards": [{"name", "count"}]}
    shard-00000/ids.npy      int64 (n,)           unique across the store
    shard-00000/old.npy      float32 (n, old_dim)
    shard-00000/side.npy     float32 (n, side_info_dim)   (absent when side_info_dim is 0)

Every file is written atomically and the manifest last, so a store is either complete or has no
manifest. Opening a store checks every shard against the manifest before anything reads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fctlib.errors import UserError
from fctlib.io import save_json, save_npy_atomic

STORE_FORMAT = "fct-gallery-store/1"
MANIFEST = "manifest.json"
# what a manifest must hold, as read: a type, a mapping of required keys, or [the spec of items]
STORE_FIELDS = {"old_dim": int, "side_info_dim": int, "shards": [{"name": str, "count": int}],
                "source": {}}


class GalleryStoreError(UserError, ValueError):
    """A gallery store (or an upgrade's output) is missing, incomplete or inconsistent."""


def shard_name(index: int) -> str:
    """The folder name of the index-th shard."""
    return f"shard-{index:05d}"


@dataclass(frozen=True)
class Shard:
    """One shard of a store; arrays are memory-mapped read-only on access."""

    folder: Path
    count: int
    side_info_dim: int

    @property
    def name(self) -> str:
        return self.folder.name

    def ids(self) -> np.ndarray:
        return np.load(self.folder / "ids.npy", mmap_mode="r")

    def old(self) -> np.ndarray:
        return np.load(self.folder / "old.npy", mmap_mode="r")

    def side(self) -> np.ndarray | None:
        return np.load(self.folder / "side.npy", mmap_mode="r") if self.side_info_dim else None


@dataclass(frozen=True)
class GalleryStore:
    """An opened, checked gallery store."""

    folder: Path
    old_dim: int
    side_info_dim: int
    shards: tuple[Shard, ...]
    source: dict

    @property
    def count(self) -> int:
        return sum(s.count for s in self.shards)


def write_gallery_store(folder: str | Path, ids: np.ndarray, old: np.ndarray,
                        side: np.ndarray | None, *, shard_size: int,
                        source: dict | None = None) -> GalleryStore:
    """Write ids, old embeddings and side-info (or None) as a store of `shard_size`-item shards."""
    folder = Path(folder)
    if (folder / MANIFEST).exists():
        raise GalleryStoreError(f"{folder} already holds a gallery store; choose another folder")
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise GalleryStoreError(f"ids must be integers, got {ids.dtype}")
    if old.ndim != 2 or len(old) != len(ids):
        raise GalleryStoreError(f"old embeddings must be ({len(ids)}, d), got {old.shape}")
    if side is not None and (side.ndim != 2 or len(side) != len(ids)):
        raise GalleryStoreError(f"side-info must be ({len(ids)}, d), got {side.shape}")
    if len(np.unique(ids)) != len(ids):
        raise GalleryStoreError("ids must be unique")
    if shard_size < 1:
        raise GalleryStoreError(f"shard_size must be >= 1, got {shard_size}")
    shards = []
    for i, start in enumerate(range(0, len(ids), shard_size)):
        stop, shard = start + shard_size, folder / shard_name(i)
        save_npy_atomic(ids[start:stop].astype(np.int64), shard / "ids.npy")
        save_npy_atomic(np.asarray(old[start:stop], dtype=np.float32), shard / "old.npy")
        if side is not None:
            save_npy_atomic(np.asarray(side[start:stop], dtype=np.float32), shard / "side.npy")
        shards.append({"name": shard.name, "count": len(ids[start:stop])})
    manifest = {"format": STORE_FORMAT, "old_dim": int(old.shape[1]),
                "side_info_dim": 0 if side is None else int(side.shape[1]),
                "count": len(ids), "shards": shards, "source": source or {}}
    save_json(manifest, folder / MANIFEST)
    return open_gallery_store(folder)


def read_manifest(folder: Path, expected_format: str, fields: dict) -> dict:
    """The manifest of a store-like folder, checked for its format and its `fields` (a spec as
    STORE_FIELDS)."""
    path = folder / MANIFEST
    store = expected_format == STORE_FORMAT
    if not path.exists():
        what = "a gallery store" if store else "an upgraded gallery"
        raise GalleryStoreError(f"{path} not found: {folder} is not {what} (or it is incomplete)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise GalleryStoreError(f"{path} is not valid JSON ({err})") from None
    fix = ("write the store again (`fct export-gallery`, or write_gallery_store in Python)"
           if store else "run `fct upgrade` again")
    if not isinstance(manifest, dict):
        raise GalleryStoreError(f"{path}: expected a mapping of keys, got "
                                f"{type(manifest).__name__}; {fix}")
    if manifest.get("format") != expected_format:
        raise GalleryStoreError(
            f"{path}: format {manifest.get('format')!r}, expected {expected_format!r}")
    problem = field_problem(manifest, fields, "")
    if problem:
        raise GalleryStoreError(f"{path}: {problem}; {fix}")
    return manifest


def field_problem(value, spec, key: str) -> str | None:
    """What is wrong with a manifest's `value` at `key` against `spec` (a type, a mapping of
    required keys to specs, or a one-item list: a list of such items), or None."""
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return f"'{key}' must be a mapping, got {value!r}"
        for name, item in spec.items():
            where = f"{key}.{name}" if key else name
            if name not in value:
                return f"'{where}' is missing"
            if problem := field_problem(value[name], item, where):
                return problem
        return None
    if isinstance(spec, list):
        if not isinstance(value, list):
            return f"'{key}' must be a list, got {value!r}"
        return next(filter(None, (field_problem(v, spec[0], f"{key}[{i}]")
                                  for i, v in enumerate(value))), None)
    if not isinstance(value, spec) or (spec is int and isinstance(value, bool)):
        return f"'{key}' must be {spec.__name__}, got {value!r}"
    return None


def check_npy(path: Path, shape: tuple[int, ...], kind: str) -> np.ndarray:
    """Memory-map a .npy file and check its shape and dtype kind ('i' or 'f'), naming the file."""
    if not path.exists():
        raise GalleryStoreError(f"missing file {path}")
    try:
        array = np.load(path, mmap_mode="r")
    except ValueError as err:
        raise GalleryStoreError(f"{path} is not a readable .npy file ({err})") from None
    if array.shape != shape:
        raise GalleryStoreError(f"{path}: shape {array.shape}, expected {shape}")
    if array.dtype.kind != kind:
        expected = {"i": "an integer type", "f": "a float type"}[kind]
        raise GalleryStoreError(f"{path}: dtype {array.dtype}, expected {expected}")
    return array


def open_gallery_store(folder: str | Path) -> GalleryStore:
    """Open a store and check every shard's files, shapes and dtypes against the manifest."""
    folder = Path(folder)
    manifest = read_manifest(folder, STORE_FORMAT, STORE_FIELDS)
    old_dim, side_dim = manifest["old_dim"], manifest["side_info_dim"]
    shards = []
    for entry in manifest["shards"]:
        shard = Shard(folder / entry["name"], entry["count"], side_dim)
        if not shard.folder.is_dir():
            raise GalleryStoreError(
                f"missing shard {shard.folder} (listed in {folder / MANIFEST})")
        n = shard.count
        check_npy(shard.folder / "ids.npy", (n,), "i")
        check_npy(shard.folder / "old.npy", (n, old_dim), "f")
        if side_dim:
            check_npy(shard.folder / "side.npy", (n, side_dim), "f")
        shards.append(shard)
    check_unique_ids(shards)
    return GalleryStore(folder, old_dim, side_dim, tuple(shards), manifest["source"])


def check_unique_ids(shards: list[Shard]) -> None:
    """Stop, naming the files, when an id appears more than once across the shards."""
    if not shards:
        return
    values, counts = np.unique(np.concatenate([s.ids() for s in shards]), return_counts=True)
    if (counts > 1).any():
        duplicate = values[counts > 1][0]
        files = ", ".join(str(s.folder / "ids.npy") for s in shards if duplicate in s.ids())
        raise GalleryStoreError(
            f"id {duplicate} appears more than once (in {files}); ids must be unique across "
            "the store: fix those ids.npy files or export the store again")
