"""The `fct` command line: fetch data sets and run the suite."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

from .config import PresetError, load_preset
from .datasets import DatasetSpec, load_dataset
from .runner import REPORT, STEPS, StepFailed, run_suite

APT_PACKAGES = {"fashion-mnist": "dataset-fashion-mnist"}


def fetch_data(name: str) -> str:
    """Make a data set available: already present, Debian's package (as root), or a download."""
    try:
        return load_dataset(DatasetSpec(name=name, download=False)).source
    except FileNotFoundError as missing:
        first_error = missing
    package = APT_PACKAGES.get(name)
    if package and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing Debian package {package} ...", flush=True)
        apt = ["apt-get", "install", "-y", "-qq", package]
        ok = subprocess.run(["apt-get", "update", "-qq"]).returncode == 0
        if ok and subprocess.run(apt).returncode == 0:
            return load_dataset(DatasetSpec(name=name, download=False)).source
    try:
        return load_dataset(DatasetSpec(name=name, download=True)).source
    except Exception as download_error:
        raise SystemExit(f"{first_error}\n(download failed too: {download_error})") from None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `fct` console script."""
    parser = argparse.ArgumentParser(prog="fct", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("fetch-data", help="make a data set available locally")
    fetch.add_argument("name", choices=sorted(APT_PACKAGES) + ["tiny-imagenet-100"])
    reproduce = commands.add_parser("reproduce", help="run the notebook suite of a preset")
    reproduce.add_argument("--preset", default="fashion-mnist",
                           help="a name in params/ or a path to a preset YAML")
    reproduce.add_argument("--seeds", nargs="+", type=int,
                           help="seeds to run (default: the preset's first seed)")
    reproduce.add_argument("--all-seeds", action="store_true", help="run every seed of the preset")
    reproduce.add_argument("--only", nargs="+", choices=[*STEPS, REPORT],
                           help="run only these notebooks")
    reproduce.add_argument("--no-report", action="store_true", help="skip the report")
    args = parser.parse_args(argv)
    if args.command == "fetch-data":
        print(f"{args.name}: {fetch_data(args.name)}")
        return 0
    seeds = load_preset(args.preset).seeds if args.all_seeds else args.seeds
    try:
        results = run_suite(args.preset, seeds, only=args.only, report=not args.no_report)
    except (StepFailed, PresetError, FileNotFoundError) as err:
        print(f"fct reproduce: {err}", file=sys.stderr)
        return 1
    print(f"results in {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
