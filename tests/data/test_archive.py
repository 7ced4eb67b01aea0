import hashlib
import io
import tarfile

import pytest

import fctlib.data.archive as archive
from fctlib.data.archive import (
    MARKER_NAME,
    ChecksumError,
    UnsafeArchiveError,
    extract_verified,
    extracted_checksums,
    read_checksums,
    verify_checksums,
)
from fctlib.io import file_sha256


def write_tar(path, files, links=()):
    """A .tar.gz at `path` holding {member name: bytes} and optional (name, target) symlinks."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in links:
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


def write_sums(folder, names):
    lines = [f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}" for n in names]
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")


@pytest.fixture()
def source(tmp_path):
    """Two archives and their SHA256SUMS in tmp_path/src."""
    folder = tmp_path / "src"
    folder.mkdir()
    write_tar(folder / "a.tar.gz", {"data/a/one.txt": b"one", "data/a/two.txt": b"two"})
    write_tar(folder / "b.tar.gz", {"data/b/three.txt": b"three", "data/list.txt": b"a\nb\n"})
    write_sums(folder, ["a.tar.gz", "b.tar.gz"])
    return folder


def test_file_sha256_streams_to_the_same_digest(tmp_path):
    data = bytes(range(256)) * 1000
    (tmp_path / "blob").write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert file_sha256(tmp_path / "blob", chunk_size=1000) == expected
    assert file_sha256(tmp_path / "blob") == expected


def test_read_checksums_parses_sha256sum_output(tmp_path):
    digest = "ab" * 32
    (tmp_path / "SUMS").write_text(f"{digest}  x.tar.gz\n\n{digest.upper()} *y.bin\n")
    assert read_checksums(tmp_path / "SUMS") == {"x.tar.gz": digest, "y.bin": digest}
    (tmp_path / "BAD").write_text(f"{digest}  ok\nnot-a-digest file\n")
    with pytest.raises(ValueError, match="BAD:2"):
        read_checksums(tmp_path / "BAD")
    (tmp_path / "EMPTY").write_text("\n")
    with pytest.raises(ValueError, match="lists no files"):
        read_checksums(tmp_path / "EMPTY")
    with pytest.raises(FileNotFoundError):
        read_checksums(tmp_path / "MISSING")


def test_extract_verified_extracts_every_archive_once(source, tmp_path, monkeypatch):
    dest = tmp_path / "cache" / "set"
    assert extract_verified(source, dest) == dest
    assert (dest / "data" / "a" / "one.txt").read_bytes() == b"one"
    assert (dest / "data" / "a" / "two.txt").read_bytes() == b"two"
    assert (dest / "data" / "b" / "three.txt").read_bytes() == b"three"
    assert (dest / "data" / "list.txt").read_bytes() == b"a\nb\n"
    assert extracted_checksums(dest) == read_checksums(source / "SHA256SUMS")
    assert sorted(p.name for p in dest.parent.iterdir()) == ["set"]  # no staging left
    mtime = (dest / "data" / "a" / "one.txt").stat().st_mtime_ns

    def no_second_extraction(*args):
        raise AssertionError("extracted again")

    monkeypatch.setattr(archive, "_extract_tar", no_second_extraction)
    monkeypatch.setattr(archive, "file_sha256", no_second_extraction)
    extract_verified(source, dest)
    assert (dest / "data" / "a" / "one.txt").stat().st_mtime_ns == mtime


def test_corrupt_archive_fails_checksum_and_extracts_nothing(source, tmp_path):
    blob = bytearray((source / "b.tar.gz").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (source / "b.tar.gz").write_bytes(bytes(blob))
    expected = read_checksums(source / "SHA256SUMS")["b.tar.gz"]
    actual = hashlib.sha256(bytes(blob)).hexdigest()
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError) as error:
        extract_verified(source, cache / "set")
    message = str(error.value)
    assert "b.tar.gz" in message and expected in message and actual in message
    assert not cache.exists() or not any(cache.iterdir())
    with pytest.raises(ChecksumError):
        verify_checksums(source, {"b.tar.gz": expected})


def test_missing_archive_is_named(source, tmp_path):
    (source / "a.tar.gz").unlink()
    with pytest.raises(FileNotFoundError, match="a.tar.gz"):
        extract_verified(source, tmp_path / "set")


def test_new_checksums_replace_an_old_extraction(source, tmp_path):
    dest = tmp_path / "set"
    extract_verified(source, dest)
    write_tar(source / "a.tar.gz", {"data/a/one.txt": b"version two"})
    write_sums(source, ["a.tar.gz", "b.tar.gz"])
    extract_verified(source, dest)
    assert (dest / "data" / "a" / "one.txt").read_bytes() == b"version two"
    assert not (dest / "data" / "a" / "two.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set", "src"]


@pytest.mark.parametrize(
    "files, links",
    [
        ({"data/ok.txt": b"ok", "../escaped.txt": b"evil"}, ()),
        ({"data/ok.txt": b"ok", "data/../../escaped.txt": b"evil"}, ()),
        ({"/tmp/escaped-absolute.txt": b"evil"}, ()),
        ({"data/ok.txt": b"ok"}, [("data/link", "/etc/passwd")]),
    ],
)
def test_unsafe_members_are_refused_and_nothing_is_left(tmp_path, files, links):
    folder = tmp_path / "src"
    folder.mkdir()
    write_tar(folder / "evil.tar.gz", files, links)
    write_sums(folder, ["evil.tar.gz"])
    cache = tmp_path / "cache"
    with pytest.raises(UnsafeArchiveError, match="refusing to extract"):
        extract_verified(folder, cache / "set")
    assert not any(cache.iterdir())
    assert not (tmp_path / "escaped.txt").exists()
    assert not (cache / "escaped.txt").exists()


def test_marker_records_a_finished_extraction(source, tmp_path):
    dest = extract_verified(source, tmp_path / "set")
    assert (dest / MARKER_NAME).is_file()
    assert extracted_checksums(tmp_path / "elsewhere") is None
