"""Two results folders' step records side by side, leaf by leaf: per seed and record, how many
training losses (every `loss` under a `history`) are bit for bit the same, the largest difference
of the other numbers, and how many differ by more than 1e-12 (a printed example each). Timings,
provenance (commit, compute, artifacts, data, weights) and the data's description are skipped:
they say when and where, not what was computed.

    python same_records.py BEFORE AFTER > same_records.md
"""

import json
import sys
from pathlib import Path

SKIPPED = {"items_per_s", "seconds", "commit", "compute", "artifacts", "data", "weights", "source"}


def leaves(value, path=""):
    """(path, value) of every number and string in a record."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{path}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, f"{path}[{index}]")
    else:
        yield path, value


def skipped(path: str) -> bool:
    """Whether a leaf's path passes through a key SKIPPED names."""
    return any(key.split("[")[0] in SKIPPED for key in path.split("/"))


def compare(before: dict, after: dict) -> tuple[str, str, float, list[str], int]:
    """Losses equal / compared, the commit of `before`, the largest |difference| of the other
    numbers, the leaves that differ beyond 1e-12, and how many leaves only one side has."""
    old, new = dict(leaves(before)), dict(leaves(after))
    losses = equal_losses = 0
    largest, differing = 0.0, []
    for path in sorted(old.keys() & new.keys()):
        if skipped(path):
            continue
        a, b = old[path], new[path]
        if "/history" in path and path.endswith("/loss"):
            losses += 1
            equal_losses += a == b
        elif isinstance(a, (int, float)) and isinstance(b, (int, float)):
            largest = max(largest, abs(a - b))
            if abs(a - b) > 1e-12:
                differing.append(f"{path}: {a} -> {b}")
        elif a != b:
            differing.append(f"{path}: {a!r} -> {b!r}")
    one_side = sum(1 for path in old.keys() ^ new.keys() if not skipped(path))
    return f"{equal_losses} / {losses}", before.get("commit", "?")[:7], largest, differing, one_side


def main(before_dir: str, after_dir: str) -> None:
    print(f"Records of `{before_dir}` (before) against `{after_dir}` (after): training losses "
          "bit for bit (equal / compared), the largest |difference| of the other numbers "
          "(fractions), the leaves differing by more than 1e-12 and those only one side has.\n")
    print("| seed | record | before's commit | losses equal | largest diff | leaves > 1e-12 "
          "| one side only | e.g. |")
    print("|---|---|---|---|---:|---:|---:|---|")
    for seed_dir in sorted(Path(after_dir, "metrics").glob("seed*")):
        for path in sorted(seed_dir.glob("*.json")):
            old_path = Path(before_dir, "metrics", seed_dir.name, path.name)
            if not old_path.is_file():
                print(f"| {seed_dir.name[4:]} | {path.stem} | (none) | | | | | |")
                continue
            losses, commit, largest, differing, one_side = compare(
                json.loads(old_path.read_text()), json.loads(path.read_text()))
            example = differing[0].replace("|", "/") if differing else ""
            print(f"| {seed_dir.name[4:]} | {path.stem} | {commit} | {losses} | {largest:.1e} "
                  f"| {len(differing)} | {one_side} | {example} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
