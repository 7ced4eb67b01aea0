"""Checksum-verified, path-safe, atomic extraction of tar archives into a cache folder."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from fctlib.io import file_sha256

MARKER_NAME = ".fct-verified.json"


class ChecksumError(ValueError):
    """An archive's SHA-256 digest differs from the one its SHA256SUMS file records."""


class UnsafeArchiveError(ValueError):
    """A tar member would land outside the extraction folder or is not a plain file or folder."""



def read_checksums(sums_file: Path) -> dict[str, str]:
    """Parse a `sha256sum` output file (`<hex digest>  <name>` per line) into {name: digest}."""
    sums_file = Path(sums_file)
    if not sums_file.is_file():
        raise FileNotFoundError(f"checksum file {sums_file} not found")
    checksums: dict[str, str] = {}
    for number, line in enumerate(sums_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.strip().split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise ValueError(
                f"{sums_file}:{number}: expected '<64 hex digits>  <file name>', got {line!r}"
            )
        digest, name = parts
        try:
            int(digest, 16)
        except ValueError:
            raise ValueError(f"{sums_file}:{number}: {digest!r} is not a hex digest") from None
        checksums[name.lstrip("*")] = digest.lower()
    if not checksums:
        raise ValueError(f"checksum file {sums_file} lists no files")
    return checksums


def verify_checksums(folder: Path, checksums: dict[str, str]) -> None:
    """Hash every file named in `checksums` inside `folder`; ChecksumError on the first mismatch."""
    folder = Path(folder)
    for name, expected in checksums.items():
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"archive {path} listed in the checksum file is missing")
        actual = file_sha256(path)
        if actual != expected:
            raise ChecksumError(
                f"checksum mismatch for {path}: expected sha256 {expected}, got {actual}; "
                "the file is corrupt or incomplete: copy it again"
            )


def _safe_target(root: Path, member: tarfile.TarInfo, archive: Path) -> Path:
    """Where `member` goes under `root`; UnsafeArchiveError for traversal, links and devices.

    Only plain files and folders are ever written, so a relative name without '..' stays inside."""
    name = PurePosixPath(member.name.replace("\\", "/"))
    if name.is_absolute() or ".." in name.parts or ":" in member.name:
        raise UnsafeArchiveError(
            f"refusing to extract {archive}: member {member.name!r} points outside the target"
        )
    if not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(
            f"refusing to extract {archive}: member {member.name!r} is a link or special file"
        )
    return root.joinpath(*name.parts)


def _extract_tar(archive: Path, root: Path) -> None:
    """Stream every member of `archive` into `root`, checking each path before writing."""
    made: set[Path] = set()
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            target = _safe_target(root, member, archive)
            folder = target if member.isdir() else target.parent
            if folder not in made:
                folder.mkdir(parents=True, exist_ok=True)
                made.add(folder)
            if member.isfile():
                with tar.extractfile(member) as source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)


def extracted_checksums(dest: Path) -> dict[str, str] | None:
    """The checksums recorded by a finished extraction into `dest`, or None if there is none."""
    marker = Path(dest) / MARKER_NAME
    if not marker.is_file():
        return None
    return json.loads(marker.read_text())["archives"]


def extract_verified(source: Path, dest: Path, sums_name: str = "SHA256SUMS") -> Path:
    """Verify the archives listed in `source/sums_name`, then extract them all into `dest` once.

    Extraction goes to a temporary folder beside `dest` that is renamed into place at the end, so
    `dest` either holds every archive or does not exist; a marker records the verified checksums,
    and a later call with the same checksums returns at once."""
    source, dest = Path(source), Path(dest)
    checksums = read_checksums(source / sums_name)
    if extracted_checksums(dest) == checksums:
        return dest
    verify_checksums(source, checksums)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.extracting-"))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the data set is not
        for name in checksums:
            _extract_tar(source / name, staging)
        (staging / MARKER_NAME).write_text(json.dumps({"archives": checksums}, indent=1))
        _replace_dir(staging, dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return dest


def _replace_dir(new: Path, dest: Path) -> None:
    """Rename `new` to `dest`, moving an outdated `dest` aside (kept if another process won)."""
    if dest.exists():
        if extracted_checksums(dest) == extracted_checksums(new):
            return
        old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.outdated-"))
        os.replace(dest, old / dest.name)
        shutil.rmtree(old)
    try:
        os.replace(new, dest)
    except OSError:
        if extracted_checksums(dest) != extracted_checksums(new):
            raise
