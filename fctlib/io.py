"""Files written atomically (an interruption never leaves a torn file), JSON, and digests."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from fctlib.errors import UserError

TMP_GLOB = ".*.tmp"  # the temporary files of atomic_write: .<name>.<writer pid>.<random>.tmp
FULL_DISK_BYTES = 1 << 20  # a write that failed with less room than this left ran out of disk


def atomic_write(path: str | Path, write) -> Path:
    """Call `write(tmp_path)`, then rename the temporary file over `path` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                               suffix=".tmp")  # TMP_GLOB
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; artifacts are not
        os.replace(tmp, path)
    except BaseException as err:
        full = out_of_space(err, path.parent)  # asked while the partial file still takes room
        Path(tmp).unlink(missing_ok=True)
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from err
        raise
    return path


def out_of_space(err: BaseException, folder: Path) -> bool:
    """Whether a failed write ran out of disk: ENOSPC, or an error without an errno (numpy's
    short write "<n> requested and <m> written", torch's failed stream) with the disk now full."""
    code = getattr(err, "errno", None)
    if code is None and isinstance(err, OSError | RuntimeError):
        return shutil.disk_usage(folder).free < FULL_DISK_BYTES
    return code == errno.ENOSPC


def remove_stale_tmp(folder: str | Path) -> int:
    """Delete the temporary files that killed writers left under `folder` (a file whose writer
    still runs, e.g. another `fct` process on the same run, is kept); returns how many."""
    stale = [p for p in Path(folder).rglob(TMP_GLOB) if p.is_file() and not _writer_runs(p)]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def _writer_runs(tmp: Path) -> bool:
    """Whether the process named in a temporary file's name (`.<name>.<pid>.<random>.tmp`) is
    still running; False for a name without a pid."""
    pid = tmp.name.split(".")[-3]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def check_output_folder(path: str | Path, option: str) -> Path:
    """Refuse, before any work, an output folder (given as `option`) that is a file, lies under
    a file, or cannot be written."""
    path = Path(path)
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        where = "is a file" if existing == path else f"lies under the file {existing}"
        raise UserError(f"{option} {path} {where}; pass a folder path (created if missing)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: {existing} is not writable (read-only or no "
                        "permission); pass a writable folder or fix its permissions")
    return path


def load_json_if_exists(path: str | Path):
    """The JSON at `path`, or None when there is no such file."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def save_json(obj, path: str | Path) -> Path:
    """Write JSON (indented, keys sorted), atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def save_npy_atomic(array: np.ndarray, path: str | Path) -> Path:
    """Write `array` to `path` (.npy) via a temporary file and a rename: never half-written."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, array)

    return atomic_write(path, write)


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 digest of a file, read in chunks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()
